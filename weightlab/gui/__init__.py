"""The WeightLab desktop window: PySide6 + pyqtgraph widgets over the core session.

Nothing in this package imports TensorFlow or Keras: evaluation runs in the
engine worker process, reached through :mod:`weightlab.gui.engine_adapter`.
Start the application with :func:`weightlab.gui.app.run_app`.

PySide6 6.12.0 must not be used: on Python 3.11 it drops a reference to
``None``/``True`` on every void call and signal emission, and the interpreter
aborts after a few thousand calls (``constraints.txt`` pins 6.11.3;
``tests/test_gui.py::test_qt_calls_keep_none_alive`` guards it).
"""

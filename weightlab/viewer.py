"""The WeightLab window from a notebook or a script: :func:`show`, :func:`run`, :class:`Viewer`.

In Jupyter or IPython, ``weightlab.show(model, data=(x, y))`` opens the window
and returns at once: IPython's Qt event-loop integration (``%gui qt``) is
turned on, as napari does, so the window works between cells and the
notebook stays usable. In a plain script the window shows and
``weightlab.run()`` blocks until it is closed::

    import weightlab
    from weightlab.edits import ZeroNeurons

    v = weightlab.show(model, data=(x_test, y_test))   # a live Keras model, a file, or a session
    v.wait()                                           # the baseline is measured (scripts, tests)
    v.session.apply(ZeroNeurons(target="dense", neurons=[0, 3]))   # shows in the window
    edited = v.model()                                 # a new Keras model with the window's edits
    job = v.rank(layer="dense"); job.result()          # progress in the window, result as data
    weightlab.run()                                    # scripts: until the window is closed

The window's process runs no TensorFlow of its own for the window: the
evaluation engine is a child process that builds the model from a file. An
in-memory model is therefore saved once, unedited, to a private ``.keras``
file (:func:`weightlab._tf.headless.materialise`) before the window gets it;
held-out arrays go to a private ``.npz``. Both are removed when the window
closes (and at interpreter exit).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from weightlab.core.errors import DataError, WeightLabError

if TYPE_CHECKING:
    from weightlab.core.session import EditSession
    from weightlab.engine.events import Metrics
    from weightlab.gui.main_window import MainWindow
    from weightlab.gui.notebook import WindowHost, WindowJob

__all__ = ["NoDisplayError", "Viewer", "display_problem", "qt_platform_problem", "run", "show"]

#: The viewers whose window is open (``run`` waits for them; closed at exit).
_OPEN: weakref.WeakSet[Viewer] = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _close_at_exit() -> None:
    """A script ended with windows open (no ``run()``): close them while Qt and the engine still stand.

    Registered after :mod:`multiprocessing`'s own exit handler, so it runs
    first (handlers run last-in first-out): the engine worker is shut down
    in order instead of its connection breaking under a half-torn-down Qt.
    """
    viewers = list(_OPEN)
    if viewers and not (os.environ.get("QT_QPA_PLATFORM") == "offscreen"):
        print("weightlab: the script ended, so its window closed; call weightlab.run() at the end "
              "to keep it open until you close it", file=sys.stderr)
    for v in viewers:
        try:
            v.close()
        except Exception:  # noqa: BLE001, S110 - at exit: close what can be closed, never raise
            pass


class NoDisplayError(WeightLabError):
    """No window can be shown: there is no display (Linux without X11 or Wayland), or Qt's platform plugin
    cannot load (e.g. xcb without its system libraries)."""


def display_problem(environ: os._Environ[str] | dict[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """Why no window can be shown in this process, or None when one can.

    On Linux (and other X11 systems) a window needs ``DISPLAY`` (X11) or
    ``WAYLAND_DISPLAY``, or an explicit ``QT_QPA_PLATFORM`` (``offscreen``
    renders without a screen, ``xcb``/``wayland`` choose one); macOS and
    Windows always have one. In this process (no arguments), a
    ``QApplication`` already running is taken as proof that Qt found its display.
    """
    if environ is None and platform is None:  # this process: a running application has its display
        widgets = sys.modules.get("PySide6.QtWidgets")
        if widgets is not None and widgets.QApplication.instance() is not None:
            return None
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if plat.startswith(("win", "darwin", "cygwin")):
        return None
    if env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "weightlab.show: no display to open the window on (DISPLAY and WAYLAND_DISPLAY are not set, "
        "and QT_QPA_PLATFORM is not). Run it where there is a desktop, forward X11 (ssh -X), run the "
        "script under a virtual display (xvfb-run python script.py), or set QT_QPA_PLATFORM=offscreen "
        "to render without a screen. Without a window, the Python API does the same work: "
        "s = weightlab.open(model); s.apply(...); weightlab.evaluate(s, data); s.to_keras()."
    )


#: What Qt's xcb platform plugin (PySide6 6.11) needs beyond libxcb itself, as Debian/Ubuntu packages.
XCB_PACKAGES = (
    "libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 "
    "libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1"
)
#: Seconds the child process that tries Qt's platform plugin may take.
PROBE_TIMEOUT_S = 30.0
#: A child that only makes a QApplication: Qt aborts the process when its platform plugin cannot load.
_PROBE_CODE = "from PySide6.QtWidgets import QApplication; app = QApplication(['weightlab-probe']); print(app.platformName())"
#: Probe outcomes of this process, by the environment they ran with (None: the plugin loads).
_PROBED: dict[tuple[str, ...], str | None] = {}
_PROBE_ENV = ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "QT_PLUGIN_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH",
              "XDG_SESSION_TYPE", "LD_LIBRARY_PATH")


def _platform_name(env: os._Environ[str] | dict[str, str]) -> str:
    if env.get("QT_QPA_PLATFORM"):
        return env["QT_QPA_PLATFORM"].split(":", 1)[0]
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "cocoa"
    return "wayland or xcb" if env.get("WAYLAND_DISPLAY") else "xcb"


def qt_platform_problem() -> str | None:
    """Why Qt cannot start its platform plugin here, or None when it can (tried once per process and environment).

    Qt does not raise when its platform plugin fails to load ("Could not
    load the Qt platform plugin "xcb" ... Aborted"): it aborts the whole
    process, a notebook's kernel included. So, before this process makes its
    first ``QApplication``, a child process (``sys.executable``, the same
    environment) makes one; when the child fails, the message names the
    platform, Qt's own last lines and what to install. Not tried when a
    ``QApplication`` already runs in this process.
    """
    widgets = sys.modules.get("PySide6.QtWidgets")
    if widgets is not None and widgets.QApplication.instance() is not None:
        return None
    key = tuple(os.environ.get(k, "") for k in _PROBE_ENV)
    if key in _PROBED:
        return _PROBED[key]
    platform = _platform_name(os.environ)
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE_CODE], env=dict(os.environ), capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        problem: str | None = (
            f"weightlab.show: Qt's platform plugin ({platform}) did not start within {PROBE_TIMEOUT_S:g} s "
            "in a test process; the display may not answer (check DISPLAY / WAYLAND_DISPLAY)."
        )
    else:
        if done.returncode == 0:
            problem = None
        else:
            lines = [ln.strip() for ln in (done.stderr or "").splitlines() if ln.strip()]
            said = "\n  ".join(lines[-6:]) if lines else f"(no output; exit status {done.returncode})"
            problem = (
                f"weightlab.show: Qt cannot start its platform plugin ({platform}), so no window can be shown "
                f"(opening it here would abort this process). Qt said:\n  {said}\n"
                "On Debian/Ubuntu the xcb plugin needs: sudo apt-get install " + XCB_PACKAGES + " "
                "(Fedora: xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-image xcb-util-renderutil "
                "libxkbcommon-x11). Set QT_DEBUG_PLUGINS=1 to see which library is missing; check that DISPLAY "
                "names a running X server; or set QT_QPA_PLATFORM=offscreen to render without a screen. "
                "Without a window, the Python API does the same work: s = weightlab.open(model); "
                "s.apply(...); weightlab.evaluate(s, data)."
            )
    _PROBED[key] = problem
    return problem


# -- what the window is given ---------------------------------------------------------------------
def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _session_of(obj: Any) -> tuple[EditSession, bool]:
    """``(session, opened_here)``: ``obj`` itself when it is a session, else ``weightlab.open(obj)``."""
    from weightlab.core.session import EditSession

    if isinstance(obj, EditSession):
        return obj, False
    import weightlab

    return weightlab.open(obj), True


def _npz_of(data: Any, where: Path) -> Path:
    """Write held-out arrays ``(x, y)`` or ``x`` to ``where/held-out.npz`` (the engine worker reads files)."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise DataError(f"data: a tuple must be (x, y); got {len(data)} items")
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise DataError(f"data: x and y must have the same number of samples; got x {x.shape}, y {y.shape}")
        arrays = {"x": x, "y": y}
    else:
        x = np.asarray(data)
        if x.ndim == 0 or x.dtype == object:
            raise DataError(f"data: expected an .npz path, (x, y) arrays or x; got {type(data).__name__}")
        arrays = {"x": x}
    if len(arrays["x"]) == 0:
        raise DataError("data: no samples (x is empty)")
    out = where / "held-out.npz"
    if "y" in arrays:
        np.savez(out, x=arrays["x"], y=arrays["y"])
    else:
        np.savez(out, x=arrays["x"])
    return out


def _shape_text(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(shape)) + \
        ("," if len(shape) == 1 else "") + ")"


def _check_fits(session: EditSession, data: Any) -> None:
    """Refuse held-out arrays that do not fit the live model the session was opened from (as ``evaluate`` does).

    Only for in-memory sessions (the model object is here: its input shape
    and number of outputs are known without running it); a file's model is
    checked by the evaluation engine, whose messages the window shows.

    Raises
    ------
    DataError
        When ``x``'s per-sample shape differs from the model's input, or the
        labels are not class indices in ``[0, number of outputs)``.
    """
    source = getattr(session.model, "source", None)
    if source is None or _is_path(data):
        return
    x, y = (data if isinstance(data, tuple) and len(data) == 2 else (data, None))
    x = np.asarray(x)
    try:
        inputs = list(getattr(source, "inputs", None) or [])
        outputs = list(getattr(source, "outputs", None) or [])
    except (AttributeError, ValueError):  # a subclassed model never called symbolically: nothing to check
        return
    if len(inputs) == 1:
        want = tuple(inputs[0].shape)
        got = x.shape
        if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want[1:], got[1:], strict=False)):
            raise DataError(
                "the data given to show() does not fit the model: the model expects inputs of shape "
                f"{_shape_text(want)}; received x of shape {tuple(got)}"
            )
    if y is None or len(outputs) != 1:
        return
    classes = outputs[0].shape[-1] if len(outputs[0].shape) >= 2 else None
    y = np.asarray(y)
    if y.ndim == 2:
        if classes and y.shape[1] != classes:
            raise DataError(
                f"the data given to show() does not fit the model: one-hot labels have {y.shape[1]} columns; "
                f"the model has {classes} outputs"
            )
        return
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise DataError(
            "the data given to show(): y must be class indices (N,) or one-hot rows (N, C) of real numbers; "
            f"got shape {y.shape}, dtype {y.dtype}"
        )
    if not classes or classes < 2 or y.size == 0:
        return
    lo, hi = float(np.min(y)), float(np.max(y))
    if lo < 0 or hi >= classes or not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(
            f"the data given to show(): labels must be class indices in [0, {classes}) for this model's "
            f"{classes} outputs; received labels from {lo:g} to {hi:g}: this held-out set does not fit the model"
        )


def _data_path(data: Any, folder: list[Path]) -> Path | None:
    """The held-out file for ``data`` (None: none); a temp folder made for arrays is appended to ``folder``."""
    if data is None:
        return None
    if _is_path(data):
        p = Path(data)
        if not p.is_file():
            raise DataError(f"{p}: no such held-out file")
        return p
    if isinstance(data, (list, Sequence)) and not isinstance(data, tuple) and not hasattr(data, "shape"):
        data = np.asarray(data)
    tmp = Path(tempfile.mkdtemp(prefix="weightlab-show-"))
    folder.append(tmp)
    return _npz_of(data, tmp)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# -- the public functions ---------------------------------------------------------------------------
def show(
    model: Any,
    data: Any = None,
    *,
    title: str | None = None,
    trust: bool = False,
) -> Viewer:
    """Open the WeightLab window on a model and return a handle to it.

    Does not block in Jupyter or IPython (Qt's event loop runs between cells);
    in a plain script call :func:`run` to keep the window open until it is closed.

    Parameters
    ----------
    model:
        A live Keras model (Keras 3 or ``tf_keras``; edited as copies, never
        changed), a model file or folder (as ``weightlab.open``), or an open
        session (the window shows and edits that very session, and leaves it
        open when it closes: close it yourself).
    data:
        The held-out set evaluated on: an ``.npz`` path with ``x`` and ``y``,
        ``(x, y)`` arrays (``x`` ``(N, ...)`` model inputs, ``y`` ``(N,)``
        integer class indices or ``(N, C)`` one-hot), or ``x`` alone (no
        labels: only the agreement with the unedited model is measured).
        Arrays are written to a private temporary ``.npz``, removed when the
        window closes. None: a held-out set named like a model file beside it,
        if there is one; else evaluation is off.
    title:
        The window's title (default: the model's name).
    trust:
        Let the evaluation run the model's own code (Lambda or custom layers):
        only for models you trust.

    Returns
    -------
    Viewer
        The handle: ``session`` (live), ``model()``, ``recipe()``, ``metrics``,
        ``wait()``, ``close()``, ``sweep()``/``rank()``/``finetune()``.

    Raises
    ------
    NoDisplayError
        (a :class:`~weightlab.core.errors.WeightLabError`) When there is no
        display to show a window on, or Qt's platform plugin cannot load
        there (tried first in a child process: Qt would abort this one; the
        message gives Qt's own words and what to install); nothing is opened
        and no temporary file is written.
    DataError
        When ``data`` is not a file that exists or arrays of matching length,
        or (for a live model) arrays that do not fit the model: another
        per-sample input shape, labels outside ``[0, number of outputs)``.
    FormatError, TypeError
        As ``weightlab.open``: a file that cannot be read, an unbuilt model,
        an object that is not a model.
    """
    from weightlab.platform_check import xcb_problem

    missing = None if display_problem() else xcb_problem()  # names the libraries and packages, no child needed
    problem = display_problem() or (missing and f"weightlab.show: {missing}") or qt_platform_problem()
    if problem is not None:
        raise NoDisplayError(problem)
    session, opened = _session_of(model)
    temp: list[Path] = []
    try:
        if data is not None:
            _check_fits(session, data)
        data_path = _data_path(data, temp)
        if session.model.in_memory and session.model.exec_path is None:
            from weightlab._tf import headless

            headless.materialise(session.model)  # before the window sees it: the worker builds from this file
        from weightlab.gui import notebook

        notebook.get_app()
        notebook.enable_ipython_loop()
        host = notebook.open_window(session, data_path, title=title, trust=trust, borrowed=not opened)
    except BaseException:
        if opened:
            session.model.close()
        for folder in temp:
            _remove(folder)
        raise
    return Viewer(host, temp_folders=temp, trust=trust)


def run(timeout: float | None = None) -> None:
    """Block until every WeightLab window shown with :func:`show` is closed (for scripts).

    Under IPython with Qt's event loop integrated (Jupyter after
    :func:`show`) this returns at once: the loop already runs between cells.

    Parameters
    ----------
    timeout:
        Return after this many seconds even if a window is still open (None: wait).
    """
    if not _OPEN:
        return
    from weightlab.gui import notebook

    if notebook.ipython_loop_active():
        return
    notebook.pump_until(lambda: not any(v._open for v in list(_OPEN)), timeout)


class Viewer:
    """A WeightLab window opened from Python (returned by :func:`show`).

    Attributes
    ----------
    window:
        The :class:`~weightlab.gui.main_window.MainWindow`.
    """

    def __init__(self, host: WindowHost, *, temp_folders: list[Path], trust: bool = False):
        self._host = host
        self.window: MainWindow = host.window
        self._trust = trust
        self._temp = list(temp_folders)
        # the temporary held-out set goes when the window closes, or at the latest at exit
        self._finalizer = weakref.finalize(self, _remove_all, tuple(self._temp))
        host.closed.connect(self._on_closed)
        _OPEN.add(self)
        if not _EXIT_HOOK:
            atexit.register(_close_at_exit)
            _EXIT_HOOK.append(True)

    def __repr__(self) -> str:
        s = self.session
        state = "closed" if not self._open else "open"
        return f"<weightlab.Viewer {state}: {s.model.path.name if s is not None else 'no model'}>"

    @property
    def _open(self) -> bool:
        return not self._host.is_closed

    # -- the session ----------------------------------------------------------------------------
    @property
    def session(self) -> EditSession:
        """The window's session, live in both directions.

        Edits made in the window are in it; ``viewer.session.apply(edit)``,
        ``undo()``, ``redo()`` from Python show in the window (its views, its
        history and a new evaluation follow). After the window closed: the
        session it showed last.
        """
        s = self.window.session if self._open else None
        if s is None:
            s = self._host.last_session
        assert s is not None
        return s

    def model(self) -> Any:
        """A new Keras model with the window's current weights (the original is never changed).

        For a live Keras model given to :func:`show`: a clone of it, compiled
        like it when it was compiled, so ``m.evaluate(x, y)`` works at once.
        For a Keras file: the model built from the file with the edited
        weights (its code runs only with ``trust``).

        Raises
        ------
        EngineError, FormatError
            When the model cannot be rebuilt with Keras (a SavedModel or
            frozen graph has no Keras model to return).
        """
        from weightlab._tf import headless

        return headless.to_keras(self.session, trust=self._trust)

    def recipe(self) -> dict[str, Any]:
        """The window's edits as a recipe (``{"version": 1, "edits": [...]}``, the applied steps)."""
        return self.session.to_recipe()

    @property
    def metrics(self) -> Metrics | None:
        """The held-out metrics the window shows for the current weights (None: not measured, or off).

        With edits, its ``baseline`` holds the unedited model's metrics the
        window shows as *Baseline* (its rich display shows the change).

        Only after :meth:`wait` (or once the window has settled) are they
        those of the session's current history position.
        """
        if not self._open:
            return None
        panel = self.window.eval_panel
        current, baseline = panel.current, panel.baseline
        if current is None or baseline is None or current is baseline or not self.session.edited_versions():
            return current  # the unedited weights: they are the baseline (its ``baseline`` stays None)
        import dataclasses

        # as weightlab.evaluate for an edited session: the unedited model's metrics on the same data ride along
        return dataclasses.replace(current, baseline=baseline)

    # -- waiting, closing ------------------------------------------------------------------------
    def wait(self, timeout: float | None = 120.0) -> bool:
        """Process the window's events until its evaluation shows the current weights; True when it does.

        Returns False after ``timeout`` seconds (None: wait as long as it
        takes). Also True when evaluation is off (no held-out set, the model
        cannot be built: the panel says why) and when the window is closed.
        """
        from weightlab.gui import notebook

        return notebook.pump_until(lambda: not self._open or notebook.evaluation_settled(self.window), timeout)

    def close(self) -> None:
        """Close the window: nothing keeps running and the temporary files are removed.

        Unsaved edits are not asked about: they stay in :attr:`session`
        (and :meth:`model` still returns them).
        """
        if self._open:
            self._host.close()
        self._on_closed()

    def _on_closed(self) -> None:
        _OPEN.discard(self)
        self._finalizer()

    # -- jobs in the window ----------------------------------------------------------------------------
    def _job(self, kind: str, job_id: int | None, why: str, landed: Any = None) -> WindowJob:
        from weightlab.gui import notebook

        if job_id is None:
            raise WeightLabError(f"cannot start the {kind}: {why or 'the window refused it'}")
        return notebook.WindowJob(self.window, job_id, kind, landed)

    def _check_open(self, what: str) -> None:
        if not self._open:
            raise WeightLabError(f"cannot start {what}: the window is closed")

    def sweep(self, *, op: str, param: str, **kwargs: Any) -> WindowJob:
        """Run a sensitivity sweep as the window's job (its Sweeps tab shows the points as they come).

        Parameters
        ----------
        op, param, kwargs:
            As :func:`weightlab.sweep` (``values``/``range``/``adaptive``,
            ``targets``, ``mode``, ``budget_pp``, ``metric``, ``fixed``,
            ``coupled``), without the model and data: the window's session
            as edited now, on its held-out set.

        Returns
        -------
        WindowJob
            ``done()``, ``result(timeout)`` -> :class:`~weightlab.core.sweeps.SweepResult`, ``cancel()``.

        Raises
        ------
        RecipeError
            For a bad op, parameter or values (nothing started).
        WeightLabError
            When the window cannot run it (no held-out set, evaluation off).
        """
        from weightlab.analysis import sweep_spec

        self._check_open("a sweep")
        spec = sweep_spec(op, param, **kwargs)
        ctl = self.window.sweeps
        self.window.views.setCurrentWidget(ctl.panel)
        job = ctl.run(spec)
        return self._job("sweep", job, ctl.panel.message.text())

    def rank(self, *, layer: str, ablation: str = "zero", cumulative: bool = True,
             batchnorm: bool | None = None) -> WindowJob:
        """Rank a layer's neurons as the window's job (its Ranking tab fills as units are measured).

        Parameters
        ----------
        layer, ablation, cumulative, batchnorm:
            As :func:`weightlab.rank`.

        Returns
        -------
        WindowJob
            ``result()`` -> :class:`~weightlab.core.sweeps.RankResult`.

        Raises
        ------
        RecipeError
            For a bad layer or ablation.
        WeightLabError
            When the window cannot run it (no held-out set, evaluation off).
        """
        from weightlab.analysis import rank_spec

        self._check_open("a ranking")
        spec = rank_spec(layer, ablation=ablation, cumulative=cumulative, batchnorm=batchnorm)
        ctl = self.window.ranking
        self.window.views.setCurrentWidget(ctl.view)
        job = ctl.rank(spec)
        return self._job("rank", job, ctl.view.status.text())

    def finetune(self, train: str | os.PathLike[str], **options: Any) -> WindowJob:
        """Fine-tune the window's model as its job (the Training tab shows the curves); the result lands as a step.

        Parameters
        ----------
        train:
            Training ``.npz`` (``x``, ``y``) or an image folder.
        options:
            As :func:`weightlab.finetune` (``epochs``, ``lr``, ``batch_size``,
            ``val_split``, ``keep_masks``, ...); the held-out set is the window's.

        Returns
        -------
        WindowJob
            ``result()`` -> :class:`~weightlab.core.training.FinetuneResult`,
            once the trained weights are applied to :attr:`session` as one
            undoable history step.

        Raises
        ------
        RecipeError
            For a bad option (nothing started).
        WeightLabError
            When the window cannot train this model now (the reason the Training tab gives).
        """
        from weightlab import training

        self._check_open("fine-tuning")
        ctl = self.window.training
        data = self.window.data_path
        options.setdefault("data", str(data) if data is not None else None)
        current = self.window.current
        if current and "watch" not in options:  # the weights before/now plot shows the tensor shown, as the tab does
            options["watch"] = (current,)
        spec = training.finetune_spec(os.fspath(train), **options)
        self.window.views.setCurrentWidget(ctl.panel)
        job = ctl.start(spec)

        def landed() -> bool:
            # The trained weights become one history step: built in the pool, then applied
            # off the window's thread (busy until it lands; refused: the Training tab says why).
            r = ctl.result
            if r is None or not getattr(r, "arrays", None) or getattr(r, "saved", None):
                return True
            return ctl.step is not None and not self.window.busy

        return self._job("finetune", job, ctl.panel.message.text(), landed)


def _remove_all(folders: tuple[Path, ...]) -> None:
    for folder in folders:
        _remove(folder)

"""File formats: one module per format, each with ``sniff``, ``open`` and ``save``.

Contract (implemented by the modules of this package; see ``registry.py``)::

    open_model(path) -> ModelFile          # reads metadata only; values lazily
    save_model(model, changed, out_path)   # atomic; untouched tensors bit-identical
    describe_file(path) -> str             # what an unknown file looks like

Formats never import TensorFlow, Keras or Qt and never run model code.
"""

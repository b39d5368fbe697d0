"""Keras 3 weights-only files (``model.save_weights("m.weights.h5")``).

The same tree as ``model.weights.h5`` inside a ``.keras`` archive (see
:mod:`weightlab.formats._keras3`) but without a config: layer names come from
the file, class names are unknown (``""``) and weight names are inferred from
shapes only where unambiguous (else ``var_0``, ``var_1``...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import FormatError
from ..core.model import ModelFile
from . import _keras3
from ._h5io import file_stat, open_guarded, save_patched_h5, sniff_h5, wrap_errors

name = "weights.h5"
description = "Keras 3 weights file (.weights.h5)"
extensions = (".weights.h5",)


def _is_keras3_store(h5: h5py.File) -> bool:
    return "layer_names" not in h5.attrs and isinstance(h5.get("layers", getlink=True), h5py.HardLink)


def sniff(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is HDF5 with a Keras 3 ``layers`` group (and no legacy ``layer_names``)."""
    return sniff_h5(path, _is_keras3_store)


def open(path: str | os.PathLike[str]) -> ModelFile:  # noqa: A001 - the handler protocol's name
    """Open a Keras 3 ``.weights.h5`` file; tensor values are read on demand.

    Returns
    -------
    ModelFile
        ``format="weights.h5"``, ``config=None``; layers in the order their
        variables were written (the file does not record the model's order).

    Raises
    ------
    FormatError
        Not HDF5, not a Keras 3 weights store, damaged file.
    UnsafeFileError
        Links, external/virtual datasets, shape bombs.
    """
    path = Path(path)
    with wrap_errors(path, "open the file"):
        stat = file_stat(path)
    reader = open_guarded(path, path)
    h5 = reader.h5
    try:
        with reader.errors("read the Keras weights layout"):
            if not _is_keras3_store(h5):
                raise FormatError("not a Keras model file: an HDF5 file without Keras model weights", path)
            layers = _keras3.layers_without_config(h5, reader.file_size, path)
        return ModelFile(path, name, layers, reader, attrs={"_stat": stat})
    except BaseException:
        reader.close()
        raise


def save(model: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
    """Write a copy of the file with ``changed`` tensors overwritten in place, atomically.

    Raises
    ------
    FormatError
        Unknown name, wrong shape, source changed on disk, destination not writable.
    """
    save_patched_h5(model, changed, out)

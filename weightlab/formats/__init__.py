"""File formats: one module per format, each with ``sniff``, ``open`` and ``save``.

Contract::

    open_model(path) -> ModelFile          # reads metadata only; values lazily
    open_session(path) -> EditSession      # the same, as an edit session saving through save_model
    save_model(model, changed, out_path)   # atomic; untouched tensors bit-identical
    describe_file(path) -> str             # what an unknown file looks like

Formats are detected by content, never by extension alone. A save keeps the
model's format, so it refuses a name whose extension belongs to another
format (see :func:`check_destination`). Every handler in
:data:`FORMATS` has ``name``, ``description``, ``extensions``, ``sniff(path)``,
``open(path)`` and ``save(model, changed, out)``; the list is static (no
handler registers itself on import).

Handlers
--------
:mod:`~weightlab.formats.keras_zip`
    Keras 3 ``.keras`` archives.
:mod:`~weightlab.formats.legacy_h5`
    Legacy HDF5 full models and Keras 2 weights files (``.h5``).
:mod:`~weightlab.formats.keras_weights`
    Keras 3 ``.weights.h5`` files.
:data:`~weightlab.formats.tf_formats.SAVEDMODEL`, :data:`~weightlab.formats.tf_formats.CHECKPOINT`, :data:`~weightlab.formats.tf_formats.GRAPHDEF`
    TensorFlow SavedModel folders, checkpoints and frozen GraphDefs, read by
    TensorFlow in a reader process (:class:`weightlab.engine.reader.TFReaderProcess`).

Formats never import TensorFlow, Keras or Qt and never run model code (the
TensorFlow formats reach TensorFlow only through the reader process); HDF5 is
read through the guards of :mod:`weightlab.formats.h5safe`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from ..core.atomic import remove_stale_temps
from ..core.errors import FormatError, WeightLabError
from ..core.model import ModelFile
from ..core.session import EditSession
from . import keras_weights, keras_zip, legacy_h5, tf_formats
from .detect import describe_file

#: A format handler: a module of this package, or a :class:`~weightlab.formats.tf_formats.TFFormat`.
Handler = ModuleType | tf_formats.TFFormat

#: The TensorFlow formats. :func:`open_model` tries them first, also for
#: folders and paths that are no file (a checkpoint prefix); their ``sniff``
#: is pure Python and never raises.
TF_FORMATS: tuple[tf_formats.TFFormat, ...] = (tf_formats.SAVEDMODEL, tf_formats.CHECKPOINT, tf_formats.GRAPHDEF)

#: Every handler: the Keras formats in the order :func:`open_model` tries them, then :data:`TF_FORMATS`.
FORMATS: tuple[Handler, ...] = (keras_zip, legacy_h5, keras_weights, *TF_FORMATS)

__all__ = [
    "FORMATS",
    "TF_FORMATS",
    "check_destination",
    "describe_file",
    "get_format",
    "open_model",
    "open_session",
    "save_model",
]


def _open_with(handler: Handler, p: Path) -> ModelFile:
    try:
        return handler.open(p)
    except WeightLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - no raw traceback reaches the user
        raise FormatError(f"cannot read this {handler.description}: {exc}", p) from None


def get_format(name: str) -> Handler:
    """Return the handler called ``name`` (``"keras"``, ``"h5"``, ``"weights.h5"``).

    Raises
    ------
    FormatError
        When no handler has that name.
    """
    for handler in FORMATS:
        if handler.name == name:
            return handler
    known = ", ".join(h.name for h in FORMATS)
    raise FormatError(f"unknown file format {name!r} (known: {known})")


def open_model(path: str | os.PathLike[str]) -> ModelFile:
    """Open a model or weights file by its content; tensor values are read lazily.

    Parameters
    ----------
    path:
        A ``.keras`` archive, a legacy ``.h5`` model or weights file, a Keras 3
        ``.weights.h5`` file (the extension does not matter), a TensorFlow
        SavedModel folder, checkpoint (prefix, ``.index`` file or folder) or
        frozen GraphDef ``.pb`` (listed in a reader process, see
        :mod:`weightlab.formats.tf_formats`).

    Returns
    -------
    ModelFile
        Layers in model order, tensors as :class:`~weightlab.core.model.TensorInfo`
        (shapes in Keras axis order, dtype as stored). Close it when done.

    Raises
    ------
    FormatError
        When the file is missing, a folder, unreadable, not a supported model
        file (``"<path>: not a Keras model file: it looks like a text file"``) or
        damaged. :class:`~weightlab.core.errors.UnsafeFileError` (a FormatError)
        when it holds links, external data or shape bombs.

    Notes
    -----
    Temporary files left beside ``path`` by saves whose process was killed are
    removed first (:func:`weightlab.core.atomic.remove_stale_temps`).
    """
    p = Path(path)
    remove_stale_temps(p.parent)  # leftovers of killed saves beside the file (or folder)
    for tf_format in TF_FORMATS:
        if tf_format.sniff(p):
            return _open_with(tf_format, p)
    what = describe_file(p)
    if what in ("no such file", "a folder", "not a regular file") or what.startswith(
        ("a TensorFlow SavedModel", "a folder of", "unreadable")
    ):
        raise FormatError(f"cannot open: {what}", p)
    if what == "empty file":
        raise FormatError("not a Keras model file: the file is empty (0 bytes)", p)
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise FormatError(f"cannot open: {exc.strerror or exc}", p) from None
    for handler in FORMATS:
        if handler not in TF_FORMATS and handler.sniff(p):
            return _open_with(handler, p)
    raise FormatError(f"not a Keras model file: it looks like {what}", p)


def open_session(path: str | os.PathLike[str], *, session_class: type[EditSession] = EditSession) -> EditSession:
    """Open a model file (see :func:`open_model`) as an edit session that saves through :func:`save_model`.

    What :func:`weightlab.open` returns, and how the window opens a file. Close
    ``session.model`` when done.

    Parameters
    ----------
    path : str or os.PathLike
        As :func:`open_model`.
    session_class : type, optional
        :class:`~weightlab.core.session.EditSession` or a subclass (the public
        :class:`weightlab.Session`), constructed as ``session_class(model, saver=save_model)``.

    Raises
    ------
    FormatError
        As :func:`open_model`.
    """
    return session_class(open_model(path), saver=save_model)


def save_model(model: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
    """Save ``model`` with the tensors in ``changed`` replaced, in its own format, atomically.

    Untouched tensors, attributes, config and optimizer state are written back
    bit-identical; the source file is only read.

    Parameters
    ----------
    model:
        A model opened with :func:`open_model`.
    changed:
        ``{canonical name: new values}``; each array must have the tensor's
        shape; values are cast to the stored dtype (``same_kind``).
    out:
        Destination file (may be the source path; it is replaced atomically).

    Raises
    ------
    WeightLabError
        For an unknown tensor name.
    FormatError
        For a wrong shape or dtype, a source changed on disk since it was opened,
        a destination whose extension belongs to another format
        (:func:`check_destination`), or a destination that cannot be written
        (nothing is left behind).
    """
    handler = get_format(model.format)
    check_destination(model, out)
    try:
        handler.save(model, changed, out)
    except WeightLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - no raw traceback reaches the user
        raise FormatError(f"cannot save: {exc}", out) from None


def _extension_owner(name: str) -> tuple[str, str, str] | None:
    """``(extension, format name, description)`` of the longest known extension ``name`` ends with (any case)."""
    known = [(h.name, h.description, tuple(h.extensions)) for h in FORMATS]
    low = name.lower()
    found: tuple[str, str, str] | None = None
    for fmt, description, extensions in known:
        for ext in extensions:
            longer = found is None or len(ext) > len(found[0])
            if low.endswith(ext.lower()) and len(low) > len(ext) and longer:
                found = (ext, fmt, description)
    return found


def check_destination(model: ModelFile, out: str | os.PathLike[str]) -> None:
    """Refuse to save ``model`` under a name whose extension belongs to another format.

    WeightLab saves a model in the format it was opened in and converts
    nothing, so ``out.h5`` for a ``.keras`` archive would be a zip that Keras
    cannot load under that name. Allowed: an extension of the model's own
    format (``.h5`` or ``.hdf5`` for a legacy HDF5 model), the extension the
    opened file itself has (a Keras 2 weights file called ``x.weights.h5``),
    and an extension no format claims (``model.keras.bak``, a checkpoint
    prefix ``model.ckpt-1000``, a SavedModel folder ``export.v2``): formats are
    recognised by content, so such a name misleads no one about the format.
    The longest matching extension counts (``.weights.h5`` before ``.h5``).

    Parameters
    ----------
    model : ModelFile
        The opened model (its ``format`` and ``path``).
    out : str or os.PathLike
        The destination.

    Raises
    ------
    FormatError
        Naming ``out``, the model's format, the format the extension belongs
        to and the extensions to use instead.
    """
    handler = get_format(model.format)
    name = Path(os.fspath(out).rstrip("/\\") or os.fspath(out)).name
    owner = _extension_owner(name)
    if owner is None or owner[1] == handler.name:
        return
    ext, _, other = owner
    source = _extension_owner(Path(model.path).name)
    if source is not None and source[0].lower() == ext.lower():
        return
    if handler.extensions:
        use = "use a name ending in " + " or ".join(handler.extensions)
    else:
        use = f"use a name without {ext}"
    raise FormatError(
        f"cannot save a {handler.description} under a {ext} name, the extension of a "
        f"{other}; WeightLab saves in the opened model's format and does not convert: {use}",
        out,
    )

"""Format handlers for TensorFlow files: SavedModel folders, checkpoints, frozen GraphDefs.

This module imports no TensorFlow: its three handlers (:data:`SAVEDMODEL`,
:data:`CHECKPOINT`, :data:`GRAPHDEF`) are listed with the other formats in
:data:`weightlab.formats.FORMATS`. Detection (``sniff``) is pure Python
(:mod:`weightlab.formats.tfsniff`); listing, reading and saving go through a
:class:`~weightlab.engine.reader.TFReaderProcess`, one child process per
opened model running :mod:`weightlab._tf.tfio`, started when the model is
opened (or first used after :meth:`ModelFile.close`) and ended by
``ModelFile.close()``. Hence the formats sit above :mod:`weightlab.engine`
(the TensorFlow-free side of the process boundary) in the layers.

Names in the weights tree
-------------------------
SavedModel
    The variable's own name from the SavedModel object graph
    (``dense/kernel``; a bare ``tf.Module`` variable ``my_weights`` becomes
    ``root/my_weights``, the layer being the owning object's trackable path).
    ``TensorInfo.key`` is the bundle key
    (``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``). A variable
    stored under several keys is one tensor, written under all of them
    (``attrs["aliases"]``).
Checkpoint
    Object-based: the variable's ``full_name`` from the checkpoint's object
    graph (``dense/kernel``). Name-based (TF1 ``Saver``): the key itself
    (``fc1/weights``). Optimizer state (slots, iteration counters,
    ``save_counter``, ``global_step``) goes to one layer named and classed
    ``"(optimizer)"`` with ``trainable=False`` tensors
    (``(optimizer)/adam/dense_kernel_momentum``); ``attrs["optimizer_layer"]``
    names it so a view can hide it.
Metrics variables
    A tf.keras model's compiled metrics keep running totals
    (``keras_api/metrics/0/total``); in a SavedModel or checkpoint they go to
    one layer named and classed ``"(metrics)"`` (``(metrics)/0/total``,
    non-trainable). :func:`weightlab.core.model.auxiliary_layers` names both
    kinds of layer, which views hide unless asked.
GraphDef
    Weight-holding float ``Const`` nodes grouped by name scope
    (``fc1/weights``); a Const named after ops (``model/dense/MatMul/ReadVariableOp/resource``
    in v2 frozen graphs) is named after its consumer (``model/dense/kernel``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import EngineError, FormatError, UnsafeFileError
from ..core.links import check_prefix, check_tree, is_inside
from ..core.model import LayerInfo, ModelFile, TensorInfo
from ..engine.reader import TFReaderProcess
from . import tfsniff
from ._h5io import file_stat, prepare_changes

__all__ = ["CHECKPOINT", "GRAPHDEF", "METRICS_LAYER", "OPTIMIZER_LAYER", "SAVEDMODEL", "evaluation_kind"]

#: Name and class name of the layer holding optimizer state (as in :mod:`weightlab._tf.tfio`, which cannot be imported here).
OPTIMIZER_LAYER = "(optimizer)"
#: Name and class name of the layer holding a tf.keras model's metrics variables (as in :mod:`weightlab._tf.tfio`).
METRICS_LAYER = "(metrics)"


class TFTensorReader:
    """:class:`~weightlab.core.model.TensorReader` over a :class:`TFReaderProcess`.

    Parameters
    ----------
    kind:
        ``"savedmodel"``, ``"checkpoint"`` or ``"graphdef"``.
    location:
        The folder, bundle prefix or file the child reads.
    process:
        The child process service (started on demand).
    """

    def __init__(self, kind: str, location: str, process: TFReaderProcess):
        self.kind = kind
        self.location = location
        self.process = process

    def read(self, info: TensorInfo) -> np.ndarray:
        """Read ``info.key``; an array of ``info.shape`` and ``info.dtype``.

        Raises
        ------
        FormatError
            When the tensor cannot be read, the reader crashed, or the stored
            tensor no longer matches ``info``.
        """
        arr = self.process.read(self.kind, self.location, info.key)
        if arr.shape != info.shape or arr.dtype.name != info.dtype:
            raise FormatError(
                f"tensor {info.key!r} is {arr.shape} {arr.dtype}, expected {info.shape} {info.dtype}",
                self.process.shown,
            )
        return arr

    def close(self) -> None:
        """End the reader process (a later read starts a new one)."""
        self.process.close()


class TFFormat:
    """A format handler with the interface of the :mod:`weightlab.formats` modules.

    Parameters
    ----------
    name, description, extensions:
        As in the formats modules.
    locate:
        ``locate(path) -> str | None``: the location the child reads (folder,
        prefix or file) for what the user picked, or None when ``path`` is not
        of this format. Pure Python; never raises.
    stat_file:
        ``stat_file(location) -> str``: the file whose size and modification
        time must not change between opening and saving.
    shown:
        ``shown(location) -> str``: the path shown as the model's path.
    check:
        ``check(path, location)``: refuses links and special files the format
        must not read (:mod:`weightlab.core.links`); raises
        :class:`~weightlab.core.errors.UnsafeFileError`. ``path`` is what the
        user picked, None when saving.
    """

    def __init__(
        self,
        name: str,
        description: str,
        extensions: tuple[str, ...],
        locate: Callable[[str | os.PathLike[str]], str | None],
        stat_file: Callable[[str], str],
        shown: Callable[[str], str],
        check: Callable[[str | os.PathLike[str] | None, str], None] = lambda path, location: None,
    ):
        self.name = name
        self.description = description
        self.extensions = extensions
        self._locate = locate
        self._stat_file = stat_file
        self._shown = shown
        self._check = check

    def __repr__(self) -> str:
        return f"<TensorFlow format handler {self.name!r}>"

    def sniff(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` is of this format, judged by content (no TensorFlow)."""
        return self._locate(path) is not None

    def locate(self, path: str | os.PathLike[str]) -> str | None:
        """The folder, prefix or file TensorFlow reads for ``path``, or None when not of this format."""
        return self._locate(path)

    def open(self, path: str | os.PathLike[str]) -> ModelFile:
        """Open ``path``: list its tensors in a reader process; values are read on demand.

        Returns
        -------
        ModelFile
            ``format`` is this handler's name; ``path`` the folder, ``.index``
            file or ``.pb`` file; ``attrs`` hold ``location`` (folder, prefix or
            file), ``aliases`` (``{key: [other keys]}``), ``optimizer_layer`` and
            what the format tells (signatures, ``object_based``...).

        Raises
        ------
        FormatError
            When ``path`` is not of this format or cannot be read (names the
            file and the part that failed), or the reader process crashed.
        UnsafeFileError
            When a file of the model is a link leading out of its folder (or to
            a folder), or a special file (see :mod:`weightlab.core.links`).
        """
        location = self._locate(path)
        if location is None:
            raise FormatError(f"not a {self.description}", path)
        self._check(path, location)
        shown = self._shown(location)
        try:
            stat = file_stat(self._stat_file(location))
        except OSError as exc:
            raise FormatError(f"cannot open: {exc.strerror or exc}", shown) from None
        process = TFReaderProcess(shown)
        try:
            listing = process.list(self.name, location)
            layers = [
                LayerInfo(
                    layer["name"],
                    layer["class_name"],
                    [TensorInfo(**t) for t in layer["tensors"]],
                )
                for layer in listing["layers"]
            ]
            reader = TFTensorReader(self.name, location, process)
            attrs: dict[str, Any] = dict(listing["attrs"])
            attrs.update(
                location=location,
                aliases=listing["aliases"],
                optimizer_layer=OPTIMIZER_LAYER,
                _stat=stat,
                _reader=reader,
            )
            return ModelFile(shown, self.name, layers, reader, attrs=attrs)
        except BaseException:
            process.close()
            raise

    def save(self, model: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
        """Write ``model`` with ``changed`` tensors replaced to ``out``, in this format.

        Called through :func:`weightlab.formats.save_model`, which first refuses
        a destination whose extension belongs to another format (``x.h5``,
        ``x.keras``...; see :func:`weightlab.formats.check_destination`).
        A SavedModel goes to the folder ``out``; a checkpoint to the prefix ``out``
        (a folder or a name ending in ``/`` gets the source's base name; a
        trailing ``.index`` is dropped); a GraphDef to the file ``out``.
        Untouched tensors are bit-identical; everything else is copied.

        Raises
        ------
        WeightLabError
            For an unknown tensor name.
        FormatError
            For a wrong shape or dtype, a source changed on disk since it was
            opened, or a destination that cannot be written.
        UnsafeFileError
            When a file of the source is (now) a link leading out of its folder,
            or a special file.
        """
        updates = prepare_changes(model, changed)
        location = model.attrs["location"]
        self._check(None, location)
        expected = model.attrs.get("_stat")
        try:
            now = file_stat(self._stat_file(location))
        except OSError:
            raise FormatError("cannot save: the opened file no longer exists", model.path) from None
        if expected is not None and now != tuple(expected):
            raise FormatError("cannot save: the file was changed on disk since it was opened", model.path)
        aliases: dict[str, list[str]] = model.attrs.get("aliases", {})
        by_key = dict(updates)
        for key, arr in updates.items():
            for other in aliases.get(key, []):
                by_key[other] = arr
        reader: TFTensorReader = model.attrs["_reader"]
        reader.process.save(self.name, location, by_key, _output(self.name, location, out))


def _output(kind: str, location: str, out: str | os.PathLike[str]) -> str:
    s = os.fspath(out)
    if kind != "checkpoint":
        return s
    if s.endswith(".index"):
        return s[: -len(".index")]
    if s.endswith(os.sep) or os.path.isdir(s):
        return os.path.join(s, os.path.basename(location) or "ckpt")
    return s


def _saved_model_location(path: str | os.PathLike[str]) -> str | None:
    folder = tfsniff.saved_model_folder(path)
    return os.fspath(folder) if folder is not None else None


def _check_saved_model(path: str | os.PathLike[str] | None, location: str) -> None:
    check_tree(location)


def _picked_folder(path: str | os.PathLike[str] | None) -> Path | None:
    """The folder the user picked for a checkpoint (the folder itself, or via its state file)."""
    if path is None:
        return None
    p = Path(path)
    try:
        if p.is_dir():
            return p
        if p.name == "checkpoint" and p.is_file():
            return p.parent
    except OSError:
        pass
    return None


def _checkpoint_location(path: str | os.PathLike[str]) -> str | None:
    """The prefix for ``path``; in a picked folder, the folder's own copy of a prefix named outside it."""
    prefix = tfsniff.checkpoint_prefix(path)
    folder = _picked_folder(path)
    if prefix is not None and folder is not None and not is_inside(os.path.dirname(prefix) or ".", folder):
        own = os.path.join(folder, os.path.basename(prefix))
        if tfsniff.is_bundle_index(own + ".index"):
            return own
    return prefix


def _check_checkpoint(path: str | os.PathLike[str] | None, location: str) -> None:
    folder = _picked_folder(path)
    if folder is not None and not is_inside(os.path.dirname(location) or ".", folder):
        raise UnsafeFileError(
            f"the checkpoint state file names {location!r}, outside the opened folder; "
            "open that checkpoint's own files instead",
            folder / "checkpoint",
        )
    check_prefix(location)


def _graphdef_location(path: str | os.PathLike[str]) -> str | None:
    p = Path(path)
    try:
        ok = (
            p.is_file()
            and p.name not in ("saved_model.pb", "fingerprint.pb")
            and tfsniff.looks_like_graphdef(p)
        )
    except OSError:
        return None
    return os.fspath(p) if ok else None


def _saved_model_stat(location: str) -> str:
    pb = os.path.join(location, "saved_model.pb")
    return pb if os.path.exists(pb) else os.path.join(location, "saved_model.pbtxt")


SAVEDMODEL = TFFormat(
    "savedmodel",
    "TensorFlow SavedModel folder",
    (),
    _saved_model_location,
    _saved_model_stat,
    lambda loc: loc,
    _check_saved_model,
)
CHECKPOINT = TFFormat(
    "checkpoint",
    "TensorFlow checkpoint",
    (".index",),
    _checkpoint_location,
    lambda loc: loc + ".index",
    lambda loc: loc + ".index",
    _check_checkpoint,
)
GRAPHDEF = TFFormat(
    "graphdef",
    "TensorFlow frozen GraphDef (.pb)",
    (".pb",),
    _graphdef_location,
    lambda loc: loc,
    lambda loc: loc,
)


#: Options of :func:`evaluation_kind` each format accepts.
_EVAL_OPTIONS = {
    "keras": set(),
    "savedmodel": {"signature"},
    "checkpoint": {"architecture"},
    "graphdef": {"input"},
}


def evaluation_kind(
    path: str | os.PathLike[str],
    *,
    architecture: Any = None,
    signature: str | None = None,
    input: str | None = None,  # noqa: A002 - the CLI's --input
) -> tuple[str, str]:
    """How ``path`` is evaluated: ``(kind, location)``, checking the options given for it (no TensorFlow).

    ``kind`` is ``"savedmodel"``, ``"checkpoint"``, ``"graphdef"`` (judged by
    content, as for opening) or ``"keras"`` (anything else: a ``.keras`` or
    ``.h5`` file, checked when it is built); ``location`` is what TensorFlow
    reads (folder, prefix, file).

    Raises
    ------
    EngineError
        When the path does not exist, an option does not apply to the format
        (``--signature`` for a checkpoint...), or a checkpoint has no
        architecture.
    UnsafeFileError
        When a SavedModel or checkpoint holds a link leading out of its folder
        (or to a folder), or a special file.
    """
    p = Path(path)
    kind, location = "keras", os.fspath(p)
    if not _is_keras_file(p):
        for handler in (SAVEDMODEL, CHECKPOINT, GRAPHDEF):
            found = handler.locate(p)
            if found is not None:
                handler._check(p, found)  # evaluation reads the files too: never through an outward link
                kind, location = handler.name, found
                break
    if kind == "keras" and not p.exists():
        raise EngineError("model file does not exist", p)
    given = {"architecture": architecture, "signature": signature, "input": input}
    wrong = [k for k, v in given.items() if v is not None and k not in _EVAL_OPTIONS[kind]]
    if wrong:
        raise EngineError(f"--{wrong[0]} does not apply to a {kind} model", p)
    if kind == "checkpoint" and architecture is None:
        raise EngineError("a checkpoint holds no architecture: pass --architecture MODEL.keras", p)
    return kind, location


def _is_keras_file(path: Path) -> bool:
    """A zip (``.keras``) or HDF5 (``.h5``) file, judged by content."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head == b"\x89HDF\r\n\x1a\n" or zipfile.is_zipfile(path)

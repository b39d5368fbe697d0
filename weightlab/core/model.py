"""The weights tree of an opened model file, read as data.

A :class:`ModelFile` lists the model's layers in the model's own order and the
tensors of each layer, under canonical names ``layer/weight`` as Keras names
them (``conv2d/kernel``, ``batch_normalization/moving_mean``). Tensor values are
read lazily, on first use, through the format's :class:`TensorReader`; opening a
file never builds or runs the model.

Shapes follow Keras: a Dense kernel is ``(in, out)``, a Conv2D kernel is
``(kh, kw, in, out)``; a *neuron* of a layer is an index on its kernel's last
axis.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import WeightLabError


@dataclass(frozen=True)
class TensorInfo:
    """Metadata of one stored tensor (no values).

    Attributes
    ----------
    name:
        Canonical name ``layer/weight`` (``dense/kernel``).
    layer:
        Name of the owning layer (``dense``).
    weight:
        Name of the weight within the layer (``kernel``).
    key:
        The tensor's own path inside the file, used for reading, saving back
        and display (``model_weights/dense/dense/kernel:0``,
        ``layers/dense/vars/0``).
    shape:
        Shape in Keras axis order.
    dtype:
        NumPy dtype name (``"float32"``).
    trainable:
        False for non-trainable state such as BatchNorm moving statistics.
    """

    name: str
    layer: str
    weight: str
    key: str
    shape: tuple[int, ...]
    dtype: str
    trainable: bool = True

    @property
    def size(self) -> int:
        """Number of elements (parameters)."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the values in bytes."""
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class LayerInfo:
    """One layer of the model, in the model's own order.

    Attributes
    ----------
    name:
        Layer name as Keras names it (``conv2d_1``).
    class_name:
        Keras class name (``Conv2D``), or ``""`` when the file does not say.
    tensors:
        The layer's tensors in the layer's own weight order.
    """

    name: str
    class_name: str
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def param_count(self) -> int:
        """Total number of parameters (elements) of the layer's tensors."""
        return sum(t.size for t in self.tensors)

    def tensor(self, weight: str) -> TensorInfo | None:
        """Return the tensor named ``weight`` (``"kernel"``), or None."""
        for t in self.tensors:
            if t.weight == weight:
                return t
        return None


class TensorReader(Protocol):
    """Reads tensor values from an opened file; supplied by a format module."""

    def read(self, info: TensorInfo) -> np.ndarray:
        """Return the values of ``info`` as a new array of ``info.shape``/``info.dtype``.

        Raises
        ------
        FormatError
            When the data cannot be read; the message names the file and key.
        """
        ...

    def close(self) -> None:
        """Release file handles."""
        ...


class ModelFile:
    """An opened model file: its layers and tensors, values read on demand.

    Parameters
    ----------
    path:
        The opened file.
    format:
        Format name as registered in :mod:`weightlab.formats` (``"keras"``,
        ``"h5"``, ``"weights.h5"``).
    layers:
        Layers in the model's own order (layers without weights included).
    reader:
        Reads tensor values.
    config:
        The model's architecture as Keras serialises it, when the file holds it.
    attrs:
        Format-specific facts for display and saving (Keras version, backend...).
    source:
        The live object an in-memory model was read from (a Keras model, see
        :func:`weightlab._tf.headless.session_from_model`); opaque here, None
        for files.

    Attributes
    ----------
    source:
        As the parameter.

    Raises
    ------
    FormatError
        When two tensors share a canonical name.

    Notes
    -----
    An in-memory model (``format == "memory"``, :attr:`in_memory`) has no
    file: its :attr:`path` is a display name (``"mnist (in memory)"``), never
    read or written, and :attr:`exec_path` is None until a file another
    process can build the model from is written for it
    (:func:`weightlab._tf.headless.materialise`).
    """

    def __init__(
        self,
        path: str | Path,
        format: str,  # noqa: A002 - the public attribute ModelFile.format
        layers: list[LayerInfo],
        reader: TensorReader,
        config: dict[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        source: Any = None,
    ):
        self.path = Path(path)
        self.format = format
        self.source = source
        self._exec_path: Path | None = None
        self._closers: list[Callable[[], None]] = []
        self.layers = layers
        self.config = config
        self.attrs = dict(attrs or {})
        self._reader = reader
        self._lock = threading.Lock()
        self.tensors: dict[str, TensorInfo] = {}
        for layer in layers:
            for t in layer.tensors:
                if t.name in self.tensors:
                    from .errors import FormatError

                    raise FormatError(f"two tensors are both named {t.name!r}", path)
                self.tensors[t.name] = t
        self._layers_by_name = {layer.name: layer for layer in layers}

    # -- lookup ---------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors.values())

    def tensor(self, name: str) -> TensorInfo:
        """Return the tensor with canonical ``name``.

        Raises
        ------
        WeightLabError
            When there is no such tensor; the message lists close names.
        """
        try:
            return self.tensors[name]
        except KeyError:
            raise WeightLabError(
                f"no tensor named {name!r} in this model{_suggest(name, self.tensors)}",
                self.path,
            ) from None

    def layer(self, name: str) -> LayerInfo:
        """Return the layer called ``name``.

        Raises
        ------
        WeightLabError
            When there is no such layer.
        """
        try:
            return self._layers_by_name[name]
        except KeyError:
            raise WeightLabError(
                f"no layer named {name!r} in this model{_suggest(name, self._layers_by_name)}",
                self.path,
            ) from None

    def has_layer(self, name: str) -> bool:
        """True when the model has a layer called ``name``."""
        return name in self._layers_by_name

    @property
    def param_count(self) -> int:
        """Total number of stored parameters."""
        return sum(t.size for t in self.tensors.values())

    # -- values ---------------------------------------------------------------
    def read(self, name: str) -> np.ndarray:
        """Read the stored values of tensor ``name`` from the file (a new array)."""
        info = self.tensor(name)
        with self._lock:
            arr = self._reader.read(info)
        return arr

    # -- where the model can be executed -------------------------------------------
    @property
    def in_memory(self) -> bool:
        """True when the model has no file (``format == "memory"``; :attr:`path` is only a display name)."""
        return self.format == "memory"

    @property
    def exec_path(self) -> Path | None:
        """A file another process can build the executable model from.

        :attr:`path` for files; for an in-memory model the file written for it
        by :func:`weightlab._tf.headless.materialise` (the model with its
        original, unedited values), None until then and again after
        :meth:`close`.
        """
        return self._exec_path if self.in_memory else self.path

    @exec_path.setter
    def exec_path(self, value: str | os.PathLike[str] | None) -> None:
        if not self.in_memory:
            raise WeightLabError("the executable file of a model file is the file itself", self.path)
        self._exec_path = None if value is None else Path(value)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once when :meth:`close` is called (to remove a materialised file)."""
        self._closers.append(callback)

    def close(self) -> None:
        """Close the underlying file (and run the callbacks given to :meth:`on_close`)."""
        closers, self._closers = self._closers, []
        try:
            self._reader.close()
        finally:
            if self.in_memory:
                self._exec_path = None
            for callback in closers:
                callback()

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, Any],
        path: str | Path = "<in-memory>",
        *,
        format: str = "memory",  # noqa: A002 - the public attribute ModelFile.format
        classes: Mapping[str, str] | None = None,
        non_trainable: Iterable[str] = (),
        config: dict[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        source: Any = None,
    ) -> ModelFile:
        """A model held in memory, built from named NumPy arrays.

        Layers are grouped by the part of each name before its last ``/``
        (``"block1/conv/kernel"`` belongs to layer ``block1/conv``), in the
        order their first tensor appears in ``arrays``; a name without ``/``
        is a layer of its own with one weight of the same name. The arrays are
        copied once and kept read-only, so changing the caller's arrays later
        does not change the model. A session over it edits and evaluates like
        any other, but has no writer: :meth:`EditSession.save` raises
        :class:`WeightLabError` (export :meth:`EditSession.edited_arrays`
        instead).

        Parameters
        ----------
        arrays:
            ``{"layer/weight": array_like}``; each value becomes an array of
            numeric or boolean dtype, any shape.
        path:
            A name shown as the model's file (nothing is read or written there).
        format:
            Format name for display (``"memory"``).
        classes:
            ``{layer: Keras class name}`` (``{"dense": "Dense"}``); layers not
            named get ``""``. Neuron edits that look at the architecture (a
            ``DepthwiseConv2D`` kernel, BatchNorm silencing) use them.
        non_trainable:
            Canonical names of non-trainable tensors (BatchNorm moving statistics).
        config, attrs, source:
            As for :class:`ModelFile`.

        Returns
        -------
        ModelFile
            Reading a tensor returns a new array of its shape and dtype.

        Raises
        ------
        FormatError
            When a name is empty or ends with ``/``, a value is not numeric, or
            ``non_trainable`` names a tensor that ``arrays`` does not have.
        """
        from .errors import FormatError

        values: dict[str, np.ndarray] = {}
        layers: dict[str, list[TensorInfo]] = {}
        frozen_names = set(non_trainable)
        unknown = frozen_names - set(arrays)
        if unknown:
            raise FormatError(f"non_trainable names unknown tensor(s) {', '.join(sorted(unknown))}", path)
        for name, value in arrays.items():
            if not isinstance(name, str) or not name or name.endswith("/"):
                raise FormatError(f"tensor names must be 'layer/weight'; got {name!r}", path)
            arr = np.array(value, copy=True)
            if arr.dtype.kind not in "biufc":
                raise FormatError(f"tensor {name!r} has non-numeric dtype {arr.dtype}", path)
            arr.flags.writeable = False
            values[name] = arr
            layer, _, weight = name.rpartition("/")
            layer = layer or weight
            layers.setdefault(layer, []).append(
                TensorInfo(name, layer, weight, name, arr.shape, arr.dtype.name, name not in frozen_names)
            )
        kinds = dict(classes or {})
        return cls(
            path,
            format,
            [LayerInfo(layer, kinds.get(layer, ""), tensors) for layer, tensors in layers.items()],
            ArrayReader(values),
            config=config,
            attrs=attrs,
            source=source,
        )

    def __repr__(self) -> str:
        return (
            f"ModelFile({str(self.path)!r}, format={self.format!r}, "
            f"layers={len(self.layers)}, tensors={len(self.tensors)})"
        )


class ArrayReader:
    """A :class:`TensorReader` over arrays held in memory (see :meth:`ModelFile.from_arrays`).

    Parameters
    ----------
    values:
        ``{canonical name: array}``; the arrays are used as given (not copied).

    Attributes
    ----------
    closed:
        True once :meth:`close` was called.
    """

    def __init__(self, values: Mapping[str, np.ndarray]):
        self._values = dict(values)
        self.closed = False

    def read(self, info: TensorInfo) -> np.ndarray:
        """Return a new, writable copy of the values of ``info``."""
        return self._values[info.name].copy()

    def close(self) -> None:
        """Mark the reader closed (memory is released with the model)."""
        self.closed = True


#: Class names of the layers that hold no model weights: checkpoints' optimizer
#: state and SavedModels' metrics variables (``keras_api/metrics/...``).
AUX_CLASSES = ("(optimizer)", "(metrics)")


def auxiliary_layers(model: ModelFile) -> set[str]:
    """Names of the layers of ``model`` that hold optimizer state or metrics variables.

    These layers are not part of the network: the window's tree and
    ``weightlab inspect`` hide them unless asked, and the window's "Whole
    model" edit target leaves them out (a recipe's glob still matches them).

    Parameters
    ----------
    model:
        An opened model.

    Returns
    -------
    set of str
        Names of the layers whose ``class_name`` is in :data:`AUX_CLASSES`,
        plus the layer named by ``model.attrs["optimizer_layer"]`` when the
        model has it; empty for a model without such layers.
    """
    names = {layer.name for layer in model.layers if layer.class_name in AUX_CLASSES}
    extra = model.attrs.get("optimizer_layer")
    if isinstance(extra, str) and model.has_layer(extra):
        names.add(extra)
    return names


def close_names(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """The names of ``names`` closest to ``name``, closest first (for "did you mean").

    Ranked in tiers, then by :class:`difflib.SequenceMatcher` ratio (ignoring
    case) within a tier, the model's order breaking ties:

    1. the same name but for case, or for a ``:0`` suffix (``Dense_1/Kernel``,
       ``dense_1/kernel:0`` -> ``dense_1/kernel``);
    2. the same name but for a TensorFlow scope suffix on a part
       (``conv2d_1`` <-> ``conv2d_1_1``, as Keras 2.0-2.2 files store names);
    3. the tensors of a layer whose name was given (``dense`` ->
       ``dense/kernel``, ``dense/bias``);
    4. any other name whose ratio is at least 0.6 (``dense/kernal`` -> ``dense/kernel``
       before ``dense_1/kernel``).

    Parameters
    ----------
    name:
        The unknown name as given.
    names:
        Known names (tensors and/or layers), in the model's order; repeats ignored.
    n:
        At most this many are returned.

    Returns
    -------
    list of str
        Up to ``n`` names of ``names``, best first; empty when none is close.
    """
    import difflib
    import re

    def norm(text: str) -> str:
        return text.lower().removesuffix(":0")

    def unscoped(text: str) -> str:
        return "/".join(re.sub(r"(_\d+)_\d+$", r"\1", part) for part in norm(text).split("/"))

    target = norm(name)
    matcher = difflib.SequenceMatcher(b=target, autojunk=False)
    ranked: list[tuple[int, float, int, str]] = []
    for order, known in enumerate(dict.fromkeys(names)):
        k = norm(known)
        matcher.set_seq1(k)
        ratio = matcher.ratio()
        if k == target:
            tier = 0
        elif unscoped(k) == unscoped(target) or unscoped(k) == target or k == unscoped(target):
            tier = 1
        elif k.startswith(target + "/"):
            tier = 2
        elif ratio >= 0.6:
            tier = 3
        else:
            continue
        ranked.append((tier, -ratio if tier == 3 else 0.0, order, known))
    return [known for *_, known in sorted(ranked)[:n]]


def _suggest(name: str, names: Iterable[str]) -> str:
    close = close_names(name, names)
    if close:
        return "; did you mean " + ", ".join(repr(c) for c in close) + "?"
    return ""

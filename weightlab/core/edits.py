"""Edits as data: small serialisable commands ``(op, target, parameters)``.

Each edit computes new arrays for the tensors it touches from the current ones
and never mutates its inputs, so a session can keep the old arrays for undo,
and replaying the same edits on the same original file gives the same weights
bit for bit. Arithmetic stays in the tensor's own dtype (parameters are cast to
it first), as Keras would compute on the stored variable; random edits draw
from NumPy's PCG64 generator seeded by ``(seed, crc32(tensor name))``, so a
tensor's draw does not depend on which other tensors an edit targets.

The full list of ops and parameters is in ``docs/recipes.md``.

Targets
-------
Value edits (``clip``, ``scale``, ``prune_magnitude``...) take a *tensor
selection*: a canonical tensor name (``conv2d/kernel``), a layer name (all
its tensors), a glob over canonical names (``"*/kernel"``, ``"conv*/bias"``,
``"*"`` for the whole model) or a list of any of these. Neuron edits
(``zero_neurons``, ``scale_neurons``, ``prune_neurons``) take a layer name: the
edit acts on the layer's kernel along one axis and, for output neurons, on the
matching ``bias`` entries.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import numbers
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

import numpy as np

from .errors import RecipeError
from .model import ModelFile, _suggest

Target = str | tuple[str, ...]


class ArraySource(Protocol):
    """Gives the current and stored values of a tensor (a session)."""

    def array(self, name: str) -> np.ndarray: ...

    def original(self, name: str) -> np.ndarray: ...


#: Registry ``op name -> Edit subclass``.
EDIT_TYPES: dict[str, type[Edit]] = {}


def _register(cls: type[Edit]) -> type[Edit]:
    EDIT_TYPES[cls.op] = cls
    return cls


# -- target resolution --------------------------------------------------------

_GLOB_CHARS = set("*?[")


def resolve_tensors(target: Target, model: ModelFile, op: str = "edit") -> list[str]:
    """Canonical names selected by a value-edit target, in model order.

    Parameters
    ----------
    target:
        A canonical tensor name, a layer name, a glob over canonical names, or
        a tuple/list of these.

    Raises
    ------
    RecipeError
        When a part of the target selects nothing; the message names it.
    """
    parts = [target] if isinstance(target, str) else list(target)
    chosen: set[str] = set()
    for part in parts:
        if part in model.tensors:
            chosen.add(part)
        elif model.has_layer(part) and model.layer(part).tensors:
            chosen.update(t.name for t in model.layer(part).tensors)
        elif _GLOB_CHARS & set(part):
            hits = fnmatch.filter(model.tensors, part)
            if not hits:
                raise RecipeError(f"{op}: pattern {part!r} matches no tensor")
            chosen.update(hits)
        else:
            names = list(model.tensors) + [layer.name for layer in model.layers]
            raise RecipeError(f"{op}: no tensor or layer named {part!r}{_suggest(part, names)}")
    return [n for n in model.tensors if n in chosen]


def neuron_tensors(target: Target, model: ModelFile, op: str = "edit") -> list[str]:
    """Tensors touched by an output-neuron edit on ``target``.

    A layer name gives its ``kernel`` (or its only tensor) plus ``bias`` when
    present; a canonical tensor name gives that tensor alone.

    Raises
    ------
    RecipeError
        When ``target`` names neither a layer with a kernel nor a tensor.
    """
    if not isinstance(target, str):
        raise RecipeError(f"{op}: a neuron edit targets one layer; got {list(target)!r}")
    if target in model.tensors:
        return [target]
    if not model.has_layer(target):
        names = [layer.name for layer in model.layers] + list(model.tensors)
        raise RecipeError(f"{op}: no layer or tensor named {target!r}{_suggest(target, names)}")
    layer = model.layer(target)
    kernel = layer.tensor("kernel") or layer.tensor("embeddings")
    if kernel is None and len(layer.tensors) == 1:
        kernel = layer.tensors[0]
    if kernel is None:
        raise RecipeError(
            f"{op}: layer {target!r} ({layer.class_name or 'unknown class'}) has no kernel; "
            f"its tensors are {[t.weight for t in layer.tensors]}"
        )
    names = [kernel.name]
    bias = layer.tensor("bias")
    if bias is not None and bias.name != kernel.name:
        names.append(bias.name)
    return names


def is_depthwise(model: ModelFile, kernel: str) -> bool:
    """True when ``kernel`` is a depthwise kernel ``(..., in, multiplier)``.

    Its output channel ``k * multiplier + q`` is ``kernel[..., k, q]`` (the
    order of ``tf.nn.depthwise_conv2d``), so output neurons span the last two
    axes. Recognised by the layer class, or by a bias of ``in * multiplier``
    entries when the class is not stored.
    """
    info = model.tensor(kernel)
    if len(info.shape) < 3 or info.weight != "kernel":
        return False
    layer = model.layer(info.layer)
    if layer.class_name.startswith("DepthwiseConv"):
        return True
    bias = layer.tensor("bias")
    return (
        not layer.class_name
        and bias is not None
        and bias.shape[-1] == info.shape[-1] * info.shape[-2] != info.shape[-1]
    )


def output_channels(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """View of ``kernel`` whose last axis is the output neurons (merges ``(in, mult)`` when depthwise)."""
    return kernel.reshape(*kernel.shape[:-2], -1) if depthwise else kernel


def neuron_count(target: Target, model: ModelFile, axis: str = "out") -> int:
    """Number of neurons of a neuron-edit target along ``axis``.

    ``"out"``: output neurons (the kernel's last axis; ``in * multiplier`` for
    a depthwise kernel); ``"in"``: input units (the kernel's axis ``-2``).
    """
    kernel = neuron_tensors(target, model)[0]
    shape = model.tensor(kernel).shape
    if not shape:
        return 1
    if axis == "in":
        return shape[-2] if len(shape) >= 2 else 0
    return shape[-1] * shape[-2] if is_depthwise(model, kernel) else shape[-1]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _cast(value: float, like: np.ndarray) -> np.generic:
    return like.dtype.type(value)


# -- large tensors: masks and magnitudes in blocks ---------------------------------

#: Elements per block of the edits that need temporaries (masks, magnitudes):
#: those (a few hundred kilobytes) stay in the CPU cache, and none the size of
#: the tensor is made. Every loop computes each element with the same ufuncs as
#: the whole-array expression it replaces, so the bits do not depend on the
#: block size. (Clip, scale and add are one ufunc call each, with no temporary.)
_BLOCK = 1 << 16


def _blocks(a: np.ndarray, out: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(block of a, same block of out)`` pairs, flat, in C order; ``out`` is C-contiguous, of a's size."""
    src, dst = a.reshape(-1), out.reshape(-1)  # a view unless ``a`` is not C-contiguous (then a copy)
    for i in range(0, src.size, _BLOCK):
        yield src[i : i + _BLOCK], dst[i : i + _BLOCK]


def _scratch(a: np.ndarray, dtype: Any = bool) -> np.ndarray:
    """A flat buffer for one block of ``a``."""
    return np.empty(min(_BLOCK, a.size), dtype)


def _bits_dtype(a: np.ndarray) -> np.dtype:
    """The unsigned integer dtype of ``a``'s item size (1, 2, 4 or 8 bytes), else ``np.void``.

    Every dtype a format reads has one; wider ones (``longdouble``,
    ``complex128``, possible in an in-memory model) get ``np.void``: no bit trick.
    """
    size = a.dtype.itemsize
    return np.dtype(f"u{size}") if size in (1, 2, 4, 8) else np.dtype(np.void)


def _zero_masked(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, keep: np.ndarray) -> None:
    """``dst[...] = np.where(mask, 0, src)`` bit for bit, without branches.

    Zero is all-zero bits in every dtype a tensor can have, so the result is
    ``src``'s bits AND ``mask - 1`` (all ones where ``mask`` is false); NaN
    payloads and ``-0.0`` pass untouched. ``keep`` is scratch of
    ``_bits_dtype(src)``; all four are flat blocks of one size (``src`` and
    ``dst`` contiguous).
    """
    if keep.dtype.kind == "V":  # no unsigned integer of this size: a masked copy
        np.copyto(dst, src)
        np.copyto(dst, dst.dtype.type(0), where=mask)
        return
    np.copyto(keep, mask)
    np.subtract(keep, 1, out=keep)
    np.bitwise_and(src.view(keep.dtype), keep, out=dst.view(keep.dtype))


def _zero_where_block(a: np.ndarray, make_mask: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
    """``np.where(mask, 0, a)`` as a new C-contiguous array, block by block.

    ``make_mask(block, out)`` writes the mask of a flat block of ``a`` into ``out``.
    """
    out = np.empty(a.shape, a.dtype)
    masks, keeps = _scratch(a), _scratch(a, _bits_dtype(a))
    for src, dst in _blocks(a, out):
        mask = masks[: src.size]
        make_mask(src, mask)
        _zero_masked(src, dst, mask, keeps[: src.size])
    return out


# -- the base class --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Edit:
    """Base class of all edits.

    Subclasses set ``op`` and implement :meth:`compute` (per tensor) or
    override :meth:`apply` (edits that look at several tensors at once).
    """

    op: ClassVar[str] = ""
    target: Target

    def __post_init__(self) -> None:
        if isinstance(self.target, list):
            object.__setattr__(self, "target", tuple(self.target))
        self._validate()

    def _validate(self) -> None:
        """Check parameter values; raise ValueError with a clear message."""

    def targets(self, model: ModelFile) -> list[str]:
        """Canonical names of the tensors this edit may change.

        Raises
        ------
        RecipeError
            When the target does not exist or does not fit the op.
        """
        return resolve_tensors(self.target, model, self.op)

    def compute(self, name: str, current: np.ndarray, source: ArraySource) -> np.ndarray:
        """Return the new values of tensor ``name`` (a new array; ``current`` untouched)."""
        raise NotImplementedError

    def apply(self, model: ModelFile, source: ArraySource) -> dict[str, np.ndarray]:
        """Compute the new arrays of every tensor this edit changes.

        Returns
        -------
        ``{canonical name: new array}``, same shape and dtype as before.
        """
        return {name: self.compute(name, source.array(name), source) for name in self.targets(model)}

    @property
    def target_text(self) -> str:
        """The target for display: ``conv2d/kernel`` or ``a, b, c``."""
        return self.target if isinstance(self.target, str) else ", ".join(self.target)

    def describe(self) -> str:
        """One line for a history list."""
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items() if v is not None)
        return f"{self.op} {self.target_text}" + (f" ({params})" if params else "")

    def params(self) -> dict[str, Any]:
        """The edit's parameters (everything but ``op`` and ``target``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "target"}

    def to_dict(self) -> dict[str, Any]:
        """Serialise as a recipe step: ``{"op": ..., "target": ..., **params}``.

        Parameters left at their default are left out, so recipes stay short;
        parsing fills them in again.
        """
        d: dict[str, Any] = {"op": self.op, "target": _jsonable(self.target)}
        defaults = {f.name: f.default for f in fields(self)}
        for k, v in self.params().items():
            if v is not None and not (k in defaults and defaults[k] is not dataclasses.MISSING and v == defaults[k]):
                d[k] = _jsonable(v)
        return d


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple):
        shown = ", ".join(str(x) for x in v[:8])
        return f"[{shown}{', ...' if len(v) > 8 else ''}]"
    return str(v)


# -- parsing recipe steps ----------------------------------------------------------

#: Longest tensor/layer name or glob accepted in a recipe's target.
MAX_NAME_LENGTH = 4096

#: How each parameter name is validated in recipes: kind, plus a range/choices.
_PARAM_KINDS: dict[str, tuple[str, Any]] = {
    "target": ("target", None),
    "min": ("number", None),
    "max": ("number", None),
    "factor": ("number", None),
    "value": ("number", None),
    "lower": ("number", (0.0, 100.0)),
    "upper": ("number", (0.0, 100.0)),
    "threshold": ("number", (0.0, math.inf)),
    "sparsity": ("number", (0.0, 1.0)),
    "fraction": ("number", (0.0, 1.0)),
    "std": ("number", (0.0, math.inf)),
    "mean": ("number", None),
    "stddev": ("number", (0.0, math.inf)),
    "minval": ("number", None),
    "maxval": ("number", None),
    "count": ("int", (0, math.inf)),
    "seed": ("int", (0, 2**63 - 1)),
    "neurons": ("indices", None),
    "index": ("index", None),
    "scope": ("choice", ("tensor", "global")),
    "norm": ("choice", ("l1", "l2")),
    "axis": ("choice", ("out", "in")),
    "batchnorm": ("bool", None),
    "initializer": ("choice", None),  # choices checked by Reinit itself
    "mode": ("choice", None),  # reinit's variance_scaling: checked by Reinit
    "distribution": ("choice", None),
    "scale": ("number", None),  # > 0, checked by Reinit
    "gain": ("number", None),
}


def edit_from_dict(d: Mapping[str, Any], where: str = "edit") -> Edit:
    """Build an edit from a recipe step.

    Parameters
    ----------
    d:
        ``{"op": ..., "target": ..., **params}``.
    where:
        How to name this step in an error (``"step 3"``).

    Raises
    ------
    RecipeError
        Unknown op, missing or unknown parameter, or a parameter of the wrong
        type or range; the message names the step and what was received.
    """
    if not isinstance(d, Mapping):
        raise RecipeError(f"{where}: expected an object; got {type(d).__name__}")
    op = d.get("op")
    if op not in EDIT_TYPES:
        raise RecipeError(f"{where}: unknown op {op!r}; known ops: {', '.join(sorted(EDIT_TYPES))}")
    cls = EDIT_TYPES[op]
    allowed = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(allowed) - {"op"}
    if unknown:
        raise RecipeError(
            f"{where} ({op}): unknown parameter(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(allowed))}"
        )
    missing = [
        n
        for n, f in allowed.items()
        if n not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"{where} ({op}): missing parameter(s) {', '.join(sorted(missing))}")
    kwargs = {name: _coerce(op, name, value, where) for name, value in d.items() if name != "op"}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where} ({op}): {e}") from None


def _coerce(op: str, name: str, value: Any, where: str) -> Any:
    kind, spec = _PARAM_KINDS.get(name, ("any", None))
    if value is None:
        return None

    def bad(expected: str) -> RecipeError:
        return RecipeError(f"{where} ({op}): parameter {name!r} must be {expected}; got {_short_repr(value)}")

    if kind == "target":
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list) and any(isinstance(v, str) and len(v) > MAX_NAME_LENGTH for v in names):
            raise bad(f"names of at most {MAX_NAME_LENGTH} characters")
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        raise bad("a tensor/layer name, a glob, or a non-empty list of them")
    if kind in ("number", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number" if kind == "number" else "an integer")
        if kind == "int" and not isinstance(value, int):
            raise bad("an integer")
        try:
            finite = math.isfinite(float(value))
        except OverflowError:  # an integer beyond float range (~1e308)
            finite = False
        if not finite:
            raise bad("a finite number")
        if spec is not None and not spec[0] <= value <= spec[1]:
            raise bad(f"in [{spec[0]}, {spec[1]}]")
        return float(value) if kind == "number" else int(value)
    if kind in ("indices", "index"):
        if not isinstance(value, list) or (kind == "indices" and not value):
            raise bad("a non-empty list of non-negative integers")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise bad("a list of non-negative integers")
        return tuple(value)
    if kind == "choice":
        if not isinstance(value, str) or (spec is not None and value not in spec):
            raise bad(f"one of {', '.join(spec)}" if spec else "a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    return value


def _short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (huge integers have no repr at all)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_range(lo: float, hi: float, what: str = "min must be <= max") -> None:
    if lo > hi:
        raise ValueError(f"{what}; got {lo} > {hi}")


# -- value edits, per tensor --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _RangeEdit(Edit):
    """An edit over the value range ``[min, max]`` (``min <= max``)."""

    min: float
    max: float
    _verb: ClassVar[str] = ""

    def _validate(self) -> None:
        _check_range(self.min, self.max)

    def describe(self) -> str:
        return f"{self._verb.format(target=self.target_text)} [{self.min:.6g}, {self.max:.6g}]"


@_register
@dataclass(frozen=True, kw_only=True)
class Clip(Edit):
    """Clip values to ``[min, max]`` (``np.clip``), or to ``[-threshold, threshold]``.

    Give either ``min`` and ``max`` (``min <= max``) or ``threshold`` (``>= 0``;
    the same as ``min = -threshold, max = threshold``): a symmetric clip has
    one free number, so a sweep can vary it.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    threshold : float, optional
        Symmetric bound ``t >= 0``, in the tensor's units: the same as
        ``min=-t, max=t``.
    min : float, optional
        Lower bound (inclusive), in the tensor's units.
    max : float, optional
        Upper bound (inclusive), ``>= min``.

    Raises
    ------
    ValueError
        When built with parameters out of range (both ``threshold`` and ``min``/``max``, ``min > max``, ``threshold < 0``).
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "clip"
    threshold: float | None = None
    min: float | None = None
    max: float | None = None

    def _validate(self) -> None:
        if self.threshold is not None:
            if self.min is not None or self.max is not None:
                raise ValueError("give either threshold, or min and max, not both")
            if not self.threshold >= 0:
                raise ValueError(f"threshold must be >= 0; got {self.threshold}")
            return
        if self.min is None or self.max is None:
            missing = ", ".join(n for n in ("min", "max") if getattr(self, n) is None)
            raise ValueError(f"missing parameter(s) {missing} (give min and max, or threshold alone)")
        _check_range(self.min, self.max)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(min, max)``: ``(-threshold, threshold)`` for a symmetric clip."""
        if self.threshold is not None:
            return -self.threshold, self.threshold
        assert self.min is not None and self.max is not None  # _validate
        return self.min, self.max

    def compute(self, name, current, source):
        lo, hi = self.bounds
        return np.clip(current, _cast(lo, current), _cast(hi, current))

    def describe(self) -> str:
        if self.threshold is not None:
            return f"clip {self.target_text} to ±{self.threshold:.6g}"
        lo, hi = self.bounds
        return f"clip {self.target_text} to [{lo:.6g}, {hi:.6g}]"


@_register
@dataclass(frozen=True, kw_only=True)
class ClipPercentile(Edit):
    """Clip each tensor to its own ``[P_lower, P_upper]`` (``np.percentile``, linear), in percent.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    lower : float
        Lower percentile, in percent (``[0, 100]``).
    upper : float
        Upper percentile, in percent, ``>= lower``.

    Raises
    ------
    ValueError
        When built with parameters out of range (``lower > upper``).
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "clip_percentile"
    lower: float
    upper: float

    def _validate(self) -> None:
        _check_range(self.lower, self.upper, "lower must be <= upper")

    def compute(self, name, current, source):
        lo, hi = np.percentile(current.astype(np.float64), [self.lower, self.upper])
        return np.clip(current, _cast(lo, current), _cast(hi, current))

    def describe(self) -> str:
        return f"clip {self.target_text} to percentiles [{self.lower:.6g}, {self.upper:.6g}]"


@_register
@dataclass(frozen=True, kw_only=True)
class ZeroRange(_RangeEdit):
    """Set values with ``min <= w <= max`` to zero.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    min : float
        Lower bound (inclusive), in the tensor's units.
    max : float
        Upper bound (inclusive), ``>= min``.

    Raises
    ------
    ValueError
        When built with parameters out of range (``min > max``).
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "zero_range"
    _verb: ClassVar[str] = "zero {target} inside"

    def compute(self, name, current, source):
        lo, hi = _cast(self.min, current), _cast(self.max, current)
        # np.where((current >= lo) & (current <= hi), 0, current), block by block.
        buffer = _scratch(current)

        def inside(src: np.ndarray, mask: np.ndarray) -> None:
            upper = buffer[: src.size]
            np.greater_equal(src, lo, out=mask)
            np.less_equal(src, hi, out=upper)
            mask &= upper

        return _zero_where_block(current, inside)


@_register
@dataclass(frozen=True, kw_only=True)
class ZeroOutside(_RangeEdit):
    """Set values with ``w < min`` or ``w > max`` to zero.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    min : float
        Lower bound of the values kept (inclusive), in the tensor's units.
    max : float
        Upper bound of the values kept (inclusive), ``>= min``.

    Raises
    ------
    ValueError
        When built with parameters out of range (``min > max``).
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "zero_outside"
    _verb: ClassVar[str] = "zero {target} outside"

    def compute(self, name, current, source):
        lo, hi = _cast(self.min, current), _cast(self.max, current)
        # np.where((current < lo) | (current > hi), 0, current), block by block.
        buffer = _scratch(current)

        def outside(src: np.ndarray, mask: np.ndarray) -> None:
            above = buffer[: src.size]
            np.less(src, lo, out=mask)
            np.greater(src, hi, out=above)
            mask |= above

        return _zero_where_block(current, outside)


@_register
@dataclass(frozen=True, kw_only=True)
class Scale(Edit):
    """Multiply every value by ``factor``.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    factor : float
        Multiplier (cast to the tensor's dtype).

    Raises
    ------
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "scale"
    factor: float

    def compute(self, name, current, source):
        return current * _cast(self.factor, current)

    def describe(self) -> str:
        return f"scale {self.target_text} by {self.factor:.6g}"


@_register
@dataclass(frozen=True, kw_only=True)
class Add(Edit):
    """Add a constant ``value`` to every value.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    value : float
        Added to every entry, in the tensor's units.

    Raises
    ------
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "add"
    value: float

    def compute(self, name, current, source):
        return current + _cast(self.value, current)

    def describe(self) -> str:
        return f"add {self.value:.6g} to {self.target_text}"


@_register
@dataclass(frozen=True, kw_only=True)
class AddNoise(Edit):
    """Add Gaussian noise ``N(0, std^2)``, drawn from PCG64 seeded by ``(seed, crc32(name))``.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    std : float
        Standard deviation of the noise, in the tensor's units.
    seed : int, default 0
        The same seed gives the same values, bit for bit.

    Raises
    ------
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "add_noise"
    std: float
    seed: int = 0

    def compute(self, name, current, source):
        noise = _rng(self.seed, name).normal(0.0, self.std, current.shape)
        return current + noise.astype(current.dtype)

    def describe(self) -> str:
        return f"add noise std {self.std:.6g} (seed {self.seed}) to {self.target_text}"


@_register
@dataclass(frozen=True, kw_only=True)
class SetValue(Edit):
    """Set the single entry at ``index`` (one integer per axis) to ``value``.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    index : tuple of int
        One integer per axis of the tensor, each in ``[0, size)``.
    value : float
        The new value (cast to the tensor's dtype).

    Raises
    ------
    RecipeError
        When applied to a target that does not exist, or whose shape does
        not contain ``index``.
    """

    op: ClassVar[str] = "set"
    index: tuple[int, ...]
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", tuple(int(i) for i in self.index))
        super().__post_init__()

    def targets(self, model):
        names = resolve_tensors(self.target, model, self.op)
        for name in names:
            shape = model.tensor(name).shape
            if len(self.index) != len(shape) or any(not 0 <= i < s for i, s in zip(self.index, shape)):
                raise RecipeError(f"set: index {list(self.index)} is outside {name!r} of shape {shape}")
        return names

    def compute(self, name, current, source):
        out = current.copy()
        out[self.index] = _cast(self.value, current)
        return out

    def describe(self) -> str:
        return f"set {self.target_text}[{', '.join(map(str, self.index))}] = {self.value:.6g}"


@_register
@dataclass(frozen=True, kw_only=True)
class Revert(Edit):
    """Restore stored values: a tensor selection, or every tensor with target ``"*"``.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.

    Raises
    ------
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "revert"

    def compute(self, name, current, source):
        return source.original(name)

    def apply(self, model, source):
        # Only tensors that differ get new arrays; unchanged ones stay shared.
        out = {}
        for name in self.targets(model):
            cur, orig = source.array(name), source.original(name)
            if cur is not orig and not _same_bits(cur, orig):
                out[name] = orig
        return out

    def describe(self) -> str:
        return "revert all tensors" if self.target == "*" else f"revert {self.target_text}"


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# -- re-initialisation ------------------------------------------------------------


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, as ``keras.initializers.compute_fans``.

    Dense ``(in, out)`` -> ``(in, out)``; conv ``(..., in, out)`` -> multiplied
    by the receptive field size ``prod(...)``; a vector ``(n,)`` -> ``(n, n)``.
    """
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


#: Keras' VarianceScaling presets: name -> (scale, mode, distribution).
_VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}

#: Every Keras built-in initializer ``reinit`` takes (Keras' snake_case names;
#: the original eleven first, in their original order).
INITIALIZERS = (
    *_VARIANCE_SCALING,
    "zeros",
    "ones",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "constant",
    "variance_scaling",
    "orthogonal",
    "identity",
)

#: The arguments each initializer takes (Keras' constructor arguments, ``seed`` aside).
INITIALIZER_PARAMS: dict[str, tuple[str, ...]] = {
    **{name: () for name in (*_VARIANCE_SCALING, "zeros", "ones")},
    "random_normal": ("mean", "stddev"),
    "truncated_normal": ("mean", "stddev"),
    "random_uniform": ("minval", "maxval"),
    "constant": ("value",),
    "variance_scaling": ("scale", "mode", "distribution"),
    "orthogonal": ("gain",),
    "identity": ("gain",),
}

#: Keras' defaults of those arguments (``keras/src/initializers/*.py``).
INITIALIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "random_normal": {"mean": 0.0, "stddev": 0.05},
    "truncated_normal": {"mean": 0.0, "stddev": 0.05},
    "random_uniform": {"minval": -0.05, "maxval": 0.05},
    "constant": {"value": 0.0},
    "variance_scaling": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
    "orthogonal": {"gain": 1.0},
    "identity": {"gain": 1.0},
}

#: VarianceScaling's ``mode`` and ``distribution`` choices (``"normal"`` is
#: Keras' alias of ``"truncated_normal"``).
VS_MODES = ("fan_in", "fan_out", "fan_avg")
VS_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

#: Other names Keras resolves to the same initializer (``keras.initializers.get``):
#: class names and the short aliases of ``keras.initializers.ALL_OBJECTS_DICT``.
_INITIALIZER_ALIASES = {
    **{"".join(w.title() for w in name.split("_")): name for name in INITIALIZERS},
    "normal": "random_normal",
    "uniform": "random_uniform",
    "zero": "zeros",
    "one": "ones",
    "OrthogonalInitializer": "orthogonal",
    "IdentityInitializer": "identity",
}

#: VarianceScaling's normal draws are truncated at two standard deviations; this
#: is the standard deviation of a unit normal so truncated (Keras' constant).
_TRUNCATED_STD = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, mean: float, std: float, shape: tuple[int, ...]) -> np.ndarray:
    """Normal draws re-drawn until within two standard deviations (Keras' truncation)."""
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + std * out


def _variance_scaling(
    rng: np.random.Generator, shape: tuple[int, ...], scale: float, mode: str, distribution: str
) -> np.ndarray:
    """Keras' ``VarianceScaling.__call__`` (``keras/src/initializers/random_initializers.py``)."""
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    scale /= max(1.0, n)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)
    if distribution == "untruncated_normal":
        return rng.normal(0.0, math.sqrt(scale), shape)
    return _truncated_normal(rng, 0.0, math.sqrt(scale) / _TRUNCATED_STD, shape)


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    """Keras' ``Orthogonal.__call__``: the Q of a QR decomposition of a normal matrix.

    The tensor is seen as a ``(prod(shape[:-1]), shape[-1])`` matrix; the
    draw is ``(max(rows, cols), min(rows, cols))``, its Q made unique by the
    signs of R's diagonal, transposed when there are fewer rows than columns
    (orthonormal rows instead of columns), times ``gain``.
    """
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


@_register
@dataclass(frozen=True, kw_only=True)
class Reinit(Edit):
    """Re-initialise with one of Keras' built-in initializers and its arguments, seeded.

    ``initializer`` is one of :data:`INITIALIZERS` (Keras' class names and
    aliases, ``"RandomNormal"``, ``"normal"``..., are accepted and stored as
    the snake_case name). The arguments it takes (:data:`INITIALIZER_PARAMS`;
    any other is an error) default to Keras' (:data:`INITIALIZER_DEFAULTS`):

    - ``zeros``, ``ones``: no argument; ``constant``: ``value`` (0.0);
      ``w = value`` everywhere, exactly.
    - ``random_normal``: ``mean`` (0.0), ``stddev`` (0.05).
    - ``truncated_normal``: ``mean``, ``stddev``: normal draws beyond two
      ``stddev`` of the mean re-drawn (so the result's standard deviation is
      ``0.8796 * stddev``), as TensorFlow's ``truncated_normal``.
    - ``random_uniform``: ``minval`` (-0.05), ``maxval`` (0.05).
    - ``variance_scaling``: ``scale`` (> 0, default 1.0), ``mode``
      (``fan_in``, ``fan_out``, ``fan_avg``), ``distribution``
      (``truncated_normal``, ``untruncated_normal``, ``uniform``; ``normal``
      is Keras' alias of ``truncated_normal``): ``n`` the mode's fan
      (:func:`compute_fans`), ``s = scale / max(1, n)``; uniform in
      ``+-sqrt(3 s)``, or normal with standard deviation ``sqrt(s)``
      (truncated: ``sqrt(s) / 0.8796`` before the truncation).
    - ``glorot_*``, ``he_*``, ``lecun_*``: VarianceScaling presets (scale 1,
      2, 1; mode fan_avg, fan_in, fan_in; ``*_normal`` truncated).
    - ``orthogonal``: ``gain`` (1.0); at least 2-D (see :func:`_orthogonal`).
    - ``identity``: ``gain`` (1.0); ``gain * eye(rows, cols)``, 2-D only.

    The formulas are Keras 3's (``keras/src/initializers/random_initializers.py``
    and ``constant_initializers.py``); the draws come from NumPy's PCG64
    seeded by ``(seed, crc32(tensor name))``, so they follow Keras'
    distributions but are not Keras' values (Keras draws with TensorFlow's
    stateless generators). The same seed gives the same bits, and recipes
    written before ``constant``, ``variance_scaling``, ``orthogonal`` and
    ``identity`` existed draw exactly as they did. Values are computed in
    float64 and cast to the tensor's dtype.

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``), or
        a list of these.
    initializer : str
        One of :data:`INITIALIZERS` (``"glorot_uniform"``, ``"he_normal"``,
        ``"zeros"``...; Keras' class names are accepted).
    seed : int, default 0
        The same seed gives the same values, bit for bit.
    mean, stddev : float, optional
        ``random_normal`` and ``truncated_normal``, in the tensor's units.
    minval, maxval : float, optional
        ``random_uniform``'s bounds, in the tensor's units.
    value : float, optional
        ``constant``'s value.
    scale : float, optional
        ``variance_scaling``'s scale, ``> 0``.
    mode : str, optional
        ``variance_scaling``'s fan: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"``.
    distribution : str, optional
        ``variance_scaling``'s distribution: ``"truncated_normal"``,
        ``"untruncated_normal"``, ``"uniform"``.
    gain : float, optional
        ``orthogonal`` and ``identity``'s multiplier.

    Raises
    ------
    ValueError
        (When built) an unknown initializer, an argument it does not take, or
        an argument out of range (``stddev < 0``, ``minval > maxval``,
        ``scale <= 0``, an unknown ``mode``/``distribution``).
    RecipeError
        (When applied) ``orthogonal`` on a tensor of fewer than 2 dimensions,
        ``identity`` on one that is not 2-D; the message names the tensor.
    """

    op: ClassVar[str] = "reinit"
    initializer: str
    seed: int = 0
    mean: float | None = None
    stddev: float | None = None
    minval: float | None = None
    maxval: float | None = None
    value: float | None = None
    scale: float | None = None
    mode: str | None = None
    distribution: str | None = None
    gain: float | None = None

    def _validate(self) -> None:
        init = self.initializer
        if isinstance(init, str) and init not in INITIALIZERS and init in _INITIALIZER_ALIASES:
            init = _INITIALIZER_ALIASES[init]
            object.__setattr__(self, "initializer", init)
        if init not in INITIALIZERS:
            raise ValueError(f"unknown initializer {init!r}; known: {', '.join(INITIALIZERS)}")
        takes = INITIALIZER_PARAMS[init]
        given = [name for name in _ARGUMENTS if getattr(self, name) is not None]
        extra = [name for name in given if name not in takes]
        if extra:
            what = f"it takes {', '.join(takes)}" if takes else "it takes no argument but seed"
            raise ValueError(f"{init} does not take {', '.join(extra)}; {what}")
        for name in ("mean", "stddev", "minval", "maxval", "value", "scale", "gain"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number; got {v!r}")
            object.__setattr__(self, name, float(v))  # NumPy scalars too: recipes are JSON
        if self.stddev is not None and self.stddev < 0:
            raise ValueError(f"stddev must be >= 0; got {self.stddev}")
        if self.minval is not None or self.maxval is not None:
            _check_range(self._arg("minval"), self._arg("maxval"), "minval must be <= maxval")
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"scale must be > 0 (Keras' VarianceScaling); got {self.scale}")
        if self.mode is not None and self.mode not in VS_MODES:
            raise ValueError(f"mode must be one of {', '.join(VS_MODES)}; got {self.mode!r}")
        if self.distribution == "normal":  # Keras' alias
            object.__setattr__(self, "distribution", "truncated_normal")
        if self.distribution is not None and self.distribution not in VS_DISTRIBUTIONS:
            raise ValueError(
                f"distribution must be one of {', '.join(VS_DISTRIBUTIONS)} (or normal); got {self.distribution!r}"
            )

    def _arg(self, name: str) -> Any:
        """Argument ``name``, or Keras' default for this initializer when not given."""
        v = getattr(self, name)
        return INITIALIZER_DEFAULTS[self.initializer][name] if v is None else v

    def targets(self, model: ModelFile) -> list[str]:
        names = resolve_tensors(self.target, model, self.op)
        if self.initializer in ("orthogonal", "identity"):
            for name in names:
                shape = model.tensor(name).shape
                if self.initializer == "identity" and len(shape) != 2:
                    raise RecipeError(
                        f"reinit: identity needs a 2-D tensor (a Dense kernel); {name!r} has shape {tuple(shape)}"
                    )
                if len(shape) < 2:
                    raise RecipeError(
                        f"reinit: orthogonal needs a tensor of at least 2 dimensions; {name!r} has shape "
                        f"{tuple(shape)}"
                    )
        return names

    def compute(self, name: str, current: np.ndarray, source: ArraySource) -> np.ndarray:
        shape, init = tuple(current.shape), self.initializer
        rng = _rng(self.seed, name)
        values: np.ndarray
        if init == "zeros":
            values = np.zeros(shape)
        elif init == "ones":
            values = np.ones(shape)
        elif init == "constant":
            values = np.full(shape, self._arg("value"))
        elif init == "random_normal":
            values = rng.normal(self._arg("mean"), self._arg("stddev"), shape)
        elif init == "truncated_normal":
            values = _truncated_normal(rng, self._arg("mean"), self._arg("stddev"), shape)
        elif init == "random_uniform":
            values = rng.uniform(self._arg("minval"), self._arg("maxval"), shape)
        elif init == "variance_scaling":
            values = _variance_scaling(rng, shape, self._arg("scale"), self._arg("mode"), self._arg("distribution"))
        elif init == "orthogonal":
            values = _orthogonal(rng, shape, self._arg("gain"))
        elif init == "identity":
            if len(shape) != 2:  # targets() says so first, naming the tensor
                raise ValueError(f"identity needs a 2-D tensor; {name!r} has shape {shape}")
            values = self._arg("gain") * np.eye(*shape)
        else:
            values = _variance_scaling(rng, shape, *_VARIANCE_SCALING[init])
        return np.asarray(values).astype(current.dtype)

    def describe(self) -> str:
        args = ", ".join(
            f"{k}={_fmt(getattr(self, k))}" for k in INITIALIZER_PARAMS[self.initializer] if getattr(self, k) is not None
        )
        init = f"{self.initializer}({args})" if args else self.initializer
        return f"re-initialise {self.target_text} with {init} (seed {self.seed})"


#: Reinit's initializer arguments, in field order.
_ARGUMENTS = ("mean", "stddev", "minval", "maxval", "value", "scale", "mode", "distribution", "gain")


# -- magnitude pruning -------------------------------------------------------------


@_register
@dataclass(frozen=True, kw_only=True)
class PruneMagnitude(Edit):
    """Magnitude pruning: zero the entries with the smallest ``|w|``.

    Give either ``threshold`` (entries with ``|w| <= threshold`` become zero)
    or ``sparsity`` (``floor(sparsity * n)`` smallest-magnitude entries become
    zero; ties broken by position, so the count is exact). ``scope="tensor"``
    prunes each targeted tensor on its own; ``scope="global"`` ranks all
    targeted entries together (one threshold for all), as in Han et al. 2015,
    "Learning both Weights and Connections for Efficient Neural Networks".

    Parameters
    ----------
    target : str or tuple of str
        The tensors: a canonical name (``"dense/kernel"``), a layer name
        (all its tensors), a glob over canonical names (``"*/kernel"``,
        ``"*"`` for the whole model), or a list of these.
    threshold : float, optional
        Entries with ``|w| <= threshold`` (the tensor's units) become zero.
    sparsity : float, optional
        Fraction of entries to zero, in ``[0, 1]``.
    scope : {"tensor", "global"}, default "tensor"
        ``"tensor"``: each tensor pruned on its own; ``"global"``: one
        ranking across all targeted tensors.

    Raises
    ------
    ValueError
        When built with parameters out of range (both or neither of ``threshold`` and ``sparsity``, an unknown ``scope``).
    RecipeError
        When applied to a target that does not exist in the model.
    """

    op: ClassVar[str] = "prune_magnitude"
    threshold: float | None = None
    sparsity: float | None = None
    scope: str = "tensor"

    def _validate(self) -> None:
        if (self.threshold is None) == (self.sparsity is None):
            raise ValueError("give exactly one of threshold or sparsity")
        if self.scope not in ("tensor", "global"):
            raise ValueError(f"scope must be 'tensor' or 'global'; got {self.scope!r}")

    def apply(self, model, source):
        names = self.targets(model)
        arrays = {n: source.array(n) for n in names}
        if self.threshold is not None:
            return {n: _prune_below(a, self.threshold) for n, a in arrays.items()}
        sparsity = self.sparsity
        assert sparsity is not None  # _validate: exactly one of threshold and sparsity
        if self.scope == "tensor":
            return {n: _prune_smallest([a], sparsity)[0] for n, a in arrays.items()}
        return dict(zip(arrays, _prune_smallest(list(arrays.values()), sparsity)))

    def describe(self) -> str:
        how = f"|w| <= {self.threshold:.6g}" if self.threshold is not None else f"sparsity {self.sparsity:.4g}"
        return f"prune {self.target_text} by magnitude ({how}, {self.scope})"


def _prune_below(a: np.ndarray, threshold: float) -> np.ndarray:
    """``np.where(np.abs(a) <= threshold, 0, a)`` (``|w|`` in ``a``'s own dtype), block by block."""
    t = _cast(threshold, a)
    buffer = _scratch(a, a.dtype)

    def small(src: np.ndarray, mask: np.ndarray) -> None:
        magnitude = buffer[: src.size]
        np.abs(src, out=magnitude)
        np.less_equal(magnitude, t, out=mask)

    return _zero_where_block(a, small)


def _magnitude_dtype(arrays: Sequence[np.ndarray]) -> np.dtype:
    """The dtype ``|w|`` is ranked in: the arrays' common float dtype, float64 when any is not float.

    ``|w|`` of a float is exact in any wider float, so ranking in the common
    float dtype orders (and ties) the entries as ranking ``|float64(w)|`` does;
    integers and booleans are ranked as float64, as they always were.
    """
    if all(a.dtype.kind == "f" for a in arrays):
        return np.result_type(*(a.dtype for a in arrays))
    return np.dtype(np.float64)


def _magnitude(src: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = |src|`` computed in ``out``'s dtype (``abs(float64(w))`` for integers: no overflow)."""
    if src.dtype.kind in "biuf":
        np.abs(src, out=out, dtype=out.dtype)
    else:  # complex (an in-memory model): the real part, as ``astype`` always took it
        np.abs(src.astype(out.dtype), out=out)


def _count_before(head: np.ndarray, v: np.generic, scratch: np.ndarray) -> int:
    """How many magnitudes in ``head`` rank before ``v`` (``< v``; not NaN when ``v`` is NaN), in blocks."""
    nan = bool(np.isnan(v))
    count = 0
    for i in range(0, head.size, scratch.size):
        block = head[i : i + scratch.size]
        hit = scratch[: block.size]
        if nan:
            np.isnan(block, out=hit)
            count += block.size - int(np.count_nonzero(hit))
        else:
            np.less(block, v, out=hit)
            count += int(np.count_nonzero(hit))
    return count


def _prune_smallest(arrays: Sequence[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Zero the ``floor(sparsity * n)`` entries of smallest ``|w|`` among all ``arrays`` together.

    The entries are ranked as a stable sort of ``|w|`` over the arrays'
    entries laid end to end in C order would rank them: ``NaN`` after every
    number, and among equal magnitudes the earlier position first. That is
    ``np.argsort(np.abs(flat.astype(np.float64)), kind="stable")[:k]``, the
    definition, computed without sorting: ``np.partition`` finds the ``k``-th
    smallest magnitude ``v``; every entry below ``v`` is zeroed, and so are the
    first ``k - #{|w| < v}`` entries equal to ``v`` in position order.

    Memory: the results, one ``|w|`` array (in the result itself when a single
    float tensor is pruned) and block-sized temporaries.

    Parameters
    ----------
    arrays:
        Tensors of any shape and of real dtypes (float, integer, bool); not modified.
    sparsity:
        Fraction in ``[0, 1]`` of all their entries to zero.

    Returns
    -------
    New arrays, one per input, of the same shapes and dtypes; pruned entries are ``+0``.
    """
    n = sum(a.size for a in arrays)
    k = math.floor(sparsity * n)
    if k == 0:
        return [a.copy() for a in arrays]
    key_dtype = _magnitude_dtype(arrays)
    outs = [np.empty(a.shape, a.dtype) for a in arrays]
    if len(arrays) == 1 and outs[0].dtype == key_dtype:
        keys = outs[0].reshape(-1)  # the result holds the magnitudes until the last pass
    else:
        keys = np.empty(n, key_dtype)
    start = 0
    for a in arrays:
        _magnitude(a, keys[start : start + a.size].reshape(a.shape))
        start += a.size
    keys.partition(k - 1)  # NaN sorts after every number, as in np.sort
    v = keys[k - 1]
    nan = bool(np.isnan(v))
    biggest = max(arrays, key=lambda a: a.size)
    magnitude, mask, equal = _scratch(biggest, key_dtype), _scratch(biggest), _scratch(biggest)
    below = _count_before(keys[: k - 1], v, mask)
    del keys
    ties = k - below  # entries equal to v (NaN: NaN entries) to zero, the first ones by position
    for a, out in zip(arrays, outs):
        keep = _scratch(a, _bits_dtype(a))
        for src, dst in _blocks(a, out):
            m, lt, eq = magnitude[: src.size], mask[: src.size], equal[: src.size]
            _magnitude(src, m)
            if nan:
                np.isnan(m, out=eq)
                np.logical_not(eq, out=lt)
            else:
                np.less(m, v, out=lt)
                if ties:
                    np.equal(m, v, out=eq)
            if ties:
                hits = np.flatnonzero(eq)[:ties]
                lt[hits] = True
                ties -= hits.size
            _zero_masked(src, dst, lt, keep[: src.size])
    return outs


# -- neuron edits ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _NeuronEdit(Edit):
    """Edits of whole neurons: output (``axis="out"``: kernel's last axis and
    bias) or input units (``axis="in"``: the kernel's input axis, ``-2``)."""

    neurons: tuple[int, ...]
    axis: str = "out"

    def _validate(self) -> None:
        object.__setattr__(self, "neurons", tuple(sorted({int(n) for n in self.neurons})))
        if not self.neurons:
            raise ValueError("neurons must not be empty")
        if self.axis not in ("out", "in"):
            raise ValueError(f"axis must be 'out' or 'in'; got {self.axis!r}")

    def targets(self, model):
        names = neuron_tensors(self.target, model, self.op)
        kernel_shape = model.tensor(names[0]).shape
        if self.axis == "in":
            if len(kernel_shape) < 2:
                raise RecipeError(f"{self.op}: {names[0]!r} of shape {kernel_shape} has no input axis")
            names = names[:1]
        n = neuron_count(self.target, model, self.axis)
        bad = [i for i in self.neurons if i >= n]
        if bad:
            what = "output neurons" if self.axis == "out" else "input units"
            raise RecipeError(f"{self.op}: {self.target!r} has {n} {what} (0..{n - 1}); got {_fmt(tuple(bad))}")
        for extra in names[1:]:
            shp = model.tensor(extra).shape
            if not shp or shp[-1] != n:
                raise RecipeError(
                    f"{self.op}: {extra!r} has shape {shp}, which does not match "
                    f"{n} output neurons of {names[0]!r}"
                )
        return names

    def _new_values(self, selected: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply(self, model, source):
        names = self.targets(model)
        depthwise = self.axis == "out" and is_depthwise(model, names[0])
        return {n: self._edit(source.array(n), depthwise and n == names[0]) for n in names}

    def _edit(self, current: np.ndarray, depthwise: bool) -> np.ndarray:
        out = current.copy()
        idx = list(self.neurons)
        if self.axis == "in":
            out[..., idx, :] = self._new_values(current[..., idx, :])
        else:
            view = output_channels(out, depthwise)  # a view: writes go to ``out``
            view[..., idx] = self._new_values(view[..., idx])
        return out

    def _what(self) -> str:
        return f"{'neurons' if self.axis == 'out' else 'input units'} {_fmt(self.neurons)} of {self.target_text}"


def batchnorm_silencing(model: ModelFile, layer: str, channels: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """BatchNorm tensors to zero so ``channels`` of ``layer`` stay zero downstream.

    An ablated filter gives a zero channel, but a following BatchNormalization
    turns it into ``beta - gamma * mean / sqrt(var + eps)``. Zeroing the
    channel's ``gamma`` and ``beta`` makes the output exactly zero; when the
    layer has no ``gamma`` (``scale=False``), ``moving_mean`` is zeroed instead.

    Returns
    -------
    ``{bn tensor name: channels}``; empty when no BatchNormalization follows
    (see :func:`weightlab.core.graph.following_batchnorm`).
    """
    from .graph import following_batchnorm

    bn = following_batchnorm(model, layer)
    if bn is None:
        return {}
    bn_layer = model.layer(bn)
    weights = ["gamma", "beta"] if bn_layer.tensor("gamma") else ["beta", "moving_mean"]
    return {t.name: tuple(channels) for w in weights if (t := bn_layer.tensor(w)) is not None}


@_register
@dataclass(frozen=True, kw_only=True)
class ZeroNeurons(_NeuronEdit):
    """Ablate neurons: zero their kernel slice (and bias entries for output neurons).

    With ``batchnorm=True`` a following BatchNormalization is silenced for the
    same channels too (:func:`batchnorm_silencing`).

    Parameters
    ----------
    target : str
        A layer with a kernel (Dense, Conv..., ``"dense"``); its kernel and,
        for output neurons, its bias are edited.
    neurons : sequence of int
        Neuron indices on the edited axis, each in ``[0, units)``; sorted,
        duplicates dropped.
    axis : {"out", "in"}, default "out"
        ``"out"``: output neurons/filters (the kernel's last axis and the
        bias); ``"in"``: input units (the kernel's axis ``-2``).
    batchnorm : bool, default False
        Also zero the channels' ``gamma`` and ``beta`` in the
        BatchNormalization that follows, so the neurons stay silent.

    Raises
    ------
    ValueError
        When built with no neurons or an unknown ``axis``.
    RecipeError
        When applied to a layer that does not exist or has no kernel, or a
        neuron index past the layer's units.
    """

    op: ClassVar[str] = "zero_neurons"
    batchnorm: bool = False

    def _validate(self) -> None:
        super()._validate()
        if self.batchnorm and self.axis != "out":
            raise ValueError("batchnorm=true applies to output neurons (axis 'out') only")

    def _new_values(self, selected):
        return np.zeros_like(selected)

    def apply(self, model, source):
        out = super().apply(model, source)
        if self.batchnorm:
            if not isinstance(self.target, str) or not model.has_layer(self.target):
                raise RecipeError(f"{self.op}: batchnorm=true needs a layer target; got {self.target!r}")
            silence = batchnorm_silencing(model, self.target, self.neurons)
            if not silence:
                raise RecipeError(
                    f"{self.op}: no BatchNormalization follows layer {self.target!r} in the stored architecture"
                )
            for name, channels in silence.items():
                a = source.array(name)
                new = a.copy()
                new[list(channels)] = 0
                out[name] = new
        return out

    def describe(self) -> str:
        return f"zero {self._what()}" + (" and its BatchNorm" if self.batchnorm else "")


@_register
@dataclass(frozen=True, kw_only=True)
class ScaleNeurons(_NeuronEdit):
    """Scale neurons' kernel slice (and bias entries for output neurons) by ``factor``.

    Parameters
    ----------
    target : str
        A layer with a kernel (Dense, Conv..., ``"dense"``); its kernel and,
        for output neurons, its bias are edited.
    neurons : sequence of int
        Neuron indices on the edited axis, each in ``[0, units)``; sorted,
        duplicates dropped.
    axis : {"out", "in"}, default "out"
        ``"out"``: output neurons/filters (the kernel's last axis and the
        bias); ``"in"``: input units (the kernel's axis ``-2``).
    factor : float
        Multiplier of the neurons' kernel slice (and bias entries).

    Raises
    ------
    ValueError
        When built with no neurons or an unknown ``axis``.
    RecipeError
        When applied to a layer that does not exist or has no kernel, or a
        neuron index past the layer's units.
    """

    op: ClassVar[str] = "scale_neurons"
    factor: float

    def _new_values(self, selected):
        return selected * _cast(self.factor, selected)

    def describe(self) -> str:
        return f"scale {self._what()} by {self.factor:.6g}"


@_register
@dataclass(frozen=True, kw_only=True)
class PruneNeurons(Edit):
    """Structured pruning: zero the output neurons/filters with the smallest norm.

    Norms are :func:`weightlab.core.stats.neuron_norms` of the layer's kernel
    (``norm`` ``"l1"`` or ``"l2"``, default ``"l1"`` as in Li et al. 2017,
    "Pruning Filters for Efficient ConvNets"); ``count`` neurons or
    ``floor(fraction * units)`` are zeroed, kernel and bias together; ties are
    broken by index. Already-zero neurons count among the smallest.

    Parameters
    ----------
    target : str
        A layer with a kernel (Dense, Conv..., ``"dense"``); its kernel and,
        for output neurons, its bias are edited.
    count : int, optional
        How many output neurons to zero.
    fraction : float, optional
        Zero ``floor(fraction * units)`` neurons; ``fraction`` in ``[0, 1]``.
    norm : {"l1", "l2"}, default "l1"
        The kernel norm that ranks the neurons.

    Raises
    ------
    ValueError
        When built with both or neither of ``count`` and ``fraction``, or
        an unknown ``norm``.
    RecipeError
        When applied to a layer that does not exist or has no kernel, or
        ``count`` is more than its units.
    """

    op: ClassVar[str] = "prune_neurons"
    count: int | None = None
    fraction: float | None = None
    norm: str = "l1"

    def _validate(self) -> None:
        if (self.count is None) == (self.fraction is None):
            raise ValueError("give exactly one of count or fraction")
        if self.norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2'; got {self.norm!r}")

    def targets(self, model):
        names = neuron_tensors(self.target, model, self.op)
        if self.count is not None and self.count > neuron_count(self.target, model):
            raise RecipeError(
                f"{self.op}: {self.target!r} has {neuron_count(self.target, model)} neurons; "
                f"cannot prune {self.count}"
            )
        return names

    @property
    def _fraction(self) -> float:
        """``fraction``, when ``count`` is None (:meth:`_validate`: exactly one is given)."""
        assert self.fraction is not None
        return self.fraction

    def chosen_neurons(self, model: ModelFile, source: ArraySource) -> tuple[int, ...]:
        """The neurons this edit zeroes, given the current weights."""
        from .stats import neuron_norms

        names = self.targets(model)
        kernel = output_channels(source.array(names[0]), is_depthwise(model, names[0]))
        norms = neuron_norms(kernel, ord=1 if self.norm == "l1" else 2)
        k = self.count if self.count is not None else math.floor(self._fraction * norms.size)
        return tuple(sorted(int(i) for i in np.argsort(norms, kind="stable")[:k]))

    def apply(self, model, source):
        chosen = self.chosen_neurons(model, source)
        if not chosen:
            return {}
        return ZeroNeurons(target=self.target, neurons=chosen).apply(model, source)

    def describe(self) -> str:
        how = f"{self.count}" if self.count is not None else f"{100 * self._fraction:.4g} %"
        return f"prune {how} neurons of {self.target_text} by {self.norm.upper()} norm"

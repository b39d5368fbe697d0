"""Edits as data: small serialisable commands ``(op, target, parameters)``.

Each edit computes new arrays for the tensors it touches from the current ones
and never mutates its inputs, so a session can keep the old arrays for undo and
replaying the same edits on the same original file gives the same weights bit
for bit. Arithmetic stays in the tensor's own dtype (parameters are cast to it
first), as Keras would compute on the stored variable.

Recipe ``op`` names and parameters (see ``docs/recipes.md``):

=================  ============  ==========================================
op                 target        parameters
=================  ============  ==========================================
``clip``           tensor        ``min``, ``max`` (``np.clip``)
``zero_range``     tensor        ``min``, ``max``: zero ``min <= w <= max``
``zero_outside``   tensor        ``min``, ``max``: zero ``w < min or w > max``
``scale``          tensor        ``factor``: ``w * factor``
``zero_neurons``   layer         ``neurons``: ablate output neurons
``scale_neurons``  layer         ``neurons``, ``factor``
``revert``         tensor/``*``  back to the values stored in the file
=================  ============  ==========================================

A *tensor* target is a canonical name (``conv2d/kernel``). A *layer* target is
a layer name (``dense``): the edit acts on output neurons, i.e. on the last
axis of the layer's ``kernel`` and on the matching ``bias`` entries (the
standard ablation of a unit or filter). A neuron edit may also target one
tensor (``dense/kernel``), then only that tensor's last axis changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

import numpy as np

from .errors import RecipeError
from .model import ModelFile


class ArraySource(Protocol):
    """Gives the current values of a tensor (a session, or the file itself)."""

    def array(self, name: str) -> np.ndarray: ...

    def original(self, name: str) -> np.ndarray: ...


#: Registry ``op name -> Edit subclass``; filled by :func:`_register`.
EDIT_TYPES: dict[str, type[Edit]] = {}


def _register(cls: type[Edit]) -> type[Edit]:
    EDIT_TYPES[cls.op] = cls
    return cls


@dataclass(frozen=True, kw_only=True)
class Edit:
    """Base class of all edits.

    Subclasses set ``op`` and implement :meth:`targets` and :meth:`compute`.
    """

    op: ClassVar[str] = ""
    target: str

    # -- to override ------------------------------------------------------
    def targets(self, model: ModelFile) -> list[str]:
        """Canonical names of the tensors this edit may change.

        Raises
        ------
        RecipeError
            When the target does not exist or does not fit the op.
        """
        return [_tensor_target(self, model)]

    def compute(self, name: str, current: np.ndarray, source: ArraySource) -> np.ndarray:
        """Return the new values of tensor ``name`` (a new array; ``current`` untouched)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for a history list: ``"clip conv2d/kernel to [-0.1, 0.1]"``."""
        params = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.op} {self.target}" + (f" ({params})" if params else "")

    # -- shared -------------------------------------------------------------
    def apply(self, model: ModelFile, source: ArraySource) -> dict[str, np.ndarray]:
        """Compute the new arrays of every tensor this edit changes.

        Returns
        -------
        ``{canonical name: new array}``, same shape and dtype as before.
        """
        out: dict[str, np.ndarray] = {}
        for name in self.targets(model):
            cur = source.array(name)
            new = self.compute(name, cur, source)
            if new.shape != cur.shape or new.dtype != cur.dtype:  # pragma: no cover - guard
                raise AssertionError(f"{self.op} changed shape/dtype of {name}")
            out[name] = new
        return out

    def params(self) -> dict[str, Any]:
        """The edit's parameters (everything but ``op`` and ``target``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "target"}

    def to_dict(self) -> dict[str, Any]:
        """Serialise as a recipe step: ``{"op": ..., "target": ..., **params}``."""
        d: dict[str, Any] = {"op": self.op, "target": self.target}
        for k, v in self.params().items():
            d[k] = list(v) if isinstance(v, tuple) else v
        return d


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
        type; the message names the step and what was received.
    """
    if not isinstance(d, Mapping):
        raise RecipeError(f"{where}: expected an object; got {type(d).__name__}")
    op = d.get("op")
    if op not in EDIT_TYPES:
        known = ", ".join(sorted(EDIT_TYPES))
        raise RecipeError(f"{where}: unknown op {op!r}; known ops: {known}")
    cls = EDIT_TYPES[op]
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names - {"op"}
    if unknown:
        raise RecipeError(
            f"{where} ({op}): unknown parameter(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(names))}"
        )
    missing = {n for n in names if n not in d and _required(cls, n)}
    if missing:
        raise RecipeError(f"{where} ({op}): missing parameter(s) {', '.join(sorted(missing))}")
    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        kwargs[f.name] = _coerce(cls, f.name, d[f.name], where)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where} ({op}): {e}") from None


def _required(cls: type[Edit], name: str) -> bool:
    import dataclasses

    for f in fields(cls):
        if f.name == name:
            return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return False


def _coerce(cls: type[Edit], name: str, value: Any, where: str) -> Any:
    kind = _PARAM_KINDS.get(name, "any")
    bad = RecipeError(
        f"{where} ({cls.op}): parameter {name!r} must be {_KIND_TEXT[kind]}; got {value!r}"
    )
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise bad
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(float(value)):
            raise bad
        return float(value)
    if kind == "indices":
        if not isinstance(value, (list, tuple)) or not value:
            raise bad
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise bad
        return tuple(sorted(set(int(v) for v in value)))
    return value


_PARAM_KINDS = {
    "target": "str",
    "min": "number",
    "max": "number",
    "factor": "number",
    "neurons": "indices",
}
_KIND_TEXT = {
    "str": "a non-empty string",
    "number": "a finite number",
    "indices": "a non-empty list of non-negative integers",
    "any": "valid",
}


# -- target resolution ------------------------------------------------------


def _tensor_target(edit: Edit, model: ModelFile) -> str:
    if edit.target not in model.tensors:
        from .model import _suggest

        raise RecipeError(
            f"{edit.op}: no tensor named {edit.target!r}{_suggest(edit.target, model.tensors)}"
        )
    return edit.target


def _check_range(lo: float, hi: float) -> None:
    if lo > hi:
        raise ValueError(f"min must be <= max; got min={lo}, max={hi}")


def _cast(value: float, like: np.ndarray) -> np.generic:
    return like.dtype.type(value)


# -- value edits ------------------------------------------------------------


@_register
@dataclass(frozen=True, kw_only=True)
class Clip(Edit):
    """Clip values to ``[min, max]`` (``np.clip``)."""

    op: ClassVar[str] = "clip"
    min: float
    max: float

    def __post_init__(self) -> None:
        _check_range(self.min, self.max)

    def compute(self, name, current, source):
        return np.clip(current, _cast(self.min, current), _cast(self.max, current))

    def describe(self) -> str:
        return f"clip {self.target} to [{self.min:.6g}, {self.max:.6g}]"


@_register
@dataclass(frozen=True, kw_only=True)
class ZeroRange(Edit):
    """Set values with ``min <= w <= max`` to zero."""

    op: ClassVar[str] = "zero_range"
    min: float
    max: float

    def __post_init__(self) -> None:
        _check_range(self.min, self.max)

    def compute(self, name, current, source):
        lo, hi = _cast(self.min, current), _cast(self.max, current)
        return np.where((current >= lo) & (current <= hi), current.dtype.type(0), current)

    def describe(self) -> str:
        return f"zero {self.target} inside [{self.min:.6g}, {self.max:.6g}]"


@_register
@dataclass(frozen=True, kw_only=True)
class ZeroOutside(Edit):
    """Set values with ``w < min`` or ``w > max`` to zero."""

    op: ClassVar[str] = "zero_outside"
    min: float
    max: float

    def __post_init__(self) -> None:
        _check_range(self.min, self.max)

    def compute(self, name, current, source):
        lo, hi = _cast(self.min, current), _cast(self.max, current)
        return np.where((current < lo) | (current > hi), current.dtype.type(0), current)

    def describe(self) -> str:
        return f"zero {self.target} outside [{self.min:.6g}, {self.max:.6g}]"


@_register
@dataclass(frozen=True, kw_only=True)
class Scale(Edit):
    """Multiply every value by ``factor``."""

    op: ClassVar[str] = "scale"
    factor: float

    def compute(self, name, current, source):
        return current * _cast(self.factor, current)

    def describe(self) -> str:
        return f"scale {self.target} by {self.factor:.6g}"


@_register
@dataclass(frozen=True, kw_only=True)
class Revert(Edit):
    """Restore stored values: one tensor, or every tensor with target ``"*"``."""

    op: ClassVar[str] = "revert"

    def targets(self, model):
        if self.target == "*":
            return list(model.tensors)
        return [_tensor_target(self, model)]

    def compute(self, name, current, source):
        return source.original(name)

    def apply(self, model, source):
        # Only tensors that differ need new arrays; unchanged ones stay shared.
        out = {}
        for name in self.targets(model):
            cur, orig = source.array(name), source.original(name)
            if cur is not orig and not _same_bits(cur, orig):
                out[name] = orig
        return out

    def describe(self) -> str:
        return "revert all tensors" if self.target == "*" else f"revert {self.target}"


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# -- neuron edits -----------------------------------------------------------


def neuron_tensors(target: str, model: ModelFile, op: str = "edit") -> list[str]:
    """Tensors touched by a neuron edit on ``target``.

    A layer name gives its ``kernel`` (or its only tensor) plus ``bias`` when
    present; a canonical tensor name gives that tensor alone.

    Raises
    ------
    RecipeError
        When ``target`` names neither a layer with a kernel nor a tensor.
    """
    if target in model.tensors:
        return [target]
    if not model.has_layer(target):
        from .model import _suggest

        names = [layer.name for layer in model.layers] + list(model.tensors)
        raise RecipeError(f"{op}: no layer or tensor named {target!r}{_suggest(target, names)}")
    layer = model.layer(target)
    kernel = layer.tensor("kernel")
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


def neuron_count(target: str, model: ModelFile) -> int:
    """Number of output neurons of a neuron-edit target (its kernel's last axis)."""
    kernel = model.tensor(neuron_tensors(target, model)[0])
    return kernel.shape[-1] if kernel.shape else 1


@dataclass(frozen=True, kw_only=True)
class _NeuronEdit(Edit):
    neurons: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "neurons", tuple(sorted(set(int(n) for n in self.neurons))))
        if not self.neurons:
            raise ValueError("neurons must not be empty")

    def targets(self, model):
        names = neuron_tensors(self.target, model, self.op)
        n_out = model.tensor(names[0]).shape[-1] if model.tensor(names[0]).shape else 1
        bad = [n for n in self.neurons if n >= n_out]
        if bad:
            raise RecipeError(
                f"{self.op}: {self.target!r} has {n_out} output neurons (0..{n_out - 1}); "
                f"got neuron(s) {bad}"
            )
        for extra in names[1:]:
            shp = model.tensor(extra).shape
            if not shp or shp[-1] != n_out:
                raise RecipeError(
                    f"{self.op}: {extra!r} has shape {shp}, which does not match "
                    f"{n_out} output neurons of {names[0]!r}"
                )
        return names

    def _neuron_values(self, current: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute(self, name, current, source):
        out = current.copy()
        idx = list(self.neurons)
        out[..., idx] = self._neuron_values(current[..., idx])
        return out

    def _neurons_text(self) -> str:
        shown = ", ".join(str(n) for n in self.neurons[:8])
        return shown + (", ..." if len(self.neurons) > 8 else "")


@_register
@dataclass(frozen=True, kw_only=True)
class ZeroNeurons(_NeuronEdit):
    """Ablate output neurons: zero their kernel slice and bias entries."""

    op: ClassVar[str] = "zero_neurons"

    def _neuron_values(self, sel):
        return np.zeros_like(sel)

    def describe(self) -> str:
        return f"zero neurons [{self._neurons_text()}] of {self.target}"


@_register
@dataclass(frozen=True, kw_only=True)
class ScaleNeurons(_NeuronEdit):
    """Scale output neurons' kernel slice and bias entries by ``factor``."""

    op: ClassVar[str] = "scale_neurons"
    factor: float

    def _neuron_values(self, sel):
        return sel * _cast(self.factor, sel)

    def describe(self) -> str:
        return f"scale neurons [{self._neurons_text()}] of {self.target} by {self.factor:.6g}"


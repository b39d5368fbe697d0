"""Declarative parameter forms for every edit op.

Each op of the edit panel is an :class:`OpSpec`: a label, a group, a one-line
tooltip with the NumPy meaning, its parameters (:class:`Param`) and a
``build(target, values)`` function that turns the form's values into a
:class:`weightlab.core.edits.Edit`. One widget, :class:`ParamForm`, renders any
spec, so adding an op is adding a spec, never a new form.

The GUI only builds edit objects; the arithmetic is the core's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from weightlab.core.edits import (
    INITIALIZERS,
    Add,
    AddNoise,
    Clip,
    ClipPercentile,
    Edit,
    PruneMagnitude,
    PruneNeurons,
    Reinit,
    Scale,
    ScaleNeurons,
    SetValue,
    Target,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
)
from weightlab.core.model import ModelFile

#: Values of a form, by parameter name (only the parameters currently shown).
Values = dict[str, Any]


@dataclass(frozen=True)
class FormContext:
    """What a form needs to know to enable its fields: the model and the neuron-edit layer."""

    model: ModelFile | None = None
    layer: str | None = None
    batchnorm: str | None = None  # BatchNormalization following ``layer``, if any


@dataclass(frozen=True)
class Param:
    """One parameter field.

    Attributes
    ----------
    name:
        Key in the values dict (usually the edit's parameter name).
    label:
        Text left of the field.
    kind:
        ``"float"``, ``"int"``, ``"choice"``, ``"bool"``, ``"indices"``
        (``"0, 3, 5-7"``) or ``"index"`` (``"1, 2, 0, 5"``, one per axis).
    default:
        Initial value.
    tip:
        Tooltip of the field.
    choices:
        For ``"choice"``.
    lo, hi, decimals, step, suffix:
        For numbers. ``percent=True`` shows ``value * 100`` with a ``%`` suffix
        (the edit gets the fraction).
    visible:
        ``visible(values)``: whether the field applies given the other values
        (hidden fields are left out of the values).
    disabled:
        ``disabled(context, values)``: a reason to grey the field out, or None.
    """

    name: str
    label: str
    kind: str = "float"
    default: Any = 0.0
    tip: str = ""
    choices: tuple[str, ...] = ()
    lo: float = -1e9
    hi: float = 1e9
    decimals: int = 6
    step: float = 0.01
    suffix: str = ""
    percent: bool = False
    visible: Callable[[Values], bool] | None = None
    disabled: Callable[[FormContext, Values], str | None] | None = None


@dataclass(frozen=True)
class OpSpec:
    """One op of the edit panel.

    Attributes
    ----------
    key:
        Unique key (the recipe op name, or a shorthand such as ``clip_symmetric``).
    label, group, tip:
        Shown in the op combo box; ``tip`` says what the op does, with its NumPy meaning.
    params:
        The form's fields.
    build:
        ``build(target, values) -> Edit``; may raise ValueError for bad values.
    neurons:
        True for neuron edits: the target is the shown tensor's layer, not the
        panel's tensor target.
    """

    key: str
    label: str
    group: str
    tip: str
    params: tuple[Param, ...]
    build: Callable[[Target, Values], Edit]
    neurons: bool = False


# -- parsing index lists --------------------------------------------------------------


def parse_indices(text: str) -> tuple[int, ...]:
    """``"0, 3, 5-7"`` -> ``(0, 3, 5, 6, 7)``; raises ValueError naming the bad part."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in re.split(r"[,\s]+", text.strip()))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"not an index or a range a-b: {part!r}")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        if b < a:
            raise ValueError(f"empty range {part!r}")
        out.extend(range(a, b + 1))
    if not out:
        raise ValueError("give at least one index, e.g. 0, 3, 5-7")
    return tuple(out)


def format_indices(values: list[int] | tuple[int, ...]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"`` (the inverse of :func:`parse_indices`)."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_index(text: str) -> tuple[int, ...]:
    """``"1, 2, 0, 5"`` -> ``(1, 2, 0, 5)`` (one non-negative integer per axis)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip().strip("[]()")) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"index must be integers, one per axis, e.g. 1, 2, 0, 5; got {text!r}")
    return tuple(int(p) for p in parts)


# -- the ops ------------------------------------------------------------------------

_RANGE = (
    Param("min", "min", default=-0.1, tip="lower bound (inclusive)"),
    Param("max", "max", default=0.1, tip="upper bound (inclusive)"),
)


def _is(name: str, *values: str) -> Callable[[Values], bool]:
    return lambda v: v.get(name) in values


def _no_batchnorm(ctx: FormContext, v: Values) -> str | None:
    if v.get("axis") != "out":
        return "BatchNorm silencing applies to output neurons (axis out) only"
    if ctx.batchnorm is None:
        return f"no BatchNormalization follows layer {ctx.layer!r} in the stored architecture"
    return None


_NEURON_LIST = Param(
    "neurons", "neurons", kind="indices", default="",
    tip="neuron indices, e.g. 0, 3, 5-7 (filled from the heatmap/norm selection)",
)
_AXIS = Param(
    "axis", "axis", kind="choice", choices=("out", "in"), default="out",
    tip="out: output neurons (kernel's last axis and bias); in: input units (kernel's axis -2)",
)

OPS: tuple[OpSpec, ...] = (
    OpSpec(
        "clip", "Clip to range", "Clip",
        "np.clip(w, min, max): values outside [min, max] become the nearest bound",
        _RANGE, lambda t, v: Clip(target=t, min=v["min"], max=v["max"]),
    ),
    OpSpec(
        "clip_symmetric", "Clip to ±t", "Clip",
        "np.clip(w, -t, t): limit every |w| to the threshold t",
        (Param("t", "threshold t", default=0.1, lo=0.0, tip="symmetric threshold (>= 0)"),),
        lambda t, v: Clip(target=t, min=-v["t"], max=v["t"]),
    ),
    OpSpec(
        "clip_percentile", "Clip to percentiles", "Clip",
        "np.clip(w, np.percentile(w, lower), np.percentile(w, upper)), per tensor",
        (
            Param("lower", "lower", default=1.0, lo=0.0, hi=100.0, decimals=3, step=0.5, suffix=" %"),
            Param("upper", "upper", default=99.0, lo=0.0, hi=100.0, decimals=3, step=0.5, suffix=" %"),
        ),
        lambda t, v: ClipPercentile(target=t, lower=v["lower"], upper=v["upper"]),
    ),
    OpSpec(
        "zero_range", "Zero inside range", "Zero",
        "w[(w >= min) & (w <= max)] = 0",
        _RANGE, lambda t, v: ZeroRange(target=t, min=v["min"], max=v["max"]),
    ),
    OpSpec(
        "zero_outside", "Zero outside range", "Zero",
        "w[(w < min) | (w > max)] = 0",
        _RANGE, lambda t, v: ZeroOutside(target=t, min=v["min"], max=v["max"]),
    ),
    OpSpec(
        "prune_magnitude", "Prune by magnitude", "Prune",
        "w[|w| <= threshold] = 0, or zero the smallest |w| up to a target sparsity (per tensor or one global ranking)",
        (
            Param("by", "by", kind="choice", choices=("sparsity", "threshold"), default="sparsity"),
            Param("sparsity", "target sparsity", default=0.5, lo=0.0, hi=1.0, percent=True, decimals=2,
                  step=5.0, visible=_is("by", "sparsity"), tip="fraction of the smallest |w| set to zero"),
            Param("threshold", "threshold", default=0.01, lo=0.0, visible=_is("by", "threshold"),
                  tip="entries with |w| <= threshold become zero"),
            Param("scope", "scope", kind="choice", choices=("tensor", "global"), default="tensor",
                  tip="tensor: each target on its own; global: one ranking (one threshold) across all targets"),
        ),
        lambda t, v: PruneMagnitude(target=t, threshold=v.get("threshold"), sparsity=v.get("sparsity"),
                                    scope=v["scope"]),
    ),
    OpSpec(
        "prune_neurons", "Prune neurons (structured)", "Prune",
        "zero the output neurons/filters with the smallest L1/L2 norm: kernel[..., j] = 0 and bias[j] = 0",
        (
            Param("by", "by", kind="choice", choices=("fraction", "count"), default="fraction"),
            Param("fraction", "fraction", default=0.25, lo=0.0, hi=1.0, percent=True, decimals=2, step=5.0,
                  visible=_is("by", "fraction"), tip="floor(fraction * neurons) neurons are zeroed"),
            Param("count", "count", kind="int", default=1, lo=0, hi=10**9, visible=_is("by", "count")),
            Param("norm", "norm", kind="choice", choices=("l1", "l2"), default="l1"),
        ),
        lambda t, v: PruneNeurons(target=t, count=v.get("count"), fraction=v.get("fraction"), norm=v["norm"]),
        neurons=True,
    ),
    OpSpec(
        "zero_neurons", "Zero neurons (ablate)", "Neurons",
        "kernel[..., j] = 0 and bias[j] = 0 (axis out), or kernel[..., i, :] = 0 (axis in)",
        (
            _NEURON_LIST,
            _AXIS,
            Param("batchnorm", "also silence following BatchNorm", kind="bool", default=False,
                  disabled=_no_batchnorm,
                  tip="zero the channel's gamma and beta in the next BatchNormalization so it stays zero"),
        ),
        lambda t, v: ZeroNeurons(target=t, neurons=v["neurons"], axis=v["axis"],
                                 batchnorm=bool(v.get("batchnorm"))),
        neurons=True,
    ),
    OpSpec(
        "scale_neurons", "Scale neurons", "Neurons",
        "kernel[..., j] *= factor and bias[j] *= factor (axis out), or kernel[..., i, :] *= factor (axis in)",
        (_NEURON_LIST, _AXIS, Param("factor", "factor", default=0.5, step=0.1)),
        lambda t, v: ScaleNeurons(target=t, neurons=v["neurons"], axis=v["axis"], factor=v["factor"]),
        neurons=True,
    ),
    OpSpec(
        "scale", "Scale", "Arithmetic", "w * factor",
        (Param("factor", "factor", default=0.5, step=0.1),),
        lambda t, v: Scale(target=t, factor=v["factor"]),
    ),
    OpSpec(
        "add", "Add constant", "Arithmetic", "w + value",
        (Param("value", "value", default=0.01),),
        lambda t, v: Add(target=t, value=v["value"]),
    ),
    OpSpec(
        "add_noise", "Add Gaussian noise", "Arithmetic",
        "w + rng.normal(0, std, w.shape); the generator is seeded by (seed, tensor name)",
        (
            Param("std", "std", default=0.01, lo=0.0, tip="standard deviation of the noise"),
            Param("seed", "seed", kind="int", default=0, lo=0, hi=2**31 - 1, tip="same seed, same noise"),
        ),
        lambda t, v: AddNoise(target=t, std=v["std"], seed=v["seed"]),
    ),
    OpSpec(
        "set", "Set one value", "Arithmetic",
        "w[index] = value (or double-click a heatmap cell)",
        (
            Param("index", "index", kind="index", default="0, 0", tip="one integer per axis, e.g. 1, 2, 0, 5"),
            Param("value", "value", default=0.0),
        ),
        lambda t, v: SetValue(target=t, index=v["index"], value=v["value"]),
    ),
    OpSpec(
        "reinit", "Re-initialize", "Init",
        "w = initializer(w.shape), Keras' formulas drawn with a seeded NumPy generator",
        (
            Param("initializer", "initializer", kind="choice", choices=INITIALIZERS, default="glorot_uniform"),
            Param("seed", "seed", kind="int", default=0, lo=0, hi=2**31 - 1),
            Param("mean", "mean", default=0.0, visible=_is("initializer", "random_normal", "truncated_normal")),
            Param("stddev", "stddev", default=0.05, lo=0.0,
                  visible=_is("initializer", "random_normal", "truncated_normal")),
            Param("minval", "minval", default=-0.05, visible=_is("initializer", "random_uniform")),
            Param("maxval", "maxval", default=0.05, visible=_is("initializer", "random_uniform")),
        ),
        lambda t, v: Reinit(target=t, initializer=v["initializer"], seed=v["seed"], mean=v.get("mean"),
                            stddev=v.get("stddev"), minval=v.get("minval"), maxval=v.get("maxval")),
    ),
)

#: ``key -> OpSpec``.
OPS_BY_KEY: dict[str, OpSpec] = {op.key: op for op in OPS}


# -- the form widget -------------------------------------------------------------------


class ParamForm(QWidget):
    """The fields of one :class:`OpSpec`, built from its :class:`Param` s.

    Signals
    -------
    changed():
        A value changed (the panel re-validates the edit).
    """

    changed = Signal()

    def __init__(self, spec: OpSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self.context = FormContext()
        self.fields: dict[str, QWidget] = {}
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setVerticalSpacing(3)
        for p in spec.params:
            w = self._make(p)
            w.setToolTip(p.tip)
            self.fields[p.name] = w
            if p.kind == "bool":
                self.form.addRow(w)
            else:
                self.form.addRow(p.label, w)
        self.set_values({p.name: p.default for p in spec.params})
        self._refresh()

    def _make(self, p: Param) -> QWidget:
        if p.kind == "float":
            w = QDoubleSpinBox()
            scale = 100.0 if p.percent else 1.0
            w.setRange(p.lo * scale, p.hi * scale)
            w.setDecimals(p.decimals)
            w.setSingleStep(p.step)
            w.setSuffix(" %" if p.percent else p.suffix)
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self._on_change)
        elif p.kind == "int":
            w = QSpinBox()
            w.setRange(int(p.lo), int(min(p.hi, 2**31 - 1)))
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self._on_change)
        elif p.kind == "choice":
            w = QComboBox()
            w.addItems(list(p.choices))
            w.currentTextChanged.connect(self._on_change)
        elif p.kind == "bool":
            w = QCheckBox(p.label)
            w.toggled.connect(self._on_change)
        elif p.kind in ("indices", "index"):
            w = QLineEdit()
            w.setPlaceholderText(p.tip.split(",")[0] if p.tip else "")
            w.textChanged.connect(self._on_change)
        else:
            raise ValueError(f"unknown parameter kind {p.kind!r}")
        return w

    # -- values -----------------------------------------------------------------
    def raw_values(self) -> Values:
        """Every field's value as shown (numbers as edits take them, index lists as text)."""
        out: Values = {}
        for p in self.spec.params:
            w = self.fields[p.name]
            if p.kind == "float":
                out[p.name] = w.value() / 100.0 if p.percent else w.value()
            elif p.kind == "int":
                out[p.name] = w.value()
            elif p.kind == "choice":
                out[p.name] = w.currentText()
            elif p.kind == "bool":
                out[p.name] = w.isChecked() and w.isEnabled()
            else:
                out[p.name] = w.text()
        return out

    def values(self) -> Values:
        """Values of the visible, enabled fields, parsed; raises ValueError for a bad index list."""
        raw = self.raw_values()
        out: Values = {}
        for p in self.spec.params:
            if not self._visible(p, raw) or not self.fields[p.name].isEnabled():
                continue
            v = raw[p.name]
            if p.kind == "indices":
                v = parse_indices(v)
            elif p.kind == "index":
                v = parse_index(v)
            out[p.name] = v
        return out

    def set_values(self, values: Values) -> None:
        """Set fields by name (fractions for percent fields; index lists as text or sequences)."""
        for name, v in values.items():
            p = next((q for q in self.spec.params if q.name == name), None)
            if p is None:
                continue
            w = self.fields[name]
            w.blockSignals(True)
            if p.kind == "float":
                w.setValue(float(v) * (100.0 if p.percent else 1.0))
            elif p.kind == "int":
                w.setValue(int(v))
            elif p.kind == "choice":
                w.setCurrentText(str(v))
            elif p.kind == "bool":
                w.setChecked(bool(v))
            elif p.kind == "indices":
                w.setText(v if isinstance(v, str) else format_indices(list(v)))
            else:
                w.setText(v if isinstance(v, str) else ", ".join(str(i) for i in v))
            w.blockSignals(False)
        self._refresh()
        self.changed.emit()

    def set_context(self, context: FormContext) -> None:
        """New model/layer: re-evaluate which fields are enabled."""
        self.context = context
        self._refresh()

    def build(self, target: Target) -> Edit:
        """The edit these values describe on ``target``; raises ValueError for bad values."""
        return self.spec.build(target, self.values())

    # -- visibility ---------------------------------------------------------------
    @staticmethod
    def _visible(p: Param, raw: Values) -> bool:
        return p.visible is None or bool(p.visible(raw))

    def _refresh(self) -> None:
        raw = self.raw_values()
        for p in self.spec.params:
            w = self.fields[p.name]
            self.form.setRowVisible(w, self._visible(p, raw))
            if p.disabled is not None:
                reason = p.disabled(self.context, raw)
                w.setEnabled(reason is None)
                w.setToolTip(p.tip if reason is None else f"{p.tip}\n(unavailable: {reason})")

    def _on_change(self, *_args) -> None:
        self._refresh()
        self.changed.emit()

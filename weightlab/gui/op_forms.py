"""Declarative parameter forms for every edit op.

Each op of the edit panel is an :class:`OpSpec`: a label, a group, a one-line
tooltip with the NumPy meaning (these three from :mod:`weightlab.core.catalogue`),
its parameters (:class:`Param`, kinds, defaults and ranges from the catalogue
too) and a ``build(target, values)`` function that turns the form's values into
a :class:`weightlab.core.edits.Edit`. One widget, :class:`ParamForm`, renders any
spec, so adding an op is adding a spec, never a new form.

The GUI only builds edit objects; the arithmetic is the core's.
"""

from __future__ import annotations

import math
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

from weightlab.core.catalogue import CATALOGUE, ParamInfo
from weightlab.core.edits import (
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
# Labels, groups, NumPy meanings, parameter kinds, defaults, ranges and help come
# from the core's catalogue (weightlab.core.catalogue); what is written here is
# the form's own: field labels that read better than a parameter name, the
# "by" switches between alternative parameters, visibility/enablement rules,
# steps and decimals, and the ``clip_symmetric`` shorthand.


def _is(name: str, *values: str) -> Callable[[Values], bool]:
    return lambda v: v.get(name) in values


def _no_batchnorm(ctx: FormContext, v: Values) -> str | None:
    if v.get("axis") != "out":
        return "BatchNorm silencing applies to output neurons (axis out) only"
    if ctx.batchnorm is None:
        return f"no BatchNormalization follows layer {ctx.layer!r} in the stored architecture"
    return None


def _field(op: str, name: str, **form: Any) -> Param:
    """The form field of parameter ``name`` of ``op``, from the catalogue; ``form`` overrides."""
    p: ParamInfo = CATALOGUE[op].param(name)
    kw: dict[str, Any] = {"name": p.name, "label": p.name, "kind": p.kind, "tip": p.help, "choices": p.choices}
    if p.kind == "indices":
        kw["default"] = format_indices(list(p.suggested)) if p.suggested else ""
    elif p.kind == "index":
        kw["default"] = ", ".join(str(i) for i in p.suggested)
    else:
        kw["default"] = p.suggested
    if p.lo is not None and math.isfinite(p.lo):
        kw["lo"] = p.lo
    if p.hi is not None and math.isfinite(p.hi):
        kw["hi"] = p.hi
    if p.unit == "fraction":
        kw.update(percent=True, decimals=2, step=5.0)
    elif p.unit == "%":
        kw.update(suffix=" %", decimals=3, step=0.5)
    kw.update(form)
    return Param(**kw)


def _op(op: str, params: tuple[Param, ...], build: Callable[[Target, Values], Edit], **form: Any) -> OpSpec:
    """The panel entry of recipe op ``op``: label, group and tooltip from the catalogue."""
    info = CATALOGUE[op]
    kw: dict[str, Any] = {"label": info.label, "group": info.group, "tip": info.meaning,
                          "neurons": info.target == "layer"}
    kw.update(form)
    return OpSpec(op, params=params, build=build, **kw)


def _range(op: str) -> tuple[Param, ...]:
    return (_field(op, "min"), _field(op, "max"))


def _neuron_list(op: str) -> Param:
    return _field(op, "neurons", tip="neuron indices, e.g. 0, 3, 5-7 (filled from the heatmap/norm selection)")


def _reinit_field(name: str, **form: Any) -> Param:
    """A reinit argument's field, shown only for the initializers that take it (the catalogue's ``when``)."""
    other, values = CATALOGUE["reinit"].param(name).when or ("initializer", ())
    return _field("reinit", name, visible=_is(other, *values), **form)


_REINIT_ARGS = ("mean", "stddev", "minval", "maxval", "value", "scale", "mode", "distribution", "gain")
_REINIT_FORM: dict[str, dict[str, Any]] = {"scale": {"lo": 1e-6, "step": 0.1}, "gain": {"step": 0.1}}  # scale > 0

OPS: tuple[OpSpec, ...] = (
    _op("clip", _range("clip"), lambda t, v: Clip(target=t, min=v["min"], max=v["max"])),
    OpSpec(
        "clip_symmetric", "Clip to ±t", CATALOGUE["clip"].group,
        "np.clip(w, -t, t): limit every |w| to the threshold t",
        (Param("t", "threshold t", default=0.1, lo=0.0, tip="symmetric threshold (>= 0)"),),
        lambda t, v: Clip(target=t, min=-v["t"], max=v["t"]),
    ),
    _op(
        "clip_percentile",
        (_field("clip_percentile", "lower"), _field("clip_percentile", "upper")),
        lambda t, v: ClipPercentile(target=t, lower=v["lower"], upper=v["upper"]),
    ),
    _op("zero_range", _range("zero_range"), lambda t, v: ZeroRange(target=t, min=v["min"], max=v["max"])),
    _op("zero_outside", _range("zero_outside"), lambda t, v: ZeroOutside(target=t, min=v["min"], max=v["max"])),
    _op(
        "prune_magnitude",
        (
            Param("by", "by", kind="choice", choices=("sparsity", "threshold"), default="sparsity"),
            _field("prune_magnitude", "sparsity", label="target sparsity", visible=_is("by", "sparsity")),
            _field("prune_magnitude", "threshold", visible=_is("by", "threshold")),
            _field("prune_magnitude", "scope"),
        ),
        lambda t, v: PruneMagnitude(target=t, threshold=v.get("threshold"), sparsity=v.get("sparsity"),
                                    scope=v["scope"]),
    ),
    _op(
        "prune_neurons",
        (
            Param("by", "by", kind="choice", choices=("fraction", "count"), default="fraction"),
            _field("prune_neurons", "fraction", visible=_is("by", "fraction")),
            _field("prune_neurons", "count", visible=_is("by", "count")),
            _field("prune_neurons", "norm"),
        ),
        lambda t, v: PruneNeurons(target=t, count=v.get("count"), fraction=v.get("fraction"), norm=v["norm"]),
    ),
    _op(
        "zero_neurons",
        (
            _neuron_list("zero_neurons"),
            _field("zero_neurons", "axis"),
            _field("zero_neurons", "batchnorm", label="also silence following BatchNorm", disabled=_no_batchnorm),
        ),
        lambda t, v: ZeroNeurons(target=t, neurons=v["neurons"], axis=v["axis"],
                                 batchnorm=bool(v.get("batchnorm"))),
    ),
    _op(
        "scale_neurons",
        (_neuron_list("scale_neurons"), _field("scale_neurons", "axis"), _field("scale_neurons", "factor", step=0.1)),
        lambda t, v: ScaleNeurons(target=t, neurons=v["neurons"], axis=v["axis"], factor=v["factor"]),
    ),
    _op("scale", (_field("scale", "factor", step=0.1),), lambda t, v: Scale(target=t, factor=v["factor"])),
    _op("add", (_field("add", "value"),), lambda t, v: Add(target=t, value=v["value"])),
    _op(
        "add_noise",
        (_field("add_noise", "std"), _field("add_noise", "seed")),
        lambda t, v: AddNoise(target=t, std=v["std"], seed=v["seed"]),
    ),
    _op(
        "set",
        (_field("set", "index"), _field("set", "value")),
        lambda t, v: SetValue(target=t, index=v["index"], value=v["value"]),
        tip=CATALOGUE["set"].meaning + " (or double-click a heatmap cell)",
    ),
    _op(
        "reinit",
        (
            _field("reinit", "initializer"),
            _field("reinit", "seed"),
            *(_reinit_field(name, **_REINIT_FORM.get(name, {})) for name in _REINIT_ARGS),
        ),
        lambda t, v: Reinit(target=t, initializer=v["initializer"], seed=v["seed"],
                            **{name: v.get(name) for name in _REINIT_ARGS}),
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
        # a narrow dock puts a long label's field under it instead of squeezing both
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
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
            # as narrow as a few characters allow (the list shows whole names): never wider than the dock
            w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            w.setMinimumContentsLength(8)
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

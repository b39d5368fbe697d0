"""The catalogue of edits: one entry per recipe op, for menus, forms, help and docs.

Each registered edit class of :mod:`weightlab.core.edits` (``EDIT_TYPES``) has
an :class:`OpInfo` here: its recipe name, its class, a label for menus, the
group it is listed under, a one-line NumPy meaning, what it targets and its
parameters (:class:`ParamInfo`: kind, whether it is required, the class's
default, a suggested starting value, valid range or choices, unit, help). The
window's operation forms, ``weightlab apply --help`` and the op table of
``docs/recipes.md`` are all built from it, so they cannot disagree.

Which parameters an op has, and their defaults, come from the edit's dataclass
fields; labels, meanings, ranges and help are written here. The valid ranges
are those the recipe parser enforces (a test checks both agree).

``python -m weightlab.core.catalogue`` prints the Markdown op table of
``docs/recipes.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .edits import EDIT_TYPES, INITIALIZER_PARAMS, INITIALIZERS, VS_DISTRIBUTIONS, VS_MODES, Edit

#: Kinds of parameter values: a float, an integer, one string of ``choices``,
#: a bool, a list of neuron indices, one index per axis.
PARAM_KINDS = ("float", "int", "choice", "bool", "indices", "index")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of an edit.

    Attributes
    ----------
    name:
        The edit's field name and the recipe key (``"sparsity"``).
    kind:
        One of :data:`PARAM_KINDS`.
    help:
        One line: what the value means.
    required:
        True when the edit has no default for it.
    default:
        The edit's default (None when required or when "not given" is None).
    suggested:
        A sensible starting value for a form (the default when there is one).
    lo, hi:
        Valid range (inclusive); None where unbounded.
    choices:
        For ``"choice"``: the accepted strings.
    unit:
        ``"%"`` for percentiles (0..100), ``"fraction"`` for 0..1 shares, else ``""``.
    alternative:
        Name of a group of parameters of which exactly one is given
        (``"amount"`` for ``threshold``/``sparsity``), or ``""``. The first
        member of a group is the one a form or a test offers first.
    joint:
        Within an alternative group, the name of parameters that are given
        together as one choice (clip's ``min`` and ``max``, ``"bounds"``,
        against its ``threshold``), or ``""``.
    when:
        ``(other parameter, values)``: the parameter applies only when the
        other one has one of these values, and the edit refuses it otherwise
        (reinit's ``mean``: ``("initializer", ("random_normal",
        "truncated_normal"))``); ``None``: always applies.
    """

    name: str
    kind: str
    help: str
    required: bool
    default: Any
    suggested: Any
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    alternative: str = ""
    joint: str = ""
    when: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class OpInfo:
    """One edit op.

    Attributes
    ----------
    op:
        Recipe op name (``"prune_magnitude"``).
    cls:
        The :class:`~weightlab.core.edits.Edit` subclass.
    label:
        Menu text (``"Prune by magnitude"``).
    group:
        Menu group (``"Prune"``).
    meaning:
        One line: what the op computes, in NumPy terms.
    target:
        ``"tensors"`` (a tensor selection) or ``"layer"`` (a neuron edit's layer).
    params:
        Parameters in the edit's field order (``target`` left out).
    notes:
        Further detail for the documentation ("" when none).
    """

    op: str
    cls: type[Edit]
    label: str
    group: str
    meaning: str
    target: str
    params: tuple[ParamInfo, ...]
    notes: str = ""

    def param(self, name: str) -> ParamInfo:
        """The parameter called ``name``; raises KeyError when the op has none."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.op} has no parameter {name!r}")


# -- the explicit data ------------------------------------------------------------------
# Per parameter: kind, help, suggested value, then optional lo/hi/choices/unit/alternative.

_INF = math.inf

_RANGE_PARAMS: dict[str, dict[str, Any]] = {
    "min": {"kind": "float", "help": "lower bound (inclusive)", "suggested": -0.1},
    "max": {"kind": "float", "help": "upper bound (inclusive)", "suggested": 0.1},
}
_NEURONS: dict[str, Any] = {
    "kind": "indices",
    "help": "neuron indices, e.g. 0, 3, 5-7",
    "suggested": (),
}
_AXIS: dict[str, Any] = {
    "kind": "choice",
    "help": "out: output neurons (kernel's last axis and bias); in: input units (kernel's axis -2)",
    "suggested": "out",
    "choices": ("out", "in"),
}
def _initializers_taking(arg: str) -> tuple[str, tuple[str, ...]]:
    """reinit's ``when``: the initializers that take argument ``arg``."""
    return "initializer", tuple(i for i in INITIALIZERS if arg in INITIALIZER_PARAMS[i])


_SEED: dict[str, Any] = {"kind": "int", "help": "same seed, same values", "suggested": 0, "lo": 0, "hi": 2**63 - 1}

#: ``op -> (label, group, target, meaning, notes, {param: data})``, in menu order.
_DATA: dict[str, tuple[str, str, str, str, str, dict[str, dict[str, Any]]]] = {
    "clip": (
        "Clip to range", "Clip", "tensors",
        "np.clip(w, min, max): values outside [min, max] become the nearest bound",
        "`min <= max`; `threshold: t` is the symmetric clip `min = -t, max = t` (one number, so a sweep can vary it)",
        {
            "threshold": {"kind": "float", "help": "symmetric bound t: the same as min = -t, max = t",
                          "suggested": 0.1, "lo": 0.0, "hi": _INF, "alternative": "range"},
            "min": {**_RANGE_PARAMS["min"], "alternative": "range", "joint": "bounds"},
            "max": {**_RANGE_PARAMS["max"], "alternative": "range", "joint": "bounds"},
        },
    ),
    "clip_percentile": (
        "Clip to percentiles", "Clip", "tensors",
        "np.clip(w, np.percentile(w, lower), np.percentile(w, upper)), per tensor",
        "percentiles by linear interpolation, in float64",
        {
            "lower": {"kind": "float", "help": "lower percentile", "suggested": 1.0, "lo": 0.0, "hi": 100.0,
                      "unit": "%"},
            "upper": {"kind": "float", "help": "upper percentile", "suggested": 99.0, "lo": 0.0, "hi": 100.0,
                      "unit": "%"},
        },
    ),
    "zero_range": (
        "Zero inside range", "Zero", "tensors",
        "w[(w >= min) & (w <= max)] = 0",
        "inclusive bounds, `min <= max`",
        _RANGE_PARAMS,
    ),
    "zero_outside": (
        "Zero outside range", "Zero", "tensors",
        "w[(w < min) | (w > max)] = 0",
        "`min <= max`",
        _RANGE_PARAMS,
    ),
    "prune_magnitude": (
        "Prune by magnitude", "Prune", "tensors",
        "w[|w| <= threshold] = 0, or zero the smallest |w| up to a target sparsity "
        "(per tensor or one global ranking)",
        "sparsity: the `floor(sparsity * n)` entries of smallest `abs(w)` become zero (ties by position, so the "
        "count is exact), per tensor, or ranked over all selected tensors together with `\"global\"` "
        "(one threshold for all)",
        {
            "threshold": {"kind": "float", "help": "entries with |w| <= threshold become zero", "suggested": 0.01,
                          "lo": 0.0, "hi": _INF, "alternative": "amount"},
            "sparsity": {"kind": "float", "help": "fraction of the smallest |w| set to zero", "suggested": 0.5,
                         "lo": 0.0, "hi": 1.0, "unit": "fraction", "alternative": "amount"},
            "scope": {"kind": "choice", "choices": ("tensor", "global"), "suggested": "tensor",
                      "help": "tensor: each target on its own; global: one ranking (one threshold) across all targets"},
        },
    ),
    "prune_neurons": (
        "Prune neurons (structured)", "Prune", "layer",
        "zero the output neurons/filters with the smallest L1/L2 norm: kernel[..., j] = 0 and bias[j] = 0",
        "`count` of them or `floor(fraction * units)`; ties by index",
        {
            "count": {"kind": "int", "help": "how many neurons are zeroed", "suggested": 1, "lo": 0, "hi": _INF,
                      "alternative": "amount"},
            "fraction": {"kind": "float", "help": "floor(fraction * neurons) neurons are zeroed", "suggested": 0.25,
                         "lo": 0.0, "hi": 1.0, "unit": "fraction", "alternative": "amount"},
            "norm": {"kind": "choice", "choices": ("l1", "l2"), "suggested": "l1",
                     "help": "the kernel norm that ranks neurons"},
        },
    ),
    "zero_neurons": (
        "Zero neurons (ablate)", "Neurons", "layer",
        "kernel[..., j] = 0 and bias[j] = 0 (axis out), or kernel[..., i, :] = 0 (axis in)",
        "`batchnorm: true` also silences a directly following BatchNormalization (through dropout/ReLU/pooling) "
        "for those channels: its `gamma` and `beta` become 0 (or `beta` and `moving_mean` when it has no "
        "`gamma`), so the channel is really zero downstream",
        {
            "neurons": _NEURONS,
            "axis": _AXIS,
            "batchnorm": {"kind": "bool", "suggested": False,
                          "help": "zero the channel's gamma and beta in the next BatchNormalization so it stays zero"},
        },
    ),
    "scale_neurons": (
        "Scale neurons", "Neurons", "layer",
        "kernel[..., j] *= factor and bias[j] *= factor (axis out), or kernel[..., i, :] *= factor (axis in)",
        "",
        {
            "neurons": _NEURONS,
            "axis": _AXIS,
            "factor": {"kind": "float", "help": "multiplier", "suggested": 0.5},
        },
    ),
    "scale": (
        "Scale", "Arithmetic", "tensors", "w * factor", "",
        {"factor": {"kind": "float", "help": "multiplier", "suggested": 0.5}},
    ),
    "add": (
        "Add constant", "Arithmetic", "tensors", "w + value", "",
        {"value": {"kind": "float", "help": "added to every entry", "suggested": 0.01}},
    ),
    "add_noise": (
        "Add Gaussian noise", "Arithmetic", "tensors",
        "w + rng.normal(0, std, w.shape); the generator is seeded by (seed, tensor name)",
        "NumPy's PCG64 seeded with `[seed, crc32(tensor name)]`: the same seed gives the same weights, whatever "
        "else the step selects",
        {
            "std": {"kind": "float", "help": "standard deviation of the noise", "suggested": 0.01, "lo": 0.0,
                    "hi": _INF},
            "seed": _SEED,
        },
    ),
    "set": (
        "Set one value", "Arithmetic", "tensors",
        "w[index] = value",
        "",
        {
            "index": {"kind": "index", "help": "one integer per axis, e.g. 1, 2, 0, 5", "suggested": (0, 0)},
            "value": {"kind": "float", "help": "the new value", "suggested": 0.0},
        },
    ),
    "reinit": (
        "Re-initialize", "Init", "tensors",
        "w = initializer(w.shape), Keras' formulas drawn with a seeded NumPy generator",
        "every Keras built-in initializer with its arguments, Keras' defaults where not given "
        "(`RandomNormal(mean=0.0, stddev=0.05)`, `TruncatedNormal` cut at 2 stddev, "
        "`RandomUniform(minval=-0.05, maxval=0.05)`, `Constant(value=0.0)`, "
        "`VarianceScaling(scale=1.0, mode=\"fan_in\", distribution=\"truncated_normal\")` with `compute_fans`, "
        "`Orthogonal(gain=1.0)` (QR of a normal draw, at least 2-D), `Identity(gain=1.0)` (2-D only)); an argument "
        "the initializer does not take is refused; drawn with NumPy's PCG64 seeded by "
        "`[seed, crc32(tensor name)]`: the same distribution as Keras, not the same values",
        {
            "initializer": {"kind": "choice", "choices": INITIALIZERS, "suggested": "glorot_uniform",
                            "help": "a Keras built-in initializer"},
            "seed": _SEED,
            "mean": {"kind": "float", "help": "mean (random_normal, truncated_normal)", "suggested": 0.0,
                     "when": _initializers_taking("mean")},
            "stddev": {"kind": "float", "help": "standard deviation (random_normal, truncated_normal)",
                       "suggested": 0.05, "lo": 0.0, "hi": _INF, "when": _initializers_taking("stddev")},
            "minval": {"kind": "float", "help": "lower bound (random_uniform)", "suggested": -0.05,
                       "when": _initializers_taking("minval")},
            "maxval": {"kind": "float", "help": "upper bound (random_uniform)", "suggested": 0.05,
                       "when": _initializers_taking("maxval")},
            "value": {"kind": "float", "help": "the value of every entry (constant)", "suggested": 0.0,
                      "when": _initializers_taking("value")},
            "scale": {"kind": "float", "help": "scaling factor, > 0 (variance_scaling)", "suggested": 1.0,
                      "when": _initializers_taking("scale")},
            "mode": {"kind": "choice", "choices": VS_MODES, "suggested": "fan_in",
                     "help": "the fan n in scale / n (variance_scaling)", "when": _initializers_taking("mode")},
            "distribution": {"kind": "choice", "choices": VS_DISTRIBUTIONS, "suggested": "truncated_normal",
                             "help": "the distribution drawn from (variance_scaling)",
                             "when": _initializers_taking("distribution")},
            "gain": {"kind": "float", "help": "multiplicative factor (orthogonal, identity)", "suggested": 1.0,
                     "when": _initializers_taking("gain")},
        },
    ),
    "revert": (
        "Revert to stored", "Revert", "tensors",
        "w = the values stored in the opened file",
        "target `\"*\"` reverts the whole model",
        {},
    ),
}


def _kind_of(field: dataclasses.Field[Any]) -> str:
    t = str(field.type)
    if "bool" in t:
        return "bool"
    if "tuple" in t:
        return "indices"
    if "int" in t:
        return "int"
    return "float" if "float" in t else "choice"


def _param(field: dataclasses.Field[Any], data: dict[str, Any] | None) -> ParamInfo:
    data = dict(data or {})
    required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    default = None if field.default is dataclasses.MISSING else field.default
    suggested = data.pop("suggested", default)
    return ParamInfo(
        name=field.name,
        kind=data.pop("kind", _kind_of(field)),
        help=data.pop("help", ""),
        required=required,
        default=default,
        suggested=default if default is not None else suggested,
        **data,
    )


def _build() -> dict[str, OpInfo]:
    out: dict[str, OpInfo] = {}
    ordered = [op for op in _DATA if op in EDIT_TYPES] + [op for op in EDIT_TYPES if op not in _DATA]
    for op in ordered:
        cls = EDIT_TYPES[op]
        label, group, target, meaning, notes, params = _DATA.get(
            op, (op, "Other", "tensors", (cls.__doc__ or op).strip().splitlines()[0], "", {})
        )
        fields = [f for f in dataclasses.fields(cls) if f.name != "target"]
        out[op] = OpInfo(op, cls, label, group, meaning, target, tuple(_param(f, params.get(f.name)) for f in fields),
                         notes)
    return out


#: ``op name -> OpInfo`` for every registered edit, in menu order.
CATALOGUE: dict[str, OpInfo] = _build()


def op_info(op: str) -> OpInfo:
    """The catalogue entry of recipe op ``op``.

    Raises
    ------
    KeyError
        When no edit is registered under ``op``.
    """
    return CATALOGUE[op]


# -- sweepable parameters -----------------------------------------------------------------


@dataclass(frozen=True)
class SweepParam:
    """A numeric parameter a sweep can vary while the op's other parameters stay fixed.

    Attributes
    ----------
    op, name:
        The recipe op and the parameter (``"clip"``, ``"threshold"``).
    kind:
        ``"float"`` or ``"int"``.
    lo, hi:
        Valid range (inclusive), from the catalogue; ``inf`` where unbounded.
    neutral:
        The value at which the edit changes nothing (``inf`` for a clip
        threshold, ``0`` for a sparsity, ``1`` for a factor): the baseline's
        place on the curve.
    stronger:
        ``"up"`` when a larger value is a stronger edit (sparsity, noise),
        ``"down"`` when a smaller one is (a clip threshold, an upper
        percentile), ``""`` when neither (a scale factor: both sides of 1 change
        the weights). Plans and early stops need a direction.
    unit:
        The catalogue's unit (``"%"``, ``"fraction"`` or ``""``).
    """

    op: str
    name: str
    kind: str
    lo: float
    hi: float
    neutral: float
    stronger: str
    unit: str = ""


#: ``op -> {parameter: (neutral value, stronger direction)}``: the numeric
#: parameters worth sweeping (seeds, indices and pairs such as ``min``/``max`` are not).
_SWEEPABLE: dict[str, dict[str, tuple[float, str]]] = {
    "clip": {"threshold": (_INF, "down")},
    "clip_percentile": {"lower": (0.0, "up"), "upper": (100.0, "down")},
    "prune_magnitude": {"sparsity": (0.0, "up"), "threshold": (0.0, "up")},
    "prune_neurons": {"fraction": (0.0, "up"), "count": (0.0, "up")},
    "scale": {"factor": (1.0, "")},
    "scale_neurons": {"factor": (1.0, "")},
    "add": {"value": (0.0, "")},
    "add_noise": {"std": (0.0, "up")},
}


def _sweepable() -> dict[tuple[str, str], SweepParam]:
    out: dict[tuple[str, str], SweepParam] = {}
    for op, params in _SWEEPABLE.items():
        if op not in CATALOGUE:  # pragma: no cover - an op left the registry
            continue
        for name, (neutral, stronger) in params.items():
            p = CATALOGUE[op].param(name)
            lo = -_INF if p.lo is None else float(p.lo)
            hi = _INF if p.hi is None else float(p.hi)
            out[op, name] = SweepParam(op, name, p.kind, lo, hi, neutral, stronger, p.unit)
    return out


#: ``(op, parameter) -> SweepParam`` for every sweepable numeric parameter, in menu order.
SWEEPABLE: dict[tuple[str, str], SweepParam] = _sweepable()


def sweepable_params(op: str | None = None) -> tuple[SweepParam, ...]:
    """The sweepable numeric parameters of ``op`` (of every op when None), in catalogue order.

    Examples
    --------
    >>> [p.name for p in sweepable_params("prune_magnitude")]
    ['sparsity', 'threshold']
    """
    return tuple(p for (o, _), p in SWEEPABLE.items() if op is None or o == op)


def sweep_param(op: str, name: str) -> SweepParam:
    """The :class:`SweepParam` of ``op``'s parameter ``name``.

    Raises
    ------
    RecipeError
        When ``op`` is unknown or ``name`` is not one of its sweepable
        parameters; the message lists those it has.
    """
    from .errors import RecipeError

    if op not in CATALOGUE:
        raise RecipeError(f"sweep: unknown op {op!r}; known ops: {', '.join(sorted(CATALOGUE))}")
    found = SWEEPABLE.get((op, name))
    if found is None:
        names = [p.name for p in sweepable_params(op)]
        have = f"its sweepable parameters are {', '.join(names)}" if names else "it has no sweepable parameter"
        raise RecipeError(f"sweep: {op} has no sweepable parameter {name!r}; {have}")
    return found


# -- text renderings --------------------------------------------------------------------


def _num(v: float) -> str:
    return "inf" if v == _INF else f"{v:g}" if isinstance(v, float) else str(v)


def _param_text(p: ParamInfo) -> str:
    text = f"`{p.name}`"
    if p.kind == "choice" and len(p.choices) <= 3:
        shown = [f'`"{c}"`' + (" (default)" if c == p.default else "") for c in p.choices]
        return f"{text}: " + " or ".join(shown)
    if p.kind == "choice":
        return f"{text}: one of " + ", ".join(f"`{c}`" for c in p.choices)
    facts = []
    if p.kind == "int":
        facts.append("integer")
    elif p.kind in ("indices", "index"):
        facts.append("indices" if p.kind == "indices" else "one integer per axis")
    elif p.kind == "bool":
        facts.append("bool")
    if p.lo is not None and p.hi is not None and p.hi != _INF and p.kind != "int":
        facts.append(f"{_num(p.lo)}..{_num(p.hi)}" + (" %" if p.unit == "%" else ""))
    elif p.lo is not None and p.hi == _INF:
        facts.append(f">= {_num(p.lo)}")
    if p.default is not None:
        facts.append(f"default {str(p.default).lower() if isinstance(p.default, bool) else p.default}")
    return text + (f" ({', '.join(facts)})" if facts else "")


def params_text(info: OpInfo) -> str:
    """The parameters of ``info`` as one Markdown line (``"none"`` when it has none)."""
    parts: list[str] = []
    seen: set[str] = set()
    for p in info.params:
        if p.alternative:
            if p.alternative in seen:
                continue
            seen.add(p.alternative)
            group = [q for q in info.params if q.alternative == p.alternative]
            choices: dict[str, list[str]] = {}
            for q in group:
                choices.setdefault(q.joint or q.name, []).append(_param_text(q))
            parts.append(" **or** ".join(" and ".join(texts) for texts in choices.values()))
        else:
            parts.append(_param_text(p))
    return "; ".join(parts) or "none"


def markdown_table() -> str:
    """The op table of ``docs/recipes.md`` (Markdown, ending with a newline)."""
    lines = ["| op | target | parameters | effect (NumPy reference) |", "|---|---|---|---|"]
    for info in CATALOGUE.values():
        effect = f"`{info.meaning}`" + (f"; {info.notes}" if info.notes else "")
        lines.append(
            f"| `{info.op}` | {'layer' if info.target == 'layer' else 'tensors'} | {params_text(info)} | "
            + effect.replace("|", "\\|")
            + " |"
        )
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """Plain text listing every op with its meaning and parameters (for ``--help``)."""
    lines = ["edit ops (recipe \"op\" names; see docs/recipes.md):"]
    for info in CATALOGUE.values():
        names = ", ".join(p.name if p.required else f"[{p.name}]" for p in info.params) or "-"
        target = "LAYER" if info.target == "layer" else "TENSORS"
        lines.append(f"  {info.op:<16} {target} {names}")
        lines.append(f"  {'':<16} {info.meaning}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a maintenance helper
    print(markdown_table(), end="")

"""Sweeps and rankings as data: what to measure, and what was measured (pure NumPy).

A *sweep* varies one numeric parameter of one edit op (the catalogue's
:func:`~weightlab.core.catalogue.sweepable_params`: a clip ``threshold``, a
pruning ``sparsity``, a noise ``std``...) over values, on targets, and
measures the model at each point. In mode ``"together"`` every target is
edited at once (the whole-model clipping curve: one curve); in mode
``"each"`` every matched tensor (value ops) or layer (neuron ops) is edited
*alone*, the rest of the model as it is (sensitivity analysis: one curve per
target). A *ranking* ablates each output neuron/filter of one layer alone and
sorts them by the accuracy it costs.

This module holds the job specs (:class:`SweepSpec`, :class:`RankSpec`: job
kinds ``"sweep"`` and ``"rank"`` of :mod:`weightlab.core.jobs`), the edit of
one point (:func:`sweep_edit`), the measured points and their statistics
(:class:`SweepPoint`, :class:`SweepResult`, :class:`UnitAblation`,
:class:`RankResult`), adaptive refinement (:func:`next_values`) and the
resumable log of partial results (:class:`SweepLog`). The engine
(:mod:`weightlab._tf.sweep`) runs the points.

Intervals are Wilson score intervals (Wilson 1927,
:func:`weightlab.core.stats.wilson_interval`) of the accuracy and the
agreement, each a proportion of ``num_samples`` held-out samples.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .catalogue import CATALOGUE, SweepParam, sweep_param
from .coupling import CoupledGroup, coupled_groups, find_group
from .edits import (
    Edit,
    edit_from_dict,
    is_depthwise,
    neuron_count,
    neuron_tensors,
    output_channels,
    resolve_tensors,
)
from .errors import DataError, RecipeError
from .jobs import JobSpec, register
from .model import ModelFile
from .stats import wilson_interval

__all__ = [
    "MODES",
    "METRICS",
    "MAX_POINTS",
    "SpecError",
    "parse_values",
    "parse_range",
    "SweepSpec",
    "SweepTarget",
    "sweep_targets",
    "sweep_edit",
    "CompositeEdit",
    "CoupledPruneNeurons",
    "recipe_edits",
    "SweepPoint",
    "SweepResult",
    "next_values",
    "drop_pp",
    "past_budget",
    "SweepLog",
    "RankSpec",
    "UnitAblation",
    "RankResult",
    "rank_edit",
]

#: Sweep modes: every target edited at once, or each alone.
MODES = ("together", "each")
#: Metrics a sweep's early stop, adaptive refinement and thresholds follow.
METRICS = ("accuracy", "agreement")
#: Most points one sweep may ask for (values x targets are checked by the engine).
MAX_POINTS = 10_000
#: Group ids in a spec's targets start with this (:mod:`weightlab.core.coupling`).
GROUP_PREFIX = "group:"


class SpecError(RecipeError, ValueError):
    """A sweep or rank spec with a bad field: a :class:`RecipeError` for users, and a
    ``ValueError`` as :func:`weightlab.core.jobs.spec_from_dict` documents (the worker
    answers a bad spec with ``JobFailed``)."""


def _bad(field_name: str, message: str) -> SpecError:
    return SpecError(f"sweep spec: field {field_name!r}: {message}")


def _number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise _bad(field_name, f"expected a finite number; got {value!r}")
    return float(value)


def _finite_or_none(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None (JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _clean(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    return _finite_or_none(x)


# -- the spec ----------------------------------------------------------------------------


@register
@dataclass(frozen=True)
class SweepSpec(JobSpec):
    """A sweep of one numeric parameter of one edit op (job kind ``"sweep"``).

    Exactly one of ``values``, ``value_range`` and ``adaptive`` says which
    values are measured.

    Attributes
    ----------
    op, param:
        A recipe op and one of its sweepable parameters
        (:func:`weightlab.core.catalogue.sweepable_params`).
    targets:
        Canonical tensor names, layer names, globs over canonical names
        (``"*/kernel"``), or coupled-group ids (``"group:add"``, see
        :mod:`weightlab.core.coupling`).
    values:
        Explicit values, measured in the order weakest to strongest.
    value_range:
        ``(start, stop, step)``: ``start, start + step, ...`` up to ``stop``
        inclusive (within ``1e-9`` of a step), values rounded to 12
        significant digits so that ``0.1 * 3`` reads ``0.3``.
    adaptive:
        ``(low, high)`` bounds for adaptive refinement (:func:`next_values`):
        ``initial_points`` evenly spaced values first (in ``scale``), then
        midpoints where the metric changes fastest, until neighbouring points
        differ by at most ``resolution_pp`` or ``max_points`` are measured
        (per target).
    max_points, initial_points, scale, resolution_pp:
        Adaptive refinement's point budget per target, first grid size,
        ``"linear"`` or ``"log"`` spacing, and resolution in percentage points.
    mode:
        ``"together"`` or ``"each"`` (see the module docstring).
    fixed:
        The op's other parameters (``{"scope": "global"}``, ``{"neurons": [0,
        3]}`` for ``scale_neurons``); ``target`` and ``param`` itself not allowed.
    budget_pp:
        Early stop: a target's stronger values are skipped once its drop in
        ``metric`` exceeds this many percentage points; None measures every
        value.
    coupled:
        Mode ``"each"`` with a neuron op: a layer that belongs to a coupled
        group (:func:`weightlab.core.coupling.coupled_groups`) is swept as its
        group (the group's channels edited together), not alone.
    metric:
        ``"accuracy"`` or ``"agreement"`` (with the unedited model; works
        without labels): what early stops, refinement and thresholds follow.
    live:
        False: a sweep queues and runs to its end.

    Raises
    ------
    RecipeError
        On construction, for a bad field; the message names it.
    """

    kind: ClassVar[str] = "sweep"
    op: str = ""
    param: str = ""
    targets: tuple[str, ...] = ()
    values: tuple[float, ...] = ()
    value_range: tuple[float, float, float] | None = None
    adaptive: tuple[float, float] | None = None
    max_points: int = 12
    initial_points: int = 5
    scale: str = "linear"
    resolution_pp: float = 1.0
    mode: str = "together"
    fixed: dict[str, Any] = field(default_factory=dict)
    budget_pp: float | None = None
    coupled: bool = False
    metric: str = "accuracy"
    live: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.op, str) and isinstance(self.param, str)):
            raise _bad("op", f"expected op and param names; got {self.op!r}, {self.param!r}")
        try:
            sp = sweep_param(self.op, self.param)
        except RecipeError as e:
            raise _bad("op" if self.op not in CATALOGUE else "param", str(e)) from None
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise _bad("targets", f"expected tensor/layer names, globs or group ids; got {self.targets!r}")
        object.__setattr__(self, "targets", targets)
        given = [n for n in ("values", "value_range", "adaptive") if getattr(self, n) not in (None, (), [])]
        if len(given) != 1:
            raise _bad("values", f"give exactly one of values, value_range, adaptive; got {given or 'none'}")
        if not isinstance(self.values, (list, tuple)):
            raise _bad("values", f"expected a list of numbers; got {self.values!r}")
        values = tuple(self._in_range(sp, _number(v, "values"), "values") for v in self.values)
        if len(set(values)) != len(values):
            raise _bad("values", "values repeat")
        object.__setattr__(self, "values", values)
        if self.value_range is not None:
            if not isinstance(self.value_range, (list, tuple)) or len(self.value_range) != 3:
                raise _bad("value_range", f"expected [start, stop, step]; got {self.value_range!r}")
            start, stop, step = (_number(v, "value_range") for v in self.value_range)
            if step == 0 or (stop - start) * step < 0:
                raise _bad("value_range", f"step {step:g} does not lead from {start:g} to {stop:g}")
            if (stop - start) / step + 1 > MAX_POINTS:
                raise _bad("value_range", f"more than {MAX_POINTS} values")
            object.__setattr__(self, "value_range", (start, stop, step))
            for v in self._range_values():
                self._in_range(sp, v, "value_range")
        if self.adaptive is not None:
            if not isinstance(self.adaptive, (list, tuple)) or len(self.adaptive) != 2:
                raise _bad("adaptive", f"expected [low, high]; got {self.adaptive!r}")
            lo, hi = (_number(v, "adaptive") for v in self.adaptive)
            if not lo < hi:
                raise _bad("adaptive", f"low must be < high; got {lo:g}, {hi:g}")
            self._in_range(sp, lo, "adaptive")
            self._in_range(sp, hi, "adaptive")
            if self.scale == "log" and lo <= 0:
                raise _bad("adaptive", "log scale needs low > 0")
            object.__setattr__(self, "adaptive", (lo, hi))
        for name, lo_ in (("max_points", 2), ("initial_points", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo_ <= v <= MAX_POINTS:
                raise _bad(name, f"expected an integer in [{lo_}, {MAX_POINTS}]; got {v!r}")
        if self.initial_points > self.max_points:
            raise _bad("initial_points", f"{self.initial_points} > max_points {self.max_points}")
        if self.scale not in ("linear", "log"):
            raise _bad("scale", f"expected 'linear' or 'log'; got {self.scale!r}")
        if _number(self.resolution_pp, "resolution_pp") <= 0:
            raise _bad("resolution_pp", f"must be > 0; got {self.resolution_pp!r}")
        if self.mode not in MODES:
            raise _bad("mode", f"expected one of {', '.join(MODES)}; got {self.mode!r}")
        if self.metric not in METRICS:
            raise _bad("metric", f"expected one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.budget_pp is not None:
            if _number(self.budget_pp, "budget_pp") < 0:
                raise _bad("budget_pp", f"must be >= 0; got {self.budget_pp!r}")
            object.__setattr__(self, "budget_pp", float(self.budget_pp))
        object.__setattr__(self, "resolution_pp", float(self.resolution_pp))
        if not isinstance(self.coupled, bool):
            raise _bad("coupled", f"expected true or false; got {self.coupled!r}")
        if not isinstance(self.fixed, Mapping):
            raise _bad("fixed", f"expected an object of parameters; got {self.fixed!r}")
        fixed = {str(k): (list(v) if isinstance(v, tuple) else v) for k, v in self.fixed.items()}
        for k in ("target", "op", self.param):
            if k in fixed:
                raise _bad("fixed", f"{k!r} is set by the sweep, not fixed")
        object.__setattr__(self, "fixed", fixed)
        # The op's own checks (types, ranges, alternatives such as threshold vs sparsity), once.
        first = self.initial_values()[0]
        try:
            edit_from_dict({"op": self.op, "target": "x", **fixed, self.param: _param_value(sp, first)}, "sweep spec")
        except RecipeError as e:
            raise _bad("fixed", str(e)) from None
        if sp.stronger == "" and self.budget_pp is not None:
            raise _bad(
                "budget_pp", f"{self.op}.{self.param} has no stronger direction (both sides of {sp.neutral:g} edit)"
            )

    @staticmethod
    def _in_range(sp: SweepParam, v: float, field_name: str) -> float:
        if not sp.lo <= v <= sp.hi:
            raise _bad(field_name, f"{sp.op}.{sp.name} must be in [{sp.lo:g}, {sp.hi:g}]; got {v:g}")
        if sp.kind == "int" and v != int(v):
            raise _bad(field_name, f"{sp.op}.{sp.name} must be an integer; got {v:g}")
        return v

    def _range_values(self) -> tuple[float, ...]:
        assert self.value_range is not None
        start, stop, step = self.value_range
        n = math.floor((stop - start) / step + 1e-9) + 1
        return tuple(float(f"{start + i * step:.12g}") for i in range(n))

    @property
    def sweep_param(self) -> SweepParam:
        """The catalogue's :class:`~weightlab.core.catalogue.SweepParam` of ``op``/``param``."""
        return sweep_param(self.op, self.param)

    @property
    def label(self) -> str:
        """``"Sweep clip.threshold (each)"``."""
        return f"Sweep {self.op}.{self.param} ({self.mode})"

    @property
    def together_label(self) -> str:
        """The target name of a together sweep's points: the glob, or the targets joined by ``", "``."""
        return ", ".join(self.targets)

    def initial_values(self) -> tuple[float, ...]:
        """The values to measure first for every target, weakest first (adaptive: the coarse grid)."""
        if self.values:
            vals: Sequence[float] = self.values
        elif self.value_range is not None:
            vals = self._range_values()
        else:
            assert self.adaptive is not None
            vals = next_values([], self.adaptive, self.max_points, initial=self.initial_points, scale=self.scale)
        return self.ordered(vals)

    def ordered(self, values: Iterable[float]) -> tuple[float, ...]:
        """``values`` from weakest to strongest edit (by the parameter's ``stronger`` direction;
        by distance from the neutral value when it has none)."""
        sp = self.sweep_param
        if sp.stronger == "up":
            return tuple(sorted(values))
        if sp.stronger == "down":
            return tuple(sorted(values, reverse=True))
        return tuple(sorted(values, key=lambda v: (abs(v - sp.neutral), v)))

    def refine(self, measured: Iterable[tuple[float, float | None]], batch: int = 1) -> tuple[float, ...]:
        """Adaptive sweeps: the next values of one target, given its ``(value, metric)`` pairs so far.

        :func:`next_values` with the spec's bounds, point budget, resolution
        and scale; unknown metrics (None) count against the budget but are not
        refined around. Empty for a sweep that is not adaptive, or when the
        curve is resolved or the budget spent.
        """
        if self.adaptive is None:
            return ()
        pairs = [(float(v), math.nan if m is None else float(m)) for v, m in measured]
        return tuple(
            next_values(pairs, self.adaptive, self.max_points, initial=self.initial_points,
                        resolution_pp=self.resolution_pp, scale=self.scale, batch=batch)
        )

    def spec_hash(self) -> str:
        """SHA-256 (hex) of the spec's JSON (keys sorted): equal for equal sweeps."""
        data = self.to_dict()
        return hashlib.sha256(json.dumps(data, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _param_value(sp: SweepParam, v: float) -> float | int:
    return int(v) if sp.kind == "int" else float(v)


def parse_values(text: str) -> tuple[float, ...]:
    """``"0.1,0.2, 0.5"`` -> ``(0.1, 0.2, 0.5)`` (the CLI's ``--values``).

    Raises
    ------
    SpecError
        When a part is not a finite number, or there is none.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise _bad("values", f"expected numbers separated by commas, e.g. 0.1,0.2,0.5; got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise _bad("values", f"expected finite numbers; got {text!r}")
    return values


def parse_range(text: str) -> tuple[float, float, float]:
    """``"0.05:0.4:0.05"`` -> ``(0.05, 0.4, 0.05)`` (the CLI's ``--range START:STOP:STEP``, stop included).

    Raises
    ------
    SpecError
        When it is not three finite numbers separated by colons.
    """
    parts = str(text).split(":")
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise _bad("value_range", f"expected START:STOP:STEP, e.g. 0.05:0.4:0.05; got {text!r}") from None
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise _bad("value_range", f"expected finite numbers; got {text!r}")
    return start, stop, step


# -- targets and the edit of one point ---------------------------------------------------


@dataclass(frozen=True)
class SweepTarget:
    """One target of a sweep: the points with this ``name`` form one curve.

    Attributes
    ----------
    name:
        The points' ``target``: a canonical tensor name, a layer name, a
        group id, or (together) :attr:`SweepSpec.together_label`.
    edit_target:
        What the edit's ``target`` is (a name, a glob, or a tuple of them).
    group:
        The coupled group swept as one target, or None.
    note:
        What a user should know about this target's curve ("edited alone;
        its output channels are tied to ... by Add 'add'"), or "".
    """

    name: str
    edit_target: str | tuple[str, ...]
    group: CoupledGroup | None = None
    note: str = ""


def _neuron_op(op: str) -> bool:
    return CATALOGUE[op].target == "layer"


def sweep_targets(spec: SweepSpec, model: ModelFile) -> list[SweepTarget]:
    """The targets of ``spec`` on ``model``, in model order.

    Together: one target (all of ``spec.targets``). Each: one per matched
    tensor for value ops, one per layer for neuron ops (a glob such as
    ``"*/kernel"`` gives the layers of the matched kernels); group ids give
    their group. With ``spec.coupled`` a neuron op's layer in a coupled group
    is replaced by its group; without, its note says it is edited alone while
    coupled.

    Raises
    ------
    RecipeError
        When a target matches nothing, or a group id is unknown.
    """
    groups = coupled_groups(model) if any(t.startswith(GROUP_PREFIX) for t in spec.targets) or (
        spec.mode == "each" and _neuron_op(spec.op)
    ) else []
    if spec.mode == "together":
        names: list[str] = []
        for t in spec.targets:
            if t.startswith(GROUP_PREFIX):
                names.extend(find_group(t, groups).layers)
            else:
                names.append(t)
        if _neuron_op(spec.op):
            plain_names = [n for n in names if not model.has_layer(n)]
            layers = [n for n in names if model.has_layer(n)]
            if plain_names:  # tensor names and globs select the layers of their tensors
                layers += _neuron_layers(spec, plain_names, model)
            names = [lay.name for lay in model.layers if lay.name in set(layers)]
            for n in names:
                neuron_tensors(n, model, spec.op)  # each must be a layer with neurons
        else:
            resolve_tensors(tuple(names), model, spec.op)
        edit_target: str | tuple[str, ...] = names[0] if len(names) == 1 else tuple(names)
        return [SweepTarget(spec.together_label, edit_target, note="every target edited at once")]
    out: list[SweepTarget] = []
    seen: set[str] = set()
    plain = [t for t in spec.targets if not t.startswith(GROUP_PREFIX)]
    items: list[tuple[str, str]] = []  # (kind, name) in model order
    if plain:
        if _neuron_op(spec.op):
            items.extend(("layer", lay) for lay in _neuron_layers(spec, plain, model))
        else:
            items.extend(("tensor", t) for t in resolve_tensors(tuple(plain), model, spec.op))
    items.extend(("group", t) for t in spec.targets if t.startswith(GROUP_PREFIX))
    for kind, name in items:
        if kind == "group":
            found = find_group(name, groups)
            if found.id not in seen:
                seen.add(found.id)
                out.append(_group_target(spec, found))
            continue
        grp = _group_of(name, groups) if kind == "layer" else None
        if grp is not None and spec.coupled:
            if grp.id not in seen:
                seen.add(grp.id)
                out.append(_group_target(spec, grp))
            continue
        if name in seen:
            continue
        seen.add(name)
        note = "edited alone"
        if grp is not None:
            others = [lay for lay in grp.layers if lay != name]
            note += (
                f"; its output channels are coupled ({grp.reason})"
                + (f" with {', '.join(others)}" if others else "")
                + f": sweep {grp.id} to edit them together"
            )
        out.append(SweepTarget(name, name, None, note))
    return out


def _neuron_layers(spec: SweepSpec, names: Sequence[str], model: ModelFile) -> list[str]:
    """Layers with neurons among the layers of the tensors ``names`` select, in model order."""
    tensors = resolve_tensors(tuple(names), model, spec.op)
    layers = [lay for lay in dict.fromkeys(model.tensor(t).layer for t in tensors) if _has_neurons(lay, model)]
    if not layers:
        raise RecipeError(f"{spec.op}: {', '.join(names)} selects no layer with a kernel")
    return layers


def _has_neurons(layer: str, model: ModelFile) -> bool:
    try:
        neuron_tensors(layer, model)
    except RecipeError:
        return False
    return True


def _group_of(layer: str, groups: Sequence[CoupledGroup]) -> CoupledGroup | None:
    for g in groups:
        if layer in g.layers:
            return g
    return None


def _group_target(spec: SweepSpec, grp: CoupledGroup) -> SweepTarget:
    note = f"coupled group: {', '.join(grp.layers)} edited together ({grp.reason})"
    if grp.sources:
        note += "; its channels also carry inputs that are not edited, so a removed channel is not silent"
    return SweepTarget(grp.id, grp.layers if len(grp.layers) > 1 else grp.layers[0], grp, note)


def sweep_edit(
    spec: SweepSpec, target: SweepTarget | str, value: float, model: ModelFile | None = None
) -> Edit:
    """The edit of one point: ``spec.op`` with ``spec.param = value`` and ``spec.fixed`` on ``target``.

    Parameters
    ----------
    spec:
        The sweep.
    target:
        A :class:`SweepTarget` of :func:`sweep_targets`, or a name: a tensor,
        layer or glob (the edit's target as it is), a group id (needs
        ``model``), or :attr:`SweepSpec.together_label` (all of
        ``spec.targets``).
    value:
        The parameter's value.
    model:
        Needed to resolve a group id given as a string.

    Returns
    -------
    Edit
        A registered edit (recipe-ready) for plain targets; for a neuron op on
        several layers a :class:`CompositeEdit` (one edit per layer), and for
        ``prune_neurons`` on a coupled group a :class:`CoupledPruneNeurons`
        (the same channels of every member, ranked by their joint norm). Both
        give registered edits with ``steps(model, source)``.

    Raises
    ------
    RecipeError
        When the value or the target does not fit the op.
    """
    sp = spec.sweep_param
    if isinstance(target, str):
        if target.startswith(GROUP_PREFIX):
            if model is None:
                raise RecipeError(f"sweep: group target {target!r} needs the model to resolve it")
            target = _group_target(spec, find_group(target, coupled_groups(model)))
        elif target == spec.together_label and spec.mode == "together":
            names = spec.targets
            target = SweepTarget(target, names[0] if len(names) == 1 else tuple(names))
        else:
            target = SweepTarget(target, target)
    params = {**spec.fixed, spec.param: _param_value(sp, value)}
    et = target.edit_target
    grp = target.group
    if _neuron_op(spec.op) and not isinstance(et, str):
        if spec.op == "prune_neurons" and grp is not None:
            return CoupledPruneNeurons(target=et, group=grp, **params)
        if grp is not None and spec.op == "scale_neurons":
            return CompositeEdit(
                target=et,
                parts=tuple(
                    edit_from_dict({"op": spec.op, "target": m.layer, **params,
                                    "neurons": list(m.local(params.get("neurons", ())))}, "sweep")
                    for m in grp.members
                    if m.local(params.get("neurons", ()))
                ),
            )
        return CompositeEdit(
            target=et, parts=tuple(edit_from_dict({"op": spec.op, "target": t, **params}, "sweep") for t in et)
        )
    if grp is not None and spec.op == "prune_neurons":
        return CoupledPruneNeurons(target=et, group=grp, **params)
    return edit_from_dict({"op": spec.op, "target": list(et) if isinstance(et, tuple) else et, **params}, "sweep")


def recipe_edits(edit: Edit, model: ModelFile, source: Any) -> list[Edit]:
    """The registered edits (recipe steps) that ``edit`` of :func:`sweep_edit` stands for.

    A plain edit is itself; a :class:`CompositeEdit` or
    :class:`CoupledPruneNeurons` gives its :meth:`steps` on the current
    weights (``source``: a session). Applying a point as an undoable history
    step, or writing it into a recipe, uses these, so a journal or recipe
    replays it.
    """
    steps = getattr(edit, "steps", None)
    return list(steps(model, source)) if callable(steps) else [edit]


class _Overlay:
    """An array source with some tensors replaced (the parts of a composite edit, in turn)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.new: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        return self.new[name] if name in self.new else self.source.array(name)

    def original(self, name: str) -> np.ndarray:
        return self.source.original(name)


@dataclass(frozen=True, kw_only=True)
class CompositeEdit(Edit):
    """Several edits applied in turn as one (a neuron op on several layers at one point).

    Not a recipe op: :meth:`steps` gives the registered edits a recipe or a
    history stores.
    """

    op: ClassVar[str] = "composite"
    parts: tuple[Edit, ...] = ()

    def targets(self, model: ModelFile) -> list[str]:
        names: dict[str, None] = {}
        for p in self.parts:
            names.update(dict.fromkeys(p.targets(model)))
        return [n for n in model.tensors if n in names]

    def steps(self, model: ModelFile, source: Any) -> list[Edit]:
        """The registered edits this edit is (``source`` unused here; see :class:`CoupledPruneNeurons`)."""
        return list(self.parts)

    def apply(self, model: ModelFile, source: Any) -> dict[str, np.ndarray]:
        overlay = _Overlay(source)
        for step in self.steps(model, source):
            overlay.new.update(step.apply(model, overlay))
        return dict(overlay.new)

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        """``{"op": "composite", "steps": [...]}`` (for display and logs; not a recipe step)."""
        return {"op": self.op, "steps": [p.to_dict() for p in self.parts]}


@dataclass(frozen=True, kw_only=True)
class CoupledPruneNeurons(Edit):
    """``prune_neurons`` on a coupled group: the same channels removed from every member.

    Channel ``j`` of the group's channel space is ranked by the joint norm of
    the members' filters that produce it (L1: the sum of their L1 norms; L2:
    the square root of the sum of their squared L2 norms), and the ``count``
    (or ``floor(fraction * channels)``) smallest are zeroed in every member,
    kernel and bias, and silenced in the member's BatchNormalization when one
    follows it (``gamma`` and ``beta`` zeroed). Ties by index. Zeroing the
    same channels everywhere is what removing them from a residual stream
    means; a BatchNormalization after the merge (``group.batchnorms``) is not
    changed.
    """

    op: ClassVar[str] = "prune_neurons"
    group: CoupledGroup
    count: int | None = None
    fraction: float | None = None
    norm: str = "l1"

    def _validate(self) -> None:
        if (self.count is None) == (self.fraction is None):
            raise ValueError("give exactly one of count or fraction")
        if self.norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2'; got {self.norm!r}")

    def chosen_channels(self, model: ModelFile, source: Any) -> tuple[int, ...]:
        """The group channels this edit removes, given the current weights."""
        from .stats import neuron_norms

        width = max((m.stop or (m.start + neuron_count(m.layer, model))) for m in self.group.members)
        acc = np.zeros(width, np.float64)
        ord_ = 1 if self.norm == "l1" else 2
        for m in self.group.members:
            kernel = neuron_tensors(m.layer, model, self.op)[0]
            norms = neuron_norms(output_channels(source.array(kernel), is_depthwise(model, kernel)), ord=ord_)
            acc[m.start : m.start + norms.size] += norms if ord_ == 1 else norms**2
        if self.count is not None and self.count > width:
            raise RecipeError(f"{self.op}: {self.group.id} has {width} channels; cannot prune {self.count}")
        k = self.count if self.count is not None else math.floor((self.fraction or 0.0) * width)
        return tuple(sorted(int(i) for i in np.argsort(acc, kind="stable")[:k]))

    def steps(self, model: ModelFile, source: Any) -> list[Edit]:
        """Registered ``zero_neurons`` edits, one per member (with its BatchNorm when it has one)."""
        from .edits import ZeroNeurons
        from .graph import following_batchnorm

        chosen = self.chosen_channels(model, source)
        out: list[Edit] = []
        for m in self.group.members:
            local = m.local(chosen)
            if local:
                bn = m.batchnorm is not None and following_batchnorm(model, m.layer) == m.batchnorm
                out.append(ZeroNeurons(target=m.layer, neurons=local, batchnorm=bn))
        return out

    def targets(self, model: ModelFile) -> list[str]:
        names = {n for m in self.group.members for n in neuron_tensors(m.layer, model, self.op)}
        return [n for n in model.tensors if n in names]

    def apply(self, model: ModelFile, source: Any) -> dict[str, np.ndarray]:
        overlay = _Overlay(source)
        for step in self.steps(model, source):
            overlay.new.update(step.apply(model, overlay))
        return dict(overlay.new)

    def describe(self) -> str:
        how = f"{self.count}" if self.count is not None else f"{100 * (self.fraction or 0.0):.4g} %"
        return f"prune {how} channels of {self.group.id} ({', '.join(self.group.layers)}) by joint {self.norm.upper()} norm"

    def to_dict(self) -> dict[str, Any]:
        """For display and logs (not a recipe step: see :meth:`steps`)."""
        d: dict[str, Any] = {"op": "prune_neurons", "group": self.group.id, "target": list(self.group.layers), "norm": self.norm}
        d.update({"count": self.count} if self.count is not None else {"fraction": self.fraction})
        return d


# -- measured points ----------------------------------------------------------------------


def _count(fraction: float | None, n: int) -> int | None:
    if fraction is None or not isinstance(fraction, (int, float)) or math.isnan(fraction) or n <= 0:
        return None
    return int(round(float(fraction) * n))


def _ci(fraction: float | None, n: int) -> tuple[float, float] | None:
    k = _count(fraction, n)
    return None if k is None else wilson_interval(k, n)


@dataclass(frozen=True)
class SweepPoint:
    """One measured point of a sweep (or, with ``target == ""`` and ``value`` None, the baseline).

    Attributes
    ----------
    target:
        The :attr:`SweepTarget.name` the point belongs to.
    value:
        The parameter's value.
    accuracy, loss:
        On the held-out set; None without labels.
    agreement:
        Fraction of samples whose predicted class equals the unedited
        model's (works without labels); None when not computed.
    per_class:
        Accuracy per class (None for classes absent from the labels).
    num_samples:
        Held-out samples evaluated.
    accuracy_ci, agreement_ci:
        95 % Wilson score intervals (Wilson 1927) of ``accuracy`` and
        ``agreement`` as proportions of ``num_samples``; None when the
        proportion is None.
    """

    target: str
    value: float | None
    accuracy: float | None
    loss: float | None
    agreement: float | None = None
    per_class: tuple[float | None, ...] = ()
    num_samples: int = 0
    accuracy_ci: tuple[float, float] | None = None
    agreement_ci: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("accuracy", "loss", "agreement"):
            v = getattr(self, name)
            object.__setattr__(self, name, None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
        object.__setattr__(self, "per_class", tuple(_finite_or_none(_clean(v)) for v in self.per_class))
        for name in ("accuracy_ci", "agreement_ci"):
            v = getattr(self, name)
            object.__setattr__(self, name, None if v is None else (float(v[0]), float(v[1])))

    @classmethod
    def from_metrics(cls, target: str, value: float | None, metrics: Any) -> SweepPoint:
        """A point from an evaluation's metrics (any object with ``accuracy``, ``loss``,
        ``agreement``, ``per_class``, ``num_samples`` and ``labels``, such as
        :class:`weightlab.engine.events.Metrics`), with Wilson intervals computed
        from the correct counts ``round(p * n)``."""
        n = int(getattr(metrics, "num_samples", 0))
        labels = bool(getattr(metrics, "labels", True))
        acc = metrics.accuracy if labels else None
        loss = metrics.loss if labels else None
        agr = getattr(metrics, "agreement", None)
        acc = None if acc is None or math.isnan(acc) else float(acc)
        return cls(
            target=target,
            value=value,
            accuracy=acc,
            loss=loss,
            agreement=agr,
            per_class=tuple(getattr(metrics, "per_class", ()) or ()) if labels else (),
            num_samples=n,
            accuracy_ci=_ci(acc, n),
            agreement_ci=_ci(agr, n),
        )

    def metric(self, name: str) -> float | None:
        """``accuracy`` or ``agreement`` (a baseline's agreement is 1.0 when not stored)."""
        v = getattr(self, name)
        if v is None and name == "agreement" and self.value is None:
            return 1.0
        return v

    def to_dict(self) -> dict[str, Any]:
        """JSON values (no NaN: missing numbers are None)."""
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepPoint:
        """Rebuild from :meth:`to_dict`.

        Raises
        ------
        DataError
            When a field is missing or unknown.
        """
        known = {f.name for f in fields(cls)}
        missing = {"target", "value", "accuracy", "loss"} - set(d)
        if missing or set(d) - known:
            raise DataError(f"sweep point: missing {sorted(missing)} or unknown {sorted(set(d) - known)} fields")
        kw = dict(d)
        for name in ("accuracy_ci", "agreement_ci"):
            if kw.get(name) is not None:
                kw[name] = tuple(kw[name])
        kw["per_class"] = tuple(None if v is None else float(v) for v in kw.get("per_class") or ())
        return cls(**kw)


def drop_pp(baseline: float | None, measured: float | None) -> float | None:
    """``100 * (baseline - measured)``: a drop in percentage points (negative: a gain); None when unknown."""
    if baseline is None or measured is None:
        return None
    return 100.0 * (float(baseline) - float(measured))


def past_budget(baseline: SweepPoint, point: SweepPoint, budget_pp: float | None, metric: str = "accuracy") -> bool:
    """True when ``point``'s drop in ``metric`` from ``baseline`` exceeds ``budget_pp`` (early stop)."""
    if budget_pp is None:
        return False
    d = drop_pp(baseline.metric(metric), point.metric(metric))
    return d is not None and d > budget_pp


def short_number(value: float | None, digits: int = 4) -> str:
    """``value`` rounded to ``digits`` decimals for a one-line ``repr`` (None, NaN as themselves)."""
    if value is None:
        return "None"
    v = float(value)
    return repr(v) if v != v or v in (float("inf"), float("-inf")) else repr(round(v, digits))


@dataclass
class SweepResult:
    """A sweep's points so far (complete when ``complete``).

    Attributes
    ----------
    spec:
        The sweep.
    baseline:
        The unedited model (``target ""``, ``value`` None).
    points:
        Measured points, in the order they came.
    notes:
        ``{target: note}`` from :class:`SweepTarget`: what each curve means
        (edited alone; coupled with...).
    stopped:
        ``{target: value}``: the value past the budget after which a target's
        stronger values were skipped (early stop).
    complete:
        False for a cancelled or partial sweep.
    """

    spec: SweepSpec
    baseline: SweepPoint
    points: list[SweepPoint] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, float] = field(default_factory=dict)
    complete: bool = True

    def __repr__(self) -> str:
        """One line; ``to_json()`` and the fields keep the data."""
        curves = len({p.target for p in self.points})
        return (f"SweepResult(op={self.spec.op!r}, param={self.spec.param!r}, curves={curves}, "
                f"points={len(self.points)}, baseline_accuracy={short_number(self.baseline.accuracy)}, "
                f"complete={self.complete})")  # fmt: skip

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a summary table and the plot (:func:`weightlab.core.richdisplay.sweep_html`)."""
        from .richdisplay import sweep_html

        return sweep_html(self)

    def _repr_svg_(self) -> str:
        """The plot alone as an SVG document (:func:`weightlab.core.richdisplay.sweep_svg`)."""
        from .richdisplay import STANDALONE_INK, sweep_svg

        return sweep_svg(self, ink=STANDALONE_INK)

    def targets(self) -> list[str]:
        """Target names in the order their first point came."""
        return list(dict.fromkeys(p.target for p in self.points))

    def curve(self, target: str, metric: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(values, metric values)`` of ``target``'s points, weakest value first (float64; NaN where unknown)."""
        metric = metric or self.spec.metric
        pts = {p.value: p for p in self.points if p.target == target and p.value is not None}
        values = self.spec.ordered(pts)
        m = [pts[v].metric(metric) for v in values]
        return np.asarray(values, np.float64), np.asarray([np.nan if x is None else x for x in m], np.float64)

    def drops(self, target: str, metric: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(values, drops in percentage points)`` of ``target``, weakest value first."""
        metric = metric or self.spec.metric
        base = self.baseline.metric(metric)
        values, m = self.curve(target, metric)
        return values, 100.0 * ((np.nan if base is None else base) - m)

    def threshold(self, target: str, budget_pp: float, metric: str | None = None) -> float | None:
        """The value where ``target``'s drop first reaches ``budget_pp``, interpolated.

        Walking the points from the weakest value to the strongest, the first
        point with ``drop >= budget_pp`` and the point before it (drop below
        the budget) bound the crossing; the value is interpolated linearly
        between them: ``v0 + (budget - d0) / (d1 - d0) * (v1 - v0)``. When the
        weakest point already reaches the budget, the interval starts at the
        parameter's neutral value (drop 0) if finite, else the weakest value
        is returned. None when no point reaches the budget (the target stays
        within it over the measured range). The first crossing is taken, so a
        non-monotone curve gives the conservative value.
        """
        values, drops = self.drops(target, metric)
        sp = self.spec.sweep_param
        prev_v, prev_d = (sp.neutral, 0.0) if math.isfinite(sp.neutral) else (None, None)
        for v, d in zip(values, drops):
            if math.isnan(d):
                continue
            if d >= budget_pp:
                if prev_v is None or prev_d is None:
                    return float(v)
                if d == prev_d:
                    return float(v)
                return float(prev_v + (budget_pp - prev_d) / (d - prev_d) * (v - prev_v))
            prev_v, prev_d = float(v), float(d)
        return None

    def sensitivities(self, budget_pp: float, metric: str | None = None) -> dict[str, float | None]:
        """``{target: threshold(target, budget_pp)}``: where each target's drop passes the budget
        (None: it stays within the budget over the measured values), for colouring a model tree."""
        return {t: self.threshold(t, budget_pp, metric) for t in self.targets()}

    def to_json(self) -> dict[str, Any]:
        """The issue's JSON: ``{"baseline": {"accuracy", "loss", ...}, "points": [{"target", "value",
        "accuracy", "loss", "agreement", "accuracy_ci", ...}], ...}`` plus the spec, notes, early stops
        and ``complete`` (JSON values only)."""
        base = self.baseline.to_dict()
        return _clean(
            {
                "spec": self.spec.to_dict(),
                "mode": self.spec.mode,
                "baseline": {k: base[k] for k in ("accuracy", "loss", "agreement", "per_class", "num_samples",
                                                  "accuracy_ci")},
                "points": [p.to_dict() for p in self.points],
                "notes": dict(self.notes),
                "stopped": dict(self.stopped),
                "complete": self.complete,
            }
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepResult:
        """Rebuild from :meth:`to_json`.

        Raises
        ------
        DataError
            When ``data`` is not a sweep result.
        """
        from .jobs import spec_from_dict

        try:
            spec = spec_from_dict(data["spec"])
            base = SweepPoint.from_dict({"target": "", "value": None, "accuracy": None, "loss": None,
                                         **data["baseline"]})
            points = [SweepPoint.from_dict(p) for p in data["points"]]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a sweep result: {e}") from None
        if not isinstance(spec, SweepSpec):
            raise DataError(f"not a sweep result: spec of kind {spec.kind!r}")
        return cls(spec, base, points, dict(data.get("notes") or {}), dict(data.get("stopped") or {}),
                   bool(data.get("complete", True)))

    def to_csv(self) -> str:
        """One row per point: target, value, accuracy, its interval, loss, agreement, its interval,
        drop_pp (in ``spec.metric``), num_samples; a first row for the baseline (empty value)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = ["target", "value", "accuracy", "accuracy_lo", "accuracy_hi", "loss", "agreement",
                "agreement_lo", "agreement_hi", "drop_pp", "num_samples"]
        w.writerow(cols)
        base = self.baseline.metric(self.spec.metric)
        for p in [self.baseline, *self.points]:
            a_ci = p.accuracy_ci or (None, None)
            g_ci = p.agreement_ci or (None, None)
            d = drop_pp(base, p.metric(self.spec.metric))
            row = [p.target or "(baseline)", p.value, p.accuracy, *a_ci, p.loss, p.agreement, *g_ci, d, p.num_samples]
            w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
        return buf.getvalue()

    def to_dataframe(self) -> Any:
        """The points as a pandas DataFrame (columns as :meth:`to_csv`).

        Raises
        ------
        ImportError
            When pandas is not installed.
        """
        return _pandas().read_csv(io.StringIO(self.to_csv()))


# -- adaptive refinement --------------------------------------------------------------------


def next_values(
    measured: Sequence[tuple[float, float]],
    bounds: tuple[float, float],
    max_points: int,
    *,
    initial: int = 5,
    resolution_pp: float = 1.0,
    scale: str = "linear",
    batch: int = 1,
    min_gap: float | None = None,
) -> list[float]:
    """The values an adaptive sweep measures next (pure; call again with the new points).

    Parameters
    ----------
    measured:
        ``(value, metric)`` pairs measured so far for one target, metric as a
        fraction (accuracy or agreement), any order; NaN metrics are ignored.
    bounds:
        ``(low, high)`` of the parameter.
    max_points:
        Point budget: at most ``max_points - len(measured)`` values are returned.
    initial:
        With nothing measured: ``initial`` evenly spaced values from ``low``
        to ``high`` (both included; geometric spacing for ``scale="log"``).
    resolution_pp:
        An interval between neighbouring measured values is resolved when
        their metrics differ by at most this many percentage points.
    scale:
        ``"linear"`` (arithmetic midpoints) or ``"log"`` (geometric midpoints,
        for thresholds spanning decades; ``low > 0``).
    batch:
        How many values to return at most (for parallel workers): the
        midpoints of the ``batch`` unresolved intervals with the largest
        change.
    min_gap:
        Intervals narrower than this are resolved whatever their change
        (default ``(high - low) * 1e-6``), so refinement ends at a cliff.

    Returns
    -------
    list of float
        Values to measure, steepest interval first; empty when every interval
        is resolved or the budget is spent.

    Notes
    -----
    Start coarse, then bisect where the metric falls fastest: the interval
    with the largest absolute change ``|m(v1) - m(v0)|`` is split first (ties:
    the wider one), which resolves a cliff in ``log2(width / gap)`` steps
    instead of a uniform grid's ``width / gap`` points.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ValueError(f"bounds must be low < high; got {bounds!r}")
    if scale not in ("linear", "log") or (scale == "log" and lo <= 0):
        raise ValueError(f"scale must be 'linear' or 'log' (with low > 0); got {scale!r}")
    pts = sorted({float(v): float(m) for v, m in measured if not math.isnan(float(m))}.items())
    left = max_points - len(measured)
    if left <= 0:
        return []
    if not pts:
        n = max(2, min(initial, left))
        grid = np.geomspace(lo, hi, n) if scale == "log" else np.linspace(lo, hi, n)
        return [float(f"{v:.12g}") for v in grid]
    gap = (hi - lo) * 1e-6 if min_gap is None else min_gap
    cands: list[tuple[float, float, float]] = []
    for (v0, m0), (v1, m1) in zip(pts, pts[1:]):
        change = abs(m1 - m0) * 100.0
        if change > resolution_pp and v1 - v0 > gap:
            mid = math.sqrt(v0 * v1) if scale == "log" and v0 > 0 else (v0 + v1) / 2
            cands.append((change, v1 - v0, mid))
    cands.sort(key=lambda c: (-c[0], -c[1]))
    return [c[2] for c in cands[: max(1, min(batch, left))]]


# -- the partial-results log ------------------------------------------------------------------


class SweepLog:
    """Append-only JSON lines of a sweep's points, for resuming a cancelled or crashed sweep.

    The first line is ``{"sweep": spec, "hash": spec_hash}``; each further
    line is ``{"baseline": point}`` or ``{"point": point}``, written with one
    ``write`` and flushed to disk (``os.fsync``) before :meth:`append`
    returns. A kill can leave at most a torn last line: :meth:`load` skips
    it and :meth:`open` cuts it off before appending.

    Examples
    --------
    >>> log = SweepLog.open(path, spec)        # doctest: +SKIP
    >>> done = {(p.target, p.value) for p in log.points}   # doctest: +SKIP
    >>> log.append(point)                     # doctest: +SKIP
    """

    def __init__(self, path: Path, spec: SweepSpec, baseline: SweepPoint | None, points: list[SweepPoint]) -> None:
        self.path = path
        self.spec = spec
        self.baseline = baseline
        self.points = points

    @staticmethod
    def _read(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
        """``(header, records, length of the good prefix in bytes)``."""
        data = path.read_bytes()
        header: dict[str, Any] | None = None
        records: list[dict[str, Any]] = []
        good = 0
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                break  # a torn last line (no newline): skipped
            try:
                rec = json.loads(data[pos:end])
            except ValueError:
                break  # torn mid-file cannot happen with one write per line; stop at the first bad one
            if not isinstance(rec, dict):
                break
            if header is None:
                header = rec
            else:
                records.append(rec)
            pos = good = end + 1
        return header, records, good

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SweepLog:
        """Read a log (torn last line skipped).

        Raises
        ------
        DataError
            When the file is not a sweep log; the message names the file.
        """
        from .jobs import spec_from_dict

        p = Path(path)
        try:
            header, records, _ = cls._read(p)
        except OSError as e:
            raise DataError(f"{p}: cannot read the sweep log: {e.strerror or e}") from None
        if header is None or "sweep" not in header:
            raise DataError(f"{p}: not a sweep log (no header line)")
        try:
            spec = spec_from_dict(header["sweep"])
        except (ValueError, TypeError, RecipeError) as e:
            raise DataError(f"{p}: the sweep log's spec is not valid: {e}") from None
        if not isinstance(spec, SweepSpec) or header.get("hash") != spec.spec_hash():
            raise DataError(f"{p}: the sweep log's header does not match its spec")
        baseline = None
        points: list[SweepPoint] = []
        for rec in records:
            try:
                if "baseline" in rec:
                    baseline = SweepPoint.from_dict(rec["baseline"])
                elif "point" in rec:
                    points.append(SweepPoint.from_dict(rec["point"]))
            except (DataError, TypeError, ValueError) as e:
                raise DataError(f"{p}: a point of the sweep log is not valid: {e}") from None
        return cls(p, spec, baseline, points)

    @classmethod
    def open(cls, path: str | os.PathLike[str], spec: SweepSpec) -> SweepLog:
        """Open the log of ``spec`` at ``path`` for appending: new when absent, resumed when present.

        Raises
        ------
        DataError
            When ``path`` holds the log of a different sweep (another spec
            hash): resuming it would mix two sweeps.
        """
        p = Path(path)
        header = json.dumps({"sweep": spec.to_dict(), "hash": spec.spec_hash()}, allow_nan=False)
        # New, or a kill while this sweep's header was being written (the file is a prefix of it):
        # nothing was measured yet. Any other content is left alone (load() refuses it).
        if not p.exists() or (p.stat().st_size <= len(header) and header.encode().startswith(p.read_bytes())):
            cls._write(p, header, mode="wb")
            return cls(p, spec, None, [])
        log = cls.load(p)
        if log.spec.spec_hash() != spec.spec_hash():
            raise DataError(f"{p}: this log is of a different sweep ({log.spec.label}); refusing to resume it")
        _, _, good = cls._read(p)
        if good < p.stat().st_size:
            with open(p, "r+b") as f:  # cut the torn tail so the next line starts clean
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        return log

    @staticmethod
    def _write(path: Path, line: str, mode: str = "ab") -> None:
        with open(path, mode) as f:
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def set_baseline(self, baseline: SweepPoint) -> None:
        """Record the baseline (once; a resumed log keeps the first)."""
        if self.baseline is None:
            self._write(self.path, json.dumps({"baseline": baseline.to_dict()}, allow_nan=False))
            self.baseline = baseline

    def append(self, point: SweepPoint) -> None:
        """Append one point, durably."""
        self._write(self.path, json.dumps({"point": point.to_dict()}, allow_nan=False))
        self.points.append(point)

    def done(self) -> set[tuple[str, float]]:
        """``{(target, value)}`` already measured."""
        return {(p.target, float(p.value)) for p in self.points if p.value is not None}

    def result(self, complete: bool = False) -> SweepResult:
        """The points so far as a :class:`SweepResult`.

        Raises
        ------
        DataError
            When the log has no baseline yet.
        """
        if self.baseline is None:
            raise DataError(f"{self.path}: the sweep log has no baseline yet")
        return SweepResult(self.spec, self.baseline, list(self.points), complete=complete)


# -- rankings --------------------------------------------------------------------------------

#: Ablations of a ranking: the unit's output zeroed, or replaced by its mean over the held-out set.
ABLATIONS = ("zero", "mean")


@register
@dataclass(frozen=True)
class RankSpec(JobSpec):
    """Rank the output neurons/filters of one layer by what ablating each alone costs (job kind ``"rank"``).

    Attributes
    ----------
    layer:
        The layer's name (one with a kernel).
    ablation:
        ``"zero"`` (kernel column/filter and bias zeroed; with ``batchnorm`` the
        following BatchNormalization's channel too) or ``"mean"`` (the unit's
        output replaced by its mean over the held-out set).
    batchnorm:
        Zero ablation: also silence a following BatchNormalization's channel.
        None (default): when one follows in the stored architecture.
    cumulative:
        Also measure the cumulative curves (ablate the ``k`` most and the
        ``k`` least important units, ``k = 1 .. n``).
    live:
        False: a ranking queues and runs to its end.

    Raises
    ------
    RecipeError
        For a bad field; the message names it.
    """

    kind: ClassVar[str] = "rank"
    layer: str = ""
    ablation: str = "zero"
    batchnorm: bool | None = None
    cumulative: bool = True
    live: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise SpecError(f"rank spec: field 'layer': expected a layer name; got {self.layer!r}")
        if self.ablation not in ABLATIONS:
            raise SpecError(f"rank spec: field 'ablation': expected zero or mean; got {self.ablation!r}")
        if self.batchnorm is not None and not isinstance(self.batchnorm, bool):
            raise SpecError(f"rank spec: field 'batchnorm': expected true, false or null; got {self.batchnorm!r}")
        if self.batchnorm and self.ablation == "mean":
            raise SpecError("rank spec: field 'batchnorm': mean ablation replaces the output itself")
        if not isinstance(self.cumulative, bool):
            raise SpecError(f"rank spec: field 'cumulative': expected true or false; got {self.cumulative!r}")

    @property
    def label(self) -> str:
        """``"Rank neurons of dense (zero)"``."""
        return f"Rank neurons of {self.layer} ({self.ablation})"


@dataclass(frozen=True)
class UnitAblation:
    """The model with one unit (output neuron/filter) ablated.

    Attributes
    ----------
    index:
        The unit (index on the kernel's last axis).
    point:
        What was measured (``target`` the layer, ``value`` the index).
    drop:
        Baseline accuracy minus ablated accuracy, a fraction (negative: the
        ablation raises accuracy); by agreement (``1 - agreement``) when there
        are no labels. None when neither is known.
    loss_change:
        Ablated loss minus baseline loss; None without labels.
    """

    index: int
    point: SweepPoint
    drop: float | None
    loss_change: float | None

    @property
    def raises_accuracy(self) -> bool:
        """True when removing the unit raised accuracy (``drop < 0``)."""
        return self.drop is not None and self.drop < 0

    def to_dict(self) -> dict[str, Any]:
        """``{"index", "accuracy", "loss", "drop", "agreement", "accuracy_ci", "per_class", "loss_change",
        "raises_accuracy"}`` (JSON values)."""
        p = self.point
        return _clean(
            {
                "index": self.index,
                "accuracy": p.accuracy,
                "loss": p.loss,
                "drop": self.drop,
                "agreement": p.agreement,
                "accuracy_ci": p.accuracy_ci,
                "agreement_ci": p.agreement_ci,
                "per_class": p.per_class,
                "loss_change": self.loss_change,
                "raises_accuracy": self.raises_accuracy,
            }
        )


@dataclass
class RankResult:
    """A layer's units sorted by the accuracy their ablation costs.

    Attributes
    ----------
    spec:
        The ranking.
    baseline:
        The unedited model.
    units:
        Largest drop first (ties by index; units with no drop last).
    cumulative_top, cumulative_bottom:
        ``points[k - 1]``: the model with the ``k`` most (least) important
        units ablated together, ``k = 1 .. n`` (empty when not measured).
    method:
        How the ablation was made (the engine says: "bias" when exact through
        the activation, "activations" when fed at the cut...).
    complete:
        False for a cancelled ranking.
    """

    spec: RankSpec
    baseline: SweepPoint
    units: list[UnitAblation]
    cumulative_top: list[SweepPoint] = field(default_factory=list)
    cumulative_bottom: list[SweepPoint] = field(default_factory=list)
    method: str = ""
    complete: bool = True

    def __repr__(self) -> str:
        """One line; ``to_json()`` and the fields keep the data."""
        top = self.units[0] if self.units else None
        first = "" if top is None else f", top_unit={top.index}, top_drop={short_number(top.drop)}"
        return (f"RankResult(layer={self.spec.layer!r}, ablation={self.spec.ablation!r}, units={len(self.units)}, "
                f"baseline_accuracy={short_number(self.baseline.accuracy)}{first}, complete={self.complete})")  # fmt: skip

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a summary table and the plot (:func:`weightlab.core.richdisplay.rank_html`)."""
        from .richdisplay import rank_html

        return rank_html(self)

    def _repr_svg_(self) -> str:
        """The plot alone as an SVG document (:func:`weightlab.core.richdisplay.rank_svg`)."""
        from .richdisplay import STANDALONE_INK, rank_svg

        return rank_svg(self, ink=STANDALONE_INK)

    @classmethod
    def from_points(cls, spec: RankSpec, baseline: SweepPoint, points: Iterable[SweepPoint], **kw: Any) -> RankResult:
        """Rank units from one measured point per unit (``point.value`` is the unit index)."""
        units = []
        use_acc = baseline.accuracy is not None
        for p in points:
            if p.value is None:
                raise DataError(f"rank {spec.layer}: a point without a unit index")
            if use_acc:
                d = None if p.accuracy is None else baseline.accuracy - p.accuracy  # type: ignore[operator]
            else:
                d = None if p.agreement is None else 1.0 - p.agreement
            lc = None if p.loss is None or baseline.loss is None else p.loss - baseline.loss
            units.append(UnitAblation(int(p.value), p, d, lc))
        units.sort(key=lambda u: (u.drop is None, -(u.drop or 0.0), u.index))
        return cls(spec, baseline, units, **kw)

    def order(self, most_important_first: bool = True) -> list[int]:
        """Unit indices by importance (for the cumulative curves: the first ``k`` are ablated together)."""
        idx = [u.index for u in self.units if u.drop is not None]
        return idx if most_important_first else idx[::-1]

    def raising(self) -> list[int]:
        """Units whose removal raised accuracy."""
        return [u.index for u in self.units if u.raises_accuracy]

    def to_json(self) -> dict[str, Any]:
        """``{"baseline": {...}, "layer": NAME, "ablation", "neurons": [...], "cumulative_top": [...],
        "cumulative_bottom": [...], "method", "complete"}``, largest drop first."""
        base = self.baseline.to_dict()
        return _clean(
            {
                "baseline": {k: base[k] for k in ("accuracy", "loss", "agreement", "per_class", "num_samples",
                                                  "accuracy_ci")},
                "layer": self.spec.layer,
                "ablation": self.spec.ablation,
                "neurons": [u.to_dict() for u in self.units],
                "cumulative_top": [_cum(k, p) for k, p in enumerate(self.cumulative_top, 1)],
                "cumulative_bottom": [_cum(k, p) for k, p in enumerate(self.cumulative_bottom, 1)],
                "method": self.method,
                "complete": self.complete,
            }
        )

    def to_csv(self) -> str:
        """One row per unit, largest drop first: index, accuracy, interval, loss, drop, agreement, raises_accuracy."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "accuracy", "accuracy_lo", "accuracy_hi", "loss", "drop", "agreement", "raises_accuracy"])
        for u in self.units:
            ci = u.point.accuracy_ci or (None, None)
            row = [u.index, u.point.accuracy, *ci, u.point.loss, u.drop, u.point.agreement, u.raises_accuracy]
            w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
        return buf.getvalue()

    def to_dataframe(self) -> Any:
        """The units as a pandas DataFrame (columns as :meth:`to_csv`); ImportError without pandas."""
        return _pandas().read_csv(io.StringIO(self.to_csv()))


def rank_edit(spec: RankSpec, units: Iterable[int], model: ModelFile) -> Edit:
    """The zero ablation of ``units`` of ``spec.layer`` as a registered ``zero_neurons`` edit.

    BatchNorm-aware: with ``spec.batchnorm`` None the following
    BatchNormalization (:func:`weightlab.core.graph.following_batchnorm`) is
    silenced for the same channels when there is one. A cumulative point is
    ``rank_edit(spec, result.order()[:k], model)``.

    Raises
    ------
    RecipeError
        For a mean-ablation spec (it has no weight edit: the engine replaces
        the unit's output), no units, a unit out of range, or
        ``batchnorm=True`` with no BatchNormalization following the layer.
    """
    from .edits import ZeroNeurons
    from .graph import following_batchnorm

    if spec.ablation != "zero":
        raise RecipeError(f"rank {spec.layer}: a {spec.ablation} ablation is not a weight edit")
    neurons = tuple(sorted({int(u) for u in units}))
    if not neurons:
        raise RecipeError(f"rank {spec.layer}: no units to ablate")
    bn = spec.batchnorm if spec.batchnorm is not None else following_batchnorm(model, spec.layer) is not None
    edit = ZeroNeurons(target=spec.layer, neurons=neurons, batchnorm=bn)
    edit.targets(model)  # the layer exists and the units are in range
    return edit


def _pandas() -> Any:
    """pandas, an optional dependency (ImportError when it is not installed)."""
    import importlib

    return importlib.import_module("pandas")


def _cum(k: int, p: SweepPoint) -> dict[str, Any]:
    return {"k": k, "accuracy": p.accuracy, "loss": p.loss, "agreement": p.agreement, "accuracy_ci": p.accuracy_ci}


#: A callable that measures one edit (for tests and in-process use): edit -> SweepPoint.
Measure = Callable[[Edit], SweepPoint]

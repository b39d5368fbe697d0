"""From sensitivity curves to a plan: the strongest edit per target within an accuracy budget.

Given a sweep's result (mode ``"each"``: one curve per target) and a budget
(the largest drop allowed, in percentage points), :func:`plan` picks for each
target the strongest value whose drop, measured with that target edited
alone, stays within the budget: the value where the curve crosses the budget,
interpolated linearly between the two measured points around the crossing
(:meth:`weightlab.core.sweeps.SweepResult.threshold`), or the strongest
measured value when the curve never crosses it. It composes them into one
recipe (:meth:`Plan.recipe`). The targets interact (each was measured with
the others unedited), so the composed recipe must be evaluated once: the
caller records that with :meth:`Plan.set_joint`, and the plan shows its real
drop beside the sum of the single-target drops (:attr:`Plan.interaction_pp`).

This is PaddleSlim's ``get_ratios_by_loss`` (per-layer ratios for a loss
budget, linear interpolation between measured ratios) for any sweepable op.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .edits import Edit
from .errors import RecipeError
from .model import ModelFile
from .sweeps import (
    SweepPoint,
    SweepResult,
    SweepSpec,
    _clean,
    drop_pp,
    short_number,
    sweep_edit,
    sweep_targets,
)

__all__ = ["PlanChoice", "Plan", "plan"]


@dataclass(frozen=True)
class PlanChoice:
    """The value chosen for one target.

    Attributes
    ----------
    target:
        The sweep target (tensor, layer, group id or together label).
    value:
        The chosen value; None when even the weakest measured value is past
        the budget and the parameter has no finite neutral value to
        interpolate from (the target is left unedited).
    single_drop_pp:
        The drop of this target alone at ``value``, in percentage points:
        interpolated like the value (the budget itself at a crossing), or
        measured. None for ``value`` None.
    interpolated:
        True when ``value`` lies between measured points.
    """

    target: str
    value: float | None
    single_drop_pp: float | None
    interpolated: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON values."""
        return _clean(
            {"target": self.target, "value": self.value, "single_drop_pp": self.single_drop_pp,
             "interpolated": self.interpolated}
        )


@dataclass
class Plan:
    """Per-target values within a budget, their recipe, and (once evaluated) their joint drop.

    Attributes
    ----------
    spec:
        The sweep the plan comes from.
    budget_pp:
        The largest drop allowed per target, in percentage points.
    metric:
        ``"accuracy"`` or ``"agreement"``.
    baseline:
        The unedited model's value of ``metric``.
    choices:
        One per target, in the sweep's target order.
    joint:
        The composed recipe's measured point (:meth:`set_joint`), or None.
    """

    spec: SweepSpec
    budget_pp: float
    metric: str
    baseline: float | None
    choices: list[PlanChoice] = field(default_factory=list)
    joint: SweepPoint | None = None

    def __repr__(self) -> str:
        """One line; ``to_json()`` and the fields keep the data."""
        return (f"Plan(op={self.spec.op!r}, param={self.spec.param!r}, budget_pp={self.budget_pp!r}, "
                f"choices={len(self.choices)}, sum_single_drops_pp={short_number(self.sum_single_drops_pp, 2)}, "
                f"joint_drop_pp={short_number(self.joint_drop_pp, 2)})")  # fmt: skip

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a summary table and the plot (:func:`weightlab.core.richdisplay.plan_html`)."""
        from .richdisplay import plan_html

        return plan_html(self)

    def _repr_svg_(self) -> str:
        """The plot alone as an SVG document (:func:`weightlab.core.richdisplay.plan_svg`)."""
        from .richdisplay import STANDALONE_INK, plan_svg

        return plan_svg(self, ink=STANDALONE_INK)

    @property
    def sum_single_drops_pp(self) -> float:
        """Sum of the chosen targets' single drops (percentage points)."""
        return float(sum(c.single_drop_pp for c in self.choices if c.single_drop_pp is not None))

    @property
    def joint_drop_pp(self) -> float | None:
        """The composed recipe's real drop (percentage points); None before :meth:`set_joint`."""
        return None if self.joint is None else drop_pp(self.baseline, self.joint.metric(self.metric))

    @property
    def interaction_pp(self) -> float | None:
        """``joint_drop_pp - sum_single_drops_pp``: positive when the edits hurt more together than apart."""
        j = self.joint_drop_pp
        return None if j is None else j - self.sum_single_drops_pp

    def set_joint(self, point: SweepPoint) -> None:
        """Record the evaluation of :meth:`recipe` applied to the model."""
        self.joint = point

    def edits(self, model: ModelFile | None = None, source: Any = None) -> list[Edit]:
        """Registered edits, one or more per chosen target, in target order.

        Parameters
        ----------
        model, source:
            Needed for group targets (a group id is resolved on ``model``) and
            for ``prune_neurons`` on a coupled group, whose channels depend on
            the weights (``source``: a session; each target's channels are
            ranked on the weights as the earlier targets left them).

        Raises
        ------
        RecipeError
            When a group target needs ``model``/``source`` and they are not given.
        """
        from .sweeps import _Overlay

        targets = {t.name: t for t in sweep_targets(self.spec, model)} if model is not None else {}
        overlay = _Overlay(source) if source is not None else None
        out: list[Edit] = []
        for c in self.choices:
            if c.value is None:
                continue
            if c.target.startswith("group:") and c.target not in targets:
                raise RecipeError(f"plan: target {c.target!r} is a coupled group; give the model to resolve it")
            edit = sweep_edit(self.spec, targets.get(c.target, c.target), c.value, model)
            steps = getattr(edit, "steps", None)
            if steps is None:
                parts = [edit]
            else:
                if model is None or overlay is None:
                    raise RecipeError(f"plan: target {c.target!r} needs the model and its weights to build its steps")
                parts = steps(model, overlay)
            for p in parts:
                if overlay is not None and model is not None:
                    overlay.new.update(p.apply(model, overlay))
                out.append(p)
        return out

    def recipe(self, model: ModelFile | None = None, source: Any = None, source_name: str | None = None) -> dict[str, Any]:
        """The plan as a recipe object (``{"version": 1, "edits": [...]}``, see :mod:`weightlab.core.recipe`)."""
        from .recipe import recipe_dict

        return recipe_dict(self.edits(model, source), source_name)

    def to_json(self) -> dict[str, Any]:
        """``{"op", "param", "budget_pp", "metric", "baseline", "choices": [...], "sum_single_drops_pp",
        "joint_drop_pp", "interaction_pp", "joint"}`` (JSON values)."""
        return _clean(
            {
                "op": self.spec.op,
                "param": self.spec.param,
                "budget_pp": self.budget_pp,
                "metric": self.metric,
                "baseline": self.baseline,
                "choices": [c.to_dict() for c in self.choices],
                "sum_single_drops_pp": self.sum_single_drops_pp,
                "joint_drop_pp": self.joint_drop_pp,
                "interaction_pp": self.interaction_pp,
                "joint": None if self.joint is None else self.joint.to_dict(),
            }
        )


def _single_drop(values: list[float], drops: list[float], v: float) -> tuple[float, bool]:
    """Drop at ``v`` by linear interpolation along the measured (value, drop) points (values weakest first)."""
    for i, (a, d) in enumerate(zip(values, drops)):
        if a == v:
            return d, False
        if i and min(values[i - 1], a) < v < max(values[i - 1], a):
            a0, d0 = values[i - 1], drops[i - 1]
            return d0 + (v - a0) / (a - a0) * (d - d0), True
    return math.nan, True


def plan(result: SweepResult, budget_pp: float, metric: str | None = None) -> Plan:
    """For each target of ``result``, the strongest value whose single drop stays within ``budget_pp``.

    Parameters
    ----------
    result:
        A sweep result, usually of mode ``"each"``.
    budget_pp:
        Largest allowed drop per target, percentage points (>= 0).
    metric:
        ``"accuracy"`` or ``"agreement"`` (default: the sweep's).

    Returns
    -------
    Plan
        One :class:`PlanChoice` per target: at the budget crossing
        (interpolated, :meth:`SweepResult.threshold`), else the strongest
        measured value (the target never reached the budget). An integer
        parameter is rounded toward the weaker side, so the choice stays
        within the budget.

    Raises
    ------
    RecipeError
        When the budget is negative or not finite, or the parameter has no
        stronger direction (a scale factor).
    """
    if isinstance(budget_pp, bool) or not isinstance(budget_pp, (int, float)) or not 0 <= budget_pp < math.inf:
        raise RecipeError(f"plan: budget must be a finite number of percentage points >= 0; got {budget_pp!r}")
    spec = result.spec
    sp = spec.sweep_param
    if not sp.stronger:
        raise RecipeError(f"plan: {spec.op}.{spec.param} has no stronger direction; a plan needs one")
    metric = metric or spec.metric
    base = result.baseline.metric(metric)
    out = Plan(spec, float(budget_pp), metric, base)
    for target in result.targets():
        values_a, drops_a = result.drops(target, metric)
        keep = [(float(v), float(d)) for v, d in zip(values_a, drops_a) if not math.isnan(d)]
        if not keep:
            out.choices.append(PlanChoice(target, None, None, False))
            continue
        values = [v for v, _ in keep]
        drops = [d for _, d in keep]
        crossing = result.threshold(target, budget_pp, metric)
        if crossing is None:  # within budget everywhere: the strongest measured value
            out.choices.append(PlanChoice(target, values[-1], drops[-1], False))
            continue
        if drops[0] >= budget_pp and not math.isfinite(sp.neutral):
            # At or past the budget at the weakest measured value, and nothing weaker to interpolate from.
            ok = drops[0] <= budget_pp
            out.choices.append(PlanChoice(target, values[0] if ok else None, drops[0] if ok else None, False))
            continue
        v = crossing
        if sp.kind == "int":
            v = float(math.floor(v) if sp.stronger == "up" else math.ceil(v))
        v = min(max(v, sp.lo), sp.hi)
        pts_v = ([sp.neutral] if math.isfinite(sp.neutral) else []) + values
        pts_d = ([0.0] if math.isfinite(sp.neutral) else []) + drops
        d, interp = _single_drop(pts_v, pts_d, v)
        if math.isnan(d):
            d = float(budget_pp)
        out.choices.append(PlanChoice(target, v, d, interp))
    return out


def plan_from_json(data: Mapping[str, Any], result: SweepResult) -> Plan:
    """Rebuild a :class:`Plan` of ``result`` from :meth:`Plan.to_json` (choices and joint)."""
    p = Plan(result.spec, float(data["budget_pp"]), str(data["metric"]), data.get("baseline"))
    p.choices = [PlanChoice(c["target"], c["value"], c["single_drop_pp"], bool(c["interpolated"]))
                 for c in data.get("choices", [])]
    if data.get("joint"):
        p.joint = SweepPoint.from_dict(data["joint"])
    return p

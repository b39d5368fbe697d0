"""Budget plans from sweep curves (pure NumPy)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from sweepfixtures import residual_model

from weightlab.core.edits import Clip, PruneNeurons
from weightlab.core.errors import RecipeError
from weightlab.core.plan import plan, plan_from_json
from weightlab.core.recipe import parse_recipe
from weightlab.core.session import EditSession
from weightlab.core.sweeps import SweepPoint, SweepResult, SweepSpec, sweep_edit, sweep_targets


def _p(target, value, acc, n=1000):
    m = SimpleNamespace(accuracy=acc, loss=1 - acc, agreement=None, per_class=[], num_samples=n, labels=True)
    return SweepPoint.from_metrics(target, value, m)


def _clip_result():
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.4, 0.3, 0.2, 0.1), mode="each")
    pts = [
        # conv1/kernel: 0, 1, 3, 20 pp -> budget 2 crosses at 0.25
        *(_p("conv1/kernel", v, a) for v, a in [(0.4, 0.90), (0.3, 0.89), (0.2, 0.87), (0.1, 0.70)]),
        # head/kernel: never past 2 pp -> the strongest value, 0.1
        *(_p("head/kernel", v, a) for v, a in [(0.4, 0.90), (0.3, 0.90), (0.2, 0.895), (0.1, 0.89)]),
        # conv2/kernel: past the budget at the weakest value (clip's neutral is +inf): left unedited
        *(_p("conv2/kernel", v, a) for v, a in [(0.4, 0.80), (0.3, 0.7), (0.2, 0.6), (0.1, 0.5)]),
    ]
    return SweepResult(spec, _p("", None, 0.90), pts)


def test_plan_takes_the_crossing_the_strongest_value_or_nothing():
    pl = plan(_clip_result(), 2.0)
    got = {c.target: (c.value, c.single_drop_pp, c.interpolated) for c in pl.choices}
    assert got["conv1/kernel"][0] == pytest.approx(0.25) and got["conv1/kernel"][1] == pytest.approx(2.0)
    assert got["conv1/kernel"][2]
    assert got["head/kernel"][0] == 0.1 and got["head/kernel"][1] == pytest.approx(1.0)
    assert not got["head/kernel"][2]
    assert got["conv2/kernel"] == (None, None, False)
    assert pl.sum_single_drops_pp == pytest.approx(3.0)
    assert pl.joint_drop_pp is None and pl.interaction_pp is None


def test_plan_recipe_is_the_sweep_edits_at_the_chosen_values_and_records_the_joint_drop():
    res = _clip_result()
    pl = plan(res, 2.0)
    edits = parse_recipe(pl.recipe())
    assert [type(e) for e in edits] == [Clip, Clip] and [e.target for e in edits] == ["conv1/kernel", "head/kernel"]
    assert [e.threshold for e in edits] == [pytest.approx(0.25), 0.1]
    pl.set_joint(_p("(plan)", None, 0.86))
    assert pl.joint_drop_pp == pytest.approx(4.0)
    assert pl.interaction_pp == pytest.approx(1.0)  # 4 pp together vs 2 + 1 apart
    data = json.loads(json.dumps(pl.to_json(), allow_nan=False))
    assert data["interaction_pp"] == pytest.approx(1.0) and len(data["choices"]) == 3
    again = plan_from_json(data, res)
    assert again.choices == pl.choices and again.joint_drop_pp == pytest.approx(4.0)


def test_integer_parameter_rounds_toward_the_weaker_side():
    spec = SweepSpec(op="prune_neurons", param="count", targets=("conv1",), values=(2, 4, 6), mode="each")
    # neutral 0 (drop 0), 2: 1 pp, 4: 2.5 pp, 6: 10 pp -> budget 2 crosses at 2 + 2 * (1 / 1.5) = 3.33 -> 3
    res = SweepResult(spec, _p("", None, 0.9), [_p("conv1", 2, 0.89), _p("conv1", 4, 0.875), _p("conv1", 6, 0.8)])
    (choice,) = plan(res, 2.0).choices
    assert choice.value == 3.0 and choice.interpolated
    assert choice.single_drop_pp == pytest.approx(1.75)  # interpolated between 2 (1 pp) and 4 (2.5 pp)
    assert plan(res, 2.0).edits() == [PruneNeurons(target="conv1", count=3)]


def test_finite_neutral_interpolates_below_the_first_measured_value():
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=("a/kernel",), values=(0.5, 0.9), mode="each")
    res = SweepResult(spec, _p("", None, 0.9), [_p("a/kernel", 0.5, 0.86), _p("a/kernel", 0.9, 0.5)])
    (choice,) = plan(res, 2.0).choices
    assert choice.value == pytest.approx(0.25) and choice.single_drop_pp == pytest.approx(2.0)


def test_plan_over_a_coupled_group_builds_registered_steps_on_the_weights():
    model = residual_model(seed=1)
    session = EditSession(model)
    spec = SweepSpec(op="prune_neurons", param="fraction", targets=("*/kernel",), values=(0.25, 0.5), mode="each",
                     coupled=True)
    names = [t.name for t in sweep_targets(spec, model)]
    pts = [_p(n, v, 0.9 - (0.001 if v == 0.25 else 0.1)) for n in names for v in (0.25, 0.5)]
    pl = plan(SweepResult(spec, _p("", None, 0.9), pts), 5.0)
    with pytest.raises(RecipeError, match="group"):
        pl.recipe()
    recipe = pl.recipe(model, session)
    replay = EditSession(model)
    for e in parse_recipe(recipe):
        replay.apply(e)
    # The same weights as applying each point's edit in turn.
    direct = EditSession(model)
    for c in pl.choices:
        direct.apply(sweep_edit(spec, next(t for t in sweep_targets(spec, model) if t.name == c.target), c.value))
    for name in model.tensors:
        assert np.array_equal(replay.array(name), direct.array(name)), name
    assert replay.edited_names  # the plan did edit


def test_plan_refuses_bad_budgets_and_directionless_params():
    with pytest.raises(RecipeError, match="budget"):
        plan(_clip_result(), -1.0)
    with pytest.raises(RecipeError, match="budget"):
        plan(_clip_result(), float("inf"))
    spec = SweepSpec(op="scale", param="factor", targets=("a",), values=(0.5, 2.0), mode="each")
    with pytest.raises(RecipeError, match="no stronger direction"):
        plan(SweepResult(spec, _p("", None, 0.9), [_p("a", 0.5, 0.8)]), 1.0)

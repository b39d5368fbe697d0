"""The sweep model in core: specs, targets, point edits, statistics, thresholds, refinement, the log (pure NumPy)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from sweepfixtures import residual_model

from weightlab.core.catalogue import CATALOGUE, SWEEPABLE, sweep_param, sweepable_params
from weightlab.core.edits import Clip, PruneMagnitude, ZeroNeurons, edit_from_dict
from weightlab.core.errors import DataError, RecipeError
from weightlab.core.jobs import spec_from_dict
from weightlab.core.recipe import parse_recipe, recipe_dict
from weightlab.core.session import EditSession
from weightlab.core.stats import neuron_norms, wilson_interval
from weightlab.core.sweeps import (
    CompositeEdit,
    CoupledPruneNeurons,
    RankResult,
    RankSpec,
    SweepLog,
    SweepPoint,
    SweepResult,
    SweepSpec,
    next_values,
    past_budget,
    rank_edit,
    recipe_edits,
    sweep_edit,
    sweep_targets,
)


def _clip_spec(**kw):
    base = {"op": "clip", "param": "threshold", "targets": ("*/kernel",), "values": (0.5, 0.1, 0.2)}
    base.update(kw)
    return SweepSpec(**base)


def _point(target, value, acc, n=1000, agreement=None):
    return SweepPoint.from_metrics(
        target, value, SimpleNamespace(accuracy=acc, loss=1.0 - acc, agreement=agreement, per_class=[acc, acc],
                                       num_samples=n, labels=True)
    )


# -- clip's threshold and the catalogue's sweepable parameters -------------------------------


def test_clip_threshold_is_a_symmetric_clip():
    w = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    model = residual_model()  # any model: compute() only needs the array
    e = edit_from_dict({"op": "clip", "target": "head/kernel", "threshold": 0.3})
    assert isinstance(e, Clip) and e.bounds == (-0.3, 0.3)
    assert np.array_equal(e.compute("x", w, None), np.clip(w, np.float32(-0.3), np.float32(0.3)))
    assert e.to_dict() == {"op": "clip", "target": "head/kernel", "threshold": 0.3}
    assert edit_from_dict(e.to_dict()) == e and "±0.3" in e.describe()
    assert Clip(target="a", min=-1.0, max=2.0).describe() == "clip a to [-1, 2]"
    del model


@pytest.mark.parametrize(
    ("step", "match"),
    [
        ({"threshold": 0.1, "min": -0.1}, "not both"),
        ({"min": -0.1}, r"missing parameter\(s\) max \(give min and max, or threshold alone\)"),
        ({}, r"missing parameter\(s\) min, max"),
        ({"threshold": -0.1}, "threshold"),
        ({"min": 0.2, "max": 0.1}, "min must be <= max"),
    ],
)
def test_clip_refuses_incomplete_or_mixed_bounds(step, match):
    with pytest.raises(RecipeError, match=match):
        edit_from_dict({"op": "clip", "target": "a", **step})


def test_sweepable_parameters_exist_and_their_neutral_value_changes_nothing():
    assert sweep_param("clip", "threshold").stronger == "down"
    assert [p.name for p in sweepable_params("prune_magnitude")] == ["sparsity", "threshold"]
    assert len(sweepable_params()) == len(SWEEPABLE)
    model = residual_model()
    session = EditSession(model)
    for (op, name), sp in SWEEPABLE.items():
        info = CATALOGUE[op]
        p = info.param(name)
        assert p.kind in ("float", "int") and sp.kind == p.kind, (op, name)
        assert sp.stronger in ("up", "down", "")
        if not math.isfinite(sp.neutral):
            continue  # clip's threshold: +inf, not a recipe value
        fixed = {"neurons": [0, 2]} if op == "scale_neurons" else {}
        if op == "clip_percentile":
            fixed = {"upper": 100.0} if name == "lower" else {"lower": 0.0}
        target = "conv1" if info.target == "layer" else "conv1/kernel"
        edit = edit_from_dict({"op": op, "target": target, **fixed, name: sp.neutral if sp.kind == "float"
                               else int(sp.neutral)})
        for t, new in edit.apply(model, session).items():
            assert np.array_equal(new, session.array(t)), f"{op}.{name}={sp.neutral} changed {t}"


def test_sweep_param_refuses_unknown_names():
    with pytest.raises(RecipeError, match="unknown op 'nope'"):
        sweep_param("nope", "x")
    with pytest.raises(RecipeError, match="its sweepable parameters are threshold"):
        sweep_param("clip", "min")
    with pytest.raises(RecipeError, match="no sweepable parameter"):
        sweep_param("revert", "x")


def test_wilson_interval_moved_to_core_and_is_reexported():
    from weightlab.engine.events import wilson_interval as from_engine

    assert from_engine is wilson_interval


# -- specs ------------------------------------------------------------------------------------


def test_spec_round_trips_through_json_and_hashes_by_content():
    spec = _clip_spec(mode="each", budget_pp=2, fixed={})
    again = spec_from_dict(json.loads(json.dumps(spec.to_dict(), allow_nan=False)))
    assert again == spec and again.spec_hash() == spec.spec_hash()
    assert _clip_spec(values=(0.5, 0.1)).spec_hash() != spec.spec_hash()
    assert spec.budget_pp == 2.0 and isinstance(spec.budget_pp, float)
    rank = RankSpec(layer="head", ablation="mean")
    assert spec_from_dict(json.loads(json.dumps(rank.to_dict()))) == rank and rank.kind == "rank"


def test_values_are_ordered_weakest_first_by_the_parameters_direction():
    assert _clip_spec().initial_values() == (0.5, 0.2, 0.1)  # smaller threshold: stronger clip
    prune = SweepSpec(op="prune_magnitude", param="sparsity", targets=("a",), values=(0.9, 0.1, 0.5))
    assert prune.initial_values() == (0.1, 0.5, 0.9)
    scale = SweepSpec(op="scale", param="factor", targets=("a",), values=(0.5, 1.2, 2.0, 0.9))
    assert scale.initial_values() == (0.9, 1.2, 0.5, 2.0)  # by distance from 1


def test_range_includes_its_stop_and_reads_cleanly():
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=("a",), value_range=(0.1, 0.7, 0.1))
    assert spec.initial_values() == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    down = SweepSpec(op="clip", param="threshold", targets=("a",), value_range=[0.4, 0.1, -0.1])
    assert down.initial_values() == (0.4, 0.3, 0.2, 0.1)


def test_adaptive_spec_starts_with_the_coarse_grid():
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=("a",), adaptive=(0.0, 1.0), initial_points=5)
    assert spec.initial_values() == (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"op": "nope"}, "unknown op"),
        ({"param": "min"}, "sweepable"),
        ({"targets": ()}, "'targets'"),
        ({"targets": ("",)}, "'targets'"),
        ({"values": ()}, "'values'"),
        ({"value_range": (0.1, 0.5, 0.1)}, "'values'.*exactly one"),
        ({"values": (0.1, "x")}, "'values'"),
        ({"values": (0.1, 0.1)}, "'values'.*repeat"),
        ({"values": (-0.1,)}, "'values'.*must be in"),
        ({"values": (float("nan"),)}, "'values'"),
        ({"values": (), "value_range": (0.1, 0.5, -0.1)}, "'value_range'"),
        ({"values": (), "value_range": (0.1, 0.5, 0)}, "'value_range'"),
        ({"values": (), "value_range": (0.0, 1e9, 1.0)}, "'value_range'.*more than"),
        ({"values": (), "adaptive": (0.5, 0.1)}, "'adaptive'"),
        ({"values": (), "adaptive": (0.0, 1.0), "scale": "log"}, "'adaptive'.*log"),
        ({"values": (), "adaptive": (0.1, 1.0), "initial_points": 20}, "'initial_points'"),
        ({"max_points": 1}, "'max_points'"),
        ({"scale": "cubic"}, "'scale'"),
        ({"mode": "both"}, "'mode'"),
        ({"metric": "f1"}, "'metric'"),
        ({"budget_pp": -1}, "'budget_pp'"),
        ({"coupled": "yes"}, "'coupled'"),
        ({"fixed": {"threshold": 0.2}}, "'fixed'.*set by the sweep"),
        ({"fixed": {"min": -0.1}}, "'fixed'.*not both"),
        ({"fixed": {"bogus": 1}}, "'fixed'.*unknown parameter"),
        ({"resolution_pp": 0}, "'resolution_pp'"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(kw, field):
    with pytest.raises(RecipeError, match=field):
        _clip_spec(**kw)


def test_budget_needs_a_direction_and_int_params_need_integers():
    with pytest.raises(RecipeError, match="'budget_pp'.*no stronger direction"):
        SweepSpec(op="scale", param="factor", targets=("a",), values=(0.5,), budget_pp=1.0)
    with pytest.raises(RecipeError, match="integer"):
        SweepSpec(op="prune_neurons", param="count", targets=("a",), values=(1.5,))
    with pytest.raises(RecipeError, match="'fixed'.*neurons"):
        SweepSpec(op="scale_neurons", param="factor", targets=("a",), values=(0.5,))
    with pytest.raises(RecipeError, match="'layer'"):
        RankSpec(layer="")
    with pytest.raises(RecipeError, match="'ablation'"):
        RankSpec(layer="d", ablation="noise")
    with pytest.raises(RecipeError, match="'batchnorm'"):
        RankSpec(layer="d", ablation="mean", batchnorm=True)


# -- targets and edits --------------------------------------------------------------------------


def test_each_mode_has_one_target_per_tensor_and_together_one_for_all():
    model = residual_model()
    each = sweep_targets(_clip_spec(mode="each"), model)
    assert [t.name for t in each] == [n for n in model.tensors if n.endswith("/kernel")]
    assert all(t.note == "edited alone" for t in each)
    (together,) = sweep_targets(_clip_spec(), model)
    assert together.name == "*/kernel" and together.edit_target == "*/kernel"
    with pytest.raises(RecipeError, match="matches no tensor"):
        sweep_targets(_clip_spec(targets=("nothing*",), mode="each"), model)


def test_sweep_edit_is_the_registered_edit_with_the_value():
    model = residual_model()
    session = EditSession(model)
    spec = _clip_spec(mode="each")
    target = sweep_targets(spec, model)[1]
    edit = sweep_edit(spec, target, 0.2)
    assert edit == Clip(target=target.name, threshold=0.2)
    new = edit.apply(model, session)
    w = session.array(target.name)
    assert list(new) == [target.name] and np.array_equal(new[target.name], np.clip(w, -np.float32(0.2), 0.2))
    fixed = SweepSpec(op="prune_magnitude", param="sparsity", targets=("conv1/kernel", "conv2/kernel"),
                      values=(0.5,), fixed={"scope": "global"})
    assert sweep_edit(fixed, fixed.together_label, 0.5) == PruneMagnitude(
        target=("conv1/kernel", "conv2/kernel"), sparsity=0.5, scope="global"
    )


def test_neuron_sweep_each_names_the_coupling_or_sweeps_the_group():
    model = residual_model()
    alone = SweepSpec(op="prune_neurons", param="fraction", targets=("*/kernel",), values=(0.25,), mode="each")
    targets = {t.name: t for t in sweep_targets(alone, model)}
    assert list(targets) == ["stem", "conv1", "conv2", "conv3", "head"]
    assert "coupled" in targets["conv2"].note and "group:add" in targets["conv2"].note
    assert targets["head"].note == "edited alone"
    grouped = SweepSpec(op="prune_neurons", param="fraction", targets=("*/kernel",), values=(0.25,), mode="each",
                        coupled=True)
    names = [t.name for t in sweep_targets(grouped, model)]
    assert names == ["group:add", "group:conv1+bn1", "head"]


def test_coupled_prune_removes_the_same_channels_everywhere_by_joint_norm():
    model = residual_model(seed=3)
    session = EditSession(model)
    spec = SweepSpec(op="prune_neurons", param="fraction", targets=("group:add",), values=(0.25,), mode="each")
    (target,) = sweep_targets(spec, model)
    edit = sweep_edit(spec, target, 0.25)
    assert isinstance(edit, CoupledPruneNeurons)
    joint = sum(neuron_norms(session.array(f"{m}/kernel"), ord=1) for m in ("stem", "conv2", "conv3"))
    expected = tuple(sorted(np.argsort(joint, kind="stable")[:2]))  # floor(0.25 * 8) = 2
    assert edit.chosen_channels(model, session) == expected
    new = edit.apply(model, session)
    for layer in ("stem", "conv2", "conv3"):
        k = new[f"{layer}/kernel"]
        zero = [j for j in range(8) if not k[..., j].any() and not new[f"{layer}/bias"][j]]
        assert tuple(zero) == expected, layer
        untouched = [j for j in range(8) if j not in expected]
        assert np.array_equal(k[..., untouched], session.array(f"{layer}/kernel")[..., untouched])
    for bn in ("stem_bn", "bn2"):  # members with a BatchNorm are silenced there too
        assert not new[f"{bn}/gamma"][list(expected)].any() and not new[f"{bn}/beta"][list(expected)].any()
    assert "conv1/kernel" not in new and "bn1/gamma" not in new
    # The recipe steps (registered zero_neurons) give the same weights.
    steps = edit.steps(model, session)
    assert all(isinstance(s, ZeroNeurons) for s in steps)
    replay = EditSession(model)
    for s in parse_recipe(recipe_dict(steps)):
        replay.apply(s)
    for name, arr in new.items():
        assert np.array_equal(replay.array(name), arr), name
    assert recipe_edits(edit, model, session) == steps
    assert recipe_edits(Clip(target="head/kernel", threshold=0.1), model, session) == [
        Clip(target="head/kernel", threshold=0.1)
    ]
    # A group id given as a string is resolved with the model.
    assert sweep_edit(spec, "group:add", 0.25, model) == edit
    with pytest.raises(RecipeError, match="needs the model"):
        sweep_edit(spec, "group:add", 0.25)


def test_neuron_op_together_over_a_glob_takes_the_layers_with_kernels():
    model = residual_model()
    spec = SweepSpec(op="prune_neurons", param="fraction", targets=("conv*/kernel", "head"), values=(0.5,))
    (target,) = sweep_targets(spec, model)
    assert target.edit_target == ("conv1", "conv2", "conv3", "head")
    with pytest.raises(RecipeError, match="no layer with a kernel"):
        sweep_targets(SweepSpec(op="prune_neurons", param="fraction", targets=("bn*",), values=(0.5,)), model)


def test_neuron_op_on_several_layers_together_is_a_composite_of_registered_edits():
    model = residual_model()
    session = EditSession(model)
    spec = SweepSpec(op="prune_neurons", param="count", targets=("conv1", "head"), values=(1,))
    (target,) = sweep_targets(spec, model)
    edit = sweep_edit(spec, target, 1)
    assert isinstance(edit, CompositeEdit) and [p.to_dict()["target"] for p in edit.parts] == ["conv1", "head"]
    new = edit.apply(model, session)
    expected = {}
    for p in edit.parts:
        expected.update(p.apply(model, session))
    assert set(new) == set(expected) and all(np.array_equal(new[k], expected[k]) for k in new)


# -- points and results ----------------------------------------------------------------------------


def test_point_from_metrics_has_wilson_intervals_of_the_counts():
    p = _point("a", 0.1, 0.9, n=200, agreement=0.95)
    assert p.accuracy_ci == wilson_interval(180, 200) and p.agreement_ci == wilson_interval(190, 200)
    assert p.accuracy_ci[0] < 0.9 < p.accuracy_ci[1]
    unlabelled = SweepPoint.from_metrics("a", 0.1, SimpleNamespace(accuracy=float("nan"), loss=float("nan"),
                                                                 agreement=0.5, per_class=[], num_samples=10,
                                                                 labels=False))
    assert unlabelled.accuracy is None and unlabelled.loss is None and unlabelled.accuracy_ci is None
    d = unlabelled.to_dict()
    json.dumps(d, allow_nan=False)
    assert SweepPoint.from_dict(d) == unlabelled
    with pytest.raises(DataError):
        SweepPoint.from_dict({"target": "a"})


def _result(points, spec=None, base=0.9):
    spec = spec or _clip_spec(mode="each", values=(0.4, 0.3, 0.2, 0.1))
    return SweepResult(spec, _point("", None, base), points)


def test_threshold_interpolates_the_first_crossing_from_the_weak_side():
    # Drops (pp) for threshold 0.4, 0.3, 0.2, 0.1: 0, 1, 3, 20.
    res = _result([_point("a", v, a) for v, a in [(0.1, 0.70), (0.4, 0.90), (0.3, 0.89), (0.2, 0.87)]])
    values, drops = res.drops("a")
    assert np.allclose(values, [0.4, 0.3, 0.2, 0.1]) and np.allclose(drops, [0, 1, 3, 20])
    # budget 2 pp crosses between 0.3 (1 pp) and 0.2 (3 pp): halfway.
    assert res.threshold("a", 2.0) == pytest.approx(0.25)
    assert res.threshold("a", 3.0) == pytest.approx(0.2)  # exactly on a point
    assert res.threshold("a", 50.0) is None  # never reached
    # Past the budget at the weakest value, clip's neutral is +inf: the weakest value.
    assert res.threshold("a", 0.0) == pytest.approx(0.4)
    assert res.sensitivities(2.0) == {"a": pytest.approx(0.25)}


def test_threshold_interpolates_from_a_finite_neutral_value():
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=("a",), values=(0.5, 0.9), mode="each")
    res = _result([_point("a", 0.5, 0.86), _point("a", 0.9, 0.5)], spec)
    # The neutral sparsity 0 has drop 0; 0.5 has 4 pp: 2 pp at 0.25.
    assert res.threshold("a", 2.0) == pytest.approx(0.25)


def test_result_json_and_csv_carry_the_points():
    res = _result([_point("a", 0.2, 0.8), _point("b", 0.2, 0.85, agreement=0.9)])
    data = res.to_json()
    text = json.dumps(data, allow_nan=False)
    assert set(data["baseline"]) >= {"accuracy", "loss"}
    assert [(p["target"], p["value"]) for p in data["points"]] == [("a", 0.2), ("b", 0.2)]
    assert all({"accuracy", "loss", "agreement", "accuracy_ci"} <= set(p) for p in data["points"])
    again = SweepResult.from_json(json.loads(text))
    assert again.points == res.points and again.baseline == res.baseline and again.spec == res.spec
    rows = res.to_csv().splitlines()
    assert rows[0].startswith("target,value,accuracy") and len(rows) == 4
    assert rows[2].split(",")[:3] == ["a", "0.2", "0.8"]
    assert float(rows[2].split(",")[9]) == pytest.approx(10.0)  # drop_pp
    with pytest.raises(DataError):
        SweepResult.from_json({"points": []})


def test_past_budget_follows_the_metric():
    base = _point("", None, 0.9, agreement=None)
    p = _point("a", 0.1, 0.87, agreement=0.99)
    assert past_budget(base, p, 2.0) and not past_budget(base, p, 3.5) and not past_budget(base, p, None)
    assert not past_budget(base, p, 1.5, metric="agreement")  # baseline agreement 1.0, drop 1 pp
    assert past_budget(base, p, 0.9, metric="agreement")


# -- adaptive refinement ---------------------------------------------------------------------------


def test_next_values_starts_coarse_then_bisects_the_steepest_interval():
    assert next_values([], (0.0, 1.0), 10, initial=5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert next_values([], (0.01, 100.0), 10, initial=5, scale="log") == pytest.approx([0.01, 0.1, 1, 10, 100])
    measured = [(0.0, 0.9), (0.25, 0.9), (0.5, 0.88), (0.75, 0.3), (1.0, 0.1)]
    assert next_values(measured, (0.0, 1.0), 10) == [0.625]
    assert next_values(measured, (0.0, 1.0), 10, batch=2) == [0.625, 0.875]
    assert next_values(measured, (0.0, 1.0), 5) == []  # budget spent
    flat = [(0.0, 0.9), (0.5, 0.9), (1.0, 0.895)]
    assert next_values(flat, (0.0, 1.0), 10, resolution_pp=1.0) == []  # resolved


def test_adaptive_refinement_finds_a_cliff_with_few_points():
    cliff = 0.6180339

    def acc(v):
        return 0.9 if v < cliff else 0.1

    measured = []
    values = next_values(measured, (0.0, 1.0), 40, initial=5)
    while values:
        measured.extend((v, acc(v)) for v in values)
        values = next_values(measured, (0.0, 1.0), 40, min_gap=1e-3)
    xs = sorted(v for v, _ in measured)
    below = max(v for v in xs if v < cliff)
    above = min(v for v in xs if v >= cliff)
    assert above - below <= 1e-3 and len(measured) <= 5 + 10  # bisection: log2(0.25 / 1e-3) < 10 steps


def test_next_values_refuses_bad_bounds():
    with pytest.raises(ValueError):
        next_values([], (1.0, 0.0), 5)
    with pytest.raises(ValueError):
        next_values([], (0.0, 1.0), 5, scale="log")


# -- the partial-results log ---------------------------------------------------------------------


def test_log_resumes_skipping_a_torn_last_line(tmp_path):
    path = tmp_path / "sweep.jsonl"
    spec = _clip_spec(mode="each")
    log = SweepLog.open(path, spec)
    log.set_baseline(_point("", None, 0.9))
    log.append(_point("a", 0.5, 0.9))
    log.append(_point("a", 0.2, 0.8))
    with open(path, "ab") as f:  # a kill in the middle of the next write
        f.write(b'{"point": {"target": "a", "val')
    loaded = SweepLog.load(path)
    assert loaded.done() == {("a", 0.5), ("a", 0.2)} and loaded.baseline == log.baseline
    resumed = SweepLog.open(path, spec)
    resumed.append(_point("a", 0.1, 0.5))
    assert SweepLog.load(path).done() == {("a", 0.5), ("a", 0.2), ("a", 0.1)}
    assert all(json.loads(line) for line in path.read_text().splitlines())  # the torn tail was cut
    result = SweepLog.load(path).result()
    assert not result.complete and len(result.points) == 3


def test_log_of_another_sweep_or_not_a_log_is_refused(tmp_path):
    path = tmp_path / "sweep.jsonl"
    SweepLog.open(path, _clip_spec(mode="each"))
    with pytest.raises(DataError, match="different sweep"):
        SweepLog.open(path, _clip_spec(mode="together"))
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(DataError, match="other.jsonl.*not a sweep log"):
        SweepLog.load(other)
    tampered = tmp_path / "tampered.jsonl"
    header = json.loads(path.read_text().splitlines()[0])
    header["sweep"]["values"] = [0.3]
    tampered.write_text(json.dumps(header) + "\n")
    with pytest.raises(DataError, match="does not match"):
        SweepLog.load(tampered)
    with pytest.raises(DataError, match="no baseline"):
        SweepLog.load(path).result()


# -- rankings ---------------------------------------------------------------------------------------


def test_rank_result_sorts_by_drop_and_flags_units_that_help():
    base = _point("", None, 0.80)
    accs = [0.78, 0.60, 0.81, 0.80, 0.60]
    res = RankResult.from_points(RankSpec(layer="dense"), base, [_point("dense", i, a) for i, a in enumerate(accs)])
    assert [u.index for u in res.units] == [1, 4, 0, 3, 2]  # ties by index
    assert res.raising() == [2] and res.units[-1].raises_accuracy
    assert res.order() == [1, 4, 0, 3, 2] and res.order(most_important_first=False) == [2, 3, 0, 4, 1]
    data = res.to_json()
    json.dumps(data, allow_nan=False)
    assert data["layer"] == "dense" and data["neurons"][0]["index"] == 1
    assert data["neurons"][0]["drop"] == pytest.approx(0.20)
    assert {"index", "accuracy", "loss", "drop"} <= set(data["neurons"][0])
    assert res.to_csv().splitlines()[1].startswith("1,0.6,")


def test_rank_without_labels_ranks_by_agreement():
    unl = SimpleNamespace(accuracy=float("nan"), loss=float("nan"), per_class=[], num_samples=100, labels=False)
    base = SweepPoint.from_metrics("", None, SimpleNamespace(**{**vars(unl), "agreement": 1.0}))
    pts = [SweepPoint.from_metrics("d", i, SimpleNamespace(**{**vars(unl), "agreement": a}))
           for i, a in enumerate([0.99, 0.9, 1.0])]
    res = RankResult.from_points(RankSpec(layer="d"), base, pts)
    assert [u.index for u in res.units] == [1, 0, 2] and res.units[0].drop == pytest.approx(0.1)


def test_a_bad_spec_from_the_wire_is_a_value_error_naming_the_field():
    import weightlab.core.sweeps as sweeps

    with pytest.raises(ValueError, match="field 'op'") as err:
        spec_from_dict({"kind": "sweep"})
    assert isinstance(err.value, RecipeError) and isinstance(err.value, sweeps.SpecError)
    with pytest.raises(ValueError, match="field 'param'"):
        spec_from_dict({"kind": "sweep", "op": "clip", "param": "min", "targets": ["a"], "values": [0.1]})
    with pytest.raises(ValueError, match="field 'layer'"):
        spec_from_dict({"kind": "rank"})


def test_log_torn_in_its_header_starts_again_and_other_files_are_left_alone(tmp_path):
    spec = _clip_spec(mode="each")
    path = tmp_path / "sweep.jsonl"
    SweepLog.open(path, spec)
    whole = path.read_bytes()
    path.write_bytes(whole[:17])  # killed while writing the header
    log = SweepLog.open(path, spec)
    log.append(_point("a", 0.5, 0.9))
    assert path.read_bytes().startswith(whole) and SweepLog.load(path).done() == {("a", 0.5)}
    precious = tmp_path / "model.keras"
    precious.write_bytes(b"PK\x03\x04 not a log")
    with pytest.raises(DataError, match="model.keras"):
        SweepLog.open(precious, spec)
    assert precious.read_bytes() == b"PK\x03\x04 not a log"


def test_refine_follows_the_spec_and_skips_unknown_metrics():
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=("a",), adaptive=(0.0, 1.0), max_points=8,
                     initial_points=3, resolution_pp=0.5)
    assert spec.refine([]) == (0.0, 0.5, 1.0)
    assert spec.refine([(0.0, 0.9), (0.5, 0.9), (1.0, 0.1)]) == (0.75,)
    assert spec.refine([(0.0, 0.9), (0.5, None), (1.0, 0.1)]) == (0.5,)
    assert _clip_spec().refine([(0.1, 0.5)]) == ()


def test_rank_edit_zeroes_the_units_with_their_batchnorm():
    model = residual_model()
    session = EditSession(model)
    edit = rank_edit(RankSpec(layer="conv1"), [3, 1], model)
    assert edit == ZeroNeurons(target="conv1", neurons=(1, 3), batchnorm=True)  # bn1 follows conv1
    new = edit.apply(model, session)
    assert not new["bn1/gamma"][[1, 3]].any() and new["bn1/gamma"][0] == session.array("bn1/gamma")[0]
    assert rank_edit(RankSpec(layer="head"), [0], model).batchnorm is False
    assert rank_edit(RankSpec(layer="conv1", batchnorm=False), [0], model).batchnorm is False
    with pytest.raises(RecipeError, match="has 3 output neurons"):
        rank_edit(RankSpec(layer="head"), [5], model)
    with pytest.raises(RecipeError, match="not a weight edit"):
        rank_edit(RankSpec(layer="head", ablation="mean"), [0], model)
    with pytest.raises(RecipeError, match="no units"):
        rank_edit(RankSpec(layer="head"), [], model)


def test_dataframes_when_pandas_is_installed():
    pd = pytest.importorskip("pandas")
    res = SweepResult(_clip_spec(), _point("", None, 0.9), [_point("a", 0.2, 0.8)])
    df = res.to_dataframe()
    assert isinstance(df, pd.DataFrame) and list(df["accuracy"]) == [0.9, 0.8]


def test_cli_value_texts():
    from weightlab.core.sweeps import parse_range, parse_values

    assert parse_values("0.1,0.2, 0.5") == (0.1, 0.2, 0.5)
    assert parse_range("0.05:0.4:0.05") == (0.05, 0.4, 0.05)
    spec = SweepSpec(op="clip", param="threshold", targets=("a",), value_range=parse_range("0.05:0.4:0.05"))
    assert len(spec.initial_values()) == 8 and spec.initial_values()[-1] == 0.05
    for bad in ("", "0.1,,0.2", "0.1,x", "nan", "1,inf"):
        with pytest.raises(RecipeError, match="'values'"):
            parse_values(bad)
    for bad in ("0.1:0.2", "a:b:c", "0:1:nan", "0:1:2:3"):
        with pytest.raises(RecipeError, match="'value_range'"):
            parse_range(bad)


def _dense_residual():
    from sweepfixtures import functional, layer

    from weightlab.core.model import ModelFile

    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 5]),
        layer("a", "Dense", ("x",), units=4),
        layer("b", "Dense", ("x",), units=4),
        layer("add", "Add", ("a", "b")),
    )
    rng = np.random.default_rng(7)
    arrays = {f"{n}/{w}": rng.normal(size=s).astype(np.float32)
              for n in ("a", "b") for w, s in (("kernel", (5, 4)), ("bias", (4,)))}
    return ModelFile.from_arrays(arrays, classes={"a": "Dense", "b": "Dense"}, config=cfg)


def _forward(session, x):
    """The residual block in NumPy: a(x) + b(x)."""
    return sum(x @ session.array(f"{n}/kernel") + session.array(f"{n}/bias") for n in ("a", "b"))


def test_pruning_one_side_of_a_residual_add_leaves_the_channel_flowing_the_group_silences_it():
    model = _dense_residual()
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    alone = SweepSpec(op="prune_neurons", param="count", targets=("a",), values=(2,), mode="each")
    (t_alone,) = sweep_targets(alone, model)
    assert "coupled" in t_alone.note and "group:add" in t_alone.note
    s1 = EditSession(model)
    edit = sweep_edit(alone, t_alone, 2)
    s1.apply(edit)
    pruned = list(edit.chosen_neurons(model, EditSession(model)))
    out = _forward(s1, x)
    assert np.abs(out[:, pruned]).min() > 0  # the other side still carries those channels: not removed

    grouped = SweepSpec(op="prune_neurons", param="count", targets=("a",), values=(2,), mode="each", coupled=True)
    (t_group,) = sweep_targets(grouped, model)
    assert t_group.name == "group:add"
    s2 = EditSession(model)
    g_edit = sweep_edit(grouped, t_group, 2)
    s2.apply(g_edit)
    removed = list(g_edit.chosen_channels(model, EditSession(model)))
    out2 = _forward(s2, x)
    assert len(removed) == 2 and not out2[:, removed].any()  # really removed from the block's output
    kept = [j for j in range(4) if j not in removed]
    assert np.array_equal(out2[:, kept], _forward(EditSession(model), x)[:, kept])


def test_coupled_prune_maps_concatenated_channels_to_each_member():
    from sweepfixtures import functional, layer

    from weightlab.core.model import ModelFile

    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 3]),
        layer("a", "Dense", ("x",), units=4),
        layer("b", "Dense", ("x",), units=6),
        layer("cat", "Concatenate", ("a", "b"), axis=-1),
        layer("c", "Dense", ("x",), units=10),
        layer("add", "Add", ("cat", "c")),
    )
    rng = np.random.default_rng(1)
    arrays = {"a/kernel": rng.normal(size=(3, 4)), "b/kernel": rng.normal(size=(3, 6)),
              "c/kernel": rng.normal(size=(3, 10))}
    model = ModelFile.from_arrays(arrays, classes={"a": "Dense", "b": "Dense", "c": "Dense"}, config=cfg)
    session = EditSession(model)
    spec = SweepSpec(op="prune_neurons", param="fraction", targets=("group:cat",), values=(0.3,), mode="each")
    (target,) = sweep_targets(spec, model)
    edit = sweep_edit(spec, target, 0.3)
    joint = np.abs(arrays["c/kernel"]).sum(0) + np.concatenate(
        [np.abs(arrays["a/kernel"]).sum(0), np.abs(arrays["b/kernel"]).sum(0)]
    )
    expected = sorted(np.argsort(joint, kind="stable")[:3])  # floor(0.3 * 10)
    assert list(edit.chosen_channels(model, session)) == expected
    new = edit.apply(model, session)
    cat = np.concatenate([new.get("a/kernel", arrays["a/kernel"]), new.get("b/kernel", arrays["b/kernel"])], axis=1)
    for k in (cat, new["c/kernel"]):
        assert [j for j in range(10) if not k[:, j].any()] == expected

"""The Python API of sweeps, rankings and plans: :func:`weightlab.sweep`, :func:`weightlab.rank`,
:func:`weightlab.plan` (issue 11, item 7), and the argument handling of :mod:`weightlab.analysis`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import weightlab
from weightlab import analysis
from weightlab.core.errors import RecipeError
from weightlab.core.plan import Plan
from weightlab.core.sweeps import RankResult, SpecError, SweepPoint, SweepResult, SweepSpec
from weightlab.edits import Clip

ENV = {**{k: v for k, v in os.environ.items() if k != "WEIGHTLAB_DEBUG"}, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def demo(demo_paths):
    return demo_paths["keras"], demo_paths["data"]


@pytest.fixture
def session(demo):
    s = weightlab.open(demo[0])
    yield s
    s.model.close()


# -- arguments to specs (no evaluation) --------------------------------------------------------------


def test_values_range_and_adaptive_as_numbers_or_text():
    a = analysis.sweep_spec("clip", "threshold", values="0.3, 0.1,0.05")
    assert a.values == (0.3, 0.1, 0.05) and a.targets == analysis.DEFAULT_TARGETS and a.mode == "together"
    assert analysis.sweep_spec("clip", "threshold", values=[0.3, 0.1, 0.05]) == a
    r = analysis.sweep_spec("prune_magnitude", "sparsity", range="0.1:0.5:0.2", targets="dense*")
    assert (
        r.value_range == (0.1, 0.5, 0.2)
        and r.initial_values() == (0.1, 0.3, 0.5)
        and r.targets == ("dense*",)
    )
    assert analysis.sweep_spec("prune_magnitude", "sparsity", range=(0.1, 0.5, 0.2), targets=["dense*"]) == r
    # adaptive=True: the parameter's whole valid range, when it is finite.
    assert analysis.sweep_spec("prune_magnitude", "sparsity", adaptive=True).adaptive == (0.0, 1.0)
    assert analysis.sweep_spec("clip", "threshold", adaptive="0.01:0.5").adaptive == (0.01, 0.5)
    with pytest.raises(SpecError, match="no finite range.*LOW:HIGH"):
        analysis.sweep_spec("clip", "threshold", adaptive=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of values, range, adaptive"),
        ({"values": [0.1], "range": (0.1, 0.3, 0.1)}, "exactly one of values, range, adaptive"),
        ({"values": "0.1,x"}, "field 'values'"),
        ({"range": "0.1:0.3"}, "field 'value_range'"),
        ({"adaptive": "0.3"}, "field 'adaptive'"),
        ({"values": [0.1], "mode": "both"}, "field 'mode'"),
        ({"values": [-1.0]}, r"must be in \[0, inf\]"),
    ],
)
def test_bad_arguments_raise_spec_errors_naming_the_field(kwargs, match):
    with pytest.raises(SpecError, match=match):
        analysis.sweep_spec("clip", "threshold", **kwargs)


def test_model_source_takes_a_path_or_a_session(session, demo):
    assert analysis.model_source(demo[0]) == (demo[0], None)
    assert analysis.model_source(session) == (demo[0], None)  # nothing edited yet: the file as stored
    session.apply(Clip(target="dense/kernel", min=-0.1, max=0.1))
    path, edited = analysis.model_source(session)
    assert path == demo[0] and list(edited) == ["dense/kernel"]
    np.testing.assert_array_equal(edited["dense/kernel"], session.array("dense/kernel"))
    with pytest.raises(TypeError, match="expected a file path, an EditSession or a Keras model; got int"):
        analysis.model_source(3)


def test_mistakes_fail_before_tensorflow_is_imported(demo, tmp_path):
    model, data = demo
    script = f"""
import sys, weightlab
for call in (
    lambda: weightlab.sweep({str(model)!r}, {str(data)!r}, op="clip", param="threshold", values=[0.1], targets="x*"),
    lambda: weightlab.rank({str(model)!r}, {str(data)!r}, layer="flatten"),
    lambda: weightlab.plan({str(model)!r}, {str(data)!r}, op="clip", param="threshold", values=[0.1], budget_pp=-1),
    lambda: weightlab.sweep({str(model)!r}, {str(tmp_path / "none.npz")!r}, op="clip", param="threshold", values=[0.1]),
):
    try:
        call()
    except weightlab.WeightLabError as e:
        print(str(e))
    else:
        raise SystemExit("no error")
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow imported"
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=ENV)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{model}: ") and "'x*' matches no tensor" in lines[0]
    assert lines[1].startswith(f"{model}: ") and "flatten" in lines[1]
    assert lines[2].startswith("plan: budget must be")
    assert lines[3] == f"{tmp_path / 'none.npz'}: no such held-out file"


# -- evaluated ---------------------------------------------------------------------------------------


def test_a_sweep_of_a_session_starts_from_its_edits_and_its_points_are_true(demo, session):
    model, data = demo
    session.apply(Clip(target="conv2d/kernel", min=-0.03, max=0.03))
    edited_base = weightlab.evaluate(session, data)
    file_base = weightlab.evaluate(model, data)
    assert edited_base.accuracy != file_base.accuracy  # the session's edit matters, so the test can fail
    r = weightlab.sweep(session, data, op="clip", param="threshold", values=[0.05], targets="dense/kernel")
    assert isinstance(r, SweepResult) and r.complete
    assert r.baseline.accuracy == pytest.approx(edited_base.accuracy, abs=1e-12)
    [point] = r.points
    assert (point.target, point.value) == ("dense/kernel", 0.05)
    # The point is the session's edits plus the swept one, evaluated from scratch.
    session.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    assert point.accuracy == pytest.approx(weightlab.evaluate(session, data).accuracy, abs=1e-6)
    assert point.accuracy != r.baseline.accuracy


def test_text_and_numbers_give_the_same_sweep_as_the_engine(demo):
    from weightlab._tf import headless

    model, data = demo
    a = weightlab.sweep(model, data, op="prune_magnitude", param="sparsity", range="0.3:0.9:0.3", mode="each",
                        targets=["dense/kernel", "dense_1/kernel"], budget_pp=50.0)  # fmt: skip
    spec = SweepSpec(op="prune_magnitude", param="sparsity", value_range=(0.3, 0.9, 0.3), mode="each",
                     targets=("dense/kernel", "dense_1/kernel"), budget_pp=50.0)  # fmt: skip
    b = headless.sweep(model, data, spec)
    assert a.spec == spec
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())
    assert a.targets() == ["dense_1/kernel", "dense/kernel"] and len(a.points) == 6


def test_rank_of_a_session_and_its_order(demo, session):
    _, data = demo
    session.apply(Clip(target="dense_1/kernel", min=-0.2, max=0.2))
    r = weightlab.rank(session, data, layer="dense_1", cumulative=False)
    assert isinstance(r, RankResult) and r.complete
    assert r.baseline.accuracy == pytest.approx(weightlab.evaluate(session, data).accuracy, abs=1e-12)
    assert sorted(u.index for u in r.units) == list(range(10))
    drops = [u.drop for u in r.units]
    assert drops == sorted(drops, reverse=True)
    for u in r.units:
        assert u.drop == pytest.approx(r.baseline.accuracy - u.point.accuracy, abs=1e-12)
    assert r.cumulative_top == [] and r.cumulative_bottom == []


def test_plan_recipe_replays_to_the_joint_accuracy(demo):
    model, data = demo
    p = weightlab.plan(model, data, op="prune_magnitude", param="sparsity", values=[0.3, 0.6, 0.9],
                       targets="dense*/kernel", budget_pp=1.0)  # fmt: skip
    assert isinstance(p, Plan) and p.joint is not None and p.spec.mode == "each"
    assert {c.target for c in p.choices} == {"dense/kernel", "dense_1/kernel"}
    assert all(c.single_drop_pp is None or c.single_drop_pp <= 1.0 + 1e-9 for c in p.choices)
    s = weightlab.open(model)
    try:
        s.apply_recipe(p.recipe())
        assert s.position == sum(c.value is not None for c in p.choices) > 0
        assert weightlab.evaluate(s, data).accuracy == pytest.approx(p.joint.accuracy, abs=1e-6)
    finally:
        s.model.close()
    assert p.joint_drop_pp == pytest.approx(100 * (p.baseline - p.joint.accuracy))


def test_results_as_dataframes(demo):
    pd = pytest.importorskip("pandas")
    model, data = demo
    r = weightlab.sweep(model, data, op="clip", param="threshold", values=[0.1, 0.05], targets="dense/kernel")
    df = r.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 1 + len(r.points)
    assert list(df["value"][1:]) == [p.value for p in r.points]
    np.testing.assert_allclose(
        df["accuracy"], [r.baseline.accuracy, *(p.accuracy for p in r.points)], atol=1e-12
    )
    k = weightlab.rank(model, data, layer="dense_1", cumulative=False)
    kd = k.to_dataframe()
    assert list(kd["index"]) == [u.index for u in k.units]
    np.testing.assert_allclose(kd["drop"], [u.drop for u in k.units], atol=1e-12)


# -- the parallel options: passed to the engine only when given ----------------------------------------


@pytest.fixture
def recorded(monkeypatch):
    """Replace the engine's sweep and plan by recorders of their keyword arguments."""
    from weightlab._tf import headless
    from weightlab.core.plan import plan as make_plan

    calls: list[dict] = []

    def result(spec: SweepSpec) -> SweepResult:
        base = SweepPoint("", None, 0.9, 0.3, num_samples=10)
        return SweepResult(spec, base, [SweepPoint(spec.together_label, spec.initial_values()[0], 0.8, 0.4,
                                                   num_samples=10)])  # fmt: skip

    def sweep(path, data, spec, **kw):
        calls.append(kw)
        return result(spec)

    def plan(path, data, spec, budget_pp, **kw):
        calls.append(kw)
        return make_plan(result(spec), budget_pp), result(spec)

    monkeypatch.setattr(headless, "sweep", sweep)
    monkeypatch.setattr(headless, "plan", plan)
    return calls


def test_workers_and_ray_reach_the_engine_only_when_given(demo, recorded):
    model, data = demo
    args = dict(op="clip", param="threshold", values=[0.1], targets="dense/kernel")
    weightlab.sweep(model, data, **args)
    weightlab.sweep(model, data, **args, workers=1)
    weightlab.sweep(model, data, **args, workers=2)
    weightlab.sweep(model, data, **args, workers=None)
    weightlab.sweep(model, data, **args, ray=True)
    weightlab.sweep(model, data, **args, ray="10.0.0.1:6379", workers=3)
    weightlab.plan(model, data, **args, budget_pp=1.0, ray="")
    got = [{k: c[k] for k in ("workers", "ray_address") if k in c} for c in recorded]
    assert got == [
        {},
        {},
        {"workers": 2},
        {"workers": None},
        {"ray_address": ""},
        {"workers": 3, "ray_address": "10.0.0.1:6379"},
        {"ray_address": ""},
    ]
    for bad in (0, 1.5, True):
        with pytest.raises(RecipeError, match="workers must be a whole number >= 1"):
            weightlab.sweep(model, data, **args, workers=bad)


def test_the_command_passes_workers_and_ray_through(demo, recorded, capfd, monkeypatch):
    from weightlab import cli

    model, data = demo
    monkeypatch.setenv("WEIGHTLAB_DEBUG", "")
    loggers = [logging.getLogger(n) for n in ("tensorflow", "absl", "keras", "tf_keras", "h5py")]
    levels = [lg.level for lg in loggers]
    base = ["sweep", str(model), "--data", str(data), "--op", "clip", "--param", "threshold", "--values", "0.1",
            "--json"]  # fmt: skip
    try:
        assert cli.main(base) == 0
        assert cli.main([*base, "--workers", "2", "--ray"]) == 0
        assert cli.main([*base, "--ray", "head:6379"]) == 0
        assert cli.main([*base, "--workers"]) == 0
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    capfd.readouterr()
    got = [{k: c[k] for k in ("workers", "ray_address") if k in c} for c in recorded]
    assert got == [{}, {"workers": 2, "ray_address": ""}, {"ray_address": "head:6379"}, {"workers": None}]

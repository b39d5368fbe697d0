"""Sweeps in the engine: true numbers, the order of the points, early stop, adaptive values, resume, the worker job.

Small models built in code (the benchmark's residual CNN scaled down to 8x8x3)
with random weights and held-out labels that mostly agree with the model, so
edits move the accuracy. Reference numbers are built independently: the
point's edit applied with the recipe machinery (``weightlab.open`` + an
edit from its recipe step) to a freshly loaded Keras model, then Keras'
own ``model.evaluate``; for a SavedModel, its serving signature.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from test_engine import Recorder

import weightlab
from weightlab.core.edits import edit_from_dict
from weightlab.core.errors import DataError
from weightlab.core.sweeps import SweepLog, SweepSpec, sweep_edit, sweep_targets
from weightlab.engine import EngineClient, JobProgress, JobResult, ModelReady, Ready

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "benchmarks" / "bench_eval.py")
bench_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_eval)

N = 240


def _cnn():
    keras.utils.set_random_seed(5)
    layers = keras.layers
    inp = keras.Input((8, 8, 3))
    h = layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    h = layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(h))
    h = layers.Flatten(name="flat")(h)
    h = layers.Dense(12, activation="relu", name="hidden")(h)
    out = layers.Dense(5, activation="softmax", name="out")(h)
    return keras.Model(inp, out, name="cnn")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A residual CNN (.keras), a small CNN (.keras and its SavedModel export), held-out sets."""
    d = tmp_path_factory.mktemp("sweep_engine")
    out = {}
    res = bench_eval.residual_cnn((8, 8, 3), widths=(4, 8, 8), blocks=(1, 1, 1), seed=2)
    x, y = bench_eval.heldout_for(res, n=N, seed=3)
    res.save(d / "res.keras")
    np.savez(d / "res.npz", x=x, y=y)
    out["res"] = {"path": d / "res.keras", "data": d / "res.npz", "x": x, "y": y}
    cnn = _cnn()
    # Non-trivial BatchNorm statistics, so clipping them means something.
    bn = cnn.get_layer("bn")
    rng = np.random.default_rng(0)
    bn.moving_mean.assign(rng.normal(scale=0.2, size=6).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 1.5, size=6).astype(np.float32))
    x, y = bench_eval.heldout_for(cnn, n=N, seed=4)
    cnn.save(d / "cnn.keras")
    cnn.export(str(d / "cnn_sm"), verbose=False)
    np.savez(d / "cnn.npz", x=x, y=y)
    out["cnn"] = {"path": d / "cnn.keras", "sm": d / "cnn_sm", "data": d / "cnn.npz", "x": x, "y": y}
    return out


def _weights_by_name(model):
    return {f"{layer.name}/{v.name}": v for layer in model.layers for v in layer.weights}


def _recipe_weights(path, spec, target, value):
    """The point's weights built with the recipe machinery: its recipe steps applied to the opened file."""
    s = weightlab.open(path)
    try:
        targets = {t.name: t for t in sweep_targets(spec, s.model)}
        edit = sweep_edit(spec, targets[target], value, s.model)
        steps = edit.steps(s.model, s) if hasattr(edit, "steps") else [edit]
        for e in steps:
            s.apply(edit_from_dict(e.to_dict(), "reference"))
        return {n: np.array(a) for n, a in s.edited_arrays().items()}
    finally:
        s.model.close()


class _KerasReference:
    """``model.evaluate`` of a freshly loaded Keras model holding given weights."""

    def __init__(self, path, x, y):
        self.model = keras.saving.load_model(path)
        self.model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self.vars = _weights_by_name(self.model)
        self.original = {n: v.numpy().copy() for n, v in self.vars.items()}
        self.x, self.y = x, y

    def __call__(self, edited):
        for n, v in self.vars.items():
            v.assign(edited.get(n, self.original[n]))
        return self.model.evaluate(self.x, self.y, batch_size=64, verbose=0, return_dict=True)


def _check_true(point, ref, weights, tag):
    want = ref(weights)
    assert abs(point.accuracy - want["accuracy"]) <= 1e-6, (tag, point.accuracy, want["accuracy"])
    assert point.loss == pytest.approx(want["loss"], rel=1e-5, abs=1e-6), tag


SWEEPS = {
    "clip threshold, each": dict(op="clip", param="threshold", targets=("*",), values=(0.3, 0.1, 0.03), mode="each"),
    "clip threshold, together": dict(
        op="clip", param="threshold", targets=("*/kernel",), values=(0.2, 0.08, 0.03), mode="together"
    ),
    "prune_magnitude sparsity, each": dict(
        op="prune_magnitude", param="sparsity", targets=("*/kernel",), values=(0.3, 0.7, 0.9), mode="each"
    ),
    "add_noise std, together": dict(
        op="add_noise", param="std", targets=("*/kernel",), values=(0.05, 0.2), mode="together", fixed={"seed": 7}
    ),
    "prune_neurons fraction, each (coupled groups)": dict(
        op="prune_neurons", param="fraction", targets=("*/kernel",), values=(0.25, 0.5), mode="each", coupled=True
    ),
    "scale factor, each": dict(op="scale", param="factor", targets=("*/kernel",), values=(0.5, 1.5), mode="each"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SWEEPS))
def test_sweep_points_equal_recipe_weights_and_model_evaluate(files, kind):
    """Every kind of sweep, sampled points: accuracy = model.evaluate of the recipe's weights within 1e-6."""
    from weightlab._tf import headless

    f = files["res"]
    spec = SweepSpec(**SWEEPS[kind])
    result = headless.sweep(f["path"], f["data"], spec, batch_size=64)
    assert result.complete and result.points
    ref = _KerasReference(f["path"], f["x"], f["y"])
    base = ref({})
    assert abs(result.baseline.accuracy - base["accuracy"]) <= 1e-6
    model = weightlab.open(f["path"]).model
    try:
        targets = [t.name for t in sweep_targets(spec, model)]
    finally:
        model.close()
    assert {p.target for p in result.points} == set(targets)
    rng = np.random.default_rng(len(kind))
    sample = rng.choice(len(result.points), size=min(4, len(result.points)), replace=False)
    accuracies = {round(p.accuracy, 6) for p in result.points}
    assert len(accuracies) >= 2  # the sweep moves the accuracy: the comparisons mean something
    for i in sample:
        p = result.points[int(i)]
        _check_true(p, ref, _recipe_weights(f["path"], spec, p.target, p.value), (kind, p.target, p.value))
        lo, hi = p.accuracy_ci
        assert lo <= p.accuracy <= hi and p.num_samples == N


@pytest.mark.slow
def test_savedmodel_sweep_equals_keras_evaluate(files):
    """A TensorFlow format: the SavedModel's signature evaluated at every point = model.evaluate of the same weights."""
    from weightlab._tf import headless

    f = files["cnn"]
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.3, 0.1, 0.02), mode="each")
    result = headless.sweep(f["sm"], f["data"], spec, batch_size=64)
    assert {p.target for p in result.points} == {"conv/kernel", "hidden/kernel", "out/kernel"}
    ref = _KerasReference(f["path"], f["x"], f["y"])
    assert abs(result.baseline.accuracy - ref({})["accuracy"]) <= 1e-6
    moved = 0
    for p in result.points:
        # The point's weights from the recipe machinery on the Keras file (same canonical names).
        weights = _recipe_weights(f["path"], spec, p.target, p.value)
        assert list(weights) == [p.target]
        _check_true(p, ref, weights, (p.target, p.value))
        moved += p.accuracy != result.baseline.accuracy
    assert moved >= 2


@pytest.mark.slow
def test_suffix_points_equal_full_passes_and_reuse_each_targets_activations(files):
    """Points run from each target's frontier equal full passes of the session (no cache), for every tensor."""
    from weightlab._tf.passes import open_session
    from weightlab._tf.points import PointEvaluator
    from weightlab._tf.sweep import engine_model_file, run_sweep

    f = files["res"]
    session = open_session(f["path"], f["data"], batch_size=32)
    full = open_session(f["path"], f["data"], batch_size=32, cache_budget=0)
    session.evaluate({})  # as in the worker: earlier evaluations recorded the session's cuts
    ev = PointEvaluator(session)
    model = engine_model_file(session, f["path"], ev.originals)
    spec = SweepSpec(op="scale", param="factor", targets=("*",), values=(0.5, 1.7), mode="each")
    seen = []
    try:
        result = run_sweep(ev, model, spec, progress=lambda frac, msg, p: seen.append((frac, p)))
    finally:
        model.close()
    n_tensors = len(session.tmap.variables)
    assert len(result.points) == 2 * n_tensors == len(seen)
    assert [p for _, p in seen] == result.points and seen[-1][0] == 1.0
    # Tensors that are all zeros (biases, BatchNorm betas and means of a fresh model) do not change when
    # scaled: those points are the baseline, not run.
    zeros = sum(1 for a in ev.originals.values() if not a.any())
    assert 0 < zeros < n_tensors
    assert ev.unchanged_points == 2 * zeros and ev.suffix_points == 2 * (n_tensors - zeros)
    assert ev.session_points == 0
    full.evaluate({})
    for p in result.points:
        want = full.evaluate({p.target: ev.originals[p.target] * np.float32(p.value)})
        assert p.accuracy == want.accuracy and p.loss == pytest.approx(want.loss, rel=1e-6, abs=1e-7), p.target
        assert p.agreement == want.agreement  # with the unedited model: the base, here
    # Every value of a target in a row, targets from the output backwards.
    order = list(dict.fromkeys(p.target for p in result.points))
    assert order[0].startswith("head/") and order[-1] == "stem/kernel"
    assert all(result.points[2 * i].target == result.points[2 * i + 1].target for i in range(n_tensors))
    # The session's cuts are untouched by the sweep: an evaluation after it is incremental from them.
    after = session.evaluate({"head/kernel": ev.originals["head/kernel"] * np.float32(0.5)})
    assert after.mode == "incremental" and after.cut == "pool"


@pytest.mark.slow
def test_base_edits_unchanged_points_and_agreement_with_the_base(files):
    from weightlab._tf.passes import open_session
    from weightlab._tf.points import PointEvaluator

    f = files["res"]
    session = open_session(f["path"], f["data"], batch_size=32)
    full = open_session(f["path"], f["data"], batch_size=32, cache_budget=0)
    ev0 = PointEvaluator(full)
    base = {"s2b1_conv1/kernel": ev0.originals["s2b1_conv1/kernel"] * np.float32(0.3)}
    ev = PointEvaluator(session, base)
    b = ev.baseline()
    assert b.accuracy == full.evaluate(base).accuracy and b.agreement == 1.0
    k = ev.current("s3b1_conv2/kernel")
    # A clip above the largest magnitude changes nothing: the base's metrics, not run.
    same = ev.evaluate({"s3b1_conv2/kernel": np.clip(k, -10, 10)})
    assert same.mode == "unchanged" and same.accuracy == b.accuracy and ev.unchanged_points == 1
    changes = {"s3b1_conv2/kernel": np.clip(k, -0.02, 0.02)}
    got = ev.evaluate(changes)
    want = full.evaluate({**base, **changes})
    assert got.mode == "suffix" and got.accuracy == want.accuracy
    # Agreement is with the base (edited) model's predictions, computed independently here.
    full_ev = PointEvaluator(open_session(f["path"], f["data"], batch_size=32, cache_budget=0), base)
    full_ev.baseline()
    assert got.agreement == full_ev.evaluate(changes).agreement
    assert got.agreement < 1.0


@pytest.mark.slow
def test_early_stop_and_adaptive_refinement(files):
    from weightlab._tf import headless

    f = files["res"]
    spec = SweepSpec(
        op="prune_magnitude", param="sparsity", targets=("stem/kernel", "head/kernel"),
        values=(0.1, 0.5, 0.8, 0.95, 0.99), mode="each", budget_pp=5.0,
    )  # fmt: skip
    r = headless.sweep(f["path"], f["data"], spec, batch_size=64)
    base = r.baseline.accuracy
    for t in ("stem/kernel", "head/kernel"):
        values, acc = r.curve(t)
        drops = 100 * (base - acc)
        if t in r.stopped:
            # Measured up to the first value past the budget, nothing stronger.
            assert values[-1] == r.stopped[t] and drops[-1] > 5.0 and (drops[:-1] <= 5.0).all()
        else:
            assert len(values) == 5 and (drops <= 5.0).all()
    assert r.stopped, "the budget is small enough to stop a target"
    adaptive = SweepSpec(
        op="clip", param="threshold", targets=("*/kernel",), adaptive=(0.005, 0.5), mode="together",
        max_points=8, initial_points=4, resolution_pp=2.0,
    )  # fmt: skip
    a = headless.sweep(f["path"], f["data"], adaptive, batch_size=64)
    values = [p.value for p in a.points]
    assert 4 < len(values) <= 8 and len(set(values)) == len(values)
    assert values[:4] == sorted(values[:4], reverse=True)  # the coarse grid first, weakest first
    v_sorted, acc = a.curve(a.points[0].target)
    # Refinement went where the accuracy falls fastest: every refined value lies in a steep interval of the grid.
    grid = sorted(values[:4])
    grid_acc = {p.value: p.accuracy for p in a.points[:4]}
    steps = [abs(grid_acc[b] - grid_acc[c]) for b, c in zip(grid, grid[1:])]
    steepest = int(np.argmax(steps))
    assert grid[steepest] < values[4] < grid[steepest + 1]


@pytest.mark.slow
def test_cancelled_sweep_resumes_from_its_log(files, tmp_path):
    from weightlab._tf import headless

    f = files["res"]
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.2, 0.05, 0.01), mode="each")
    full = headless.sweep(f["path"], f["data"], spec, batch_size=64)
    log = tmp_path / "sweep.jsonl"
    measured = []

    def progress(frac, msg, point):
        measured.append(point)

    stop = {"after": 5}
    partial = headless.sweep(
        f["path"], f["data"], spec, batch_size=64, log_path=log, progress=progress,
        should_stop=lambda: len(measured) >= stop["after"],
    )  # fmt: skip
    assert not partial.complete and len(partial.points) == 5
    assert [p.to_dict() for p in SweepLog.load(log).points] == [p.to_dict() for p in partial.points]
    with open(log, "ab") as fh:  # a kill in the middle of a line
        fh.write(b'{"point": {"target": "stem/ker')
    measured.clear()
    resumed = headless.sweep(f["path"], f["data"], spec, batch_size=64, log_path=log, progress=progress)
    assert resumed.complete
    assert [p.to_dict() for p in resumed.points] == [p.to_dict() for p in full.points]
    assert len(SweepLog.load(log).points) == len(full.points)  # the logged points were not measured again
    other = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.3,), mode="each")
    with pytest.raises(DataError, match="different sweep"):
        headless.sweep(f["path"], f["data"], other, log_path=log)
    assert json.loads(log.read_text().splitlines()[0])["hash"] == spec.spec_hash()


@pytest.mark.slow
def test_worker_sweep_job_streams_points_on_the_window_edits(files):
    from weightlab._tf import headless

    f = files["res"]
    es = weightlab.open(f["path"])
    try:
        es.apply(edit_from_dict({"op": "scale", "target": "s2b1_conv1/kernel", "factor": 0.5}))
        tensors = es.edited_versions()
        edited = {n: np.array(a) for n, (_, a) in tensors.items()}
    finally:
        es.model.close()
    spec = SweepSpec(op="clip", param="threshold", targets=("s3*/kernel", "head/kernel"), values=(0.1, 0.02),
                     mode="each")  # fmt: skip
    expected = headless.sweep(f["path"], f["data"], spec, edited=edited, batch_size=16)
    rec = Recorder()
    client = EngineClient(rec)
    try:
        client.start()
        rec.wait(lambda e: isinstance(e, Ready))
        rid = client.open(f["path"], f["data"], batch_size=16)
        assert rec.wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid).ok
        client.evaluate(tensors, tag="edits")
        job = client.submit(spec)
        result = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == job, timeout=120).result
        partials = [e.partial for e in rec.seen if isinstance(e, JobProgress) and e.job_id == job]
    finally:
        client.shutdown()
    assert [p.to_dict() for p in result.points] == [p.to_dict() for p in expected.points]
    assert result.baseline.to_dict() == expected.baseline.to_dict()
    # the baseline first (the window's live curves start from it), then every point as measured
    assert [p for p in partials if p is not None] == [result.baseline.to_dict()] + [p.to_dict() for p in result.points]


def test_unlabelled_sweep_and_ranking_follow_agreement(demo_paths, tmp_path):
    """Without labels a sweep and a ranking still work: agreement with the unedited model, its interval, early stop."""
    from weightlab._tf import headless
    from weightlab.core.sweeps import RankSpec

    d = np.load(demo_paths["data"])
    x_only = tmp_path / "x.npz"
    np.savez(x_only, x=d["x"])
    spec = SweepSpec(op="clip", param="threshold", targets=("conv2d/kernel", "dense/kernel"), values=(0.1, 0.03, 0.01),
                     mode="each", metric="agreement", budget_pp=10.0)  # fmt: skip
    r = headless.sweep(demo_paths["keras"], x_only, spec)
    labelled = headless.sweep(demo_paths["keras"], demo_paths["data"], spec)
    assert r.baseline.accuracy is None and r.baseline.agreement == 1.0
    assert all(p.accuracy is None and p.accuracy_ci is None for p in r.points)
    # Agreement does not need labels: the same numbers as with them.
    assert [(p.target, p.value, p.agreement) for p in r.points] == [
        (p.target, p.value, p.agreement) for p in labelled.points
    ]
    for p in r.points:
        lo, hi = p.agreement_ci
        assert lo <= p.agreement <= hi
    assert r.stopped  # the first layer's agreement falls fast
    for t, v in r.stopped.items():
        values, agreement = r.curve(t)
        drops = 100 * (1.0 - agreement)
        assert values[-1] == v and drops[-1] > 10.0 and (drops[:-1] <= 10.0).all()
    rank = headless.rank(demo_paths["keras"], x_only, RankSpec(layer="dense", cumulative=False))
    assert len(rank.units) == 64 and all(u.point.accuracy is None for u in rank.units)
    assert [u.drop for u in rank.units] == sorted((1 - u.point.agreement for u in rank.units), reverse=True)


@pytest.mark.slow
def test_points_with_the_same_frontier_share_its_activations(files):
    """Together sweeps: a value that leaves some tensors unchanged reuses the pass of the same frontier."""
    from weightlab._tf.passes import open_session
    from weightlab._tf.points import PointEvaluator

    f = files["res"]
    session = open_session(f["path"], f["data"], batch_size=32)
    full = open_session(f["path"], f["data"], batch_size=32, cache_budget=0)
    ev = PointEvaluator(session)
    o = ev.originals
    first = {"stem/kernel": o["stem/kernel"] * np.float32(0.5)}
    second = {**first, "head/kernel": o["head/kernel"] * np.float32(0.5)}
    a = ev.evaluate(first)
    suffix = ev._suffix
    b = ev.evaluate(second)
    assert ev._suffix is suffix and a.cut == b.cut == "input"
    c = ev.evaluate({"head/kernel": second["head/kernel"]})  # another frontier: its own pass
    assert ev._suffix is not suffix and c.cut == "pool"
    for got, edited in ((a, first), (b, second), (c, {"head/kernel": second["head/kernel"]})):
        assert got.accuracy == full.evaluate(edited).accuracy


@pytest.mark.slow
def test_plan_joint_point_equals_its_recipe_evaluated_by_keras(files):
    """A budget plan: one recipe of every target's value, evaluated once = model.evaluate of that recipe's weights."""
    from weightlab._tf import headless

    f = files["res"]
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=("*/kernel",), values=(0.2, 0.5, 0.8, 0.95),
                     mode="each")  # fmt: skip
    chosen, result = headless.plan(f["path"], f["data"], spec, 3.0, batch_size=64)
    assert result.complete and chosen.joint is not None and chosen.joint.target == "plan"
    picked = [c for c in chosen.choices if c.value is not None]
    assert picked, "some target can be pruned within 3 points"
    es = weightlab.open(f["path"])
    try:
        es.apply_recipe(chosen.recipe(es.model, es))
        weights = {n: np.array(a) for n, a in es.edited_arrays().items()}
    finally:
        es.model.close()
    assert set(weights) == {c.target for c in picked}
    ref = _KerasReference(f["path"], f["x"], f["y"])
    _check_true(chosen.joint, ref, weights, "plan")
    assert chosen.joint_drop_pp == pytest.approx(100 * (result.baseline.accuracy - chosen.joint.accuracy))
    assert chosen.interaction_pp == pytest.approx(chosen.joint_drop_pp - chosen.sum_single_drops_pp)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [0, 200_000, None])
def test_frontier_budget_paths_give_the_same_points(files, budget):
    """All frontiers recorded in the baseline pass (None: default budget), one target's at a time from the
    session's cuts (a budget that fits one but not all), or no frontier at all (0: session passes): same numbers."""
    from weightlab._tf.passes import open_session
    from weightlab._tf.points import FRONTIER_BUDGET, PointEvaluator
    from weightlab._tf.sweep import engine_model_file, run_sweep

    f = files["res"]
    session = open_session(f["path"], f["data"], batch_size=32)
    ev = PointEvaluator(session, frontier_budget=FRONTIER_BUDGET if budget is None else budget)
    model = engine_model_file(session, f["path"], ev.originals)
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1, 0.03), mode="each")
    try:
        result = run_sweep(ev, model, spec)
    finally:
        model.close()
    if budget == 0:
        assert ev.suffix_points == 0 and ev.session_points == len(result.points)
    elif budget is None:
        assert ev.session_points == 0 and ev.suffix_points == len(result.points)
    else:  # targets whose frontier fits run from it, the others through the session
        assert ev.suffix_points > 0 and ev.suffix_points + ev.session_points == len(result.points)
    assert bool(ev._recorded) == (budget is None)  # the baseline pass recorded every frontier only when they fit
    full = open_session(f["path"], f["data"], batch_size=32, cache_budget=0)
    ref = PointEvaluator(full, frontier_budget=0)
    assert ref.baseline().accuracy == result.baseline.accuracy
    for p in result.points:
        want = ref.evaluate({p.target: np.clip(ref.original(p.target), -p.value, p.value)})
        assert (p.accuracy, p.agreement) == (want.accuracy, want.agreement), p.target

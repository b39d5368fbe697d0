"""Sweeps in local worker processes (weightlab._tf.parallel): equal to one process, progress, cancel, resume, errors.

Every comparison is against the same sweep measured in this process
(``workers=1``, :func:`weightlab._tf.sweep.run_sweep`): the same points in
the same order, the same notes and early stops, accuracies within 1e-6. The
models: the bundled demo and the benchmark's residual CNN scaled down to
8x8x3 (coupled residual channels, BatchNorm). Child processes are checked
for by conftest's ``_no_leftover_processes``.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from weightlab.core.errors import RecipeError, WeightLabError
from weightlab.core.sweeps import SweepLog, SweepSpec

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "benchmarks" / "bench_eval.py")
bench_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_eval)


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    """The residual CNN (.keras) and a held-out set whose labels mostly agree with it."""
    d = tmp_path_factory.mktemp("sweep_parallel")
    model = bench_eval.residual_cnn((8, 8, 3), widths=(4, 8, 8), blocks=(1, 1, 1), seed=2)
    x, y = bench_eval.heldout_for(model, n=200, seed=3)
    model.save(d / "res.keras")
    np.savez(d / "res.npz", x=x, y=y)
    return d / "res.keras", d / "res.npz"


def assert_same(one, many):
    """``many`` is ``one``: points (order, targets, values, accuracies within 1e-6), notes, stops, completeness."""
    assert [(p.target, p.value) for p in many.points] == [(p.target, p.value) for p in one.points]
    for a, b in zip(one.points, many.points):
        for name in ("accuracy", "loss", "agreement"):
            assert getattr(b, name) == pytest.approx(getattr(a, name), abs=1e-6), (a.target, a.value, name)
        assert b.num_samples == a.num_samples
    assert many.baseline.accuracy == pytest.approx(one.baseline.accuracy, abs=1e-6)
    assert list(many.notes.items()) == list(one.notes.items())
    assert many.stopped == one.stopped
    assert many.complete and one.complete


def test_two_workers_equal_one_process_on_the_demo(demo_paths):
    """A budget plan of an each sweep: the sweep in 2 workers, the plan's joint point in this process."""
    from weightlab._tf import headless

    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.2, 0.05, 0.01, 0.003),
                     mode="each", budget_pp=3.0)  # fmt: skip
    seen = []
    one_plan, one = headless.plan(demo_paths["keras"], demo_paths["data"], spec, 1.0)
    many_plan, many = headless.plan(demo_paths["keras"], demo_paths["data"], spec, 1.0, workers=2,
                                    progress=lambda frac, msg, point: seen.append((frac, point)))  # fmt: skip
    assert_same(one, many)
    assert len(one.targets()) > 2 and one.stopped, "several targets, some stopped early by the budget"
    assert many_plan.recipe() == one_plan.recipe() and one_plan.recipe()
    assert many_plan.joint is not None and one_plan.joint is not None
    assert many_plan.joint.accuracy == pytest.approx(one_plan.joint.accuracy, abs=1e-6)
    # Progress: every point once, as it came, with fractions that only grow up to the end.
    assert sorted((p.target, p.value) for _, p in seen) == sorted((p.target, p.value) for p in many.points)
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and 0 < fracs[0] and fracs[-1] <= 1.0


def test_two_workers_equal_one_process_on_a_residual_model(res):
    """Each mode over coupled groups (neuron op), together mode in value chunks cut at the budget, and an
    adaptive each sweep (each target refined in its own shard)."""
    from weightlab._tf import headless

    path, data = res
    each = SweepSpec(op="prune_neurons", param="fraction", targets=("*/kernel",), values=(0.25, 0.5, 0.75),
                     mode="each", coupled=True)  # fmt: skip
    together = SweepSpec(op="clip", param="threshold", targets=("*/kernel",),
                         values=(1.0, 0.7, 0.6, 0.5, 0.3, 0.1, 0.03), mode="together", budget_pp=4.0)  # fmt: skip
    adaptive = SweepSpec(op="clip", param="threshold", targets=("s1b1_conv1/kernel", "head/kernel"),
                         adaptive=(0.005, 0.6), mode="each", max_points=6, initial_points=3, resolution_pp=2.0)  # fmt: skip
    got = {}
    for spec in (each, together, adaptive):
        one = headless.sweep(path, data, spec, batch_size=64)
        many = headless.sweep(path, data, spec, batch_size=64, workers=2)
        assert_same(one, many)
        got[spec.mode if spec.adaptive is None else "adaptive"] = one
    assert any(t.startswith("group:") for t in got["each"].targets()), "coupled groups swept as targets"
    assert any(not t.startswith("group:") for t in got["each"].targets())
    assert got["together"].targets() == [together.together_label]
    # The budget stopped the together curve after its first value and before its strongest: the merge
    # dropped what the second chunk measured past the stop, as one process would not have measured it.
    stopped_at = got["together"].stopped[together.together_label]
    assert len(got["together"].points) < len(together.values)
    assert together.values.index(stopped_at) >= 1
    refined = [len(got["adaptive"].curve(t)[0]) for t in got["adaptive"].targets()]
    assert len(refined) == 2 and max(refined) > 3, "refinement measured more than the coarse grid"


def test_cancel_keeps_the_points_and_resume_measures_only_the_missing_ones(res, tmp_path):
    from weightlab._tf import headless

    path, data = res
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.2, 0.05, 0.01), mode="each")
    full = headless.sweep(path, data, spec, batch_size=64)
    log = tmp_path / "sweep.jsonl"
    measured = []
    partial = headless.sweep(
        path, data, spec, batch_size=64, workers=2, log_path=log,
        progress=lambda frac, msg, point: measured.append(point), should_stop=lambda: len(measured) >= 4,
    )  # fmt: skip
    assert not partial.complete
    assert 4 <= len(partial.points) < len(full.points)
    want = {(p.target, p.value): p.accuracy for p in full.points}
    for p in partial.points:  # what was measured is right
        assert p.accuracy == pytest.approx(want[p.target, p.value], abs=1e-6)
    logged = SweepLog.load(log).points
    assert {(p.target, p.value) for p in logged} >= {(p.target, p.value) for p in partial.points}
    assert len({(p.target, p.value) for p in logged}) == len(logged)  # the parent wrote each point once
    measured.clear()
    resumed = headless.sweep(path, data, spec, batch_size=64, workers=2, log_path=log,
                             progress=lambda frac, msg, point: measured.append(point))  # fmt: skip
    assert_same(full, resumed)
    # Only the points the log lacked were measured (and reported) again.
    assert sorted((p.target, p.value) for p in measured) == sorted(
        k for k in want if k not in {(p.target, p.value) for p in logged}
    )
    assert len(SweepLog.load(log).points) == len(full.points)
    # A complete log: nothing is dispatched, nothing measured, the same result.
    measured.clear()
    again = headless.sweep(path, data, spec, batch_size=64, workers=2, log_path=log,
                           progress=lambda frac, msg, point: measured.append(point))  # fmt: skip
    assert_same(full, again)
    assert measured == []


def test_a_workers_error_is_the_users_error_and_workers_are_quiet(res):
    from weightlab._tf import headless, parallel

    path, data = res
    bad = SweepSpec(op="clip", param="threshold", targets=("nothing_like_this/*",), values=(0.1,), mode="each")
    with pytest.raises(RecipeError) as one:
        headless.sweep(path, data, bad)
    with pytest.raises(RecipeError) as many:
        headless.sweep(path, data, bad, workers=2)
    assert str(many.value) == str(one.value)
    good = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1,), mode="each")
    missing = path.parent / "no_such_heldout.npz"
    with pytest.raises(WeightLabError) as one:
        headless.sweep(path, missing, good)
    with pytest.raises(WeightLabError) as many:
        headless.sweep(path, missing, good, workers=2)
    assert type(many.value) is type(one.value) and str(many.value) == str(one.value)
    assert "no_such_heldout.npz" in str(many.value)
    with pytest.raises(Exception, match="workers must be"):
        headless.sweep(path, data, bad, workers=0)
    # A worker process: no Qt, no Ray, its output to the null device.
    import concurrent.futures as cf

    ctx = multiprocessing.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    pool = cf.ProcessPoolExecutor(1, mp_context=ctx, initializer=parallel._child_init,
                                  initargs=(str(path), str(data), None, False, {}, q, stop))  # fmt: skip
    try:
        spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1,), mode="each")
        layout, facts = pool.submit(parallel._child_layout, spec, 2, [], None).result(timeout=120)
    finally:
        parallel._close(pool, stop, q, None)
    assert facts["qt"] is False and facts["ray"] is False
    assert facts["stderr"] == "/dev/null"
    assert len(layout.shards) == len(layout.targets) > 1  # each: one shard per target


def test_a_shard_stopped_before_its_workers_base_pass_returns_nothing_measured(res):
    """A shard queued to a worker before a cancel starts after it: an incomplete, empty result (no error)."""
    from weightlab._tf.parallel import ShardRunner

    path, data = res
    runner = ShardRunner(path, data, None, False, {"batch_size": 64})
    try:
        spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1, 0.05), mode="each")
        layout = runner.layout(spec, 2)
        stopped = runner.run(layout.shards[0], layout.changed, should_stop=lambda: True)
        assert not stopped.complete and stopped.points == [] and stopped.baseline.num_samples == 0
        # The same worker then runs shards as usual: its base pass happens with the next one.
        shard = layout.shards[-1]
        r = runner.run(shard, layout.changed)
        assert r.complete and [p.value for p in r.points] == [0.1, 0.05]
        assert {p.target for p in r.points} == set(shard.targets) and r.baseline.num_samples == 200
    finally:
        runner.close()


def test_no_more_workers_than_shards(demo_paths):
    from weightlab._tf.parallel import shard_bound
    from weightlab.formats import open_model

    path = demo_paths["keras"]
    model = open_model(path)
    try:
        kernels = [name for name in model.tensors if name.endswith("/kernel")]
    finally:
        model.close()
    each = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1, 0.05), mode="each")
    assert 1 < len(kernels) < 16
    assert shard_bound(path, each, 16) == len(kernels)
    assert shard_bound(path, each, 1) == 1
    one = SweepSpec(op="clip", param="threshold", targets=(kernels[0],), values=(0.1, 0.05), mode="each")
    assert shard_bound(path, one, 16) == 1
    together = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.3, 0.1, 0.05))
    assert shard_bound(path, together, 16) == 3 and shard_bound(path, together, 2) == 2
    adaptive = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), adaptive=(0.01, 0.3))
    assert shard_bound(path, adaptive, 16) == 1
    assert shard_bound(path.parent / "missing.keras", each, 5) == 5  # unknown here: the workers report it

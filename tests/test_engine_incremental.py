"""Incremental evaluation, progressive results and ``weightlab eval --recipe`` timing.

Small models built in code: a Sequential CNN and a residual functional CNN
(the benchmark's architecture, scaled down), random weights, held-out labels
that mostly agree with the model so that edits move the accuracy. Every
incremental result is compared with a full pass of a separately built model
and with ``model.evaluate`` on the same weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_engine import Recorder

from weightlab.engine import EngineClient, JobProgress, JobResult, ModelReady, Ready
from weightlab.engine.events import Z95, wilson_interval

keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "benchmarks" / "bench_eval.py")
bench_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_eval)


def _sequential():
    keras.utils.set_random_seed(3)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(6, 3, activation="relu", name="conv"),
            layers.Flatten(name="flat"),
            layers.Dense(16, activation="relu", name="hidden"),
            layers.Dense(10, activation="softmax", name="out"),
        ],
        name="seq",
    )


def _residual():
    return bench_eval.residual_cnn((8, 8, 3), widths=(4, 8, 8), blocks=(1, 1, 1), seed=2)


#: kind -> (builder, last, middle, first edited tensor, cut expected for last, for middle)
MODELS = {
    "sequential": (_sequential, "out/kernel", "hidden/kernel", "conv/kernel", "hidden", "flat"),
    "residual": (_residual, "head/kernel", "s2b1_conv2/kernel", "stem/kernel", "pool", "s2_down_relu"),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> {"path", "data", "x", "y", "weights"} for both models."""
    d = tmp_path_factory.mktemp("incremental")
    out = {}
    for kind, (build, *_) in MODELS.items():
        model = build()
        x, y = bench_eval.heldout_for(model, n=300, seed=1)
        path, data = d / f"{kind}.keras", d / f"{kind}.npz"
        model.save(path)
        np.savez(data, x=x, y=y)
        weights = {f"{layer.name}/kernel": layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}
        out[kind] = {"path": path, "data": data, "x": x, "y": y, "weights": weights}
    return out


def _noisy(a: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (a + rng.normal(scale=1.5 * a.std(), size=a.shape)).astype(a.dtype)


def _keras_reference(model, edited, x, y):
    """model.evaluate of ``model`` holding ``edited`` (the rest as in the file)."""
    for name, arr in edited.items():
        model.get_layer(name.split("/")[0]).kernel.assign(arr)
    return model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(MODELS))
def test_incremental_equals_full_pass_and_model_evaluate(saved, kind):
    from weightlab._tf.session import EngineSession

    _, last, middle, first, last_cut, middle_cut = MODELS[kind]
    s = saved[kind]
    w = s["weights"]
    inc = EngineSession.from_file(s["path"], s["data"], batch_size=64)
    full = EngineSession.from_file(s["path"], s["data"], batch_size=64, cache_budget=0)
    ref = keras.saving.load_model(s["path"])
    ref.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    steps = [
        ({}, "full", None),
        ({last: _noisy(w[last], 1)}, "incremental", last_cut),
        ({last: _noisy(w[last], 2)}, "incremental", last_cut),  # same layer again: cache reused
        ({last: _noisy(w[last], 2), middle: _noisy(w[middle], 3)}, "incremental", middle_cut),  # upstream
        ({last: _noisy(w[last], 4), middle: _noisy(w[middle], 3)}, "incremental", last_cut),  # re-recorded
        ({middle: _noisy(w[middle], 3)}, "incremental", last_cut),  # undo the last-layer edit
        ({first: _noisy(w[first], 5), middle: _noisy(w[middle], 3)}, "full", None),  # first layer
        ({}, "full", None),  # undo everything: the first-layer pass re-recorded every cut
        ({last: _noisy(w[last], 1)}, "incremental", last_cut),  # baseline cache again
        ({}, "incremental", last_cut),  # undo back to the baseline
    ]
    accuracies = set()
    for i, (edited, mode, cut) in enumerate(steps):
        got = inc.evaluate(edited)
        want = full.evaluate(edited)
        keras_ref = _keras_reference(ref, {**w, **edited}, s["x"], s["y"])
        assert (got.mode, got.cut) == (mode, cut), (i, got.mode, got.cut)
        assert want.mode == "full"
        assert abs(got.accuracy - want.accuracy) <= 1e-6, i
        assert got.loss == pytest.approx(want.loss, rel=1e-6, abs=1e-7), i
        np.testing.assert_allclose(got.per_class, want.per_class, atol=1e-12)
        assert abs(got.accuracy - keras_ref["accuracy"]) <= 1e-6, i
        assert got.loss == pytest.approx(keras_ref["loss"], rel=1e-5), i
        assert 0 < got.layers_run <= got.layers_total
        if mode == "full":
            assert got.layers_run == got.layers_total
        accuracies.add(round(got.accuracy, 6))
    assert len(accuracies) >= 4  # the edits did move the accuracy: the comparisons mean something
    assert inc.cache_bytes > 0


@pytest.mark.slow
def test_memory_budget_falls_back_to_full_pass(saved):
    from weightlab._tf.session import EngineSession

    _, last, middle, *_ = MODELS["residual"]
    s = saved["residual"]
    edits = [{last: _noisy(s["weights"][last], 7)}, {middle: _noisy(s["weights"][middle], 8)}]
    roomy = EngineSession.from_file(s["path"], s["data"], batch_size=64)
    none = EngineSession.from_file(s["path"], s["data"], batch_size=64, cache_budget=1)
    # Room for the pooled features only (8 floats per sample, 320 padded rows).
    tight = EngineSession.from_file(s["path"], s["data"], batch_size=64, cache_budget=8 * 4 * 320)
    assert none.cached_layers == [] and none.evaluate().mode == "full"
    tight.evaluate()
    assert tight.cached_layers == ["pool"] and tight.cache_bytes <= 8 * 4 * 320
    roomy.evaluate()
    for edited in edits:
        a, b, c = roomy.evaluate(edited), none.evaluate(edited), tight.evaluate(edited)
        assert a.mode == "incremental" and b.mode == "full"
        assert c.mode == ("incremental" if last in edited else "full")
        assert a.accuracy == b.accuracy == c.accuracy
        assert a.loss == pytest.approx(b.loss, rel=1e-6) and c.loss == pytest.approx(b.loss, rel=1e-6)


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(0, 10), (3, 10), (10, 10), (700, 1000), (1, 3)]:
        lo, hi = wilson_interval(k, n)
        p = k / n
        assert 0.0 <= lo <= p <= hi <= 1.0
        # Wilson's interval: the p with (p_hat - p)^2 = z^2 p (1 - p) / n (ends clipped to [0, 1]).
        for end in (lo, hi):
            if 0.0 < end < 1.0:
                assert (p - end) ** 2 == pytest.approx(Z95**2 * end * (1 - end) / n, rel=1e-9)
    assert np.diff([np.subtract(*wilson_interval(n // 2, n)[::-1]) for n in (10, 100, 1000)]).max() < 0


@pytest.mark.slow
def test_progress_running_accuracy_in_process(saved):
    from weightlab._tf.session import EngineSession
    from weightlab.engine.events import Progress

    s = saved["residual"]
    session = EngineSession.from_file(s["path"], s["data"], batch_size=16)
    seen: list[Progress] = []
    result = session.evaluate(
        {"head/kernel": _noisy(s["weights"]["head/kernel"], 9)},
        progress=lambda d, t, n, k: seen.append(Progress.running(0, d, t, n, k)),
    )
    assert [p.done for p in seen] == list(range(1, 20)) and seen[-1].total == 19
    assert [p.samples for p in seen] == [min(16 * i, 300) for i in range(1, 20)]
    assert seen[-1].accuracy == pytest.approx(result.accuracy, abs=1e-12)
    for p in seen:
        assert p.ci_low <= p.accuracy <= p.ci_high
    widths = [p.ci_high - p.ci_low for p in seen]
    assert widths[-1] < widths[0] and widths[-1] < widths[len(widths) // 2]


@pytest.mark.slow
def test_worker_streams_running_accuracy_and_evaluates_incrementally(saved):
    from weightlab._tf.session import EngineSession

    s = saved["residual"]
    edited = {"head/kernel": _noisy(s["weights"]["head/kernel"], 10)}
    expected = EngineSession.from_file(s["path"], s["data"], cache_budget=0).evaluate(edited)
    rec = Recorder()
    client = EngineClient(rec)
    try:
        client.start()
        rec.wait(lambda e: isinstance(e, Ready))
        rid = client.open(s["path"], s["data"], batch_size=8)
        assert rec.wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid).ok
        base_id = client.baseline_job
        base = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == base_id).result
        assert base.metrics.mode == "full" and base.metrics.batch_size == 8
        progress = [e.partial for e in rec.seen if isinstance(e, JobProgress) and e.job_id == base_id]
        assert progress[-1].done == progress[-1].total == 38 and progress[-1].samples == 300
        rid = client.evaluate({name: (1, a) for name, a in edited.items()}, tag="noise")
        result = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == rid).result
        assert result.metrics.mode == "incremental" and result.metrics.cut == "pool"
        assert result.metrics.accuracy == expected.accuracy
        assert result.metrics.loss == pytest.approx(expected.loss, rel=1e-6)
        # The pooled features fit the activation budget at once: one call, one progress step.
        progress += [e.partial for e in rec.seen if isinstance(e, JobProgress) and e.job_id == rid]
        assert progress[-1].done == progress[-1].total == 1 and progress[-1].samples == 300
        for p in progress:
            assert p.ci_low <= p.accuracy <= p.ci_high
        assert progress[-1].accuracy == pytest.approx(result.metrics.accuracy, abs=1e-12)
    finally:
        client.shutdown()
    assert not client.alive


@pytest.mark.slow
def test_cli_eval_recipe_reports_timing(saved, tmp_path):
    from weightlab._tf.session import EngineSession

    s = saved["residual"]
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "edits": [{"op": "zero_neurons", "target": "head", "neurons": [1, 4]}]}))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(
        [sys.executable, "-m", "weightlab", "eval", s["path"], "--data", s["data"], "--recipe", recipe, "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    kernel = s["weights"]["head/kernel"].copy()
    kernel[:, [1, 4]] = 0
    bias = np.zeros(10, np.float32)  # the random model's bias is zero: zeroing neurons keeps it so
    expected = EngineSession.from_file(s["path"], s["data"], cache_budget=0).evaluate(
        {"head/kernel": kernel, "head/bias": bias}
    )
    assert out["edited"]["accuracy"] == pytest.approx(expected.accuracy, abs=1e-6)
    assert out["edited"]["accuracy"] != out["baseline"]["accuracy"]
    assert out["edited"]["mode"] == "incremental" and out["edited"]["cut"] == "pool"
    assert out["timing"]["baseline_s"] > 0 and out["timing"]["edited_s"] > 0
    assert out["timing"]["edited_s"] == out["edited"]["seconds"]

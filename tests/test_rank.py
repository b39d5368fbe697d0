"""Neuron ablation rankings in the engine: true numbers for zero and mean ablation, the demo's speed, the worker job.

References are computed independently of the engine: zero ablation as the
recipe step (``zero_neurons``, BatchNorm-aware) applied to the opened file and
Keras' ``model.evaluate``; mean ablation by splitting the Keras model at the
layer (``keras.Model(inputs=layer output, outputs=model output)``), replacing
the unit's channel by its mean with NumPy and scoring ``predict`` with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import Recorder

import weightlab
from weightlab.core.edits import edit_from_dict
from weightlab.core.errors import EngineError, RecipeError
from weightlab.core.sweeps import RankSpec, rank_edit
from weightlab.engine import EngineClient, JobProgress, JobResult, ModelReady, Ready

keras = pytest.importorskip("keras")

N = 200


def _cnn():
    keras.utils.set_random_seed(11)
    layers = keras.layers
    inp = keras.Input((6, 6, 2))
    h = layers.Conv2D(5, 3, padding="same", name="conv")(inp)
    h = layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(h))
    h = layers.Flatten(name="flat")(h)
    h = layers.Dense(9, activation="relu", name="hidden")(h)
    out = layers.Dense(4, activation="softmax", name="out")(h)
    return keras.Model(inp, out, name="cnn")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("rank")
    m = _cnn()
    bn = m.get_layer("bn")
    rng = np.random.default_rng(1)
    bn.moving_mean.assign(rng.normal(scale=0.3, size=5).astype(np.float32))
    bn.beta.assign(rng.normal(scale=0.3, size=5).astype(np.float32))
    x = rng.normal(size=(N, 6, 6, 2)).astype(np.float32)
    pred = np.argmax(m.predict(x, verbose=0), axis=1)
    y = np.where(rng.random(N) < 0.75, pred, rng.integers(0, 4, N)).astype(np.int64)
    m.save(d / "cnn.keras")
    m.export(str(d / "cnn_sm"), verbose=False)
    np.savez(d / "cnn.npz", x=x, y=y)
    return {"path": d / "cnn.keras", "sm": d / "cnn_sm", "data": d / "cnn.npz", "x": x, "y": y}


def _scores(probs, y):
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(np.argmax(probs, axis=1) == y)), float(-np.mean(np.log(p[np.arange(len(y)), y])))


@pytest.mark.slow
def test_zero_ablation_equals_recipe_weights_and_model_evaluate(files):
    from weightlab._tf import headless

    spec = RankSpec(layer="conv", ablation="zero")
    r = headless.rank(files["path"], files["data"], spec, batch_size=64)
    assert r.complete and len(r.units) == 5 and "BatchNormalization" in r.method
    assert [u.index for u in r.units] == sorted(
        (u.index for u in r.units), key=lambda i: (-next(v.drop for v in r.units if v.index == i), i)
    )
    ref = keras.saving.load_model(files["path"])
    ref.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    variables = {f"{layer.name}/{v.name}": v for layer in ref.layers for v in layer.weights}
    original = {n: v.numpy().copy() for n, v in variables.items()}
    base = ref.evaluate(files["x"], files["y"], verbose=0, return_dict=True)
    assert abs(r.baseline.accuracy - base["accuracy"]) <= 1e-6

    def keras_with(units):
        es = weightlab.open(files["path"])
        try:
            es.apply(edit_from_dict(rank_edit(spec, units, es.model).to_dict()))
            edited = es.edited_arrays()
            assert {"bn/gamma", "bn/beta"} <= set(edited)  # BatchNorm-aware: the channel is silenced
        finally:
            es.model.close()
        for n, v in variables.items():
            v.assign(edited.get(n, original[n]))
        return ref.evaluate(files["x"], files["y"], verbose=0, return_dict=True)

    for u in r.units:
        want = keras_with([u.index])
        assert abs(u.point.accuracy - want["accuracy"]) <= 1e-6, u.index
        assert u.point.loss == pytest.approx(want["loss"], rel=1e-5)
        assert u.drop == pytest.approx(r.baseline.accuracy - u.point.accuracy, abs=1e-12)
    assert len({round(u.point.accuracy, 6) for u in r.units}) >= 2
    # Cumulative curves: the k most / least important units together; k = n is the same model both ways.
    n = len(r.units)
    assert len(r.cumulative_top) == len(r.cumulative_bottom) == n
    assert r.cumulative_top[-1].accuracy == r.cumulative_bottom[-1].accuracy
    top2 = keras_with(r.order()[:2])
    assert abs(r.cumulative_top[1].accuracy - top2["accuracy"]) <= 1e-6
    assert r.raising() == [u.index for u in r.units if u.point.accuracy > r.baseline.accuracy]


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["hidden", "conv"])
def test_mean_ablation_equals_the_split_model_with_the_unit_at_its_mean(files, layer):
    from weightlab._tf import headless

    r = headless.rank(files["path"], files["data"], RankSpec(layer=layer, ablation="mean"), batch_size=64)
    assert r.method.startswith("activations")
    model = keras.saving.load_model(files["path"])
    t = model.get_layer(layer).output
    acts = keras.Model(model.inputs[0], t).predict(files["x"], verbose=0)
    rest = keras.Model(t, model.outputs[0])
    means = acts.reshape(-1, acts.shape[-1]).astype(np.float64).mean(axis=0)
    for u in r.units:
        replaced = acts.copy()
        replaced[..., u.index] = np.float32(means[u.index])
        acc, loss = _scores(rest.predict(replaced, verbose=0), files["y"])
        assert abs(u.point.accuracy - acc) <= 1e-6, u.index
        assert u.point.loss == pytest.approx(loss, rel=1e-5)
    k = 3
    replaced = acts.copy()
    for i in r.order()[:k]:
        replaced[..., i] = np.float32(means[i])
    acc, _ = _scores(rest.predict(replaced, verbose=0), files["y"])
    assert abs(r.cumulative_top[k - 1].accuracy - acc) <= 1e-6


def test_demo_dense_ranking_runs_every_point_from_the_layer_input(demo_paths):
    """The demo's 64-unit Dense ranked (both cumulative curves) without a pass over the whole model.

    Its speed (issue 11: at most 2 s) is measured in benchmarks/bench_rank.py
    against the set-weights + ``model.evaluate`` loop, not timed here.
    """
    from weightlab._tf.passes import open_session
    from weightlab._tf.points import PointEvaluator
    from weightlab._tf.rank import run_rank
    from weightlab._tf.sweep import engine_model_file

    session = open_session(demo_paths["keras"], demo_paths["data"])
    ev = PointEvaluator(session)
    model = engine_model_file(session, demo_paths["keras"], ev.originals)
    try:
        r = run_rank(ev, model, RankSpec(layer="dense", ablation="zero"))
    finally:
        model.close()
    assert len(r.units) == 64 and len(r.cumulative_top) == 64 and len(r.cumulative_bottom) == 64
    assert sorted(u.index for u in r.units) == list(range(64))
    assert ev.session_points == 0  # every point ran from the Dense layer's input


@pytest.mark.slow
def test_cancel_returns_the_units_so_far_and_errors_name_the_problem(files):
    from weightlab._tf import headless

    seen = []
    r = headless.rank(
        files["path"], files["data"], RankSpec(layer="hidden"), batch_size=64,
        progress=lambda f, m, p: seen.append(p), should_stop=lambda: len(seen) >= 4,
    )  # fmt: skip
    assert not r.complete and len(r.units) == 4 and not r.cumulative_top
    with pytest.raises(RecipeError, match="flat"):
        headless.rank(files["path"], files["data"], RankSpec(layer="flat"))
    with pytest.raises(EngineError, match="Keras model"):
        headless.rank(files["sm"], files["data"], RankSpec(layer="hidden", ablation="mean"))
    # Zero ablation works on a SavedModel too (through the weights; full passes).
    sm = headless.rank(files["sm"], files["data"], RankSpec(layer="hidden", cumulative=False), batch_size=64)
    keras_file = headless.rank(files["path"], files["data"], RankSpec(layer="hidden", cumulative=False))
    assert [(u.index, u.point.accuracy) for u in sm.units] == [(u.index, u.point.accuracy) for u in keras_file.units]
    for a, b in zip(sm.units, keras_file.units):
        assert a.point.loss == pytest.approx(b.point.loss, rel=1e-6)


@pytest.mark.slow
def test_worker_rank_job(files):
    from weightlab._tf import headless

    spec = RankSpec(layer="hidden", ablation="mean", cumulative=False)
    expected = headless.rank(files["path"], files["data"], spec, batch_size=16)
    rec = Recorder()
    client = EngineClient(rec)
    try:
        client.start()
        rec.wait(lambda e: isinstance(e, Ready))
        rid = client.open(files["path"], files["data"], batch_size=16)
        assert rec.wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid).ok
        job = client.submit(spec)
        result = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == job, timeout=120).result
        partials = [e.partial for e in rec.seen if isinstance(e, JobProgress) and e.job_id == job]
    finally:
        client.shutdown()
    assert result.to_json() == expected.to_json()
    streamed = [p for p in partials if p is not None]
    assert streamed[0] == result.baseline.to_dict()  # the baseline first: live drops are exact from unit 1
    assert len(streamed) == 1 + 9 and all(p["target"] != "" for p in streamed[1:])

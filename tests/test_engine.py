"""The evaluation engine: in-process evaluation, tensor mapping, the worker process.

Models are small and built in code (trained for a few epochs on sklearn's
digits); the client tests share one worker per module except the crash test,
which kills its own. No fixed sleeps: events are awaited on a queue.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from weightlab.core.errors import DataError, EngineError
from weightlab.engine import (
    Crashed,
    EngineClient,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobResult,
    Metrics,
    ModelReady,
    Ready,
    Result,
)

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120.0  # seconds to wait for one event (worker start imports TensorFlow)

keras = pytest.importorskip("keras")


# -- models built in code ---------------------------------------------------------------
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = d.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _cnn(final_activation: str | None = "softmax") -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation=final_activation, name="out"),
        ],
        name="cnn",
    )


class MyLayer(keras.layers.Layer):
    """A custom layer class (not registered: its file cannot be rebuilt)."""

    def call(self, x):
        return x


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Trained softmax CNN (.keras), logits twin (.keras), held-out sets and odd files."""
    d = tmp_path_factory.mktemp("engine")
    xtr, ytr, xte, yte = _digits()
    keras.utils.set_random_seed(0)
    m = _cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(xtr, ytr, epochs=4, batch_size=64, verbose=0)
    m.save(d / "cnn.keras")
    logit = _cnn(None)
    logit.set_weights(m.get_weights())
    logit.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    logit.save(d / "logits.keras")
    np.savez(d / "heldout.npz", x=xte, y=yte)
    np.savez(d / "heldout_flat.npz", x=xte.reshape(len(xte), -1), y=yte)
    np.savez(d / "heldout_nochannel.npz", x=xte[..., 0], y=yte)
    reps = 100  # ~40k samples: evaluation with small batches lasts seconds
    np.savez(d / "heldout_big.npz", x=np.tile(xte, (reps, 1, 1, 1)), y=np.tile(yte, reps))
    return {"dir": d, "model": m, "logits": logit, "x": xte, "y": yte}


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    """A model whose Lambda layer creates a marker file when it runs."""
    d = tmp_path_factory.mktemp("lambda")
    mark = d / "lambda-ran"
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(inp)
    # The path is a constant of the lambda's own code (Keras mangles default arguments).
    fn = eval(f"lambda t: (open({str(mark)!r}, 'w').close(), t)[1]")
    h = keras.layers.Lambda(fn, name="evil")(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.save(d / "lambda.keras")
    model.save(d / "lambda.h5")
    mark.unlink()  # building the model above ran the lambda once
    return {"keras": d / "lambda.keras", "h5": d / "lambda.h5", "mark": mark}


def _reference(model, x, y):
    """model.evaluate plus numpy per-class accuracy from model.predict."""
    ref = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    pred = np.argmax(model.predict(x, batch_size=64, verbose=0), axis=1)
    per_class = [float(np.mean(pred[y == c] == c)) if np.any(y == c) else np.nan for c in range(10)]
    return ref, per_class


# -- in-process evaluation ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("which", ["model", "logits"])
def test_evaluate_matches_model_evaluate(models, which):
    from weightlab._tf import headless, runtime
    from weightlab._tf import model as tf_model

    model = tf_model.build_model(models["dir"] / ("cnn.keras" if which == "model" else "logits.keras"))
    calls = []
    got = headless.evaluate(
        model, models["x"], models["y"], batch_size=100, progress=lambda d, t: calls.append((d, t))
    )
    ref, per_class = _reference(models[which], models["x"], models["y"])
    assert isinstance(got, Metrics)
    assert got.accuracy > 0.5  # the model learnt something: the comparison is meaningful
    assert abs(got.accuracy - ref["accuracy"]) <= 1e-6
    assert abs(got.loss - ref["loss"]) <= 1e-5
    np.testing.assert_allclose(got.per_class, per_class, atol=1e-12)
    assert got.num_samples == len(models["y"]) and got.seconds > 0 and got.device == runtime.device_name()
    assert calls == [(i, 4) for i in range(1, 5)]  # 397 samples / 100


@pytest.mark.slow
def test_per_class_nan_for_absent_classes(models):
    from weightlab._tf import headless
    from weightlab._tf import model as tf_model

    model = tf_model.build_model(models["dir"] / "cnn.keras")
    keep = models["y"] != 3
    got = headless.evaluate(model, models["x"][keep], models["y"][keep])
    assert np.isnan(got.per_class[3]) and len(got.per_class) == 10
    assert not any(np.isnan(v) for i, v in enumerate(got.per_class) if i != 3)


@pytest.mark.slow
def test_edited_arrays_match_model_with_those_weights(models):
    from weightlab._tf import headless

    d = models["dir"]
    kernel = models["model"].get_layer("hidden").kernel.numpy().copy()
    kernel[:, 3] = 0.0
    kernel[:, 7] = 0.0
    got = headless.evaluate_file(d / "cnn.keras", d / "heldout.npz", {"hidden/kernel": kernel})
    ref_model = keras.saving.load_model(d / "cnn.keras")
    ref_model.get_layer("hidden").kernel.assign(kernel)
    ref, per_class = _reference(ref_model, models["x"], models["y"])
    assert abs(got.accuracy - ref["accuracy"]) <= 1e-6
    assert abs(got.loss - ref["loss"]) <= 1e-5
    np.testing.assert_allclose(got.per_class, per_class, atol=1e-12)
    base = headless.evaluate_file(d / "cnn.keras", d / "heldout.npz")
    assert base.loss != got.loss


@pytest.mark.slow
def test_assign_checks_names_shapes_and_dtypes(models):
    from weightlab._tf import model as tf_model

    model = tf_model.build_model(models["dir"] / "cnn.keras")
    tmap = tf_model.map_tensors(model, tf_model.model_layout(model))
    before = model.get_layer("out").bias.numpy().copy()
    with pytest.raises(EngineError, match="no such tensor"):
        tf_model.assign_arrays(tmap, {"nope/kernel": np.zeros(3)})
    with pytest.raises(EngineError, match=r"shape \(3,\); the model needs \(10,\)"):
        tf_model.assign_arrays(tmap, {"out/bias": np.zeros(3, np.float32)})
    with pytest.raises(EngineError, match="dtype"):
        tf_model.assign_arrays(tmap, {"out/bias": np.zeros(10, np.complex64)})
    # Nothing was assigned when one array of the set is refused.
    with pytest.raises(EngineError):
        tf_model.assign_arrays(tmap, {"out/bias": np.ones(10), "conv/kernel": np.zeros(2)})
    np.testing.assert_array_equal(model.get_layer("out").bias.numpy(), before)
    tf_model.assign_arrays(tmap, {"out/bias": np.ones(10)})  # float64 -> float32 is fine
    np.testing.assert_array_equal(model.get_layer("out").bias.numpy(), np.ones(10, np.float32))


@pytest.mark.slow
def test_cancel_between_batches(models):
    from weightlab._tf import headless, runtime
    from weightlab._tf import model as tf_model

    model = tf_model.build_model(models["dir"] / "cnn.keras")
    done = []
    with pytest.raises(runtime.EvaluationCancelled):
        headless.evaluate(
            model,
            models["x"],
            models["y"],
            batch_size=10,
            progress=lambda d, t: done.append(d),
            should_stop=lambda: len(done) >= 3,
        )
    assert done == [1, 2, 3]


@pytest.mark.slow
def test_input_shape_checks(models):
    from weightlab._tf import headless
    from weightlab._tf import model as tf_model

    d = models["dir"]
    with pytest.raises(DataError) as info:
        headless.evaluate_file(d / "cnn.keras", d / "heldout_flat.npz")
    msg = str(info.value)
    assert "heldout_flat.npz" in msg and "(N, 8, 8, 1)" in msg and "(397, 64)" in msg
    # (N, 8, 8) data for a (None, 8, 8, 1) model: the channel axis is added.
    a = headless.evaluate_file(d / "cnn.keras", d / "heldout_nochannel.npz")
    b = headless.evaluate_file(d / "cnn.keras", d / "heldout.npz")
    assert a.accuracy == b.accuracy and a.loss == b.loss
    model = tf_model.build_model(d / "cnn.keras")
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        headless.evaluate(model, models["x"][:5], np.array([0, 1, 2, 3, 12]))


@pytest.mark.slow
def test_lambda_refused_in_safe_mode(lambda_model):
    from weightlab._tf import model as tf_model

    for kind in ("keras", "h5"):
        with pytest.raises(EngineError) as info:
            tf_model.build_model(lambda_model[kind])
        msg = str(info.value)
        assert "Lambda" in msg and "evaluation is off unless you trust the file" in msg
        assert str(lambda_model[kind]) in msg
        assert not lambda_model["mark"].exists()
    # Control: the lambda really would have run (and written the file) if trusted.
    tf_model.build_model(lambda_model["keras"], trust=True)
    assert lambda_model["mark"].exists()
    lambda_model["mark"].unlink()


@pytest.mark.slow
def test_refusals_custom_class_and_weights_only(tmp_path):
    from weightlab._tf import model as tf_model

    m = keras.Sequential([keras.Input((3,)), MyLayer(name="mine"), keras.layers.Dense(2, name="d")])
    for ext in ("keras", "h5"):
        m.save(tmp_path / f"custom.{ext}")
        with pytest.raises(
            EngineError, match="unknown layer class 'MyLayer' \\(custom objects are not loaded\\)"
        ):
            tf_model.build_model(tmp_path / f"custom.{ext}")
    m.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(EngineError, match="weights-only file: no architecture to evaluate"):
        tf_model.build_model(tmp_path / "w.weights.h5")
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(EngineError, match="junk.keras"):
        tf_model.build_model(tmp_path / "junk.keras")


@pytest.mark.slow
def test_keras2_h5_loads_and_matches(models, tmp_path):
    """A Keras 2 (tf.keras) .h5 builds through Keras 3's legacy loader and gives the same outputs."""
    tf_keras = pytest.importorskip("tf_keras")
    from weightlab._tf import headless
    from weightlab._tf import model as tf_model

    k2 = tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer((8, 8, 1)),
            tf_keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            tf_keras.layers.Flatten(name="flat"),
            tf_keras.layers.Dense(16, activation="relu", name="hidden"),
            tf_keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    k2.set_weights(models["model"].get_weights())
    # Explicit metric: tf.keras' "accuracy" string resolves to the wrong accuracy here.
    k2.compile(loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    k2.save(tmp_path / "k2.h5")
    model = tf_model.build_model(tmp_path / "k2.h5")
    tmap = tf_model.map_tensors(
        model, [("hidden", ["hidden/kernel", "hidden/bias"]), ("out", ["out/kernel", "out/bias"])]
    )
    assert set(tmap.variables) == {"hidden/kernel", "hidden/bias", "out/kernel", "out/bias"}
    got = headless.evaluate(model, models["x"], models["y"])
    ref = k2.evaluate(models["x"], models["y"], verbose=0, return_dict=True)
    assert abs(got.accuracy - ref["sparse_categorical_accuracy"]) <= 1e-6
    assert abs(got.loss - ref["loss"]) <= 1e-5


# -- mapping ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_map_tensors_names_fallback_and_unmapped():
    from weightlab._tf import model as tf_model

    block = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="d_in")], name="block")
    inp = keras.Input((3, 5))
    h = keras.layers.LSTM(5, name="lstm")(inp)
    h = block(h)
    out = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inp, out)

    derived = tf_model.model_layout(model)
    names = [n for _, ts in derived for n, _ in ts]
    assert names == [
        "lstm/kernel",
        "lstm/recurrent_kernel",
        "lstm/bias",
        "d_in/kernel",
        "d_in/bias",
        "head/kernel",
        "head/bias",
    ]
    tmap = tf_model.map_tensors(model, derived)
    assert list(tmap.variables) == names and tmap.unmapped == [] and tmap.unused == []
    assert tmap.variables["d_in/kernel"] is block.layers[0].kernel

    layout = [
        # Legacy h5 style: the cell's name inside the layer; matched through v.path.
        ("lstm", [("lstm/lstm_cell/kernel", (5, 20)), ("lstm/lstm_cell/recurrent_kernel", (5, 20))]),
        # Names the model does not know: matched by position, shape-checked.
        ("head", [("head/w0", (4, 2)), ("head/w1", (3,))]),
        ("ghost", [("ghost/kernel", (2, 2))]),
    ]
    tmap = tf_model.map_tensors(model, layout)
    lstm = model.get_layer("lstm")
    assert tmap.variables["lstm/lstm_cell/kernel"] is lstm.cell.kernel
    assert tmap.variables["lstm/lstm_cell/recurrent_kernel"] is lstm.cell.recurrent_kernel
    assert tmap.variables["head/w0"] is model.get_layer("head").kernel
    assert tmap.unmapped == ["head/w1", "ghost/kernel"]  # wrong shape; unknown layer
    assert "lstm/lstm_cell/bias" in tmap.unused


@pytest.mark.slow
def test_demo_files(demo_paths):
    """The bundled demo evaluates the same from .keras and .h5; the file's names all map."""
    from weightlab import formats
    from weightlab._tf import headless
    from weightlab._tf import model as tf_model

    a = headless.evaluate_file(demo_paths["keras"], demo_paths["data"])
    b = headless.evaluate_file(demo_paths["h5"], demo_paths["data"])
    assert a.accuracy > 0.8
    assert abs(a.accuracy - b.accuracy) <= 1e-6 and abs(a.loss - b.loss) <= 1e-5
    if not hasattr(formats, "open_model"):
        pytest.skip("weightlab.formats.open_model does not exist yet: file-name mapping not checked")
    for kind in ("keras", "h5"):
        layout = tf_model.file_layout(demo_paths[kind])
        assert layout, f"formats could not list {demo_paths[kind]}"
        tmap = tf_model.map_tensors(tf_model.build_model(demo_paths[kind]), layout)
        assert tmap.unmapped == [] and tmap.unused == [], (kind, tmap.unmapped, tmap.unused)


# -- the worker process -----------------------------------------------------------------------
def test_engine_package_does_not_import_tensorflow():
    code = (
        "import sys, weightlab.engine, weightlab.engine.client, weightlab.engine.events, "
        "weightlab.engine.reader, weightlab.engine.spawn, weightlab.formats, weightlab._tf.worker\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras', 'PySide6') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


class Recorder:
    """Collects engine events; ``wait`` pops until one matches (no fixed sleeps)."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.seen: list[object] = []

    def __call__(self, event: object) -> None:
        self.q.put(event)

    def wait(self, match, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.q.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(
                    f"no matching event within {timeout} s; seen {self.seen[-10:]}"
                ) from None
            self.seen.append(ev)
            if match(ev):
                return ev

    def answer(self, job_id: int, timeout: float = TIMEOUT):
        """The final answer of job ``job_id`` (seen already or awaited): its Result, or its JobFailed / JobCancelled."""

        def final(e):
            return isinstance(e, JobResult | JobFailed | JobCancelled) and e.job_id == job_id

        ev = next((e for e in self.seen if final(e)), None) or self.wait(final, timeout)
        return ev.result if isinstance(ev, JobResult) else ev

    def progress(self, job_id: int, timeout: float = TIMEOUT):
        """The next progress (an engine ``Progress``) of job ``job_id``."""
        return self.wait(lambda e: isinstance(e, JobProgress) and e.job_id == job_id, timeout).partial

    def clear(self) -> None:
        while True:
            try:
                self.seen.append(self.q.get_nowait())
            except queue.Empty:
                return


#: Niceness the module's worker is started with (the window starts its worker lower too).
WORKER_NICENESS = 3


@pytest.fixture(scope="module")
def engine():
    """One started client for the module's worker tests, shut down at the end."""
    rec = Recorder()
    client = EngineClient(rec, niceness=WORKER_NICENESS)
    try:
        t0 = time.monotonic()
        client.start()
        ready = rec.wait(lambda e: isinstance(e, Ready))
        print(f"worker start: {time.monotonic() - t0:.2f} s on {ready.device}, TF {ready.tensorflow_version}")
        yield client, rec
    finally:
        client.shutdown()
    assert not client.alive


def _open(client, rec, model, data, **kw) -> tuple[ModelReady, Result | None]:
    rec.clear()
    rid = client.open(model, data, **kw)
    ready = rec.wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid)
    if not ready.ok:
        return ready, None
    return ready, rec.answer(client.baseline_job)


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX scheduling priorities")
def test_worker_runs_at_the_niceness_asked_for(engine):
    client, _ = engine
    assert os.getpriority(os.PRIO_PROCESS, client.worker_pid) == os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS


@pytest.mark.slow
def test_worker_baseline_edit_and_restore(engine, models):
    from weightlab._tf import headless

    client, rec = engine
    d = models["dir"]
    t0 = time.monotonic()
    ready, base = _open(client, rec, d / "cnn.keras", d / "heldout.npz")
    print(f"open + baseline: {time.monotonic() - t0:.2f} s (evaluation {base.metrics.seconds:.3f} s)")
    assert ready.ok and ready.reason is None
    assert ready.num_samples == 397 and ready.num_classes == 10 and ready.input_shape == (None, 8, 8, 1)
    assert ready.mapped == 6 and ready.unmapped == []
    assert isinstance(base, Result) and base.baseline and base.tag is None
    ref, per_class = _reference(models["model"], models["x"], models["y"])
    assert abs(base.metrics.accuracy - ref["accuracy"]) <= 1e-6
    assert abs(base.metrics.loss - ref["loss"]) <= 1e-5
    np.testing.assert_allclose(base.metrics.per_class, per_class, atol=1e-12)

    kernel = models["model"].get_layer("hidden").kernel.numpy().copy()
    kernel[:, :8] = 0.0
    rid = client.evaluate({"hidden/kernel": (1, kernel)}, tag="zero8")
    edited = rec.answer(rid)
    assert isinstance(edited, Result) and edited.tag == "zero8" and not edited.baseline
    expected = headless.evaluate_file(d / "cnn.keras", d / "heldout.npz", {"hidden/kernel": kernel})
    assert edited.metrics.accuracy == pytest.approx(expected.accuracy, abs=1e-6)
    assert edited.metrics.loss == pytest.approx(expected.loss, abs=1e-5)
    assert edited.metrics.loss != base.metrics.loss
    assert any(isinstance(e, JobProgress) and e.job_id == rid and e.partial.request_id == rid for e in rec.seen)

    # A different edit set: hidden/kernel goes back to its original values.
    bias = np.zeros(10, np.float32)
    rid = client.evaluate({"out/bias": (2, bias)})
    only_bias = rec.answer(rid)
    expected = headless.evaluate_file(d / "cnn.keras", d / "heldout.npz", {"out/bias": bias})
    assert only_bias.metrics.loss == pytest.approx(expected.loss, abs=1e-5)

    rid = client.evaluate({})
    again = rec.answer(rid)
    assert isinstance(again, Result)
    assert again.metrics.accuracy == base.metrics.accuracy
    assert again.metrics.loss == pytest.approx(base.metrics.loss, abs=1e-7)


@pytest.mark.slow
def test_worker_bad_edit_fails_and_keeps_running(engine, models):
    client, rec = engine
    d = models["dir"]
    ready, base = _open(client, rec, d / "cnn.keras", d / "heldout.npz")
    rid = client.evaluate({"hidden/kernel": (1, np.zeros((3, 3), np.float32))})
    failed = rec.answer(rid)
    assert isinstance(failed, JobFailed) and "hidden/kernel" in failed.message and "(3, 3)" in failed.message
    rid = client.evaluate({"nope/kernel": (2, np.zeros(3))})
    assert isinstance(rec.answer(rid), JobFailed)
    rid = client.evaluate({})
    assert rec.answer(rid).metrics.accuracy == base.metrics.accuracy


@pytest.mark.slow
def test_worker_cancellation(engine, models):
    client, rec = engine
    d = models["dir"]
    rec.clear()
    rid_open = client.open(d / "cnn.keras", d / "heldout_big.npz", batch_size=4)
    assert rec.wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid_open).ok
    baseline = client.baseline_job
    rec.progress(baseline)
    client.cancel()  # cancels the running baseline
    assert isinstance(rec.answer(baseline), JobCancelled)

    a = client.evaluate({}, tag="a")
    progress = rec.progress(a)
    assert progress.total == 9925  # 39700 samples / 4
    b = client.evaluate({}, tag="b")  # supersedes a at the next batch boundary
    assert isinstance(rec.answer(a), JobCancelled)
    rec.progress(b)
    client.cancel()
    assert isinstance(rec.answer(b), JobCancelled)
    # Queued live evaluations: only the newest runs.
    c1 = client.evaluate({}, tag="c1")
    c2 = client.evaluate({}, tag="c2")
    assert isinstance(rec.answer(c1), JobCancelled)
    rec.progress(c2)
    client.cancel()
    assert isinstance(rec.answer(c2), JobCancelled)
    # Nothing of a cancelled job arrives after its JobCancelled but its final JobInfo.
    rec.clear()
    for job in (baseline, a, b, c1, c2):
        events = [e for e in rec.seen if getattr(e, "job_id", None) == job]
        end = next(i for i, e in enumerate(events) if isinstance(e, JobCancelled))
        assert [getattr(e, "state", None) for e in events[end + 1:]] == ["cancelled"]
    # The worker is still fine.
    ready, base = _open(client, rec, d / "cnn.keras", d / "heldout.npz")
    assert ready.ok and isinstance(base, Result)


@pytest.mark.slow
def test_worker_queued_jobs_run_in_order_and_one_is_cancelled(engine, models):
    from weightlab.core.jobs import EvaluateSpec
    from weightlab.engine import JobInfo

    client, rec = engine
    d = models["dir"]
    ready, base = _open(client, rec, d / "cnn.keras", d / "heldout.npz")
    kernel = models["model"].get_layer("hidden").kernel.numpy().copy()
    kernel[:, :8] = 0.0
    first = client.evaluate({"hidden/kernel": (7, kernel)}, tag="edited", live=False)
    middle = client.submit(EvaluateSpec(versions={"hidden/kernel": 7}, tag="middle", live=False))
    last = client.evaluate({}, tag="stored", live=False)  # the kernel goes back to its stored values
    assert client.cancel_job(middle)
    results = [rec.answer(job) for job in (first, middle, last)]
    assert isinstance(results[1], JobCancelled)
    assert (results[0].tag, results[2].tag) == ("edited", "stored")
    assert results[0].metrics.loss != base.metrics.loss  # each ran with the tensors of its submission
    assert results[2].metrics.accuracy == base.metrics.accuracy
    assert results[2].metrics.loss == pytest.approx(base.metrics.loss, abs=1e-7)
    rec.wait(lambda e: isinstance(e, JobInfo) and e.job_id == last and e.final)  # follows the result
    finished = [(e.job_id, e.state) for e in rec.seen if isinstance(e, JobInfo) and e.final]
    assert [f for f in finished if f[0] in (first, middle, last)] == [(middle, "cancelled"), (first, "done"), (last, "done")]


@pytest.mark.slow
def test_worker_refuses_lambda_without_running_it(engine, lambda_model):
    client, rec = engine
    ready, _ = _open(client, rec, lambda_model["keras"], lambda_model["keras"].with_suffix(".npz"))
    assert not ready.ok and "Lambda" in ready.reason and "trust" in ready.reason
    assert not lambda_model["mark"].exists()
    rid = client.evaluate({})
    failed = rec.answer(rid)
    assert isinstance(failed, JobFailed) and "evaluation is off" in failed.message and "Lambda" in failed.message


@pytest.mark.slow
def test_worker_shape_mismatch_and_missing_data(engine, models):
    client, rec = engine
    d = models["dir"]
    ready, _ = _open(client, rec, d / "cnn.keras", d / "heldout_flat.npz")
    assert not ready.ok
    assert (
        "heldout_flat.npz" in ready.reason and "(N, 8, 8, 1)" in ready.reason and "(397, 64)" in ready.reason
    )
    assert ready.input_shape == (None, 8, 8, 1) and ready.mapped == 6  # inspection facts still reported
    ready, _ = _open(client, rec, d / "cnn.keras", None)
    assert not ready.ok and "no held-out set" in ready.reason
    ready, _ = _open(client, rec, d / "cnn.keras", d / "missing.npz")
    assert not ready.ok and "missing.npz" in ready.reason and "does not exist" in ready.reason


@pytest.mark.slow
def test_worker_crash_restarts_and_reopens(models):
    d = models["dir"]
    rec = Recorder()
    client = EngineClient(rec, max_restarts=1)
    try:
        client.start()
        rec.wait(lambda e: isinstance(e, Ready))
        ready, base = _open(client, rec, d / "cnn.keras", d / "heldout.npz")
        assert ready.ok

        def kill_and_recover():
            old_pid = client.worker_pid
            rec.clear()
            os.kill(old_pid, signal.SIGKILL)
            crashed = rec.wait(lambda e: isinstance(e, Crashed))
            assert crashed.exitcode == -signal.SIGKILL and "restarting" in crashed.message
            rec.wait(lambda e: isinstance(e, Ready))
            again = rec.wait(lambda e: isinstance(e, ModelReady))
            assert again.ok and again.request_id != ready.request_id
            assert again.request_id == client.open_request_id
            new_base = rec.answer(client.baseline_job)
            assert isinstance(new_base, Result) and new_base.baseline
            assert new_base.metrics.accuracy == base.metrics.accuracy
            assert client.alive and client.worker_pid != old_pid

        t0 = time.monotonic()
        kill_and_recover()
        print(f"crash to new baseline: {time.monotonic() - t0:.2f} s")

        # A second crash within the window exceeds max_restarts=1: the worker stays down...
        rec.clear()
        rid = client.evaluate({}, tag="lost")  # in flight when the worker dies: answered JobFailed
        os.kill(client.worker_pid, signal.SIGKILL)
        crashed = rec.wait(lambda e: isinstance(e, Crashed))
        assert "not restarted" in crashed.message
        lost = rec.answer(rid)  # Failed, unless it finished before the kill
        assert isinstance(lost, Result) or (
            isinstance(lost, JobFailed) and "stopped unexpectedly" in lost.message
        )
        assert not client.alive
        # ...until restart(), which re-opens the last model.
        client.restart()
        rec.wait(lambda e: isinstance(e, Ready))
        again = rec.wait(lambda e: isinstance(e, ModelReady))
        assert again.ok and isinstance(rec.answer(client.baseline_job), Result)
        assert client.alive
    finally:
        client.shutdown()
    assert not client.alive

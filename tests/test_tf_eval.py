"""Evaluation of SavedModels, checkpoints (with an architecture) and frozen graphs; graph-op safety.

Every accuracy is compared with TensorFlow's own computation on the same data:
the SavedModel's signature called directly, the Keras model with weights
restored from a checkpoint, the frozen graph imported and run; edited models
are written with WeightLab's own savers and then run by TensorFlow. Fixtures
are built once per module; sessions run in-process (``open_session``) except
the worker and CLI tests.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from weightlab.core.errors import EngineError
from weightlab.engine import EngineClient, JobResult, ModelReady, Ready

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

N, BATCH = 300, 64  # several batches, the last one partial
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _mlp(names=("hidden", "out")) -> keras.Model:
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu", name=names[0])(inp)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name=names[1])(h))


def _forward(x, w):
    h = np.maximum(x @ w["hidden/kernel"] + w["hidden/bias"], 0.0)
    return h @ w["out/kernel"] + w["out/bias"]


def _accuracy(scores, y) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == y))


class _Multi(tf.Module):
    """Two signatures; the default one has two outputs (logits and probabilities)."""

    def __init__(self, w):
        super().__init__()
        self.v = [
            tf.Variable(w[k], name=k) for k in ("hidden/kernel", "hidden/bias", "out/kernel", "out/bias")
        ]

    def _logits(self, x):
        hk, hb, ok, ob = self.v
        return tf.nn.relu(x @ hk + hb) @ ok + ob

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def both(self, x):
        logits = self._logits(x)
        return {"logits": logits, "probs": tf.nn.softmax(logits)}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def double(self, x):
        return {"scores": 2.0 * self._logits(x)}


class _Evil(tf.Module):
    """A serving function that writes a file when it runs."""

    def __init__(self, mark):
        super().__init__()
        self.mark = mark
        self.w = tf.Variable(np.ones((4, 3), np.float32), name="dense/kernel")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        tf.io.write_file(self.mark, "ran")
        return {"scores": x @ self.w}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Keras model + data, exported as SavedModels, a checkpoint and a frozen graph."""
    root = tmp_path_factory.mktemp("tfeval")
    keras.utils.set_random_seed(1)
    m = _mlp()
    w = {f"{layer.name}/{v.name}": v.numpy() for layer in m.layers for v in layer.weights}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype(np.float32)
    y = np.argmax(_forward(x, w), axis=1)
    flip = rng.random(N) < 0.3
    y[flip] = rng.integers(0, 3, flip.sum())
    d = {"root": root, "model": m, "w": w, "x": x, "y": y}
    np.savez(root / "data.npz", x=x, y=y)
    np.savez(root / "nolabels.npz", x=x)
    m.save(root / "arch.keras")
    other = _mlp(("first", "second"))  # other layer names: the checkpoint maps by order and shape
    other.save(root / "arch_other.keras")
    m.export(str(root / "k3sm"), verbose=False)
    mod = _Multi(w)
    tf.saved_model.save(
        mod, str(root / "multi"), signatures={"serving_default": mod.both, "double": mod.double}
    )
    mark = root / "evil-ran"
    evil = _Evil(str(mark))
    tf.saved_model.save(evil, str(root / "evil"), signatures={"serving_default": evil.serve})
    assert not mark.exists()
    d["mark"] = mark
    d["ckpt"] = tf.train.Checkpoint(model=m).save(str(root / "ckpt" / "ckpt"))
    with tf.Graph().as_default() as g:
        xin = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        c = {k: tf.constant(v, name=k) for k, v in w.items()}
        h = tf.nn.relu(tf.matmul(xin, c["hidden/kernel"]) + c["hidden/bias"])
        logits = tf.identity(tf.matmul(h, c["out/kernel"]) + c["out/bias"], name="logits")
        tf.nn.softmax(logits, name="probs")
        (root / "frozen.pb").write_bytes(g.as_graph_def().SerializeToString())
        tf.compat.v1.placeholder(tf.float32, [None, 4], name="x2")
        (root / "two_inputs.pb").write_bytes(g.as_graph_def().SerializeToString())
    return d


def _open(*args, **kw):
    from weightlab._tf.passes import open_session

    return open_session(*args, batch_size=BATCH, **kw)


def _save_edit(src, name, value, out):
    """Write ``src`` with tensor ``name`` replaced, with WeightLab's own saver (the reference input)."""
    import weightlab
    from weightlab.formats import save_model

    s = weightlab.open(src)
    try:
        save_model(s.model, {name: value}, out)
    finally:
        s.model.close()


def _zero_out(w):
    return np.zeros_like(w["out/kernel"])


# -- SavedModel ------------------------------------------------------------------------------
def test_savedmodel_matches_its_signature_before_and_after_an_edit(files, tmp_path):
    x, y, root = files["x"], files["y"], files["root"]
    sess = _open(root / "k3sm", root / "data.npz")
    assert sess.signatures == ["serve", "serving_default"] and len(sess.output_names) == 1
    assert sorted(sess.tmap.variables) == ["hidden/bias", "hidden/kernel", "out/bias", "out/kernel"]
    ref = tf.saved_model.load(str(root / "k3sm")).signatures["serving_default"]
    probs = next(iter(ref(tf.constant(x)).values())).numpy()
    base = sess.evaluate()
    assert base.labels and abs(base.accuracy - _accuracy(probs, y)) <= 1e-6
    assert base.agreement == 1.0 and base.mean_abs_change == [0.0]
    kernel = files["w"]["hidden/kernel"] * np.array([1, 0, 1, 0, 1, 0, 1, 0], np.float32)
    edited = sess.evaluate({"hidden/kernel": kernel})
    _save_edit(root / "k3sm", "hidden/kernel", kernel, tmp_path / "edited")
    ref = tf.saved_model.load(str(tmp_path / "edited")).signatures["serving_default"]
    probs2 = next(iter(ref(tf.constant(x)).values())).numpy()
    assert abs(edited.accuracy - _accuracy(probs2, y)) <= 1e-6
    assert edited.mean_abs_change[0] == pytest.approx(np.mean(np.abs(probs2 - probs)), abs=1e-7)
    again = sess.evaluate({})
    assert again.accuracy == base.accuracy and again.mean_abs_change == [0.0]


def test_savedmodel_signature_and_output_choice(files):
    x, y, root = files["x"], files["y"], files["root"]
    logits = _forward(x, files["w"])
    both = _open(root / "multi", root / "data.npz")
    assert both.output_names == ["logits", "probs"] and both.signatures == ["double", "serving_default"]
    m = both.evaluate()
    assert not m.labels and np.isnan(m.accuracy) and m.agreement == 1.0 and m.outputs == ["logits", "probs"]
    probs = _open(root / "multi", root / "data.npz", output="probs").evaluate()
    assert probs.labels and abs(probs.accuracy - _accuracy(logits, y)) <= 1e-6
    double = _open(root / "multi", root / "data.npz", signature="double")
    assert double.output_names == ["scores"]
    assert abs(double.evaluate().accuracy - _accuracy(logits, y)) <= 1e-6
    with pytest.raises(EngineError, match="no signature 'nope'.*double"):
        _open(root / "multi", signature="nope")
    with pytest.raises(EngineError, match="no output 'nope'.*logits"):
        _open(root / "multi", output="nope")


def test_unsafe_savedmodel_refused_without_running_and_runs_when_trusted(files):
    root, mark = files["root"], files["mark"]
    with pytest.raises(EngineError, match="WriteFile") as err:
        _open(root / "evil", root / "nolabels.npz")
    assert "trust" in str(err.value) and not mark.exists()
    sess = _open(root / "evil", root / "nolabels.npz", trust=True)
    assert sess.evaluate().agreement == 1.0
    assert mark.exists()


# -- checkpoints --------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["arch.keras", "arch_other.keras"])
def test_checkpoint_with_architecture_matches_restored_keras_model(files, tmp_path, arch):
    x, y, root, ckpt = files["x"], files["y"], files["root"], files["ckpt"]
    sess = _open(ckpt + ".index", root / "data.npz", architecture=root / arch)
    assert len(sess.tmap.variables) == 4 and sess.tmap.unmapped == []
    ref_model = _mlp()
    tf.train.Checkpoint(model=ref_model).restore(ckpt).expect_partial()
    base = sess.evaluate()
    assert abs(base.accuracy - _accuracy(ref_model.predict(x, verbose=0), y)) <= 1e-6
    new = _zero_out(files["w"])
    after = sess.evaluate({"out/kernel": new})
    _save_edit(ckpt, "out/kernel", new, str(tmp_path / "edited" / "ckpt"))
    tf.train.Checkpoint(model=ref_model).restore(str(tmp_path / "edited" / "ckpt")).expect_partial()
    assert abs(after.accuracy - _accuracy(ref_model.predict(x, verbose=0), y)) <= 1e-6
    assert after.agreement < 1.0


def test_checkpoint_without_architecture_says_what_is_missing(files):
    with pytest.raises(EngineError, match=r"holds no architecture: pass --architecture MODEL.keras"):
        _open(files["ckpt"], files["root"] / "data.npz")


# -- frozen graphs --------------------------------------------------------------------------------
def _run_frozen(path, x, output):
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(path.read_bytes())
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g) as s:
            return s.run(output, {"x:0": x})


def test_frozen_graph_auto_io_override_and_edit(files, tmp_path):
    x, y, root = files["x"], files["y"], files["root"]
    sess = _open(root / "frozen.pb", root / "data.npz")
    assert sess.input_shape == (None, 4) and sess.output_names == ["probs:0"]
    probs = _run_frozen(root / "frozen.pb", x, "probs:0")
    base = sess.evaluate()
    assert abs(base.accuracy - _accuracy(probs, y)) <= 1e-6
    new = _zero_out(files["w"])
    after = sess.evaluate({"out/kernel": new})
    _save_edit(root / "frozen.pb", "out/kernel", new, tmp_path / "edited.pb")
    probs2 = _run_frozen(tmp_path / "edited.pb", x, "probs:0")
    assert abs(after.accuracy - _accuracy(probs2, y)) <= 1e-6
    assert after.mean_abs_change[0] == pytest.approx(np.mean(np.abs(probs2 - probs)), abs=1e-7)
    assert sess.evaluate().accuracy == base.accuracy  # the file's Const values again
    logits = _open(root / "frozen.pb", root / "data.npz", output="logits", input="x:0")
    assert logits.output_names == ["logits:0"]
    assert (
        abs(logits.evaluate().accuracy - _accuracy(_run_frozen(root / "frozen.pb", x, "logits:0"), y)) <= 1e-6
    )
    with pytest.raises(EngineError, match=r"choose the input \(--input\).*'x', 'x2'"):
        _open(root / "two_inputs.pb")
    assert _open(root / "two_inputs.pb", input="x").evaluate  # an explicit input resolves it


def test_frozen_graph_op_scan_covers_only_what_the_output_needs(files, tmp_path):
    from weightlab.engine.graph_safety import check_graph_def

    with tf.Graph().as_default() as g:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        tf.identity(x * 2.0, name="safe")
        tf.io.write_file(str(tmp_path / "never"), tf.strings.as_string(tf.reduce_sum(x)), name="evil")
        gd = g.as_graph_def()
    check_graph_def(gd, ["safe:0"])
    with pytest.raises(EngineError, match="WriteFile"):
        check_graph_def(gd, ["evil"])


# -- no labels ----------------------------------------------------------------------------------------
def test_unlabelled_set_reports_agreement(files):
    root, x = files["root"], files["x"]
    logits = _forward(x, files["w"])
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    flat = np.full_like(probs, 1 / 3)  # zero kernel, zero bias: uniform softmax, argmax 0
    zero = _zero_out(files["w"])
    for sess in (
        _open(root / "arch.keras", root / "nolabels.npz"),  # incremental Keras session
        _open(root / "k3sm", root / "nolabels.npz"),
    ):
        assert not sess.labelled
        early = sess.evaluate({"out/kernel": zero})  # no baseline outputs yet: nothing to compare
        assert early.agreement is None and early.mean_abs_change is None
        base = sess.evaluate({})
        assert base.agreement == 1.0 and base.mean_abs_change == [0.0]
        after = sess.evaluate({"out/kernel": zero})
        assert not after.labels and np.isnan(after.accuracy) and after.per_class == []
        assert after.agreement == pytest.approx(np.mean(np.argmax(probs, 1) == 0), abs=1e-12)
        assert after.agreement < 1.0
        assert after.mean_abs_change[0] == pytest.approx(np.mean(np.abs(flat - probs)), abs=1e-6)


# -- Keras 2 files -----------------------------------------------------------------------------------
def test_keras2_h5_with_a_layer_keras3_dropped_says_why(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    m = tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer((6, 6, 1)),
            tf_keras.layers.LocallyConnected2D(2, 3),
            tf_keras.layers.Flatten(),
        ]
    )
    m.save(tmp_path / "lc.h5")
    with pytest.raises(
        EngineError, match="'LocallyConnected2D' is a Keras 2 layer that Keras 3 no longer has"
    ):
        _open(tmp_path / "lc.h5")


# -- the worker and the CLI ---------------------------------------------------------------------------
def test_worker_options_reach_the_engine(files):
    events: queue.Queue = queue.Queue()
    client = EngineClient(events.put)

    def wait(match, timeout=120.0):
        deadline = time.monotonic() + timeout
        while True:
            ev = events.get(timeout=max(0.0, deadline - time.monotonic()))
            if match(ev):
                return ev

    root = files["root"]
    try:
        client.start()
        wait(lambda e: isinstance(e, Ready))
        rid = client.open(root / "multi", root / "data.npz", signature="serving_default", output="probs")
        ready = wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid)
        assert ready.ok and ready.labels and ready.outputs == ["probs"]
        assert ready.signatures == ["double", "serving_default"] and ready.num_classes == 3
        base = wait(lambda e: isinstance(e, JobResult) and e.job_id == client.baseline_job).result
        assert abs(base.metrics.accuracy - _accuracy(_forward(files["x"], files["w"]), files["y"])) <= 1e-6
        rid = client.evaluate({"out/kernel": (1, _zero_out(files["w"]))})
        assert wait(lambda e: isinstance(e, JobResult) and e.job_id == rid).result.metrics.agreement < 1.0
        rid = client.open(files["ckpt"], root / "data.npz")
        ready = wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid)
        assert not ready.ok and "pass --architecture" in ready.reason
        rid = client.open(files["ckpt"], root / "data.npz", architecture=root / "arch.keras")
        assert wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid).ok
    finally:
        client.shutdown()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "weightlab", "eval", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=240,
    )  # fmt: skip


def test_cli_eval_savedmodel_and_checkpoint(files):
    root = files["root"]
    expected = _accuracy(_forward(files["x"], files["w"]), files["y"])
    for args in (
        (root / "k3sm", "--data", root / "data.npz", "--json"),
        (files["ckpt"], "--architecture", root / "arch.keras", "--data", root / "data.npz", "--json"),
    ):
        r = _cli(*args)
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout)
        assert abs(out["accuracy"] - expected) <= 1e-6 and out["labels"] and out["agreement"] == 1.0


def test_cli_bad_combination_exits_2_with_one_line(files):
    root = files["root"]
    r = _cli(root / "k3sm", "--architecture", root / "arch.keras", "--data", root / "data.npz")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--architecture does not apply to a savedmodel model" in lines[0]

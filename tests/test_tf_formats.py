"""TensorFlow formats: SavedModel folders, checkpoints and frozen GraphDefs, opened and saved back.

Fixtures are tiny models written by TensorFlow, Keras 3 and tf_keras here; the
reference for every tensor is TensorFlow's own checkpoint reader (or the
GraphDef's Const node). Opening goes through ``weightlab.open``, which reads
in a child process; tests close every opened model.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import weightlab
from weightlab.edits import ZeroNeurons
from weightlab.formats import describe_file, save_model

tf = pytest.importorskip("tensorflow")
X = np.linspace(-1.0, 1.0, 8 * 4, dtype="float32").reshape(8, 4)


# -- fixtures --------------------------------------------------------------------------
def _keras3_model(with_bn: bool = True):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), name="x")
    x = keras.layers.Dense(3, name="dense")(inp)
    if with_bn:
        x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def tfdir(tmp_path_factory):
    """Every TensorFlow format written once: ``{name: path}`` plus live objects to restore into."""
    import keras
    import tf_keras
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    root = tmp_path_factory.mktemp("tf")
    d: dict = {}
    # Keras 3 functional with BatchNorm, exported as a SavedModel (BN statistics made non-trivial).
    m = _keras3_model()
    bn = m.get_layer("bn")
    bn.moving_mean.assign(np.array([0.1, -0.2, 0.3], "float32"))
    bn.moving_variance.assign(np.array([1.5, 0.5, 2.0], "float32"))
    m.export(str(root / "k3export"), verbose=False)
    d["k3export"] = root / "k3export"
    # ... and a TF2 checkpoint of it with Adam after one training step.
    # explicit names: auto-generated ones depend on what earlier tests built in this process
    m.compile(optimizer=keras.optimizers.Adam(name="adam"), loss="mse")
    m.train_on_batch(X, np.ones((8, 2), "float32"))
    ckpt = tf.train.Checkpoint(model=m, optimizer=m.optimizer)
    d["k3ckpt"] = Path(ckpt.save(str(root / "k3ckpt" / "ckpt")))
    d["k3model"] = m
    # tf_keras (Keras 2) SavedModel.
    tm = tf_keras.Sequential(
        [tf_keras.layers.Dense(3, input_shape=(4,), name="dense"), tf_keras.layers.Dense(2, name="dense_1")]
    )
    tm.save(str(root / "tfk"), save_format="tf")
    d["tfk"] = root / "tfk"
    # tf.Module with hand-named variables.
    mod = tf.Module()
    mod.w = tf.Variable(np.arange(12, dtype="float32").reshape(4, 3) / 10, name="my_weights")
    mod.b = tf.Variable(np.array([0.5, -0.5, 1.0], "float32"), name="bias")
    mod.__call__ = tf.function(
        lambda x: x @ mod.w + mod.b, input_signature=[tf.TensorSpec([None, 4], tf.float32)]
    )
    tf.saved_model.save(mod, str(root / "module"), signatures=mod.__call__)
    d["module"] = root / "module"
    # TF1 graph: compat.v1 Saver (with .meta, Adam slots, global_step), frozen graph, sharded checkpoint.
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        with tf.compat.v1.variable_scope("fc1"):
            w = tf.compat.v1.get_variable("weights", [4, 3])
            b = tf.compat.v1.get_variable("biases", [3], initializer=tf.compat.v1.constant_initializer(0.1))
        y = tf.identity(tf.matmul(x, w) + b, name="y")
        step = tf.compat.v1.train.get_or_create_global_step()
        train = tf.compat.v1.train.AdamOptimizer().minimize(tf.reduce_sum(y), global_step=step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as s:
            s.run(tf.compat.v1.global_variables_initializer())
            s.run(train, {x: X})
            os.makedirs(root / "tf1")
            d["tf1"] = Path(saver.save(s, str(root / "tf1" / "model")))
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(s, s.graph_def, ["y"])
            (root / "frozen1.pb").write_bytes(frozen.SerializeToString())
            d["frozen1"] = root / "frozen1.pb"
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            tf.compat.v1.get_variable("a/kernel", [4, 3])
        with tf.device("/cpu:1"):
            tf.compat.v1.get_variable("b/kernel", [3, 2])
        saver = tf.compat.v1.train.Saver(sharded=True)
        config = tf.compat.v1.ConfigProto(device_count={"CPU": 2})
        with tf.compat.v1.Session(config=config) as s:
            s.run(tf.compat.v1.global_variables_initializer())
            os.makedirs(root / "shard")
            d["shard"] = Path(saver.save(s, str(root / "shard" / "model")))
    # Frozen v2 function graph of a Keras 3 model.
    m2 = _keras3_model(with_bn=False)
    fn = tf.function(lambda x: m2(x)).get_concrete_function(tf.TensorSpec([None, 4], tf.float32))
    graph = convert_variables_to_constants_v2(fn).graph.as_graph_def()
    (root / "frozen2.pb").write_bytes(graph.SerializeToString())
    d["frozen2"] = root / "frozen2.pb"
    return d


def _bundle(prefix) -> dict[str, np.ndarray]:
    r = tf.train.load_checkpoint(str(prefix))
    return {k: r.get_tensor(k) for k in r.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _assert_table_matches(model, reference: dict[str, np.ndarray]) -> None:
    """Every tensor (names, shapes, dtypes, values) is the bundle's own under its key."""
    seen = set()
    for t in model:
        ref = reference[t.key]
        assert (t.shape, t.dtype) == (ref.shape, ref.dtype.name), t.name
        np.testing.assert_array_equal(model.read(t.name), ref)
        seen.add(t.key)
        seen.update(model.attrs["aliases"].get(t.key, []))
    assert seen == set(reference)


def _assert_only(before: dict, after: dict, edited_keys: set[str]) -> None:
    assert set(before) == set(after)
    for k in before:
        same = before[k].tobytes() == after[k].tobytes() and before[k].dtype == after[k].dtype
        assert same != (k in edited_keys), k


def _dense(x, k, b):
    return x @ k + b


# -- SavedModel ------------------------------------------------------------------------
def test_keras3_export_opens_with_layer_names_and_saves_with_every_alias(tfdir, tmp_path):
    src = tfdir["k3export"]
    ref = _bundle(src / "variables" / "variables")
    s = weightlab.open(src)
    try:
        m = s.model
        assert m.format == "savedmodel"
        assert [t.name for t in m] == [
            "dense/kernel", "dense/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
            "head/kernel", "head/bias",
        ]  # fmt: skip
        assert m.tensor("dense/kernel").key == "variables/0/.ATTRIBUTES/VARIABLE_VALUE"
        aliases = m.attrs["aliases"]
        assert len(aliases) == 8 and all(
            len(v) == 1 and v[0].startswith("_all_variables/") for v in aliases.values()
        )
        key = m.tensor("dense/kernel").key
        edited = {key, *aliases[key]}  # the bias is zero already: zeroing its entry changes nothing
        assert not m.tensor("bn/moving_mean").trainable and m.tensor("bn/gamma").trainable
        _assert_table_matches(m, ref)
        s.apply(ZeroNeurons(target="dense", neurons=[1]))
        w = {t.name: s.array(t.name) for t in m}
        out = tmp_path / "edited"
        s.save(out)
    finally:
        s.model.close()
    after = _bundle(out / "variables" / "variables")
    _assert_only(ref, after, edited)
    assert all(not np.any(after[k][..., 1]) for k in edited)
    # TensorFlow loads it and the serving signature computes with the edited weights.
    loaded = tf.saved_model.load(str(out))
    got = loaded.signatures["serving_default"](tf.constant(X))
    got = next(iter(got.values())).numpy()
    h = _dense(X, w["dense/kernel"], w["dense/bias"])
    h = (h - w["bn/moving_mean"]) / np.sqrt(w["bn/moving_variance"] + 1e-3) * w["bn/gamma"] + w["bn/beta"]
    np.testing.assert_allclose(got, _dense(h, w["head/kernel"], w["head/bias"]), rtol=1e-5, atol=1e-6)
    assert (out / "fingerprint.pb").exists()


def test_tf_keras_savedmodel_names_and_serving_after_edit(tfdir, tmp_path):
    src = tfdir["tfk"]
    ref = _bundle(src / "variables" / "variables")
    s = weightlab.open(src)
    try:
        m = s.model
        assert [t.name for t in m] == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
        assert m.tensor("dense_1/kernel").key == "layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
        _assert_table_matches(m, ref)
        k = m.read("dense_1/kernel") * 2
        save_model(m, {"dense_1/kernel": k}, tmp_path / "out")
        w = {t.name: m.read(t.name) for t in m}
    finally:
        s.model.close()
    _assert_only(ref, _bundle(tmp_path / "out" / "variables" / "variables"), {m.tensor("dense_1/kernel").key})
    loaded = tf.saved_model.load(str(tmp_path / "out"))
    got = next(iter(loaded.signatures["serving_default"](tf.constant(X)).values())).numpy()
    expected = _dense(_dense(X, w["dense/kernel"], w["dense/bias"]), k, w["dense_1/bias"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_tf_module_savedmodel_uses_the_variables_own_names(tfdir, tmp_path):
    src = tfdir["module"]
    s = weightlab.open(src / "saved_model.pb")  # the .pb inside opens its folder
    try:
        m = s.model
        assert [(t.name, t.key) for t in m] == [
            ("root/my_weights", "w/.ATTRIBUTES/VARIABLE_VALUE"),
            ("root/bias", "b/.ATTRIBUTES/VARIABLE_VALUE"),
        ]
        _assert_table_matches(m, _bundle(src / "variables" / "variables"))
        save_model(m, {"root/bias": np.array([1.0, 2.0, 3.0], "float32")}, tmp_path / "out")
        w = m.read("root/my_weights")
    finally:
        s.model.close()
    loaded = tf.saved_model.load(str(tmp_path / "out"))
    got = next(iter(loaded.signatures["serving_default"](tf.constant(X)).values())).numpy()
    np.testing.assert_allclose(got, X @ w + [1.0, 2.0, 3.0], rtol=1e-6)


# -- checkpoints -----------------------------------------------------------------------
def test_keras3_checkpoint_shows_optimizer_apart_and_restores_after_edit(tfdir, tmp_path):
    prefix = tfdir["k3ckpt"]
    ref = _bundle(prefix)
    s = weightlab.open(prefix.parent)  # the folder: its `checkpoint` state file names the prefix
    try:
        m = s.model
        assert m.format == "checkpoint" and m.attrs["location"] == str(prefix)
        weights = [t.name for t in m if t.layer != "(optimizer)"]
        assert weights == [
            "dense/kernel", "dense/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
            "head/kernel", "head/bias",
        ]  # fmt: skip
        opt = m.layer("(optimizer)")
        assert opt.class_name == "(optimizer)" and m.layers[-1] is opt
        names = {t.weight for t in opt.tensors}
        assert {
            "save_counter",
            "adam/iteration",
            "adam/dense_kernel_momentum",
            "adam/head_bias_velocity",
        } <= names
        assert not any(t.trainable for t in opt.tensors)
        _assert_table_matches(m, ref)
        new = np.full((4, 3), 0.25, "float32")
        save_model(m, {"dense/kernel": new}, tmp_path / "edited" / "ckpt-1")
        key = m.tensor("dense/kernel").key
    finally:
        s.model.close()
    out = tmp_path / "edited" / "ckpt-1"
    _assert_only(ref, _bundle(out), {key})
    assert tf.train.latest_checkpoint(str(tmp_path / "edited")) == str(out)
    # It restores into the model that wrote it.
    model = tfdir["k3model"]
    old = {v.path: v.numpy() for v in model.weights}
    try:
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(
            str(out)
        ).assert_existing_objects_matched()
        np.testing.assert_array_equal(model.get_layer("dense").kernel.numpy(), new)
        np.testing.assert_array_equal(model.get_layer("head").kernel.numpy(), old["head/kernel"])
    finally:
        for v in model.weights:
            v.assign(old[v.path])


@pytest.mark.parametrize("pick", ["index", "prefix", "meta", "data"])
def test_tf1_checkpoint_opens_from_any_of_its_files(tfdir, pick):
    prefix = str(tfdir["tf1"])
    path = {
        "index": prefix + ".index",
        "prefix": prefix,
        "meta": prefix + ".meta",
        "data": prefix + ".data-00000-of-00001",
    }
    s = weightlab.open(path[pick])
    try:
        assert s.model.attrs["location"] == prefix
        assert [t.name for t in s.model if t.layer != "(optimizer)"] == ["fc1/biases", "fc1/weights"]
    finally:
        s.model.close()


def test_tf1_checkpoint_edit_restores_with_saver(tfdir, tmp_path):
    prefix = tfdir["tf1"]
    ref = _bundle(prefix)
    s = weightlab.open(str(prefix) + ".index")
    try:
        m = s.model
        opt = {t.key for t in m.layer("(optimizer)").tensors}
        assert opt == {"fc1/weights/Adam", "fc1/weights/Adam_1", "fc1/biases/Adam", "fc1/biases/Adam_1",
                       "beta1_power", "beta2_power", "global_step"}  # fmt: skip
        _assert_table_matches(m, ref)
        s.apply(ZeroNeurons(target="fc1/weights", neurons=[0]))
        s.save(tmp_path / "out" / "model")
        edited = s.array("fc1/weights")
    finally:
        s.model.close()
    out = tmp_path / "out" / "model"
    _assert_only(ref, _bundle(out), {"fc1/weights"})
    assert Path(str(out) + ".meta").read_bytes() == Path(str(prefix) + ".meta").read_bytes()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        saver = tf.compat.v1.train.import_meta_graph(str(out) + ".meta")
        saver.restore(sess, str(out))
        (var,) = [v for v in tf.compat.v1.global_variables() if v.name == "fc1/weights:0"]
        got = sess.run(var)
    np.testing.assert_array_equal(got, edited)
    assert not np.any(got[:, 0])


def test_sharded_checkpoint(tfdir, tmp_path):
    prefix = tfdir["shard"]
    assert len(list(prefix.parent.glob("model.data-*-of-00002"))) == 2
    ref = _bundle(prefix)
    s = weightlab.open(prefix)
    try:
        assert [t.name for t in s.model] == ["a/kernel", "b/kernel"]
        _assert_table_matches(s.model, ref)
        save_model(s.model, {"b/kernel": np.ones((3, 2), "float32")}, tmp_path)  # a folder: same base name
    finally:
        s.model.close()
    _assert_only(ref, _bundle(tmp_path / "model"), {"b/kernel"})


def test_state_file_from_another_machine_and_empty_prefix(tfdir, tmp_path):
    src = str(tfdir["tf1"])
    moved = tmp_path / "moved"
    moved.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(src + suffix, moved / ("model-7" + suffix))
        shutil.copy(src + suffix, moved / ("model-3" + suffix))
    (moved / "checkpoint").write_text(
        'model_checkpoint_path: "/home/someone/runs/x/model-3"\n'
        'all_model_checkpoint_paths: "/home/someone/runs/x/model-3"\n'
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(src + suffix, empty / suffix)
    for path, location in [
        (moved, str(moved / "model-3")),
        (moved / "checkpoint", str(moved / "model-3")),
        (empty, str(empty) + os.sep),
        (empty / ".index", str(empty) + os.sep),
    ]:
        s = weightlab.open(path)
        try:
            assert s.model.attrs["location"] == location
            np.testing.assert_array_equal(s.array("fc1/weights"), _bundle(src)["fc1/weights"])
        finally:
            s.model.close()


# -- frozen GraphDefs -----------------------------------------------------------------------
def _run_graph(path: Path, output: str) -> np.ndarray:
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(path.read_bytes())
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            return sess.run(output, {"x:0": X})


@pytest.mark.parametrize(
    ("fixture", "names", "output"),
    [
        ("frozen1", ["fc1/weights", "fc1/biases"], "y:0"),
        ("frozen2", ["dense/kernel", "dense/bias", "head/kernel", "head/bias"], "Identity:0"),
    ],
)
def test_frozen_graph_edit_runs(tfdir, tmp_path, fixture, names, output):
    src = tfdir[fixture]
    assert describe_file(src) == "a TensorFlow GraphDef (.pb)"
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(src.read_bytes())
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in gd.node if n.op == "Const"}
    s = weightlab.open(src)
    try:
        m = s.model
        # v2 graphs scope names by call ("functional_1/dense_1/kernel"): compare the last scope, unnumbered.
        assert [re.sub(r"_\d+$", "", t.layer.rpartition("/")[2]) + "/" + t.weight for t in m] == names
        for t in m:
            np.testing.assert_array_equal(m.read(t.name), consts[t.key])
        kernel = next(iter(m)).name
        s.apply(ZeroNeurons(target=kernel, neurons=[2]))
        s.save(tmp_path / "edited.pb")
        w = {t.name: s.array(t.name) for t in m}
    finally:
        s.model.close()
    after = tf.compat.v1.GraphDef()
    after.ParseFromString((tmp_path / "edited.pb").read_bytes())
    for n in after.node:
        if n.op == "Const":
            changed = n.name == m.tensor(kernel).key
            assert np.array_equal(tf.make_ndarray(n.attr["value"].tensor), consts[n.name]) != changed, n.name
    k = list(w.values())
    expected = _dense(X, k[0], k[1]) if fixture == "frozen1" else _dense(_dense(X, k[0], k[1]), k[2], k[3])
    np.testing.assert_allclose(_run_graph(tmp_path / "edited.pb", output), expected, rtol=1e-5, atol=1e-6)


# -- the calling process stays free of TensorFlow ------------------------------------------
def test_open_checkpoint_keeps_tensorflow_out_of_the_calling_process(tfdir):
    code = (
        "import sys, weightlab\n"
        "import weightlab.formats.tf_formats\n"
        "assert 'tensorflow' not in sys.modules\n"
        "if __name__ == '__main__':\n"
        f"    s = weightlab.open({str(tfdir['k3ckpt']) + '.index'!r})\n"
        "    print(s.array('dense/kernel').shape)\n"
        "    s.model.close()\n"
        "    assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "    assert not [m for m in sys.modules if m.startswith(('keras', 'tf_keras'))]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(4, 3)" in r.stdout


def test_cli_inspect_and_apply_on_a_savedmodel(tfdir, tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text('{"version": 1, "edits": [{"op": "zero_neurons", "target": "dense", "neurons": [0]}]}')
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run(
        [sys.executable, "-m", "weightlab", "inspect", str(tfdir["tfk"])],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "dense_1/kernel" in r.stdout
    out = tmp_path / "applied"
    r = subprocess.run(
        [sys.executable, "-m", "weightlab", "apply", str(tfdir["tfk"]), str(recipe), "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    kernel = _bundle(out / "variables" / "variables")[
        "layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    ]
    assert not np.any(kernel[:, 0])

"""In-memory Keras models as sessions (weightlab._tf.memory through weightlab._tf.headless).

Names and values are compared with what ``weightlab.open`` lists for the same
model saved as ``.keras``; evaluation with Keras' own ``model.evaluate``.
"""

from __future__ import annotations

import gc
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf_keras = pytest.importorskip("tf_keras")
tf = pytest.importorskip("tensorflow")

from modelfactory import _build  # noqa: E402

import weightlab.formats as formats  # noqa: E402
from weightlab._tf import headless  # noqa: E402
from weightlab._tf.memory import TEMP_PREFIX  # noqa: E402
from weightlab.analysis import is_keras_model, model_source  # noqa: E402
from weightlab.core.edits import Scale, ZeroNeurons  # noqa: E402
from weightlab.core.errors import DataError, FormatError  # noqa: E402
from weightlab.core.session import EditSession  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weightlab" / "resources" / "demo"


def _listing(session: EditSession) -> list:
    return [
        (layer.name, layer.class_name, [(t.name, t.shape, t.dtype, t.trainable) for t in layer.tensors])
        for layer in session.model.layers
    ]


def _weights(model) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in model.weights]


def _classifier(lib=keras, seed: int = 0):
    """A small compiled Dense classifier on 6 features, 3 classes, and some data."""
    rng = np.random.default_rng(seed)
    layers = lib.layers
    model = lib.Sequential(
        [
            lib.Input((6,)),
            layers.Dense(8, activation="relu", name="hidden"),
            layers.Dense(3, activation="softmax", name="scores"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(60, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    model.fit(x, y, epochs=3, batch_size=20, verbose=0)
    return model, x, y


def _extra_models():
    layers = keras.layers
    inp = keras.Input((6, 6, 2))
    h = layers.Conv2D(3, 3)(inp)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.Flatten()(h)
    conv_bn = keras.Model(inp, layers.Dense(2)(h), name="conv_bn")
    inner = keras.Sequential([keras.Input((5,)), layers.Dense(4), layers.Dense(3)], name="inner")
    i2 = keras.Input((5,))
    nested = keras.Model(i2, layers.Dense(2)(inner(i2)), name="nested")
    frozen = keras.Sequential(
        [keras.Input((4, 4, 2)), layers.Conv2D(2, 1), layers.BatchNormalization(trainable=False),
         layers.Flatten(), layers.PReLU(), layers.Dense(2)]
    )  # fmt: skip
    bidir = keras.Sequential([keras.Input((4, 3)), layers.Bidirectional(layers.GRU(2)), layers.Dense(2)])
    tl = tf_keras.layers
    tk_bn = tf_keras.Sequential([tl.InputLayer((6,)), tl.Dense(4), tl.BatchNormalization(), tl.Dense(3)])
    ti = tf_keras.Input((6, 6, 1))
    tk_func = tf_keras.Model(ti, tl.Dense(2)(tl.Flatten()(tl.Conv2D(2, 3)(ti))))
    rng = np.random.default_rng(1)
    for m in (conv_bn, frozen):  # non-trivial BatchNorm statistics
        m.compile(optimizer="sgd", loss="mse")
        shape = (8, *m.inputs[0].shape[1:])
        m.fit(rng.normal(size=shape), rng.normal(size=(8, 2)), verbose=0)
    return {"conv_bn": conv_bn, "nested": nested, "frozen": frozen, "bidir": bidir, "tk_bn": tk_bn,
            "tk_func": tk_func}  # fmt: skip


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """(model, saved .keras path) pairs: modelfactory's architectures in both libraries, and more."""
    folder = tmp_path_factory.mktemp("memory-models")
    out = {}
    for lib in (keras, tf_keras):
        for arch in ("dense", "cnn", "rnn"):
            out[f"{lib.__name__}-{arch}"] = _build(lib, arch)
    out.update(_extra_models())
    out["classifier"] = _classifier()[0]
    saved = {}
    for key, model in out.items():
        path = folder / f"{key}.keras"
        model.save(path)
        saved[key] = (model, path)
    return saved


KEYS = ["keras-dense", "keras-cnn", "keras-rnn", "tf_keras-dense", "tf_keras-cnn", "tf_keras-rnn", "conv_bn", "nested",
        "frozen", "bidir", "tk_bn", "tk_func", "classifier"]  # fmt: skip


@pytest.mark.parametrize("key", KEYS)
def test_names_and_values_equal_the_saved_file(saved_models, key):
    model, path = saved_models[key]
    before = _weights(model)
    session = headless.session_from_model(model)
    opened = formats.open_session(path)
    try:
        assert _listing(session) == _listing(opened)
        assert list(session.model.tensors) == list(opened.model.tensors)
        for name in opened.model.tensors:
            assert np.array_equal(session.array(name), opened.array(name)), name
        assert session.model.in_memory and session.model.format == "memory"
        assert session.model.source is model
        assert session.model.exec_path is None
        assert "(in memory)" in str(session.model.path)
    finally:
        opened.model.close()
        session.model.close()
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model), strict=True))


def test_session_class_and_the_classes_and_frozen_tensors(saved_models):
    class Mine(EditSession):
        pass

    model, _ = saved_models["frozen"]
    session = headless.session_from_model(model, session_class=Mine)
    assert type(session) is Mine
    classes = {layer.name: layer.class_name for layer in session.model.layers}
    assert "BatchNormalization" in classes.values() and "PReLU" in classes.values()
    frozen = {t.name for t in session.model if not t.trainable}
    bn = next(layer.name for layer in session.model.layers if layer.class_name == "BatchNormalization")
    assert frozen == {f"{bn}/gamma", f"{bn}/beta", f"{bn}/moving_mean", f"{bn}/moving_variance"}


def test_an_unbuilt_model_and_a_non_model_are_refused():
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(FormatError, match="not built.*build it first"):
        headless.session_from_model(unbuilt)
    with pytest.raises(TypeError, match="Keras model"):
        headless.session_from_model(object())
    assert is_keras_model(_classifier()[0]) and not is_keras_model("model.keras")


def test_edits_work_on_copies_and_to_keras_returns_a_new_compiled_model():
    model, x, y = _classifier()
    before = _weights(model)
    session = headless.session_from_model(model)
    session.apply(ZeroNeurons(target="hidden", neurons=[0, 1, 2]))
    session.apply(Scale(target="scores/kernel", factor=0.5))
    edited = headless.to_keras(session)
    assert edited is not model
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model), strict=True))  # source untouched
    for name in session.model.tensors:
        layer, weight = name.split("/")
        assert np.array_equal(edited.get_layer(layer).get_weights()[["kernel", "bias"].index(weight)],
                              session.array(name))  # fmt: skip
    assert not np.array_equal(
        edited.get_layer("hidden").get_weights()[0], model.get_layer("hidden").get_weights()[0]
    )
    # Compiled like the source: Keras evaluates at once, and WeightLab's numbers are Keras' numbers.
    loss, acc = edited.evaluate(x, y, verbose=0)
    metrics = headless.evaluate_session(session, (x, y))
    assert metrics.accuracy == pytest.approx(acc, abs=1e-6)
    assert metrics.loss == pytest.approx(loss, rel=1e-4)
    assert edited.optimizer is not model.optimizer
    assert type(edited.optimizer) is type(model.optimizer)
    session.model.close()


def test_to_keras_keeps_the_library_of_a_tf_keras_model():
    model, x, y = _classifier(tf_keras)
    session = headless.session_from_model(model)
    session.apply(ZeroNeurons(target=session.model.layers[0].name, neurons=[1]))
    edited = headless.to_keras(session)
    assert isinstance(edited, tf_keras.Model) and edited is not model
    loss, acc = edited.evaluate(x, y, verbose=0)
    metrics = headless.evaluate_session(session, (x, y))
    assert metrics.accuracy == pytest.approx(acc, abs=1e-6)
    assert metrics.loss == pytest.approx(loss, rel=1e-4)
    session.model.close()


def test_to_keras_of_a_file_session_assigns_the_edits(tmp_path):
    session = formats.open_session(DEMO / "digits_cnn.keras")
    try:
        kernel = next(t.name for t in session.model if t.weight == "kernel")
        session.apply(Scale(target=kernel, factor=0.0))
        built = headless.to_keras(session)
        layer = built.get_layer(kernel.split("/")[0])
        assert not np.any(layer.kernel.numpy())
    finally:
        session.model.close()


def test_evaluate_session_takes_every_data_form_and_reports_the_baseline(tmp_path):
    model, x, y = _classifier(seed=3)
    session = headless.session_from_model(model)
    plain = headless.evaluate_session(session, (x, y))
    assert plain.baseline is None and plain.num_samples == len(x)
    k_loss, k_acc = model.evaluate(x, y, verbose=0)
    assert plain.accuracy == pytest.approx(k_acc, abs=1e-6) and plain.loss == pytest.approx(k_loss, rel=1e-4)

    session.apply(ZeroNeurons(target="hidden", neurons=list(range(6))))
    npz = tmp_path / "held.npz"
    np.savez(npz, x=x, y=y)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    results = [headless.evaluate_session(session, d) for d in ((x, y), str(npz), npz, ds)]
    for r in results:
        assert r.baseline is not None
        assert r.baseline.accuracy == pytest.approx(plain.accuracy, abs=1e-12)
        assert r.accuracy == pytest.approx(results[0].accuracy, abs=1e-12)
        assert r.loss == pytest.approx(results[0].loss, rel=1e-9)
    assert results[0].accuracy != plain.accuracy or results[0].loss != pytest.approx(plain.loss)
    # x alone (an array or a dataset of x batches): agreement with the unedited model only.
    for data in (x, tf.data.Dataset.from_tensor_slices(x).batch(16)):
        r = headless.evaluate_session(session, data)
        assert r.labels is False and np.isnan(r.accuracy) and np.isnan(r.loss)
        assert r.agreement is not None and 0.0 <= r.agreement < 1.0  # the edit changed predictions
    unchanged = EditSession(session.model)
    assert headless.evaluate_session(unchanged, x).agreement == 1.0
    session.model.close()


def test_evaluate_session_refuses_bad_data(tmp_path):
    model, x, y = _classifier()
    session = headless.session_from_model(model)
    with pytest.raises(DataError, match=r"\(x, y\)"):
        headless.evaluate_session(session, (x, y, y))
    with pytest.raises(DataError, match="no such|does not exist"):
        headless.evaluate_session(session, tmp_path / "missing.npz")
    with pytest.raises(DataError):
        headless.evaluate_session(session, (x, y[:-1]))
    with pytest.raises(DataError, match="no batch"):
        headless.evaluate_session(session, tf.data.Dataset.from_tensor_slices((x, y)).take(0).batch(4))
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        headless.evaluate_session(session, {"x": x})
    with pytest.raises(DataError, match="real numbers"):
        headless.evaluate_session(session, (x.astype(object), y))
    nan = x.copy()
    nan[3, 2] = np.nan
    with pytest.raises(DataError, match="1 NaN or infinite"):
        headless.evaluate_session(session, (nan, y))
    with pytest.raises(DataError, match="one-hot"):
        headless.evaluate_session(session, (x, y.reshape(-1, 1, 1)))
    session.model.close()


def test_evaluate_session_on_a_file_session_equals_evaluate_file():
    data = DEMO / "digits_heldout.npz"
    session = formats.open_session(DEMO / "digits_cnn.keras")
    try:
        session.apply(ZeroNeurons(target="dense", neurons=[0, 1, 2, 3]))
        via_file = headless.evaluate_file(session.model.path, data, session.edited_arrays())
        held = np.load(data)
        r = headless.evaluate_session(session, (held["x"], held["y"]))
        assert r.accuracy == via_file.accuracy and r.loss == pytest.approx(via_file.loss, rel=1e-9)
        assert r.baseline is not None and r.baseline.loss != pytest.approx(r.loss)
    finally:
        session.model.close()


@pytest.mark.parametrize("lib", [keras, tf_keras], ids=["keras", "tf_keras"])
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_save_writes_through_keras_by_suffix(tmp_path, suffix, lib):
    model, x, y = _classifier(lib)
    before = _weights(model)
    session = headless.session_from_model(model)
    session.apply(ZeroNeurons(target="hidden", neurons=[2, 5]))
    out = session.save(tmp_path / f"edited{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"edited{suffix}"]  # no temporary file left
    reopened = formats.open_session(out)
    try:
        if lib is tf_keras and suffix == ".weights.h5":
            # tf_keras' weights files do not record layer names (groups are named by class): compare in order.
            assert [t.shape for t in reopened.model] == [t.shape for t in session.model]
            pairs = list(zip(reopened.model.tensors, session.model.tensors, strict=True))
        else:
            assert list(reopened.model.tensors) == list(session.model.tensors)
            pairs = [(name, name) for name in session.model.tensors]
        for stored, name in pairs:
            assert np.array_equal(reopened.array(stored), session.array(name)), name
    finally:
        reopened.model.close()
    if suffix != ".weights.h5":
        loaded = lib.models.load_model(out)
        assert type(loaded).__module__.split(".")[0] == lib.__name__
        assert np.array_equal(loaded.get_layer("hidden").kernel.numpy(), session.array("hidden/kernel"))
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model), strict=True))
    assert not session.is_modified
    session.model.close()


def test_save_refuses_an_unknown_suffix_naming_the_path(tmp_path):
    model, _, _ = _classifier()
    session = headless.session_from_model(model)
    target = tmp_path / "edited.pb"
    with pytest.raises(FormatError, match=r"edited\.pb.*\.keras"):
        session.save(target)
    assert list(tmp_path.iterdir()) == []
    session.model.close()


def _private_folders() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), TEMP_PREFIX + "*")))


def test_materialise_writes_the_original_values_once_and_close_removes_them():
    model, _, _ = _classifier()
    before = _private_folders()
    session = headless.session_from_model(model)
    session.apply(ZeroNeurons(target="hidden", neurons=[0]))
    path = headless.materialise(session.model)
    assert session.model.exec_path == path and path.suffix == ".keras"
    assert path.parent.name.startswith(TEMP_PREFIX)
    assert headless.materialise(session.model) == path  # written once
    stored = formats.open_session(path)
    try:
        assert list(stored.model.tensors) == list(session.model.tensors)
        for name in session.model.tensors:
            assert np.array_equal(stored.array(name), session.model.read(name))  # the ORIGINAL values
        assert not np.array_equal(stored.array("hidden/kernel"), session.array("hidden/kernel"))
    finally:
        stored.model.close()
    assert _private_folders() - before == {str(path.parent)}
    session.model.close()
    assert session.model.exec_path is None
    assert not path.parent.exists() and _private_folders() - before == set()


def test_a_forgotten_materialised_model_is_removed_when_collected():
    model, _, _ = _classifier()
    before = _private_folders()
    session = headless.session_from_model(model)
    folder = headless.materialise(session.model).parent
    assert folder.exists()
    del session
    gc.collect()
    assert not folder.exists() and _private_folders() - before == set()


def test_materialised_files_are_removed_at_exit(tmp_path):
    script = tmp_path / "leave.py"
    script.write_text(
        "import os, keras\n"
        "from weightlab._tf import headless\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "s = headless.session_from_model(m)\n"
        "print(headless.materialise(s.model).parent)\n"
        "print(headless.materialise_model(m).parent)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    folders = [Path(line) for line in out.stdout.split() if TEMP_PREFIX in line]
    assert len(folders) == 2
    assert not any(f.exists() for f in folders)


def test_model_source_of_an_in_memory_session_and_of_a_live_model():
    model, x, y = _classifier()
    session = headless.session_from_model(model)
    assert model_source(session) == (headless.materialise(session.model), None)
    session.apply(ZeroNeurons(target="hidden", neurons=[1]))
    path, edited = model_source(session)
    assert path == session.model.exec_path and set(edited) == {"hidden/kernel", "hidden/bias"}
    session.model.close()

    live, again = model_source(model), model_source(model)
    assert live == again and live[1] is None  # written once per state of the values
    opened = formats.open_session(live[0])
    try:
        assert np.array_equal(opened.array("hidden/kernel"), model.get_layer("hidden").kernel.numpy())
    finally:
        opened.model.close()
    model.fit(x, y, epochs=1, verbose=0)  # trained further: written again
    newer = model_source(model)[0]
    assert newer != live[0]
    opened = formats.open_session(newer)
    try:
        assert np.array_equal(opened.array("hidden/kernel"), model.get_layer("hidden").kernel.numpy())
    finally:
        opened.model.close()
    del model, session
    gc.collect()
    assert not live[0].exists() and not newer.exists()  # removed with the model


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(5, activation="relu")
        self.norm = keras.layers.BatchNormalization()
        self.scores = keras.layers.Dense(3)

    def call(self, x):
        return self.scores(self.norm(self.hidden(x)))


def test_a_subclassed_model_is_listed_copied_and_evaluated():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 3, size=40)
    model = _Subclassed()
    model(x[:2])
    session = headless.session_from_model(model)
    try:
        kinds = [layer.class_name for layer in session.model.layers]
        assert kinds == ["Dense", "BatchNormalization", "Dense"]
        first = session.model.layers[0].name
        session.apply(ZeroNeurons(target=first, neurons=[0, 1]))
        clone = headless.to_keras(session)  # the clone's layers get new automatic names: matched by position
        assert isinstance(clone, _Subclassed) and clone is not model
        assert not np.any(clone.hidden.kernel.numpy()[:, :2]) and np.any(model.hidden.kernel.numpy()[:, :2])
        logits = clone(x).numpy()
        metrics = headless.evaluate_session(session, (x, y))
        assert metrics.accuracy == pytest.approx(float(np.mean(logits.argmax(axis=1) == y)), abs=1e-12)
    finally:
        session.model.close()


def test_materialise_writes_the_values_read_even_when_the_source_was_trained_since():
    model, x, y = _classifier(seed=5)
    session = headless.session_from_model(model)
    try:
        model.fit(x, y, epochs=1, verbose=0)  # the notebook keeps training the source
        assert not np.array_equal(model.get_layer("hidden").kernel.numpy(), session.array("hidden/kernel"))
        stored = formats.open_session(headless.materialise(session.model))
        try:
            for name in session.model.tensors:
                assert np.array_equal(stored.array(name), session.model.read(name)), name
        finally:
            stored.model.close()
    finally:
        session.model.close()


def test_one_hot_labels_count_as_their_class_indices():
    model, x, y = _classifier(seed=6)
    session = headless.session_from_model(model)
    try:
        by_index = headless.evaluate_session(session, (x, y))
        by_one_hot = headless.evaluate_session(session, (x, np.eye(3)[y]))
        assert by_one_hot.accuracy == by_index.accuracy and by_one_hot.loss == by_index.loss
    finally:
        session.model.close()


def test_formats_open_session_builds_the_given_session_class():
    class Mine(EditSession):
        pass

    session = formats.open_session(DEMO / "digits_cnn.keras", session_class=Mine)
    try:
        assert type(session) is Mine and session.model.exec_path == session.model.path
        assert not session.model.in_memory and session.model.source is None
    finally:
        session.model.close()


def test_a_model_with_two_outputs_is_scored_on_the_chosen_one():
    rng = np.random.default_rng(7)
    inp = keras.Input((4,))
    h = keras.layers.Dense(6, activation="relu", name="trunk")(inp)
    model = keras.Model(inp, [keras.layers.Dense(3, name="a")(h), keras.layers.Dense(2, name="b")(h)])
    x = rng.normal(size=(30, 4)).astype("float32")
    y = rng.integers(0, 2, size=30)
    session = headless.session_from_model(model)
    try:
        session.apply(ZeroNeurons(target="trunk", neurons=[0, 1, 2]))
        r = headless.evaluate_session(session, (x, y), output="b")
        expected = headless.to_keras(session)(x)[1].numpy().argmax(axis=1)
        assert r.accuracy == pytest.approx(float(np.mean(expected == y)), abs=1e-12)
        assert r.baseline is not None
        assert r.baseline.accuracy == pytest.approx(
            float(np.mean(model(x)[1].numpy().argmax(axis=1) == y)), abs=1e-12
        )
    finally:
        session.model.close()

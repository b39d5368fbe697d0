"""Path-based jobs (the engine worker's evaluation, sweeps, fine-tuning) on in-memory sessions and live models.

They run on the file :func:`weightlab._tf.headless.materialise` writes (the
original values) with the session's edited arrays applied, as for files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf_keras = pytest.importorskip("tf_keras")

from weightlab import analysis, training  # noqa: E402
from weightlab._tf import headless  # noqa: E402
from weightlab.core.edits import ZeroNeurons  # noqa: E402
from weightlab.core.errors import EngineError  # noqa: E402


def _classifier(lib, seed: int = 0):
    rng = np.random.default_rng(seed)
    layers = lib.layers
    first = lib.Input((6,)) if lib is keras else layers.InputLayer((6,))
    model = lib.Sequential(
        [
            first,
            layers.Dense(8, activation="relu", name="hidden"),
            layers.Dense(3, activation="softmax", name="scores"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(48, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


@pytest.fixture
def heldout(tmp_path):
    def write(x, y, name="heldout.npz"):
        path = tmp_path / name
        np.savez(path, x=x, y=y)
        return path

    return write


@pytest.mark.parametrize("lib", [keras, tf_keras], ids=["keras", "tf_keras"])
def test_the_materialised_file_with_the_edits_evaluates_as_the_session(lib, heldout):
    """What the window's engine worker does (build from exec_path, assign the edits) equals the in-process numbers."""
    model, x, y = _classifier(lib)
    session = headless.session_from_model(model)
    try:
        session.apply(ZeroNeurons(target="hidden", neurons=[0, 1, 2]))
        path = headless.materialise(session.model)
        via_file = headless.evaluate_file(path, heldout(x, y), session.edited_arrays())
        in_process = headless.evaluate_session(session, (x, y))
        assert via_file.accuracy == in_process.accuracy
        assert via_file.loss == pytest.approx(in_process.loss, rel=1e-9)
        assert in_process.baseline is not None and in_process.baseline.loss != pytest.approx(in_process.loss)
    finally:
        session.model.close()


def test_a_sweep_on_an_in_memory_session_starts_from_its_edits(heldout):
    model, x, y = _classifier(keras, seed=1)
    data = heldout(x, y)
    session = headless.session_from_model(model)
    try:
        session.apply(ZeroNeurons(target="hidden", neurons=[0, 1]))
        spec = analysis.sweep_spec("prune_magnitude", "sparsity", values=[0.0, 0.5], targets="hidden/kernel")
        path, edited = analysis.model_source(session)
        assert path == session.model.exec_path and set(edited) == {"hidden/kernel", "hidden/bias"}
        assert analysis.check_sweep(spec, path, data) == ["hidden/kernel"]
        result = headless.sweep(path, data, spec, edited=edited)
        assert result.complete
        at_zero = next(p for p in result.points if p.target == "hidden/kernel" and p.value == 0.0)
        # Sparsity 0 changes nothing: the point is the session as edited, not the model as stored.
        edited_now = headless.evaluate_session(session, (x, y))
        assert at_zero.accuracy == pytest.approx(edited_now.accuracy, abs=1e-12)
        assert at_zero.loss == pytest.approx(edited_now.loss, rel=1e-9)
    finally:
        session.model.close()


def test_a_short_finetune_of_a_live_model_keeps_its_masks_and_saves_through_keras(tmp_path, heldout):
    model, x, y = _classifier(keras, seed=2)
    before = [np.array(v.numpy(), copy=True) for v in model.weights]
    train = heldout(x, y, "train.npz")
    session = training.open_model(model)
    folder = session.model.exec_path.parent
    try:
        assert session.model.source is model and folder.exists()
        session.apply(ZeroNeurons(target="hidden", neurons=[3]))
        spec = training.finetune_spec(train, epochs=1, batch_size=16, lr=0.05)
        training.check_training(session, spec)
        result = headless.finetune(session.model.exec_path, spec, session.edited_arrays())
        assert len(result.history) == 1 and set(result.arrays) >= {"hidden/kernel", "scores/kernel"}
        assert not np.any(result.arrays["hidden/kernel"][:, 3])  # the ablated neuron stays zero
        assert not np.array_equal(result.arrays["scores/kernel"], session.array("scores/kernel"))
        out = training.write_outputs(session, result.arrays, result.label, tmp_path / "tuned.keras")
        loaded = keras.saving.load_model(out.model)
        assert np.array_equal(loaded.get_layer("hidden").kernel.numpy(), result.arrays["hidden/kernel"])
        assert out.recipe is not None and out.recipe.exists()
    finally:
        session.model.close()
    assert not folder.exists()
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.weights, strict=True))


def test_check_training_refuses_an_in_memory_model_that_was_not_materialised():
    model, _, _ = _classifier(keras)
    session = headless.session_from_model(model)
    try:
        spec = training.finetune_spec("train.npz")
        with pytest.raises(EngineError, match="training needs a Keras model"):
            training.check_training(session, spec)
    finally:
        session.model.close()


def test_done_when_the_windows_numbers_equal_keras_on_the_model_taken_back():
    """The engine worker's evaluation of an in-memory model with two neurons ablated equals Keras on to_keras()."""
    demo = Path(__file__).resolve().parents[1] / "weightlab" / "resources" / "demo"
    data = demo / "digits_heldout.npz"
    model = keras.saving.load_model(demo / "digits_cnn.keras")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    session = headless.session_from_model(model)
    try:
        session.apply(ZeroNeurons(target="dense", neurons=[4, 9]))
        window = headless.evaluate_file(headless.materialise(session.model), data, session.edited_arrays())
        taken_back = headless.to_keras(session)
        held = np.load(data)
        loss, accuracy = taken_back.evaluate(held["x"], held["y"], verbose=0)
        assert window.accuracy == pytest.approx(accuracy, abs=1e-6)
        assert window.loss == pytest.approx(loss, rel=1e-4)
        unedited = model.evaluate(held["x"], held["y"], verbose=0)
        assert window.loss != pytest.approx(unedited[0], rel=1e-6)  # the ablation is in the numbers
    finally:
        session.model.close()

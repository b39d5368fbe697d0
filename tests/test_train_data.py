"""The training engine's inputs: validation splits, image folders, the file's compile config, ReduceLROnPlateau."""

from __future__ import annotations

import numpy as np
import pytest
from test_train_engine import N_CLASSES, N_FEATURES, _data, _mlp, op_determinism_restored  # noqa: F401 - autouse fixture

from weightlab.core.errors import DataError
from weightlab.core.training import FinetuneSpec

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

from weightlab._tf import headless  # noqa: E402


def _logits_mlp() -> keras.Model:
    keras.utils.set_random_seed(12)
    inp = keras.Input((N_FEATURES,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    return keras.Model(inp, keras.layers.Dense(N_CLASSES, name="out")(h), name="logits")


def _weights(model: keras.Model) -> dict[str, np.ndarray]:
    return {f"{layer.name}/{w.name}": w.numpy() for layer in model.layers for w in layer.weights}


def _fit_reference(path, optimizer, loss, seed, **fit) -> tuple[keras.Model, dict]:
    ref = keras.saving.load_model(path, compile=False)
    ref.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    hist = ref.fit(shuffle=True, verbose=0, **fit)
    return ref, hist.history


def _assert_same(arrays, ref):
    want = _weights(ref)
    assert set(arrays) == set(want)
    for name, a in want.items():
        np.testing.assert_allclose(arrays[name], a, atol=1e-5, rtol=0, err_msg=name)


def test_val_split_is_keras_validation_split(tmp_path):
    _mlp().save(tmp_path / "m.keras")
    x, y = _data(200, 1)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    spec = FinetuneSpec(train=str(tmp_path / "train.npz"), val_split=0.25, epochs=2, batch_size=16, lr=0.01,
                        optimizer="rmsprop", keep_masks=False, seed=5)  # fmt: skip
    r = headless.finetune(tmp_path / "m.keras", spec)
    ref, hist = _fit_reference(tmp_path / "m.keras", keras.optimizers.RMSprop(0.01), "sparse_categorical_crossentropy",
                               5, x=x, y=y, batch_size=16, epochs=2, validation_split=0.25)  # fmt: skip
    _assert_same(r.arrays, ref)
    np.testing.assert_allclose([e.val_loss for e in r.history], hist["val_loss"], rtol=1e-5)


def test_compile_config_gives_loss_and_optimizer(tmp_path):
    """A logits model saved compiled with SGD(0.05, momentum 0.5) and from_logits=True trains with exactly those."""
    m = _logits_mlp()
    m.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    m.save(tmp_path / "compiled.keras")
    x, y = _data(128, 2)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    r = headless.finetune(tmp_path / "compiled.keras", FinetuneSpec(train=str(tmp_path / "train.npz"), epochs=2,
                                                                    batch_size=32, keep_masks=False, seed=1))  # fmt: skip
    assert r.history[0].lr == pytest.approx(0.05)
    assert ", lr 0.05, " in r.label  # the compile config's rate, named once known
    ref, _ = _fit_reference(tmp_path / "compiled.keras", keras.optimizers.SGD(0.05, momentum=0.5),
                            keras.losses.SparseCategoricalCrossentropy(from_logits=True), 1,
                            x=x, y=y, batch_size=32, epochs=2)  # fmt: skip
    _assert_same(r.arrays, ref)


def test_uncompiled_logits_model_is_trained_from_logits(tmp_path):
    _logits_mlp().save(tmp_path / "plain.keras")
    x, y = _data(128, 3)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    spec = FinetuneSpec(train=str(tmp_path / "train.npz"), epochs=1, batch_size=32, keep_masks=False, seed=2)
    r = headless.finetune(tmp_path / "plain.keras", spec)
    assert r.history[0].lr == pytest.approx(0.001)  # no compile config: Adam at 0.001
    ref, _ = _fit_reference(tmp_path / "plain.keras", keras.optimizers.Adam(0.001),
                            keras.losses.SparseCategoricalCrossentropy(from_logits=True), 2,
                            x=x, y=y, batch_size=32, epochs=1)  # fmt: skip
    _assert_same(r.arrays, ref)


def test_image_folder_with_a_validation_subset(tmp_path):
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.Conv2D(4, 3, name="conv")(
        h
    )  # linear: no unit can die, the two classes are always learnt
    out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.Flatten()(h))
    keras.Model(inp, out).save(tmp_path / "cnn.keras")
    rng = np.random.default_rng(0)
    for cls, level in (("dark", 40), ("light", 200)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(20):
            img = np.clip(rng.normal(level, 30, (8, 8, 1)), 0, 255).astype("uint8")
            tf.io.write_file(str(tmp_path / "imgs" / cls / f"{i}.png"), tf.io.encode_png(img))
    spec = FinetuneSpec(train=str(tmp_path / "imgs"), val_split=0.25, epochs=6, batch_size=8, lr=0.05, seed=0)
    r = headless.finetune(tmp_path / "cnn.keras", spec)
    assert len(r.history) == 6 and all(e.val_accuracy is not None for e in r.history)
    assert r.history[-1].accuracy > 0.9  # two intensity classes: learnt
    assert {"conv/kernel", "out/kernel"} <= set(r.arrays)

    _mlp().save(tmp_path / "mlp.keras")
    with pytest.raises(DataError, match="image inputs"):
        headless.finetune(tmp_path / "mlp.keras", spec)


def test_reduce_lr_on_plateau(tmp_path):
    _mlp().save(tmp_path / "m.keras")
    x, y = _data(128, 1)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "wrong.npz", x=x, y=(y + 1) % N_CLASSES)  # validation loss only rises
    spec = FinetuneSpec(train=str(tmp_path / "train.npz"), val=str(tmp_path / "wrong.npz"), epochs=3, lr=0.01, seed=0,
                        reduce_lr={"monitor": "val_loss", "factor": 0.5, "patience": 0})  # fmt: skip
    r = headless.finetune(tmp_path / "m.keras", spec)
    # the rate each epoch ran at: halved after every epoch that did not improve (from epoch 2 on)
    assert [e.lr for e in r.history] == pytest.approx([0.01, 0.01, 0.005])


def test_dropout_model_equals_model_fit_and_repeats(tmp_path):
    """Dropout draws its seed when the model is built: the engine seeds before building, as a script seeding
    before load_model and fit does; a second run on the same opened model starts from the same states."""
    from weightlab._tf.train import open_trainable, run_finetune

    keras.utils.set_random_seed(8)
    inp = keras.Input((N_FEATURES,))
    h = keras.layers.Dropout(0.3, name="drop")(keras.layers.Dense(16, activation="relu", name="hidden")(inp))
    keras.Model(inp, keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(h)).save(
        tmp_path / "d.keras"
    )
    x, y = _data(128, 4)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    spec = FinetuneSpec(
        train=str(tmp_path / "train.npz"), epochs=2, batch_size=32, lr=0.01, keep_masks=False, seed=9
    )
    r = headless.finetune(tmp_path / "d.keras", spec)
    keras.utils.set_random_seed(9)  # before load_model: Dropout's seed generator
    ref, _ = _fit_reference(tmp_path / "d.keras", keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", 9,
                            x=x, y=y, batch_size=32, epochs=2)  # fmt: skip
    _assert_same(r.arrays, ref)
    tm = open_trainable(tmp_path / "d.keras", seed=9)
    first, second = run_finetune(tm, spec), run_finetune(tm, spec)
    for name, a in r.arrays.items():
        np.testing.assert_array_equal(first.arrays[name], a)
        np.testing.assert_array_equal(second.arrays[name], a)
    other = run_finetune(
        open_trainable(tmp_path / "d.keras", seed=1), spec
    )  # other dropout draws: other weights
    assert not np.allclose(other.arrays["hidden/kernel"], r.arrays["hidden/kernel"], atol=1e-5)


def test_compile_config_schedule_goes_on(tmp_path):
    """A file compiled with a schedule keeps it when the fine-tune names no rate; a given rate replaces it."""
    m = _mlp()
    m.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 4, 0.5)),
              loss="sparse_categorical_crossentropy")  # fmt: skip
    m.save(tmp_path / "m.keras")
    x, y = _data(128, 1)
    np.savez(tmp_path / "t.npz", x=x, y=y)
    r = headless.finetune(
        tmp_path / "m.keras", FinetuneSpec(train=str(tmp_path / "t.npz"), epochs=2, batch_size=32)
    )
    assert [e.lr for e in r.history] == pytest.approx(
        [0.05, 0.025]
    )  # 0.1 * 0.5 ** (step / 4) after 4, 8 steps
    fixed = FinetuneSpec(train=str(tmp_path / "t.npz"), epochs=2, batch_size=32, lr=0.01)
    assert [e.lr for e in headless.finetune(tmp_path / "m.keras", fixed).history] == pytest.approx(
        [0.01, 0.01]
    )

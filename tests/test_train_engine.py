"""The training engine (weightlab._tf.train): true numbers against Keras' own fit, masks, callbacks."""

from __future__ import annotations

import numpy as np
import pytest

from weightlab.core.errors import DataError, EngineError
from weightlab.core.training import FinetuneSpec, PruneRetrainSpec

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")

from weightlab._tf import headless  # noqa: E402
from weightlab._tf.runtime import EvaluationCancelled  # noqa: E402
from weightlab._tf.train import NEEDS_KERAS, open_trainable, run_finetune  # noqa: E402


@pytest.fixture(autouse=True)
def op_determinism_restored():
    """Reference runs switch TensorFlow's op determinism on: switch it back off for the tests after them."""
    from tensorflow.python.framework import config

    was = config.is_op_determinism_enabled()
    yield
    if not was:
        config.disable_op_determinism()


N_CLASSES = 4
N_FEATURES = 12


def _mlp(bn: bool = False) -> keras.Model:
    keras.utils.set_random_seed(11)
    inp = keras.Input((N_FEATURES,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    if bn:
        h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dense(16, activation="relu", name="mid")(h)
    out = keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(h)
    model = keras.Model(inp, out, name="mlp")
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(
            layer, keras.layers.Dense
        ):  # non-zero biases: an ablated bias is a mask, not a stored zero
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
    return model


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(0, 1.5, (N_CLASSES, N_FEATURES))
    y = rng.integers(0, N_CLASSES, n)
    x = (centres[y] + rng.normal(0, 1.0, (n, N_FEATURES))).astype("float32")
    return x, y.astype("int64")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_engine")
    out = {}
    _mlp().save(d / "mlp.keras")
    _mlp(bn=True).save(d / "mlp_bn.keras")
    for name, n, seed in (("train", 256, 1), ("val", 96, 2), ("heldout", 128, 3)):
        x, y = _data(n, seed)
        np.savez(d / f"{name}.npz", x=x, y=y)
        out[name] = d / f"{name}.npz"
    x, y = _data(96, 2)
    np.savez(
        d / "val_wrong.npz", x=x, y=(y + 1) % N_CLASSES
    )  # val loss rises as training fits: peaks at epoch 1
    out["val_wrong"] = d / "val_wrong.npz"
    out["mlp"] = d / "mlp.keras"
    out["mlp_bn"] = d / "mlp_bn.keras"
    out["dir"] = d
    return out


def _stored(path) -> dict[str, np.ndarray]:
    return open_trainable(path).stored


def test_finetune_equals_model_fit(files):
    """Masks off, no extras: the same weights and history as model.fit with the same seed and settings."""
    spec = FinetuneSpec(train=str(files["train"]), val=str(files["val"]), epochs=3, batch_size=32, lr=0.01,
                        optimizer="adam", keep_masks=False, seed=7)  # fmt: skip
    result = headless.finetune(files["mlp"], spec)

    ref = keras.saving.load_model(files["mlp"], compile=False)
    ref.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    d, v = np.load(files["train"]), np.load(files["val"])
    keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    hist = ref.fit(
        d["x"], d["y"], batch_size=32, epochs=3, shuffle=True, validation_data=(v["x"], v["y"]), verbose=0
    )
    expected = {f"{layer.name}/{w.name}": w.numpy() for layer in ref.layers for w in layer.weights}
    assert set(result.arrays) == set(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(result.arrays[name], want, atol=1e-5, rtol=0, err_msg=name)
    np.testing.assert_allclose([r.loss for r in result.history], hist.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        [r.val_accuracy for r in result.history], hist.history["val_accuracy"], rtol=1e-6
    )
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.best_epoch is None and not result.stopped_early and not result.cancelled
    assert result.label == "fine-tune 3 epochs, lr 0.01, adam, masks free"


def test_op_determinism_is_switched_back_off(files):
    from tensorflow.python.framework import config

    config.disable_op_determinism()
    headless.finetune(files["mlp"], FinetuneSpec(train=str(files["train"]), epochs=1))
    assert not config.is_op_determinism_enabled()


def test_masked_entries_stay_exactly_zero(files):
    """Pruned entries and an ablated neuron (its bias included) stay 0; the rest trains; sparsity unchanged."""
    stored = _stored(files["mlp"])
    k = stored["hidden/kernel"].copy()
    k[np.abs(k) < np.quantile(np.abs(k), 0.6)] = 0  # 60 % pruned
    mk, mb = stored["mid/kernel"].copy(), stored["mid/bias"].copy()
    mk[:, 3], mb[3] = 0, 0  # neuron 3 of "mid" ablated, bias included
    edited = {"hidden/kernel": k, "mid/kernel": mk, "mid/bias": mb}
    tm = open_trainable(files["mlp"])
    spec = FinetuneSpec(train=str(files["train"]), epochs=2, batch_size=32, lr=0.02, seed=1)
    result = run_finetune(tm, spec, edited)
    pruned = k == 0
    assert np.all(result.arrays["hidden/kernel"][pruned] == 0)
    assert np.count_nonzero(result.arrays["hidden/kernel"] == 0) == np.count_nonzero(pruned)
    assert np.all(result.arrays["hidden/kernel"][~pruned] != k[~pruned])  # the rest trained
    assert np.all(result.arrays["mid/kernel"][:, 3] == 0) and result.arrays["mid/bias"][3] == 0
    assert result.masked_entries == np.count_nonzero(pruned) + mk.shape[0] + 1
    assert "masks kept" in result.label

    free = run_finetune(tm, FinetuneSpec(train=str(files["train"]), epochs=2, batch_size=32, lr=0.02, seed=1,
                                         keep_masks=False), edited)  # fmt: skip
    assert np.count_nonzero(free.arrays["hidden/kernel"][pruned] == 0) < np.count_nonzero(pruned) // 2
    assert free.masked_entries == 0


def test_early_stopping_returns_the_best_epoch(files):
    """A validation set built to peak at epoch 1: the returned weights are epoch 1's, stopped or not."""
    seen: dict[int, dict[str, np.ndarray]] = {}

    def progress(_f, _m, partial):
        if partial["type"] == "epoch":
            seen[partial["epoch"]] = partial["tensors"]

    base = dict(train=str(files["train"]), val=str(files["val_wrong"]), batch_size=32, lr=0.02, seed=2,
                watch=("out/kernel", "hidden/kernel"))  # fmt: skip
    stop = FinetuneSpec(**base, epochs=8, early_stopping={"monitor": "val_loss", "patience": 2})
    r = headless.finetune(files["mlp"], stop, on_progress=progress)
    losses = [rec.val_loss for rec in r.history]
    assert int(np.argmin(losses)) == 0, losses  # the set peaks early, as built
    assert r.stopped_early and len(r.history) == 3 and r.best_epoch == 1
    assert "stopped early at epoch 3" in r.label
    for name in ("out/kernel", "hidden/kernel"):
        np.testing.assert_array_equal(r.arrays[name], seen[1][name])
    assert not np.array_equal(seen[3]["out/kernel"], seen[1]["out/kernel"])

    # Keras 3's meaning: training that ends without stopping early also gets the best weights back
    seen.clear()
    ran = FinetuneSpec(**base, epochs=3, early_stopping={"monitor": "val_loss", "patience": 10})
    r2 = headless.finetune(files["mlp"], ran, on_progress=progress)
    assert not r2.stopped_early and len(r2.history) == 3 and r2.best_epoch == 1
    np.testing.assert_array_equal(r2.arrays["out/kernel"], seen[1]["out/kernel"])


def test_schedule_is_keras_own(files):
    """The learning rate after each epoch is the schedule's value at that step (LRSchedule.values == Keras')."""
    schedules = pytest.importorskip("weightlab.core.schedules")
    sched = schedules.LRSchedule.parse("exponential_decay:decay_steps=3,decay_rate=0.5")
    spec = FinetuneSpec(
        train=str(files["train"]), epochs=3, batch_size=64, lr=0.01, seed=0, schedule=sched.to_dict()
    )
    r = headless.finetune(files["mlp"], spec)
    steps = np.array([4, 8, 12])  # 256 samples / 64 per batch
    np.testing.assert_allclose([rec.lr for rec in r.history], sched.values(steps, 0.01), rtol=1e-6)
    assert r.history[-1].lr < r.history[0].lr / 4


def test_frozen_layers_unchanged_bit_for_bit(files):
    """Frozen Dense and BatchNormalization (inference mode: moving statistics untouched) do not change."""
    stored = _stored(files["mlp_bn"])
    spec = FinetuneSpec(
        train=str(files["train"]), epochs=2, batch_size=32, lr=0.02, seed=0, freeze=("hidden", "bn")
    )
    r = headless.finetune(files["mlp_bn"], spec)
    assert not any(name.startswith(("hidden/", "bn/")) for name in r.arrays)
    assert {"mid/kernel", "out/kernel"} <= set(r.arrays)
    # Keras trains an unfrozen BatchNormalization's moving statistics: the same run without freezing changes them
    free = headless.finetune(files["mlp_bn"], FinetuneSpec(train=str(files["train"]), epochs=1, seed=0))
    assert not np.array_equal(free.arrays["bn/moving_mean"], stored["bn/moving_mean"])

    # what freezing relies on: Keras 3 runs a non-trainable BatchNormalization in inference mode in training calls
    m = keras.saving.load_model(files["mlp_bn"])
    m.get_layer("bn").trainable = False
    x = np.load(files["train"])["x"][:64]
    np.testing.assert_array_equal(m(x, training=True).numpy(), m(x, training=False).numpy())
    m.get_layer("bn").trainable = True
    assert not np.allclose(m(x, training=True).numpy(), m(x, training=False).numpy())

    last = headless.finetune(
        files["mlp_bn"], FinetuneSpec(train=str(files["train"]), epochs=1, seed=0, train_last=1)
    )
    assert set(last.arrays) == {"out/kernel", "out/bias"}


def test_constraints_hold_after_training(files):
    spec = FinetuneSpec(train=str(files["train"]), epochs=2, batch_size=32, lr=0.05, seed=0,
                        constraints=({"layers": "hidden", "kind": "max_norm", "max_value": 0.5},
                                     {"layers": "mid", "kind": "clip", "value": 0.05}),
                        clip_weights=0.3)  # fmt: skip
    r = headless.finetune(files["mlp"], spec)
    norms = np.linalg.norm(r.arrays["hidden/kernel"], axis=0)
    assert norms.max() <= 0.5 + 1e-6 and norms.max() > 0.45
    assert np.abs(r.arrays["mid/kernel"]).max() <= 0.05 + 1e-7
    assert np.abs(r.arrays["out/kernel"]).max() <= 0.3 + 1e-7
    assert np.isclose(
        np.abs(r.arrays["out/kernel"]).max(), 0.3
    )  # lr 0.05 pushes some past 0.3: clipped there


def test_l1_drives_more_weights_to_zero_than_l2(files):
    def run(**reg):
        spec = FinetuneSpec(train=str(files["train"]), epochs=6, batch_size=32, lr=0.01, seed=0, optimizer="sgd",
                            regularizers=({"layers": "*", **reg},))  # fmt: skip
        return headless.finetune(files["mlp"], spec).arrays["hidden/kernel"]

    plain = headless.finetune(files["mlp"], FinetuneSpec(train=str(files["train"]), epochs=6, batch_size=32, lr=0.01,
                                                         seed=0, optimizer="sgd")).arrays["hidden/kernel"]  # fmt: skip
    l1, l2 = run(l1=0.01), run(l2=0.01)
    small = {k: float(np.mean(np.abs(a) < 0.01)) for k, a in (("plain", plain), ("l1", l1), ("l2", l2))}
    assert small["l1"] > small["l2"] and small["l1"] > small["plain"], small
    assert np.sum(l2**2) < np.sum(plain**2)  # the L2 penalty is in the loss: smaller weights
    assert np.sum(np.abs(l1)) < np.sum(np.abs(plain))


def test_gradual_pruning_reaches_final_sparsity(files):
    schedules = pytest.importorskip("weightlab.core.schedules")
    sched = schedules.SparsitySchedule(kind="polynomial_decay", initial_sparsity=0.3, final_sparsity=0.7,
                                       begin_step=0, end_step=16, frequency=4)  # fmt: skip
    reports = []

    def progress(_f, _m, partial):
        if partial["type"] == "sparsity":
            reports.append((partial["step"], partial["sparsity"]))

    spec = FinetuneSpec(train=str(files["train"]), epochs=3, batch_size=32, lr=0.01, seed=0,
                        pruning={"schedule": sched.to_dict(), "layers": ["hidden", "mid"]})  # fmt: skip
    r = headless.finetune(files["mlp"], spec, on_progress=progress)
    assert [s for s, _ in reports] == [0, 4, 8, 12, 16]
    for step, sparsity in reports:
        assert abs(sparsity - float(sched(step)[1])) < 1 / 192, (step, sparsity)
    ps = pytest.importorskip("tensorflow_model_optimization.python.core.sparsity.keras.pruning_schedule")
    tfmot = ps.PolynomialDecay(
        initial_sparsity=0.3, final_sparsity=0.7, begin_step=0, end_step=16, frequency=4
    )
    pruned_at = [s for s in range(24) if bool(tfmot(tf.constant(s, tf.int64))[0])]
    assert pruned_at == [s for s, _ in reports]  # the steps TF-MOT prunes at
    for (
        step,
        sparsity,
    ) in reports:  # TF-MOT's mask count: keep max(round(n * (1 - s)), 1) per tensor, in float32
        s = tfmot(tf.constant(step, tf.int64))[1]
        keep = [int(tf.math.round(tf.cast(n, tf.float32) * (1 - s))) for n in (192, 256)]
        assert sparsity == pytest.approx((448 - sum(keep)) / 448), step
    for name, n in (("hidden/kernel", 192), ("mid/kernel", 256)):
        zeros = np.count_nonzero(r.arrays[name] == 0)
        assert zeros == n - round(n * 0.3), name  # exactly final_sparsity's count, kept through 8 more steps
    assert "out/kernel" in r.arrays and np.count_nonzero(r.arrays["out/kernel"] == 0) == 0


def test_prune_retrain_rounds(files):
    spec = PruneRetrainSpec(finetune={"train": str(files["train"]), "epochs": 1, "lr": 0.01,
                                      "heldout": str(files["heldout"])},
                            rounds=3, sparsities=(0.3, 0.5, 0.7), target="*/kernel")  # fmt: skip
    rounds = []
    import weightlab

    stored = weightlab.open(files["mlp"])
    try:  # a zeroed bias: round 0's sparsity must not count it (the rounds prune */kernel)
        edited = {"hidden/bias": np.zeros_like(stored.array("hidden/bias"))}
    finally:
        stored.model.close()
    r = headless.prune_retrain(files["mlp"], spec, edited,
                               on_progress=lambda f, m, p: rounds.append(p) if p["type"] == "round" else None)  # fmt: skip
    sizes = {"hidden/kernel": 192, "mid/kernel": 256, "out/kernel": 64}
    for rec, s in zip(r.rounds, (0.3, 0.5, 0.7)):
        expected = sum(int(np.floor(s * n)) for n in sizes.values()) / sum(sizes.values())
        assert rec.sparsity == pytest.approx(expected)
        assert rec.accuracy is not None and 0 <= rec.accuracy <= 1
    assert [p["round"] for p in rounds] == [0, 1, 2, 3]  # the baseline first
    assert rounds[0]["sparsity"] == 0.0  # the stored kernels have no zeros; the zeroed bias is not pruned
    assert r.baseline is not None and r.stopped is None
    for name, n in sizes.items():
        assert np.count_nonzero(r.arrays[name] == 0) == int(np.floor(0.7 * n))
    assert r.to_json()["rounds"][2]["round"] == 3

    # a budget stops the rounds; round 1 already past it: measured, not kept, nothing returned
    tight = PruneRetrainSpec(finetune={"train": str(files["train"]), "epochs": 1, "heldout": str(files["heldout"])},
                             rounds=3, sparsities=(0.9, 0.95, 0.99), budget_pp=0.0)  # fmt: skip
    r2 = headless.prune_retrain(files["mlp"], tight)
    assert r2.rounds[0].accuracy < r2.baseline["accuracy"]  # 90 % of every kernel pruned, one epoch back
    assert len(r2.rounds) == 1 and not r2.rounds[0].kept and r2.kept_round == 0
    assert (
        r2.arrays == {}
        and r2.stopped.startswith("round 1 fell ")
        and r2.stopped.endswith("kept nothing (the model as it was before round 1)")
    )
    assert r2.to_json()["rounds"] == [{"round": 1, "sparsity": r2.rounds[0].sparsity,
                                       "accuracy": r2.rounds[0].accuracy, "kept": False}]  # fmt: skip


def test_prune_retrain_budget_keeps_the_last_round_within_it(files):
    """Round 2 (99 % pruned) falls past the budget: it is reported, not kept; the arrays are round 1's."""
    trained = headless.finetune(
        files["mlp"], FinetuneSpec(train=str(files["train"]), epochs=8, lr=0.01)
    ).arrays
    ft = {"train": str(files["train"]), "epochs": 1, "lr": 0.001, "heldout": str(files["heldout"])}

    def rounds(**kw):
        return headless.prune_retrain(files["mlp"], PruneRetrainSpec(finetune=ft, **kw), trained)

    free = rounds(rounds=2, sparsities=(0.3, 0.99))
    base = free.baseline["accuracy"]
    drop1, drop2 = (100 * (base - r.accuracy) for r in free.rounds)
    assert drop2 > max(drop1, 0.0) + 1, (drop1, drop2)  # a budget between them separates the two rounds
    budget = (max(drop1, 0.0) + drop2) / 2
    r = rounds(rounds=2, sparsities=(0.3, 0.99), budget_pp=budget)
    assert [x.kept for x in r.rounds] == [True, False] and r.kept_round == 1
    assert [x.accuracy for x in r.rounds] == [x.accuracy for x in free.rounds]  # round 2 was measured
    one = rounds(rounds=1, sparsities=(0.3,))
    assert set(r.arrays) == set(one.arrays)
    for name, a in one.arrays.items():
        np.testing.assert_array_equal(r.arrays[name], a)
    assert np.count_nonzero(r.arrays["mid/kernel"] == 0) == int(np.floor(0.3 * 256))
    assert f"round 2 fell {drop2:.2f} pp below the baseline (budget {budget:g} pp); kept round 1" == r.stopped
    assert f"now {r.rounds[0].sparsity:.1%} zero (kept round 1: round 2 fell past the budget)" in r.label
    assert [x["kept"] for x in r.to_json()["rounds"]] == [True, False]


@pytest.mark.parametrize("keep", ["best", "last"])
def test_cancel_keeps_best_or_last_epoch(files, keep):
    seen: dict[int, np.ndarray] = {}
    batches = {"n": 0}

    def progress(_f, _m, partial):
        if partial["type"] == "epoch":
            seen[partial["epoch"]] = partial["tensors"]["out/kernel"]

    def should_stop():
        batches["n"] += 1
        return batches["n"] > 8 * 3 + 2  # in the 4th epoch (8 batches per epoch)

    spec = FinetuneSpec(train=str(files["train"]), val=str(files["val_wrong"]), epochs=6, batch_size=32, lr=0.02,
                        seed=0, on_cancel=keep, watch=("out/kernel",))  # fmt: skip
    r = headless.finetune(files["mlp"], spec, on_progress=progress, should_stop=should_stop)
    assert r.cancelled and len(r.history) == 3 and r.kept == keep
    want = 1 if keep == "best" else 3  # val_wrong peaks at epoch 1
    np.testing.assert_array_equal(r.arrays["out/kernel"], seen[want])
    assert r.best_epoch == (1 if keep == "best" else None)
    assert f"cancelled after 3 epochs, kept {keep}" in r.label

    with pytest.raises(EvaluationCancelled):
        headless.finetune(files["mlp"], spec, should_stop=lambda: True)


def test_non_keras_models_get_the_clear_error(files, tmp_path):
    saved = tmp_path / "saved_model"
    saved.mkdir()
    weights = tmp_path / "only.weights.h5"
    keras.saving.load_model(files["mlp"]).save_weights(weights)
    spec = FinetuneSpec(train=str(files["train"]))
    for path in (saved, weights, tmp_path / "frozen.pb"):
        with pytest.raises(EngineError) as e:
            headless.finetune(path, spec)
        assert NEEDS_KERAS in str(e.value) and str(path) in str(e.value)


def test_bad_data_is_a_data_error(files, tmp_path):
    x, _ = _data(10, 0)
    np.savez(tmp_path / "nolabels.npz", x=x)
    with pytest.raises(DataError, match="no labels"):
        headless.finetune(files["mlp"], FinetuneSpec(train=str(tmp_path / "nolabels.npz")))
    with pytest.raises(EngineError, match="no layer with weights matches 'nope'"):
        headless.finetune(files["mlp"], FinetuneSpec(train=str(files["train"]), freeze=("nope",)))


def test_new_head_is_saved_as_keras(files, tmp_path):
    out = tmp_path / "head.keras"
    x, y = _data(64, 5)
    np.savez(tmp_path / "three.npz", x=x, y=y % 3)
    spec = FinetuneSpec(
        train=str(tmp_path / "three.npz"), epochs=1, new_head=3, output=str(out), train_last=1
    )
    r = headless.finetune(files["mlp"], spec)
    assert r.saved == str(out) and r.arrays == {}
    m = keras.saving.load_model(out)
    assert m.output_shape == (None, 3)
    stored = _stored(files["mlp"])
    np.testing.assert_array_equal(m.get_layer("mid").kernel.numpy(), stored["mid/kernel"])  # frozen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.keras", "three.npz"]  # no temporary file left


def test_progress_partials(files):
    """Batch partials (the epoch's running loss, at most ten a second), then one epoch partial per epoch with ETA."""
    partials = []
    spec = FinetuneSpec(
        train=str(files["train"]), heldout=str(files["heldout"]), epochs=2, batch_size=32, lr=0.01
    )
    r = headless.finetune(files["mlp"], spec, on_progress=lambda f, m, p: partials.append((f, p)))
    batches = [p for _, p in partials if p["type"] == "batch"]
    epochs = [p for _, p in partials if p["type"] == "epoch"]
    assert batches and batches[0] == {**batches[0], "epoch": 1, "batch": 1, "batches": 8, "step": 1}
    assert all(np.isfinite(p["loss"]) and p["lr"] == pytest.approx(0.01) for p in batches)
    assert [p["epoch"] for p in epochs] == [1, 2] and epochs[-1]["eta_s"] == 0
    assert epochs[0]["heldout_accuracy"] == r.history[0].heldout_accuracy and epochs[0]["device"] == r.device
    assert r.final["accuracy"] == r.history[-1].heldout_accuracy
    fractions = [f for f, _ in partials]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_heldout_numbers_equal_keras_evaluate(files):
    spec = FinetuneSpec(train=str(files["train"]), heldout=str(files["heldout"]), epochs=2, lr=0.01, seed=3)
    r = headless.finetune(files["mlp"], spec)
    m = keras.saving.load_model(files["mlp"], compile=False)
    for layer in m.layers:
        for w in layer.weights:
            w.assign(r.arrays.get(f"{layer.name}/{w.name}", w.numpy()))
    m.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = np.load(files["heldout"])
    loss, acc = m.evaluate(h["x"], h["y"], verbose=0)
    assert r.final["accuracy"] == pytest.approx(acc, abs=1e-7)
    assert r.final["loss"] == pytest.approx(loss, rel=1e-5)


def test_inference_seconds(files):
    t = headless.inference_seconds(files["mlp"], files["heldout"], repeats=3)
    assert 0 < t < 5
    stored = _stored(files["mlp"])
    assert (
        headless.inference_seconds(files["mlp"], files["heldout"], {"out/kernel": stored["out/kernel"] * 0})
        > 0
    )
    with pytest.raises(EngineError, match="does not exist"):
        headless.inference_seconds(files["dir"] / "missing.keras", files["heldout"])


def test_prune_retrain_cancelled_keeps_whole_rounds(files):
    """A cancel before round 2's first epoch ends returns round 1 alone, without round 2's pruning."""
    calls = {"n": 0}

    def should_stop():  # 8 batches per round (1 epoch of 256 samples in batches of 32); round 2 stops at once
        calls["n"] += 1
        return calls["n"] > 8

    spec = PruneRetrainSpec(
        finetune={"train": str(files["train"]), "epochs": 1}, rounds=3, sparsities=(0.3, 0.6, 0.8)
    )
    r = headless.prune_retrain(files["mlp"], spec, should_stop=should_stop)
    assert [x.round for x in r.rounds] == [1] and r.stopped == "cancelled in round 2"
    assert np.count_nonzero(r.arrays["mid/kernel"] == 0) == int(0.3 * 256)


def test_gradual_pruning_global_ranking(files):
    schedules = pytest.importorskip("weightlab.core.schedules")
    sched = schedules.SparsitySchedule(
        kind="constant_sparsity", final_sparsity=0.5, begin_step=0, frequency=100
    )
    spec = FinetuneSpec(train=str(files["train"]), epochs=1, lr=0.01, seed=0,
                        pruning={"schedule": sched.to_dict(), "layers": ["hidden", "out"], "scope": "global"})  # fmt: skip
    r = headless.finetune(files["mlp"], spec)
    zeros = [np.count_nonzero(r.arrays[n] == 0) for n in ("hidden/kernel", "out/kernel")]
    assert sum(zeros) == 256 - 128  # one ranking over both kernels: half of all their entries
    assert zeros[0] != 96  # not half of each


def test_new_head_gets_the_regularizers_and_constraints_that_name_it(files, tmp_path):
    """The new head is named as the layer it replaces ('out'): what the spec sets on 'out' applies to it."""
    x, y = _data(64, 5)
    np.savez(tmp_path / "three.npz", x=x, y=y % 3)

    def head(name: str, **terms) -> np.ndarray:
        spec = FinetuneSpec(train=str(tmp_path / "three.npz"), epochs=2, lr=0.01, new_head=3,
                            output=str(tmp_path / name), **terms)  # fmt: skip
        headless.finetune(files["mlp"], spec)
        return keras.saving.load_model(tmp_path / name).get_layer("out").kernel.numpy()

    plain = head("plain.keras")
    assert (plain < 0).any()  # glorot_uniform: the constraint below is not vacuous
    non_neg = head("nonneg.keras", constraints=({"layers": ["o*"], "kind": "non_neg"},))
    assert (non_neg >= 0).all()
    l1 = head("l1.keras", regularizers=({"layers": ["out"], "l1": 1.0, "l2": 0.0},))
    assert np.abs(l1).sum() < 0.9 * np.abs(plain).sum()
    other = head("other.keras", regularizers=({"layers": ["hidden"], "l1": 1.0, "l2": 0.0},), train_last=1)
    # a term naming another (frozen) layer leaves the head alone
    np.testing.assert_array_equal(other, head("last.keras", train_last=1))

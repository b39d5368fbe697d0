"""The trained step's label says what happened: the learning rate training really ran with.

``"lr auto"`` is what a spec without a rate reads before training; the
engine's result names the rate once known (the compile config's, Adam's
default, the spec's schedule, or the file's own schedule).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_train_engine import N_CLASSES, N_FEATURES, _data, op_determinism_restored  # noqa: F401 - autouse fixture

from weightlab.core.schedules import LRSchedule
from weightlab.core.training import FinetuneSpec

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow

from weightlab._tf import headless  # noqa: E402


def _save(path, optimizer=None):
    keras.utils.set_random_seed(2)
    inp = keras.Input((N_FEATURES,))
    model = keras.Model(inp, keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(inp))
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.save(path)
    return path


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "train.npz"
    x, y = _data(64, 1)
    np.savez(path, x=x, y=y)
    return str(path)


def test_label_names_the_compile_configs_rate(tmp_path, train):
    spec = FinetuneSpec(train=train, epochs=1, keep_masks=False)
    assert "lr auto" in spec.describe()  # before training: not known yet
    r = headless.finetune(_save(tmp_path / "c.keras", keras.optimizers.Adam(0.005)), spec)
    assert r.label == "fine-tune 1 epoch, lr 0.005, masks free"
    assert r.history[0].lr == pytest.approx(0.005)


def test_label_names_adams_default_without_a_compile_config(tmp_path, train):
    r = headless.finetune(_save(tmp_path / "n.keras"), FinetuneSpec(train=train, epochs=1))
    assert r.label == "fine-tune 1 epoch, lr 0.001, masks kept"


def test_label_names_the_schedule(tmp_path, train):
    sched = LRSchedule.parse("exponential_decay:decay_steps=10,decay_rate=0.9")
    spec = FinetuneSpec(train=train, epochs=1, lr=0.01, schedule=sched.to_dict(), optimizer="sgd")
    r = headless.finetune(_save(tmp_path / "s.keras"), spec)
    assert r.label == f"fine-tune 1 epoch, lr {sched.describe(0.01)}, sgd, masks kept"
    assert "ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9" in r.label


def test_label_names_the_files_own_schedule(tmp_path, train):
    own = keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=5, decay_rate=0.5)
    r = headless.finetune(
        _save(tmp_path / "f.keras", keras.optimizers.Adam(own)), FinetuneSpec(train=train, epochs=1)
    )
    assert r.label.startswith("fine-tune 1 epoch, lr ExponentialDecay(0.02, decay_steps=5, decay_rate=0.5")
    assert "(the file's), masks kept" in r.label


def test_label_reads_a_float32_rate_as_set(tmp_path, train):
    """The compile config stores a float32 rate (0.0010000000474974513): the label reads 0.001."""
    path = _save(tmp_path / "c.keras", keras.optimizers.Adam(0.001))
    sched = LRSchedule.parse("exponential_decay:decay_steps=100,decay_rate=0.9")
    r = headless.finetune(path, FinetuneSpec(train=train, epochs=1, schedule=sched.to_dict()))
    assert r.label == f"fine-tune 1 epoch, lr {sched.describe(0.001)}, masks kept"
    own = keras.optimizers.schedules.ExponentialDecay(0.001, decay_steps=5, decay_rate=0.9)
    r = headless.finetune(_save(tmp_path / "f.keras", keras.optimizers.Adam(own)), FinetuneSpec(train=train))
    assert (
        "lr ExponentialDecay(0.001, decay_steps=5, decay_rate=0.9, staircase=False) (the file's)" in r.label
    )

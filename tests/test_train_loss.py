"""Training's loss is the live evaluation's loss (weightlab._tf.session / engine.scoring).

The evaluation scores a softmax output on its logits, rows that are
probabilities (non-negative, summing to 1) as probabilities, and any other
output (linear, sigmoid) as logits of a softmax. Training must minimise that
same function, whatever the file's compile config says: then the validation
loss Keras reports and the held-out loss WeightLab shows agree on the same data.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_train_engine import N_CLASSES, N_FEATURES, _data, op_determinism_restored  # noqa: F401 - autouse fixture

from weightlab.core.training import FinetuneSpec

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow

from weightlab._tf import headless  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("loss")
    for name, n, seed in (("train", 96, 1), ("heldout", 64, 3)):
        x, y = _data(n, seed)
        np.savez(d / f"{name}.npz", x=x, y=y)
    return d


CASES = {
    "softmax compiled from_logits=True": ("softmax", True),  # a double softmax in Keras' own fit
    "sigmoid": ("sigmoid", None),
    "sigmoid compiled from_logits=False": ("sigmoid", False),  # rows that are no distribution
    "linear": (None, None),
    "linear compiled from_logits=False": (None, False),  # rows that are no distribution
    "Softmax layer": ("layer", None),
}


@pytest.mark.parametrize("case", CASES)
def test_validation_loss_equals_the_evaluations_heldout_loss(data, tmp_path, case):
    activation, from_logits = CASES[case]
    keras.utils.set_random_seed(5)
    inp = keras.Input((N_FEATURES,))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    if activation == "layer":
        out = keras.layers.Softmax(name="soft")(keras.layers.Dense(N_CLASSES, name="out")(h))
    else:
        out = keras.layers.Dense(N_CLASSES, activation=activation, name="out")(h)
    model = keras.Model(inp, out)
    if from_logits is not None:
        model.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        )
    model.save(tmp_path / "m.keras")
    heldout = str(data / "heldout.npz")
    spec = FinetuneSpec(train=str(data / "train.npz"), val=heldout, heldout=heldout, epochs=2, lr=0.01,
                        keep_masks=False)  # fmt: skip
    r = headless.finetune(tmp_path / "m.keras", spec)
    for e in r.history:  # the same weights, the same data: the same loss
        assert e.val_loss == pytest.approx(e.heldout_loss, rel=2e-5), e.epoch
        assert e.val_accuracy == pytest.approx(e.heldout_accuracy)

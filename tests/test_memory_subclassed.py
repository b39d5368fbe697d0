"""Subclassed Keras models Keras cannot copy (``__init__`` without ``**kwargs``, no ``get_config``):
evaluated on the live model with its values put back; ``to_keras`` says how to fix it in one line (G13 finding 6)."""

from __future__ import annotations

import numpy as np
import pytest

import weightlab
from weightlab.core.errors import DataError, EngineError
from weightlab.edits import ZeroNeurons

keras = pytest.importorskip("keras")


class Tiny(keras.Model):
    def __init__(self):  # no **kwargs: keras.models.clone_model cannot rebuild it
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


@pytest.fixture
def tiny():
    keras.utils.set_random_seed(3)
    model = Tiny()
    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    model(x[:1])
    y = np.argmax(model.predict(x, verbose=0), axis=1)  # the unedited model is right on every sample
    return model, x, y


def _values(model):
    return [np.array(v.numpy()) for v in model.weights]


def test_an_edited_subclassed_model_evaluates_like_the_same_edit_made_by_hand(tiny):
    model, x, y = tiny
    before = _values(model)
    s = weightlab.open(model)
    layer = s.tensors[next(n for n in s.tensors if n.endswith("/kernel"))].layer
    s.apply(ZeroNeurons(target=layer, neurons=[0, 1, 2, 3]))
    metrics = s.evaluate((x, y))
    for a, b in zip(before, _values(model), strict=True):
        np.testing.assert_array_equal(a, b)  # the source is left as it was
    # The same edit by hand, on numbers alone.
    w1, b1, w2, b2 = (np.asarray(s.array(n)) for n in s.tensors)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    assert metrics.accuracy == pytest.approx(np.mean(np.argmax(logits, axis=1) == y))
    assert metrics.baseline is not None and metrics.baseline.accuracy == 1.0


def test_the_source_is_put_back_when_evaluation_fails(tiny):
    model, x, y = tiny
    before = _values(model)
    s = weightlab.open(model)
    s.apply(ZeroNeurons(target=s.tensors[next(iter(s.tensors))].layer, neurons=[0]))
    with pytest.raises(DataError):
        s.evaluate((x, y + 10))  # labels outside [0, 3)
    for a, b in zip(before, _values(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_to_keras_of_a_model_keras_cannot_copy_says_how_in_one_line(tiny):
    model, _, _ = tiny
    s = weightlab.open(model)
    with pytest.raises(EngineError) as caught:
        s.to_keras()
    text = str(caught.value)
    assert "\n" not in text and "get_config" in text and "**kwargs" in text and "Tiny" in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

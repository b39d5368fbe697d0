"""Tiny Keras models built in code and saved in every supported format (test fixtures).

Each builder returns a :class:`Saved`: the file paths by format plus the
reference weights ``{"layer/weight": array}`` and layer order taken from the
built model itself (``layer.weights``; nested models flattened to their inner
layers). Imports Keras / tf_keras lazily: only tests call this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class Saved:
    """A model saved in several formats, with its reference weights.

    Attributes
    ----------
    kind:
        ``"keras3"`` or ``"tf_keras"``.
    model:
        Name of the architecture (``"dense"``, ``"cnn"``, ``"rnn"``).
    paths:
        ``{format name: path}``; format names as in ``weightlab.formats``, plus
        ``"h5-weights"`` for a tf_keras weights-only ``.h5``.
    weights:
        ``{"layer/weight": array}`` in model order.
    layers:
        Layer names in ``model.layers`` order, nested models flattened.
    weight_layers:
        Names of the layers that have weights, in order.
    """

    kind: str
    model: str
    paths: dict[str, Path]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    weight_layers: list[str] = field(default_factory=list)


def _flat_layers(model) -> list:
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Sequential", "Functional", "Model"):
            out += _flat_layers(layer)
        else:
            out.append(layer)
    return out


def _weight_name(var, keras2: bool) -> str:
    name = var.name.split("/")[-1] if keras2 else var.name
    return name.removesuffix(":0")


def _reference(model, keras2: bool) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    weights: dict[str, np.ndarray] = {}
    layers, weight_layers = [], []
    for layer in _flat_layers(model):
        layers.append(layer.name)
        if layer.weights:
            weight_layers.append(layer.name)
        for v in layer.weights:
            weights[f"{layer.name}/{_weight_name(v, keras2)}"] = np.array(v.numpy())
    return weights, layers, weight_layers


def _build(lib, name: str):
    """Build architecture ``name`` with ``lib`` (keras or tf_keras), randomised, compiled, trained 1 step."""
    layers = lib.layers
    rng = np.random.default_rng(0)
    if name == "dense":
        model = lib.Sequential(
            [lib.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(2, use_bias=False)]
        )
        x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    elif name == "cnn":
        inp = lib.Input((6, 6, 3))
        h = layers.Conv2D(4, 3, padding="same")(inp)
        h = layers.BatchNormalization()(h)
        r = layers.DepthwiseConv2D(3, padding="same")(h)
        h = layers.Add()([h, r])
        h = layers.SeparableConv2D(3, 3)(h)
        head = lib.Sequential([layers.Flatten(), layers.Dense(5)], name="head")
        h = head(h)
        h = layers.LayerNormalization()(h)
        out = layers.Dense(2)(h)
        model = lib.Model(inp, out)
        x, y = rng.normal(size=(8, 6, 6, 3)), rng.normal(size=(8, 2))
    elif name == "rnn":
        model = lib.Sequential(
            [lib.Input((5,), dtype="int32"), layers.Embedding(10, 4), layers.LSTM(3), layers.Dense(1)]
        )
        x, y = rng.integers(0, 10, size=(8, 5)), rng.normal(size=(8, 1))
    else:
        raise ValueError(name)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # non-trivial BN stats and optimizer state
    return model


MODELS = ("dense", "cnn", "rnn")


def save_keras3(folder: Path, name: str) -> Saved:
    """Build ``name`` with Keras 3; save ``.keras``, legacy ``.h5`` and ``.weights.h5`` in ``folder``."""
    import keras

    keras.utils.set_random_seed(1)
    model = _build(keras, name)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "keras": folder / f"{name}.keras",
        "h5": folder / f"{name}.h5",
        "weights.h5": folder / f"{name}.weights.h5",
    }
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.save_weights(paths["weights.h5"])
    w, layers, wl = _reference(model, keras2=False)
    return Saved("keras3", name, paths, w, layers, wl)


def save_tf_keras(folder: Path, name: str) -> Saved:
    """Build ``name`` with tf_keras (Keras 2); save a full-model ``.h5`` and a weights-only ``.h5``."""
    import tf_keras

    tf_keras.utils.set_random_seed(1)
    model = _build(tf_keras, name)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"h5": folder / f"{name}.k2.h5", "h5-weights": folder / f"{name}.k2w.h5"}
    model.save(paths["h5"], save_format="h5")
    model.save_weights(paths["h5-weights"], save_format="h5")
    w, layers, wl = _reference(model, keras2=True)
    return Saved("tf_keras", name, paths, w, layers, wl)


def build_all(folder: Path) -> list[Saved]:
    """Every architecture in every format, in sub-folders of ``folder``."""
    return [save_keras3(folder / "k3", n) for n in MODELS] + [save_tf_keras(folder / "k2", n) for n in MODELS]

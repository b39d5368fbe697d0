"""Pure-NumPy fixtures for the sweep, coupling and plan tests: Keras-style configs and in-memory models.

``functional(...)`` writes a Keras 3 functional config (``inbound_nodes`` with
``keras_history``), as ``model.to_json()`` does; ``keras2=True`` writes Keras
2's ``[[[layer, node, tensor, {}]]]`` form. No TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from weightlab.core.model import ModelFile


def node(name: str) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}


def layer(name: str, cls: str, inputs: tuple[str, ...] = (), keras2: bool = False, **cfg: Any) -> dict[str, Any]:
    if keras2:
        inbound = [[[i, 0, 0, {}] for i in inputs]] if inputs else []
    elif not inputs:
        inbound = []
    elif len(inputs) == 1:
        inbound = [{"args": [node(inputs[0])], "kwargs": {}}]
    else:
        inbound = [{"args": [[node(i) for i in inputs]], "kwargs": {}}]
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg}, "inbound_nodes": inbound}


def functional(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"name": "m", "layers": list(layers)}}


def residual_config(keras2: bool = False) -> dict[str, Any]:
    """x(4) -> stem conv(8) -> stem_bn -> relu -> [conv1 -> bn1 -> relu1 -> conv2 -> bn2] + -> add -> out_relu
    -> conv3 (+) add2 -> pool -> head Dense(3)."""
    k = {"keras2": keras2}
    return functional(
        layer("x", "InputLayer", batch_shape=[None, 5, 5, 4]),
        layer("stem", "Conv2D", ("x",), filters=8, **k),
        layer("stem_bn", "BatchNormalization", ("stem",), axis=-1, **k),
        layer("stem_relu", "ReLU", ("stem_bn",), **k),
        layer("conv1", "Conv2D", ("stem_relu",), filters=8, **k),
        layer("bn1", "BatchNormalization", ("conv1",), axis=-1, **k),
        layer("relu1", "Activation", ("bn1",), activation="relu", **k),
        layer("conv2", "Conv2D", ("relu1",), filters=8, **k),
        layer("bn2", "BatchNormalization", ("conv2",), axis=-1, **k),
        layer("add", "Add", ("stem_relu", "bn2"), **k),
        layer("out_relu", "ReLU", ("add",), **k),
        layer("conv3", "Conv2D", ("out_relu",), filters=8, **k),
        layer("add2", "Add", ("out_relu", "conv3"), **k),
        layer("pool", "GlobalAveragePooling2D", ("add2",), **k),
        layer("head", "Dense", ("pool",), units=3, **k),
    )


def residual_model(seed: int = 0) -> ModelFile:
    """The model of :func:`residual_config` with random weights, in memory."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    classes: dict[str, str] = {}

    def conv(name: str, cin: int, cout: int) -> None:
        arrays[f"{name}/kernel"] = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
        arrays[f"{name}/bias"] = rng.normal(size=(cout,)).astype(np.float32)
        classes[name] = "Conv2D"

    def bn(name: str, c: int) -> None:
        for w in ("gamma", "beta", "moving_mean", "moving_variance"):
            arrays[f"{name}/{w}"] = (rng.random(c) + 0.5).astype(np.float32)
        classes[name] = "BatchNormalization"

    conv("stem", 4, 8)
    bn("stem_bn", 8)
    conv("conv1", 8, 8)
    bn("bn1", 8)
    conv("conv2", 8, 8)
    bn("bn2", 8)
    conv("conv3", 8, 8)
    arrays["head/kernel"] = rng.normal(size=(8, 3)).astype(np.float32)
    arrays["head/bias"] = rng.normal(size=(3,)).astype(np.float32)
    classes["head"] = "Dense"
    non_trainable = [n for n in arrays if n.endswith(("moving_mean", "moving_variance"))]
    return ModelFile.from_arrays(arrays, classes=classes, non_trainable=non_trainable, config=residual_config())

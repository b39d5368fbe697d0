"""Benchmark (b): edit-to-accuracy latency against ``model.evaluate``.

A small residual CNN (CIFAR-style: a stem, three stages of residual blocks at
32x32x16, 16x16x32 and 8x8x64, global average pooling, a 10-way softmax) with
random weights on 32x32x3 inputs, and 4,000 held-out samples: random inputs
labelled with the model's own prediction for 70% of them and a random class
for the rest, so the baseline accuracy is about 73% and edits move it.

For an edit of the last, a middle and the first layer with weights (ablating
a random quarter of its output channels, as ``zero_neurons`` does), the time from handing the edited tensor to the engine session
(:class:`weightlab._tf.session.EngineSession`, the code the window's worker
and ``weightlab eval`` use) to its metrics, against ``model.evaluate`` of a
Keras model holding the same weights, measured in the same run. Both sides are
timed after one warm-up call (WeightLab traces the sub-model that starts at
the layer's cached input; Keras builds its evaluation function); then every
repeat ablates other channels, so nothing is served from a stale result.
Reported: medians. Accuracy equality (1e-6) is asserted.

Run ``python benchmarks/bench_eval.py`` (prints a JSON list of rows) or call
:func:`run`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_SAMPLES = 4000
INPUT_SHAPE = (32, 32, 3)
WIDTHS = (16, 32, 64)
BLOCKS = (2, 1, 1)


def residual_cnn(input_shape=INPUT_SHAPE, widths=WIDTHS, blocks=BLOCKS, classes=10, seed=0):
    """A small residual CNN with random weights (Keras functional model, not compiled).

    Parameters
    ----------
    input_shape:
        ``(height, width, channels)`` of one sample.
    widths:
        Channels of each stage; every stage after the first starts with a
        stride-2 convolution.
    blocks:
        Residual blocks per stage (``conv-BN-ReLU-conv-BN + shortcut, ReLU``).
    classes:
        Outputs of the final softmax layer.
    seed:
        Keras random seed for the initial weights.

    Returns
    -------
    keras.Model
        Layer names: ``stem``, ``s{stage}b{block}_conv{1,2}`` (and ``_bn``),
        ``s{stage}_down``, ``head``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inp = keras.Input(input_shape)
    h = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(inp)
    h = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(h))
    for s, (width, count) in enumerate(zip(widths, blocks), start=1):
        if s > 1:
            h = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"s{s}_down")(h)
            h = layers.ReLU(name=f"s{s}_down_relu")(layers.BatchNormalization(name=f"s{s}_down_bn")(h))
        for b in range(1, count + 1):
            p = f"s{s}b{b}"
            r = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{p}_conv1")(h)
            r = layers.ReLU(name=f"{p}_relu1")(layers.BatchNormalization(name=f"{p}_bn1")(r))
            r = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{p}_conv2")(r)
            r = layers.BatchNormalization(name=f"{p}_bn2")(r)
            h = layers.ReLU(name=f"{p}_out")(layers.Add(name=f"{p}_add")([h, r]))
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    out = layers.Dense(classes, activation="softmax", name="head")(h)
    return keras.Model(inp, out, name="resnet_small")


def heldout_for(model, n=NUM_SAMPLES, seed=0, agree=0.7):
    """Random inputs labelled with the model's own prediction for a fraction ``agree`` of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *model.inputs[0].shape[1:])).astype(np.float32)
    pred = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1)
    classes = int(model.outputs[0].shape[-1])
    y = np.where(rng.random(n) < agree, pred, rng.integers(0, classes, n)).astype(np.int64)
    return x, y


def saved_residual_cnn(folder: Path):
    """The residual CNN and its held-out set saved in ``folder``: ``(model, x, y, model path, data path)``."""
    model = residual_cnn()
    x, y = heldout_for(model)
    path, data = Path(folder) / "resnet_small.keras", Path(folder) / "heldout.npz"
    model.save(path)
    np.savez(data, x=x, y=y)
    return model, x, y, path, data


#: (row label, edited tensor): last, middle and first layer with weights.
EDITS = (
    ("last layer", "head/kernel"),
    ("middle layer", "s2_down/kernel"),
    ("first layer", "stem/kernel"),
)


def _ablated(kernel: np.ndarray, seed: int) -> np.ndarray:
    """``kernel`` with a random quarter of its output channels (last axis) zeroed."""
    rng = np.random.default_rng(seed)
    out = kernel.copy()
    out[..., rng.choice(kernel.shape[-1], kernel.shape[-1] // 4, replace=False)] = 0
    return out


def _time(fn, repeats):
    times = []
    out = None
    for i in range(repeats):
        t0 = time.perf_counter()
        out = fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(repeats: int = 3, keras_repeats: int = 2) -> list[dict]:
    """Measure the three edits; returns one row per edit (see the module docstring).

    Each row: ``benchmark``, ``weightlab_s`` (median), ``weightlab_first_s``
    (the first edit at that layer: tracing included), ``mode`` (``"full"`` or
    ``"incremental from <layer>"``), ``alternative`` (``"model.evaluate"``),
    ``alternative_s`` (median), ``ratio``, ``same_accuracy``, ``device``,
    ``samples``, ``batch_size``.
    """
    import keras

    from weightlab._tf.session import EngineSession

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model, x, y, path, data = saved_residual_cnn(tmp)
        ref = keras.saving.load_model(path, compile=False)
        ref.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])

        session = EngineSession.from_file(path, data)
        base = session.evaluate()
        for label, name in EDITS:
            layer_name = name.split("/")[0]
            kernel = model.get_layer(layer_name).kernel.numpy()
            var = ref.get_layer(layer_name).kernel

            def wl(i, kernel=kernel, name=name):
                return session.evaluate({name: _ablated(kernel, i)})

            def alternative(i, kernel=kernel, var=var):
                var.assign(_ablated(kernel, i))
                return ref.evaluate(x, y, verbose=0, return_dict=True)

            first = session.evaluate({name: _ablated(kernel, 1000)})  # tracing included
            wl_s, got = _time(wl, repeats)
            alternative(repeats)  # warm-up
            alt_s, want = _time(alternative, keras_repeats)
            # Compare the same weights: the last WeightLab repeat vs the last Keras repeat.
            if keras_repeats != repeats:
                got = wl(keras_repeats - 1)
            same = abs(got.accuracy - want["accuracy"]) <= 1e-6
            assert same, (label, got.accuracy, want["accuracy"])
            rows.append(
                {
                    "benchmark": f"edit-to-accuracy, {label} ({name})",
                    "weightlab_s": round(wl_s, 4),
                    "weightlab_first_s": round(first.seconds, 4),
                    "mode": got.mode if got.cut is None else f"{got.mode} from {got.cut}",
                    "layers_run": f"{got.layers_run}/{got.layers_total}",
                    "alternative": "model.evaluate",
                    "alternative_s": round(alt_s, 4),
                    "ratio": round(alt_s / wl_s, 1),
                    "same_accuracy": same,
                    "accuracy": got.accuracy,
                    "baseline_accuracy": base.accuracy,
                    "device": got.device,
                    "samples": got.num_samples,
                    "batch_size": got.batch_size,
                }
            )
            var.assign(kernel)
            session.evaluate({})  # back to the baseline before the next layer
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

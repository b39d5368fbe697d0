"""Benchmark (g): a per-layer clip sensitivity sweep against the loop a user writes today.

The residual CNN of :mod:`benchmarks.bench_eval` (32x32x3, 4,000 held-out
samples). WeightLab: :func:`weightlab._tf.headless.sweep` with a
``SweepSpec(op="clip", param="threshold", mode="each", values=8 thresholds)``
over every Conv2D and Dense kernel (12 kernels, 96 points), and over the last
three kernels (24 points), timed from the call (the model opened, the held-out
set read, the baseline evaluated, every point measured) to the result. The
alternative, in the same run: ``keras.saving.load_model`` and ``compile``,
then for each point ``variable.assign(np.clip(kernel, -t, t))`` and
``model.evaluate(x, y)`` (Keras' default batch size), the kernel restored
after each layer; its baseline evaluation is not counted. Every point's
accuracy is compared (``|a - b| <= 1e-6``).

The thresholds (``THRESHOLDS``: 0.004 to 0.06, geometric) are below the
largest magnitude of every kernel of this model, so every point changes its
kernel (asserted: no point is skipped as unchanged).

Run ``python benchmarks/bench_sweep.py`` (prints JSON rows) or call :func:`run`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_eval import saved_residual_cnn

#: Clip thresholds of the sweep (8 values).
THRESHOLDS = tuple(float(f"{v:.4g}") for v in np.geomspace(0.004, 0.06, 8))


def _kernels(model) -> list[str]:
    return [f"{layer.name}/kernel" for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]


def _naive(path, x, y, kernels):
    """The loop a user writes: set the weights, ``model.evaluate``; returns (seconds, {(kernel, t): accuracy})."""
    import keras

    t0 = time.perf_counter()
    model = keras.saving.load_model(path, compile=False)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = {}
    for name in kernels:
        var = model.get_layer(name.split("/")[0]).kernel
        kernel = var.numpy()
        for t in THRESHOLDS:
            var.assign(np.clip(kernel, -t, t))
            out[name, t] = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
        var.assign(kernel)
    return time.perf_counter() - t0, out


def _weightlab(path, data, kernels):
    from weightlab._tf import headless
    from weightlab.core.sweeps import SweepSpec

    spec = SweepSpec(op="clip", param="threshold", targets=tuple(kernels), values=THRESHOLDS, mode="each")
    t0 = time.perf_counter()
    result = headless.sweep(path, data, spec)
    seconds = time.perf_counter() - t0
    return seconds, result


def run() -> list[dict]:
    """Both sweeps, both sides; one row each (see the module docstring).

    Each row: ``benchmark``, ``points``, ``weightlab_s``, ``alternative``,
    ``alternative_s``, ``ratio``, ``target``, ``met``, ``same_accuracy``
    (every point), ``max_abs_diff``, ``baseline_accuracy``,
    ``accuracy_range``, ``device``, ``samples``.
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model, x, y, path, data = saved_residual_cnn(tmp)
        kernels = _kernels(model)
        for w in kernels:  # every threshold changes every kernel
            assert float(np.abs(model.get_layer(w.split("/")[0]).kernel.numpy()).max()) > max(THRESHOLDS), w
        for label, chosen, goal in (
            (f"every conv and dense kernel ({len(kernels)})", kernels, 3.0),
            ("the last three kernels", kernels[-3:], 10.0),
        ):
            wl_s, result = _weightlab(path, data, chosen)
            alt_s, want = _naive(path, x, y, chosen)
            got = {(p.target, p.value): p.accuracy for p in result.points}
            assert set(got) == set(want), "the same points"
            diff = max(abs(got[k] - want[k]) for k in want)
            accs = [p.accuracy for p in result.points]
            rows.append(
                {
                    "benchmark": f"each clip sweep x {len(THRESHOLDS)} values, {label}",
                    "points": len(result.points),
                    "weightlab_s": round(wl_s, 2),
                    "alternative": "for each point: variable.assign + model.evaluate",
                    "alternative_s": round(alt_s, 2),
                    "ratio": round(alt_s / wl_s, 1),
                    "target": f">= {goal:g}x",
                    "met": alt_s / wl_s >= goal,
                    "same_accuracy": diff <= 1e-6,
                    "max_abs_diff": diff,
                    "baseline_accuracy": result.baseline.accuracy,
                    "accuracy_range": [min(accs), max(accs)],
                    "samples": result.baseline.num_samples,
                    "thresholds": list(THRESHOLDS),
                }
            )
            assert diff <= 1e-6, (label, diff)
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

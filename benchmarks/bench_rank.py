"""Benchmark (i): ranking the demo's 64-unit Dense layer by zero ablation, against the loop a user writes.

Issue 11 asks for the bundled demo's 64-unit ``dense`` layer to be ranked in
at most 2 s on the 2-core machine. WeightLab: :func:`weightlab._tf.rank.run_rank`
on a :class:`~weightlab._tf.points.PointEvaluator` (zero ablation, both
cumulative curves: 64 single units + 2 x 64 cumulative points = 192 points),
timed from the model and held-out set already opened (``open_session``) to
the ranked result. The alternative, in the same run: ``keras.saving.load_model``
and ``compile`` (not timed), then for each unit: zero the kernel column and the
bias entry (``assign``), ``model.evaluate`` (Keras' default batch size), restore.
The alternative measures only the 64 single units (no cumulative curves), so
the ratio understates WeightLab's lead. Every unit's accuracy is compared
(``|a - b| <= 1e-6``).

Run ``python benchmarks/bench_rank.py`` (prints JSON rows) or call :func:`run`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO = ROOT / "weightlab" / "resources" / "demo"
LAYER = "dense"
#: Issue 11's target for the WeightLab side, in seconds.
TARGET_S = 2.0


def _naive(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[int, float]]:
    """Zero each unit, ``model.evaluate``, restore; returns (seconds, {unit: accuracy})."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    layer = model.get_layer(LAYER)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    out = {}
    t0 = time.perf_counter()
    for unit in range(kernel.shape[-1]):
        k, b = kernel.copy(), bias.copy()
        k[..., unit] = 0
        b[unit] = 0
        layer.kernel.assign(k)
        layer.bias.assign(b)
        out[unit] = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    return time.perf_counter() - t0, out


def _weightlab(path: Path, data: Path, repeats: int) -> tuple[float, object]:
    """Median seconds of ``run_rank`` over ``repeats`` fresh evaluators, and the last result."""
    from weightlab._tf.passes import open_session
    from weightlab._tf.points import PointEvaluator
    from weightlab._tf.rank import run_rank
    from weightlab._tf.sweep import engine_model_file
    from weightlab.core.sweeps import RankSpec

    session = open_session(path, data)
    times, result = [], None
    for _ in range(repeats):
        evaluator = PointEvaluator(session)
        model = engine_model_file(session, path, evaluator.originals)
        try:
            t0 = time.perf_counter()
            result = run_rank(evaluator, model, RankSpec(layer=LAYER, ablation="zero"))
            times.append(time.perf_counter() - t0)
        finally:
            model.close()
    return float(np.median(times)), result


def run(repeats: int = 3) -> list[dict]:
    """One row (see the module docstring): ``benchmark``, ``units``, ``points``,
    ``weightlab_s`` (median of ``repeats``), ``alternative_s``, ``ratio``,
    ``target``, ``met`` (WeightLab within :data:`TARGET_S`), ``same_accuracy``,
    ``max_abs_diff``, ``samples``."""
    path, data = DEMO / "digits_cnn.keras", DEMO / "digits_heldout.npz"
    with np.load(data) as npz:
        x, y = npz["x"], npz["y"]
    wl_s, result = _weightlab(path, data, repeats)
    alt_s, want = _naive(path, x, y)
    got = {u.index: u.point.accuracy for u in result.units}
    assert set(got) == set(want), "the same units"
    diff = max(abs(got[k] - want[k]) for k in want)
    assert diff <= 1e-6, diff
    points = len(result.units) + len(result.cumulative_top) + len(result.cumulative_bottom)
    return [
        {
            "benchmark": f"zero-ablation ranking of the demo's {LAYER!r} ({len(result.units)} units, both cumulative curves)",
            "units": len(result.units),
            "points": points,
            "weightlab_s": round(wl_s, 3),
            "alternative": "for each unit: assign a zeroed column and bias + model.evaluate (single units only)",
            "alternative_s": round(alt_s, 2),
            "ratio": round(alt_s / wl_s, 1),
            "target": f"<= {TARGET_S:g} s",
            "met": wl_s <= TARGET_S,
            "same_accuracy": diff <= 1e-6,
            "max_abs_diff": diff,
            "samples": result.baseline.num_samples,
        }
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

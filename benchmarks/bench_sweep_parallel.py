"""Benchmark (h): an ``each`` sweep in one process against the same sweep in 2 worker processes.

The residual CNN of :mod:`benchmarks.bench_eval` (32x32x3, 4,000 held-out
samples) and the sweep of :mod:`benchmarks.bench_sweep` (clip ``threshold``
at 8 values, mode ``each``, every Conv2D and Dense kernel: 12 targets, 96
points). :func:`weightlab._tf.headless.sweep` with ``workers=1`` (in this
process) and ``workers=2`` (:mod:`weightlab._tf.parallel`: two spawned
processes, each opening the model and evaluating the base once), each timed
from the call to the result, so the workers' start (Python, TensorFlow, the
model) is counted. Every point's accuracy is compared (``|a - b| <= 1e-6``),
and the points' order too.

On a machine with 2 cores the ratio stays below 2: the workers' start-up and
base passes are paid twice, and the cores are shared with the parent.

Run ``python benchmarks/bench_sweep_parallel.py`` (prints JSON rows) or call :func:`run`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_eval import saved_residual_cnn
from benchmarks.bench_sweep import THRESHOLDS, _kernels

#: Worker processes compared with one process.
WORKERS = 2


def run() -> list[dict]:
    """One row: ``benchmark``, ``points``, ``one_process_s``, ``workers``, ``workers_s``, ``ratio``,
    ``same_points`` (same targets and values in the same order), ``same_accuracy``, ``max_abs_diff``,
    ``samples``, ``cpus``."""
    from weightlab._tf import headless
    from weightlab.core.sweeps import SweepSpec

    with tempfile.TemporaryDirectory() as tmp:
        model, _, _, path, data = saved_residual_cnn(tmp)
        kernels = _kernels(model)
        spec = SweepSpec(op="clip", param="threshold", targets=tuple(kernels), values=THRESHOLDS, mode="each")
        t0 = time.perf_counter()
        one = headless.sweep(path, data, spec, workers=1)
        one_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        many = headless.sweep(path, data, spec, workers=WORKERS)
        many_s = time.perf_counter() - t0
    same_points = [(p.target, p.value) for p in one.points] == [(p.target, p.value) for p in many.points]
    diff = max(abs(a.accuracy - b.accuracy) for a, b in zip(one.points, many.points))
    assert same_points and diff <= 1e-6, (same_points, diff)
    return [
        {
            "benchmark": f"each clip sweep x {len(THRESHOLDS)} values, every conv and dense kernel ({len(kernels)})",
            "points": len(one.points),
            "one_process_s": round(one_s, 2),
            "workers": WORKERS,
            "workers_s": round(many_s, 2),
            "ratio": round(one_s / many_s, 2),
            "same_points": same_points,
            "same_accuracy": diff <= 1e-6,
            "max_abs_diff": diff,
            "samples": one.baseline.num_samples,
            "cpus": os.cpu_count(),
        }
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""Benchmark (e): large-tensor edits against NumPy's reference for the same operation.

One float32 tensor the shape of VGG16's ``fc1/kernel`` (25088 x 4096, 102.8M
values; normal values, std 0.01, seed 0: about three values share each float32
magnitude near the median, so pruning to a sparsity meets ties) in an in-memory
model. Each edit goes through the public path, ``EditSession.apply`` on a fresh
session whose stored values are already loaded, against the plain NumPy
expression that gives the same result (asserted bit for bit, ``-0.0`` and
``NaN`` payloads included):

- clip to [-0.01, 0.01]: ``np.clip(w, lo, hi)``;
- zero range [-0.005, 0.005]: ``np.where((w >= lo) & (w <= hi), 0, w)``;
- scale by 0.5: ``w * k``;
- prune by threshold 0.00674: ``np.where(np.abs(w) <= t, 0, w)``;
- prune to 50 % sparsity: ``np.partition`` of ``|w|`` for the k-th smallest
  magnitude ``v``, then zero ``|w| < v`` and the first entries equal to ``v``
  until exactly ``k`` are zero (the op's tie rule: earlier position first).

Both sides run once untimed first (the results are compared, and the first
touch of fresh 411 MB results, which can cost most of a second while the
kernel finds pages, is paid there). Then both are timed in this process,
interleaved (the side that goes first alternates between repeats), and the
best of the repeats is reported: the machine is shared. Peak memory per
edit (NumPy's allocations as ``tracemalloc`` sees them, result included) is
measured in a separate untimed pass. Target: WeightLab at most 1.5 x NumPy.

::

    python benchmarks/bench_edits.py [--repeats 3] [--only clip,scale] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weightlab.core.edits import Clip, Edit, PruneMagnitude, Scale, ZeroRange
from weightlab.core.model import ModelFile
from weightlab.core.session import EditSession

SHAPE = (25088, 4096)
TENSOR = "fc1/kernel"
TARGET_RATIO = 1.5


@dataclass(frozen=True)
class Case:
    name: str
    edit: Edit
    numpy: Callable[[np.ndarray], np.ndarray]
    expression: str


def _prune_to_sparsity(w: np.ndarray, sparsity: float) -> np.ndarray:
    """NumPy reference: zero the ``floor(sparsity * n)`` smallest ``|w|``, earlier position first on ties."""
    a = np.abs(w)
    k = math.floor(sparsity * a.size)
    v = np.partition(a, k - 1, axis=None)[k - 1]
    mask = a < v
    ties = np.flatnonzero(a == v)[: k - np.count_nonzero(mask)]
    mask.flat[ties] = True
    return np.where(mask, w.dtype.type(0), w)


def cases() -> list[Case]:
    f = np.float32
    return [
        Case("clip", Clip(target=TENSOR, min=-0.01, max=0.01),
             lambda w: np.clip(w, f(-0.01), f(0.01)), "np.clip(w, lo, hi)"),
        Case("zero range", ZeroRange(target=TENSOR, min=-0.005, max=0.005),
             lambda w: np.where((w >= f(-0.005)) & (w <= f(0.005)), f(0), w),
             "np.where((w >= lo) & (w <= hi), 0, w)"),
        Case("scale", Scale(target=TENSOR, factor=0.5), lambda w: w * f(0.5), "w * k"),
        Case("prune by threshold", PruneMagnitude(target=TENSOR, threshold=0.00674),
             lambda w: np.where(np.abs(w) <= f(0.00674), f(0), w), "np.where(np.abs(w) <= t, 0, w)"),
        Case("prune to 50 % sparsity", PruneMagnitude(target=TENSOR, sparsity=0.5),
             lambda w: _prune_to_sparsity(w, 0.5), "np.partition(|w|, k-1), then zero |w| < v and the first ties"),
    ]


def make_tensor(seed: int = 0) -> np.ndarray:
    """The benchmark tensor: float32, :data:`SHAPE`, normal with std 0.01, read-only."""
    w = np.random.default_rng(seed).standard_normal(SHAPE, dtype=np.float32)
    w *= np.float32(0.01)
    w.flags.writeable = False
    return w


def make_model(w: np.ndarray) -> ModelFile:
    """An in-memory model holding (a copy of) ``w`` as ``fc1/kernel`` of a Dense layer."""
    return ModelFile.from_arrays({TENSOR: w}, "vgg16-fc1", classes={"fc1": "Dense"})


def _loaded_session(model: ModelFile) -> EditSession:
    """A fresh session whose stored values are already read: only the edit is measured."""
    s = EditSession(model)
    s.array(TENSOR)
    return s


def _weightlab(model: ModelFile, edit: Edit) -> tuple[float, np.ndarray]:
    s = _loaded_session(model)
    t0 = time.perf_counter()
    s.apply(edit)
    return time.perf_counter() - t0, s.array(TENSOR)


def _numpy(w: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn(w)
    return time.perf_counter() - t0, out


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _peak_mb(fn: Callable[[], object]) -> float:
    """Peak NumPy/Python memory allocated while ``fn`` runs (its result included), in MB."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del result
    return peak / 1e6


def run(repeats: int = 3, only: set[str] | None = None, memory: bool = True) -> list[dict]:
    """One row per edit: best-of-``repeats`` seconds of both sides, their ratio, exactness, peak memory."""
    w = make_tensor()
    model = make_model(w)
    chosen = [c for c in cases() if only is None or c.name in only]
    exact: dict[str, bool] = {}
    for c in chosen:  # untimed: checks the results, and warms the allocator up for both sides
        exact[c.name] = _same_bits(_weightlab(model, c.edit)[1], c.numpy(w))
        if not exact[c.name]:
            raise AssertionError(f"{c.name}: WeightLab's result differs from NumPy's {c.expression}")
    times: dict[str, tuple[list[float], list[float]]] = {c.name: ([], []) for c in chosen}
    for rep in range(repeats):
        for c in chosen:
            wl_runs, np_runs = times[c.name]
            sides = [(wl_runs, lambda c=c: _weightlab(model, c.edit)), (np_runs, lambda c=c: _numpy(w, c.numpy))]
            for runs, fn in sides if rep % 2 == 0 else sides[::-1]:
                gc.collect()
                runs.append(fn()[0])  # the result is dropped at once: one held at a time
    rows = []
    tensor_mb = w.nbytes / 1e6
    for c in chosen:
        wl_runs, np_runs = times[c.name]
        wl, ref = min(wl_runs), min(np_runs)
        row = {
            "benchmark": f"large-tensor edit, {c.name}",
            "edit": c.edit.describe(),
            "numpy_expression": c.expression,
            "weightlab_s": round(wl, 3),
            "numpy_s": round(ref, 3),
            "ratio": round(wl / ref, 2),
            "target": f"<= {TARGET_RATIO}x NumPy",
            "met": wl <= TARGET_RATIO * ref,
            "exact": exact[c.name],
            "weightlab_runs_s": [round(x, 3) for x in wl_runs],
            "numpy_runs_s": [round(x, 3) for x in np_runs],
            "tensor_mb": round(tensor_mb, 1),
        }
        if memory:
            s = _loaded_session(model)
            row["weightlab_peak_mb"] = round(_peak_mb(lambda c=c, s=s: s.apply(c.edit)), 1)
            del s
            row["numpy_peak_mb"] = round(_peak_mb(lambda c=c: c.numpy(w)), 1)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = ["edit", "NumPy (best)", "WeightLab (best)", "ratio", "target", "result", "exact", "peak memory WL / NumPy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        mem = f"{r['weightlab_peak_mb']} / {r['numpy_peak_mb']} MB" if "weightlab_peak_mb" in r else "-"
        lines.append(
            f"| {r['benchmark'].removeprefix('large-tensor edit, ')} | {r['numpy_s']:.3f} s | {r['weightlab_s']:.3f} s "
            f"| {r['ratio']}x | {r['target']} | {'met' if r['met'] else '**not met**'} "
            f"| {'bit-identical' if r['exact'] else 'NO'} | {mem} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", help="comma-separated edit names (clip, zero range, scale, ...)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    rows = run(args.repeats, only, memory=not args.no_memory)
    print(table(rows))
    for r in rows:
        print(f"- {r['benchmark']}: WeightLab runs {r['weightlab_runs_s']}, NumPy runs {r['numpy_runs_s']}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark (a): time to the first exact histogram of a model's largest tensor.

For ``keras.applications`` ResNet50 and VGG16 (``weights=None``) saved as
``.h5`` and ``.keras`` (cached in ``benchmarks/.cache``), both sides run in a
fresh Python process and are timed from spawning it to its exit (interpreter
start and imports included):

- WeightLab: ``python -m weightlab inspect PATH --tensor NAME --bins 100 --json``
  (reads only that tensor; prints counts, edges and statistics);
- the path users take today: ``import keras``, ``keras.saving.load_model(path)``,
  ``np.histogram`` of that weight (TensorFlow imported, whole model built).

WeightLab's counts and edges must equal the alternative's ``np.histogram``
(asserted). Reported: medians of several runs each. A second script,
``python benchmarks/bench_histogram.py --phases PATH NAME``, prints where
WeightLab's time goes (imports, open, read, summary) in one fresh process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ensure_models, last_json, median, run_timed

TARGETS = {"ResNet50": 10.0, "VGG16": 6.0}
BINS = 100

_ALTERNATIVE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
path, layer, weight, bins = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = keras.saving.load_model(path)
w = next(v for v in model.get_layer(layer).weights if v.path.split("/")[-1] == weight)
counts, edges = np.histogram(np.asarray(w.numpy()), bins=bins)
print(json.dumps({"counts": counts.tolist(), "edges": edges.tolist()}))
"""


def largest_tensor(path: Path) -> str:
    """Canonical name of the largest tensor (the first one in model order on a tie)."""
    import weightlab

    s = weightlab.open(path)
    try:
        return max(s.model.tensors.values(), key=lambda t: t.size).name
    finally:
        s.model.close()


def phases(path: str, name: str) -> dict[str, float]:
    """Where the time goes in one process (call from a fresh interpreter; imports are timed)."""
    t0 = time.perf_counter()
    import numpy  # noqa: F401

    t1 = time.perf_counter()
    import h5py  # noqa: F401

    t2 = time.perf_counter()
    import weightlab
    from weightlab.core.stats import _blocked_stats, _parallel_histogram

    t3 = time.perf_counter()
    s = weightlab.open(path)
    t4 = time.perf_counter()
    a = s.array(name)
    t5 = time.perf_counter()
    st = _blocked_stats(a.ravel(), None)
    t6 = time.perf_counter()
    lo, hi = a.dtype.type(st.min), a.dtype.type(st.max)
    _parallel_histogram(a.ravel(), BINS, (lo, hi), None, inside=True)
    t7 = time.perf_counter()
    return {
        "import numpy": t1 - t0,
        "import h5py": t2 - t1,
        "import weightlab": t3 - t2,
        "open (tree, metadata)": t4 - t3,
        "read tensor": t5 - t4,
        "min/max + stats + percentile tails": t6 - t5,
        "binning": t7 - t6,
    }


def run(repeats: int = 5, alt_repeats: int = 3) -> list[dict]:
    """One row per (model, format); see the module docstring."""
    import sys as _sys

    paths = ensure_models()
    rows = []
    for (model, ext), path in paths.items():
        name = largest_tensor(path)
        layer, weight = name.split("/", 1)
        wl_cmd = [_sys.executable, "-m", "weightlab", "inspect", str(path), "--tensor", name,
                  "--bins", str(BINS), "--json"]
        alt_cmd = [_sys.executable, "-c", _ALTERNATIVE, str(path), layer, weight, str(BINS)]
        run_timed(wl_cmd)  # page cache warm for both sides
        wl_times, alt_times, got, want = [], [], None, None
        for _ in range(alt_repeats):
            t, out = run_timed(alt_cmd)
            alt_times.append(t)
            want = last_json(out)
        for _ in range(repeats):
            t, out = run_timed(wl_cmd)
            wl_times.append(t)
            got = last_json(out)
        exact = got["counts"] == want["counts"] and got["edges"] == want["edges"]
        assert exact, f"{path}: counts differ from np.histogram"
        wl_s, alt_s = median(wl_times), median(alt_times)
        target = TARGETS[model]
        rows.append(
            {
                "benchmark": f"first exact histogram, {model} {ext} ({name}, {got['dtype']} "
                f"{'x'.join(map(str, got['shape']))})",
                "weightlab": "fresh process: weightlab inspect --tensor --bins 100 --json",
                "weightlab_s": round(wl_s, 3),
                "weightlab_runs_s": [round(t, 3) for t in wl_times],
                "alternative": "fresh process: import keras, load_model, np.histogram",
                "alternative_s": round(alt_s, 3),
                "alternative_runs_s": [round(t, 3) for t in alt_times],
                "ratio": round(alt_s / wl_s, 1),
                "target": f">= {target:g}x",
                "met": alt_s / wl_s >= target,
                "exact": exact,
            }
        )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--phases":
        print(json.dumps(phases(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(run(), indent=2))

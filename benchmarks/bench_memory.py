"""Benchmark (d): peak memory (VmHWM) opening VGG16 and showing its largest tensor, fresh process.

Stages, each measured as the process's resident-memory high-water mark
(``VmHWM`` in ``/proc/self/status``; ``ru_maxrss`` elsewhere) right after it:

1. baseline: interpreter + ``weightlab`` (numpy, h5py) imported;
2. open: ``weightlab.open(vgg16.h5)`` (the tree only: no tensor data read);
3. show, core path: read ``fc1/kernel`` (411 MB) + histogram (100 bins) + statistics
   (:func:`weightlab.core.stats.summarize`, what ``weightlab inspect`` does);
4. show, GUI worker path (separate fresh process, PySide6 imported, no window):
   :func:`weightlab.gui.tensor_worker.compute_view`, which the window runs for
   the histogram, heatmap image, norms and brush.

Target: peak while showing ``fc1/kernel`` under 1.6 x tensor bytes + 250 MB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ensure_models, last_json, run_timed

TENSOR = "fc1/kernel"

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from benchmarks.bench_memory import peak_mb
mode, path = sys.argv[1], sys.argv[2]
out = {}
import numpy, h5py, weightlab
from weightlab.core.stats import summarize
if mode == "gui":
    from weightlab.gui.tensor_worker import TensorRequest, compute_view
out["baseline_mb"] = peak_mb()
s = weightlab.open(path)
out["open_mb"] = peak_mb()
info = s.model.tensor("fc1/kernel")
out["tensor_mb"] = info.nbytes / 1e6
t0 = time.perf_counter()
if mode == "core":
    counts, edges, st = summarize(s.array(info.name), 100)
else:
    view = compute_view(TensorRequest(generation=1, name=info.name, source=s, bins=100,
                                      edited=False, norms_of=info.name, size=info.size))
out["show_s"] = time.perf_counter() - t0
out["show_mb"] = peak_mb()
print(json.dumps(out))
"""


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB (10^6 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def measure(mode: str, path: Path) -> dict:
    """Run the stages in a fresh process (``mode``: ``"core"`` or ``"gui"``)."""
    root = str(Path(__file__).resolve().parents[1])
    _, out = run_timed([sys.executable, "-c", _CHILD, mode, str(path), root], timeout=900)
    return last_json(out)


def run(gui: bool = True) -> list[dict]:
    """Rows for the core path and (``gui``) the GUI worker path."""
    path = ensure_models(("VGG16",), (".h5",))[("VGG16", ".h5")]
    rows = []
    for mode in ("core", "gui") if gui else ("core",):
        m = measure(mode, path)
        limit = 1.6 * m["tensor_mb"] + 250
        what = "read + summarize (histogram + stats)" if mode == "core" else "GUI compute_view"
        rows.append(
            {
                "benchmark": f"peak memory showing VGG16 fc1/kernel, {what}",
                "baseline_mb": round(m["baseline_mb"], 1),
                "open_mb": round(m["open_mb"], 1),
                "show_mb": round(m["show_mb"], 1),
                "show_s": round(m["show_s"], 2),
                "tensor_mb": round(m["tensor_mb"], 1),
                "limit_mb": round(limit, 1),
                "target": f"< 1.6 x {m['tensor_mb']:.0f} MB + 250 MB = {limit:.0f} MB",
                "met": m["show_mb"] < limit,
            }
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""Benchmark (f): the GUI event loop while a large-tensor edit, an undo or a step switch runs.

The tensor and the five edits of benchmark (e) (:mod:`benchmarks.bench_edits`):
a float32 tensor the shape of VGG16's ``fc1/kernel`` (25088 x 4096, 102.8M
values, normal, seed 0) in an in-memory model (``ModelFile.from_arrays``);
clip, zero range, scale, prune by threshold, prune to 50 % sparsity. Two
history changes replay the prune to 50 % sparsity (the slowest edit):

- undo, in a session with history budget 0 (no past state kept) and steps
  [prune to 50 %, scale 0.5]: going back to step 1 replays the prune;
- switching step 1 off, in a session with steps [scale 0.5, prune to 50 %]:
  the prune is replayed on the stored values.

A ``QApplication`` (offscreen) and a 5 ms ``QTimer`` on the GUI thread record
their ticks. Each change runs once through
:class:`weightlab.gui.edit_runner.QtEditRunner` (the window's way: prepared on
the runner's thread, committed on the GUI thread) and once on the GUI thread
(``EditSession.apply``/``goto``/``set_step_enabled`` called from a timer
event, the way before). Reported per change: the longest gap between two
ticks from the change's start to its landing (the stall; target under
100 ms), the time from ``submit`` to the commit having landed, and for the
edits NumPy's reference expression for the same result (timed in the same
run, on the GUI thread outside the event loop) with the ratio (target at most
1.5 x). Each change runs ``--repeats`` times, the three ways interleaved;
times are the best run, stalls the worst. Also the longest gap while idle
(the timer's own jitter on this machine).

::

    python benchmarks/bench_edit_stall.py [--repeats 3] [--only clip,undo] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.bench_edits import TENSOR, cases, make_model, make_tensor
from weightlab.core.edits import PruneMagnitude, Scale
from weightlab.core.model import ModelFile
from weightlab.core.session import ApplyEdit, Change, EditSession, Goto, SetStepEnabled

TICK_MS = 5
#: Ticks recorded before a change starts and after it lands (ms).
MARGIN_MS = 60
TARGET_STALL_MS = 100.0
TARGET_RATIO = 1.5


@dataclass(frozen=True)
class Run:
    """One change: a fresh session (stored values loaded, history set up) and the change."""

    name: str
    setup: Callable[[ModelFile], EditSession]
    change: Change
    on_gui_thread: Callable[[EditSession], object]
    numpy: Callable[[np.ndarray], np.ndarray] | None = None
    expression: str = ""


def _loaded(model: ModelFile, budget: int | None = None, edits=()) -> EditSession:
    s = EditSession(model, history_budget_bytes=budget)
    s.array(TENSOR)
    for e in edits:
        s.apply(e)
    return s


def runs() -> list[Run]:
    out = [
        Run(c.name, _loaded, ApplyEdit(c.edit), lambda s, c=c: s.apply(c.edit), c.numpy, c.expression)
        for c in cases()
    ]
    prune, scale = PruneMagnitude(target=TENSOR, sparsity=0.5), Scale(target=TENSOR, factor=0.5)
    out.append(Run("undo (replays prune to 50 %)", lambda m: _loaded(m, 0, (prune, scale)), Goto(1),
                   lambda s: s.goto(1)))
    out.append(Run("switch step 1 off (replays prune to 50 %)", lambda m: _loaded(m, None, (scale, prune)),
                   SetStepEnabled(0, False), lambda s: s.set_step_enabled(0, False)))
    return out


class Heartbeat:
    """A 5 ms timer on the GUI thread; :meth:`measure` runs one change inside its own event loop."""

    def __init__(self):
        from PySide6.QtCore import QEventLoop, Qt, QTimer

        self._loop = QEventLoop()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._ticks: list[float] = []
        self._timer.timeout.connect(lambda: self._ticks.append(time.perf_counter()))
        self._single = QTimer.singleShot

    def measure(self, start: Callable[[Callable[[], None]], None]) -> dict:
        """Call ``start(done)`` from a timer event; ``done()`` when the change has landed.

        Returns the longest tick gap (ms) overlapping [start, landing], and
        the seconds from start to landing.
        """
        marks: dict[str, float] = {}

        def begin():
            marks["start"] = time.perf_counter()
            start(done)

        def done():
            marks["end"] = time.perf_counter()
            self._single(MARGIN_MS, self._loop.quit)

        self._ticks = []
        self._timer.start()
        self._single(MARGIN_MS, begin)
        self._loop.exec()
        self._timer.stop()
        t, t0, t1 = self._ticks, marks["start"], marks["end"]
        gaps = [b - a for a, b in zip(t, t[1:], strict=False) if b >= t0 and a <= t1]
        return {"stall_ms": round(max(gaps) * 1e3, 1), "seconds": t1 - t0}

    def idle(self, ms: int = 500) -> float:
        """Longest gap (ms) with nothing running."""
        self._ticks = []
        self._timer.start()
        self._single(ms, self._loop.quit)
        self._loop.exec()
        self._timer.stop()
        t = self._ticks
        return round(max(b - a for a, b in zip(t, t[1:], strict=False)) * 1e3, 1)


def run(repeats: int = 3, only: set[str] | None = None) -> list[dict]:
    """One row per change: stalls and times of the runner and of the GUI thread, NumPy's time."""
    from PySide6.QtWidgets import QApplication

    from weightlab.gui.edit_runner import QtEditRunner

    app = QApplication.instance() or QApplication([])
    w = make_tensor()
    model = make_model(w)
    chosen = [r for r in runs() if only is None or any(o in r.name for o in only)]
    beat = Heartbeat()
    runner = QtEditRunner()
    idle = beat.idle()
    results: dict[str, dict[str, list]] = {r.name: {"runner": [], "gui": [], "numpy": []} for r in chosen}
    try:
        for rep in range(repeats):
            for r in chosen:
                sides = ["runner", "gui"] + (["numpy"] if r.numpy else [])
                for side in sides if rep % 2 == 0 else sides[::-1]:
                    gc.collect()
                    if side == "numpy":
                        t0 = time.perf_counter()
                        out = r.numpy(w)
                        results[r.name]["numpy"].append(time.perf_counter() - t0)
                        del out
                        continue
                    s = r.setup(model)
                    if side == "gui":
                        m = beat.measure(lambda done, s=s, r=r: (r.on_gui_thread(s), done()))
                    else:
                        errors: list[str] = []
                        runner.failed.connect(errors.append)

                        def start(done, s=s, r=r):
                            runner.finished.connect(done)
                            if not runner.submit(s, r.change, r.name):
                                raise RuntimeError("the runner is busy")

                        try:
                            m = beat.measure(start)
                        finally:
                            runner.finished.disconnect()
                            runner.failed.disconnect()
                        if errors:
                            raise RuntimeError(f"{r.name}: {errors[0]}")
                    results[r.name][side].append(m)
                    del s
    finally:
        runner.shutdown()
    rows = []
    for r in chosen:
        res = results[r.name]
        row = {
            "benchmark": f"event loop during a large-tensor change, {r.name}",
            "runner_stall_ms": max(m["stall_ms"] for m in res["runner"]),
            "runner_s": round(min(m["seconds"] for m in res["runner"]), 3),
            "gui_thread_stall_ms": max(m["stall_ms"] for m in res["gui"]),
            "gui_thread_s": round(min(m["seconds"] for m in res["gui"]), 3),
            "stall_target": f"< {TARGET_STALL_MS:.0f} ms",
            "stall_met": max(m["stall_ms"] for m in res["runner"]) < TARGET_STALL_MS,
            "runner_stalls_ms": [m["stall_ms"] for m in res["runner"]],
            "gui_thread_stalls_ms": [m["stall_ms"] for m in res["gui"]],
            "runner_runs_s": [round(m["seconds"], 3) for m in res["runner"]],
            "gui_thread_runs_s": [round(m["seconds"], 3) for m in res["gui"]],
            "idle_gap_ms": idle,
        }
        if res["numpy"]:
            ref = min(res["numpy"])
            row |= {
                "numpy_expression": r.expression,
                "numpy_s": round(ref, 3),
                "numpy_runs_s": [round(x, 3) for x in res["numpy"]],
                "ratio": round(row["runner_s"] / ref, 2),
                "ratio_target": f"<= {TARGET_RATIO}x NumPy",
                "ratio_met": row["runner_s"] <= TARGET_RATIO * ref,
            }
        rows.append(row)
    del app
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = ["change", "longest stall, runner", "longest stall, GUI thread (before)", "runner: start to landed",
            "NumPy (best)", "ratio", "stall < 100 ms", "ratio <= 1.5x"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        np_s = f"{r['numpy_s']:.3f} s" if "numpy_s" in r else "-"
        ratio = f"{r['ratio']}x" if "ratio" in r else "-"
        ratio_met = ("met" if r["ratio_met"] else "**not met**") if "ratio_met" in r else "-"
        lines.append(
            f"| {r['benchmark'].removeprefix('event loop during a large-tensor change, ')} "
            f"| {r['runner_stall_ms']} ms | {r['gui_thread_stall_ms']} ms | {r['runner_s']:.3f} s "
            f"| {np_s} | {ratio} | {'met' if r['stall_met'] else '**not met**'} | {ratio_met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated parts of change names (clip, undo, switch...)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    rows = run(args.repeats, {o.strip() for o in args.only.split(",") if o.strip()} or None)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows))
        if rows:
            print(f"\nThe {TICK_MS} ms timer's longest gap with nothing running: {rows[0]['idle_gap_ms']} ms")
    return 0 if all(r["stall_met"] and r.get("ratio_met", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

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
1.5 x). Each change runs ``--repeats`` times, the ways interleaved;
times are the best run, stalls the worst. Also the longest gap while idle
(the timer's own jitter on this machine).

The third way, "window" (:class:`WindowSide`), is what a user sees: the
main window (engine off) showing the tensor, the change started by
``apply_edit``/``undo``/``set_step_enabled``, and the stall measured from
the start until the window has settled: the step landed, the histogram,
heatmap and norm plots show a view computed after it, the model tree's
sparsity recount is done and the thread pool is idle. That adds the
views' statistics, histogram and heatmap (pool threads) and the tree's
recount, which compete with the window's thread for Python's interpreter
lock. Reported: its longest stall, the time to landed and to settled.

::

    python benchmarks/bench_edit_stall.py [--repeats 3] [--only clip,undo] [--ways runner,gui,window] [--json]
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
from typing import Any

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
    in_window: Callable[[Any], bool]
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
        Run(c.name, _loaded, ApplyEdit(c.edit), lambda s, c=c: s.apply(c.edit),
            lambda w, c=c: w.apply_edit(c.edit), c.numpy, c.expression)
        for c in cases()
    ]
    prune, scale = PruneMagnitude(target=TENSOR, sparsity=0.5), Scale(target=TENSOR, factor=0.5)
    out.append(Run("undo (replays prune to 50 %)", lambda m: _loaded(m, 0, (prune, scale)), Goto(1),
                   lambda s: s.goto(1), lambda w: w.undo()))
    out.append(Run("switch step 1 off (replays prune to 50 %)", lambda m: _loaded(m, None, (scale, prune)),
                   SetStepEnabled(0, False), lambda s: s.set_step_enabled(0, False),
                   lambda w: w.set_step_enabled(0, False)))
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

    def measure(self, start: Callable[[Callable[..., None]], None]) -> dict:
        """Call ``start(done)`` from a timer event; ``done(**times)`` when the change has landed (or settled).

        Returns the longest tick gap (ms) overlapping [start, done], the
        seconds from start to done, and each of ``times`` (``perf_counter``
        values passed to ``done``) as seconds from start.
        """
        marks: dict[str, float] = {}

        def begin():
            marks["start"] = time.perf_counter()
            start(done)

        def done(**times: float):
            marks["end"] = time.perf_counter()
            marks.update(times)
            self._single(MARGIN_MS, self._loop.quit)

        self._ticks = []
        self._timer.start()
        self._single(MARGIN_MS, begin)
        self._loop.exec()
        self._timer.stop()
        t, t0, t1 = self._ticks, marks["start"], marks["end"]
        gaps = [b - a for a, b in zip(t, t[1:], strict=False) if b >= t0 and a <= t1]
        extra = {k: v - t0 for k, v in marks.items() if k not in ("start", "end")}
        return {"stall_ms": round(max(gaps) * 1e3, 1), "seconds": t1 - t0} | extra

    def wait(self, settled: Callable[[], bool], timeout_s: float = 300.0) -> None:
        """Run the event loop (without ticks) until ``settled()``, polled every tick; raise on timeout."""
        from PySide6.QtCore import QTimer

        end = time.perf_counter() + timeout_s
        poll = QTimer()
        poll.setInterval(TICK_MS)

        def check():
            if settled() or time.perf_counter() > end:
                poll.stop()
                self._loop.quit()

        poll.timeout.connect(check)
        poll.start()
        self._loop.exec()
        if not settled():
            raise RuntimeError(f"the window did not settle within {timeout_s:.0f} s")

    def idle(self, ms: int = 500) -> float:
        """Longest gap (ms) with nothing running."""
        self._ticks = []
        self._timer.start()
        self._single(ms, self._loop.quit)
        self._loop.exec()
        self._timer.stop()
        t = self._ticks
        return round(max(b - a for a, b in zip(t, t[1:], strict=False)) * 1e3, 1)


class WindowSide:
    """The main window (engine off, 1400 x 900) showing the tensor; a change starts as a user's would.

    :meth:`show` gives the window a run's session and waits until it has
    settled; :meth:`start` starts the run's change through the window
    (``apply_edit``, ``undo``, ``set_step_enabled``) and calls ``done`` when
    the window has settled again: the change has landed, the views show a
    view computed after it (histogram, heatmap, norms handed to the plots,
    ``viewShown`` emitted), the model tree's sparsity recount is done and the
    thread pool (views, tree) is idle. The times passed to ``done``:
    ``landed`` (the step committed, the window no longer busy).
    """

    def __init__(self, beat: Heartbeat):
        from PySide6.QtCore import QThreadPool

        from weightlab.gui.engine_adapter import EngineAdapter
        from weightlab.gui.main_window import MainWindow

        self.beat = beat
        self.pool = QThreadPool.globalInstance()
        self.w = MainWindow(engine=EngineAdapter(enabled=False))
        self.w.resize(1400, 900)
        self.w.show()
        self._shown = 0
        self.w.viewShown.connect(self._on_shown)

    def _on_shown(self, _name: str) -> None:
        self._shown += 1

    def settled(self, shown_after: int) -> bool:
        """True when no change runs, a view newer than ``shown_after`` views is on screen and nothing is pending."""
        w = self.w
        v = w.histogram.view
        return (
            not w.busy
            and self._shown > shown_after
            and w.view_settled
            and v is not None
            and v.request.source is w.session
            and w.heatmap.view is v
            and w.tree.model_sparsity is not None
            and self.pool.activeThreadCount() == 0
        )

    def show(self, session: EditSession) -> None:
        """Show ``session`` (its tensor current) and wait until the window has settled."""
        before = self._shown
        self.w.set_session(session)
        self.beat.wait(lambda: self.settled(before))
        self.pool.waitForDone()

    def start(self, r: Run, done: Callable[..., None]) -> None:
        """Start ``r``'s change in the window; ``done(landed=...)`` once the window has settled after it."""
        from PySide6.QtCore import QTimer

        before = self._shown
        marks: dict[str, float] = {}
        poll = QTimer(self.w)
        poll.setInterval(TICK_MS)

        def check():
            if "landed" not in marks and not self.w.busy:
                marks["landed"] = time.perf_counter()
            if self.settled(before):
                poll.stop()
                poll.deleteLater()
                done(**marks)

        poll.timeout.connect(check)
        if not r.in_window(self.w):
            raise RuntimeError(f"{r.name}: the window did not start the change")
        if not self.w.busy:
            raise RuntimeError(f"{r.name}: the change did not run off the window's thread")
        poll.start()

    def clear(self) -> None:
        """Show no session (its memory is freed; a window with none asks nothing on closing)."""
        self.w.set_session(None)
        self.pool.waitForDone()

    def close(self) -> None:
        """Drop the session and close the window."""
        self.clear()
        self.w.close()
        self.w.deleteLater()


WAYS = ("runner", "gui", "window")


def run(repeats: int = 3, only: set[str] | None = None, ways: tuple[str, ...] = WAYS) -> list[dict]:
    """One row per change: stalls and times of the runner, the GUI thread and the window, NumPy's time.

    ``ways``: which of :data:`WAYS` to measure (the rows hold only their
    fields; NumPy is timed whenever the runner is).
    """
    unknown = set(ways) - set(WAYS)
    if unknown:
        raise ValueError(f"unknown ways {sorted(unknown)}; choose from {WAYS}")
    from PySide6.QtWidgets import QApplication

    from weightlab.gui.edit_runner import QtEditRunner

    app = QApplication.instance() or QApplication([])
    w = make_tensor()
    model = make_model(w)
    chosen = [r for r in runs() if only is None or any(o in r.name for o in only)]
    beat = Heartbeat()
    runner = QtEditRunner()
    idle = beat.idle()
    window = WindowSide(beat) if "window" in ways else None
    results: dict[str, dict[str, list]] = {
        r.name: {"runner": [], "gui": [], "window": [], "numpy": []} for r in chosen
    }
    try:
        for rep in range(repeats):
            for r in chosen:
                sides = [w for w in WAYS if w in ways] + (["numpy"] if r.numpy and "runner" in ways else [])
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
                    elif side == "window" and window is not None:
                        window.show(s)
                        m = beat.measure(lambda done, r=r: window.start(r, done))
                        window.clear()
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
        if window is not None:
            window.close()
    rows = []
    for r in chosen:
        res = results[r.name]
        row: dict[str, Any] = {
            "benchmark": f"event loop during a large-tensor change, {r.name}",
            "stall_target": f"< {TARGET_STALL_MS:.0f} ms",
            "idle_gap_ms": idle,
        }
        if res["runner"]:
            row |= {
                "runner_stall_ms": max(m["stall_ms"] for m in res["runner"]),
                "runner_s": round(min(m["seconds"] for m in res["runner"]), 3),
                "runner_stalls_ms": [m["stall_ms"] for m in res["runner"]],
                "runner_runs_s": [round(m["seconds"], 3) for m in res["runner"]],
            }
        if res["gui"]:
            row |= {
                "gui_thread_stall_ms": max(m["stall_ms"] for m in res["gui"]),
                "gui_thread_s": round(min(m["seconds"] for m in res["gui"]), 3),
                "gui_thread_stalls_ms": [m["stall_ms"] for m in res["gui"]],
                "gui_thread_runs_s": [round(m["seconds"], 3) for m in res["gui"]],
            }
        if res["window"]:
            row |= {
                "window_stall_ms": max(m["stall_ms"] for m in res["window"]),
                "window_landed_s": round(min(m["landed"] for m in res["window"]), 3),
                "window_settled_s": round(min(m["seconds"] for m in res["window"]), 3),
                "window_stalls_ms": [m["stall_ms"] for m in res["window"]],
                "window_landed_runs_s": [round(m["landed"], 3) for m in res["window"]],
                "window_settled_runs_s": [round(m["seconds"], 3) for m in res["window"]],
            }
        stalls = [row[k] for k in ("runner_stall_ms", "window_stall_ms") if k in row]
        row["stall_met"] = all(x < TARGET_STALL_MS for x in stalls)
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
    """The rows as a Markdown table (a way not measured shows "-")."""
    head = ["change", "longest stall, runner", "longest stall, window (to settled)",
            "longest stall, GUI thread (before)", "runner: start to landed", "window: landed / settled",
            "NumPy (best)", "ratio", "stall < 100 ms", "ratio <= 1.5x"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]

    def ms(r: dict, key: str) -> str:
        return f"{r[key]} ms" if key in r else "-"

    for r in rows:
        np_s = f"{r['numpy_s']:.3f} s" if "numpy_s" in r else "-"
        ratio = f"{r['ratio']}x" if "ratio" in r else "-"
        ratio_met = ("met" if r["ratio_met"] else "**not met**") if "ratio_met" in r else "-"
        runner_s = f"{r['runner_s']:.3f} s" if "runner_s" in r else "-"
        window_s = f"{r['window_landed_s']:.3f} s / {r['window_settled_s']:.3f} s" if "window_settled_s" in r else "-"
        lines.append(
            f"| {r['benchmark'].removeprefix('event loop during a large-tensor change, ')} "
            f"| {ms(r, 'runner_stall_ms')} | {ms(r, 'window_stall_ms')} | {ms(r, 'gui_thread_stall_ms')} "
            f"| {runner_s} | {window_s} "
            f"| {np_s} | {ratio} | {'met' if r['stall_met'] else '**not met**'} | {ratio_met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated parts of change names (clip, undo, switch...)")
    p.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated ways to measure, of {', '.join(WAYS)}")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    ways = tuple(w.strip() for w in args.ways.split(",") if w.strip())
    rows = run(args.repeats, {o.strip() for o in args.only.split(",") if o.strip()} or None, ways)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows))
        if rows:
            print(f"\nThe {TICK_MS} ms timer's longest gap with nothing running: {rows[0]['idle_gap_ms']} ms")
    return 0 if all(r["stall_met"] and r.get("ratio_met", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

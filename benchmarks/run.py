"""Run every benchmark and write ``docs/benchmarks.md``.

::

    python benchmarks/run.py [--quick] [--only a,b,...] [--out docs/benchmarks.md]

(a) first exact histogram (:mod:`benchmarks.bench_histogram`), (b) edit-to-accuracy
(:mod:`benchmarks.bench_eval`), (c) GUI event-loop stall (:mod:`benchmarks.bench_gui`),
(d) peak memory (:mod:`benchmarks.bench_memory`), (e) large-tensor edits against NumPy
(:mod:`benchmarks.bench_edits`), (f) the event loop while a large-tensor edit,
undo or step switch runs (:mod:`benchmarks.bench_edit_stall`), (g) a per-layer clip sensitivity sweep
against the set-weights-and-evaluate loop (:mod:`benchmarks.bench_sweep`), (i) a neuron ablation ranking
of the demo's Dense layer (:mod:`benchmarks.bench_rank`), (j) fine-tuning throughput against
``model.fit`` (:mod:`benchmarks.bench_train`). Every alternative is measured in
the same run. ``--quick`` repeats less. ``--only`` reruns some sections and keeps the others' last
results (from ``docs/benchmarks.json``), each section stamped with when it ran. The cached models live in
``benchmarks/.cache`` (built once, in a child process).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, load_average, machine


def _fmt_s(x) -> str:
    return f"{x:.3f} s" if isinstance(x, float | int) else str(x)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def section_a(rows: list[dict]) -> str:
    body = _table(
        ["case", "WeightLab (median)", "alternative (median)", "ratio", "target", "result", "exact"],
        [
            [r["benchmark"].removeprefix("first exact histogram, "), _fmt_s(r["weightlab_s"]),
             _fmt_s(r["alternative_s"]), f"{r['ratio']}x", r["target"], _met(r["met"]),
             "counts = np.histogram" if r["exact"] else "NO"]
            for r in rows
        ],
    )
    runs = "\n".join(
        f"- {r['benchmark'].removeprefix('first exact histogram, ')}: WeightLab runs {r['weightlab_runs_s']}, "
        f"alternative runs {r['alternative_runs_s']}"
        for r in rows
    )
    return (
        "## (a) Time to the first exact histogram of the largest tensor\n\n"
        "Both sides in a fresh process, timed from spawn to exit. WeightLab: "
        "`python -m weightlab inspect PATH --tensor NAME --bins 100 --json` (histogram and statistics). "
        "Alternative: `import keras; keras.saving.load_model(path)`; `np.histogram` of that weight.\n\n"
        f"{body}\n\nAll runs (seconds):\n\n{runs}\n"
    )


def section_b(rows: list[dict]) -> str:
    body = _table(
        ["edit", "WeightLab (median)", "model.evaluate (median)", "ratio", "target", "result", "mode", "same accuracy"],
        [
            [r["benchmark"].removeprefix("edit-to-accuracy, "), _fmt_s(r["weightlab_s"]),
             _fmt_s(r["alternative_s"]), f"{r['ratio']}x",
             ">= 50x" if "last" in r["benchmark"] else ">= 2x" if "middle" in r["benchmark"] else "-",
             _met(r["ratio"] >= 50) if "last" in r["benchmark"] else
             _met(r["ratio"] >= 2) if "middle" in r["benchmark"] else "-",
             r["mode"], r["same_accuracy"]]
            for r in rows
        ],
    )
    dev = rows[0]["device"] if rows else "?"
    return (
        "## (b) Edit-to-accuracy latency\n\n"
        f"Small residual CNN, 32x32x3, {rows[0]['samples'] if rows else '?'} held-out samples, device {dev} "
        "(see `benchmarks/bench_eval.py`).\n\n" + body + "\n"
    )


def section_c(rows: list[dict]) -> str:
    r = rows[0]
    body = _table(
        ["case", "longest stall", "99th percentile", "target", "result"],
        [[r["benchmark"].removeprefix("longest GUI event-loop stall "), f"{r['weightlab_max_ms']} ms",
          f"{r['weightlab_p99_ms']} ms", r["target"], _met(r["met"])]],
    )
    worst = "\n".join(
        f"- {w['gap_ms']} ms at t={w['at_s']} s; Qt events over 5 ms inside it: "
        + (", ".join(f"{what} {ms} ms" for ms, what in w["events_ms"]) or "none")
        for w in r["worst"]
    )
    return (
        "## (c) Longest GUI event-loop stall\n\n"
        "Real `MainWindow`s offscreen in one event loop, driven one user action per event: window A opens the "
        "demo model with its held-out set; once its baseline is shown it gets an edit every 300 ms, each "
        "evaluated live by the engine worker, while window B opens VGG16 `.h5` (553 MB) and then shows "
        "`fc1/kernel` (102.8M values). A 10 ms `QTimer` heartbeat records the gaps from A's open to the end "
        f"(B opened at t={r['b_opened_s']} s, fc1/kernel shown at t={r['view_shown_s']} s; "
        f"{r['edits_evaluated']}; A's baseline shown: {r['baseline_shown']}).\n\n{body}\n\n"
        f"Longest gaps, with the Qt events (receiver: type) handled inside them:\n\n{worst}\n"
    )


def section_d(rows: list[dict]) -> str:
    body = _table(
        ["path", "baseline (imports)", "after open (tree)", "peak showing fc1/kernel", "time", "target", "result"],
        [[r["benchmark"].removeprefix("peak memory showing VGG16 fc1/kernel, "), f"{r['baseline_mb']} MB",
          f"{r['open_mb']} MB", f"{r['show_mb']} MB", f"{r['show_s']} s", r["target"], _met(r["met"])]
         for r in rows],
    )
    return (
        "## (d) Peak memory, VGG16 `.h5`\n\n"
        "Fresh process each; `VmHWM` (peak resident set) after each stage. "
        "The GUI row runs `weightlab.gui.tensor_worker.compute_view` (what the window computes for "
        "histogram, heatmap, norms and brush) without a window.\n\n" + body + "\n"
    )


def section_e(rows: list[dict]) -> str:
    from benchmarks.bench_edits import table

    runs = "\n".join(
        f"- {r['benchmark'].removeprefix('large-tensor edit, ')}: WeightLab runs {r['weightlab_runs_s']}, "
        f"NumPy runs {r['numpy_runs_s']}"
        for r in rows
    )
    exprs = "\n".join(f"- {r['edit']}: `{r['numpy_expression']}`" for r in rows)
    return (
        "## (e) Large-tensor edits against NumPy\n\n"
        "A float32 tensor of VGG16 `fc1/kernel`'s shape (25088 x 4096, 102.8M values, normal, seed 0) in an "
        "in-memory model; WeightLab is `EditSession.apply(edit)`, NumPy the expression below with the same "
        "result (asserted bit for bit). Both in one process, interleaved, best of the repeats; peak memory "
        "(result included) from `tracemalloc` in a separate pass (see `benchmarks/bench_edits.py`).\n\n"
        f"{table(rows)}\n\nNumPy expressions:\n\n{exprs}\n\nAll runs (seconds):\n\n{runs}\n"
    )


def section_f(rows: list[dict]) -> str:
    from benchmarks.bench_edit_stall import table

    runs = "\n".join(
        f"- {r['benchmark'].removeprefix('event loop during a large-tensor change, ')}: runner stalls "
        f"{r['runner_stalls_ms']} ms, runs {r['runner_runs_s']} s; GUI-thread stalls {r['gui_thread_stalls_ms']} ms, "
        f"runs {r['gui_thread_runs_s']} s; window stalls {r['window_stalls_ms']} ms, landed "
        f"{r['window_landed_runs_s']} s, settled {r['window_settled_runs_s']} s"
        + (f"; NumPy runs {r['numpy_runs_s']} s" if "numpy_runs_s" in r else "")
        for r in rows
    )
    return (
        "## (f) Event loop during a large-tensor edit, undo or step switch\n\n"
        "The tensor and edits of (e); undo (history budget 0) and switching a step off each replay the prune "
        "to 50 %. A 5 ms `QTimer` on the GUI thread; each change through `QtEditRunner` (prepared off the GUI "
        "thread, committed on it), as before on the GUI thread, and in the main window (engine off, the tensor "
        "shown: the stall runs until the window has settled, views redrawn and the tree's sparsity recounted); "
        "NumPy's expression timed in the same run. "
        "Stall: the longest gap between ticks from the change's start to its landing (worst run); times: best "
        f"run (see `benchmarks/bench_edit_stall.py`). Idle gap: {rows[0]['idle_gap_ms'] if rows else '?'} ms.\n\n"
        f"{table(rows)}\n\nAll runs:\n\n{runs}\n"
    )


def section_g(rows: list[dict]) -> str:
    body = _table(
        ["sweep", "points", "WeightLab", "set weights + model.evaluate", "ratio", "target", "result", "same accuracy"],
        [[r["benchmark"].removeprefix("each clip sweep x 8 values, "), r["points"], _fmt_s(r["weightlab_s"]),
          _fmt_s(r["alternative_s"]), f"{r['ratio']}x", r["target"], _met(r["met"]),
          f"{r['same_accuracy']} (max diff {r['max_abs_diff']:.1e})"]
         for r in rows],
    )
    return (
        "## (g) Per-layer clip sensitivity sweep\n\n"
        f"Residual CNN of (b), {rows[0]['samples'] if rows else '?'} held-out samples; `weightlab._tf.headless.sweep` "
        "(mode `each`, clip `threshold` at 8 values, timed from the call: open, baseline and every point) against, "
        "in the same run, `load_model` + for each point `assign` + `model.evaluate` (see `benchmarks/bench_sweep.py`; "
        f"thresholds {rows[0]['thresholds'] if rows else '?'}).\n\n" + body + "\n"
    )


def section_h(rows: list[dict]) -> str:
    body = _table(
        ["sweep", "points", "one process", "workers", "worker processes", "ratio", "same points and accuracy"],
        [[r["benchmark"], r["points"], _fmt_s(r["one_process_s"]), r["workers"], _fmt_s(r["workers_s"]),
          f"{r['ratio']}x", f"{r['same_points'] and r['same_accuracy']} (max diff {r['max_abs_diff']:.1e})"]
         for r in rows],
    )
    return (
        "## (h) The same sweep in worker processes\n\n"
        f"Residual CNN of (b), {rows[0]['samples'] if rows else '?'} held-out samples, the sweep of (g) over every "
        "kernel: `weightlab._tf.headless.sweep(..., workers=1)` against `workers=2` (spawned processes, each timed "
        f"from the call, workers' start-up included; {rows[0]['cpus'] if rows else '?'} CPUs; see "
        "`benchmarks/bench_sweep_parallel.py`).\n\n" + body + "\n"
    )


def section_i(rows: list[dict]) -> str:
    body = _table(
        ["ranking", "points", "WeightLab", "zero a unit + model.evaluate", "ratio", "target", "result",
         "same accuracy"],
        [[r["benchmark"], r["points"], _fmt_s(r["weightlab_s"]), _fmt_s(r["alternative_s"]), f"{r['ratio']}x",
          r["target"], _met(r["met"]), f"{r['same_accuracy']} (max diff {r['max_abs_diff']:.1e})"]
         for r in rows],
    )
    return (
        "## (i) Neuron ablation ranking of the demo's Dense layer\n\n"
        f"The bundled demo, {rows[0]['samples'] if rows else '?'} held-out samples; `weightlab._tf.rank.run_rank` "
        "(zero ablation of each unit alone, then both cumulative curves; median of 3, the model already opened) "
        "against, in the same run, for each unit alone: `assign` a zeroed kernel column and bias + `model.evaluate` "
        "(see `benchmarks/bench_rank.py`; the alternative does not measure the cumulative curves).\n\n" + body + "\n"
    )


def section_j(rows: list[dict]) -> str:
    def weights(r: dict) -> str:
        if r.get("max_abs_diff") is not None:
            return f"max diff {r['max_abs_diff']:.1e} from model.fit"
        n, kept, fit_kept = r.get("masked_zeros"), r.get("zeros_kept"), r.get("fit_zeros_kept")
        if n is None:  # a row from before the counts
            return "masked zeros kept" if kept else "**masked zeros lost**"
        return f"masked zeros kept: WeightLab {kept}/{n}, alternative {fit_kept}/{n}"

    def price(r: dict) -> str:
        if r.get("plain_fit_epoch_s") is None:
            return "-"
        return f"{_fmt_s(r['plain_fit_epoch_s'])}; {r['mask_price_ratio']}x"

    body = _table(
        ["case", "alternative", "WeightLab epoch", "alternative epoch", "samples/s (WeightLab, alternative)",
         "ratio", "target", "result", "CPU s per epoch (WeightLab, alternative; ratio)",
         "whole call (WeightLab, alternative)", "alternative epoch, no op determinism",
         "plain model.fit epoch; price of the masks (WeightLab masked / plain fit)", "weights"],
        [[r["benchmark"].removeprefix("fine-tune throughput, "), r.get("alternative", "model.fit"),
          _fmt_s(r["weightlab_epoch_s"]), _fmt_s(r["fit_epoch_s"]),
          f"{r['weightlab_samples_per_s']}, {r['fit_samples_per_s']}", f"{r['ratio']}x",
          r["target"], _met(r["met"]),
          f"{r['weightlab_epoch_cpu_s']}, {r['fit_epoch_cpu_s']}; {r['cpu_ratio']}x",
          f"{_fmt_s(r['weightlab_call_s'])}, {_fmt_s(r['fit_call_s'])}",
          _fmt_s(r["fit_without_determinism_epoch_s"]), price(r), weights(r)]
         for r in rows],
    )
    runs = "\n".join(
        f"- {r['benchmark'].removeprefix('fine-tune throughput, ')}: WeightLab epochs {r['weightlab_epoch_runs_s']}, "
        f"{r.get('alternative', 'model.fit')} epochs {r['fit_epoch_runs_s']}"
        for r in rows
    )
    first = rows[0] if rows else {}
    return (
        "## (j) Fine-tuning throughput against model.fit\n\n"
        f"The bundled demo CNN on its training split repeated 4 times ({first.get('samples', '?')} training "
        f"images after the 10 % validation split, {first.get('epochs', '?')} epochs, batch "
        f"{first.get('batch_size', '?')}, Adam, "
        f"device {first.get('device', '?')}): `weightlab._tf.headless.finetune` (what `weightlab finetune` runs) "
        "against, in the same run and interleaved, what a user writes: `load_model` + `compile` + `model.fit` "
        "with the same seed, data, batch size and validation split, and op determinism on as the engine has it "
        "(a column times the alternative without it). Plain training is compared with plain `model.fit`. With "
        "masks kept the alternative is what keeps pruned weights at zero with Keras 3 today (TF-MOT does not "
        "support Keras 3): `model.fit` with a callback that re-applies each pruned kernel's mask after every "
        "batch (`on_train_batch_end`: `w.assign(w * mask)`); the weights column counts the masked zeros each "
        "side still has after training. The target applies to each case against its alternative. In the masked "
        "case plain `model.fit` on the same pruned weights (which lets the zeros grow back) is timed too: "
        "WeightLab masked against it is the price of the masks, not a target. An epoch is the time between the "
        "ends of consecutive epochs (epochs 2 onwards: tracing left out; WeightLab's includes everything it "
        "does per epoch), median over every repeat; ratio = WeightLab's throughput / the alternative's; the CPU "
        "column counts this process's CPU seconds per epoch instead, less sensitive to other jobs on a shared "
        "machine (see `benchmarks/bench_train.py`).\n\n"
        f"{body}\n\nAll epochs (seconds):\n\n{runs}\n"
    )


#: Every section: key -> (module, runner(module, quick) -> rows, formatter).
SECTIONS = {
    "a": ("bench_histogram", lambda m, quick: m.run(*((3, 1) if quick else (5, 3))), section_a),
    "b": ("bench_eval", lambda m, quick: m.run(*((2, 1) if quick else (3, 2))), section_b),
    "c": ("bench_gui", lambda m, quick: m.run(), section_c),
    "d": ("bench_memory", lambda m, quick: m.run(), section_d),
    "e": ("bench_edits", lambda m, quick: m.run(3 if quick else 5), section_e),
    "f": ("bench_edit_stall", lambda m, quick: m.run(2 if quick else 3), section_f),
    "g": ("bench_sweep", lambda m, quick: m.run(), section_g),
    "h": ("bench_sweep_parallel", lambda m, quick: m.run(), section_h),
    "i": ("bench_rank", lambda m, quick: m.run(2 if quick else 3), section_i),
    "j": ("bench_train", lambda m, quick: m.run(*((1, 4) if quick else (3, 6))), section_j),
}


def main(argv: list[str] | None = None) -> int:
    import importlib

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (the others keep their last results)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    only = [k for k in args.only.split(",") if k]
    unknown = [k for k in only if k not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    store = args.out.with_suffix(".json")
    previous = json.loads(store.read_text()) if store.exists() else {}
    results: dict[str, list[dict]] = dict(previous.get("results", {}))
    runs: dict[str, dict] = dict(previous.get("runs", {}))
    t0 = time.perf_counter()
    for key in only:
        module, runner, _ = SECTIONS[key]
        load_before = load_average()
        started = datetime.datetime.now().astimezone()
        s0 = time.perf_counter()
        results[key] = runner(importlib.import_module(f"benchmarks.{module}"), args.quick)
        runs[key] = {"at": f"{started:%Y-%m-%d %H:%M %Z}", "seconds": round(time.perf_counter() - s0),
                     "quick": args.quick, "load_before": load_before, "load_after": load_average()}
    m = machine()
    parts = [
        "# Benchmarks\n",
        f"Last run: `python benchmarks/run.py{' --quick' if args.quick else ''} --only {','.join(only)}` "
        f"in {time.perf_counter() - t0:.0f} s. Machine: " + ", ".join(f"{k} {v}" for k, v in m.items())
        + " (a shared machine: other people's jobs ran at the same time, so absolute times vary "
        "from run to run; ratios are of medians measured in the same run).\n",
        "| section | run at | seconds | load average before, after |\n|---|---|---|---|\n"
        + "".join(f"| ({k}) | {r.get('at', '?')}{' (quick)' if r.get('quick') else ''} | {r.get('seconds', '?')} "
                  f"| {r.get('load_before', '?')}, {r.get('load_after', '?')} |\n"
                  for k, r in sorted(runs.items()) if k in results),
    ]
    for key, (_, _, fmt) in SECTIONS.items():
        if key in results:
            parts.append(fmt(results[key]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(parts))
    store.write_text(json.dumps({"machine": m, "results": results, "runs": runs}, indent=2))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``weightlab sweep``, ``rank`` and ``plan`` (issue 11, item 7) on the demo and on a small residual model.

Most commands run in this process through :func:`weightlab.cli.main` (TensorFlow
is imported once); Ctrl+C, ``--plot`` and the Qt-free check run the real
command in a child process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from weightlab.core.sweeps import SweepLog, SweepSpec

TIMEOUT = 240.0
ENV = {
    **{k: v for k, v in os.environ.items() if k != "WEIGHTLAB_DEBUG"},
    "QT_QPA_PLATFORM": "offscreen",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


@pytest.fixture(scope="module")
def demo(demo_paths) -> tuple[Path, Path]:
    return demo_paths["keras"], demo_paths["data"]


@pytest.fixture(scope="module")
def residual(tmp_path_factory) -> tuple[Path, Path, str]:
    """tests/modelfactory's small CNN (Conv, BatchNorm, a residual Add) with a 2-class held-out set, and
    its first Conv2D's name (Keras numbers auto-named layers per process: ``conv2d`` only when no other
    test built one first)."""
    from modelfactory import save_keras3

    folder = tmp_path_factory.mktemp("residual")
    saved = save_keras3(folder, "cnn")
    rng = np.random.default_rng(5)
    data = folder / "heldout.npz"
    np.savez(data, x=rng.normal(size=(64, 6, 6, 3)).astype(np.float32), y=rng.integers(0, 2, 64))
    return saved.paths["keras"], data, saved.weight_layers[0]


def _ci_ok(p: dict) -> None:
    lo, hi = p["accuracy_ci"]
    assert 0.0 <= lo <= p["accuracy"] <= hi <= 1.0


# -- sweep ------------------------------------------------------------------------------------------


def test_sweep_json_is_the_issue_schema_and_equals_headless(demo, run):
    from weightlab._tf import headless

    model, data = demo
    code, out, err = run("sweep", model, "--data", data, "--op", "clip", "--param", "threshold",
                         "--values", "0.2,0.05,0.02", "--target", "*/kernel", "--json")  # fmt: skip
    assert code == 0, err
    got = json.loads(out)
    assert {"accuracy", "loss"} <= set(got["baseline"])
    assert got["complete"] is True
    for p in got["points"]:
        assert {"target", "value", "accuracy", "loss", "agreement", "accuracy_ci"} <= set(p)
        assert p["target"] == "*/kernel"  # together mode: the glob
        _ci_ok(p)
    assert [p["value"] for p in got["points"]] == [0.2, 0.05, 0.02]  # weakest first
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.2, 0.05, 0.02))
    ref = headless.sweep(model, data, spec)
    assert got["baseline"]["accuracy"] == pytest.approx(ref.baseline.accuracy, abs=1e-12)
    assert got["baseline"]["loss"] == pytest.approx(ref.baseline.loss, abs=1e-9)
    for p, r in zip(got["points"], ref.points, strict=True):
        assert (p["target"], p["value"]) == (r.target, r.value)
        assert p["accuracy"] == pytest.approx(r.accuracy, abs=1e-12)
        assert p["loss"] == pytest.approx(r.loss, abs=1e-9)
        assert p["agreement"] == pytest.approx(r.agreement, abs=1e-12)
        assert p["accuracy_ci"] == pytest.approx(list(r.accuracy_ci), abs=1e-12)
    # A 0.02 clip of every kernel costs accuracy: the numbers are measured, not copied from the baseline.
    assert got["points"][-1]["accuracy"] < got["baseline"]["accuracy"]


def test_sweep_each_gives_one_curve_per_kernel_a_table_and_a_csv(demo, run, tmp_path):
    model, data = demo
    out_csv = tmp_path / "points.csv"
    code, out, err = run("sweep", model, "--data", data, "--op", "clip", "--param", "threshold",
                         "--range", "0.05:0.25:0.1", "--each", "--csv", out_csv)  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    base = rows[0]
    assert base["target"] == "(baseline)" and base["value"] == ""
    kernels = {"conv2d/kernel", "conv2d_1/kernel", "dense/kernel", "dense_1/kernel"}
    curves: dict[str, list[float]] = {}
    for r in rows[1:]:
        curves.setdefault(r["target"], []).append(float(r["value"]))
        assert float(r["drop_pp"]) == pytest.approx(
            100 * (float(base["accuracy"]) - float(r["accuracy"])), abs=1e-9
        )
        assert float(r["accuracy_lo"]) <= float(r["accuracy"]) <= float(r["accuracy_hi"])
    assert set(curves) == kernels
    assert all(sorted(v) == [0.05, 0.15, 0.25] for v in curves.values())
    # The readable table: one line per point with its drop, and the honest note per target.
    lines = out.splitlines()
    assert lines[0].startswith("Sweep clip.threshold (each)")
    for target in kernels:
        assert f"note: {target}: edited alone" in lines
        assert sum(1 for line in lines if line.startswith(target + " ")) == 3


def test_each_mode_says_when_a_layer_is_coupled_and_coupled_sweeps_the_group(residual, run):
    model, data, _ = residual
    common = ("sweep", model, "--data", data, "--op", "prune_neurons", "--param", "fraction",
              "--values", "0.25,0.5", "--each", "--json")  # fmt: skip
    code, out, err = run(*common)
    assert code == 0, err
    alone = json.loads(out)
    coupled_notes = {t: n for t, n in alone["notes"].items() if "coupled" in n}
    assert coupled_notes, alone["notes"]  # the residual Add ties conv2d's channels to the depthwise conv's
    assert all(n.startswith("edited alone") and "group:" in n for n in coupled_notes.values())
    code, out, err = run(*common, "--coupled")
    assert code == 0, err
    grouped = json.loads(out)
    groups = [t for t in grouped["notes"] if t.startswith("group:")]
    assert groups and all("edited together" in grouped["notes"][g] for g in groups)
    assert {p["target"] for p in grouped["points"]} >= set(groups)
    assert not set(coupled_notes) & {p["target"] for p in grouped["points"]}


def test_a_sweep_resumes_from_its_log_and_measures_only_the_missing_points(demo, run, tmp_path):
    import weightlab

    model, data = demo
    log = tmp_path / "sweep.jsonl"
    args = dict(op="clip", param="threshold", values=[0.2, 0.1, 0.05], mode="each")
    seen: list[object] = []
    partial = weightlab.sweep(
        model, data, **args, log=log,
        progress=lambda f, m, p: seen.append(p), should_stop=lambda: len(seen) >= 5,
    )  # fmt: skip
    assert not partial.complete and len(partial.points) == 5
    code, out, err = run("sweep", model, "--data", data, "--op", "clip", "--param", "threshold",
                         "--values", "0.2,0.1,0.05", "--each", "--log", log, "--json")  # fmt: skip
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["complete"] is True and len(resumed["points"]) == 12
    # Each point is logged once, when measured: 5 by the first run, the 7 missing ones by the second.
    assert len(SweepLog.load(log).points) == 12
    assert [p.to_dict() for p in SweepLog.load(log).points[:5]] == [p.to_dict() for p in partial.points]
    full = weightlab.sweep(model, data, **args)
    assert resumed["points"] == [p.to_dict() for p in full.points]


def test_two_workers_give_the_same_points(demo, run):
    model, data = demo
    args = ("sweep", model, "--data", data, "--op", "clip", "--param", "threshold", "--values", "0.1,0.03",
            "--each", "--json")  # fmt: skip
    code, out, err = run(*args)
    assert code == 0, err
    code, out2, err = run(*args, "--workers", "2")
    assert code == 0, err
    one, two = json.loads(out), json.loads(out2)
    assert [(p["target"], p["value"]) for p in two["points"]] == [(p["target"], p["value"]) for p in one["points"]]
    for p, q in zip(one["points"], two["points"]):
        assert q["accuracy"] == pytest.approx(p["accuracy"], abs=1e-6)
        assert q["loss"] == pytest.approx(p["loss"], abs=1e-6)


@pytest.mark.parametrize(
    ("extra", "points"), [((), 2000), (("--workers", "2"), 400)], ids=["one-process", "two-workers"]
)
def test_ctrl_c_prints_the_points_so_far_and_exits_130(demo, tmp_path, extra, points):
    model, data = demo
    log = tmp_path / "sweep.jsonl"
    # One process: 2,000 points, a minute or more of work, so the interrupt always comes mid-sweep.
    # Two workers: fewer points, since their shards may run on to their end after the stop (the
    # interrupt is still the parent's to handle: the workers must not die of it).
    step = 0.5 * 4 / points
    cmd = [sys.executable, "-m", "weightlab", "sweep", str(model), "--data", str(data), "--op", "clip",
           "--param", "threshold", "--range", f"{step:g}:0.5:{step:g}", "--each", "--log", str(log), "--json",
           *extra]  # fmt: skip
    # Its own process group, signalled as a whole: what a terminal's Ctrl+C does (workers included).
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (log.exists() and log.read_text().count('{"point"') >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no point logged"
            time.sleep(0.02)  # polling the log file, not waiting for a fixed time
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    got = json.loads(out)
    assert got["complete"] is False and got["points"]
    key = lambda p: (p["target"], p["value"])  # noqa: E731 - workers log in the order points arrive
    logged = [p.to_dict() for p in SweepLog.load(log).points]
    assert sorted(got["points"], key=key) == sorted(logged, key=key)
    assert len(got["points"]) <= points
    if not extra:
        assert len(got["points"]) < points
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("weightlab: interrupted: stopped after ")
    assert str(log) in lines[0]  # how to resume


def test_plot_writes_png_and_svg_and_no_plot_never_imports_qt(demo, tmp_path):
    model, data = demo
    png, svg, csv_out = tmp_path / "curves.png", tmp_path / "ranks.svg", tmp_path / "p.csv"
    script = (
        "import sys; from weightlab import cli\n"
        f"code = cli.main(['sweep', {str(model)!r}, '--data', {str(data)!r}, '--op', 'clip', '--param', 'threshold',"
        f" '--values', '0.1,0.05', '--csv', {str(csv_out)!r}])\n"
        "assert code == 0, code\n"
        "assert not any(m.split('.')[0] in ('PySide6', 'pyqtgraph') for m in sys.modules), 'Qt imported'\n"
        f"assert cli.main(['sweep', {str(model)!r}, '--data', {str(data)!r}, '--op', 'clip', '--param', 'threshold',"
        f" '--values', '0.1,0.05', '--plot', {str(png)!r}]) == 0\n"
        f"assert cli.main(['rank', {str(model)!r}, '--data', {str(data)!r}, '--layer', 'dense_1', '--no-cumulative',"
        f" '--plot', {str(svg)!r}]) == 0\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT, env=ENV
    )
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert b"<svg" in svg.read_bytes()
    assert csv_out.exists()


# -- rank -----------------------------------------------------------------------------------------


def test_rank_json_largest_drop_first_and_the_table_flags_raising_units(demo, run):
    model, data = demo
    code, out, err = run("rank", model, "--data", data, "--layer", "dense", "--no-cumulative", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["layer"] == "dense" and {"accuracy", "loss"} <= set(got["baseline"])
    neurons = got["neurons"]
    assert sorted(n["index"] for n in neurons) == list(range(64))
    base = got["baseline"]["accuracy"]
    for n in neurons:
        assert {"index", "accuracy", "loss", "drop"} <= set(n)
        assert n["drop"] == pytest.approx(base - n["accuracy"], abs=1e-12)
    drops = [n["drop"] for n in neurons]
    assert drops == sorted(drops, reverse=True) and drops[0] > 0
    assert drops[-1] < 0  # the demo's dense layer has units whose removal raises accuracy: the flag is tested
    assert got["cumulative_top"] == []  # --no-cumulative
    code, out, err = run("rank", model, "--data", data, "--layer", "dense", "--no-cumulative")
    assert code == 0, err
    rows = {
        line.split()[0]: line for line in out.splitlines()[3:] if line.split() and line.split()[0].isdigit()
    }
    assert set(rows) == {str(i) for i in range(64)}
    for n in neurons:
        assert ("removal raises accuracy" in rows[str(n["index"])]) == (n["drop"] < 0)


def test_rank_of_a_small_model_flags_units_whose_removal_raises_accuracy(residual, run, tmp_path):
    model, data, conv = residual
    assert conv.startswith("conv2d")
    out_csv = tmp_path / "rank.csv"
    code, out, err = run("rank", model, "--data", data, "--layer", conv, "--csv", out_csv)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == 4
    raising = [r["index"] for r in rows if r["raises_accuracy"] == "True"]
    assert raising  # random labels: removing a unit can only help here
    assert all(float(r["drop"]) < 0 for r in rows if r["index"] in raising)
    flagged = [line.split()[0] for line in out.splitlines() if line.endswith("removal raises accuracy")]
    assert flagged == raising


# -- plan -----------------------------------------------------------------------------------------


def test_plan_writes_a_recipe_that_apply_replays_with_the_printed_joint_accuracy(demo, run, tmp_path):
    model, data = demo
    recipe = tmp_path / "plan.json"
    code, out, err = run("plan", model, "--data", data, "--op", "prune_magnitude", "--param", "sparsity",
                         "--range", "0.2:0.8:0.2", "--budget", "1", "-o", recipe, "--json")  # fmt: skip
    assert code == 0, err
    got = json.loads(out)
    assert got["recipe"] == str(recipe)
    chosen = [c for c in got["choices"] if c["value"] is not None]
    assert chosen and all(c["single_drop_pp"] <= 1.0 + 1e-9 for c in chosen)
    assert got["sum_single_drops_pp"] == pytest.approx(sum(c["single_drop_pp"] for c in chosen))
    joint = got["joint"]
    assert got["joint_drop_pp"] == pytest.approx(100 * (got["baseline"] - joint["accuracy"]))
    assert got["interaction_pp"] == pytest.approx(got["joint_drop_pp"] - got["sum_single_drops_pp"])
    steps = json.loads(recipe.read_text())["edits"]
    assert [(s["target"], s["sparsity"]) for s in steps] == [(c["target"], c["value"]) for c in chosen]
    edited = tmp_path / "edited.keras"
    code, _, err = run("apply", model, recipe, "-o", edited)
    assert code == 0, err
    code, out, err = run("eval", edited, "--data", data, "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(joint["accuracy"], abs=1e-6)


def test_plan_table_shows_each_choice_the_sum_and_the_joint_drop(demo, run, tmp_path):
    model, data = demo
    recipe = tmp_path / "plan.json"
    code, out, err = run("plan", model, "--data", data, "--op", "clip", "--param", "threshold",
                         "--values", "0.2,0.05", "--target", "dense*/kernel", "--budget", "0.5", "-o", recipe)  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("dense/kernel ") for line in lines)
    assert any(line.startswith("dense_1/kernel ") for line in lines)
    assert any(line.startswith("sum of single drops: ") for line in lines)
    assert any(
        line.startswith("joint drop (all together, measured): ") and "interaction" in line for line in lines
    )
    assert lines[-1] == f"wrote {recipe}" and recipe.exists()


# -- errors: one line naming the flag or file, status 2, nothing written -------------------------------


SWEEP = ("--op", "clip", "--param", "threshold")
BAD = [
    (("sweep", "{m}", "--data", "{d}", *SWEEP), "one of the arguments --values --range --adaptive is required"),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--range", "0:1:0.5"), "--range"),
    (("sweep", "{m}", "--data", "{d}", "--op", "clap", "--param", "threshold", "--values", "0.1"), "--op: "),
    (("sweep", "{m}", "--data", "{d}", "--op", "clip", "--param", "thresh", "--values", "0.1"), "--param: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1,abc"), "--values: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values=-0.1"), "--values: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--range", "1:0:0.1"), "--range: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--range", "1:2"), "--range: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--adaptive"), "--adaptive: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--adaptive", "0.5:0.1"), "--adaptive: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--target", "nope*"), "{m}: "),
    (("sweep", "{m}", "--data", "{t}/missing.npz", *SWEEP, "--values", "0.1"), "{t}/missing.npz"),
    (("sweep", "{t}/missing.keras", "--data", "{d}", *SWEEP, "--values", "0.1"), "{t}/missing.keras"),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--json", "--csv", "{t}/x.csv"), "--csv"),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--csv", "{t}/no/x.csv"), "--csv {t}/no/x.csv"),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--csv", "{m}"), "over the model file"),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--plot", "{t}/x.jpg"), "--plot {t}/x.jpg"),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--fixed", "foo"), "--fixed: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--fixed", "foo=1"), "--fixed: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--workers", "0"), "--workers: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--workers", "two"), "--workers: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--budget", "abc"), "--budget"),
    (("sweep", "{m}", "--data", "{d}", "--op", "scale", "--param", "factor", "--values", "0.5", "--budget", "1"),
     "--budget: "),
    (("sweep", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--metric", "loss"), "--metric"),
    (("rank", "{m}", "--data", "{d}", "--layer", "nope"), "{m}: "),
    (("rank", "{m}", "--data", "{d}", "--layer", "flatten"), "{m}: "),
    (("rank", "{m}", "--data", "{d}", "--layer", "dense", "--ablation", "half"), "--ablation"),
    (("rank", "{m}", "--data", "{d}"), "--layer"),
    (("plan", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--budget", "1", "-o", "{m}"), "over the model file"),
    (("plan", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--budget", "1", "-o", "{d}"), "over the held-out"),
    (("plan", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--budget", "-1", "-o", "{t}/r.json"), "--budget: "),
    (("plan", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--budget", "1"), "-o/--output"),
    (("plan", "{m}", "--data", "{d}", "--op", "scale", "--param", "factor", "--values", "0.5", "--budget", "1",
      "-o", "{t}/r.json"), "--budget: "),
    (("plan", "{m}", "--data", "{d}", *SWEEP, "--values", "0.1", "--budget", "1", "--target", "x*", "-o",
      "{t}/r.json"), "{m}: "),
]  # fmt: skip


@pytest.mark.parametrize(("args", "names"), BAD, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD)])
def test_a_bad_command_is_one_line_naming_the_flag_or_file_and_writes_nothing(
    demo, run, tmp_path, args, names
):
    model, data = demo
    fill = {"m": str(model), "d": str(data), "t": str(tmp_path)}
    code, out, err = run(*(a.format(**fill) for a in args))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("weightlab: error: ") and names.format(**fill) in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_log_of_another_sweep_is_refused_without_writing(demo, run, tmp_path):
    model, data = demo
    log = tmp_path / "other.jsonl"
    SweepLog.open(log, SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.3,)))
    before = log.read_bytes()
    out_csv = tmp_path / "points.csv"
    code, out, err = run(
        "sweep", model, "--data", data, *SWEEP, "--values", "0.1", "--log", log, "--csv", out_csv
    )
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and str(log) in err and "different sweep" in err
    assert log.read_bytes() == before and not out_csv.exists()

"""The window's Sweeps panel and the sweep/ranking plot files (weightlab.gui.sweep_plot, sweeps_panel).

Fast tests play the engine with tests/fakes.py (the real JobBook); one test runs
a real sweep on the demo model end to end.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from weightlab.core.stats import wilson_interval
from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint, SweepResult, SweepSpec

pytestmark = pytest.mark.gui

N = 1000


def _point(target: str, value: float | None, acc: float, agree: float | None = None) -> SweepPoint:
    agree = acc if agree is None else agree
    return SweepPoint(target, value, acc, 1.0 - acc, agree, (), N,
                      wilson_interval(round(acc * N), N), wilson_interval(round(agree * N), N))


def _sweep_result(scale: str = "linear", metric: str = "accuracy") -> SweepResult:
    values = (0.05, 0.1, 0.2, 0.4)
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=values, mode="each",
                     budget_pp=2.0, scale=scale, metric=metric)
    drops = {"a/kernel": (0.30, 0.10, 0.02, 0.0), "b/kernel": (0.05, 0.01, 0.0, 0.0)}
    points = [_point(t, v, 0.9 - d) for t, ds in drops.items() for v, d in zip(values, ds, strict=True)]
    return SweepResult(spec, _point("", None, 0.9), points, notes={t: "edited alone" for t in drops})


def _rank_result(n: int = 12) -> RankResult:
    spec = RankSpec(layer="dense")
    drops = [0.01 * ((i * 7) % 5 - 1) for i in range(n)]  # some negative: removal raises accuracy
    return RankResult.from_points(spec, _point("", None, 0.9), [_point("dense", i, 0.9 - d) for i, d in
                                                               enumerate(drops)])


# -- save_plot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sweep", "rank"])
def test_save_plot_png_and_svg(qapp, tmp_path, kind):
    from PySide6.QtGui import QImage

    from weightlab.gui.export import PNG_WIDTH
    from weightlab.gui.sweep_plot import EXPORT_SIZE, save_plot

    result = _sweep_result() if kind == "sweep" else _rank_result()
    png = save_plot(result, tmp_path / "plot.png")
    svg = save_plot(result, tmp_path / "plot.svg")
    assert png == tmp_path / "plot.png" and svg == tmp_path / "plot.svg"
    image = QImage(str(png))
    assert (image.width(), image.height()) == (PNG_WIDTH, round(PNG_WIDTH * EXPORT_SIZE[1] / EXPORT_SIZE[0]))
    # Not a blank image: the curves/bars put many colours on it.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 10
    text = svg.read_text()
    assert "<svg" in text and len(text) > 2000


def test_save_plot_refuses_other_suffix_and_types(qapp, tmp_path):
    from weightlab.gui.sweep_plot import save_plot

    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_plot(_sweep_result(), tmp_path / "plot.jpg")
    with pytest.raises(TypeError, match="SweepResult or a RankResult"):
        save_plot({"points": []}, tmp_path / "plot.png")
    assert list(tmp_path.iterdir()) == []


def test_sweep_plot_draws_bands_baseline_budget_and_log_axis(qtbot):
    from weightlab.gui.sweep_plot import SweepPlot

    plot = SweepPlot()
    qtbot.addWidget(plot)
    result = _sweep_result(scale="log")
    plot.show_result(result)
    assert set(plot.curves) == {"a/kernel", "b/kernel"}
    line, band, scatter = plot.curves["a/kernel"]
    x, y = line.getData()
    np.testing.assert_allclose(10 ** x if plot.plot.getPlotItem().ctrl.logXCheck.isChecked() else x,
                               [0.05, 0.1, 0.2, 0.4])
    np.testing.assert_allclose(y, [60.0, 80.0, 88.0, 90.0])
    assert band is not None
    assert plot.plot.getPlotItem().ctrl.logXCheck.isChecked()
    assert plot.baseline_line.value() == pytest.approx(90.0)
    assert plot.budget_line.value() == pytest.approx(88.0)
    # Clicking a point says which.
    with qtbot.waitSignal(plot.pointClicked) as sig:
        scatter.sigClicked.emit(scatter, [scatter.points()[1]], None)
    assert sig.args == ["a/kernel", pytest.approx(0.1)]


def test_sweep_plot_x_axis_spans_the_planned_values_even_with_one_point_per_target(qtbot):
    """A sweep stopped early at its first value is not centred on it (no negative fractions on the axis)."""
    from weightlab.gui.sweep_plot import SweepPlot

    plot = SweepPlot()
    qtbot.addWidget(plot)
    values = (0.125, 0.25, 0.5, 0.75)
    spec = SweepSpec(op="prune_neurons", param="fraction", targets=("a", "b"), values=values, mode="each")
    result = SweepResult(spec, _point("", None, 0.9), [_point("a", 0.125, 0.5), _point("b", 0.125, 0.7)])
    plot.show_result(result)
    (x0, x1), _ = plot.plot.getPlotItem().viewRange()
    assert x0 < 0.125 and x1 > 0.75  # the whole planned range, padded
    assert x0 > 0.0 and x1 < 0.8  # and no more than a small padding around it
    plot.show_result(_sweep_result(scale="log"))  # log axis: the range in log10 units
    (x0, x1), _ = plot.plot.getPlotItem().viewRange()
    assert x0 < np.log10(0.05) < np.log10(0.4) < x1 < 0.0


def test_sweep_plot_agreement_metric(qtbot):
    from weightlab.gui.sweep_plot import SweepPlot

    plot = SweepPlot()
    qtbot.addWidget(plot)
    values = (0.1, 0.2)
    spec = SweepSpec(op="clip", param="threshold", targets=("x",), values=values, metric="agreement")
    result = SweepResult(spec, _point("", None, 0.9, 1.0), [_point("x", 0.1, 0.5, 0.7), _point("x", 0.2, 0.8, 0.95)])
    plot.show_result(result)
    np.testing.assert_allclose(plot.curves["x"][0].getData()[1], [70.0, 95.0])
    assert plot.baseline_line.value() == pytest.approx(100.0)
    assert plot.budget_line is None
    assert "agreement" in plot.plot.getAxis("left").labelText


# -- the Sweeps tab (fake engine: the real JobBook, events played by the test) ------------------


@pytest.fixture
def fake_window(make_window, demo_paths):
    """A window on the demo model whose engine is a FakeEngine; ``w.fake`` is its client."""
    from tests.fakes import FakeEngine
    from weightlab.gui.engine_adapter import EngineAdapter

    engine = FakeEngine()
    w = make_window(EngineAdapter(client_factory=engine))
    assert w.open_and_wait(demo_paths["keras"], demo_paths["data"])
    w.fake = engine.clients[-1]
    return w


def _setup(panel, *, mode="each", values="0.05,0.1,0.2", glob="*/kernel", budget=2.0, op="clip",
           param="threshold"):
    panel.op_combo.setCurrentIndex(panel.op_combo.findData(op))
    panel.param_combo.setCurrentIndex(panel.param_combo.findData(param))
    panel.values_kind.setCurrentIndex(panel.values_kind.findData("list"))
    panel.values_edit.setText(values)
    panel.target_kind.setCurrentIndex(panel.target_kind.findData("glob"))
    panel.target_edit.setText(glob)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData(mode))
    panel.budget_spin.setValue(budget)


def _send_points(w, job_id, points, baseline=None):
    from weightlab.engine.protocol import JobProgress, JobStarted

    w.fake.worker_sends(JobStarted(job_id))
    if baseline is not None:
        w.fake.worker_sends(JobProgress(job_id, None, "baseline", baseline.to_dict()))
    for i, p in enumerate(points, 1):
        w.fake.worker_sends(JobProgress(job_id, i / len(points), f"{p.target} at {p.value:g}", p.to_dict()))


def _demo_points(values=(0.05, 0.1, 0.2)):
    # conv2d/kernel is sensitive (drops past 2 pp below 0.2), dense/kernel robust, the others flat.
    drops = {"dense_1/kernel": (0.0, 0.0, 0.0), "dense/kernel": (0.01, 0.0, 0.0),
             "conv2d_1/kernel": (0.0, 0.0, 0.0), "conv2d/kernel": (0.20, 0.05, 0.0)}
    order = sorted(values, reverse=True)  # clip thresholds: weakest (largest) first
    return [_point(t, v, 0.95 - ds[values.index(v)]) for t, ds in drops.items() for v in order]


def test_live_points_are_drawn_throttled_and_the_result_replaces_them(fake_window, qtbot):
    from weightlab.engine.protocol import JobResult

    w = fake_window
    panel, ctl = w.sweeps.panel, w.sweeps
    _setup(panel)
    job = ctl.run()
    assert job is not None and ctl.running
    submitted = dict(w.fake.submitted)[job]
    assert (submitted.op, submitted.param, submitted.mode, submitted.targets, submitted.budget_pp) == (
        "clip", "threshold", "each", ("*/kernel",), 2.0)
    assert panel.cancel_button.isEnabled() and not panel.run_button.isEnabled()
    points = _demo_points()
    _send_points(w, job, points[:5], _point("", None, 0.95))
    qtbot.waitUntil(lambda: ctl.result is not None and len(ctl.result.points) == 5)
    qtbot.waitUntil(lambda: not panel.pending)
    # five points arrived in one burst: drawn once, not five times
    assert panel.redraws == 1
    assert set(panel.plot.curves) == {"dense_1/kernel", "dense/kernel"}
    assert panel.table.rowCount() == 5
    np.testing.assert_allclose(panel.plot.curves["dense_1/kernel"][0].getData()[1], [95.0, 95.0, 95.0])
    _send_points(w, job, points[5:])
    qtbot.waitUntil(lambda: len(ctl.result.points) == len(points) and not panel.pending)
    assert set(panel.plot.curves) == {"dense_1/kernel", "dense/kernel", "conv2d_1/kernel", "conv2d/kernel"}
    # the final result (with the engine's notes) replaces the live one
    final = SweepResult(submitted, _point("", None, 0.95), points, notes={"conv2d/kernel": "edited alone"})
    w.fake.worker_sends(JobResult(job, final))
    qtbot.waitUntil(lambda: not ctl.running)
    assert ctl.result is final and final.complete
    assert panel.table.rowCount() == len(points)
    assert "Sweep done: 12 point(s)" in panel.message.text()
    assert "edited alone" in panel.notes.text()
    assert panel.export_buttons["csv"].isEnabled() and panel.plan_button.isEnabled()
    assert not panel.cancel_button.isEnabled() and panel.run_button.isEnabled()
    assert w.errors == []


def test_points_of_other_jobs_are_ignored(fake_window, qtbot):
    from weightlab.core.jobs import EvaluateSpec

    w = fake_window
    ctl = w.sweeps
    _setup(w.sweeps.panel)
    other = w.fake.submit(EvaluateSpec(live=False))
    job = ctl.run()
    _send_points(w, other, _demo_points()[:2], _point("", None, 0.5))
    _send_points(w, job, [], _point("", None, 0.95))
    qtbot.waitUntil(lambda: ctl.result is not None)
    qtbot.waitUntil(lambda: not w.sweeps.panel.pending)
    assert ctl.result.baseline.accuracy == 0.95 and ctl.result.points == []


def test_cancel_keeps_the_points_so_far(fake_window, qtbot):
    w = fake_window
    panel, ctl = w.sweeps.panel, w.sweeps
    _setup(panel)
    job = ctl.run()
    _send_points(w, job, _demo_points()[:4], _point("", None, 0.95))
    qtbot.waitUntil(lambda: ctl.result is not None and len(ctl.result.points) == 4)
    panel.cancel_button.click()
    assert job in w.fake.cancelled_jobs
    qtbot.waitUntil(lambda: not ctl.running)
    assert "cancelled after 4 point(s)" in panel.message.text()
    assert not ctl.result.complete and len(ctl.result.points) == 4
    qtbot.waitUntil(lambda: not panel.pending)
    assert panel.table.rowCount() == 4
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_failed_job_no_data_and_bad_values_are_said(fake_window, qtbot, make_window, demo_paths):
    from weightlab.gui.engine_adapter import EngineAdapter

    w = fake_window
    panel, ctl = w.sweeps.panel, w.sweeps
    _setup(panel, values="0.1,abc")
    assert ctl.run() is None
    assert "Cannot sweep" in panel.message.text() and "0.1,abc" in panel.message.text()
    _setup(panel, glob="nothing*")
    assert ctl.run() is None
    assert "nothing*" in panel.message.text()
    _setup(panel)
    job = ctl.run()
    w.fake.fail(job, "worker out of memory")
    qtbot.waitUntil(lambda: not ctl.running)
    assert "Sweep failed: worker out of memory" in panel.message.text()
    # no held-out set
    w.workspace.set_data_path(None, force=True)
    assert ctl.run() is None
    assert "held-out set" in panel.message.text()
    # evaluation off
    off = make_window(EngineAdapter(enabled=False))
    assert off.open_and_wait(demo_paths["keras"], demo_paths["data"])
    _setup(off.sweeps.panel)
    assert off.sweeps.run() is None
    assert "Evaluation is off: evaluation is disabled" in off.sweeps.panel.message.text()


def _finished_sweep(w, qtbot, mode="each", values=(0.05, 0.1, 0.2), points=None, budget=2.0):
    from weightlab.engine.protocol import JobResult

    _setup(w.sweeps.panel, mode=mode, values=",".join(map(str, values)), budget=budget)
    job = w.sweeps.run()
    spec = dict(w.fake.submitted)[job]
    points = _demo_points(values) if points is None else points
    w.fake.worker_sends(JobResult(job, SweepResult(spec, _point("", None, 0.95), points)))
    qtbot.waitUntil(lambda: not w.sweeps.running)
    return w.sweeps.result


def test_clicking_a_point_applies_it_as_an_undoable_step(fake_window, qtbot):
    w = fake_window
    r = _finished_sweep(w, qtbot, mode="together",
                        points=[_point("*/kernel", v, 0.9) for v in (0.2, 0.1, 0.05)])
    assert r.targets() == ["*/kernel"]
    before = {n: w.session.array(n).copy() for n in w.session.model.tensors}
    scatter = w.sweeps.panel.plot.curves["*/kernel"][2]
    clicked = [p for p in scatter.points() if p.data()[1] == 0.1]
    scatter.sigClicked.emit(scatter, clicked, None)
    qtbot.waitUntil(lambda: w.session.position == 1)
    w.wait_idle()
    assert len(w.session.steps) == 1 and w.session.steps[0].edit.op == "clip"
    for name, old in before.items():
        now = w.session.array(name)
        if name.endswith("/kernel"):
            np.testing.assert_array_equal(now, np.clip(old, -0.1, 0.1))
        else:
            np.testing.assert_array_equal(now, old)
    assert w.undo()
    w.wait_idle()
    assert w.session.position == 0
    for name, old in before.items():
        np.testing.assert_array_equal(w.session.array(name), old)
    # a table row does the same
    w.sweeps.panel._draw()
    row = next(i for i in range(w.sweeps.panel.table.rowCount())
               if w.sweeps.panel.table.item(i, 1).text() == "0.2")
    w.sweeps.panel.table.itemActivated.emit(w.sweeps.panel.table.item(row, 0))
    qtbot.waitUntil(lambda: w.session.position == 1)
    w.wait_idle()
    assert np.abs(w.session.array("dense/kernel")).max() <= 0.2
    assert w.errors == []


def test_plan_is_applied_as_one_transaction_and_shows_its_real_drop(fake_window, qtbot):
    from weightlab.engine.events import Metrics, Result

    w = fake_window
    r = _finished_sweep(w, qtbot)
    plan = w.sweeps.make_plan()
    assert plan is not None and plan.budget_pp == 2.0
    chosen = {c.target: c.value for c in plan.choices}
    # conv2d/kernel passes 2 pp between 0.1 (5 pp) and 0.2 (0 pp): interpolated in between
    assert 0.1 < chosen["conv2d/kernel"] < 0.2
    assert chosen["dense_1/kernel"] == 0.05
    assert "real drop: apply the plan" in w.sweeps.panel.plan_label.text()
    assert w.sweeps.panel.apply_plan_button.isEnabled()
    before = w.session.array("conv2d/kernel").copy()
    w.sweeps.panel.apply_plan_button.click()
    qtbot.waitUntil(lambda: w.session.position == len(r.targets()))
    w.wait_idle()
    np.testing.assert_array_equal(w.session.array("conv2d/kernel"),
                                  np.clip(before, -chosen["conv2d/kernel"], chosen["conv2d/kernel"]))
    # the live evaluation of that position is the plan's joint point
    w.engine.result.emit(Result(99, w.session.position, False, Metrics(accuracy=0.90, loss=0.3, num_samples=N)))
    assert plan.joint is not None and plan.joint_drop_pp == pytest.approx(5.0)
    assert "real drop <b>5.00 pp</b>" in w.sweeps.panel.plan_label.text()
    assert plan.interaction_pp == pytest.approx(5.0 - plan.sum_single_drops_pp)


def test_a_plan_is_scrolled_into_view_in_a_short_set_up_column(qtbot):
    """The plan's text sits below the set-up; in a short tab the column scrolls to show it."""
    from weightlab.gui.sweeps_panel import SweepsPanel

    panel = SweepsPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 260)
    panel.show()
    qtbot.waitExposed(panel)
    bar = panel.controls.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0  # the column does not fit: there is something to scroll
    panel.set_plan_text("Plan within 1 pp: " + "; ".join(f"layer{i}/kernel → <b>0.5</b>" for i in range(8)), True)
    qtbot.waitUntil(lambda: bar.value() > 0)
    label = panel.plan_label
    top = label.mapTo(panel.controls.widget(), label.rect().topLeft()).y()
    assert bar.value() <= top <= bar.value() + panel.controls.viewport().height()


def test_exports_write_files_that_parse(fake_window, qtbot, tmp_path):
    from PySide6.QtGui import QImage

    w = fake_window
    r = _finished_sweep(w, qtbot)
    asked = []

    def ask(title, default, name_filter):
        asked.append((default, name_filter))
        return str(tmp_path / "out" / f"sweep{len(asked)}")  # no suffix: the kind's is added

    w._ask_save_path = ask
    (tmp_path / "out").mkdir()
    for kind in ("csv", "json", "png", "svg"):
        w.sweeps.panel.export_buttons[kind].click()
    files = {p.suffix: p for p in (tmp_path / "out").iterdir()}
    assert set(files) == {".csv", ".json", ".png", ".svg"}, files
    assert [d.suffix for d, _ in asked] == [".csv", ".json", ".png", ".svg"]
    rows = list(csv.DictReader(io.StringIO(files[".csv"].read_text())))
    assert len(rows) == len(r.points) + 1 and rows[0]["target"] == "(baseline)"
    assert {row["target"] for row in rows[1:]} == set(r.targets())
    assert float(rows[1]["accuracy"]) == pytest.approx(r.points[0].accuracy)
    data = json.loads(files[".json"].read_text())
    assert SweepResult.from_json(data).points == r.points
    assert not QImage(str(files[".png"])).isNull()
    assert "<svg" in files[".svg"].read_text()
    assert w.errors == []


def test_each_sweep_colours_the_tree_with_a_legend(fake_window, qtbot, demo_paths):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor

    w = fake_window
    _finished_sweep(w, qtbot)
    tree = w.tree
    assert set(tree.sensitivity) == {"dense_1/kernel", "dense/kernel", "conv2d_1/kernel", "conv2d/kernel"}
    assert tree.sensitivity["conv2d/kernel"] is not None
    assert tree.sensitivity["dense/kernel"] is None  # never past 2 pp
    sens = QColor(tree.sensitivity_brush("conv2d/kernel").color())
    flat = QColor(tree.sensitivity_brush("dense/kernel").color())
    assert sens.redF() > sens.blueF()  # towards red/amber
    assert abs(flat.redF() - flat.greenF()) < 0.05 and abs(flat.greenF() - flat.blueF()) < 0.05  # neutral grey
    assert "conv2d/kernel" in tree._items["conv2d/kernel"].toolTip(3) and "2 pp" in tree._items[
        "conv2d/kernel"].toolTip(3)
    legend = w.sweeps.panel.legend.text()
    assert "budget 2 pp" in legend and "sensitive" in legend and "whole range" in legend
    # a tighter budget moves the threshold: the colours follow
    w.sweeps.panel.budget_spin.setValue(0.5)
    assert tree.sensitivity["dense/kernel"] is not None
    # together sweeps do not colour; a new model clears the colours
    assert w.open_and_wait(demo_paths["h5"], demo_paths["data"])
    assert tree.sensitivity == {} and w.sweeps.panel.legend.text() == ""
    assert tree.sensitivity_brush("conv2d/kernel").style() == Qt.BrushStyle.NoBrush


def test_sensitivity_colour_reads_in_light_and_dark_palettes():
    from PySide6.QtGui import QColor

    from weightlab.gui.model_tree import sensitivity_colour

    for base in (QColor("#ffffff"), QColor("#202020")):
        red, green, grey = sensitivity_colour(0.0, base), sensitivity_colour(1.0, base), sensitivity_colour(None, base)
        assert red.redF() > red.greenF() and green.greenF() > green.redF()
        assert abs(grey.redF() - grey.greenF()) < 0.02
        # a tint of the background: close to it in lightness, so the palette's text stays readable
        assert abs(red.lightnessF() - base.lightnessF()) < 0.6


def test_save_plot_without_a_display_or_application(tmp_path):
    """The command line's way: a fresh process, no QApplication, no display variable."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from tests.test_gui_sweeps import _rank_result, _sweep_result\n"
        "from weightlab.gui.sweep_plot import save_plot\n"
        "save_plot(_sweep_result(), sys.argv[1]); save_plot(_rank_result(), sys.argv[2])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.png"), str(tmp_path / "r.svg")],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "s.png").stat().st_size > 5000
    assert "<svg" in (tmp_path / "r.svg").read_text()


# -- end to end, with the real engine -------------------------------------------------------------


def test_real_sweep_on_the_demo_then_apply_a_point(make_window, demo_paths, qtbot):
    w = make_window(None)
    assert w.open_and_wait(demo_paths["keras"], demo_paths["data"])
    panel, ctl = w.sweeps.panel, w.sweeps
    w.views.setCurrentWidget(panel)
    _setup(panel, mode="together", values="0.05,0.1,0.2", glob="*/kernel", budget=0.0)
    live: list[int | None] = []  # points the controller holds after each progress event (it handles them first)
    w.engine.jobProgress.connect(
        lambda ev: live.append(None if ctl.result is None else len(ctl.result.points))
        if ev.job_id == ctl.job_id else None
    )
    job = ctl.run()
    assert job is not None, panel.message.text()
    qtbot.waitUntil(lambda: not ctl.running, timeout=180_000)
    r = ctl.result
    # the engine streams the sweep's own baseline first, so every point is drawn as it comes
    assert [n for n in live if n is not None] == [0, 1, 2, 3], live
    assert "Sweep done: 3 point(s)" in panel.message.text(), panel.message.text()
    assert r.complete and r.targets() == ["*/kernel"] and r.baseline.accuracy is not None
    qtbot.waitUntil(lambda: not panel.pending)
    x, y = panel.plot.curves["*/kernel"][0].getData()
    np.testing.assert_allclose(x, [0.05, 0.1, 0.2])
    by_value = {p.value: p for p in r.points}
    np.testing.assert_allclose(y, [100 * by_value[v].accuracy for v in (0.05, 0.1, 0.2)])
    assert panel.table.rowCount() == 3
    steps = len(w.session.steps)
    before = w.session.array("dense/kernel").copy()
    scatter = panel.plot.curves["*/kernel"][2]
    scatter.sigClicked.emit(scatter, [p for p in scatter.points() if p.data()[1] == 0.05], None)
    qtbot.waitUntil(lambda: len(w.session.steps) == steps + 1, timeout=60_000)
    w.wait_idle()
    np.testing.assert_array_equal(w.session.array("dense/kernel"), np.clip(before, -0.05, 0.05))
    assert w.tree.is_marked_edited("dense/kernel")
    # the live evaluation of the applied point equals the sweep's number for it
    position = w.session.position
    qtbot.waitUntil(lambda: position in w.eval_panel._by_step, timeout=120_000)
    assert w.eval_panel._by_step[position][1] == pytest.approx(by_value[0.05].accuracy, abs=1e-6)
    assert by_value[0.05].accuracy < r.baseline.accuracy  # clipping every kernel to 0.05 costs accuracy
    assert w.errors == []

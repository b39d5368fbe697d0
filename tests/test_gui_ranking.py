"""The window's *Ranking* tab: rankings as engine jobs, live bars, cancel, exports, and the link to the neuron selection.

Most tests play the engine with :class:`tests.fakes.FakeEngine` (the real
client's JobBook decides what reaches the window); one runs the real engine
on the demo's 64-unit Dense layer, end to end, up to *Zero neurons*.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QItemSelectionModel, Qt
from PySide6.QtGui import QImage

from tests.fakes import FakeEngine
from weightlab.core.stats import wilson_interval
from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint
from weightlab.engine.events import Metrics
from weightlab.engine.protocol import JobProgress, JobResult, JobStarted
from weightlab.gui.controllers.paths import NO_DATA_REASON
from weightlab.gui.controllers.ranking import rankable_layers
from weightlab.gui.engine_adapter import EngineAdapter
from weightlab.gui.export import PNG_WIDTH
from weightlab.gui.ranking_view import drop_interval_pp, raising_color

pytestmark = pytest.mark.gui

LAYER = "dense"
UNITS = 64
SAMPLES = 500
BASE_CORRECT = 450  # baseline accuracy 0.9


def point(target: str, value: float | None, correct: int) -> SweepPoint:
    """A measured point with ``correct`` of :data:`SAMPLES` right, its Wilson interval and a loss."""
    return SweepPoint(
        target, value, correct / SAMPLES, 0.3 + (BASE_CORRECT - correct) / 100, num_samples=SAMPLES,
        accuracy_ci=wilson_interval(correct, SAMPLES),
    )  # fmt: skip


def unit_points(seed: int = 0, raising: int = 2) -> list[SweepPoint]:
    """One point per unit of :data:`LAYER`; ``raising`` of them above the baseline (their removal helps)."""
    rng = np.random.default_rng(seed)
    correct = BASE_CORRECT - rng.integers(0, 40, UNITS)
    up = rng.choice(UNITS, raising, replace=False)
    correct[up] = BASE_CORRECT + 1 + np.arange(raising)
    return [point(LAYER, float(i), int(c)) for i, c in enumerate(correct)]


def final_result(spec: RankSpec, points: list[SweepPoint]) -> RankResult:
    base = point("", None, BASE_CORRECT)
    ranked = RankResult.from_points(spec, base, points)
    order = ranked.order()
    top = (
        [point(f"top {k}", k, max(0, BASE_CORRECT - 7 * k)) for k in range(1, len(order) + 1)]
        if spec.cumulative
        else []
    )
    bottom = (
        [point(f"bottom {k}", k, BASE_CORRECT - k) for k in range(1, len(order) + 1)]
        if spec.cumulative
        else []
    )
    return RankResult.from_points(spec, base, points, cumulative_top=top, cumulative_bottom=bottom,
                                  method="weights: each unit's kernel slice and bias zeroed (zero_neurons)")  # fmt: skip


@pytest.fixture
def fake(make_window, demo_paths):
    """A window over the demo (its held-out set beside it) whose engine is the fake; the model is ready."""
    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    assert w.open_and_wait(demo_paths["keras"])
    w.settle()
    client = factory.clients[-1]
    client.model_ready()
    w.client = client
    return w


def send_units(qtbot, w, job: int, points: list[SweepPoint]) -> None:
    """Play the worker streaming ``points`` of job ``job`` (it starts running first)."""
    w.client.worker_sends(JobStarted(job))
    for i, p in enumerate(points, 1):
        w.client.worker_sends(JobProgress(job, i / UNITS, f"{LAYER}: unit {int(p.value)}", p.to_dict()))


def finish(qtbot, w, job: int, result: RankResult) -> None:
    w.client.worker_sends(JobResult(job, result))
    qtbot.waitUntil(lambda: w.ranking.job is None and w.ranking.result is result)


def run_fake(qtbot, w, spec: RankSpec | None = None, seed: int = 0, raising: int = 2) -> RankResult:
    """Rank through the tab with the fake engine; the final result shown."""
    spec = spec or RankSpec(layer=LAYER)
    job = w.ranking.rank(spec)
    assert job is not None
    points = unit_points(seed, raising)
    send_units(qtbot, w, job, points)
    result = final_result(spec, points)
    finish(qtbot, w, job, result)
    return result


def bars_drawn(curve) -> int:
    """Bars in a bar-outline curve (four points each)."""
    x, _ = curve.getData()
    return 0 if x is None else len(x) // 4


# -- set-up ---------------------------------------------------------------------------------


def test_the_tab_offers_layers_with_a_kernel_and_builds_the_spec_from_the_set_up(fake):
    view = fake.ranking.view
    assert fake.views.tabText(fake.views.indexOf(view)) == "Ranking"
    layers = [view.layer_combo.itemText(i) for i in range(view.layer_combo.count())]
    assert layers == rankable_layers(fake.session) == ["conv2d", "conv2d_1", "dense", "dense_1"]
    fake.show_tensor("dense/bias")
    assert view.layer_combo.currentText() == "dense"  # the shown tensor's layer
    assert view.spec() == RankSpec(layer="dense", ablation="zero", batchnorm=None, cumulative=True)
    view.bn_check.setCheckState(Qt.CheckState.Checked)
    view.cumulative_check.setChecked(False)
    assert view.spec() == RankSpec(layer="dense", batchnorm=True, cumulative=False)
    view.bn_check.setCheckState(Qt.CheckState.Unchecked)
    assert view.spec().batchnorm is False
    view.ablation_combo.setCurrentIndex(view.ablation_combo.findData("mean"))
    assert not view.bn_check.isEnabled() and view.spec() == RankSpec(layer="dense", ablation="mean",
                                                                         cumulative=False)  # fmt: skip


def test_rank_submits_the_spec_as_a_job_and_the_action_ranks_the_shown_layer(fake, qtbot):
    fake.show_tensor("conv2d_1/kernel")
    fake.actions["analysis.rank"].trigger()
    assert fake.views.currentWidget() is fake.ranking.view
    job, spec = fake.client.submitted[-1]
    assert spec == RankSpec(layer="conv2d_1") and fake.ranking.job == job
    view = fake.ranking.view
    assert view.cancel_button.isEnabled() and not view.rank_button.isEnabled()
    jobs = fake.jobs.status.jobs
    qtbot.waitUntil(lambda: job in jobs and jobs[job].kind == "rank")  # in the status bar's jobs area too


def test_without_a_held_out_set_the_tab_says_why_and_submits_nothing(make_window, demo_paths, tmp_path):
    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    lone = tmp_path / "model.keras"
    lone.write_bytes(demo_paths["keras"].read_bytes())
    assert w.open_and_wait(lone)
    w.settle()
    assert w.data_path is None
    assert w.ranking.rank(RankSpec(layer=LAYER)) is None
    assert w.ranking.view.status.text() == NO_DATA_REASON
    assert not factory.clients or not factory.clients[-1].submitted


# -- live units, the final result, cancel, failure ------------------------------------------------


def test_units_are_drawn_as_they_arrive_then_the_final_result_replaces_them(fake, qtbot):
    # The window knows the model's accuracy (the baseline evaluation): the live drops are measured against it.
    fake.client.finish(fake.client.baseline_job, Metrics(accuracy=BASE_CORRECT / SAMPLES, loss=0.3,
                                                         num_samples=SAMPLES))  # fmt: skip
    qtbot.waitUntil(lambda: fake.eval_panel.baseline is not None)
    view = fake.ranking.view
    spec = RankSpec(layer=LAYER)
    job = fake.ranking.rank(spec)
    points = unit_points()
    send_units(qtbot, fake, job, points[:10])
    qtbot.waitUntil(lambda: view.table_model.rowCount() == 10)
    live = view.result
    assert not live.complete and view.provisional
    accuracies = [u.point.accuracy for u in live.units]
    assert accuracies == sorted(p.accuracy for p in points[:10])  # largest drop first
    assert bars_drawn(view.bars) + bars_drawn(view.raising_bars) == 10
    assert (
        "10 of 64 units measured" in view.summary.text()
        and "estimated baseline 90.00 %" in view.summary.text()
    )

    for i, p in enumerate(points[10:], 11):
        fake.client.worker_sends(JobProgress(job, i / UNITS, "", p.to_dict()))
    result = final_result(spec, points)
    finish(qtbot, fake, job, result)
    assert view.result is result and not view.provisional
    assert view.table_model.rowCount() == UNITS
    drops = [view.table_model.units[r].drop for r in range(UNITS)]
    assert drops == sorted(drops, reverse=True)
    assert bars_drawn(view.bars) + bars_drawn(view.raising_bars) == UNITS
    assert result.method in view.summary.text()
    x_top, y_top = view.cum_top.getData()
    assert list(x_top) == list(range(1, UNITS + 1)) and y_top[0] == pytest.approx(
        100 * result.cumulative_top[0].accuracy
    )
    assert (
        view.status.text() == "done" and view.rank_button.isEnabled() and not view.cancel_button.isEnabled()
    )
    # the error bars are the ablated accuracy's Wilson interval, moved to the drop
    top = result.units[0]
    lo, hi = drop_interval_pp(result.baseline.accuracy, top.point.accuracy_ci)
    assert lo < 100 * top.drop < hi
    assert view.errors.opts["top"][0] == pytest.approx(hi - 100 * top.drop)
    assert view.errors.opts["bottom"][0] == pytest.approx(100 * top.drop - lo)


def test_before_any_baseline_is_known_live_units_are_ordered_but_their_drops_pending(fake, qtbot):
    view = fake.ranking.view
    job = fake.ranking.rank(RankSpec(layer=LAYER, cumulative=False))
    points = unit_points()[:5]
    send_units(qtbot, fake, job, points)
    qtbot.waitUntil(lambda: view.table_model.rowCount() == 5)
    assert bars_drawn(view.pending_bars) == 5 and bars_drawn(view.bars) == 0
    assert [u.index for u in view.result.units] == [
        int(p.value) for p in sorted(points, key=lambda p: p.accuracy)
    ]


def test_cancel_keeps_the_units_measured_so_far_marked_partial(fake, qtbot):
    view = fake.ranking.view
    job = fake.ranking.rank(RankSpec(layer=LAYER))
    send_units(qtbot, fake, job, unit_points()[:7])
    qtbot.waitUntil(lambda: view.table_model.rowCount() == 7)
    qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    assert job in fake.client.cancelled_jobs
    qtbot.waitUntil(lambda: fake.ranking.job is None)
    assert (
        view.status.text() == "cancelled"
        and view.rank_button.isEnabled()
        and not view.cancel_button.isEnabled()
    )
    assert view.table_model.rowCount() == 7 and not view.result.complete
    assert "7 of 64 units measured" in view.summary.text() and "cancelled" in view.summary.text()
    # late points of the cancelled job are dropped (the JobBook), and nothing changes here
    fake.client.worker_sends(JobProgress(job, 1.0, "", unit_points()[8].to_dict()))
    QCoreApplication.processEvents()  # deliver anything queued
    assert view.table_model.rowCount() == 7


def test_a_ranking_the_engine_stops_says_why(fake, qtbot):
    """The model cannot be evaluated (ModelReady not ok): the JobBook ends the queued ranking with the reason."""
    job = fake.ranking.rank(RankSpec(layer=LAYER))
    fake.client.model_ready(ok=False, reason="the model has a Lambda layer")
    qtbot.waitUntil(lambda: fake.ranking.job is None)
    view = fake.ranking.view
    assert view.status.text() == "cancelled: the model has a Lambda layer" and view.result is None
    assert "cancelled: the model has a Lambda layer before any unit was measured" in view.summary.text()
    assert job not in {i.job_id for i in fake.client.book.infos()}  # ended, not left queued


def test_a_failed_ranking_says_why(fake, qtbot):
    job = fake.ranking.rank(RankSpec(layer=LAYER, ablation="mean"))
    fake.client.fail(job, "mean ablation needs a Keras model evaluated incrementally")
    qtbot.waitUntil(lambda: fake.ranking.job is None)
    view = fake.ranking.view
    assert "Ranking failed: mean ablation needs a Keras model" in view.summary.text()
    assert view.status.text() == "failed" and view.result is None and view.rank_button.isEnabled()


def test_units_whose_removal_raises_accuracy_are_coloured_and_counted(fake, qtbot):
    result = run_fake(qtbot, fake, raising=3)
    view = fake.ranking.view
    raising = result.raising()
    assert len(raising) == 3
    assert bars_drawn(view.raising_bars) == 3 and bars_drawn(view.bars) == UNITS - 3
    x, y = view.raising_bars.getData()
    assert (np.asarray(y) <= 0).all() and sorted(set(np.round(x[1::4] + 0.4).astype(int))) == [UNITS - 3, UNITS - 2,
                                                                                                  UNITS - 1]  # fmt: skip
    assert "3 units raise accuracy when removed" in view.summary.text()
    model = view.table_model
    last = model.index(UNITS - 1, 3)
    assert model.data(last, Qt.ItemDataRole.ForegroundRole).color() == raising_color()
    assert model.data(model.index(0, 3), Qt.ItemDataRole.ForegroundRole) is None


# -- linking with the neuron selection ----------------------------------------------------------------


def test_picking_bars_selects_the_units_in_the_window_and_shows_the_ranked_layers_kernel(fake, qtbot):
    result = run_fake(qtbot, fake)
    view, sel = fake.ranking.view, fake.selection
    fake.show_tensor("conv2d_1/kernel")
    assert sel.target == "conv2d_1"
    order = [u.index for u in result.units]

    # a real click on the first bar: the ranked layer's kernel is shown, that unit selected
    fake.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.plot.isVisible())
    vp = view.plot.mapFromScene(view.bar_center(0))
    qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=vp)
    assert fake.current == "dense/kernel" and sel.target == LAYER
    assert sel.neurons == [order[0]]
    view.pick(3, Qt.KeyboardModifier.ShiftModifier)  # extends over the bars between, in rank order
    assert sel.neurons == sorted(order[:4])
    view.pick(1, Qt.KeyboardModifier.ControlModifier)  # toggles one
    assert sel.neurons == sorted([order[0], order[2], order[3]])
    assert view.highlighted_ranks() == [0, 2, 3] and bars_drawn(view.selected_bars) == 3
    assert sorted(i.row() for i in view.table.selectionModel().selectedRows()) == [0, 2, 3]
    assert (
        "Zero neurons" in fake.actions["edit.zero_neurons"].text()
        and fake.actions["edit.zero_neurons"].isEnabled()
    )

    view.top_k.setValue(5)
    qtbot.mouseClick(view.select_top_button, Qt.MouseButton.LeftButton)
    assert sel.neurons == sorted(order[:5])
    assert view.select_top_button.text() == "Select" and view.top_k.text() == "top 5"


def test_the_heatmap_and_norm_selection_is_drawn_on_the_bars_and_table_rows_select_back(fake, qtbot):
    result = run_fake(qtbot, fake)
    view, sel = fake.ranking.view, fake.selection
    fake.show_tensor("dense/kernel")
    fake.settle()
    order = [u.index for u in result.units]
    sel.click(order[10])  # as a click in the heatmap or the norm plot does
    sel.click(order[12], Qt.KeyboardModifier.ControlModifier)
    assert view.highlighted == sorted([order[10], order[12]]) and view.highlighted_ranks() == [10, 12]
    assert bars_drawn(view.selected_bars) == 2
    # the table follows, and selecting rows there selects the units
    assert sorted(i.row() for i in view.table.selectionModel().selectedRows()) == [10, 12]
    # A row selected alone, as a plain click does. Not table.selectRow: in extended selection it reads the
    # application's keyboard modifiers, and a Ctrl left over from an earlier test's synthetic click made it
    # add row 20 to rows 10 and 12 (a fresh-clone failure, seed 3341575499).
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    view.table.selectionModel().select(view.table.model().index(20, 0), flags)
    assert sel.neurons == [order[20]]
    # another layer's selection is not drawn on this layer's bars
    fake.show_tensor("dense_1/kernel")
    sel.set_neurons([1])
    assert view.highlighted == [] and bars_drawn(view.selected_bars) == 0


def test_a_ranking_is_marked_when_the_weights_change_after_it(fake, qtbot):
    result = run_fake(qtbot, fake)
    assert fake.ranking.select_top(2)
    fake.actions["edit.zero_neurons"].trigger()
    fake.wait_idle()
    summary = fake.ranking.view.summary.text
    qtbot.waitUntil(lambda: "the weights changed since this ranking" in summary())
    assert fake.ranking.result is result  # still shown
    fake.undo()
    fake.wait_idle()
    qtbot.waitUntil(lambda: "the weights changed" not in summary())


def test_a_new_model_clears_the_ranking(fake, qtbot, demo_paths):
    run_fake(qtbot, fake)
    assert fake.open_and_wait(demo_paths["h5"])
    view = fake.ranking.view
    assert view.result is None and view.table_model.rowCount() == 0 and bars_drawn(view.bars) == 0
    assert not view.select_top_button.isEnabled() and not view.export_button.isEnabled()


# -- exports ---------------------------------------------------------------------------------------


def test_exports_write_parseable_csv_json_png_and_svg(fake, qtbot, tmp_path):
    result = run_fake(qtbot, fake)
    ctl = fake.ranking
    rows = list(csv.DictReader(io.StringIO(ctl.export("csv", tmp_path / "r.csv").read_text())))
    assert [int(r["index"]) for r in rows] == [u.index for u in result.units]
    assert [float(r["drop"]) for r in rows] == sorted((float(r["drop"]) for r in rows), reverse=True)
    data = json.loads(ctl.export("json", tmp_path / "r.json").read_text())
    assert data["layer"] == LAYER and len(data["neurons"]) == UNITS and data["method"] == result.method
    png = ctl.export("png", tmp_path / "bars")  # no suffix: the kind's
    assert png.name == "bars.png" and QImage(str(png)).width() == PNG_WIDTH
    svg = ctl.export("svg", tmp_path / "r.svg")
    assert ET.parse(svg).getroot().tag.endswith("svg")
    assert not list(tmp_path.glob(".*weightlab-tmp*"))  # the atomic writes left no temporary

    # through the buttons and the save dialog; a wrong extension is an error naming the file
    asked = []
    fake._ask_save_path = lambda title, default, flt: (
        asked.append((default, flt)) or str(tmp_path / "x.png.txt")
    )
    ctl.view.export_actions["png"].trigger()
    assert asked[0][0].name == "digits_cnn-rank-dense.png" and "*.png" in asked[0][1]
    assert fake.errors and "x.png.txt" in fake.errors[-1]
    fake._ask_save_path = lambda title, default, flt: None  # cancelled dialog: nothing written
    assert ctl.export("csv") is None


# -- end to end, with the real engine ---------------------------------------------------------------------


@pytest.mark.slow
def test_rank_the_demo_dense_layer_select_the_top_3_and_zero_them(make_window, demo_paths, qtbot):
    w = make_window(None)
    assert w.open_and_wait(demo_paths["keras"])
    qtbot.waitUntil(lambda: w.eval_panel.baseline is not None, timeout=120_000)
    w.show_tensor("dense/kernel")
    w.settle()
    view = w.ranking.view
    w.views.setCurrentWidget(view)
    view.cumulative_check.setChecked(False)
    qtbot.mouseClick(view.rank_button, Qt.MouseButton.LeftButton)
    assert w.ranking.job is not None
    qtbot.waitUntil(lambda: w.ranking.job is None, timeout=120_000)
    result = w.ranking.result
    assert view.status.text() == "done" and result is not None and result.complete, view.summary.text()
    assert len(result.units) == UNITS and view.table_model.rowCount() == UNITS
    assert bars_drawn(view.bars) + bars_drawn(view.raising_bars) == UNITS
    drops = [u.drop for u in result.units]
    assert drops == sorted(drops, reverse=True)
    assert result.baseline.accuracy == pytest.approx(w.eval_panel.baseline.accuracy)

    view.top_k.setValue(3)
    qtbot.mouseClick(view.select_top_button, Qt.MouseButton.LeftButton)
    top3 = sorted(u.index for u in result.units[:3])
    assert w.selection.target == LAYER and w.selection.neurons == top3
    steps = len(w.session.steps)
    w.actions["edit.zero_neurons"].trigger()
    w.wait_idle()
    assert len(w.session.steps) == steps + 1
    kernel = w.session.array("dense/kernel")
    assert (kernel[:, top3] == 0).all() and (w.session.array("dense/bias")[top3] == 0).all()
    others = [i for i in range(UNITS) if i not in top3]
    assert np.array_equal(kernel[:, others], w.session.original("dense/kernel")[:, others])

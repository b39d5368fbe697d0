"""The panels' insides at every size, in the theme's colours, with no stale state (issue 14, part B2).

The evaluation panel, the edit panel and its op forms, the sweeps panel and
the ranking view are laid out in a narrow right dock (~330 px, a 1024x640
window), at 1400x900 and at 2560x1440: nothing overlaps, nothing is squeezed
below its own minimum, the charts' tick labels never run into each other, and
their colours follow weightlab.gui.theme.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget

from tests.fakes import FakeEngine, memory_session
from weightlab.core.edits import Scale
from weightlab.gui.formatting import thinned_ticks

pytestmark = pytest.mark.gui

#: (width, height) of a panel: the right dock of a 1024x640 window, and the docks at 1400x900 and 2560x1440.
SIZES = [(330, 420), (330, 640), (420, 860), (640, 1400)]


def _metrics(acc: float, classes: int = 10, seconds: float = 0.25) -> SimpleNamespace:
    """What the engine reports for one evaluation (the fields the panel reads)."""
    per_class = np.linspace(acc - 0.05, min(1.0, acc + 0.05), classes)
    return SimpleNamespace(accuracy=acc, loss=1.0 - acc, per_class=list(per_class), seconds=seconds,
                           mode="full", device="CPU", cut=None, layers_run=0, layers_total=0)


@pytest.fixture
def theme_reset(qapp, config_dir):
    """The theme as the user chose it, set back to the light scheme afterwards (it is process-wide)."""
    from weightlab.gui import theme

    theme.set_presentation(False)
    theme.set_scheme("light")
    yield theme
    theme.set_presentation(False)
    theme.set_scheme("light")


def _in_dock(qtbot, panel: QWidget, width: int, height: int) -> QScrollArea:
    """``panel`` as the window docks it: in a resizable scroll area of the dock's size, shown and laid out."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(panel)
    area.resize(width, height)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    QApplication.processEvents()
    return area


def _rect_in(widget: QWidget, ancestor: QWidget) -> QRect:
    return QRect(widget.mapTo(ancestor, QPoint(0, 0)), widget.size())


def _edited_panel(session=None, classes: int = 10):
    """An evaluation panel after a baseline and three measured edits, with a pass running."""
    from weightlab.gui.eval_panel import EvalPanel

    s = session or memory_session("m.npz", {"d/kernel": np.ones((3, 2), np.float32)})
    panel = EvalPanel()
    panel.set_data_info("digits_heldout.npz", 360, classes)
    panel.set_baseline(_metrics(0.9, classes))
    panel.set_history(s.steps, s.position)
    for k in range(3):
        s.apply(Scale(target="d/kernel", factor=2.0 + k))
        panel.set_history(s.steps, s.position)
        panel.set_current(_metrics(0.893 - 0.01 * k, classes), s.position, tuple(s.steps[: s.position]))
    panel.start_pass(3)
    panel.set_running(SimpleNamespace(done=3, total=12, accuracy=0.87, ci_low=0.82, ci_high=0.91, samples=96))
    return panel, s


# -- ticks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 7, 10, 64, 100, 1000])
@pytest.mark.parametrize("unit_px", [2.0, 9.5, 30.0, 120.0])
def test_thinned_ticks_never_overlap(qapp, count, unit_px):
    fm = QFontMetrics(QApplication.font())
    ticks = thinned_ticks(count, unit_px, fm.horizontalAdvance)
    assert ticks[0] == (0, "0")
    positions = [p for p, _ in ticks]
    assert all(0 <= p < count for p in positions)
    widest = max(fm.horizontalAdvance(t) for _, t in ticks)
    gaps = np.diff(positions) * unit_px
    assert np.all(gaps >= widest), (gaps.min() if len(gaps) else None, widest)
    if len(ticks) > 1 and positions[1] > 1:  # thinned no more than needed: the next smaller step would overlap
        nice = [k * 10**e for e in range(5) for k in (1, 2, 5)]
        smaller = nice[nice.index(positions[1]) - 1]
        assert smaller * unit_px < fm.horizontalAdvance(str(count - 1)) + 8


def test_thinned_ticks_without_a_size_keep_at_most_ten(qapp):
    assert thinned_ticks(0, 10.0, len) == []
    assert len(thinned_ticks(100, 0.0, len)) <= 10
    assert thinned_ticks(5, 0.0, len) == [(i, str(i)) for i in range(5)]


@pytest.mark.parametrize("classes", [7, 10, 100])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_per_class_ticks_fit_the_chart(qtbot, theme_reset, classes, width, height):
    panel, _s = _edited_panel(classes=classes)
    panel.charts.setCurrentIndex(1)
    area = _in_dock(qtbot, panel, width, height)  # noqa: F841 (keeps the dock, and the panel in it, alive)
    axis = panel.class_plot.getAxis("bottom")
    ticks = axis._weightlab_ticks[0]
    box = panel.class_plot.getViewBox()
    (x0, x1), px = box.viewRange()[0], box.width()
    unit = px / (x1 - x0)
    fm = QFontMetrics(axis.style.get("tickFont") or axis.font())
    widest = max(fm.horizontalAdvance(t) for _, t in ticks)
    assert panel.num_classes_shown == classes
    assert all(0 <= p < classes for p, _ in ticks)
    assert np.all(np.diff([p for p, _ in ticks]) * unit >= widest)
    if classes <= 10 and width >= 330:
        assert len(ticks) == classes  # a few classes: every one labelled


# -- the evaluation panel ----------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("presentation", [False, True])
def test_accuracy_and_its_change_never_under_the_progress_bar(qtbot, theme_reset, width, height, presentation):
    theme_reset.set_presentation(presentation)
    panel, _s = _edited_panel()
    area = _in_dock(qtbot, panel, width, height)  # noqa: F841 (keeps the dock, and the panel in it, alive)
    assert panel.cur_acc_delta.text() and "pp" in panel.cur_acc_delta.text()
    bar = _rect_in(panel.progress, panel)
    for label in (panel.base_acc, panel.cur_acc, panel.cur_acc_delta, panel.cur_loss, panel.cur_loss_delta):
        r = _rect_in(label, panel)
        assert r.bottom() < bar.top(), (label.text(), r, bar)
        # each label at least as tall as its text needs: never clipped
        assert label.height() >= label.minimumSizeHint().height()
    assert _rect_in(panel.cur_acc, panel).bottom() < _rect_in(panel.cur_acc_delta, panel).top()
    assert _rect_in(panel.running_label, panel).top() > bar.bottom()
    charts = _rect_in(panel.charts, panel)
    assert charts.top() > _rect_in(panel.running_label, panel).bottom()
    assert charts.height() >= panel.charts.minimumHeight()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_two_charts_are_never_over_each_other(qtbot, theme_reset, width, height):
    panel, _s = _edited_panel()
    area = _in_dock(qtbot, panel, width, height)  # noqa: F841 (keeps the dock, and the panel in it, alive)
    for index, (shown, hidden) in enumerate([(panel.step_plot, panel.class_plot), (panel.class_plot, panel.step_plot)]):
        panel.charts.setCurrentIndex(index)
        QApplication.processEvents()
        assert shown.isVisible() and not hidden.isVisible()
        assert shown.height() >= shown.minimumHeight() and shown.width() > 100


def test_a_roomy_dock_does_not_scroll_the_panel(qtbot, theme_reset):
    """The plots' own size hints (their scenes) must not make the panel taller than the dock."""
    panel, _s = _edited_panel()
    area = _in_dock(qtbot, panel, 330, 640)
    assert area.verticalScrollBar().maximum() == 0
    assert panel.height() <= area.viewport().height()
    small = _in_dock(qtbot, _edited_panel()[0], 330, 240)  # too small: it scrolls instead of squeezing
    assert small.verticalScrollBar().maximum() > 0


def test_step_chart_keeps_every_point_after_unticking_and_reticking(qtbot, theme_reset):
    """Switching a step off and on gives new step objects for the same state: its points come back."""
    panel, s = _edited_panel()
    panel.end_pass()
    before = panel.step_accuracy()
    assert sorted(before) == [0, 1, 2, 3]
    s.set_step_enabled(1, False)
    panel.set_history(s.steps, s.position)
    panel.set_current(_metrics(0.5), s.position, tuple(s.steps[: s.position]))
    off = panel.step_accuracy()
    assert sorted(off) == [0, 1, 3] and off[3] == 0.5  # measured with step 2 on: no longer this state
    s.set_step_enabled(1, True)
    panel.set_history(s.steps, s.position)
    panel.set_current(_metrics(0.863), s.position, tuple(s.steps[: s.position]))
    again = panel.step_accuracy()
    assert sorted(again) == [0, 1, 2, 3]
    assert again[2] == before[2] and again[3] == 0.863
    xs, _ys = panel.step_curve.getData()
    assert list(xs) == [0, 1, 2, 3]


def test_a_point_of_another_edit_at_the_same_place_is_not_kept(qtbot, theme_reset):
    panel, s = _edited_panel()
    s.undo()
    s.apply(Scale(target="d/kernel", factor=7.0))  # another step 3: the old point 3 is not its result
    panel.set_history(s.steps, s.position)
    assert sorted(panel.step_accuracy()) == [0, 1, 2]


def test_clear_forgets_the_model_and_the_class_chart_takes_the_next_models_classes(qtbot, theme_reset):
    panel, _s = _edited_panel(classes=10)
    panel.offer_choices("signature", ["serving_default", "other"], "other")
    panel.show_message("something went wrong")
    area = _in_dock(qtbot, panel, 330, 640)  # noqa: F841 (keeps the dock, and the panel in it, alive)
    assert panel.num_classes_shown == 10
    panel.clear()
    assert panel.baseline is None and panel.current is None and panel.step_accuracy() == {}
    assert panel.num_classes_shown == 0 and panel.class_plot.getAxis("bottom")._weightlab_ticks == [[]]
    assert panel.class_base.opts["height"] is None or len(panel.class_base.opts["height"]) == 0
    assert panel.step_curve.getData()[0] is None or len(panel.step_curve.getData()[0]) == 0
    assert panel.provisional() is None and panel.running_label.text() == ""
    assert panel.cur_acc.text() == "–" and panel.cur_acc_delta.text() == ""
    assert panel.message.isHidden() and "Held-out set: none" in panel.data_label.text()
    assert panel.choice_boxes["signature"].isHidden() and panel.choice_boxes["signature"].count() == 0
    # the next model (no held-out set chosen yet): no classes of the previous one on its axis
    panel.reset(None)
    assert panel.class_plot.getAxis("bottom")._weightlab_ticks == [[]]
    # a 7-class model's baseline: 7 classes
    panel.set_data_info("seven.npz", 70, 7)
    panel.set_baseline(_metrics(0.8, 7))
    assert panel.num_classes_shown == 7
    assert [p for p, _ in panel.class_plot.getAxis("bottom")._weightlab_ticks[0]] == list(range(7))
    assert panel.class_plot.getViewBox().viewRange()[0][1] < 7


def test_eval_colours_follow_the_theme(qtbot, theme_reset):
    theme = theme_reset
    panel, _s = _edited_panel()
    assert theme.css("negative") in panel.cur_acc_delta.text()  # accuracy fell: bad news colour
    assert theme.css("positive") in panel.cur_loss_delta.text() or theme.css("negative") in panel.cur_loss_delta.text()
    light_neg = theme.css("negative")
    pen_light = panel.step_curve.opts["pen"].color().name()
    theme.set_scheme("dark")
    assert theme.is_dark()
    assert theme.css("negative") != light_neg
    assert theme.css("negative") in panel.cur_acc_delta.text()  # repainted on the change
    assert panel.step_curve.opts["pen"].color().name() == theme.css("accent") != pen_light
    assert theme.css("warning") in panel.running_label.styleSheet()


# -- the edit panel and its forms -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["prune_magnitude", "prune_neurons", "zero_neurons", "clip_percentile", "add_noise"])
@pytest.mark.parametrize(("width", "height"), [(330, 260), (330, 640), (700, 900)])
def test_op_form_rows_are_never_squashed(qtbot, theme_reset, key, width, height):
    from weightlab.gui.edit_panel import EditPanel
    from weightlab.gui.selection import NeuronSelection

    panel = EditPanel(NeuronSelection())
    panel.select_op(key)
    area = _in_dock(qtbot, panel, width, height)
    assert panel.minimumSizeHint().width() <= 330 - area.verticalScrollBar().sizeHint().width()
    form = panel.forms[key]
    rows = [w for w in form.fields.values() if w.isVisible()]
    assert rows
    rects = []
    for w in rows:
        assert w.height() >= w.minimumSizeHint().height(), (key, type(w).__name__, w.height())
        assert w.width() >= w.minimumSizeHint().width()
        rects.append(_rect_in(w, panel))
    for a, b in zip(rects, rects[1:]):
        assert not a.intersects(b)
    assert _rect_in(panel.apply_btn, panel).top() > max(r.bottom() for r in rects)


def test_history_greys_with_the_theme(qtbot, theme_reset):
    from weightlab.gui.edit_panel import HistoryView

    s = memory_session("m.npz", {"d/kernel": np.ones((3, 2), np.float32)})
    s.apply(Scale(target="d/kernel", factor=2.0))
    s.apply(Scale(target="d/kernel", factor=3.0))
    s.undo()
    view = HistoryView()
    qtbot.addWidget(view)
    view.set_session(s)
    assert view.list.item(2).foreground().color() == theme_reset.color("muted")
    theme_reset.set_scheme("dark")
    assert view.list.item(2).foreground().color() == theme_reset.color("muted")


# -- the sweeps panel and the ranking view ------------------------------------------------------


def test_sweeps_table_scrolls_in_a_small_tab(qtbot, theme_reset):
    from weightlab.core.stats import wilson_interval
    from weightlab.core.sweeps import SweepPoint, SweepResult, SweepSpec
    from weightlab.gui.sweeps_panel import TABLE_MIN_ROWS, SweepsPanel

    n = 1000

    def point(target, value, acc):
        ci = wilson_interval(round(acc * n), n)
        return SweepPoint(target, value, acc, 1 - acc, acc, (), n, ci, ci)

    values = tuple(float(v) for v in np.linspace(0.01, 0.5, 12))
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=values, mode="each",
                     budget_pp=2.0, scale="linear", metric="accuracy")
    points = [point(f"conv2d_{k}/kernel", v, 0.9 - v * k / 5) for k in range(4) for v in values]
    panel = SweepsPanel()
    qtbot.addWidget(panel)
    panel.set_result(SweepResult(spec, point("", None, 0.9), points), now=True)
    panel.resize(470, 260)
    panel.show()
    qtbot.waitExposed(panel)
    QApplication.processEvents()
    table = panel.table
    assert table.rowCount() == len(points)
    row_h = table.verticalHeader().defaultSectionSize()
    assert table.viewport().height() >= (TABLE_MIN_ROWS - 1) * row_h  # room for rows beside the scroll bar
    bar = table.verticalScrollBar()
    assert bar.maximum() > 0
    table.scrollToBottom()
    QApplication.processEvents()
    last = table.visualItemRect(table.item(len(points) - 1, 0))
    assert table.viewport().rect().contains(last.center())  # the last row is reachable


def test_sweeps_table_colours_follow_the_theme(qtbot, theme_reset):
    from weightlab.core.stats import wilson_interval
    from weightlab.core.sweeps import SweepPoint, SweepResult, SweepSpec
    from weightlab.gui.sweep_plot import target_colour
    from weightlab.gui.sweeps_panel import SweepsPanel

    ci = wilson_interval(500, 1000)
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1,), mode="each",
                     budget_pp=2.0, scale="linear", metric="accuracy")
    pts = [SweepPoint(f"t{k}/kernel", 0.1, 0.5, 0.5, 0.5, (), 1000, ci, ci) for k in range(3)]
    panel = SweepsPanel()
    qtbot.addWidget(panel)
    panel.set_result(SweepResult(spec, SweepPoint("", None, 0.9, 0.1, 0.9, (), 1000, ci, ci), pts), now=True)
    theme_reset.set_scheme("dark")
    for row in range(3):
        assert panel.table.item(row, 0).foreground().color() == target_colour(row)


@pytest.mark.parametrize(("width", "narrow"), [(470, True), (1000, False), (2000, False)])
def test_ranking_view_reflows(qtbot, theme_reset, width, narrow):
    from PySide6.QtCore import Qt

    from weightlab.gui.ranking_view import RankingView

    view = RankingView()
    qtbot.addWidget(view)
    view.resize(width, 420)
    view.show()
    qtbot.waitExposed(view)
    QApplication.processEvents()
    want = Qt.Orientation.Vertical if narrow else Qt.Orientation.Horizontal
    assert view.splitter.orientation() == want
    plots = [_rect_in(w, view) for w in (view.plot, view.cum_plot, view.table)]
    for i, a in enumerate(plots):
        assert a.width() > 50 and a.height() >= 50
        for b in plots[i + 1:]:
            assert not a.intersects(b)
    assert view.cum_plot.plotItem.legend is None  # a legend box covered the curves in a small pane
    theme_reset.set_scheme("dark")
    assert view.cum_top.opts["pen"].color() == theme_reset.color("negative")
    assert view.bars.opts["brush"].color() == theme_reset.color("brush")


# -- the training panel's histogram ---------------------------------------------------------------


@pytest.mark.parametrize("width", [470, 1300, 2500])
def test_training_histogram_title_is_elided_with_the_whole_title_in_the_tooltip(qtbot, theme_reset, width):
    from weightlab.gui.training_plot import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    plot.resize(width, width // 2)
    plot.show()
    qtbot.waitExposed(plot)
    name = "sequential_block_3/conv2d_transpose_12/kernel"
    edges = np.linspace(-1.0, 1.0, 41)
    counts = np.arange(40, dtype=np.float64)
    plot.set_histogram(name, edges, counts, counts, epoch=3, note="32,768 weights, 26,214 zeros not drawn")
    QApplication.processEvents()
    item = plot.histogram.getPlotItem()
    title = item.titleLabel
    shown = title.item.boundingRect().width()
    assert shown <= plot.histogram.getViewBox().width() + 1  # the title fits above the plotting area
    assert item.mapRectToScene(item.boundingRect()).right() <= plot.histogram.width() + 1  # the plot fits its widget
    assert name in plot.histogram.toolTip() and "26,214 zeros" in plot.histogram.toolTip()
    assert "epoch 3" in title.text
    if width >= 2500:
        assert name in title.text  # room enough: nothing elided
    if width <= 470:
        assert "…" in title.text


# -- the window: the evaluation controller and stale state ---------------------------------------


def test_window_step_chart_and_classes_survive_toggles_and_reset_for_another_model(qtbot, make_window, demo_paths):
    """Through the window (a fake engine): a step switched off and on keeps every point of the step
    chart; another model starts with an empty chart and takes its own number of classes."""
    from weightlab.engine.events import Metrics
    from weightlab.gui.engine_adapter import EngineAdapter

    factory = FakeEngine()
    w = make_window(EngineAdapter(client_factory=factory))
    panel = w.eval_panel
    assert w.open_and_wait(demo_paths["keras"], data=demo_paths["data"])
    client = factory.clients[0]
    client.model_ready(True, num_samples=360, num_classes=10)

    def answer(job: int, acc: float, classes: int = 10) -> None:
        with qtbot.waitSignal(w.engine.result, timeout=5000):
            client.finish(job, Metrics(acc, 1 - acc, per_class=[acc] * classes, num_samples=360, seconds=0.01))

    answer(client.baseline_job, 0.98)
    for k in range(3):
        w.session.apply(Scale(target="dense", factor=0.9 - 0.1 * k))
        qtbot.waitUntil(lambda k=k: len(client.evaluated) == k + 1, timeout=5000)
        answer(client.evaluated[-1][0], 0.95 - 0.05 * k)
    assert sorted(panel.step_accuracy()) == [0, 1, 2, 3]
    measured = panel.step_accuracy()
    for on, acc in ((False, 0.7), (True, 0.85)):
        seen = len(client.evaluated)
        w.history.set_step_checked(1, on)
        w.wait_idle()
        qtbot.waitUntil(lambda seen=seen: len(client.evaluated) > seen, timeout=5000)
        answer(client.evaluated[-1][0], acc)
    again = panel.step_accuracy()
    assert sorted(again) == [0, 1, 2, 3]  # step 2's point is back: the same state as measured
    assert again[2] == pytest.approx(measured[2]) and again[3] == pytest.approx(0.85)
    assert list(panel.step_curve.getData()[0]) == [0, 1, 2, 3]
    assert panel.num_classes_shown == 10

    # another model without a held-out set: nothing of the demo's stays
    assert w.open_and_wait(demo_paths["h5"])
    assert panel.step_accuracy() == {} and panel.num_classes_shown == 0
    assert panel.class_plot.getAxis("bottom")._weightlab_ticks == [[]]
    assert panel.cur_acc.text() == "–" and panel.cur_acc_delta.text() == ""


@pytest.mark.parametrize(("width", "height"), [(1024, 640), (1400, 900), (2560, 1440)])
def test_window_docks_show_accuracy_and_form_rows_unsquashed(qtbot, window, demo_paths, width, height):
    """In the window's own docks (whatever their size at this window size) nothing is squeezed or overlaps."""
    from weightlab.gui.eval_panel import EvalPanel

    window.resize(width, height)
    assert window.open_and_wait(demo_paths["keras"])
    panel: EvalPanel = window.eval_panel
    panel.set_baseline(_metrics(0.98))
    panel.set_current(_metrics(0.806), 0, ())
    window.edit_panel.select_op("prune_magnitude")
    QApplication.processEvents()
    bar = _rect_in(panel.progress, panel)
    for label in (panel.cur_acc, panel.cur_acc_delta, panel.cur_loss_delta):
        assert label.isVisible() and _rect_in(label, panel).bottom() < bar.top()
        assert label.height() >= label.minimumSizeHint().height()
    assert panel.charts.height() >= panel.charts.minimumHeight()
    form = window.edit_panel.forms["prune_magnitude"]
    for w in (w for w in form.fields.values() if w.isVisible()):
        assert w.height() >= w.minimumSizeHint().height()

"""Themes (weightlab.gui.theme) and the plot widgets that follow them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui

QtGui = pytest.importorskip("PySide6.QtGui")


@pytest.fixture
def theme(qapp, config_dir):
    """The theme module, put back to "system" without presentation mode after the test."""
    from weightlab.gui import theme as mod

    yield mod
    mod.set_presentation(False)
    mod.set_scheme("system")


def _lightness(role) -> int:
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().palette().color(role).lightness()


def test_dark_scheme_is_a_real_dark_palette(theme):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    theme.set_scheme("light")
    assert not theme.is_dark()
    assert _lightness(QPalette.ColorRole.Window) > 128
    theme.set_scheme("dark")
    assert theme.scheme() == "dark" and theme.is_dark()
    assert _lightness(QPalette.ColorRole.Window) < 100
    assert _lightness(QPalette.ColorRole.Base) < 100
    assert _lightness(QPalette.ColorRole.WindowText) > 180
    assert QApplication.instance().style().name().lower() == "fusion"
    # the roles follow: light text on a dark plot background
    assert theme.color("bg").lightness() < 100 < theme.color("fg").lightness()
    theme.set_scheme("light")
    assert theme.color("bg").lightness() > 200 > theme.color("fg").lightness()


def test_roles_are_distinct_and_css_is_hex(theme):
    for name in ("light", "dark"):
        theme.set_scheme(name)
        roles = [
            "fg",
            "muted",
            "bg",
            "grid",
            "accent",
            "positive",
            "negative",
            "warning",
            "brush",
            "highlight",
        ]
        colours = {r: theme.css(r) for r in roles}
        assert all(c.startswith("#") and len(c) == 7 for c in colours.values())
        assert len(set(colours.values())) == len(roles), colours
        series = [theme.css(f"series:{i}") for i in range(10)]
        assert len(set(series)) == 10
        assert theme.css("series:12") == series[2]
    with pytest.raises(KeyError):
        theme.color("nope")
    with pytest.raises(KeyError):
        theme.color("series:x")


def test_text_roles_contrast_with_the_background(theme):
    def contrast(a, b) -> float:  # WCAG contrast ratio
        def lum(c):
            def ch(v):
                v /= 255
                return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

            return 0.2126 * ch(c.red()) + 0.7152 * ch(c.green()) + 0.0722 * ch(c.blue())

        hi, lo = sorted((lum(a), lum(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    for name in ("light", "dark"):
        theme.set_scheme(name)
        bg = theme.color("bg")
        assert contrast(theme.color("fg"), bg) >= 7
        for role in ("muted", "positive", "negative", "warning", "accent"):
            assert contrast(theme.color(role), bg) >= 4.5, (name, role)


def test_changed_is_emitted_and_choice_saved(theme, qtbot):
    from weightlab.gui.settings import qsettings

    with qtbot.waitSignal(theme.signals.changed, timeout=1000):
        theme.set_scheme("dark")
    assert qsettings().value("view/theme") == "dark"
    with qtbot.waitSignal(theme.signals.changed, timeout=1000):
        theme.set_presentation(True)
    assert theme.presentation()
    assert str(qsettings().value("view/presentation")).lower() == "true"
    with pytest.raises(ValueError, match="unknown colour scheme"):
        theme.set_scheme("purple")
    assert theme.scheme() == "dark"


def test_restore_applies_saved_choice_and_is_idempotent(theme, qtbot):
    from weightlab.gui.settings import qsettings

    theme.set_scheme("light")
    s = qsettings()
    s.setValue("view/theme", "dark")
    s.setValue("view/presentation", "true")
    s.sync()
    with qtbot.waitSignal(theme.signals.changed, timeout=1000):
        theme.restore()
    assert theme.scheme() == "dark" and theme.is_dark() and theme.presentation()
    with qtbot.assertNotEmitted(theme.signals.changed):
        theme.restore()


@pytest.mark.parametrize("value", ["purple", "", "3"])
def test_restore_ignores_odd_saved_values(theme, value):
    from weightlab.gui.settings import qsettings

    s = qsettings()
    s.setValue("view/theme", value)
    s.setValue("view/presentation", value)
    s.sync()
    theme.restore()
    assert theme.scheme() == "system"
    assert theme.presentation() is False


def test_presentation_scales_font_and_lines(theme):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    theme.set_presentation(False)
    base = app.font().pointSizeF()
    width = theme.line_width(1.5)
    theme.set_presentation(True)
    assert app.font().pointSizeF() == pytest.approx(base * theme.PRESENTATION_SCALE)
    assert theme.line_width(1.5) > width
    theme.set_presentation(False)
    assert app.font().pointSizeF() == pytest.approx(base)


def test_system_follows_the_platform_colour_scheme(theme, monkeypatch, qtbot):
    """ "system" resolves QStyleHints.colorScheme and re-applies on colorSchemeChanged."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    hints = QApplication.instance().styleHints()
    theme.set_scheme("system")
    current = {"scheme": Qt.ColorScheme.Dark}
    monkeypatch.setattr(type(hints), "colorScheme", lambda self: current["scheme"])
    with qtbot.waitSignal(theme.signals.changed, timeout=1000):
        theme._on_system_scheme_changed(Qt.ColorScheme.Dark)
    assert theme.is_dark()
    current["scheme"] = Qt.ColorScheme.Light
    with qtbot.waitSignal(theme.signals.changed, timeout=1000):
        theme._on_system_scheme_changed(Qt.ColorScheme.Light)
    assert not theme.is_dark()
    # a forced scheme ignores the platform
    theme.set_scheme("light")
    current["scheme"] = Qt.ColorScheme.Dark
    with qtbot.assertNotEmitted(theme.signals.changed):
        theme._on_system_scheme_changed(Qt.ColorScheme.Dark)
    assert not theme.is_dark()


# -- plot widgets -----------------------------------------------------------------


def test_plot_widget_restyles_on_theme_change(theme, qtbot):
    from weightlab.gui.plots import plot_widget

    theme.set_scheme("light")
    p = plot_widget()
    qtbot.addWidget(p)
    p.setTitle("a title")
    assert p.backgroundBrush().color() == theme.color("bg")
    theme.set_scheme("dark")
    assert p.backgroundBrush().color() == theme.color("bg")
    assert p.backgroundBrush().color().lightness() < 100
    for side in ("left", "bottom"):
        axis = p.getAxis(side)
        assert axis.textPen().color() == theme.color("fg")
        assert axis.pen().color() == theme.color("muted")
    assert theme.css("fg") in p.getPlotItem().titleLabel.item.toHtml().lower() or (
        p.getPlotItem().titleLabel.opts["color"] == theme.color("fg")
    )


def test_presentation_mode_enlarges_ticks_and_keeps_reserved_axis_width(theme, qtbot):
    from weightlab.gui.plots import plot_widget, reserve_axis_width

    p = plot_widget()
    qtbot.addWidget(p)
    reserve_axis_width(p, "88888888")
    width = p.getAxis("left").minimumWidth()
    size = p.getAxis("left").style["tickFont"].pointSizeF()
    theme.set_presentation(True)
    assert p.getAxis("left").style["tickFont"].pointSizeF() > size
    assert p.getAxis("left").minimumWidth() > width  # re-reserved for the larger text
    theme.set_presentation(False)
    assert p.getAxis("left").minimumWidth() == width


def test_a_deleted_plot_is_not_restyled(theme, qtbot):
    """The theme hook dies with its widget: changing the theme afterwards raises nothing (pytest-qt fails on slot errors)."""
    import shiboken6

    from weightlab.gui.plots import plot_widget

    p = plot_widget()
    shiboken6.delete(p)
    theme.set_scheme("dark")
    theme.set_scheme("light")


def test_views_recolour_on_theme_change(theme, qtbot):
    import numpy as np

    from weightlab.gui.diff_view import DiffView
    from weightlab.gui.norms_view import NormsView
    from weightlab.gui.selection import NeuronSelection
    from weightlab.gui.training_plot import TrainingPlot

    theme.set_scheme("light")
    norms = NormsView(NeuronSelection())
    diff = DiffView()
    training = TrainingPlot()
    for w in (norms, diff, training):
        qtbot.addWidget(w)
    norms.set_norms(np.array([1.0, 2.0, 3.0]), of="d/kernel")
    light = (
        norms.bars.opts["brush"].color().name(),
        diff.curve.opts["pen"].color().name(),
        training.curves["loss"].opts["pen"].color().name(),
        training.curves["ghost"].opts["pen"].color().name(),
    )
    theme.set_scheme("dark")
    dark = (
        norms.bars.opts["brush"].color().name(),
        diff.curve.opts["pen"].color().name(),
        training.curves["loss"].opts["pen"].color().name(),
        training.curves["ghost"].opts["pen"].color().name(),
    )
    assert all(a != b for a, b in zip(light, dark, strict=True)), (light, dark)
    assert dark[0] == theme.css("brush") and dark[3] == theme.css("muted")
    # titles name the curves in their (new) colours
    assert dark[2] in training.loss.getPlotItem().titleLabel.text


def test_presentation_mode_thickens_curves(theme, qtbot):
    from weightlab.gui.training_plot import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    width = plot.curves["loss"].opts["pen"].widthF()
    theme.set_presentation(True)
    assert plot.curves["loss"].opts["pen"].widthF() > width


# -- views' state -----------------------------------------------------------------


def test_diff_view_clear_keeps_no_old_axes(qtbot):
    import numpy as np

    from weightlab.gui.diff_view import DEFAULT_X_LABEL, DiffView

    view = DiffView()
    qtbot.addWidget(view)
    a = np.zeros((3, 3, 2, 4), np.float32)
    b = a.copy()
    b[0, 0, 0, 1] = 0.5
    view.show_diff("conv/kernel", a, b, "stored", "now")
    bottom = view.map.getAxis("bottom")
    assert bottom.labelText == "output filter" and bottom._tickLevels is not None
    assert view.hist.getAxis("bottom").labelText == "now − stored"
    view.clear("another model")
    assert view.diff is None and view.title.text() == "another model"
    for side in ("bottom", "left"):
        axis = view.map.getAxis(side)
        assert axis.labelText == "" and axis._tickLevels is None
    assert view.hist.getAxis("bottom").labelText == DEFAULT_X_LABEL
    assert view.map_image.image is None
    assert view.curve.getData()[0] is None or len(view.curve.getData()[0]) == 0


def test_norms_view_clear(qtbot):
    import numpy as np

    from weightlab.gui.norms_view import NormsView
    from weightlab.gui.selection import NeuronSelection

    view = NormsView(NeuronSelection())
    qtbot.addWidget(view)
    view.set_norms(np.arange(1.0, 11.0), of="dense/kernel")
    view.clear()
    assert view.norms is None and view.title.text() == ""
    x, _y = view.bars.getData()
    assert x is None or len(x) == 0
    assert view.neuron_at(QtGui.QVector2D(3, 0).toPointF()) is None


def test_histogram_bins_are_remembered(config_dir, qtbot):
    from weightlab.gui.histogram_view import DEFAULT_BINS, HistogramView

    first = HistogramView()
    qtbot.addWidget(first)
    assert first.bins.value() == DEFAULT_BINS
    first.bins.setValue(37)
    second = HistogramView()
    qtbot.addWidget(second)
    assert second.bins.value() == 37


@pytest.mark.parametrize("saved", ["many", "3", "999999", "-4", "true"])
def test_histogram_bins_ignore_odd_saved_values(config_dir, qtbot, saved):
    from weightlab.gui.histogram_view import BINS_KEY, DEFAULT_BINS, HistogramView
    from weightlab.gui.settings import qsettings

    s = qsettings()
    s.setValue(BINS_KEY, saved)
    s.sync()
    view = HistogramView()
    qtbot.addWidget(view)
    assert view.bins.value() == DEFAULT_BINS


# -- small sizes ------------------------------------------------------------------


def test_elided_label_keeps_full_text_and_tooltip(qtbot):
    from weightlab.gui.plots import ElidedLabel

    text = "<b>conv2d/kernel</b> 3×3×1×16 · image 3×63 · <span style='color:#c00'>level of detail: 4×4 blocks</span>"
    label = ElidedLabel(text)
    qtbot.addWidget(label)
    label.resize(90, 20)
    label.show()
    qtbot.waitExposed(label)
    assert label.text() == text  # callers and tests read the full text
    assert (
        label.is_elided()
        and "…" in QtGui.QTextDocumentFragment.fromHtml(super(type(label), label).text()).toPlainText()
    )
    assert "level of detail: 4×4 blocks" in label.toolTip()
    assert label.minimumSizeHint().width() <= 1  # never widens its pane
    label.resize(2000, 20)
    assert not label.is_elided()


def test_histogram_hint_and_heatmap_title_fit_a_small_pane(qtbot):
    """At a small pane the hint row sits under the plot (no overlap) and the heatmap title stays one line."""
    from weightlab.gui.heatmap_view import HOVER_HINT, HeatmapView
    from weightlab.gui.histogram_view import RANGE_HINT, HistogramView
    from weightlab.gui.selection import NeuronSelection

    hist = HistogramView()
    heat = HeatmapView(NeuronSelection())
    for w in (hist, heat):
        qtbot.addWidget(w)
        w.resize(300, w.minimumSizeHint().height())
        w.show()
        qtbot.waitExposed(w)
    assert hist.range_label.text() == RANGE_HINT and hist.range_label.is_elided()
    plot = hist.plot.geometry()
    assert not plot.intersects(hist.range_label.geometry())
    assert not plot.intersects(hist.stats_label.geometry())
    assert hist.range_label.geometry().top() >= plot.bottom()
    long = "<b>" + "block_with_a_very_long_name/" * 4 + "kernel</b> 3×3×64×64 · image 255×4095 · colour ±0.5"
    heat.title.setText(long)
    line = heat.title.fontMetrics().lineSpacing()
    assert heat.title.height() < 2 * line  # one line: elided, not wrapped a word per line
    assert not heat.title.geometry().intersects(heat.plot.geometry())
    assert heat.hover_label.text() == HOVER_HINT and heat.hover_label.is_elided()


def _brightest_text_lightness(label) -> tuple[int, int]:
    """(background lightness, lightness of the pixel farthest from it) of ``label`` as drawn."""
    image = label.grab().toImage()
    bg = image.pixelColor(1, 1).lightness()
    far = max(
        (image.pixelColor(x, y).lightness() for x in range(image.width()) for y in range(image.height())),
        key=lambda v: abs(v - bg),
    )
    return bg, far


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_monospace_readouts_are_readable_in_both_schemes(theme, qtbot, scheme):
    """The statistics line and the hover readouts are drawn in the palette's text colour.

    They used ``setStyleSheet("font-family: monospace")``, whose text stayed
    black on the dark theme's background after a switch to dark.
    """
    from weightlab.gui.histogram_view import HistogramView

    view = HistogramView()
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    theme.set_scheme(scheme)
    label = view.stats_label
    label.setText("n 144  min -0.2181  max 0.244")
    label.resize(label.sizeHint())
    bg, text = _brightest_text_lightness(label)
    assert abs(text - bg) > 100, (scheme, bg, text)
    assert label.font().styleHint() == label.font().StyleHint.Monospace


@pytest.mark.parametrize("count", [1, 4, 16, 300])
def test_norms_axis_has_whole_neuron_ticks_only(qtbot, count):
    """A 4-neuron layer's norm bars were labelled -0.5, 0, 0.5 ... 3.5 (pyqtgraph's own ticks)."""
    import numpy as np

    from weightlab.gui.norms_view import NormsView
    from weightlab.gui.selection import NeuronSelection

    view = NormsView(NeuronSelection())
    qtbot.addWidget(view)
    view.resize(500, 200)
    view.show()
    view.set_norms(np.linspace(0.1, 1.0, count), of="dense/kernel")
    axis = view.plot.getAxis("bottom")
    lo, hi = view.plot.getViewBox().viewRange()[0]
    values = [v for _, level in axis.tickValues(lo, hi, axis.width() or 400) for v in level]
    assert values, "no ticks"
    assert all(float(v).is_integer() and 0 <= v < count for v in values), values
    assert 0.0 in values

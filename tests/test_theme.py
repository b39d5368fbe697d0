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

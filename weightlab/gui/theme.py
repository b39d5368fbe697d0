"""The window's colour scheme (system / light / dark) and presentation mode.

One place decides the colours of everything the window draws itself (plots,
hints, deltas, colour-bar labels): widgets ask :func:`color` or :func:`css`
for a *role* instead of hard-coding a grey, and repaint when
:data:`signals` ``.changed`` fires (after any change of scheme, of the
system's colour scheme while following it, or of presentation mode).

* ``"light"`` and ``"dark"`` force a palette: dark is a real dark palette
  (the Fusion style with a dark :class:`QPalette`, since native styles draw
  their own light chrome whatever the palette says); light forces Fusion's
  standard light palette when the platform is dark, and otherwise gives the
  application back its own style and palette.
* ``"system"`` (the default) follows Qt's colour scheme
  (:meth:`QStyleHints.colorScheme`, updated live through
  ``colorSchemeChanged``); where the platform does not say (``Unknown``, e.g.
  offscreen), the application's own palette decides.
* Presentation mode (for projectors) scales the application font by
  :data:`PRESENTATION_SCALE`, thickens plot lines (:func:`line_width`) and
  raises contrast (muted text and grids closer to the foreground).

The choice is saved in the window's QSettings (``view/theme``,
``view/presentation``); :func:`restore` applies the saved choice.

Roles understood by :func:`color`: ``fg``, ``muted``, ``bg``, ``grid``,
``accent``, ``positive``, ``negative``, ``warning``, ``brush``,
``highlight`` and ``series:<i>`` (a categorical series colour, any ``i >= 0``,
cycling through ten).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

__all__ = [
    "PRESENTATION_SCALE",
    "SCHEMES",
    "color",
    "css",
    "is_dark",
    "line_width",
    "presentation",
    "restore",
    "scheme",
    "set_presentation",
    "set_scheme",
    "signals",
]

#: The colour schemes a user can choose.
SCHEMES = ("system", "light", "dark")
#: Font scale of presentation mode.
PRESENTATION_SCALE = 1.4
#: Plot line width scale of presentation mode.
PRESENTATION_LINE_SCALE = 2.0

_KEY_THEME = "view/theme"
_KEY_PRESENTATION = "view/presentation"

# Light colours: dark text on white; series are matplotlib's tab10.
_LIGHT = {
    "fg": "#202124",
    "muted": "#5f6368",
    "bg": "#ffffff",
    "grid": "#d5d8dc",
    "accent": "#1f6fb4",
    "positive": "#237032",
    "negative": "#c92a2a",
    "warning": "#c2410c",
    "brush": "#4c8fd6",
    "highlight": "#e8590c",
}
# Dark colours: light text on a dark grey (not black: less glare), brighter hues.
_DARK = {
    "fg": "#e6e6e6",
    "muted": "#a0a4a8",
    "bg": "#1f2023",
    "grid": "#3d4045",
    "accent": "#5aa9f0",
    "positive": "#69db7c",
    "negative": "#ff6b6b",
    "warning": "#ffa94d",
    "brush": "#4d8fd0",
    "highlight": "#ffc14d",
}
# Presentation mode: higher contrast for washed-out projectors.
_LIGHT_PRESENT = {"fg": "#000000", "muted": "#303336", "grid": "#a8adb3", "brush": "#2f74c0"}
_DARK_PRESENT = {"fg": "#ffffff", "muted": "#d0d3d6", "grid": "#5c6066", "brush": "#5aa0e6"}

_SERIES_LIGHT = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
_SERIES_DARK = (
    "#4ea3e6", "#ffa04d", "#5cc95c", "#f0605f", "#b594dd",
    "#c49a8f", "#f29bd6", "#b8b8b8", "#d6d752", "#3fd6e6",
)  # fmt: skip


class _Signals(QObject):
    """Holder of :attr:`changed` (a module cannot own a Qt signal)."""

    #: Emitted after any change of the shown scheme or presentation mode.
    changed = Signal()


#: ``signals.changed.connect(widget.apply_theme)`` to repaint on every change.
signals = _Signals()


class _State:
    scheme = "system"
    presentation = False
    dark = False  # what is shown now
    app: QApplication | None = None  # the application whose originals are below
    original_style: str = ""
    original_palette: QPalette | None = None
    original_font: QFont | None = None
    fusion_forced = False
    listening: QApplication | None = None  # app whose colorSchemeChanged we follow


_state = _State()


def _app() -> QApplication | None:
    app = QApplication.instance()
    return app if isinstance(app, QApplication) else None


def _remember_originals(app: QApplication) -> None:
    if _state.app is app:
        return
    _state.app = app
    _state.original_style = app.style().name()
    _state.original_palette = QPalette(app.palette())
    _state.original_font = QFont(app.font())
    _state.fusion_forced = False
    _state.listening = None


def _system_is_dark(app: QApplication | None) -> bool:
    if app is None:
        return False
    hint = app.styleHints().colorScheme()
    if hint == Qt.ColorScheme.Dark:
        return True
    if hint == Qt.ColorScheme.Light:
        return False
    palette = _state.original_palette if _state.app is app and _state.original_palette else app.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def _dark_palette() -> QPalette:
    p = QPalette()
    window, base, alt = QColor("#2b2d31"), QColor("#1f2023"), QColor("#27292d")
    text, disabled = QColor("#e6e6e6"), QColor("#7c8086")
    role = QPalette.ColorRole
    for r, c in (
        (role.Window, window),
        (role.WindowText, text),
        (role.Base, base),
        (role.AlternateBase, alt),
        (role.ToolTipBase, QColor("#3a3d42")),
        (role.ToolTipText, text),
        (role.PlaceholderText, QColor("#9a9ea4")),
        (role.Text, text),
        (role.Button, QColor("#35383d")),
        (role.ButtonText, text),
        (role.BrightText, QColor("#ff6b6b")),
        (role.Light, QColor("#4a4d52")),
        (role.Midlight, QColor("#3d4045")),
        (role.Mid, QColor("#2f3236")),
        (role.Dark, QColor("#18191b")),
        (role.Shadow, QColor("#0d0d0e")),
        (role.Highlight, QColor("#3d7fc4")),
        (role.HighlightedText, QColor("#ffffff")),
        (role.Link, QColor("#5aa9f0")),
        (role.LinkVisited, QColor("#b594dd")),
    ):
        p.setColor(r, c)
    group = QPalette.ColorGroup.Disabled
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(group, r, disabled)
    p.setColor(group, role.Highlight, QColor("#45484d"))
    return p


def _apply(app: QApplication | None) -> None:
    """Make the application show the chosen scheme and presentation mode."""
    if app is None:
        _state.dark = _state.scheme == "dark"
        return
    _remember_originals(app)
    if _state.listening is not app:
        app.styleHints().colorSchemeChanged.connect(_on_system_scheme_changed)
        _state.listening = app
    system_dark = _system_is_dark(app)
    dark = _state.scheme == "dark" or (_state.scheme == "system" and system_dark)
    if dark or system_dark:  # dark, or light forced on a dark platform: Fusion draws what the palette says
        if app.style().name().lower() != "fusion":  # re-polishing every widget is not free
            app.setStyle(QStyleFactory.create("Fusion"))
            _state.fusion_forced = True
        app.setPalette(_dark_palette() if dark else app.style().standardPalette())
    else:
        if _state.fusion_forced and _state.original_style:
            app.setStyle(QStyleFactory.create(_state.original_style))
            _state.fusion_forced = False
        if _state.original_palette is not None:
            app.setPalette(_state.original_palette)
    base = _state.original_font or app.font()
    font = QFont(base)
    if _state.presentation:
        if base.pointSizeF() > 0:
            font.setPointSizeF(base.pointSizeF() * PRESENTATION_SCALE)
        elif base.pixelSize() > 0:
            font.setPixelSize(round(base.pixelSize() * PRESENTATION_SCALE))
    if app.font() != font:
        app.setFont(font)
    _state.dark = dark


def _on_system_scheme_changed(*_args) -> None:
    if _state.scheme == "system":
        _apply(_app())
        signals.changed.emit()


def _settings():
    from weightlab.gui.settings import qsettings

    return qsettings()


def _read_bool(value, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    if isinstance(value, int):
        return bool(value)
    return default


def restore(app: QApplication | None = None) -> None:
    """Apply the saved scheme and presentation mode (``view/theme``, ``view/presentation``).

    Idempotent: calling it again with unchanged settings changes nothing and
    emits nothing. A missing, corrupt or unknown saved value means the default
    (``"system"``, presentation off).

    Parameters
    ----------
    app : QApplication, optional
        The application to style; default ``QApplication.instance()``.
    """
    app = app if app is not None else _app()
    s = _settings()
    saved = s.value(_KEY_THEME, "system")
    name = saved if isinstance(saved, str) and saved in SCHEMES else "system"
    present = _read_bool(s.value(_KEY_PRESENTATION, False), False)
    before = (_state.scheme, _state.presentation, _state.dark, _state.app is app)
    _state.scheme, _state.presentation = name, present
    _apply(app)
    if before != (_state.scheme, _state.presentation, _state.dark, True):
        signals.changed.emit()


def set_scheme(name: str) -> None:
    """Choose ``"system"``, ``"light"`` or ``"dark"``; apply, save (``view/theme``) and emit ``changed``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`SCHEMES`.
    """
    if name not in SCHEMES:
        raise ValueError(f"unknown colour scheme {name!r} (choose from {', '.join(SCHEMES)})")
    _state.scheme = name
    _settings().setValue(_KEY_THEME, name)
    _apply(_app())
    signals.changed.emit()


def scheme() -> str:
    """The chosen scheme: one of :data:`SCHEMES`."""
    return _state.scheme


def is_dark() -> bool:
    """Whether the scheme shown now is dark (``"system"`` resolved)."""
    return _state.dark


def set_presentation(on: bool) -> None:
    """Turn presentation mode (fonts x1.4, thicker lines, more contrast) on or off; saved in ``view/presentation``."""
    _state.presentation = bool(on)
    _settings().setValue(_KEY_PRESENTATION, _state.presentation)
    _apply(_app())
    signals.changed.emit()


def presentation() -> bool:
    """Whether presentation mode is on."""
    return _state.presentation


def line_width(width: float = 1.0) -> float:
    """A plot line of nominal ``width`` pixels as drawn now (thicker in presentation mode)."""
    return width * PRESENTATION_LINE_SCALE if _state.presentation else width


def color(role: str) -> QColor:
    """The colour of ``role`` in the scheme shown now (see the module docstring for roles).

    Returns a new :class:`QColor` (callers may change its alpha).

    Raises
    ------
    KeyError
        If ``role`` is not a known role.
    """
    dark = _state.dark
    if role.startswith("series:"):
        try:
            i = int(role[len("series:") :])
        except ValueError:
            raise KeyError(f"unknown colour role {role!r}") from None
        if i < 0:
            raise KeyError(f"unknown colour role {role!r}")
        series = _SERIES_DARK if dark else _SERIES_LIGHT
        return QColor(series[i % len(series)])
    table = _DARK if dark else _LIGHT
    if role not in table:
        raise KeyError(f"unknown colour role {role!r} (roles: {', '.join(table)}, series:<i>)")
    if _state.presentation:
        extra = _DARK_PRESENT if dark else _LIGHT_PRESENT
        if role in extra:
            return QColor(extra[role])
    return QColor(table[role])


def css(role: str) -> str:
    """``"#rrggbb"`` of :func:`color` for stylesheets and rich text."""
    return color(role).name(QColor.NameFormat.HexRgb)


def use_monospace(widget) -> None:
    """Show ``widget``'s text in the platform's fixed-width font, at the size it inherits.

    Only the family is set (``QFont`` resolves the rest from the parent), so
    presentation mode still enlarges it, and no style sheet is involved: a
    style sheet on a label froze its palette, which left its text black on
    the dark theme's background.
    """
    font = QFont()
    font.setFamilies(["monospace", "DejaVu Sans Mono", "Menlo", "Consolas", "Courier New"])
    font.setStyleHint(QFont.StyleHint.Monospace)
    widget.setFont(font)

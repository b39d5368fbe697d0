"""The main window's remembered layout: geometry, dock and toolbar state, splitter sizes.

Everything is kept in :func:`weightlab.gui.settings.qsettings` under the
``window/`` group:

``window/geometry``
    ``QMainWindow.saveGeometry()``; a geometry that lies off every screen
    (a monitor since unplugged) is ignored.
``window/state``
    ``QMainWindow.saveState(STATE_VERSION)``: where each dock and the toolbar
    sit, floating or closed. A state of another version is ignored (Qt
    checks the number), so changing the set of docks only needs a new
    :data:`STATE_VERSION`.
``window/splitters/<name>``
    ``QSplitter.saveState()`` of each named splitter.
``window/screen``, ``window/size``, ``window/centre``
    ``"WIDTHxHEIGHT"`` of the screen's available area, of the window and of
    its central widget when the layout was saved. Dock and splitter sizes are
    only right for the size they were made at: when the screen or the
    restored window's size differs by more than :data:`SIZE_TOLERANCE`, or
    the docks would leave the centre narrower than its minimum, the saved
    ARRANGEMENT (which docks are shown, floating, where) is kept but the
    sizes are not: the splitters keep their defaults and the window's default
    dock sizes are applied once it is shown (:func:`restore_layout`'s
    ``default_sizes``).

Settings are a convenience: a missing, corrupt or foreign value is skipped
and the window keeps its default layout; nothing here raises for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QByteArray, QEvent, QObject, QRect, QSettings, QSize, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QSplitter

from .settings import qsettings

__all__ = [
    "CENTRE_KEY",
    "GEOMETRY_KEY",
    "MIN_VISIBLE",
    "SCREEN_KEY",
    "SIZE_KEY",
    "SIZE_TOLERANCE",
    "SPLITTER_PREFIX",
    "STATE_KEY",
    "STATE_VERSION",
    "available_size",
    "on_some_screen",
    "read_bytes",
    "read_size",
    "restore_layout",
    "save_layout",
    "sizes_are_stale",
]

GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"
SPLITTER_PREFIX = "window/splitters/"
SCREEN_KEY = "window/screen"
SIZE_KEY = "window/size"
CENTRE_KEY = "window/centre"
#: Relative change of the screen or window size (either way) beyond which saved dock/splitter sizes are dropped.
SIZE_TOLERANCE = 0.15
#: Version of the dock/toolbar arrangement saved in ``window/state``; bump it when docks are added or renamed.
STATE_VERSION = 1
#: A restored window must show at least this much (px, each way) on one screen, else its geometry is ignored.
MIN_VISIBLE = 100


def read_bytes(settings: QSettings, key: str) -> QByteArray | None:
    """The non-empty byte string stored under ``key``, or None (missing, empty or of another type)."""
    try:
        value = settings.value(key)
    except Exception:  # noqa: BLE001 - a foreign INI value Qt cannot convert
        return None
    if isinstance(value, (bytes, bytearray)):
        value = QByteArray(bytes(value))
    if not isinstance(value, QByteArray) or value.isEmpty():
        return None
    return value


def on_some_screen(rect: QRect, margin: int = MIN_VISIBLE) -> bool:
    """Whether at least ``margin`` x ``margin`` px of ``rect`` (global coordinates) lie on one screen.

    With no screen known (some headless platforms), any rectangle passes.
    """
    screens = QGuiApplication.screens()
    if not screens:
        return True
    for screen in screens:
        inter = rect.intersected(screen.availableGeometry())
        if inter.width() >= min(margin, rect.width()) and inter.height() >= min(margin, rect.height()):
            return True
    return False


def _size_text(size: QSize) -> str:
    return f"{size.width()}x{size.height()}"


def read_size(settings: QSettings, key: str) -> QSize | None:
    """The ``"WIDTHxHEIGHT"`` size stored under ``key`` (both positive), or None (missing or unreadable)."""
    try:
        value = settings.value(key)
        width, height = (int(part) for part in str(value).split("x"))
    except Exception:  # noqa: BLE001 - missing, foreign or corrupt: the layout is a convenience
        return None
    return QSize(width, height) if width > 0 and height > 0 else None


def available_size(window: QMainWindow) -> QSize | None:
    """The available area (without task bars) of the screen ``window`` is on, or of the primary one; None if none."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return None
    size = screen.availableGeometry().size()
    return size if size.width() > 0 and size.height() > 0 else None


def _differs(a: QSize, b: QSize, tolerance: float = SIZE_TOLERANCE) -> bool:
    return abs(a.width() - b.width()) > tolerance * b.width() or abs(a.height() - b.height()) > tolerance * b.height()


def sizes_are_stale(window: QMainWindow, settings: QSettings) -> str | None:
    """Why the saved dock and splitter sizes do not suit ``window`` as restored now, or None when they do.

    Call it after the window's geometry is restored. The sizes are stale when
    the screen's available size differs from the one they were saved on by more
    than :data:`SIZE_TOLERANCE` (either way), when the window's size does
    (the saved geometry was dropped or fitted to a smaller screen), or when the
    docks, as wide as when saved, would leave the central widget narrower than
    its minimum. Values saved before these keys existed make none of these
    tests.

    Returns
    -------
    str or None
        ``"screen"``, ``"window"`` or ``"centre"``; None to keep the saved sizes.
    """
    saved_screen = read_size(settings, SCREEN_KEY)
    now_screen = available_size(window)
    if saved_screen is not None and now_screen is not None and _differs(now_screen, saved_screen):
        return "screen"
    saved_size = read_size(settings, SIZE_KEY)
    if saved_size is None:
        return None
    if not (window.isMaximized() or window.isFullScreen()) and _differs(window.size(), saved_size):
        return "window"
    saved_centre = read_size(settings, CENTRE_KEY)
    centre = window.centralWidget()
    if saved_centre is not None and centre is not None:
        docks_width = saved_size.width() - saved_centre.width()
        need = max(centre.minimumSizeHint().width(), centre.minimumWidth())
        if window.width() - docks_width < need:
            return "centre"
    return None


class _OnFirstShow(QObject):
    """Calls ``fn`` once, on the event-loop turn after ``window`` is first shown (its layout has its size then)."""

    def __init__(self, window: QMainWindow, fn: Callable[[], None]):
        super().__init__(window)
        self._fn = fn
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, obj, self._fn)
            self.deleteLater()
        return False


def save_layout(window: QMainWindow, splitters: Mapping[str, QSplitter], settings: QSettings | None = None) -> None:
    """Write ``window``'s geometry, dock state, each splitter's sizes (``{name: splitter}``) and the sizes they suit."""
    s = settings if settings is not None else qsettings()
    s.setValue(GEOMETRY_KEY, window.saveGeometry())
    s.setValue(STATE_KEY, window.saveState(STATE_VERSION))
    screen = available_size(window)
    if screen is not None:
        s.setValue(SCREEN_KEY, _size_text(screen))
    else:
        s.remove(SCREEN_KEY)
    s.setValue(SIZE_KEY, _size_text(window.size()))
    if window.centralWidget() is not None:
        s.setValue(CENTRE_KEY, _size_text(window.centralWidget().size()))
    for name, splitter in splitters.items():
        s.setValue(SPLITTER_PREFIX + name, splitter.saveState())
    s.sync()


def restore_layout(
    window: QMainWindow,
    splitters: Mapping[str, QSplitter],
    settings: QSettings | None = None,
    default_sizes: Callable[[], None] | None = None,
) -> dict[str, bool]:
    """Apply what :func:`save_layout` wrote, part by part; a missing or unusable part is skipped.

    When the saved sizes do not suit the window as restored
    (:func:`sizes_are_stale`: another screen size, another window size, or a
    centre the docks would squeeze below its minimum), the dock arrangement is
    still restored but the splitters keep their sizes, and ``default_sizes``
    (the window's default dock and splitter sizes) is called once the window
    is shown, or on the next event-loop turn if it is visible already.

    Parameters
    ----------
    window, splitters:
        The main window and its named splitters (``{name: splitter}``).
    settings:
        Where the layout is stored (default: :func:`weightlab.gui.settings.qsettings`).
    default_sizes:
        Sizes the docks and splitters for the window's present size.

    Returns
    -------
    dict
        ``{"geometry": bool, "state": bool, "<splitter name>": bool}``: which
        parts were restored. A geometry whose window would lie off every screen
        is undone (the window keeps the geometry it had). ``"state"`` is True
        when the arrangement was restored, even if its sizes were recomputed.
    """
    s = settings if settings is not None else qsettings()
    done: dict[str, bool] = {"geometry": False, "state": False}
    geometry = read_bytes(s, GEOMETRY_KEY)
    if geometry is not None:
        before = window.saveGeometry()
        if window.restoreGeometry(geometry):
            if window.isMaximized() or window.isFullScreen() or on_some_screen(window.frameGeometry()):
                done["geometry"] = True
            else:
                window.restoreGeometry(before)
    stale = sizes_are_stale(window, s)
    state = read_bytes(s, STATE_KEY)
    if state is not None:
        done["state"] = bool(window.restoreState(state, STATE_VERSION))
    for name, splitter in splitters.items():
        value = None if stale else read_bytes(s, SPLITTER_PREFIX + name)
        done[name] = value is not None and bool(splitter.restoreState(value))
    if stale and done["state"] and default_sizes is not None:
        if window.isVisible():
            QTimer.singleShot(0, window, default_sizes)
        else:
            _OnFirstShow(window, default_sizes)
    return done

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

Settings are a convenience: a missing, corrupt or foreign value is skipped
and the window keeps its default layout; nothing here raises for them.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QByteArray, QRect, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QSplitter

from .settings import qsettings

__all__ = [
    "GEOMETRY_KEY",
    "MIN_VISIBLE",
    "SPLITTER_PREFIX",
    "STATE_KEY",
    "STATE_VERSION",
    "on_some_screen",
    "read_bytes",
    "restore_layout",
    "save_layout",
]

GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"
SPLITTER_PREFIX = "window/splitters/"
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


def save_layout(window: QMainWindow, splitters: Mapping[str, QSplitter], settings: QSettings | None = None) -> None:
    """Write ``window``'s geometry, dock state and each splitter's sizes (``{name: splitter}``)."""
    s = settings if settings is not None else qsettings()
    s.setValue(GEOMETRY_KEY, window.saveGeometry())
    s.setValue(STATE_KEY, window.saveState(STATE_VERSION))
    for name, splitter in splitters.items():
        s.setValue(SPLITTER_PREFIX + name, splitter.saveState())
    s.sync()


def restore_layout(
    window: QMainWindow, splitters: Mapping[str, QSplitter], settings: QSettings | None = None
) -> dict[str, bool]:
    """Apply what :func:`save_layout` wrote, part by part; a missing or unusable part is skipped.

    Returns
    -------
    dict
        ``{"geometry": bool, "state": bool, "<splitter name>": bool}``: which
        parts were restored. A geometry whose window would lie off every screen
        is undone (the window keeps the geometry it had).
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
    state = read_bytes(s, STATE_KEY)
    if state is not None:
        done["state"] = bool(window.restoreState(state, STATE_VERSION))
    for name, splitter in splitters.items():
        value = read_bytes(s, SPLITTER_PREFIX + name)
        done[name] = value is not None and bool(splitter.restoreState(value))
    return done

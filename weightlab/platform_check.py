"""Start-up check: the system libraries Qt's X11 (xcb) platform plugin needs, before Qt tries them.

When a library of the xcb plugin is missing, Qt prints "Could not load the Qt
platform plugin "xcb"" and aborts the whole process (exit status 134), with
no word on which library or package is missing. :func:`xcb_problem` finds
the missing libraries first, without importing Qt, and says how to install
them on Debian/Ubuntu (``apt-get``) and Fedora (``dnf``); ``weightlab``
then exits with status 1 and that message, ``weightlab.show()`` raises it.

How the libraries are found: ``ldd`` on PySide6's own ``libqxcb.so`` lists
every library it needs, directly or through Qt's libraries, that the dynamic
loader cannot find (``=> not found``), so the check follows the installed
PySide6. Where ``ldd`` or the plugin is missing, each library of
:data:`XCB_LIBRARIES` is loaded with :mod:`ctypes` instead.

Imports neither Qt nor anything else of WeightLab: ``weightlab.cli`` and
``weightlab.viewer`` call it before the first ``QApplication``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["XCB_LIBRARIES", "install_commands", "missing_xcb_libraries", "uses_xcb", "xcb_problem"]

#: Every system library PySide6 6.11's xcb plugin needs (``readelf -d`` / ``ldd`` on
#: ``PySide6/Qt/plugins/platforms/libqxcb.so``, ``libQt6XcbQpa.so.6``, ``libQt6Gui.so.6``,
#: ``libQt6Core.so.6`` and ``libQt6DBus.so.6``; libc, libstdc++ and the ICU PySide6 ships
#: left out), as ``soname: (Debian/Ubuntu package, Fedora package)``. The Debian names
#: were checked with ``dpkg -S`` on Debian 12.
XCB_LIBRARIES: dict[str, tuple[str, str]] = {
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
}
#: Seconds ``ldd`` may take (it reads the plugin's dependencies; about 0.07 s).
LDD_TIMEOUT_S = 10.0
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")
#: A library that is there but cannot be loaded (truncated, wrong architecture): ldd stops on it.
_BROKEN = re.compile(r"error while loading shared libraries: (\S+?): ")


def uses_xcb(environ: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """True when Qt would start its xcb plugin here: Linux, and ``QT_QPA_PLATFORM`` unset (without
    ``WAYLAND_DISPLAY``) or naming ``xcb``."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if not plat.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":", 1)[0].split(";", 1)[0] == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so``, or None when PySide6 or the plugin is not installed (found without importing Qt)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def parse_ldd(output: str) -> list[str]:
    """The sonames ``ldd`` reports as ``=> not found`` or cannot load (a broken file), in its order, each once."""
    found: dict[str, None] = {}
    for line in output.splitlines():
        m = _NOT_FOUND.match(line) or _BROKEN.search(line)
        if m:
            found[m.group(1).rpartition("/")[2]] = None
    return list(found)


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_xcb_libraries(
    plugin: Path | None = None,
    *,
    run: Callable[[list[str]], str] | None = None,
    loadable: Callable[[str], bool] | None = None,
) -> list[str]:
    """Sonames the xcb plugin needs that the dynamic loader cannot find (empty when all are there).

    Parameters
    ----------
    plugin:
        The plugin to check (default: PySide6's, see :func:`xcb_plugin`).
    run:
        Runs ``ldd PLUGIN`` and returns its output (for tests; default: :mod:`subprocess`).
    loadable:
        ``soname -> bool``, used when ``ldd`` or the plugin is missing (default: :class:`ctypes.CDLL`).

    Returns
    -------
    list of str
        Sonames such as ``"libxkbcommon-x11.so.0"``.
    """
    plugin = plugin or xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is not None and (ldd is not None or run is not None):
        try:
            output = (run or _run_ldd)([ldd or "ldd", str(plugin)])
        except (OSError, subprocess.SubprocessError):
            output = None
        if output is not None:
            return parse_ldd(output)
    check = loadable or _loadable
    return [soname for soname in XCB_LIBRARIES if not check(soname)]


def _run_ldd(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=LDD_TIMEOUT_S, check=False)
    return done.stdout + done.stderr


def install_commands(missing: Iterable[str]) -> str:
    """``"Debian/Ubuntu: sudo apt-get install ...; Fedora: sudo dnf install ..."`` for ``missing`` sonames.

    A soname not in :data:`XCB_LIBRARIES` is named as such (the distribution's
    package search finds it: ``apt-file search``, ``dnf provides``).
    """
    missing = list(missing)
    debian = list(dict.fromkeys(XCB_LIBRARIES[m][0] for m in missing if m in XCB_LIBRARIES))
    fedora = list(dict.fromkeys(XCB_LIBRARIES[m][1] for m in missing if m in XCB_LIBRARIES))
    unknown = [m for m in missing if m not in XCB_LIBRARIES]
    parts = []
    if debian:
        parts.append(f"on Debian/Ubuntu: sudo apt-get install {' '.join(debian)}")
        parts.append(f"on Fedora: sudo dnf install {' '.join(fedora)}")
    if unknown:
        parts.append(
            f"find the package of {', '.join(unknown)} with apt-file search NAME (Debian/Ubuntu) "
            "or dnf provides '*/NAME' (Fedora)"
        )
    return "; ".join(parts)


def xcb_problem(
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    missing: Callable[[], list[str]] | None = None,
) -> str | None:
    """Why Qt's xcb plugin cannot load here (the libraries missing and how to install them), or None.

    None as well where the xcb plugin is not what Qt would use (see :func:`uses_xcb`).

    Parameters
    ----------
    environ, platform:
        The environment and ``sys.platform`` to judge (default: this process's).
    missing:
        Returns the missing sonames (default: :func:`missing_xcb_libraries`).

    Returns
    -------
    str or None
        One paragraph: the missing libraries, the ``apt-get`` and ``dnf``
        commands, and the way out without a window (``QT_QPA_PLATFORM=offscreen``).
    """
    if not uses_xcb(environ, platform):
        return None
    absent = (missing or missing_xcb_libraries)()
    if not absent:
        return None
    return (
        f"Qt's X11 (xcb) plugin needs {len(absent)} system librar{'y' if len(absent) == 1 else 'ies'} that "
        f"{'is' if len(absent) == 1 else 'are'} not installed (or cannot be loaded): {', '.join(absent)}. Install "
        f"{'it' if len(absent) == 1 else 'them'} {install_commands(absent)}. (Without a window: "
        "QT_QPA_PLATFORM=offscreen, or the headless commands, weightlab --help.)"
    )

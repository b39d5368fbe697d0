"""Install WeightLab as a desktop application for the current user (freedesktop.org desktops).

``weightlab --install-desktop`` writes three files under the user's data
folder (``$XDG_DATA_HOME``, by default ``~/.local/share``):

* ``applications/io.github.weightlab.WeightLab.desktop``: the desktop entry,
  whose ``Exec`` is the absolute path of the running ``weightlab`` launcher
  (so an installation in a virtual environment works without activating it);
* ``icons/hicolor/scalable/apps/io.github.weightlab.WeightLab.svg``: the icon;
* ``mime/packages/io.github.weightlab.WeightLab.xml``: MIME types for
  ``.keras`` (``application/x-keras``) and ``.pb`` (``application/x-tensorflow-graph``),
  and for ``.h5``/``.hdf5`` only when the system's MIME database has no type for them
  (shared-mime-info calls them ``application/x-hdf``; the entry also lists
  ``application/x-hdf5``, the name some systems use).

It then refreshes the desktop's caches with ``update-mime-database``,
``update-desktop-database`` and ``gtk-update-icon-cache`` when they are
installed (quietly; without them the files still work after the next login).
``weightlab --uninstall-desktop`` removes exactly those three files and
refreshes the caches again. Both are idempotent; files are written atomically,
and nothing is written or removed through a symbolic link that leads out of
the data folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from weightlab.core.atomic import atomic_path
from weightlab.core.errors import UnsafeFileError, WeightLabError
from weightlab.resources import ICON_NAME, icon_path

__all__ = [
    "DESKTOP_FILE",
    "ICON_FILE",
    "MIME_FILE",
    "MIME_TYPES",
    "data_home",
    "desktop_entry",
    "install_desktop",
    "launcher",
    "mime_xml",
    "uninstall_desktop",
]

log = logging.getLogger(__name__)

#: Where each installed file goes, relative to the data folder.
DESKTOP_FILE = Path("applications", f"{ICON_NAME}.desktop")
ICON_FILE = Path("icons", "hicolor", "scalable", "apps", f"{ICON_NAME}.svg")
MIME_FILE = Path("mime", "packages", f"{ICON_NAME}.xml")

#: The MIME types the desktop entry opens (``MimeType=``), in that order.
MIME_TYPES = ("application/x-keras", "application/x-hdf", "application/x-hdf5", "application/x-tensorflow-graph")

#: HDF5 globs; defined as ``application/x-hdf5`` only when no system MIME type claims them.
_HDF5_GLOBS = ("*.h5", "*.hdf5")

#: Seconds a cache tool may take before it is abandoned.
_TOOL_TIMEOUT_S = 60

_COMMENT = "Inspect and edit the weights of TensorFlow/Keras models with live held-out accuracy"
_KEYWORDS = "keras;tensorflow;neural network;weights;pruning;ablation;histogram;model;education;"
# desktop entry spec, "The Exec key": characters that make an argument need quotes,
# and those that must be backslash-escaped inside the quotes.
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
_EXEC_ESCAPED = set('"`$\\')


def data_home(prefix: str | os.PathLike[str] | None = None) -> Path:
    """The data folder to install into: ``prefix``, else ``$XDG_DATA_HOME``, else ``~/.local/share``.

    A relative ``$XDG_DATA_HOME`` is ignored, as the XDG base directory
    specification requires.
    """
    if prefix is not None:
        return Path(os.path.abspath(prefix))
    env = os.environ.get("XDG_DATA_HOME", "")
    if env and os.path.isabs(env):
        return Path(env)
    return Path.home() / ".local" / "share"


def launcher() -> list[str]:
    """The command that starts this WeightLab: absolute paths, symbolic links kept.

    A PyInstaller bundle's executable; else the ``weightlab`` script beside the
    running interpreter (a virtual environment's ``bin/weightlab``, not
    resolved, so it stays the environment's); else ``python -m weightlab``.
    """
    exe = os.path.abspath(sys.executable)
    if getattr(sys, "frozen", False):
        return [exe]
    script = Path(exe).parent / ("weightlab.exe" if sys.platform == "win32" else "weightlab")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [exe, "-m", "weightlab"]


def _escape_string(value: str) -> str:
    """A desktop entry ``string`` value: backslash escapes for ``\\``, newline, tab, CR."""
    if any(c in value for c in "\n\r"):
        raise WeightLabError(f"cannot write a desktop entry for a path with a line break: {value!r}")
    return value.replace("\\", "\\\\").replace("\t", "\\t")


def _exec_arg(arg: str) -> str:
    """One ``Exec`` argument, quoted as the desktop entry spec says (before string escaping)."""
    arg = arg.replace("%", "%%")
    if arg and not (_EXEC_RESERVED & set(arg)):
        return arg
    return '"' + "".join("\\" + c if c in _EXEC_ESCAPED else c for c in arg) + '"'


def desktop_entry(command: Sequence[str] | None = None) -> str:
    """The desktop entry's text for ``command`` (default :func:`launcher`).

    ``Exec`` is ``command`` quoted per the desktop entry specification plus
    ``%f`` (one file); ``TryExec`` names ``command[0]``, so the entry
    disappears from menus when that program is gone (e.g. its virtual
    environment was deleted). A bare name (``["weightlab"]``, as in
    ``packaging/``) is looked up on ``PATH`` by the desktop.

    Raises
    ------
    WeightLabError
        When a path contains a line break (not representable).
    """
    command = list(launcher() if command is None else command)
    exec_line = " ".join(_exec_arg(a) for a in command) + " %f"
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=WeightLab\n"
        "GenericName=Neural Network Weight Editor\n"
        f"Comment={_COMMENT}\n"
        f"Exec={_escape_string(exec_line)}\n"
        f"TryExec={_escape_string(command[0])}\n"
        f"Icon={ICON_NAME}\n"
        "Terminal=false\n"
        "StartupNotify=true\n"
        "Categories=Science;ArtificialIntelligence;\n"
        f"Keywords={_KEYWORDS}\n"
        f"MimeType={';'.join(MIME_TYPES)};\n"
    )


def _system_globs(environ: dict[str, str] | os._Environ[str] | None = None) -> set[str]:
    """Glob patterns the system's MIME databases (``$XDG_DATA_DIRS/mime/globs2``) already map to a type."""
    env = os.environ if environ is None else environ
    dirs = env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    globs: set[str] = set()
    for folder in dirs.split(":"):
        if not folder:
            continue
        try:
            text = (Path(folder) / "mime" / "globs2").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and not line.startswith("#"):
                globs.add(parts[2])
    return globs


def mime_xml(system_globs: set[str] | None = None) -> str:
    """The shared-mime-info package XML WeightLab installs.

    Parameters
    ----------
    system_globs:
        Globs the system already maps (default: read from ``$XDG_DATA_DIRS``);
        ``application/x-hdf5`` is defined with the HDF5 globs missing from it,
        if any.
    """
    known = _system_globs() if system_globs is None else system_globs
    missing_hdf5 = [g for g in _HDF5_GLOBS if g not in known]
    types = [
        ("application/x-keras", "Keras model", ["*.keras"], "application/zip"),
        ("application/x-tensorflow-graph", "TensorFlow graph (protocol buffer)", ["*.pb"], None),
    ]
    if missing_hdf5:
        types.insert(1, ("application/x-hdf5", "HDF5 file", missing_hdf5, None))
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Installed by WeightLab (weightlab with its install-desktop option), which also removes it. -->",
        '<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">',
    ]
    for name, comment, globs, parent in types:
        out.append(f'  <mime-type type="{name}">')
        out.append(f"    <comment>{escape(comment)}</comment>")
        if parent:
            out.append(f'    <sub-class-of type="{parent}"/>')
        out.extend(f'    <glob pattern="{escape(g)}"/>' for g in globs)
        out.append("  </mime-type>")
    out.append("</mime-info>")
    return "\n".join(out) + "\n"


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_inside(base: Path, rel: Path) -> Path:
    """``base / rel`` after checking that no existing folder on the way leads out of ``base``.

    Raises
    ------
    UnsafeFileError
        When a folder between ``base`` and the file is (or passes through) a
        symbolic link to somewhere outside ``base``.
    """
    root = base.resolve()
    folder = base
    for part in rel.parent.parts:
        folder = folder / part
        if (folder.exists() or folder.is_symlink()) and not _within(folder.resolve(), root):
            raise UnsafeFileError(
                f"is a link to {folder.resolve()}, outside {base}; WeightLab writes and removes its "
                "desktop files only inside the data folder (remove the link or pass another folder)",
                folder,
            )
    return base / rel


def _files(icon: bytes) -> list[tuple[Path, bytes]]:
    return [
        (DESKTOP_FILE, desktop_entry().encode("utf-8")),
        (ICON_FILE, icon),
        (MIME_FILE, mime_xml().encode("utf-8")),
    ]


def _run_quietly(*command: str) -> None:
    """Run a cache tool if it is installed; its output and failures are logged, never raised."""
    exe = shutil.which(command[0])
    if exe is None:
        log.debug("%s not installed; skipped", command[0])
        return
    try:
        done = subprocess.run([exe, *command[1:]], capture_output=True, text=True,
                              timeout=_TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", command[0], exc)
        return
    if done.returncode:
        log.debug("%s exited %s: %s", command[0], done.returncode, done.stderr.strip())


def _refresh_caches(base: Path) -> None:
    """Rebuild the MIME and desktop databases; refresh the icon cache only where one exists."""
    if (base / "mime" / "packages").is_dir():
        _run_quietly("update-mime-database", str(base / "mime"))
    if (base / DESKTOP_FILE.parent).is_dir():
        _run_quietly("update-desktop-database", "-q", str(base / DESKTOP_FILE.parent))
    hicolor = base / "icons" / "hicolor"
    if (hicolor / "icon-theme.cache").is_file():
        # Like xdg-icon-resource: a user's theme folder usually has no cache (and no
        # index.theme); one that has must be rebuilt, or it hides the new icon.
        _run_quietly("gtk-update-icon-cache", "-q", "-t", "-f", str(hicolor))
    elif hicolor.is_dir():
        os.utime(hicolor)  # toolkits rescan a theme folder whose time changed


def _check_platform() -> None:
    if sys.platform == "win32" or sys.platform == "darwin":
        raise WeightLabError(
            f"desktop entries, icon themes and MIME packages are for Linux and BSD desktops "
            f"(freedesktop.org); this system is {sys.platform}, where WeightLab starts with the weightlab command"
        )


def install_desktop(prefix: str | os.PathLike[str] | None = None) -> list[Path]:
    """Install the desktop entry, icon and MIME types for the current user.

    Parameters
    ----------
    prefix:
        The data folder (default :func:`data_home`: ``$XDG_DATA_HOME`` or
        ``~/.local/share``).

    Returns
    -------
    list of pathlib.Path
        The files installed (each written atomically; one already up to date
        is left as is), in the order desktop entry, icon, MIME XML.

    Raises
    ------
    UnsafeFileError
        When a folder on the way is a symbolic link leading out of the data folder.
    WeightLabError
        On Windows or macOS; when the launcher's path cannot be written in a
        desktop entry, or a file cannot be written (the message names it).
    """
    _check_platform()
    base = data_home(prefix)
    files = _files(icon_path().read_bytes())
    written = []
    for rel, content in files:
        target = _check_inside(base, rel)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or not target.is_file() or target.read_bytes() != content:
                with atomic_path(target) as tmp:
                    tmp.write_bytes(content)
        except OSError as exc:
            raise WeightLabError(f"cannot write: {exc.strerror or exc}", target) from exc
        written.append(target)
    _refresh_caches(base)
    return written


def uninstall_desktop(prefix: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove what :func:`install_desktop` installed, then refresh the desktop's caches.

    Only the three files :func:`install_desktop` writes are removed (a link
    in their place is removed itself, never its target); folders stay.

    Parameters
    ----------
    prefix:
        The data folder (as for :func:`install_desktop`).

    Returns
    -------
    list of pathlib.Path
        The files removed (empty when nothing was installed).

    Raises
    ------
    UnsafeFileError
        When a folder on the way is a symbolic link leading out of the data folder.
    WeightLabError
        On Windows or macOS; when a file cannot be removed (the message names it).
    """
    _check_platform()
    base = data_home(prefix)
    removed = []
    for rel in (DESKTOP_FILE, ICON_FILE, MIME_FILE):
        target = _check_inside(base, rel)
        if not (target.is_symlink() or target.exists()):
            continue
        try:
            target.unlink()
        except OSError as exc:
            raise WeightLabError(f"cannot remove: {exc.strerror or exc}", target) from exc
        removed.append(target)
    _refresh_caches(base)
    return removed

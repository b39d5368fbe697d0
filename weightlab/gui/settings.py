"""Persistent GUI settings: the *Open Recent* list, the window's QSettings, held-out sets per model.

Settings live under ``platformdirs.user_config_dir("weightlab")``; the
environment variable ``WEIGHTLAB_CONFIG_DIR`` overrides the folder (tests set
it so runs never touch the user's own settings). The recent list is a JSON
file (``recent.json``); everything else is in :func:`qsettings`:

``files/last_folder``
    The folder of the last file or folder opened or saved (file dialogs start there).
``heldout/<key>``
    The held-out ``.npz`` last used with a model file; ``<key>`` is
    :func:`path_key` of the model's resolved path (:func:`remember_heldout`).

A value of the wrong type or pointing nowhere is ignored, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: Most entries kept in the recent-files list.
MAX_RECENT = 10
_FILE_NAME = "recent.json"


def config_dir() -> Path:
    """Folder holding WeightLab's settings (not created here)."""
    override = os.environ.get("WEIGHTLAB_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("weightlab"))


class RecentFiles:
    """Most-recently-opened model files and folders (SavedModel, checkpoint), newest first, persisted as JSON.

    Missing paths are pruned whenever the list is read. A corrupt settings
    file is treated as empty (and rewritten on the next :meth:`add`).
    """

    def __init__(self, folder: Path | None = None, limit: int = MAX_RECENT):
        self.path = (folder or config_dir()) / _FILE_NAME
        self.limit = limit

    def paths(self) -> list[Path]:
        """Existing recent files and folders, newest first."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        items = data.get("recent", []) if isinstance(data, dict) else []
        out: list[Path] = []
        for item in items:
            if isinstance(item, str) and item and Path(item).exists() and Path(item) not in out:
                out.append(Path(item))
        return out[: self.limit]

    def add(self, path: str | os.PathLike[str]) -> list[Path]:
        """Put ``path`` first, save, and return the new list."""
        p = Path(path).resolve()
        items = [p] + [q for q in self.paths() if q != p]
        self._write(items[: self.limit])
        return items[: self.limit]

    def clear(self) -> None:
        """Forget every entry."""
        self._write([])

    def _write(self, items: list[Path]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"recent": [str(p) for p in items]}, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # settings are a convenience; never fail the user's action for them


def qsettings():
    """The window's ``QSettings`` (geometry, dock state, splitter sizes, bins, last folder, theme...).

    An INI file ``weightlab.ini`` in :func:`config_dir`, so ``WEIGHTLAB_CONFIG_DIR``
    keeps tests and scripted runs away from the user's own settings. Keys are
    ``group/name`` (``window/geometry``, ``files/last_folder``...): see
    ``/docs`` or the module that writes each.
    """
    from PySide6.QtCore import QSettings

    return QSettings(str(config_dir() / "weightlab.ini"), QSettings.Format.IniFormat)


def _value(key: str) -> str | None:
    """The string stored under ``key``, or None (absent, another type, or unreadable settings)."""
    try:
        value = qsettings().value(key)
    except Exception:  # noqa: BLE001 - a settings file Qt cannot read is an empty one
        return None
    return value if isinstance(value, str) and value else None


def _set_value(key: str, value: str) -> None:
    settings = qsettings()
    settings.setValue(key, value)
    settings.sync()  # written now: another window (or a crash) must not lose it


def last_folder() -> Path | None:
    """``files/last_folder`` when it is an existing folder, else None."""
    value = _value("files/last_folder")
    return Path(value) if value is not None and Path(value).is_dir() else None


def set_last_folder(path: str | os.PathLike[str]) -> Path:
    """Record the folder of ``path`` (a file, a checkpoint prefix or a SavedModel folder) as ``files/last_folder``.

    The folder recorded is the one *holding* ``path`` (a SavedModel folder's
    parent), where a file dialog should start to find it or its neighbours.
    Returns that folder.
    """
    folder = Path(path).resolve().parent
    _set_value("files/last_folder", str(folder))
    return folder


def path_key(path: str | os.PathLike[str]) -> str:
    """A stable settings key for a file: the first 16 hex digits of the SHA-256 of its resolved path."""
    return hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:16]


def remember_heldout(model_path: str | os.PathLike[str], data_path: str | os.PathLike[str] | None) -> None:
    """Record ``data_path`` as the held-out set of the model file ``model_path`` (None forgets it)."""
    key = f"heldout/{path_key(model_path)}"
    if data_path is None:
        settings = qsettings()
        settings.remove(key)
        settings.sync()
    else:
        _set_value(key, str(Path(data_path).resolve()))


def remembered_heldout(model_path: str | os.PathLike[str]) -> Path | None:
    """The held-out set last used with ``model_path`` when that file still exists, else None."""
    value = _value(f"heldout/{path_key(model_path)}")
    return Path(value) if value is not None and Path(value).is_file() else None

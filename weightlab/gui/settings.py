"""Persistent GUI settings: the *Open Recent* list.

Settings live in a JSON file under ``platformdirs.user_config_dir("weightlab")``;
the environment variable ``WEIGHTLAB_CONFIG_DIR`` overrides the folder (tests
set it so runs never touch the user's own settings).
"""

from __future__ import annotations

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
    """Most-recently-opened model files, newest first, persisted as JSON.

    Missing files are pruned whenever the list is read. A corrupt settings
    file is treated as empty (and rewritten on the next :meth:`add`).
    """

    def __init__(self, folder: Path | None = None, limit: int = MAX_RECENT):
        self.path = (folder or config_dir()) / _FILE_NAME
        self.limit = limit

    def paths(self) -> list[Path]:
        """Existing recent files, newest first."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        items = data.get("recent", []) if isinstance(data, dict) else []
        out: list[Path] = []
        for item in items:
            if isinstance(item, str) and Path(item).is_file() and Path(item) not in out:
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

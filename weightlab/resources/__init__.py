"""Files WeightLab ships inside its package: the application icon and the bundled demo.

Everything here is package data (``[tool.setuptools.package-data]``), so it is
installed with the wheel; :func:`resource` finds a file wherever the package
lives (source tree, site-packages, a PyInstaller bundle).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ICON_NAME", "icon_path", "resource"]

#: The icon's name in the freedesktop icon theme and in the desktop entry (its reverse-DNS application id).
ICON_NAME = "io.github.weightlab.WeightLab"

_HERE = Path(__file__).resolve().parent


def resource(*parts: str) -> Path:
    """Path of a shipped file, e.g. ``resource("icons", "weightlab.svg")``.

    Raises
    ------
    FileNotFoundError
        No such file in the installed package (a broken installation).
    """
    path = _HERE.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"WeightLab's installation lacks {path} (reinstall WeightLab)")
    return path


def icon_path() -> Path:
    """The application icon (scalable SVG, 256x256 viewBox)."""
    return resource("icons", "weightlab.svg")

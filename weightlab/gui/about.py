"""Help › About WeightLab and Help › User Guide.

The versions shown are read from the installed distributions
(:mod:`importlib.metadata`) or from modules the window has imported anyway:
TensorFlow and Keras are never imported in the window's process (they live
in the engine's worker, see ``docs/architecture.md``).
"""

from __future__ import annotations

import html
import importlib
import platform
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtGui import QDesktopServices, QIcon
from PySide6.QtWidgets import QMessageBox, QWidget

from weightlab._version import __version__
from weightlab.resources import icon_path

__all__ = ["GUIDE_URL", "about_dialog", "about_text", "guide_url", "open_user_guide", "versions"]

#: The guide online, used when the source tree's docs/ is not beside the package (an installed wheel).
GUIDE_URL = "https://github.com/weightlab/weightlab#readme"

#: (shown name, module) of the libraries the window has imported anyway: their ``__version__``.
_MODULES = (("PySide6", "PySide6"), ("pyqtgraph", "pyqtgraph"), ("NumPy", "numpy"), ("h5py", "h5py"))
#: (shown name, distribution) of the libraries never imported here: read from their installed metadata.
_DISTRIBUTIONS = (("Keras", "keras"), ("TensorFlow", "tensorflow"))


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == "tensorflow":  # the CPU-only build (bundles) is another distribution
            for other in ("tensorflow-cpu", "tensorflow-macos", "tf-nightly"):
                try:
                    return metadata.version(other)
                except metadata.PackageNotFoundError:
                    continue
        return "not installed"


def versions() -> dict[str, str]:
    """``{name: version}`` of WeightLab, Python, Qt and the libraries it runs on (never imports TensorFlow).

    Returns
    -------
    dict of str to str
        Keys ``WeightLab``, ``Python``, ``Qt``, ``PySide6``, ``pyqtgraph``,
        ``NumPy``, ``h5py``, ``Keras``, ``TensorFlow``; a library that is not
        installed reads ``"not installed"``.
    """
    out = {"WeightLab": __version__, "Python": platform.python_version(), "Qt": qVersion()}
    for shown, module in _MODULES:
        try:
            out[shown] = str(importlib.import_module(module).__version__)
        except (ImportError, AttributeError):
            out[shown] = _dist_version(module)
    for shown, dist in _DISTRIBUTIONS:
        out[shown] = _dist_version(dist)
    return out


def about_text() -> str:
    """The About box's rich text: what WeightLab is and the versions table."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>&nbsp;&nbsp;{html.escape(v)}</td></tr>"
        for k, v in versions().items()
        if k != "WeightLab"  # the heading says it
    )
    return (
        f"<h3>WeightLab {html.escape(__version__)}</h3>"
        "<p>Inspect and hand-edit the weights of trained Keras/TensorFlow models, "
        "with live re-evaluation on a held-out set.</p>"
        f"<table>{rows}</table>"
        f'<p>Python {html.escape(platform.python_implementation())} on {html.escape(platform.platform(terse=True))}</p>'
    )


def about_dialog(parent: QWidget | None) -> QMessageBox:
    """Help › About WeightLab: the application icon, version and library versions (shown, not modal)."""
    box = QMessageBox(parent)
    box.setWindowTitle("About WeightLab")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text())
    icon = QIcon(str(icon_path()))
    if not icon.isNull():
        box.setIconPixmap(icon.pixmap(96, 96))
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.setObjectName("about-dialog")
    box.setModal(False)
    box.show()
    return box


def guide_url() -> QUrl:
    """The user guide: ``docs/guide/index.md`` of the source tree when present, else :data:`GUIDE_URL`."""
    local = Path(__file__).resolve().parents[2] / "docs" / "guide" / "index.md"
    if local.is_file():
        return QUrl.fromLocalFile(str(local))
    return QUrl(GUIDE_URL)


def open_user_guide() -> QUrl:
    """Help › User Guide: open :func:`guide_url` with the desktop's handler; the URL opened is returned."""
    url = guide_url()
    QDesktopServices.openUrl(url)
    return url

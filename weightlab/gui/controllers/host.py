"""What the controllers use of the main window: :class:`WindowHost`.

The controllers are given the window as a :class:`WindowHost` (its widgets,
its signals and the small dialog methods tests replace), never the
``MainWindow`` class itself, so no controller imports the window's module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtWidgets import QLabel, QMenu, QStatusBar, QTabWidget

from weightlab.core.session import EditSession

from ..diff_view import DiffView
from ..edit_panel import EditPanel, HistoryView
from ..eval_panel import EvalPanel
from ..heatmap_view import HeatmapView
from ..histogram_view import HistogramView
from ..journal_restore import JournalController
from ..model_tree import ModelTree
from ..norms_view import NormsView
from ..opener import OpenProgress
from ..selection import NeuronSelection
from ..settings import RecentFiles
from ..tensor_worker import TensorComputer


class WindowHost(Protocol):
    """The main window as the controllers see it (a ``QMainWindow`` with these parts)."""

    tree: ModelTree
    histogram: HistogramView
    heatmap: HeatmapView
    norms: NormsView
    views: QTabWidget
    diff_view: DiffView
    edit_panel: EditPanel
    history: HistoryView
    eval_panel: EvalPanel
    selection: NeuronSelection
    computer: TensorComputer
    journal: JournalController
    recent: RecentFiles
    recent_menu: QMenu
    hover_label: QLabel
    selection_label: QLabel
    open_progress: OpenProgress
    compare_progress: OpenProgress
    # signals (bound SignalInstances)
    viewShown: Any
    modelOpened: Any
    openFailed: Any
    openFinished: Any
    compareShown: Any

    def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt name
    def setWindowTitle(self, title: str) -> None: ...  # noqa: N802 - Qt name
    def open_path(self, path: Any, data: Any = None) -> bool: ...
    def apply_recipe(self, path: Any) -> bool: ...
    # dialogs (tests replace them)
    _error: Callable[[str, str], None]
    _ask_unsaved: Callable[[], str]
    _ask_value: Callable[[str, str, float], float | None]

    def _ask_open_path(self, title: str, name_filter: str, start: str | None = None) -> str | None: ...
    def _ask_folder(self, title: str, start: str | None = None) -> str | None: ...
    def _ask_save_path(self, title: str, default: Path, name_filter: str) -> str | None: ...
    def _confirm_overwrite(self, path: Path) -> bool: ...
    def _confirm_replace(self, path: Path) -> bool: ...
    def _load_session(self, path: Path) -> EditSession: ...

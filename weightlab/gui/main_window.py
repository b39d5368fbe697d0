"""The WeightLab main window: model tree | tensor views | edit, history, evaluation.

The tensor views (histogram, heatmap/diff/sweeps/training tabs, neuron norms)
are the central widget; the model tree (left) and the edit, history and
evaluation panels (right) are dock widgets the user can move, float, close
and bring back (*View › Panels*, *View › Reset layout*). The window's
geometry, the docks' and toolbar's arrangement and the centre splitter's
sizes are remembered between runs (:mod:`weightlab.gui.window_state`).

The window is layout and wiring. Its state lives in a Qt-free
:class:`~weightlab.app.workspace.Workspace` (the session, the shown tensor,
the held-out set, the evaluation options, trust, the running edit); the
controllers in :mod:`weightlab.gui.controllers` (documents, views, edits,
evaluation, comparison, jobs, sweeps, ranking, training) subscribe to it and never call each other; the menus,
the toolbar and *Help › Keyboard Shortcuts* are built from the action registry
(:func:`weightlab.app.actions.window_actions`), whose enablement follows the
workspace's events. The public methods below delegate to the controllers.

Dialogs sit behind small methods (``_error``, ``_ask_unsaved``,
``_ask_open_path``, ``_ask_save_path``, ``_confirm_overwrite``, ``_confirm_replace``,
``_confirm_trust``, ``_ask_value``) so tests can replace them instead of blocking.

Where things are:

- Edit panel (right): target (tree selection, glob, whole model), the
  *Operation* tab with every op and its parameters (Ctrl+Return applies), the
  *Brush & neurons* tab (Ctrl+K clips to the brushed range, Delete zeroes the
  selected neurons). *Edit › Operation* picks an op from the menu.
- History: tick/untick a step to switch it on/off (replayed from the file).
- Centre: histogram, then *Heatmap* / *Diff* tabs (Ctrl+D), neuron norms;
  double-click a heatmap cell to set its value; Ctrl+M toggles the pruned mask.
- File › Compare with… (Ctrl+Shift+C), Export tensor… (Ctrl+E), Export plot ›.
- View › Show optimizer state (checkpoints), Find in tree (Ctrl+F), Theme,
  Presentation mode, Panels, Toolbar, Reset layout.
- Help › Keyboard Shortcuts, User Guide, About WeightLab.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QWidget,
)

from weightlab.app.actions import Action, window_actions
from weightlab.app.jobs import JobList
from weightlab.app.workspace import Workspace
from weightlab.core.diff import export_tensor
from weightlab.core.edits import Edit
from weightlab.core.errors import WeightLabError
from weightlab.core.session import EditSession
from weightlab.formats import open_session
from weightlab.resources import icon_path

from . import window_state
from .about import about_dialog, open_user_guide
from .controllers.actions import ActionsController
from .controllers.comparison import COMPARE_SYNC_PARAMS, ComparisonController
from .controllers.documents import DocumentsController
from .controllers.edits import EditsController
from .controllers.evaluation import EvaluationController
from .controllers.jobs import JobsController
from .controllers.paths import (
    ARCHITECTURE_FILTER,
    DATA_FILTER,
    MODEL_FILTER,
    NO_DATA_REASON,
    RECIPE_FILTER,
    default_save_path,
    guess_heldout,
    save_filter,
    split_name,
    with_default_extension,
)
from .controllers.ranking import RankingController
from .controllers.sweeps import SweepsController
from .controllers.training import TrainingController
from .controllers.views import ViewsController
from .diff_view import CompareDialog, DiffView
from .edit_panel import EditPanel, HistoryView
from .engine_adapter import EngineAdapter
from .eval_panel import EvalPanel
from .export import PLOT_FILTER, TENSOR_FILTER, export_plot
from .heatmap_view import HeatmapView
from .histogram_view import HistogramView
from .journal_restore import JournalController
from .model_tree import ModelTree
from .norms_view import NormsView
from .op_forms import OPS
from .opener import OpenProgress
from .selection import NeuronSelection
from .settings import RecentFiles, qsettings
from .tensor_worker import TensorComputer
from .theme import use_monospace

__all__ = [
    "ARCHITECTURE_FILTER",
    "COMPARE_SYNC_PARAMS",
    "DATA_FILTER",
    "MODEL_FILTER",
    "NO_DATA_REASON",
    "RECIPE_FILTER",
    "MainWindow",
    "default_save_path",
    "guess_heldout",
    "save_filter",
    "split_name",
    "with_default_extension",
]

#: Keys of the Edit › Operation entries that have one.
OP_KEYS = {"clip_symmetric": "Ctrl+Shift+K", "prune_magnitude": "Ctrl+Shift+P",
           "prune_neurons": "Ctrl+Shift+N", "add_noise": "Ctrl+Shift+G", "reinit": "Ctrl+Shift+I"}

#: The smallest window (px): two windows side by side on a 1920-wide screen fit, and so does a 1024x640 screen.
MIN_SIZE = (800, 560)
#: The window's size on a first run (shrunk to the screen when it is smaller).
DEFAULT_SIZE = (1400, 900)
#: The left docks from top to bottom (object name, title): the model tree over the edit history.
LEFT_DOCKS = (("dock-tree", "Model"), ("dock-history", "History"))
#: The right docks from top to bottom (object name, title): what an edit does, then what it cost.
RIGHT_DOCKS = (("dock-edit", "Edit"), ("dock-evaluation", "Evaluation"))


def _theme():
    """The theme module (weightlab.gui.theme), or None where this build lacks it."""
    try:
        from . import theme
    except ImportError:
        return None
    return theme


def _scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a small dock scrolls its panel instead of squashing or cutting it."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


class MainWindow(QMainWindow):
    """WeightLab's main window.

    Parameters
    ----------
    engine:
        Evaluation engine adapter; one is created (and owned) when omitted.
    recent:
        Recent-files store; the default one under the config folder when omitted.

    Attributes
    ----------
    workspace:
        The window's state (:class:`~weightlab.app.workspace.Workspace`).
    actions:
        The window's QActions by registry id (``window.actions["edit.undo"]``).

    docks:
        The dock widgets by object name (``dock-tree``, ``dock-edit``, ``dock-history``, ``dock-evaluation``).
    centre:
        The central splitter (histogram | tabs | norms); its sizes are remembered as ``window/splitters/centre``.

    Signals
    -------
    viewShown(str):
        The views now show tensor ``name`` (after the statistics were computed).
    modelOpened(Path):
        :meth:`open_path` finished: the window shows the model read from this path.
    openFailed(str):
        :meth:`open_path` failed (after its error dialog): the message shown.
    openFinished(bool):
        Every open the user sees end: True when opened, False when it failed or
        was cancelled (an open superseded by a newer one ends silently).
    compareShown(CompareDialog):
        :meth:`compare_with` opened its dialog.
    """

    viewShown = Signal(str)
    modelOpened = Signal(object)
    openFailed = Signal(str)
    openFinished = Signal(bool)
    compareShown = Signal(object)

    def __init__(self, engine: EngineAdapter | None = None, recent: RecentFiles | None = None):
        super().__init__()
        self.workspace = Workspace(jobs=JobList())
        self.recent = recent or RecentFiles()
        self.engine = engine or EngineAdapter(self)
        self.computer = TensorComputer(self)
        self.selection = NeuronSelection(self)
        #: The edit journal of this window's session, and the restore offer (journal_restore.py).
        self.journal = JournalController(self)
        self._build_widgets()
        # A new session reaches the controllers in this order: the old model
        # is closed first, the views reset, the evaluation restarts last.
        ws = self.workspace
        self.documents = DocumentsController(self, ws)
        self.views_ctl = ViewsController(self, ws)
        self.edits = EditsController(self, ws)
        self.evaluation = EvaluationController(self, ws, self.engine)
        self.comparison = ComparisonController(self, ws)
        self.jobs = JobsController(self, ws, self.engine)
        self.sweeps = SweepsController(self, ws, self.engine, self.edits)
        self.ranking = RankingController(self, ws, self.engine)
        self.training = TrainingController(self, ws, self.engine, self.edits)
        #: Write the layout to the settings on close (False for scripted runs such as screenshots).
        self.remember_layout = True
        self._build_actions()
        self.setAcceptDrops(True)
        self.setMinimumSize(*MIN_SIZE)
        self._default_geometry()
        self._default_layout()
        self._restored = window_state.restore_layout(self, self.splitters, default_sizes=self._default_sizes)
        # sizes of the docks need the real window size: the first show sets them (unless restored)
        self._sized = self._restored["state"]
        self._set_icon()
        self._sync_theme()
        self.documents.update_title()

    # -- construction ---------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.tree = ModelTree()
        self.histogram = HistogramView()
        self.heatmap = HeatmapView(self.selection)
        self.norms = NormsView(self.selection)
        self.edit_panel = EditPanel(self.selection)
        self.history = HistoryView()
        self.eval_panel = EvalPanel()
        self.diff_view = DiffView()

        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        # a narrow centre scrolls the tab bar with Qt's arrow buttons instead of widening the centre
        self.views.setUsesScrollButtons(True)
        self.views.setElideMode(Qt.TextElideMode.ElideNone)
        self.views.addTab(self.heatmap, "Heatmap")
        self.views.addTab(self.diff_view, "Diff vs original")
        self.views.setTabToolTip(0, "The tensor's values, output neurons along columns")
        self.views.setTabToolTip(1, "How the shown tensor changed: histogram of edited − original, changed positions (Ctrl+D)")
        centre = QSplitter(Qt.Orientation.Vertical)
        centre.setObjectName("centre-splitter")
        centre.addWidget(self.histogram)
        centre.addWidget(self.views)
        centre.addWidget(self.norms)
        centre.setChildrenCollapsible(False)
        centre.setSizes([330, 380, 190])
        self.centre = centre
        self.splitters = {"centre": centre}
        # No scroll area around the centre: its minimum size (wide tab pages scroll inside themselves)
        # fits a 800x560 window, and the docks, not the centre, give way when the window shrinks
        # (tests/test_centre_fits.py). A scroll area hid that minimum: the centre was squeezed to 68 px.
        self.setCentralWidget(centre)

        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )
        self.setCorner(Qt.Corner.TopLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        contents = {
            "dock-tree": self.tree,
            "dock-edit": _scrolled(self.edit_panel),
            "dock-history": self.history,
            "dock-evaluation": _scrolled(self.eval_panel),
        }
        titles = {**dict(LEFT_DOCKS), **dict(RIGHT_DOCKS)}
        # The dock's title bar names the panel: the group boxes' own titles would say it twice.
        for panel in (self.edit_panel, self.history, self.eval_panel):
            panel.setTitle("")
            panel.setFlat(True)
        self.docks: dict[str, QDockWidget] = {}
        for name, widget in contents.items():
            dock = QDockWidget(titles[name], self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            dock.toggleViewAction().setStatusTip(f"Show or hide the {titles[name]} panel")
            self.docks[name] = dock

        self.hover_label = QLabel("")
        use_monospace(self.hover_label)
        self.selection_label = QLabel("")
        self.statusBar().addPermanentWidget(self.hover_label)
        self.statusBar().addPermanentWidget(self.selection_label)
        self.open_progress = OpenProgress()
        self.compare_progress = OpenProgress()
        self.statusBar().addPermanentWidget(self.open_progress)
        self.statusBar().addPermanentWidget(self.compare_progress)

    def _build_actions(self) -> None:
        registry = window_actions()
        for spec in OPS:
            registry.add(Action(
                f"op.{spec.key}", spec.label, "Edit/Operation", spec.group,
                (OP_KEYS[spec.key],) if spec.key in OP_KEYS else (), spec.tip,
            ))
        panel, docs = self.edit_panel, self.documents
        slots = {
            "file.open": docs.open_dialog,
            # save, find and count_all are the documents' and the tree's: looked up when used
            "file.save": self.save,
            "file.open_folder": docs.open_folder_dialog,
            "file.open_data": docs.open_data_dialog,
            "file.save_as": self.save_as,
            "file.export_recipe": docs.export_recipe,
            "file.apply_recipe": docs.apply_recipe_dialog,
            "file.compare": self.comparison.compare_dialog_open,
            "file.export_tensor": self.export_tensor_dialog,
            "file.quit": self.close,
            "edit.undo": self.undo,
            "edit.redo": self.redo,
            "edit.revert": self.revert_tensor,
            "edit.revert_all": self.revert_all,
            "edit.apply_op": panel.apply_op,
            "edit.clip_range": panel.clip_to_range,
            "edit.zero_neurons": panel.zero_neurons,
            "edit.clear_selection": self.selection.clear,
            "target.tree": lambda: panel.set_target_mode("tree"),
            "target.glob": lambda: panel.set_target_mode("glob"),
            "target.model": lambda: panel.set_target_mode("model"),
            "view.diff": self._show_diff,
            "view.mask": self.heatmap.mask_check.setChecked,
            "view.optimizer": self.tree.set_show_optimizer,
            "view.find": self.start_find,
            "view.count_all": self.count_all,
            "view.theme.system": lambda on: on and self.set_theme("system"),
            "view.theme.light": lambda on: on and self.set_theme("light"),
            "view.theme.dark": lambda on: on and self.set_theme("dark"),
            "view.presentation": self.set_presentation,
            "view.reset_layout": self.reset_layout,
            "eval.restart": self.restart_evaluation,
            "eval.trust": self._toggle_trust,
            "help.shortcuts": self.show_shortcuts,
            "help.guide": self.show_user_guide,
            "help.about": self.show_about,
            "analysis.rank": self.ranking.rank_current,
            "analysis.sweep": lambda: self.views.setCurrentWidget(self.sweeps.panel),
            "training.start": lambda: self.views.setCurrentWidget(self.training.panel),
            **{f"op.{spec.key}": (lambda key=spec.key: self._choose_op(key)) for spec in OPS},
        }
        self.actions = act = ActionsController(self, self.workspace, registry, slots)
        self.heatmap.mask_check.toggled.connect(act["view.mask"].setChecked)
        self.views.currentChanged.connect(lambda i: act["view.diff"].setChecked(i == 1))

        def recent(menu: QMenu) -> None:
            self.recent_menu = menu.addMenu("Open &Recent")

        def export_plots(menu: QMenu) -> None:
            self.export_plot_menu = menu.addMenu("Export &plot")
            self.export_plot_menu.setToolTipsVisible(True)
            for label in self.plots():
                item = self.export_plot_menu.addAction(f"{label.capitalize()}…")
                item.setToolTip(f"Write the {label} plot as PNG or SVG")
                item.triggered.connect(lambda _c=False, label=label: self.export_plot_dialog(label))

        def theme_menu(menu: QMenu) -> None:
            menu.addMenu(act.menu("View/Theme"))

        def panels(menu: QMenu) -> None:
            self.panels_menu = menu.addMenu("&Panels")
            for dock in self.docks.values():
                self.panels_menu.addAction(dock.toggleViewAction())
            toolbar = act.toolbar.toggleViewAction()
            toolbar.setText("&Toolbar")
            toolbar.setStatusTip("Show or hide the toolbar")
            menu.addAction(toolbar)

        act.fill_menu("File", {"open": recent, "compare": export_plots})
        act.fill_menu("Edit", {"apply": lambda menu: menu.addMenu(act.menu("Edit/Operation"))})
        act.fill_menu("Edit/Operation")
        act.fill_menu("View", {"tree": theme_menu, "layout": panels})
        act.fill_menu("View/Theme")
        self.theme_group = QActionGroup(self)
        for scheme in ("system", "light", "dark"):
            self.theme_group.addAction(act[f"view.theme.{scheme}"])
        for path in ("Evaluation", "Analysis", "Help"):
            act.fill_menu(path)
        self.documents.fill_recent_menu()
        # the names tests and scripts use for a few actions
        self.act_undo, self.act_redo = act["edit.undo"], act["edit.redo"]
        self.act_mask, self.act_diff = act["view.mask"], act["view.diff"]
        self.act_show_optimizer, self.act_trust = act["view.optimizer"], act["eval.trust"]

    def _show_diff(self, on: bool) -> None:
        """View › Diff (Ctrl+D): on shows the Diff tab; off goes back to the heatmap only from the Diff tab.

        (Leaving the Diff tab for Sweeps unchecks the action: that must not send the user to the heatmap.)
        """
        if on:
            self.views.setCurrentWidget(self.diff_view)
        elif self.views.currentWidget() is self.diff_view:
            self.views.setCurrentWidget(self.heatmap)

    # -- dialogs (tests monkeypatch these) ----------------------------------------------
    def _error(self, title: str, message: str) -> None:
        """Show a user error; the window keeps working."""
        QMessageBox.critical(self, title, message)

    def _ask_unsaved(self) -> str:
        """Ask what to do with unsaved edits: ``"save"``, ``"discard"`` or ``"cancel"``."""
        button = QMessageBox.StandardButton
        ans = QMessageBox.question(
            self,
            "Unsaved edits",
            "The model has edits that are not saved. Save them first?",
            button.Save | button.Discard | button.Cancel,
            button.Save,
        )
        return {button.Save: "save", button.Discard: "discard"}.get(ans, "cancel")

    def dialog_folder(self) -> str:
        """Where a file dialog starts: the open model's folder, else the last folder used (``files/last_folder``), else ``""``."""
        if self.session is not None:
            return str(self.session.model.path.parent)
        try:
            last = qsettings().value("files/last_folder")
        except Exception:  # noqa: BLE001 - a foreign INI value; settings are a convenience
            return ""
        return last if isinstance(last, str) and last and Path(last).is_dir() else ""

    def _ask_open_path(self, title: str, name_filter: str, start: str | None = None) -> str | None:
        """File to open (the dialog starts in ``start``, else :meth:`dialog_folder`), or None when cancelled."""
        path, _ = QFileDialog.getOpenFileName(self, title, start or self.dialog_folder(), name_filter)
        return path or None

    def _ask_folder(self, title: str, start: str | None = None) -> str | None:
        """Folder to open (the dialog starts in ``start``, else :meth:`dialog_folder`), or None when cancelled."""
        return QFileDialog.getExistingDirectory(self, title, start or self.dialog_folder()) or None

    def _ask_save_path(self, title: str, default: Path, name_filter: str) -> str | None:
        """File to write (the dialog proposes ``default``; a bare name goes in :meth:`dialog_folder`), or None when cancelled."""
        if not Path(default).is_absolute() and self.dialog_folder():
            default = Path(self.dialog_folder()) / default
        path, _ = QFileDialog.getSaveFileName(self, title, str(default), name_filter)
        return path or None

    def _confirm_overwrite(self, path: Path) -> bool:
        """Explicitly confirm writing over the opened file."""
        button = QMessageBox.StandardButton
        ans = QMessageBox.warning(
            self,
            "Overwrite the opened file?",
            f"{path}\nis the file you opened. Replace it with the edited weights? "
            "The original values will be lost.",
            button.Yes | button.Cancel,
            button.Cancel,
        )
        return ans == button.Yes

    def _confirm_replace(self, path: Path) -> bool:
        """Confirm replacing an existing file (other than the opened one) that the dialog did not ask about."""
        button = QMessageBox.StandardButton
        ans = QMessageBox.question(
            self, "Replace file?", f"{path}\nalready exists. Replace it?", button.Yes | button.Cancel, button.Cancel
        )
        return ans == button.Yes

    def _ask_value(self, title: str, label: str, value: float) -> float | None:
        """A number from a small dialog (starting at ``value``), or None when cancelled."""
        new, ok = QInputDialog.getDouble(self, title, label, value, -1e30, 1e30, 8)
        return new if ok else None

    def _confirm_trust(self) -> bool:
        """Confirm letting the worker run the model file's own code."""
        button = QMessageBox.StandardButton
        ans = QMessageBox.warning(
            self,
            "Trust this model's code?",
            "Evaluating with trust runs code stored in the model file (Lambda or custom layers) "
            "in the worker process. Only do this for files from a source you trust.",
            button.Yes | button.Cancel,
            button.Cancel,
        )
        return ans == button.Yes

    # -- state (the workspace's) -----------------------------------------------------------
    @property
    def session(self) -> EditSession | None:
        """The edit session shown (None: no model)."""
        return self.workspace.session

    @property
    def current(self) -> str | None:
        """The tensor the views show."""
        return self.workspace.current

    @property
    def data_path(self) -> Path | None:
        """The held-out set evaluated on."""
        return self.workspace.data_path

    @property
    def trust(self) -> bool:
        """Whether the evaluation may run the model's own code."""
        return self.workspace.trust

    @property
    def eval_options(self) -> dict[str, str]:
        """The engine ``open`` options (``architecture``, ``signature``, ``output``), a copy."""
        return self.workspace.eval_options

    @property
    def compare_dialog(self) -> CompareDialog | None:
        """The comparison dialog shown last."""
        return self.comparison.dialog

    @property
    def _comparing(self):
        return self.comparison.running

    @property
    def opening(self) -> bool:
        """True while a file is being opened (see :meth:`open_path`)."""
        return self.documents.opening

    @property
    def busy(self) -> bool:
        """True while a change of the session (an edit, undo, redo, step switch, recipe) runs off this thread."""
        return self.edits.busy

    @property
    def view_settled(self) -> bool:
        """True when no computed view is still being handed to the plots."""
        return self.views_ctl.settled

    # -- files ------------------------------------------------------------------------
    def _load_session(self, path: Path) -> EditSession:
        """Open ``path`` as an edit session (reads data only, never runs model code)."""
        return open_session(path)

    def open_path(self, path: str | os.PathLike[str], data: str | os.PathLike[str] | None = None) -> bool:
        """Start opening a model file or folder (for ``.npz``: use it as the held-out set).

        The file is read on a background thread (:class:`~weightlab.gui.opener.ModelOpener`):
        the window keeps working, and an open that takes more than a moment
        shows its progress with Cancel in the status bar. When it is read the
        window shows it and emits ``modelOpened(path)``; a failure gives one
        error dialog and ``openFailed(message)``; then ``openFinished(ok)``.
        A newer open supersedes this one; the window keeps showing the
        previous model until the new one is read.

        Parameters
        ----------
        path:
            Model file or folder (SavedModel, checkpoint), or a held-out ``.npz``.
        data:
            Held-out set to evaluate on; default: one named like the model beside it.

        Returns
        -------
        bool
            True when the open started (for ``.npz``: the held-out set was
            taken); False when the user chose to keep unsaved edits.
        """
        return self.documents.open_path(path, data)

    def open_folder_dialog(self) -> None:
        """File › Open folder… (a SavedModel or a checkpoint folder)."""
        self.documents.open_folder_dialog()

    def cancel_open(self) -> None:
        """Stop waiting for the file being opened; the window keeps what it shows."""
        self.documents.cancel_open()

    def set_session(self, session: EditSession | None, data_path: Path | None = None) -> None:
        """Show ``session`` (replacing the current one) and start evaluating it on ``data_path``.

        A file still being opened is dropped: the session given here is the latest.
        """
        self.workspace.set_session(session, data_path)

    def open_data(self, path: str | os.PathLike[str]) -> bool:
        """Use ``path`` (.npz) as the held-out set and re-evaluate."""
        return self.documents.open_data(path)

    def save(self) -> bool:
        """File › Save (Ctrl+S): the first time like Save As (proposing ``NAME-edited.EXT``), then the same file.

        True when a file was written. (Where the documents controller has no
        ``save`` yet, this is Save As.)
        """
        save = getattr(self.documents, "save", None)
        return bool(save()) if callable(save) else self.save_as()

    def save_as(self) -> bool:
        """File › Save As… (Ctrl+Shift+S); True when a file was written."""
        return self.documents.save_as()

    def export_recipe(self) -> bool:
        """File › Export recipe…; True when written."""
        return self.documents.export_recipe()

    def apply_recipe(self, path: str | os.PathLike[str]) -> bool:
        """Apply a recipe file as one transaction; errors go to a dialog."""
        return self.edits.apply_recipe(path)

    def compare_with(self, path: str | os.PathLike[str]) -> bool:
        """Open ``path`` and show the per-tensor change from the opened file (as stored) to it.

        The file is opened off the window's thread, like :meth:`open_path`
        (progress and Cancel in the status bar; a newer comparison
        supersedes it). Then, up to :data:`COMPARE_SYNC_PARAMS` parameters,
        the comparison runs here; a larger model is compared in the pool
        behind a progress dialog (Cancel stops it). The dialog is emitted with
        ``compareShown`` when it opens. A file that cannot be read, or of
        another architecture (other tensor names or shapes), gives one error
        dialog with the core's message.

        Returns
        -------
        bool
            True when the comparison started (False: no model is open).
        """
        return self.comparison.compare_with(path)

    # -- editing ----------------------------------------------------------------------
    def apply_edit(self, edit: Edit) -> bool:
        """Start applying ``edit`` off the window's thread (see :attr:`busy`); a misfit edit is reported, not raised.

        Returns True when the edit started; False when no model is shown or
        another change is still running (nothing is queued).
        """
        return self.edits.apply_edit(edit)

    def set_cell(self, index: tuple, value: float) -> bool:
        """Ask for a new value of the shown tensor at ``index`` and set it."""
        return self.edits.set_cell(index, value)

    def set_step_enabled(self, index: int, enabled: bool) -> bool:
        """Switch history step ``index`` on or off; the weights are recomputed by replay and re-evaluated."""
        return self.edits.set_step_enabled(index, enabled)

    def undo(self) -> bool:
        """Edit › Undo."""
        return self.edits.undo()

    def redo(self) -> bool:
        """Edit › Redo."""
        return self.edits.redo()

    def goto(self, position: int) -> bool:
        """Jump to history ``position`` (number of applied steps)."""
        return self.edits.goto(position)

    def revert_tensor(self) -> bool:
        """Edit › Revert tensor (the shown one), as an undoable step."""
        return self.edits.revert_tensor()

    def revert_all(self) -> bool:
        """Edit › Revert all, as an undoable step."""
        return self.edits.revert_all()

    def _choose_op(self, key: str) -> None:
        """Edit › Operation › …: show that op's form."""
        self.edit_panel.select_op(key)
        self.edit_panel.form.setFocus()

    # -- views -------------------------------------------------------------------------
    def show_tensor(self, name: str) -> None:
        """Show tensor ``name`` in the histogram, heatmap and norm plot."""
        self.views_ctl.show_tensor(name)

    def plots(self) -> dict:
        """The exportable plots by label (File › Export plot)."""
        return {
            "histogram": self.histogram.plot,
            "heatmap": self.heatmap.plot,
            "neuron norms": self.norms.plot,
            **self.diff_view.plots,
        }

    def export_tensor_dialog(self) -> bool:
        """File › Export tensor…: the shown tensor's current values as .npy or .csv."""
        if self.session is None or self.current is None:
            return False
        stem, _ = split_name(self.session.model.path)
        default = self.session.model.path.with_name(f"{stem}-{self.current.replace('/', '-')}.npy")
        chosen = self._ask_save_path("Export tensor", default, TENSOR_FILTER)
        if not chosen:
            return False
        try:
            out = export_tensor(self.session.array(self.current), chosen)
        except WeightLabError as e:
            self._error("Cannot export tensor", str(e))
            return False
        self.statusBar().showMessage(f"{self.current} written to {out}", 5000)
        return True

    def export_plot_dialog(self, label: str) -> bool:
        """File › Export plot › …: the plot ``label`` as PNG or SVG."""
        stem, _ = split_name(self.session.model.path) if self.session else ("weightlab", "")
        default = Path.cwd() / f"{stem}-{label.replace(' ', '-')}.png"
        if self.session is not None:
            default = self.session.model.path.with_name(default.name)
        chosen = self._ask_save_path(f"Export {label}", default, PLOT_FILTER)
        if not chosen:
            return False
        try:
            out = export_plot(self.plots()[label], chosen)
        except (OSError, ValueError) as e:
            self._error("Cannot export plot", f"{chosen}: {e}")
            return False
        self.statusBar().showMessage(f"{label} written to {out}", 5000)
        return True

    def show_shortcuts(self):
        """Help › Keyboard Shortcuts: the registry's actions and their keys."""
        return self.actions.shortcuts_dialog()

    def show_about(self) -> QMessageBox:
        """Help › About WeightLab: icon, version, and the versions of Python, Qt and the libraries (shown, not modal)."""
        box = about_dialog(self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return box

    def show_user_guide(self):
        """Help › User Guide: the local docs' guide when present, else the README online; the URL opened."""
        return open_user_guide()

    def start_find(self) -> None:
        """View › Find in tree (Ctrl+F): show the tree's filter field (and the tree, if its dock was closed)."""
        dock = self.docks["dock-tree"]
        if not dock.isVisible():
            dock.show()
        dock.raise_()
        start = getattr(self.tree, "start_filter", None)
        if callable(start):
            start()
        else:
            self.tree.setFocus()

    def count_all(self) -> None:
        """View › Count every tensor's sparsity: the tree counts the rest in the background."""
        count = getattr(self.tree, "count_all", None)
        if callable(count):
            count()
        else:
            self.statusBar().showMessage("Counting every tensor is not available in this build", 5000)

    # -- theme -------------------------------------------------------------------------
    def set_theme(self, name: str) -> None:
        """View › Theme: ``"system"``, ``"light"`` or ``"dark"`` (remembered by the theme module)."""
        theme = _theme()
        if theme is not None:
            theme.set_scheme(name)
        self._sync_theme()

    def set_presentation(self, on: bool) -> None:
        """View › Presentation mode: larger fonts and thicker plot lines for a projector (remembered)."""
        theme = _theme()
        if theme is not None and bool(theme.presentation()) != bool(on):
            theme.set_presentation(bool(on))
        self._sync_theme()

    def _sync_theme(self) -> None:
        """Apply the saved theme once (first call) and check the View menu's entries as the theme module says."""
        theme = _theme()
        if theme is None:
            for scheme in ("system", "light", "dark"):
                self.actions[f"view.theme.{scheme}"].setEnabled(False)
            self.actions["view.presentation"].setEnabled(False)
            return
        if not getattr(self, "_theme_hooked", False):
            self._theme_hooked = True
            theme.restore()
            theme.signals.changed.connect(self._sync_theme)
        name = theme.scheme()
        for scheme in ("system", "light", "dark"):
            act = self.actions[f"view.theme.{scheme}"]
            act.blockSignals(True)
            act.setChecked(scheme == name)
            act.blockSignals(False)
        act = self.actions["view.presentation"]
        act.blockSignals(True)
        act.setChecked(bool(theme.presentation()))
        act.blockSignals(False)

    # -- layout ------------------------------------------------------------------------
    def _set_icon(self) -> None:
        try:
            self.setWindowIcon(QIcon(str(icon_path())))
        except FileNotFoundError:
            pass  # a broken installation still runs, with the platform's default icon

    def _default_geometry(self) -> None:
        """:data:`DEFAULT_SIZE`, shrunk to 90 % of the screen's available area where that is smaller."""
        width, height = DEFAULT_SIZE
        screen = self.screen() or QGuiApplication.primaryScreen()
        # the offscreen platform's 800x800 "screen" is no display: keep the default size there
        if screen is not None and QGuiApplication.platformName() != "offscreen":
            avail = screen.availableGeometry()
            if avail.width() > 0 and avail.height() > 0:
                width = max(MIN_SIZE[0], min(width, int(avail.width() * 0.9)))
                height = max(MIN_SIZE[1], min(height, int(avail.height() * 0.9)))
        self.resize(width, height)

    def _default_layout(self) -> None:
        """Dock every panel in its default place, shown: tree over history left, edit over evaluation right.

        The history sits under the tree (a tree is rarely taller than the
        screen, a history is short), so the right column gives the edit form and
        the evaluation with its charts the whole height: at 1024x640 neither
        has to scroll much.
        """
        for dock in self.docks.values():
            dock.setFloating(False)
            self.removeDockWidget(dock)
        for area, column in ((Qt.DockWidgetArea.LeftDockWidgetArea, LEFT_DOCKS),
                             (Qt.DockWidgetArea.RightDockWidgetArea, RIGHT_DOCKS)):
            self.addDockWidget(area, self.docks[column[0][0]])
            for (above, _), (below, _) in zip(column, column[1:]):
                self.splitDockWidget(self.docks[above], self.docks[below], Qt.Orientation.Vertical)
        for dock in self.docks.values():
            dock.show()
        toolbar = self.actions.toolbar
        self.removeToolBar(toolbar)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        toolbar.show()

    def _default_sizes(self) -> None:
        """Size the docks and the centre for the window's present size (the two columns fixed, centre the rest)."""
        width, height = self.width(), self.height()
        left = int(min(440, max(200, width * (0.28 if width >= 1280 else 0.2))))
        right = int(min(420, max(300, width * 0.25)))
        self.resizeDocks([self.docks["dock-tree"], self.docks["dock-edit"]], [left, right], Qt.Orientation.Horizontal)
        column = max(300, height - 80)
        # left column: a short history under the tree
        history_h = int(min(220, max(90, column * 0.22)))
        self.resizeDocks([self.docks["dock-tree"], self.docks["dock-history"]],
                         [column - history_h, history_h], Qt.Orientation.Vertical)
        # right column: the edit panel at its natural height (at most half), evaluation the rest
        edit = self.docks["dock-edit"]
        title = edit.height() - edit.widget().height() if edit.isVisible() and edit.widget().height() > 0 else 28
        edit_h = min(self.edit_panel.sizeHint().height() + title + 4, int(column * 0.5))
        self.resizeDocks([edit, self.docks["dock-evaluation"]], [edit_h, max(150, column - edit_h)],
                         Qt.Orientation.Vertical)
        total = max(300, self.centre.height() or height - 80)
        self.centre.setSizes([int(total * 0.36), int(total * 0.42), int(total * 0.22)])

    def reset_layout(self) -> None:
        """View › Reset layout: every panel docked and shown in its default place, the toolbar shown, default sizes."""
        self._default_layout()
        self._default_sizes()
        self.statusBar().showMessage("Layout reset", 3000)

    def save_layout(self) -> None:
        """Remember the window's geometry, docks, toolbar and splitter sizes (done on close)."""
        window_state.save_layout(self, self.splitters)

    # -- evaluation --------------------------------------------------------------------
    def restart_evaluation(self) -> None:
        """(Re)build the model in the worker with the current held-out set and evaluate the baseline."""
        self.evaluation.restart()

    def set_eval_option(self, key: str, value: str | None) -> None:
        """Set an engine ``open`` option (``architecture``, ``signature``, ``output``) and re-evaluate."""
        self.evaluation.set_option(key, value)

    def _toggle_trust(self, on: bool) -> None:
        if on and not self._confirm_trust():
            act = self.actions["eval.trust"]
            act.blockSignals(True)
            act.setChecked(False)
            act.blockSignals(False)
            return
        self.workspace.set_trust(on)

    # -- window events -------------------------------------------------------------------
    def showEvent(self, event) -> None:
        """Size the docks once the window has its real size (unless a remembered layout was restored)."""
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            # once the window's layout has its real size (the docks' sizes are relative to it)
            QTimer.singleShot(0, self, self._default_sizes)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.documents.confirm_discard():
            event.ignore()
            return
        self.comparison.close()
        self.views_ctl.cancel()
        self.training.shutdown()
        self.edits.shutdown()  # before the model closes: a running change reads it
        self.engine.shutdown()
        self.documents.close()
        if self.remember_layout:
            self.save_layout()
        event.accept()

"""The WeightLab main window: model tree | tensor views | edit, history, evaluation.

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
- View › Show optimizer state (checkpoints). Help › Keyboard Shortcuts.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QTabWidget,
)

from weightlab.app.actions import Action, window_actions
from weightlab.app.jobs import JobList
from weightlab.app.workspace import Workspace
from weightlab.core.diff import export_tensor
from weightlab.core.edits import Edit
from weightlab.core.errors import WeightLabError
from weightlab.core.session import EditSession
from weightlab.formats import open_session

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
from .settings import RecentFiles
from .tensor_worker import TensorComputer

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
        self._build_actions()
        self.setAcceptDrops(True)
        self.setMinimumSize(1000, 640)
        self.resize(1400, 900)
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
        self.views.addTab(self.heatmap, "Heatmap")
        self.views.addTab(self.diff_view, "Diff vs original")
        self.views.setTabToolTip(0, "The tensor's values, output neurons along columns")
        self.views.setTabToolTip(1, "How the shown tensor changed: histogram of edited − original, changed positions (Ctrl+D)")
        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(self.histogram)
        centre.addWidget(self.views)
        centre.addWidget(self.norms)
        centre.setSizes([330, 380, 190])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.edit_panel)
        right.addWidget(self.history)
        right.addWidget(self.eval_panel)
        right.setSizes([330, 150, 420])
        right.setMinimumWidth(330)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.tree)
        main.addWidget(centre)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        main.setSizes([440, 580, 380])
        self._sized = False
        for s in (centre, right, main):
            s.setChildrenCollapsible(False)
        self.splitters = (main, centre, right)
        self.setCentralWidget(main)

        self.hover_label = QLabel("")
        self.hover_label.setStyleSheet("font-family: monospace;")
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
            "view.diff": lambda on: self.views.setCurrentIndex(1 if on else 0),
            "view.mask": self.heatmap.mask_check.setChecked,
            "view.optimizer": self.tree.set_show_optimizer,
            "eval.restart": self.restart_evaluation,
            "eval.trust": self._toggle_trust,
            "help.shortcuts": self.show_shortcuts,
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

        act.fill_menu("File", {"open": recent, "compare": export_plots})
        act.fill_menu("Edit", {"apply": lambda menu: menu.addMenu(act.menu("Edit/Operation"))})
        act.fill_menu("Edit/Operation")
        for path in ("View", "Evaluation", "Analysis", "Help"):
            act.fill_menu(path)
        self.documents.fill_recent_menu()
        # the names tests and scripts use for a few actions
        self.act_undo, self.act_redo = act["edit.undo"], act["edit.redo"]
        self.act_mask, self.act_diff = act["view.mask"], act["view.diff"]
        self.act_show_optimizer, self.act_trust = act["view.optimizer"], act["eval.trust"]

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

    def _ask_open_path(self, title: str, name_filter: str, start: str | None = None) -> str | None:
        """File to open (the dialog starts in ``start``, else the model's folder), or None when cancelled."""
        start = start or (str(self.session.model.path.parent) if self.session else "")
        path, _ = QFileDialog.getOpenFileName(self, title, start, name_filter)
        return path or None

    def _ask_folder(self, title: str, start: str | None = None) -> str | None:
        """Folder to open (the dialog starts in ``start``, else the model's folder), or None when cancelled."""
        start = start or (str(self.session.model.path.parent) if self.session else "")
        return QFileDialog.getExistingDirectory(self, title, start) or None

    def _ask_save_path(self, title: str, default: Path, name_filter: str) -> str | None:
        """File to write, or None when cancelled."""
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

    def save_as(self) -> bool:
        """File › Save As…; True when a file was written."""
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
        """Lay the panes out once the window has its real width (tree and right pane fixed, centre the rest)."""
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            main = self.splitters[0]
            left, right = 450, 390
            main.setSizes([left, max(400, main.width() - left - right), right])
            # right column: the edit panel at its natural height, a short
            # history, and the evaluation panel gets what is left
            right_split = self.splitters[2]
            edit_h = self.edit_panel.sizeHint().height()
            history_h = 110
            right_split.setSizes([edit_h, history_h, max(300, right_split.height() - edit_h - history_h)])

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
        event.accept()

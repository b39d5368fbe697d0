"""The WeightLab main window: model tree | tensor views | edit, history, evaluation.

The :class:`~weightlab.core.session.EditSession` is the single source of truth:
every button builds an edit and hands it to the session; the window listens to
the session and refreshes the tree, the views, the history and the evaluation.

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
- View › Show optimizer state (checkpoints).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QSplitter,
    QTabWidget,
)

from weightlab.core.diff import compare_models, export_tensor
from weightlab.core.edits import Edit, Revert, SetValue, neuron_count, neuron_tensors
from weightlab.core.errors import WeightLabError
from weightlab.core.recipe import save_recipe
from weightlab.core.session import EditSession
from weightlab.formats import get_format, open_session

from .diff_view import CompareDialog, DiffData, DiffView, compute_diff
from .edit_panel import EditPanel, HistoryView
from .engine_adapter import EngineAdapter, metric
from .eval_panel import EvalPanel
from .export import PLOT_FILTER, TENSOR_FILTER, export_plot
from .heatmap_view import HeatmapView
from .histogram_view import HistogramView
from .journal_restore import JournalController
from .model_tree import ModelTree
from .norms_view import NormsView
from .op_forms import OPS
from .opener import ModelOpener, OpenProgress, OpenRequest, close_session
from .selection import NeuronSelection, neuron_target
from .settings import RecentFiles
from .tensor_worker import SYNC_LIMIT, TensorComputer, TensorRequest, TensorView

MODEL_FILTER = (
    "Models (*.keras *.h5 *.hdf5 *.weights.h5 *.pb *.index *.meta);;"
    "Keras models (*.keras *.h5 *.hdf5 *.weights.h5);;"
    "TensorFlow (SavedModel *.pb, checkpoint *.index *.meta, frozen graph *.pb) (*.pb *.index *.meta);;"
    "All files (*)"
)
ARCHITECTURE_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
DATA_FILTER = "Held-out sets (*.npz);;All files (*)"
RECIPE_FILTER = "Recipes (*.json);;All files (*)"
NO_DATA_REASON = "No held-out set: File › Open held-out set…"
#: Models with at most this many parameters are compared on the GUI thread
#: (well under 100 ms); larger ones in the pool behind a progress dialog.
COMPARE_SYNC_PARAMS = 2_000_000
_COMPOUND_SUFFIXES = (".weights.h5",)


def split_name(path: Path) -> tuple[str, str]:
    """``(stem, extension)`` keeping compound extensions (``m.weights.h5 -> ("m", ".weights.h5")``)."""
    for suffix in _COMPOUND_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)], suffix
    return path.stem, path.suffix


def default_save_path(path: Path) -> Path:
    """``<stem>-edited<ext>`` beside the opened file."""
    stem, ext = split_name(path)
    return path.with_name(f"{stem}-edited{ext}")


def save_filter(fmt: str) -> str:
    """The Save As filter for a model of format ``fmt``: only the names that format is written under.

    A ``.keras`` archive gives ``"Keras 3 model archive (*.keras)"``, a legacy
    HDF5 model ``"Keras legacy HDF5 model or weights (*.h5 *.hdf5)"``, a
    SavedModel (a folder: any name) ``"TensorFlow SavedModel folder (*)"``.
    WeightLab saves in the opened model's format and converts nothing
    (:func:`weightlab.formats.check_destination`). An unknown format (an
    in-memory model) gives ``"All files (*)"``.
    """
    try:
        handler = get_format(fmt)
    except WeightLabError:
        return "All files (*)"
    label = re.sub(r"\s*\([^)]*\)", "", handler.description).strip()
    patterns = " ".join(f"*{ext}" for ext in handler.extensions) or "*"
    return f"{label} ({patterns})"


def with_default_extension(path: Path, fmt: str) -> Path:
    """``path`` with format ``fmt``'s extension added when its name has no extension at all.

    ``edited`` becomes ``edited.keras`` for a ``.keras`` model (what a file
    dialog's default suffix does); a name with any extension is kept as typed
    (the save refuses another format's extension with a clear error). A
    SavedModel folder and a checkpoint prefix keep the name as typed.
    """
    if fmt in ("savedmodel", "checkpoint") or path.suffix or not path.name:
        return path
    try:
        extensions = get_format(fmt).extensions
    except WeightLabError:
        return path
    return path.with_name(path.name + extensions[0]) if extensions else path


def guess_heldout(model_path: Path) -> Path | None:
    """A held-out ``.npz`` beside the model named like it, if there is one.

    Tries ``<stem>.npz``, ``<stem>_heldout.npz``, ``<stem>-heldout.npz`` and
    ``<prefix>_heldout.npz`` (prefix = the stem up to its first ``_``, which
    finds ``digits_heldout.npz`` for ``digits_cnn.keras``).
    """
    stem, _ = split_name(model_path)
    names = [f"{stem}.npz", f"{stem}_heldout.npz", f"{stem}-heldout.npz", f"{stem.split('_')[0]}_heldout.npz"]
    for name in names:
        candidate = model_path.with_name(name)
        if candidate.is_file():
            return candidate
    return None


class MainWindow(QMainWindow):
    """WeightLab's main window.

    Parameters
    ----------
    engine:
        Evaluation engine adapter; one is created (and owned) when omitted.
    recent:
        Recent-files store; the default one under the config folder when omitted.

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
        self.session: EditSession | None = None
        self.current: str | None = None
        self.data_path: Path | None = None
        self.trust = False
        #: Extra ``open`` options for the engine: ``architecture`` (checkpoints),
        #: ``signature`` and ``output`` (SavedModels); reset for every model.
        self.eval_options: dict[str, str] = {}
        self._model_info = None  # the last ModelReady (signatures and outputs on offer)
        self._model_ok = False
        self._eval_applied: tuple = ()
        self._norms_of: str | None = None
        self._view_stage = 0  # number of the latest view being handed to the plots (see _on_view)
        self._view_steps_pending = False
        self._keep_range = False
        self.recent = recent or RecentFiles()
        self.engine = engine or EngineAdapter(self)
        self.computer = TensorComputer(self)
        self.selection = NeuronSelection(self)
        self._opener = ModelOpener(self)
        self._compare_opener = ModelOpener(self)  # File › Compare with…: its own latest-wins open
        self._compare_base: EditSession | None = None  # the session a comparison was asked for
        self._session_changes = 0  # session change notifications so far (edits while a file opens)
        self._discard_ok_at: int | None = None  # _session_changes when dropping the session was confirmed
        #: The edit journal of this window's session, and the restore offer (journal_restore.py).
        self.journal = JournalController(self)
        self.journal.restored.connect(self._on_journal_restored)

        self._build_widgets()
        self._build_actions()
        self._connect()
        self.setAcceptDrops(True)
        self.setMinimumSize(1000, 640)
        self.resize(1400, 900)
        self._update_title()
        self._update_actions()

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
        self.compare_dialog: CompareDialog | None = None
        self._comparing = None  # (other session, stop event, progress dialog) while a comparison runs

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

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, list):
                act.setShortcuts(shortcut)
            else:
                act.setShortcut(shortcut)
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.triggered.connect(lambda _checked=False: slot())
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        key = QKeySequence
        self.act_open = self._action("&Open…", self.open_dialog, key(key.StandardKey.Open), "Open a Keras model file")
        self.act_open_folder = self._action(
            "Open &folder…", self.open_folder_dialog, key("Ctrl+Shift+O"),
            "Open a SavedModel folder or a checkpoint folder",
        )
        self.act_open_data = self._action("Open &held-out set…", self.open_data_dialog, tip="Open a held-out .npz (x, y)")
        self.act_save_as = self._action("Save &As…", self.save_as, key("Ctrl+Shift+S"), "Write the edited model to a new file")
        self.act_export = self._action("&Export recipe…", self.export_recipe, tip="Save the applied edits as a JSON recipe")
        self.act_apply = self._action("Apply &recipe…", self.apply_recipe_dialog, tip="Apply the edits of a JSON recipe")
        self.act_quit = self._action("&Quit", self.close, key("Ctrl+Q"))
        self.act_undo = self._action("&Undo", self.undo, key(key.StandardKey.Undo))
        self.act_redo = self._action(
            "&Redo", self.redo, [key(key.StandardKey.Redo), key("Ctrl+Shift+Z"), key("Ctrl+Y")]
        )
        self.act_revert = self._action("Revert &tensor", self.revert_tensor, tip="Restore the shown tensor's stored values")
        self.act_revert_all = self._action("Revert &all", self.revert_all, tip="Restore every tensor's stored values")
        self.act_zero_neurons = self._action(
            "&Zero neurons", self.edit_panel.zero_neurons, key(Qt.Key.Key_Delete),
            "Ablate the selected neurons: kernel[..., j] = 0, bias[j] = 0",
        )
        self.act_apply_op = self._action(
            "&Apply operation", self.edit_panel.apply_op, [key("Ctrl+Return"), key("Ctrl+Enter")],
            "Apply the operation chosen in the edit panel to its target",
        )
        self.act_clip_range = self._action(
            "&Clip to brushed range", self.edit_panel.clip_to_range, key("Ctrl+K"),
            "np.clip(w, lo, hi) with the range brushed on the histogram",
        )
        self.act_glob = self._action(
            "Target a &glob…", lambda: self.edit_panel.set_target_mode("glob"), key("Ctrl+G"),
            "Type a pattern over layer/weight names, e.g. */kernel",
        )
        self.act_whole = self._action(
            "Target the whole &model", lambda: self.edit_panel.set_target_mode("model"), key("Ctrl+Shift+A"),
            "Value edits act on every weight of the model",
        )
        self.act_tree_target = self._action(
            "Target the &tree selection", lambda: self.edit_panel.set_target_mode("tree"), key("Ctrl+T"),
            "Value edits act on the tensors/layers selected in the tree",
        )
        op_keys = {"clip_symmetric": "Ctrl+Shift+K", "prune_magnitude": "Ctrl+Shift+P",
                   "prune_neurons": "Ctrl+Shift+N", "add_noise": "Ctrl+Shift+G", "reinit": "Ctrl+Shift+I"}
        self.op_actions = {
            spec.key: self._action(
                spec.label, lambda key=spec.key: self._choose_op(key),
                key(op_keys[spec.key]) if spec.key in op_keys else None, spec.tip,
            )
            for spec in OPS
        }
        self.act_compare = self._action(
            "&Compare with…", self.compare_dialog_open, key("Ctrl+Shift+C"),
            "Per-tensor change from this file to another of the same architecture",
        )
        self.act_export_tensor = self._action(
            "Export &tensor…", self.export_tensor_dialog, key("Ctrl+E"), "Write the shown tensor as .npy or .csv"
        )
        self.act_show_optimizer = QAction("Show &optimizer state", self, checkable=True)
        self.act_show_optimizer.setToolTip("Show the optimizer's slots of a checkpoint in the tree")
        self.act_show_optimizer.toggled.connect(self.tree.set_show_optimizer)
        self.act_mask = QAction("Show pruned &mask", self, checkable=True, checked=True)
        self.act_mask.setShortcut(key("Ctrl+M"))
        self.act_mask.setToolTip("Darken heatmap entries that are zero now and were non-zero in the file")
        self.act_mask.toggled.connect(self.heatmap.mask_check.setChecked)
        self.heatmap.mask_check.toggled.connect(self.act_mask.setChecked)
        self.addAction(self.act_mask)
        self.act_diff = QAction("&Diff view", self, checkable=True)
        self.act_diff.setShortcut(key("Ctrl+D"))
        self.act_diff.setToolTip("Show how the shown tensor changed (edited − original)")
        self.act_diff.toggled.connect(lambda on: self.views.setCurrentIndex(1 if on else 0))
        self.views.currentChanged.connect(lambda i: self.act_diff.setChecked(i == 1))
        self.addAction(self.act_diff)
        self.act_clear_sel = self._action("Clear neuron selection", self.selection.clear, key(Qt.Key.Key_Escape))
        self.act_reeval = self._action("&Re-evaluate", self.restart_evaluation, tip="Rebuild the model in the worker and evaluate again")
        self.act_trust = QAction("&Trust model code (unsafe)…", self, checkable=True)
        self.act_trust.setToolTip("Let the evaluation worker run custom/Lambda layers of this file")
        self.act_trust.toggled.connect(self._toggle_trust)

        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addActions([self.act_open, self.act_open_folder, self.act_open_data])
        self.recent_menu = m.addMenu("Open &Recent")
        m.addSeparator()
        m.addActions([self.act_save_as, self.act_export, self.act_apply])
        m.addSeparator()
        m.addActions([self.act_compare, self.act_export_tensor])
        self.export_plot_menu = m.addMenu("Export &plot")
        self.export_plot_menu.setToolTipsVisible(True)
        for label in self.plots():
            act = self.export_plot_menu.addAction(f"{label.capitalize()}…")
            act.setToolTip(f"Write the {label} plot as PNG or SVG")
            act.triggered.connect(lambda _c=False, label=label: self.export_plot_dialog(label))
        m.addSeparator()
        m.addAction(self.act_quit)
        m = bar.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo])
        m.addSeparator()
        m.addActions([self.act_revert, self.act_revert_all])
        m.addSeparator()
        m.addActions([self.act_apply_op, self.act_clip_range, self.act_zero_neurons, self.act_clear_sel])
        ops = m.addMenu("&Operation")
        ops.setToolTipsVisible(True)
        group = None
        for spec in OPS:
            if group is not None and spec.group != group:
                ops.addSeparator()
            group = spec.group
            ops.addAction(self.op_actions[spec.key])
        m.addSeparator()
        m.addActions([self.act_tree_target, self.act_glob, self.act_whole])
        m = bar.addMenu("&View")
        m.addActions([self.act_diff, self.act_mask, self.act_show_optimizer])
        m = bar.addMenu("E&valuation")
        m.addActions([self.act_reeval, self.act_trust])
        self._fill_recent_menu()

    def _connect(self) -> None:
        self._selecting = False
        self.tree.tensorSelected.connect(self._on_tree_tensor)
        self.tree.targetsSelected.connect(self.edit_panel.set_tree_selection)
        self.heatmap.cellDoubleClicked.connect(self.set_cell)
        self.history.stepToggled.connect(self.set_step_enabled)
        self.views.currentChanged.connect(lambda _i: self._update_diff())
        self.computer.ready.connect(self._on_view)
        self._opener.opened.connect(self._on_opened)
        self._opener.failed.connect(self._on_open_failed)
        self.open_progress.cancel.clicked.connect(self.cancel_open)
        self._compare_opener.opened.connect(self._on_compare_opened)
        self._compare_opener.failed.connect(self._on_compare_open_failed)
        self.compare_progress.cancel.clicked.connect(self.cancel_compare_open)
        self.computer.diffed.connect(self._on_diff)
        self.computer.compareProgress.connect(self._on_compare_progress)
        self.computer.compared.connect(self._on_compared)
        self.computer.compareFailed.connect(self._on_compare_failed)
        self.computer.diffFailed.connect(lambda msg: self.diff_view.clear(f"Cannot compute the diff: {msg}"))
        self.computer.preview.connect(self.histogram.set_preview)
        self.computer.tile.connect(self.heatmap.set_tile)
        self.computer.counted.connect(self.histogram.set_count)
        self.heatmap.regionWanted.connect(
            lambda rows, cols: self.heatmap.view is not None and self.computer.render(self.heatmap.view, rows, cols)
        )
        self.histogram.countWanted.connect(
            lambda lo, hi: self.histogram.view is not None and self.computer.count(self.histogram.view, lo, hi)
        )
        self.computer.failed.connect(lambda msg: self._error("Cannot read tensor", msg))
        self.computer.busy.connect(lambda b: self.statusBar().showMessage("computing statistics…" if b else "", 0))
        self.histogram.rangeChanged.connect(self.edit_panel.set_range)
        self.histogram.binsChanged.connect(lambda _n: self._request_view(keep_range=True))
        self.heatmap.hovered.connect(self.hover_label.setText)
        self.selection.changed.connect(self._on_selection)
        self.edit_panel.editRequested.connect(self.apply_edit)
        self.history.gotoRequested.connect(self.goto)
        eng = self.engine
        eng.ready.connect(lambda ev: self.eval_panel.set_device(f"{ev.device} · TensorFlow {ev.tensorflow_version}"))
        eng.modelReady.connect(self._on_model_ready)
        self.eval_panel.architectureRequested.connect(self.choose_architecture_dialog)
        self.eval_panel.optionChosen.connect(self.set_eval_option)
        eng.estimate.connect(self.eval_panel.set_running)
        eng.result.connect(self._on_result)
        eng.failed.connect(lambda msg: self.eval_panel.show_message(f"Evaluation failed: {msg}"))
        eng.crashed.connect(self._on_crashed)

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

    def _ask_open_path(self, title: str, name_filter: str) -> str | None:
        """File to open, or None when cancelled."""
        start = str(self.session.model.path.parent) if self.session else ""
        path, _ = QFileDialog.getOpenFileName(self, title, start, name_filter)
        return path or None

    def _ask_folder(self, title: str) -> str | None:
        """Folder to open, or None when cancelled."""
        start = str(self.session.model.path.parent) if self.session else ""
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

    # -- files ------------------------------------------------------------------------
    def _load_session(self, path: Path) -> EditSession:
        """Open ``path`` as an edit session (reads data only, never runs model code)."""
        return open_session(path)

    def open_dialog(self) -> None:
        """File › Open…"""
        path = self._ask_open_path("Open model", MODEL_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        """File › Open folder… (a SavedModel or a checkpoint folder)."""
        path = self._ask_folder("Open SavedModel or checkpoint folder")
        if path:
            self.open_path(path)

    def choose_architecture_dialog(self) -> None:
        """Evaluation › Choose architecture…: the model file a checkpoint's weights belong to."""
        path = self._ask_open_path("Choose architecture", ARCHITECTURE_FILTER)
        if path:
            self.set_eval_option("architecture", path)

    def set_eval_option(self, key: str, value: str | None) -> None:
        """Set an engine ``open`` option (``architecture``, ``signature``, ``output``) and re-evaluate."""
        if value is None:
            self.eval_options.pop(key, None)
        else:
            self.eval_options[key] = str(value)
        self._offer_eval_choices(self._model_info)
        self.restart_evaluation()

    def _offer_eval_choices(self, ev=None) -> None:
        """Offer the evaluation choices this model and the installed engine allow (``ev``: its ModelReady)."""
        self._model_info = ev
        s = self.session
        arch = self.eval_options.get("architecture")
        self.eval_panel.offer_architecture(
            s is not None and s.model.format == "checkpoint" and self.engine.supports("architecture"),
            Path(arch).name if arch else None,
        )
        for key, field in (("signature", "signatures"), ("output", "outputs")):
            values = list(getattr(ev, field, None) or []) if self.engine.supports(key) else []
            self.eval_panel.offer_choices(key, values, self.eval_options.get(key))

    def open_data_dialog(self) -> None:
        """File › Open held-out set…"""
        path = self._ask_open_path("Open held-out set", DATA_FILTER)
        if path:
            self.open_data(path)

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
        p = Path(path)
        if p.suffix.lower() == ".npz":
            return self.open_data(p)
        if not self._confirm_discard():
            return False
        self._discard_ok_at = self._session_changes
        request = self._opener.open(p, Path(data) if data else None, self._load_session)
        self.open_progress.start(p.name, request.started)
        return True

    @property
    def opening(self) -> bool:
        """True while a file is being opened (see :meth:`open_path`)."""
        return self._opener.pending is not None

    def cancel_open(self) -> None:
        """Stop waiting for the file being opened; the window keeps what it shows.

        The open's thread cannot be interrupted inside a reader; when it ends,
        its result is closed, never shown.
        """
        request = self._opener.cancel()
        self.open_progress.stop()
        if request is not None:
            self.statusBar().showMessage(f"Opening {request.path.name} cancelled", 5000)
            self.openFinished.emit(False)

    def _on_opened(self, request: OpenRequest, session: EditSession) -> None:
        """The latest open succeeded (GUI thread): show its model."""
        self.open_progress.stop()
        if (
            self.session is not None
            and self.session.is_modified
            and self._session_changes != self._discard_ok_at
            and not self._confirm_discard()
        ):
            # The user edited the shown model while the file was opening, and keeps those edits.
            close_session(session)
            self.statusBar().showMessage(f"{request.path.name} not opened: the edits are kept", 5000)
            self.openFinished.emit(False)
            return
        self.set_session(session, request.data or guess_heldout(request.path))
        self.recent.add(request.path)
        self._fill_recent_menu()
        self.statusBar().showMessage(f"Opened {request.path}", 5000)
        self.modelOpened.emit(request.path)
        self.openFinished.emit(True)

    def _on_open_failed(self, request: OpenRequest, message: str) -> None:
        """The latest open failed (GUI thread): one error dialog; the window keeps what it shows."""
        self.open_progress.stop()
        self._error("Cannot open model", message)
        self.openFailed.emit(message)
        self.openFinished.emit(False)

    def set_session(self, session: EditSession | None, data_path: Path | None = None) -> None:
        """Show ``session`` (replacing the current one) and start evaluating it on ``data_path``.

        A file still being opened is dropped: the session given here is the latest.
        """
        if self._opener.cancel() is not None:
            self.open_progress.stop()
            self.openFinished.emit(False)
        if self.session is not None:
            self.session.unsubscribe(self._on_session_changed)
            self.session.model.close()
        self.eval_options = {}
        self.engine.cancel()
        self.computer.cancel()
        self._view_stage += 1  # drop the plot steps of a view of the previous model
        self._view_steps_pending = False
        self.session = session
        self.current = None
        self.data_path = data_path
        self.selection.set_target(None, 0)
        self.histogram.set_view(None)
        self.heatmap.set_view(None)
        self.norms.set_norms(None)
        self.edit_panel.set_tensor(None)
        self.edit_panel.set_session(session)
        self.diff_view.clear("Edit a tensor to see how it changed")
        self.tree.set_session(session)
        self.history.set_session(session)
        self.journal.attach(session)
        if session is not None:
            session.subscribe(self._on_session_changed)
            first = self.tree.first_tensor()
            if first:
                # The tree is drawn in this turn, the first tensor's plots
                # from the next one (each repaint in its own turn; see _on_view).
                QTimer.singleShot(1, self, lambda: self._show_first(session, first))
        self.eval_panel.set_history(session.steps if session else [], session.position if session else 0)
        self._offer_eval_choices()
        self.restart_evaluation()
        self._update_title()
        self._update_actions()

    def _show_first(self, session: EditSession, name: str) -> None:
        """Select tensor ``name`` of a just-opened ``session`` unless one was chosen meanwhile."""
        if self.session is session and self.current is None:
            self.tree.select(name)

    def _on_journal_restored(self, session: EditSession, candidate) -> None:
        """Show a session restored from a journal after a crash (its edits unsaved); drop that journal."""
        if not self._confirm_discard():
            session.model.close()
            candidate.release()
            return
        self.set_session(session, guess_heldout(session.model.path))
        if self.journal.journal.error is None:
            candidate.discard()  # after set_session: the edits are in this window's journal now
        else:
            candidate.release()  # this window cannot journal them: keep the old journal
        self.statusBar().showMessage(f"Restored {candidate.edit_count} unsaved edit(s) to {session.model.path}", 8000)

    def open_data(self, path: str | os.PathLike[str]) -> bool:
        """Use ``path`` (.npz) as the held-out set and re-evaluate."""
        p = Path(path)
        if not p.is_file():
            self._error("Cannot open held-out set", f"{p}: no such file")
            return False
        self.data_path = p
        self.restart_evaluation()
        return True

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = self.recent.paths()
        for p in paths:
            act = self.recent_menu.addAction(p.name)
            act.setToolTip(str(p))
            act.setStatusTip(str(p))
            act.triggered.connect(lambda _c=False, p=p: self.open_path(p))
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: (self.recent.clear(), self._fill_recent_menu()))

    def save_as(self) -> bool:
        """File › Save As…; True when a file was written."""
        if self.session is None:
            return False
        opened = self.session.model.path
        fmt = self.session.model.format
        title = "Save edited model as (a new folder)" if fmt == "savedmodel" else "Save edited model as"
        chosen = self._ask_save_path(title, default_save_path(opened), save_filter(fmt))
        if not chosen:
            return False
        out = with_default_extension(Path(chosen), fmt)
        if out != Path(chosen) and out.exists() and not (opened.exists() and os.path.samefile(out, opened)):
            # The dialog asked about the name as typed, not about this one.
            if not self._confirm_replace(out):
                self.statusBar().showMessage(f"Not saved: {out.name} is left as it was", 5000)
                return False
        overwrite = False
        if out.exists() and opened.exists() and os.path.samefile(out, opened):
            if not self._confirm_overwrite(out):
                self.statusBar().showMessage("Not saved: the opened file is left as it was", 5000)
                return False
            overwrite = True
        try:
            self.session.save(out, overwrite=overwrite)
        except WeightLabError as e:
            self._error("Cannot save", str(e))
            return False
        except OSError as e:
            self._error("Cannot save", f"{out}: {e.strerror or e}")
            return False
        self.journal.sync()  # nothing unsaved now: the journal is removed
        self.statusBar().showMessage(f"Saved {out}", 5000)
        self._update_title()
        return True

    def export_recipe(self) -> bool:
        """File › Export recipe…; True when written."""
        if self.session is None:
            return False
        stem, _ = split_name(self.session.model.path)
        default = self.session.model.path.with_name(f"{stem}-recipe.json")
        chosen = self._ask_save_path("Export recipe", default, RECIPE_FILTER)
        if not chosen:
            return False
        try:
            save_recipe(self.session.to_recipe(), chosen)
        except (WeightLabError, OSError) as e:
            self._error("Cannot export recipe", str(e))
            return False
        self.statusBar().showMessage(f"Recipe written to {chosen}", 5000)
        return True

    def apply_recipe_dialog(self) -> None:
        """File › Apply recipe…"""
        if self.session is None:
            return
        path = self._ask_open_path("Apply recipe", RECIPE_FILTER)
        if path:
            self.apply_recipe(path)

    def apply_recipe(self, path: str | os.PathLike[str]) -> bool:
        """Apply a recipe file as one transaction; errors go to a dialog."""
        if self.session is None:
            return False
        try:
            self.session.apply_recipe(path)
        except WeightLabError as e:
            self._error("Cannot apply recipe", str(e))
            return False
        return True

    def _confirm_discard(self) -> bool:
        """True when it is fine to drop the current session (saved, discarded, or unmodified)."""
        if self.session is None or not self.session.is_modified:
            return True
        answer = self._ask_unsaved()
        if answer == "save":
            return self.save_as()
        return answer == "discard"

    # -- drag and drop -------------------------------------------------------------------
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
        if not self._confirm_discard():
            event.ignore()
            return
        self.journal.close()  # the edits were saved or discarded
        self._opener.cancel()  # a file still opening is closed by its thread
        self._compare_opener.cancel()
        self.open_progress.stop()
        self.compare_progress.stop()
        self._cancel_comparison()
        self.computer.cancel()
        self.engine.shutdown()
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        if self.session is not None:
            self.session.model.close()  # TF formats hold a reader process
        event.accept()

    # -- tensors and views ----------------------------------------------------------------
    def show_tensor(self, name: str) -> None:
        """Show tensor ``name`` in the histogram, heatmap and norm plot."""
        if self.session is None:
            return
        model = self.session.model
        # Shown by code (not a tree click): make it the tree selection too, so
        # edits that act on the selection (the brush buttons, the Operation
        # tab) never reach another tensor than the one on screen.
        selected = self.tree.selected_targets()
        if name not in selected and model.tensors[name].layer not in selected:
            self._selecting = True
            try:
                self.tree.select_only(name)
            finally:
                self._selecting = False
        self._show(name)

    def _on_tree_tensor(self, name: str) -> None:
        """A tensor row became current in the tree (a click, or select_only)."""
        if not self._selecting and self.session is not None:
            self._show(name)

    def _show(self, name: str) -> None:
        self.current = name
        model = self.session.model
        target = neuron_target(model, name)
        try:
            self._norms_of = neuron_tensors(target, model)[0]
            count = neuron_count(target, model)
        except WeightLabError:
            self._norms_of, count = None, 0
        self.selection.set_target(target, count)
        self.edit_panel.set_tensor(name)
        self._request_view(keep_range=False)

    def _request_view(self, keep_range: bool) -> None:
        if self.session is None or self.current is None:
            return
        self._keep_range = keep_range
        info = self.session.model.tensors[self.current]
        req = TensorRequest(
            generation=self.computer.next_generation(),
            name=self.current,
            source=self.session,
            bins=self.histogram.bins.value(),
            edited=self.session.is_edited(self.current),
            norms_of=self._norms_of,
            size=info.size,
        )
        self.computer.submit(req)

    def _on_view(self, view: TensorView) -> None:
        """Show a computed view: one plot per turn of the event loop, then ``viewShown``.

        Each plot repaints (axes, text) in the turn after its data changes;
        handing the histogram, the heatmap and the norm plot their data in
        successive turns lets input and timers run between those repaints
        instead of after all of them (benchmarks/bench_gui.py). A newer view
        drops the rest of an older one's stages.
        """
        self._view_stage += 1
        stage = self._view_stage
        norms_of = self._norms_of or ""
        keep_range = self._keep_range
        steps = [
            lambda: self.histogram.set_view(view, keep_range=keep_range),
            lambda: self.heatmap.set_view(view),
            lambda: self.norms.set_norms(view.norms, norms_of),
            lambda: self._view_done(view),
        ]
        self.tree.set_zero_fraction(view.request.name, view.stats.zeros)
        self._run_view_steps(stage, steps)

    @property
    def view_settled(self) -> bool:
        """True when no computed view is still being handed to the plots (see :meth:`_on_view`)."""
        return not self._view_steps_pending

    def _run_view_steps(self, stage: int, steps: list) -> None:
        if stage != self._view_stage or not steps:
            return  # superseded by a newer view (or a new model)
        self._view_steps_pending = len(steps) > 1
        steps[0]()
        if len(steps) > 1:
            # A timer, not a posted call: Qt delivers every posted event (the
            # plots' repaints included) before any timer, so only a timer puts
            # the next plot's repaint in a later turn, after pending input.
            # The window is the timer's context: Qt drops it if the window is
            # deleted first, so a step never runs on a deleted plot.
            QTimer.singleShot(1, self, lambda: self._run_view_steps(stage, steps[1:]))

    def _view_done(self, view: TensorView) -> None:
        self._update_diff()
        self.viewShown.emit(view.request.name)

    def _update_diff(self) -> None:
        """Refresh the diff tab while it is shown; a large tensor's diff is computed in the pool."""
        if self.views.currentWidget() is not self.diff_view:
            return
        s, name = self.session, self.current
        if s is None or name is None:
            self.diff_view.clear("No tensor shown")
        elif not s.is_edited(name):
            self.diff_view.clear(f"<b>{name}</b> is not edited: it equals the stored values")
        elif s.model.tensors[name].size <= SYNC_LIMIT:
            self.diff_view.show_diff(name, s.original(name), s.array(name))
        else:
            self.diff_view.clear(f"<b>{name}</b>: computing the diff…")
            current = s.array(name)  # immutable: the values as of this request
            self.computer.diff(name, lambda: compute_diff(name, s.original(name), current))

    def _on_diff(self, data: DiffData) -> None:
        """A diff computed in the pool: shown when it is still the tensor on screen."""
        if self.views.currentWidget() is self.diff_view and data.diff.name == self.current:
            self.diff_view.show_data(data)

    def _on_selection(self) -> None:
        self.selection_label.setText(self.selection.describe() if self.selection.neurons else "")
        self.act_zero_neurons.setEnabled(bool(self.selection.neurons))

    # -- editing ----------------------------------------------------------------------
    def apply_edit(self, edit: Edit) -> bool:
        """Apply ``edit`` to the session; a misfit edit is reported, not raised."""
        if self.session is None:
            return False
        try:
            self.session.apply(edit)
        except WeightLabError as e:
            self._error("Cannot apply edit", str(e))
            return False
        self.statusBar().showMessage(edit.describe(), 4000)
        return True

    def _choose_op(self, key: str) -> None:
        """Edit › Operation › …: show that op's form."""
        self.edit_panel.select_op(key)
        self.edit_panel.form.setFocus()

    def set_cell(self, index: tuple, value: float) -> bool:
        """Ask for a new value of the shown tensor at ``index`` (a heatmap double-click) and set it."""
        if self.session is None or self.current is None:
            return False
        where = f"{self.current}[{', '.join(map(str, index))}]"
        new = self._ask_value("Set value", f"{where}\ncurrent value {value:.8g}\nnew value:", value)
        if new is None:
            return False
        return self.apply_edit(SetValue(target=self.current, index=tuple(index), value=new))

    def set_step_enabled(self, index: int, enabled: bool) -> None:
        """Switch history step ``index`` on or off; the weights are recomputed by replay and re-evaluated."""
        if self.session is None:
            return
        try:
            self.session.set_step_enabled(index, enabled)
        except (WeightLabError, IndexError) as e:
            self._error("Cannot switch the step", str(e))
        self.journal.sync()  # a step of the undone tail changes no values: not announced
        # Nothing may have changed (a step of an undone tail): the rows still need redrawing.
        self.history.refresh()
        self.eval_panel.set_history(self.session.steps, self.session.position)
        self._update_actions()

    def undo(self) -> None:
        """Edit › Undo."""
        if self.session is not None:
            self.session.undo()
            self.journal.sync()  # also a step that changes no values (switched off)

    def redo(self) -> None:
        """Edit › Redo."""
        if self.session is not None:
            self.session.redo()
            self.journal.sync()  # also a step that changes no values (switched off)

    def goto(self, position: int) -> None:
        """Jump to history ``position`` (number of applied steps)."""
        if self.session is not None:
            self.session.goto(position)
            self.journal.sync()  # also a step that changes no values (switched off)

    def revert_tensor(self) -> None:
        """Edit › Revert tensor (the shown one), as an undoable step."""
        if self.session is not None and self.current and self.session.is_edited(self.current):
            self.apply_edit(Revert(target=self.current))

    def revert_all(self) -> None:
        """Edit › Revert all, as an undoable step."""
        if self.session is not None and self.session.edited_names:
            self.apply_edit(Revert(target="*"))

    def _on_session_changed(self, changed: set[str]) -> None:
        s = self.session
        self._session_changes += 1
        self.tree.refresh(changed)
        self.history.refresh()
        self.eval_panel.set_history(s.steps, s.position)
        if self.current in changed or self._norms_of in changed:
            self._request_view(keep_range=True)
        self._request_evaluation()
        self._update_title()
        self._update_actions()

    def _update_title(self) -> None:
        if self.session is None:
            self.setWindowTitle("WeightLab")
            return
        star = "*" if self.session.is_modified else ""
        self.setWindowTitle(f"{self.session.model.path.name}{star} — WeightLab")

    def _update_actions(self) -> None:
        s = self.session
        has = s is not None
        self.act_undo.setEnabled(has and s.can_undo)
        self.act_redo.setEnabled(has and s.can_redo)
        self.act_revert.setEnabled(has and self.current is not None and s.is_edited(self.current))
        self.act_revert_all.setEnabled(has and bool(s.edited_names))
        for act in (
            self.act_save_as, self.act_export, self.act_apply, self.act_open_data, self.act_reeval,
            self.act_compare, self.act_export_tensor,
        ):
            act.setEnabled(has)
        self.act_zero_neurons.setEnabled(bool(self.selection.neurons))
        if has and s.can_undo:
            self.act_undo.setText(f"&Undo {s.steps[s.position - 1].edit.describe()}")
        else:
            self.act_undo.setText("&Undo")
        self.act_redo.setText(f"&Redo {s.steps[s.position].edit.describe()}" if has and s.can_redo else "&Redo")

    # -- compare and export -------------------------------------------------------------
    def plots(self) -> dict:
        """The exportable plots by label (File › Export plot)."""
        return {
            "histogram": self.histogram.plot,
            "heatmap": self.heatmap.plot,
            "neuron norms": self.norms.plot,
            **self.diff_view.plots,
        }

    def compare_dialog_open(self) -> None:
        """File › Compare with…"""
        if self.session is None:
            return
        path = self._ask_open_path("Compare with", MODEL_FILTER)
        if path:
            self.compare_with(path)

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
        if self.session is None:
            return False
        p = Path(path)
        self._compare_base = self.session
        request = self._compare_opener.open(p, None, self._load_session)
        self.compare_progress.start(p.name, request.started, "to compare")
        return True

    def _on_compare_opened(self, request: OpenRequest, other: EditSession) -> None:
        """The file to compare with was read (GUI thread): compare it with the opened model."""
        self.compare_progress.stop()
        mine, p = self.session, request.path
        if mine is None or mine is not self._compare_base:
            close_session(other)  # another model was opened meanwhile
            return

        def read_a(name: str):
            return mine.original(name, cache=False)

        def read_b(name: str):
            return other.original(name, cache=False)

        if mine.model.param_count <= COMPARE_SYNC_PARAMS:
            try:
                diffs = compare_models(mine.model, other.model, read_a, read_b)
            except WeightLabError as e:
                other.model.close()
                self._error("Cannot compare", str(e))
                return
            self._show_comparison(other, diffs)
            return
        self._cancel_comparison()
        stop = threading.Event()
        dialog = QProgressDialog(f"Comparing {mine.model.path.name} with {p.name}…", "Cancel", 0,
                                 len(mine.model.tensors), self)
        dialog.setWindowTitle("Compare")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(stop.set)
        self._comparing = (other, stop, dialog)
        self.computer.compare(mine.model, other.model, read_a, read_b, stop)

    def _on_compare_open_failed(self, request: OpenRequest, message: str) -> None:
        self.compare_progress.stop()
        self._error("Cannot compare", message)

    def cancel_compare_open(self) -> None:
        """Stop waiting for the file to compare with (it is closed when its thread ends)."""
        request = self._compare_opener.cancel()
        self.compare_progress.stop()
        if request is not None:
            self.statusBar().showMessage(f"Comparing with {request.path.name} cancelled", 5000)

    def _cancel_comparison(self) -> None:
        if self._comparing is not None:
            other, stop, dialog = self._comparing
            self._comparing = None
            stop.set()
            dialog.reset()
            other.model.close()

    def _on_compare_progress(self, done: int, total: int, name: str) -> None:
        if self._comparing is not None:
            dialog = self._comparing[2]
            dialog.setMaximum(total)
            dialog.setValue(done)
            dialog.setLabelText(f"Comparing {name} ({done + 1} of {total})…")

    def _on_compared(self, diffs) -> None:
        if self._comparing is None:
            return
        other, stop, dialog = self._comparing
        self._comparing = None
        dialog.reset()
        if diffs is None or stop.is_set():
            other.model.close()
            self.statusBar().showMessage("Comparison cancelled", 4000)
            return
        self._show_comparison(other, diffs)

    def _on_compare_failed(self, message: str) -> None:
        if self._comparing is not None:
            self._cancel_comparison()
            self._error("Cannot compare", message)

    def _show_comparison(self, other: EditSession, diffs: list) -> CompareDialog:
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = CompareDialog(self.session, other, diffs, self)
        self.compare_dialog.show()
        self.compareShown.emit(self.compare_dialog)
        return self.compare_dialog

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

    # -- evaluation --------------------------------------------------------------------
    def restart_evaluation(self) -> None:
        """(Re)build the model in the worker with the current held-out set and evaluate the baseline."""
        self._model_ok = False
        s = self.session
        self.eval_panel.reset(self.data_path.name if self.data_path else None)
        if s is None:
            return
        self.eval_panel.set_history(s.steps, s.position)
        if self.data_path is None:
            self.eval_panel.set_off(NO_DATA_REASON)
        elif not self.engine.open(s.model.path, self.data_path, trust=self.trust, **self.eval_options):
            self.eval_panel.set_off(self.engine.unavailable_reason or "evaluation engine unavailable")
        else:
            self.eval_panel.start_pass(0)

    def _toggle_trust(self, on: bool) -> None:
        if on and not self._confirm_trust():
            self.act_trust.blockSignals(True)
            self.act_trust.setChecked(False)
            self.act_trust.blockSignals(False)
            return
        self.trust = on
        self.restart_evaluation()

    def _request_evaluation(self) -> None:
        s = self.session
        if s is None or not self._model_ok or self.eval_panel.baseline is None:
            return  # evaluated once the baseline arrives
        self._eval_applied = tuple(s.steps[: s.position])
        edited = s.edited_arrays()
        if not edited:
            # Stored weights: the baseline is the exact answer, no need to ask the worker.
            self.engine.cancel()
            self.eval_panel.end_pass()
            self.eval_panel.set_current(self.eval_panel.baseline, s.position, self._eval_applied)
            return
        self.eval_panel.set_busy("evaluating…")
        self.eval_panel.start_pass(s.position)
        self.engine.evaluate(edited, tag=s.position)

    def _on_model_ready(self, ev) -> None:
        self._offer_eval_choices(ev)
        if not ev.ok:
            self._model_ok = False
            self.eval_panel.set_off(ev.reason or "the model cannot be evaluated")
            return
        self._model_ok = True
        name = self.data_path.name if self.data_path else "?"
        self.eval_panel.set_data_info(name, ev.num_samples, ev.num_classes)
        unmapped = list(getattr(ev, "unmapped", None) or [])
        if unmapped:
            self.eval_panel.show_message(
                f"{len(unmapped)} tensor(s) not matched in the built model; their edits are not evaluated: "
                + ", ".join(unmapped[:4]) + ("…" if len(unmapped) > 4 else "")
            )

    def _on_result(self, ev) -> None:
        if ev.baseline:
            self.eval_panel.set_baseline(ev.metrics)
            self._request_evaluation()
            return
        self.eval_panel.set_current(ev.metrics, int(ev.tag) if ev.tag is not None else 0, self._eval_applied)
        acc = metric(ev.metrics, "accuracy")
        self.statusBar().showMessage(f"held-out accuracy {100 * acc:.1f} %", 4000)

    def _on_crashed(self, message: str) -> None:
        self._model_ok = False
        self.eval_panel.show_message(message)
        self.statusBar().showMessage(message, 10000)


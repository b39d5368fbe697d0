"""The Training tab: set up a fine-tune or prune-and-retrain job, watch it live, see what it bought.

:class:`TrainingPanel` is the view;
:class:`~weightlab.gui.controllers.training.TrainingController` submits the
job, feeds its progress partials to the plots and turns the result into one
history step. The form on the left builds the fields of a
:class:`~weightlab.core.training.FinetuneSpec` (:meth:`TrainingPanel.finetune_fields`)
and, in *prune and retrain* mode, of a
:class:`~weightlab.core.training.PruneRetrainSpec`
(:meth:`TrainingPanel.prune_retrain_fields`): plain dicts of JSON values, so
the panel needs none of the engine's classes. A field that does not parse
raises :class:`FormError` naming it.

The learning-rate schedule is previewed (rate vs step) as its fields change,
from :meth:`weightlab.core.schedules.LRSchedule.values` over
``epochs × steps per epoch`` (steps per epoch from the training set's size
when the controller knows it, :meth:`TrainingPanel.set_train_samples`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from weightlab.core.errors import RecipeError

from . import theme
from .scroll_page import scroll_page
from .training_plot import SchedulePlot, TrainingPlot

__all__ = ["TrainingPanel", "FormError", "LR_SCHEDULE_FIELDS", "CONSTRAINT_FIELDS", "ASSUMED_STEPS_PER_EPOCH",
           "MODES", "NARROW"]

MODES = (("finetune", "fine-tune"), ("prune_retrain", "prune and retrain"))
OPTIMIZERS = (("auto", "auto"), ("adam", "Adam"), ("sgd", "SGD"), ("rmsprop", "RMSprop"))
#: Narrower than this (pixels), the set-up and the plots are two tabs instead of side by side.
NARROW = 760
#: Steps per epoch the schedule preview assumes when the training set's size is not known.
ASSUMED_STEPS_PER_EPOCH = 100
#: Longest schedule preview drawn point by point (longer ones are drawn at this many steps, evenly spaced).
MAX_PREVIEW_STEPS = 20_000

# (name, kind, default, tooltip); kind: int, float, optfloat, bool, ints, floats
_Field = tuple[str, str, Any, str]
#: The parameter fields of each learning-rate schedule (Keras' config keys).
LR_SCHEDULE_FIELDS: dict[str, tuple[_Field, ...]] = {
    "exponential_decay": (
        ("decay_steps", "int", 1000, "steps over which the rate is multiplied by decay_rate"),
        ("decay_rate", "float", 0.9, "lr · decay_rate^(step / decay_steps)"),
        ("staircase", "bool", False, "decay in whole steps of decay_steps (floor)"),
    ),
    "piecewise_constant_decay": (
        ("boundaries", "ints", "500/1000", "steps where the rate changes, separated by '/'"),
        ("values", "floats", "0.001/0.0005/0.0001", "one more rate than boundaries, separated by '/'"),
    ),
    "cosine_decay": (
        ("decay_steps", "int", 1000, "steps of the cosine from the initial rate down to alpha · rate"),
        ("alpha", "float", 0.0, "floor as a fraction of the initial rate"),
        ("warmup_steps", "int", 0, "linear warm-up steps first (to warmup_target)"),
        ("warmup_target", "optfloat", None, "rate reached after the warm-up (empty: no warm-up target)"),
    ),
    "polynomial_decay": (
        ("decay_steps", "int", 1000, "steps from the initial rate to end_learning_rate"),
        ("end_learning_rate", "float", 0.0001, "rate at decay_steps"),
        ("power", "float", 1.0, "1: linear"),
        ("cycle", "bool", False, "restart the decay after decay_steps"),
    ),
}
_SCHEDULE_LABELS = {"": "none (constant rate)", "exponential_decay": "ExponentialDecay",
                    "piecewise_constant_decay": "PiecewiseConstantDecay", "cosine_decay": "CosineDecay",
                    "polynomial_decay": "PolynomialDecay"}
#: The arguments of each weight constraint (applied after every update).
CONSTRAINT_FIELDS: dict[str, tuple[_Field, ...]] = {
    "": (),
    "max_norm": (("max_value", "float", 2.0, "largest norm of each unit's incoming weights"),),
    "non_neg": (),
    "unit_norm": (),
    "min_max_norm": (("min_value", "float", 0.0, "smallest norm"), ("max_value", "float", 1.0, "largest norm"),
                     ("rate", "float", 1.0, "1: enforce at once; less: move part of the way")),
    "clip": (("value", "float", 0.1, "clip every weight to [-value, value] after every update"),),
}
_CONSTRAINT_LABELS = {"": "none", "max_norm": "MaxNorm", "non_neg": "NonNeg", "unit_norm": "UnitNorm",
                      "min_max_norm": "MinMaxNorm", "clip": "clip value"}
MONITORS = ("val_loss", "val_accuracy")


class FormError(RecipeError, ValueError):
    """A field of the Training tab's form that does not parse; the message names it."""


def _bad(field: str, message: str) -> FormError:
    return FormError(f"training form: field {field!r}: {message}")


def _parse_number(text: str, field: str, kind: str) -> Any:
    t = text.strip()
    if kind == "optfloat" and not t:
        return None
    try:
        if kind == "int":
            return int(t)
        value = float(t)
    except ValueError:
        raise _bad(field, f"expected {'an integer' if kind == 'int' else 'a number'}, got {t!r}") from None
    if not math.isfinite(value):
        raise _bad(field, f"expected a finite number, got {t!r}")
    return value


def _parse_list(text: str, field: str, kind: str) -> list[Any]:
    parts = [p for p in text.replace(",", "/").split("/") if p.strip()]
    if not parts:
        raise _bad(field, "expected values separated by '/', e.g. 100/200")
    return [_parse_number(p, field, "int" if kind == "ints" else "float") for p in parts]


class _Fields(QWidget):
    """A small form of typed fields (``_Field`` tuples) whose values :meth:`values` parses."""

    changed = Signal()

    def __init__(self, fields: Sequence[_Field], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields = tuple(fields)
        self.widgets: dict[str, QWidget] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(2)
        for name, kind, default, tip in self.fields:
            if kind == "bool":
                w: QWidget = QCheckBox()
                w.setChecked(bool(default))
                w.toggled.connect(self.changed)
            else:
                w = QLineEdit("" if default is None else str(default))
                w.textChanged.connect(self.changed)
            w.setToolTip(tip)
            self.widgets[name] = w
            form.addRow(name.replace("_", " "), w)

    def values(self) -> dict[str, Any]:
        """``{name: value}``; raises :class:`FormError` naming a field that does not parse."""
        out: dict[str, Any] = {}
        for name, kind, _default, _tip in self.fields:
            w = self.widgets[name]
            if kind == "bool":
                out[name] = w.isChecked()
            elif kind in ("ints", "floats"):
                out[name] = _parse_list(w.text(), name, kind)
            else:
                out[name] = _parse_number(w.text(), name, kind)
        return out

    def set_value(self, name: str, value: Any) -> None:
        """Set field ``name`` (tests and defaults)."""
        w = self.widgets[name]
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(value, (list, tuple)):
            w.setText("/".join(str(v) for v in value))
        else:
            w.setText("" if value is None else str(value))


def _spin(lo: int, hi: int, value: int, tip: str = "", special: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    if special:
        s.setSpecialValueText(special)
    return s


def _dspin(lo: float, hi: float, value: float, decimals: int, step: float, tip: str = "",
           special: str = "", suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setValue(value)
    s.setToolTip(tip)
    if special:
        s.setSpecialValueText(special)
    if suffix:
        s.setSuffix(suffix)
    return s


def _group(title: str, checkable: bool = False) -> tuple[QGroupBox, QFormLayout]:
    g = QGroupBox(title)
    g.setCheckable(checkable)
    if checkable:
        g.setChecked(False)
    form = QFormLayout(g)
    form.setContentsMargins(6, 4, 6, 4)
    form.setVerticalSpacing(3)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return g, form


class TrainingPanel(QWidget):
    """The Training tab: the set-up form (left), live plots and the summary (right).

    Signals
    -------
    startRequested():
        *Start* was pressed (the controller reads the form).
    cancelRequested():
        *Cancel* was pressed.
    browseRequested(str):
        ``"train"``, ``"train_folder"`` or ``"val"``: pick a file or folder for that field.
    freezeLastChanged(int):
        *Freeze all but the last N layers* changed (0: off); the controller ticks the tree.
    """

    startRequested = Signal()
    cancelRequested = Signal()
    browseRequested = Signal(str)
    freezeLastChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.train_samples: int | None = None
        self._running = False
        self._blocked = ""
        self.plot = TrainingPlot()
        self.schedule_plot = SchedulePlot()
        self._build_form()
        self.summary = QLabel("")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setMaximumHeight(2 * self.summary.fontMetrics().lineSpacing() + 4)  # the plots keep the room
        self.live_cancel = QPushButton("Cancel")
        self.live_cancel.setToolTip("Stop training (shown with the curves when the set-up is on another tab)")
        self.live_cancel.clicked.connect(self.cancelRequested)
        self.live_cancel.hide()
        self.plot.top.addWidget(self.live_cancel)
        # a short tab scrolls the plots instead of squeezing them below legibility
        plots = QScrollArea()
        # the viewport's size, never less than the plots' legible minimum (then they scroll)
        self.plot.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.plot.setMinimumSize(self.plot.minimumSizeHint())
        plots.setWidget(self.plot)
        plots.setWidgetResizable(True)
        plots.setFrameShape(QFrame.Shape.NoFrame)
        plots.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(2)
        rl.addWidget(plots, 1)
        rl.addWidget(self.summary)
        scroll = QScrollArea()
        scroll.setWidget(self.form_widget)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # as wide as the form needs beside its scroll bar (nothing is cut off on the right)
        scroll.setMinimumWidth(self.form_widget.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width())
        self.controls = scroll
        self.live = right
        # wide: set-up | plots side by side; narrow (resizeEvent): two tabs, the plots shown while training
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(scroll)
        body.addWidget(right)
        body.setStretchFactor(0, 0)
        body.setStretchFactor(1, 1)
        body.setSizes([340, 700])
        body.setChildrenCollapsible(False)
        body.setCollapsible(0, True)
        self.body = body
        self.pages = QTabWidget()
        self.pages.setDocumentMode(True)
        self.pages.hide()
        # below the form's and plots' minimum the page scrolls inside the tab, not the whole centre
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(body)
        lay.addWidget(self.pages)
        self.page_scroll = scroll_page(self, inner)
        # the schedule preview follows the fields, at most once per event-loop turn
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(0)
        self._preview_timer.timeout.connect(self.update_schedule_preview)
        for sig in (self.schedule_combo.currentIndexChanged, self.epochs_spin.valueChanged,
                    self.batch_spin.valueChanged, self.lr_edit.textChanged, self.val_kind.currentIndexChanged,
                    self.val_split.valueChanged):
            sig.connect(lambda *_a: self._preview_timer.start())
        for page in self.schedule_fields.values():
            page.changed.connect(self._preview_timer.start)
        self.set_running(False)
        self.set_blocked("")
        self._on_mode()
        self._on_val_kind()
        self._on_optimizer()
        self._on_constraint()
        self._on_prune_by()
        self.update_schedule_preview()

    @property
    def narrow(self) -> bool:
        """True when the set-up and the plots are two tabs (the panel is narrower than :data:`NARROW`)."""
        return not self.pages.isHidden()

    def resizeEvent(self, event: Any) -> None:
        """Below :data:`NARROW` pixels the set-up and the plots become two tabs (each gets the whole width)."""
        super().resizeEvent(event)
        narrow = self.width() < NARROW
        if narrow == self.narrow:
            return
        self.live_cancel.setVisible(narrow)
        if narrow:
            self.body.hide()
            self.pages.addTab(self.controls, "Set up")
            self.pages.addTab(self.live, "Curves")
            self.pages.setCurrentIndex(1 if self._running else 0)
            self.pages.show()
        else:
            self.pages.hide()
            self.pages.clear()
            self.body.insertWidget(0, self.controls)
            self.body.insertWidget(1, self.live)
            # the tab widget hid the page that was not current (and re-parenting keeps it hidden)
            self.controls.show()
            self.live.show()
            self.body.show()

    # -- the form -----------------------------------------------------------------------------
    def _build_form(self) -> None:
        col = QVBoxLayout()
        col.setContentsMargins(2, 2, 6, 2)
        col.setSpacing(5)

        top = QFormLayout()
        top.setVerticalSpacing(3)
        self.mode_combo = QComboBox()
        for key, label in MODES:
            self.mode_combo.addItem(label, key)
        self.mode_combo.setToolTip("fine-tune: train the model as edited; prune and retrain: rounds of magnitude "
                                   "pruning, each followed by a fine-tune with the pruned weights kept at zero")
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        top.addRow("mode", self.mode_combo)
        col.addLayout(top)

        # data
        g, f = _group("Data")
        self.train_edit = QLineEdit()
        self.train_edit.setPlaceholderText(".npz with x, y — or an image folder")
        self.train_edit.setToolTip("Training data: an .npz holding x and y, or a folder with one subfolder of "
                                   "images per class")
        b_file = QPushButton("File…")
        b_folder = QPushButton("Folder…")
        for b, what in ((b_file, "train"), (b_folder, "train_folder")):
            b.setMinimumWidth(10)
            b.clicked.connect(lambda _c=False, w=what: self.browseRequested.emit(w))
        row = QHBoxLayout()
        row.setSpacing(3)
        row.addWidget(self.train_edit, 1)
        row.addWidget(b_file)
        row.addWidget(b_folder)
        f.addRow("train", row)
        self.val_kind = QComboBox()
        for key, label in (("split", "split of train"), ("file", "file or folder"), ("none", "none")):
            self.val_kind.addItem(label, key)
        self.val_kind.currentIndexChanged.connect(self._on_val_kind)
        self.val_split = _dspin(0.01, 0.9, 0.1, 2, 0.05, "fraction of the training data held back for validation "
                                "(its last part, as Keras' validation_split)")
        self.val_edit = QLineEdit()
        self.val_edit.setPlaceholderText("validation .npz or image folder")
        self.val_button = QPushButton("…")
        self.val_button.setMaximumWidth(30)
        self.val_button.clicked.connect(lambda: self.browseRequested.emit("val"))
        vrow = QHBoxLayout()
        vrow.setSpacing(3)
        vrow.addWidget(self.val_kind)
        vrow.addWidget(self.val_split)
        vrow.addWidget(self.val_edit, 1)
        vrow.addWidget(self.val_button)
        f.addRow("validation", vrow)
        self.heldout_label = QLabel("–")
        self.heldout_label.setWordWrap(True)
        self.heldout_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.heldout_label.setToolTip("The window's held-out set: accuracy after every epoch, and the final figure")
        f.addRow("held-out", self.heldout_label)
        col.addWidget(g)

        # optimisation
        g, f = _group("Training")
        self.optimizer_combo = QComboBox()
        for key, label in OPTIMIZERS:
            self.optimizer_combo.addItem(label, key)
        self.optimizer_combo.setToolTip("auto: the optimizer of the model's compile config, else Adam; "
                                        "SGD with momentum; RMSprop")
        self.optimizer_combo.currentIndexChanged.connect(self._on_optimizer)
        f.addRow("optimizer", self.optimizer_combo)
        self.lr_edit = QLineEdit()
        self.lr_edit.setPlaceholderText("auto")
        self.lr_edit.setToolTip("Initial learning rate; empty: the compile config's, else 0.001")
        self.momentum_spin = _dspin(0.0, 0.999, 0.9, 3, 0.05, "SGD's momentum")
        lr_row = QHBoxLayout()
        lr_row.setSpacing(3)
        lr_row.addWidget(self.lr_edit, 1)
        self.momentum_label = QLabel("momentum")
        lr_row.addWidget(self.momentum_label)
        lr_row.addWidget(self.momentum_spin)
        f.addRow("learning rate", lr_row)
        self.epochs_spin = _spin(1, 10_000, 5, "passes over the training data (per round in prune and retrain)")
        self.batch_spin = _spin(1, 65_536, 32, "samples per step")
        self.seed_spin = _spin(0, 999_999, 0, "Keras' seed and TensorFlow's op determinism: the same seed "
                               "gives the same weights on CPU")
        nums = QHBoxLayout()
        nums.setSpacing(3)
        for label, w in (("epochs", self.epochs_spin), ("batch", self.batch_spin), ("seed", self.seed_spin)):
            nums.addWidget(QLabel(label))
            nums.addWidget(w, 1)
        f.addRow(nums)
        self.keep_masks = QCheckBox("keep masks (pruned weights stay zero)")
        self.keep_masks.setChecked(True)
        self.keep_masks.setToolTip("Weights that are zero now and were not zero in the stored file (pruned, "
                                   "ablated, zeroed by a step in the history) stay exactly zero through training; "
                                   "ablated neurons stay ablated, bias included")
        f.addRow(self.keep_masks)
        self.train_last_spin = _spin(0, 10_000, 0, "Tick the tree's Freeze column for every layer with weights but "
                                     "the last N (0: leave the ticks as they are)", special="off")
        self.train_last_spin.valueChanged.connect(self.freezeLastChanged)
        f.addRow("train only the last", self.train_last_spin)
        self.freeze_label = QLabel("frozen: none (tick layers in the tree's Freeze column)")
        self.freeze_label.setWordWrap(True)
        self.freeze_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        f.addRow(self.freeze_label)
        self.head_spin = _spin(0, 100_000, 0, "Replace the output layer by a freshly initialised Dense with this "
                               "many classes; the result is saved as a new .keras file", special="keep the head")
        f.addRow("new head (classes)", self.head_spin)
        col.addWidget(g)

        # learning-rate schedule
        g, f = _group("Learning-rate schedule")
        self.schedule_combo = QComboBox()
        for key, label in _SCHEDULE_LABELS.items():
            self.schedule_combo.addItem(label, key)
        self.schedule_combo.setToolTip("Keras' own schedule classes (keras.optimizers.schedules)")
        f.addRow("schedule", self.schedule_combo)
        self.schedule_stack = QStackedWidget()
        self.schedule_fields: dict[str, _Fields] = {}
        empty = QWidget()
        self.schedule_stack.addWidget(empty)
        for kind, fields in LR_SCHEDULE_FIELDS.items():
            page = _Fields(fields)
            self.schedule_fields[kind] = page
            self.schedule_stack.addWidget(page)
        self.schedule_combo.currentIndexChanged.connect(
            lambda i: self.schedule_stack.setCurrentIndex(i))
        self.schedule_combo.currentIndexChanged.connect(lambda _i: self._fit_stack(self.schedule_stack))
        f.addRow(self.schedule_stack)
        f.addRow(self.schedule_plot)
        col.addWidget(g)
        self._fit_stack(self.schedule_stack)

        # early stopping
        g, f = _group("Early stopping", checkable=True)
        self.early_group = g
        self.es_monitor = QComboBox()
        self.es_monitor.addItems(MONITORS)
        self.es_patience = _spin(0, 9_999, 3, "epochs without improvement before stopping")
        self.es_min_delta = _dspin(0.0, 1.0, 0.0, 4, 0.001, "smallest change counted as an improvement")
        self.es_start = _spin(0, 9_999, 0, "epochs to wait before watching at all")
        self.es_restore = QCheckBox("restore best")
        self.es_restore.setChecked(True)
        self.es_restore.setToolTip("Keras 3: the best epoch's weights come back, also when training ends "
                                   "without stopping early")
        f.addRow("monitor", self.es_monitor)
        r = QHBoxLayout()
        r.setSpacing(3)
        for label, w in (("patience", self.es_patience), ("from epoch", self.es_start)):
            r.addWidget(QLabel(label))
            r.addWidget(w, 1)
        f.addRow(r)
        r = QHBoxLayout()
        r.setSpacing(3)
        r.addWidget(QLabel("min Δ"))
        r.addWidget(self.es_min_delta, 1)
        r.addWidget(self.es_restore)
        f.addRow(r)
        col.addWidget(g)

        g, f = _group("Reduce LR on plateau", checkable=True)
        self.plateau_group = g
        self.rl_monitor = QComboBox()
        self.rl_monitor.addItems(MONITORS)
        self.rl_factor = _dspin(0.01, 0.99, 0.5, 2, 0.05, "the rate is multiplied by this")
        self.rl_patience = _spin(0, 9_999, 2, "epochs without improvement before reducing")
        self.rl_min_lr = QLineEdit("0")
        self.rl_min_lr.setToolTip("the rate never goes below this")
        f.addRow("monitor", self.rl_monitor)
        r = QHBoxLayout()
        r.setSpacing(3)
        for label, w in (("factor", self.rl_factor), ("patience", self.rl_patience), ("min lr", self.rl_min_lr)):
            r.addWidget(QLabel(label))
            r.addWidget(w, 1)
        f.addRow(r)
        col.addWidget(g)

        # regularisation
        g, f = _group("Regularise and constrain")
        self.reg_scope = QComboBox()
        self.reg_scope.addItem("all layers", "all")
        self.reg_scope.addItem("layers selected in the tree", "selection")
        self.reg_scope.setToolTip("Which layers' kernels get the regularizer and the constraint")
        f.addRow("apply to", self.reg_scope)
        self.l1_edit = QLineEdit("0")
        self.l1_edit.setToolTip("L1 kernel regularizer factor (0: none), e.g. 0.001")
        self.l2_edit = QLineEdit("0")
        self.l2_edit.setToolTip("L2 kernel regularizer factor (0: none), e.g. 0.01")
        r = QHBoxLayout()
        r.setSpacing(3)
        r.addWidget(QLabel("L1"))
        r.addWidget(self.l1_edit, 1)
        r.addWidget(QLabel("L2"))
        r.addWidget(self.l2_edit, 1)
        f.addRow("kernel", r)
        self.constraint_combo = QComboBox()
        for key, label in _CONSTRAINT_LABELS.items():
            self.constraint_combo.addItem(label, key)
        self.constraint_combo.setToolTip("Applied to the kernels after every update")
        self.constraint_combo.currentIndexChanged.connect(self._on_constraint)
        f.addRow("constraint", self.constraint_combo)
        self.constraint_stack = QStackedWidget()
        self.constraint_fields: dict[str, _Fields] = {}
        for kind, fields in CONSTRAINT_FIELDS.items():
            page = _Fields(fields)
            self.constraint_fields[kind] = page
            self.constraint_stack.addWidget(page)
        f.addRow(self.constraint_stack)
        self.clip_check = QCheckBox("clip kernels every epoch to ±")
        self.clip_check.setToolTip("At the end of every epoch, clip every kernel to [-c, c]")
        self.clip_edit = QLineEdit("0.1")
        r = QHBoxLayout()
        r.setSpacing(3)
        r.addWidget(self.clip_check)
        r.addWidget(self.clip_edit, 1)
        f.addRow(r)
        col.addWidget(g)

        # gradual pruning
        g, f = _group("Gradual magnitude pruning", checkable=True)
        self.pruning_group = g
        g.setToolTip("Prune the smallest weights while training, on TensorFlow Model Optimization's schedules; "
                     "the result has no wrappers")
        self.gp_kind = QComboBox()
        self.gp_kind.addItem("PolynomialDecay", "polynomial_decay")
        self.gp_kind.addItem("ConstantSparsity", "constant_sparsity")
        self.gp_kind.currentIndexChanged.connect(self._on_gp_kind)
        f.addRow("schedule", self.gp_kind)
        self.gp_initial = _dspin(0.0, 0.99, 0.3, 2, 0.05, "sparsity at begin_step")
        self.gp_final = _dspin(0.0, 0.99, 0.7, 2, 0.05, "sparsity at end_step (constant: the target sparsity)")
        r = QHBoxLayout()
        r.setSpacing(3)
        self.gp_initial_label = QLabel("initial")
        r.addWidget(self.gp_initial_label)
        r.addWidget(self.gp_initial, 1)
        r.addWidget(QLabel("final"))
        r.addWidget(self.gp_final, 1)
        f.addRow("sparsity", r)
        self.gp_begin = _spin(0, 9_999_999, 0, "first step that prunes")
        self.gp_end = _spin(-1, 9_999_999, 1000, "last step that prunes (-1: no end, constant sparsity only)")
        self.gp_frequency = _spin(1, 9_999_999, 100, "prune every this many steps")
        self.gp_power = _dspin(0.1, 10.0, 3.0, 2, 0.5, "exponent of the polynomial decay")
        r = QHBoxLayout()
        r.setSpacing(3)
        for label, w in (("begin", self.gp_begin), ("end", self.gp_end)):
            r.addWidget(QLabel(label))
            r.addWidget(w, 1)
        f.addRow("steps", r)
        r = QHBoxLayout()
        r.setSpacing(3)
        for label, w in (("every", self.gp_frequency), ("power", self.gp_power)):
            r.addWidget(QLabel(label))
            r.addWidget(w, 1)
        f.addRow(r)
        self.gp_scope = QComboBox()
        self.gp_scope.addItem("per layer", "layer")
        self.gp_scope.addItem("one global ranking", "global")
        self.gp_layers = QLineEdit("*")
        self.gp_layers.setToolTip("Layers pruned (glob over layer names)")
        r = QHBoxLayout()
        r.setSpacing(3)
        r.addWidget(self.gp_scope)
        r.addWidget(QLabel("layers"))
        r.addWidget(self.gp_layers, 1)
        f.addRow("scope", r)
        col.addWidget(g)

        # prune and retrain
        g, f = _group("Prune and retrain")
        self.pr_group = g
        self.pr_rounds = _spin(1, 100, 3, "rounds of prune, then fine-tune for the epochs above")
        self.pr_by = QComboBox()
        self.pr_by.addItem("threshold × factor", "threshold")
        self.pr_by.addItem("sparsity per round", "sparsity")
        self.pr_by.currentIndexChanged.connect(self._on_prune_by)
        f.addRow("rounds", self.pr_rounds)
        f.addRow("prune by", self.pr_by)
        self.pr_threshold = QLineEdit("0.05")
        self.pr_threshold.setToolTip("First round's |w| threshold")
        self.pr_factor = _dspin(0.01, 10.0, 0.8, 2, 0.05, "the threshold is multiplied by this each round")
        r = QHBoxLayout()
        r.setSpacing(3)
        self.pr_threshold_label = QLabel("threshold")
        self.pr_factor_label = QLabel("× per round")
        r.addWidget(self.pr_threshold_label)
        r.addWidget(self.pr_threshold, 1)
        r.addWidget(self.pr_factor_label)
        r.addWidget(self.pr_factor)
        f.addRow(r)
        self.pr_sparsities = QLineEdit("0.5,0.7,0.8")
        self.pr_sparsities.setToolTip("Target sparsity of each round, separated by commas")
        f.addRow("sparsities", self.pr_sparsities)
        self.pr_target = QLineEdit("*/kernel")
        self.pr_target.setToolTip("Tensors pruned (glob, as prune_magnitude)")
        self.pr_scope = QComboBox()
        self.pr_scope.addItem("per tensor", "tensor")
        self.pr_scope.addItem("global", "global")
        r = QHBoxLayout()
        r.setSpacing(3)
        r.addWidget(self.pr_target, 1)
        r.addWidget(self.pr_scope)
        f.addRow("target", r)
        self.pr_budget = _dspin(0.0, 100.0, 0.0, 2, 0.5, "stop when held-out accuracy falls more than this "
                                "below the baseline", special="none", suffix=" pp")
        f.addRow("budget", self.pr_budget)
        col.addWidget(g)

        # run
        run = QHBoxLayout()
        run.setSpacing(4)
        self.on_cancel = QComboBox()
        self.on_cancel.addItem("on cancel keep the best epoch", "best")
        self.on_cancel.addItem("on cancel keep the last epoch", "last")
        self.on_cancel.setToolTip("What Cancel keeps: the weights of the best epoch so far, or of the last one")
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.startRequested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        run.addWidget(self.start_button, 1)
        run.addWidget(self.cancel_button)
        col.addWidget(self.on_cancel)
        col.addLayout(run)
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.apply_theme()
        theme.signals.changed.connect(self.apply_theme)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for lab in (self.reason, self.message):
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            col.addWidget(lab)
        col.addStretch(1)
        w = QWidget()
        w.setLayout(col)
        self.form_widget = w

    def apply_theme(self) -> None:
        """Take the colour of the reason training cannot start from :mod:`weightlab.gui.theme`."""
        self.reason.setStyleSheet(f"color: {theme.css('negative')};")

    @staticmethod
    def _fit_stack(stack: QStackedWidget) -> None:
        """A stacked widget as tall as its current page (not its tallest)."""
        for i in range(stack.count()):
            page = stack.widget(i)
            page.setSizePolicy(QSizePolicy.Policy.Preferred,
                               QSizePolicy.Policy.Preferred if i == stack.currentIndex()
                               else QSizePolicy.Policy.Ignored)
        stack.adjustSize()

    def _on_mode(self) -> None:
        retrain = self.mode == "prune_retrain"
        self.pr_group.setVisible(retrain)
        self.head_spin.setEnabled(not retrain)
        self.pruning_group.setEnabled(not retrain)
        if retrain:
            self.pruning_group.setChecked(False)
        self.start_button.setText("Start prune and retrain" if retrain else "Start training")

    def _on_val_kind(self) -> None:
        kind = self.val_kind.currentData()
        self.val_split.setVisible(kind == "split")
        self.val_edit.setVisible(kind == "file")
        self.val_button.setVisible(kind == "file")
        self.es_monitor.setEnabled(kind != "none")

    def _on_optimizer(self) -> None:
        sgd = self.optimizer_combo.currentData() == "sgd"
        self.momentum_spin.setVisible(sgd)
        self.momentum_label.setVisible(sgd)

    def _on_constraint(self) -> None:
        self.constraint_stack.setCurrentIndex(self.constraint_combo.currentIndex())
        self._fit_stack(self.constraint_stack)

    def _on_gp_kind(self) -> None:
        poly = self.gp_kind.currentData() == "polynomial_decay"
        self.gp_initial.setEnabled(poly)
        self.gp_power.setEnabled(poly)
        self.gp_end.setMinimum(1 if poly else -1)

    def _on_prune_by(self) -> None:
        by_threshold = self.pr_by.currentData() == "threshold"
        for w in (self.pr_threshold, self.pr_factor, self.pr_threshold_label, self.pr_factor_label):
            w.setEnabled(by_threshold)
        self.pr_sparsities.setEnabled(not by_threshold)

    # -- state ---------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"finetune"`` or ``"prune_retrain"``."""
        return str(self.mode_combo.currentData())

    def set_running(self, running: bool) -> None:
        """Enable Cancel while a job runs; Start (and the form) otherwise. A narrow panel shows the curves
        when a job starts."""
        if running and not self._running and self.narrow:
            self.pages.setCurrentWidget(self.live)
        self._running = running
        self.cancel_button.setEnabled(running)
        self.live_cancel.setEnabled(running)
        self._update_start()
        self.form_widget.setEnabled(True)
        for g in self.form_widget.findChildren(QGroupBox):
            g.setEnabled(not running and not (g is self.pruning_group and self.mode == "prune_retrain"))
        self.mode_combo.setEnabled(not running)

    def set_blocked(self, reason: str) -> None:
        """Why training cannot start now (no model, not a Keras model, no held-out set); "" allows it."""
        self._blocked = reason
        self.reason.setText(reason)
        self.reason.setVisible(bool(reason))
        self._update_start()

    def _update_start(self) -> None:
        self.start_button.setEnabled(not self._running and not self._blocked)
        self.start_button.setToolTip(self._blocked or "Train the model as currently edited")

    def show_message(self, text: str) -> None:
        """One status line under the buttons."""
        self.message.setText(text)

    def set_heldout(self, text: str) -> None:
        """The window's held-out set (its file name), or why there is none."""
        self.heldout_label.setText(text)

    def set_frozen(self, names: Sequence[str]) -> None:
        """Show which layers the tree's Freeze column freezes."""
        if not names:
            self.freeze_label.setText("frozen: none (tick layers in the tree's Freeze column)")
        else:
            shown = ", ".join(names[:6]) + (f", … {len(names) - 6} more" if len(names) > 6 else "")
            self.freeze_label.setText(f"frozen ({len(names)}): {shown}")
        self.freeze_label.setToolTip("\n".join(names))

    def set_train_samples(self, n: int | None) -> None:
        """The training set's size when known (steps per epoch of the schedule preview)."""
        self.train_samples = n
        self._preview_timer.start()

    def set_summary(self, html: str) -> None:
        """What the training bought (rich text; empty hides it)."""
        self.summary.setText(html)
        self.summary.setVisible(bool(html))

    # -- reading the form ----------------------------------------------------------------------
    def steps_per_epoch(self) -> tuple[int, bool]:
        """``(steps, known)``: optimizer steps per epoch from the training set's size and the batch size
        (the validation split taken out); :data:`ASSUMED_STEPS_PER_EPOCH` and False when the size is unknown."""
        n = self.train_samples
        if n is None:
            return ASSUMED_STEPS_PER_EPOCH, False
        if self.val_kind.currentData() == "split":
            # Keras' validation_split keeps the first int(n * (1 - split)) samples for training
            n = int(n * (1.0 - self.val_split.value()))
        return max(1, math.ceil(n / self.batch_spin.value())), True

    def lr(self) -> float | None:
        """The learning-rate field (None: empty, the model's own)."""
        text = self.lr_edit.text().strip()
        if not text or text.lower() == "auto":
            return None
        value = _parse_number(text, "learning rate", "float")
        if value <= 0:
            raise _bad("learning rate", f"must be positive, got {text!r}")
        return value

    def schedule_dict(self) -> dict[str, Any] | None:
        """The schedule as ``LRSchedule.to_dict()`` values (``{"kind": ..., params}``), None for none."""
        kind = self.schedule_combo.currentData()
        if not kind:
            return None
        return {"kind": kind, **self.schedule_fields[kind].values()}

    def update_schedule_preview(self) -> None:
        """Redraw the schedule preview from the fields (a field that does not parse is said instead)."""
        self._preview_timer.stop()
        try:
            data = self.schedule_dict()
            lr = self.lr()
        except FormError as e:
            self.schedule_plot.show_message(str(e))
            return
        initial = 0.001 if lr is None else lr
        steps, known = self.steps_per_epoch()
        total = steps * self.epochs_spin.value()
        where = (f"{self.epochs_spin.value()} epochs × {steps} steps" if known
                 else f"{self.epochs_spin.value()} epochs × {steps} steps (assumed: training set size unknown)")
        if data is None:
            self.schedule_plot.show_values(np.full(min(total, MAX_PREVIEW_STEPS), initial),
                                           f"constant {initial:g} over {where}")
            return
        try:
            from weightlab.core.schedules import LRSchedule
        except ImportError:  # pragma: no cover - the schedules module ships with the window
            self.schedule_plot.show_message("schedule preview unavailable (weightlab.core.schedules missing)")
            return
        try:
            schedule = LRSchedule.from_dict(data)
            x = (np.arange(total) if total <= MAX_PREVIEW_STEPS
                 else np.unique(np.linspace(0, total - 1, MAX_PREVIEW_STEPS).round().astype(np.int64)))
            rates = np.asarray(schedule.values(x, initial), dtype=np.float64)
        except (ValueError, TypeError) as e:
            self.schedule_plot.show_message(f"schedule: {e}")
            return
        self.schedule_plot.show_curve(x, rates, f"{schedule.describe(initial)}: {rates[0]:.3g} → {rates[-1]:.3g} "
                                                f"over {where}")

    def _data_fields(self) -> dict[str, Any]:
        train = self.train_edit.text().strip()
        if not train:
            raise _bad("train", "choose the training data (an .npz with x and y, or an image folder)")
        out: dict[str, Any] = {"train": train, "val": None, "val_split": None}
        kind = self.val_kind.currentData()
        if kind == "split":
            out["val_split"] = round(float(self.val_split.value()), 6)
        elif kind == "file":
            val = self.val_edit.text().strip()
            if not val:
                raise _bad("validation", "choose a validation file or folder, or use a split of the training data")
            out["val"] = val
        return out

    def finetune_fields(self, *, heldout: str | None, selection: Sequence[str] = (),
                        freeze: Sequence[str] = (), watch: Sequence[str] = ()) -> dict[str, Any]:
        """The :class:`~weightlab.core.training.FinetuneSpec` fields the form describes (JSON values).

        Parameters
        ----------
        heldout:
            The window's held-out ``.npz`` (accuracy after every epoch).
        selection:
            The layers selected in the tree (the regularizer's and
            constraint's layers when the form applies them to the selection).
        freeze:
            Layers frozen (the tree's Freeze column).
        watch:
            Tensors whose values are streamed after every epoch (the shown one).

        Raises
        ------
        FormError
            A field does not parse, or the training data is missing; the message names the field.
        """
        out = self._data_fields()
        out.update(heldout=heldout, epochs=int(self.epochs_spin.value()), batch_size=int(self.batch_spin.value()),
                   lr=self.lr(), optimizer=str(self.optimizer_combo.currentData()),
                   momentum=round(float(self.momentum_spin.value()), 6), schedule=self.schedule_dict(),
                   keep_masks=self.keep_masks.isChecked(), freeze=tuple(freeze), train_last=None,
                   seed=int(self.seed_spin.value()), on_cancel=str(self.on_cancel.currentData()),
                   watch=tuple(watch))
        if self.reg_scope.currentData() == "selection":
            layers = list(dict.fromkeys(str(n) for n in selection))
            if not layers:
                raise _bad("apply to", "select layers in the tree, or apply to all layers")
        else:
            layers = ["*"]
        l1 = _parse_number(self.l1_edit.text(), "L1", "float")
        l2 = _parse_number(self.l2_edit.text(), "L2", "float")
        if l1 < 0 or l2 < 0:
            raise _bad("L1" if l1 < 0 else "L2", "must be 0 or more")
        out["regularizers"] = ({"layers": layers, "l1": l1, "l2": l2},) if (l1 or l2) else ()
        kind = self.constraint_combo.currentData()
        args = self.constraint_fields[kind].values() if kind else {}
        out["constraints"] = ({"layers": layers, "kind": kind, **args},) if kind else ()
        if self.clip_check.isChecked():
            c = _parse_number(self.clip_edit.text(), "clip", "float")
            if c <= 0:
                raise _bad("clip", f"must be positive, got {c:g}")
            out["clip_weights"] = c
        else:
            out["clip_weights"] = None
        has_val = self.val_kind.currentData() != "none"
        if self.early_group.isChecked():
            monitor = self.es_monitor.currentText() if has_val else "loss"
            out["early_stopping"] = {"monitor": monitor, "patience": int(self.es_patience.value()),
                                     "min_delta": float(self.es_min_delta.value()),
                                     "start_from_epoch": int(self.es_start.value()),
                                     "restore_best_weights": self.es_restore.isChecked()}
        else:
            out["early_stopping"] = None
        if self.plateau_group.isChecked():
            min_lr = _parse_number(self.rl_min_lr.text(), "min lr", "float")
            out["reduce_lr"] = {"monitor": self.rl_monitor.currentText() if has_val else "loss",
                                "factor": float(self.rl_factor.value()), "patience": int(self.rl_patience.value()),
                                "min_lr": min_lr}
        else:
            out["reduce_lr"] = None
        if self.pruning_group.isChecked() and self.mode == "finetune":
            poly = self.gp_kind.currentData() == "polynomial_decay"
            sched: dict[str, Any] = {"kind": self.gp_kind.currentData(),
                                     "final_sparsity": round(float(self.gp_final.value()), 6),
                                     "begin_step": int(self.gp_begin.value()), "end_step": int(self.gp_end.value()),
                                     "frequency": int(self.gp_frequency.value())}
            if poly:
                sched.update(initial_sparsity=round(float(self.gp_initial.value()), 6),
                             power=round(float(self.gp_power.value()), 6))
                if sched["end_step"] <= sched["begin_step"]:
                    raise _bad("end step", "PolynomialDecay needs end_step > begin_step")
            out["pruning"] = {"schedule": sched, "layers": self.gp_layers.text().strip() or "*",
                              "scope": str(self.gp_scope.currentData())}
        else:
            out["pruning"] = None
        head = int(self.head_spin.value())
        out["new_head"] = head if head > 0 and self.mode == "finetune" else None
        return out

    def prune_retrain_fields(self, finetune: dict[str, Any]) -> dict[str, Any]:
        """The :class:`~weightlab.core.training.PruneRetrainSpec` fields, around ``finetune``'s (one round's).

        Raises
        ------
        FormError
            The threshold or the sparsities do not parse; the message names the field.
        """
        rounds = int(self.pr_rounds.value())
        out: dict[str, Any] = {"finetune": dict(finetune), "rounds": rounds,
                               "target": self.pr_target.text().strip() or "*/kernel",
                               "scope": str(self.pr_scope.currentData())}
        if self.pr_by.currentData() == "threshold":
            t = _parse_number(self.pr_threshold.text(), "threshold", "float")
            if t <= 0:
                raise _bad("threshold", f"must be positive, got {t:g}")
            out.update(threshold=t, factor=round(float(self.pr_factor.value()), 6), sparsities=())
        else:
            values = tuple(float(v) for v in _parse_list(self.pr_sparsities.text(), "sparsities", "floats"))
            if any(not 0.0 <= v < 1.0 for v in values):
                raise _bad("sparsities", "each must be in [0, 1)")
            if len(values) != rounds:
                raise _bad("sparsities", f"give one per round: {rounds} round(s), {len(values)} value(s)")
            out.update(threshold=None, sparsities=values)
        budget = float(self.pr_budget.value())
        out["budget_pp"] = budget if budget > 0 else None
        return out

"""Training: the Training tab's fine-tune and prune-and-retrain jobs, their live plots, the history step.

:class:`TrainingController` adds a :class:`~weightlab.gui.training_panel.TrainingPanel`
to the window's centre tabs. *Start* builds a
:class:`~weightlab.core.training.FinetuneSpec` (or, in *prune and retrain*
mode, a :class:`~weightlab.core.training.PruneRetrainSpec`) from the form, the
window's held-out set, the layers ticked in the tree's *Freeze* column and
the shown tensor (``watch``), and submits it through the engine adapter (a
job: progress and Cancel also show in the status bar's jobs area). The engine
trains the model as the window last sent it (the mirrored edits, as sweeps do).

The worker streams progress partials (dicts, see :mod:`weightlab.core.training`):
``batch`` (loss per batch), ``epoch`` (the epoch's record, the watched
tensor's values, the ETA and the device), ``round`` (prune-and-retrain) and
``sparsity`` (gradual pruning); the panel's plots draw each as it comes, the
watched tensor's histogram over its pre-training distribution.

*Cancel* asks the job to stop early but still answer
(:meth:`~weightlab.gui.engine_adapter.EngineAdapter.stop_job`): the engine
returns the best or the last epoch's weights, as the form says.

The result's arrays become ONE history step,
:class:`~weightlab.core.trained.Trained` (built off the window's thread: it
copies and hashes the arrays), applied through the edits controller like any
edit: undoable, evaluated live. A new-head result (structure changed) was
saved by the engine as ``.keras`` and is offered to open. Then *what it
bought* (:func:`weightlab.core.savings.savings` from the opened file's
weights to the edited and trained ones: sparsity, parameters removable by
structured pruning, the gzip-compressed size) is computed off the window's
thread and shown under the plots.
"""

from __future__ import annotations

import math
import os
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QMessageBox

from weightlab.app.workspace import (
    DataChanged,
    ModelInfoChanged,
    SessionReplaced,
    Workspace,
)
from weightlab.core.errors import WeightLabError
from weightlab.engine.protocol import JobInfo, JobProgress, JobResult

from ..engine_adapter import EngineAdapter
from ..training_panel import TrainingPanel
from ..training_plot import format_duration, histogram_pair
from .edits import EditsController
from .host import WindowHost
from .paths import NO_DATA_REASON

__all__ = ["TrainingController", "TRAIN_FILTER", "KERAS_FILTER", "trainable_reason", "npz_samples"]

TRAIN_FILTER = "Training data (*.npz);;All files (*)"
KERAS_FILTER = "Keras model (*.keras)"
#: Formats the engine can rebuild and train (with the model's architecture).
TRAINABLE_FORMATS = ("keras", "h5")


def trainable_reason(model: Any) -> str:
    """Why ``model`` (a :class:`~weightlab.core.model.ModelFile`) cannot be trained, or ``""`` when it can.

    Training rebuilds the model with Keras: a ``.keras`` file, or an ``.h5``
    that holds its architecture. SavedModels, checkpoints, frozen graphs and
    weights-only files cannot be trained.
    """
    if model.format in TRAINABLE_FORMATS and model.config is not None or model.in_memory:
        return ""  # an in-memory model: the engine trains the Keras file it was materialised to
    what = "has no architecture" if model.format in TRAINABLE_FORMATS else f"is a {model.format} file"
    return (f"Training needs a Keras model (.keras or .h5 with its architecture): {model.path.name} {what}.")


def npz_samples(path: str | os.PathLike[str]) -> int | None:
    """Number of samples (``x.shape[0]``) of an ``.npz``, read from the array's header only; None when unknown.

    Reads no array data (a few hundred bytes), so it may run on the window's thread.
    """
    try:
        with zipfile.ZipFile(path) as zf, zf.open("x.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(f, max_header_size=10_000)
            elif version == (2, 0):
                shape, _, _ = np.lib.format.read_array_header_2_0(f, max_header_size=10_000)
            else:
                return None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    return int(shape[0]) if shape else None


class _Relay(QObject):
    """Carries a pool task's outcome to the GUI thread (no Qt parent: owned by the task)."""

    done = Signal(int, object)
    failed = Signal(int, str)


class _Task(QRunnable):
    def __init__(self, relay: _Relay, token: int, fn: Callable[[], Any]):
        super().__init__()
        self.relay, self.token, self.fn = relay, token, fn

    def run(self) -> None:  # pool thread: touches no widget
        try:
            out = self.fn()
        except Exception as e:  # noqa: BLE001 - reported on the GUI thread
            self.relay.failed.emit(self.token, f"{type(e).__name__}: {e}" if not isinstance(e, WeightLabError)
                                   else str(e))
        else:
            self.relay.done.emit(self.token, out)


class TrainingController(QObject):
    """Runs training jobs from the Training tab and turns their results into history steps.

    Parameters
    ----------
    window:
        The main window (its centre tabs, tree, status bar and dialogs).
    workspace:
        The session trained and edited.
    engine:
        The adapter the job is submitted to.
    edits:
        Applies the trained weights as one undoable step.

    Attributes
    ----------
    panel:
        The Training tab.
    job_id:
        The running job (None when none runs).
    spec:
        The running (or last) job's spec.
    result:
        The last job's :class:`~weightlab.core.training.FinetuneResult` or
        :class:`~weightlab.core.training.PruneRetrainResult`.
    step:
        The :class:`~weightlab.core.trained.Trained` step made from it.
    savings:
        What it bought (:class:`weightlab.core.savings.Savings`), once computed.
    """

    def __init__(self, window: WindowHost, workspace: Workspace, engine: EngineAdapter, edits: EditsController):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.engine = engine
        self.edits = edits
        self.panel = TrainingPanel()
        self.tab_index = window.views.addTab(self.panel, "Training")
        window.views.setTabToolTip(self.tab_index, "Fine-tune the edited model (pruned weights kept at zero), "
                                                   "prune and retrain, watch the weights as they train")
        self.job_id: int | None = None
        self.spec: Any = None
        self.result: Any = None
        self.step: Any = None
        self.savings: Any = None
        self.last_folder: Path | None = None
        self._session: Any = None  # the session the running job trains
        self._before: dict[str, np.ndarray] = {}  # watched tensor(s) before training
        self._edited_before: dict[str, np.ndarray] = {}  # the session's edited arrays when the job started
        self._started = 0.0
        self._eta: float | None = None
        self._device = ""
        self._epochs_seen = 0
        self._keep_masks = True
        self._token = 0  # a new job or model drops the outcomes of older background tasks
        self._task_ids = 0
        self._hist_asked = self._hist_drawn = 0  # histograms asked for / the newest one drawn
        self._pending: dict[int, tuple[int, Any, Any, _Relay]] = {}  # task id -> (token, done, failed, relay)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_status)
        p = self.panel
        p.startRequested.connect(self.start)
        p.cancelRequested.connect(self.cancel)
        p.browseRequested.connect(self.browse)
        p.freezeLastChanged.connect(self._freeze_last)
        p.train_edit.editingFinished.connect(self._train_changed)
        window.tree.frozenChanged.connect(p.set_frozen)
        engine.jobProgress.connect(self._on_progress)
        engine.jobResult.connect(self._on_result)
        engine.jobFinished.connect(self._on_finished)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(lambda _ev: self.update_state(), DataChanged, ModelInfoChanged)
        self.update_state()

    # -- state ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while this controller's job is queued or running."""
        return self.job_id is not None

    def blocked_reason(self) -> str:
        """Why training cannot start now (no model, not a Keras model, no held-out set, no engine); "" when it can."""
        s = self.ws.session
        if s is None:
            return "Open a model first."
        reason = trainable_reason(s.model)
        if reason:
            return reason
        if self.ws.data_path is None:
            return f"Training needs a held-out set: {NO_DATA_REASON}"
        if not self.engine.available:
            return f"Training is off: {self.engine.unavailable_reason or 'no engine'}"
        info = self.ws.model_info
        if info is not None and not getattr(info, "ok", True) and getattr(info, "reason", None):
            return f"The engine cannot build this model: {info.reason}"
        return ""

    def update_state(self) -> None:
        """Enable or block *Start* and show the held-out set."""
        self.panel.set_blocked(self.blocked_reason())
        d = self.ws.data_path
        self.panel.set_heldout(d.name if d is not None else "none (File › Open held-out set…)")
        if d is not None:
            self.panel.heldout_label.setToolTip(str(d))

    def _on_replaced(self, ev: SessionReplaced) -> None:
        # The engine cancels every job of the old model (EvaluationController); forget ours.
        self.job_id = None
        self.spec = self.result = self.step = self.savings = None
        self._session = None
        self._before = {}
        self._edited_before = {}
        self._token += 1
        self._tick.stop()
        self.panel.plot.clear()
        self.panel.set_running(False)
        self.panel.set_summary("")
        self.panel.show_message("")
        if ev.session is not None and self.last_folder is None:
            self.last_folder = ev.session.model.path.parent
        self.update_state()

    # -- picking files ----------------------------------------------------------------------
    def browse(self, what: str) -> bool:
        """Pick the training data (``"train"``: a file, ``"train_folder"``: an image folder) or the
        validation data (``"val"``) with a dialog starting in the last folder used; True when chosen."""
        start = str(self.last_folder) if self.last_folder is not None else None
        if what == "train_folder":
            path = self.w._ask_folder("Training images (one subfolder per class)", start=start)
        else:
            title = "Training data" if what == "train" else "Validation data"
            path = self.w._ask_open_path(title, TRAIN_FILTER, start=start)
        if not path:
            return False
        p = Path(path)
        self.last_folder = p.parent if p.is_file() else p
        if what == "val":
            self.panel.val_edit.setText(str(p))
        else:
            self.panel.train_edit.setText(str(p))
            self._train_changed()
        return True

    def _train_changed(self) -> None:
        text = self.panel.train_edit.text().strip()
        n = npz_samples(text) if text.lower().endswith(".npz") else None
        self.panel.set_train_samples(n)

    def _freeze_last(self, n: int) -> None:
        if n > 0:
            self.w.tree.freeze_all_but_last(n)

    # -- running ----------------------------------------------------------------------------
    def _selected_layers(self) -> list[str]:
        s = self.ws.session
        if s is None:
            return []
        model = s.model
        out = []
        for name in self.w.tree.selected_targets():
            if model.has_layer(name):
                out.append(name)
            elif name in model.tensors:
                out.append(model.tensors[name].layer)
        return list(dict.fromkeys(out))

    def make_spec(self) -> Any:
        """The job the form describes (:class:`FinetuneSpec` or :class:`PruneRetrainSpec`).

        Raises
        ------
        weightlab.core.errors.RecipeError
            A field does not parse or the spec refuses it; the message names the field.
        """
        from weightlab.core.training import FinetuneSpec, PruneRetrainSpec

        current = self.ws.current
        fields = self.panel.finetune_fields(
            heldout=str(self.ws.data_path) if self.ws.data_path is not None else None,
            selection=self._selected_layers(),
            freeze=self.w.tree.frozen_layers(),
            watch=(current,) if current else (),
        )
        if self.panel.mode == "prune_retrain":
            return PruneRetrainSpec(**self.panel.prune_retrain_fields(fields))
        if fields.get("new_head") is not None:
            fields["output"] = self._new_head_path()
            if fields["output"] is None:
                return None
        return FinetuneSpec(**fields)

    def _new_head_path(self) -> str | None:
        s = self.ws.session
        assert s is not None
        default = s.model.path.with_name(f"{s.model.path.stem}-head{self.panel.head_spin.value()}.keras")
        chosen = self.w._ask_save_path("Save the new-head model as", default, KERAS_FILTER)
        if not chosen:
            return None
        return str(Path(chosen).with_suffix(".keras"))

    def start(self, spec: Any = None) -> int | None:
        """*Start*: submit ``spec`` (default: the form's job); its id, or None (the panel says why)."""
        reason = self.blocked_reason()
        if reason:
            self.panel.show_message(reason)
            return None
        if self.running:
            return self.job_id
        try:
            spec = spec or self.make_spec()
        except WeightLabError as e:
            self.panel.show_message(f"Cannot train: {e}")
            return None
        if spec is None:
            self.panel.show_message("Not started: no file chosen for the new-head model.")
            return None
        job_id = self.engine.submit(spec)
        if job_id is None:
            self.panel.show_message(f"Training is off: {self.engine.unavailable_reason or 'engine not running'}")
            return None
        s = self.ws.session
        self.job_id, self.spec = job_id, spec
        self.result = self.step = self.savings = None
        self._session = s
        self._edited_before = dict(s.edited_arrays())
        watch = spec.watch if hasattr(spec, "watch") else tuple(spec.finetune.get("watch", ()))
        self._before = {n: np.asarray(s.array(n)) for n in watch if n in s.model.tensors}
        self._started = time.monotonic()
        self._eta = None
        self._device = self.engine.device
        self._epochs_seen = 0
        self._token += 1
        ft = spec.finetune if hasattr(spec, "finetune") else spec.to_dict()
        self._keep_masks = bool(ft.get("keep_masks", True))
        self.panel.plot.clear(rounds=self.panel.mode == "prune_retrain",
                              pruning=getattr(spec, "pruning", None) is not None,
                              penalty=any((r.get("l1") or r.get("l2")) for r in (ft.get("regularizers") or ())))
        # epoch 0: the held-out accuracy of the model as edited, before training: the window's evaluation
        # of this very history position (none yet, e.g. still being measured: no point rather than a stale one)
        measured = getattr(self.w, "eval_panel", None)
        before_acc = measured.step_accuracy().get(s.position) if measured is not None else None
        self.panel.plot.add_start(before_acc)
        self.panel.set_summary("")
        for name, before in self._before.items():
            self._histogram(name, before, None)
        self.panel.set_running(True)
        self.panel.show_message(f"{spec.label}: starting…")
        self._tick.start()
        self._show_status()
        return job_id

    def cancel(self) -> None:
        """*Cancel*: stop the job early; the engine still returns the best or last epoch's weights."""
        if self.job_id is not None:
            self.engine.stop_job(self.job_id)
            keep = self.panel.on_cancel.currentData()
            self.panel.show_message(f"Stopping… keeping the {keep} epoch's weights.")

    # -- progress ---------------------------------------------------------------------------
    def _show_status(self) -> None:
        if self.job_id is None and not self._started:
            return
        elapsed = time.monotonic() - self._started if self._started else None
        text = "running" if self.job_id is not None else "done"
        self.panel.plot.set_status(elapsed=elapsed, eta=self._eta if self.job_id is not None else None,
                                   device=self._device, text=text)

    def _on_progress(self, ev: JobProgress) -> None:
        if ev.job_id != self.job_id or not isinstance(ev.partial, Mapping):
            return
        p, plot = ev.partial, self.panel.plot
        kind = p.get("type")
        elapsed = time.monotonic() - self._started
        if ev.fraction is not None and 0 < ev.fraction <= 1:
            self._eta = elapsed * (1.0 - float(ev.fraction)) / float(ev.fraction)
        # prune and retrain: each round's fine-tune counts its epochs from 1; draw them one after another
        rounds_epochs = int(self.spec.finetune.get("epochs", 1)) if hasattr(self.spec, "finetune") else 0
        offset = (int(p["round"]) - 1) * rounds_epochs if kind in ("batch", "epoch") and p.get("round") else 0
        if kind == "batch":
            plot.add_batch(p, offset)
            if ev.message:
                self.panel.show_message(f"{self.spec.label}: {ev.message}")
        elif kind == "epoch":
            plot.add_epoch(p, offset)
            self._epochs_seen += 1
            if p.get("eta_s") is not None:
                self._eta = float(p["eta_s"])
            if p.get("device"):
                self._device = str(p["device"])
            acc = p.get("heldout_accuracy")
            self.panel.show_message(
                f"epoch {p.get('epoch')}: loss {_f(p.get('loss'))}"
                + (f", val loss {_f(p.get('val_loss'))}" if p.get("val_loss") is not None else "")
                + (f", held-out accuracy {100 * acc:.2f} %" if acc is not None else ""))
            for name, values in (p.get("tensors") or {}).items():
                if name in self._before:
                    self._histogram(name, self._before[name], np.asarray(values), offset + int(p["epoch"]))
        elif kind == "round":
            plot.add_round(p)
            acc = p.get("accuracy")
            # round 0 (the baseline) counts all weights, the rounds the pruned targets (weightlab/_tf/train.py)
            what = "all weights" if not p.get("round") else str(getattr(self.spec, "target", "") or "targets")
            self.panel.show_message(f"round {p.get('round')}: {what} {100 * float(p.get('sparsity') or 0):.1f} % zero"
                                    + (f", held-out accuracy {100 * acc:.2f} %" if acc is not None else ""))
        elif kind == "sparsity":
            plot.add_sparsity(int(p["step"]), float(p["sparsity"]))
        self._show_status()

    def _histogram(self, name: str, before: np.ndarray, now: np.ndarray | None, epoch: int | None = None) -> None:
        """Count the watched tensor's histogram off the window's thread and draw it when it lands."""
        job = self.job_id
        self._hist_asked += 1
        asked = self._hist_asked
        after = before if now is None else now
        # masks kept: the pruned weights are one bin of exact zeros that would flatten the rest; leave them out
        drop = self._keep_masks

        def count() -> tuple[Any, str]:
            out = histogram_pair(before, after, drop_zeros=drop)
            zeros = int(np.count_nonzero(np.asarray(after) == 0)) if drop else 0
            note = f"{np.asarray(after).size:,} weights, {zeros:,} zeros not drawn" if zeros else ""
            return out, note

        def draw(res: Any) -> None:
            # pool tasks may finish out of order: never draw an older epoch over a newer one
            if (job == self.job_id or self.job_id is None) and asked > self._hist_drawn:
                self._hist_drawn = asked
                out, note = res
                self.panel.plot.set_histogram(name, *out, epoch=epoch, note=note)

        self._in_pool(count, draw)

    def _in_pool(self, fn: Callable[[], Any], on_done: Callable[[Any], None],
                 on_failed: Callable[[str], None] | None = None) -> None:
        """Run ``fn`` on a pool thread; ``on_done(out)`` / ``on_failed(message)`` on this thread, unless a
        newer job or model came first. The relay's signals reach this controller's own slots (a QObject
        living on the window's thread), so they are queued to it."""
        self._task_ids += 1
        task_id = self._task_ids
        relay = _Relay()
        self._pending[task_id] = (self._token, on_done, on_failed, relay)
        relay.done.connect(self._task_done)
        relay.failed.connect(self._task_failed)
        QThreadPool.globalInstance().start(_Task(relay, task_id, fn))

    def _task_done(self, task_id: int, out: Any) -> None:
        token, on_done, _failed, _relay = self._pending.pop(task_id, (None, None, None, None))
        if on_done is not None and token == self._token:
            on_done(out)

    def _task_failed(self, task_id: int, message: str) -> None:
        token, _done, on_failed, _relay = self._pending.pop(task_id, (None, None, None, None))
        if on_failed is not None and token == self._token:
            on_failed(message)

    # -- the result -------------------------------------------------------------------------
    def _on_result(self, ev: JobResult) -> None:
        if ev.job_id != self.job_id:
            return
        from weightlab.core.training import FinetuneResult, PruneRetrainResult

        r = ev.result
        if not isinstance(r, (FinetuneResult, PruneRetrainResult)):
            return
        self.result = r
        if isinstance(r, FinetuneResult) and r.device:
            self._device = r.device
        if isinstance(r, PruneRetrainResult):
            # the chart shows every round of the final result (also one whose partial never came)
            drawn = set(self.panel.plot.series("round_sparsity")[0].tolist())
            for rec in r.rounds:
                if float(rec.round) not in drawn:
                    self.panel.plot.add_round(rec.to_dict())

    def _on_finished(self, info: JobInfo) -> None:
        if info.job_id != self.job_id:
            return
        self.job_id = None
        self._tick.stop()
        self._eta = None
        self._show_status()
        self.panel.set_running(False)
        r = self.result
        if info.state == "failed":
            self.panel.show_message(f"Training failed: {info.message or 'unknown error'}")
            return
        if r is None:
            self.panel.show_message("Training cancelled before its first epoch: nothing kept."
                                    if info.state == "cancelled" else "Training ended without a result.")
            return
        self.panel.show_message(self._ended_text(r))
        if getattr(r, "saved", None):
            self._offer_open(Path(r.saved))
            return
        if r.arrays:
            self._make_step(r)
        else:
            self.panel.show_message(self._ended_text(r) + " No weight changed.")

    def _ended_text(self, r: Any) -> str:
        from weightlab.core.training import FinetuneResult

        if isinstance(r, FinetuneResult):
            final = (f" Held-out accuracy {100 * r.final['accuracy']:.2f} %."
                     if r.final and r.final.get("accuracy") is not None else "")
            return f"{r.label}: {len(r.history)} epoch(s) in {format_duration(r.seconds)}.{final}"
        stopped = f" Stopped: {r.stopped}." if r.stopped else ""
        return f"{r.label}: {len(r.rounds)} round(s).{stopped}"

    def _make_step(self, r: Any) -> None:
        """Build the history step off the window's thread (it copies and hashes the arrays), then apply it."""
        from weightlab.core.trained import Trained

        arrays, label, spec = dict(r.arrays), r.label, self.spec.to_dict()
        session = self._session
        self.panel.show_message(self._ended_text(r) + " Applying the trained weights…")

        def apply(step: Any) -> None:
            if self.ws.session is not session:
                return  # another model is shown now
            self.step = step
            if self.edits.apply_edit(step):
                self.panel.show_message(self._ended_text(r) + f" Applied as one step “{label}” (undo with Ctrl+Z).")
                self._compute_savings(session, arrays)
            else:
                self.panel.show_message(self._ended_text(r) + " Not applied: another change is running; "
                                        "start training again when it has landed.")

        def failed(message: str) -> None:
            self.w._error("Cannot apply the trained weights", message)

        self._in_pool(lambda: Trained.from_arrays(arrays, label, spec), apply, failed)

    def _offer_open(self, path: Path) -> None:
        if self._confirm_open(path):
            self.w.open_path(path)

    def _confirm_open(self, path: Path) -> bool:
        """Ask whether to open the saved new-head model (tests replace it)."""
        button = QMessageBox.StandardButton
        ans = QMessageBox.question(self.w, "New-head model saved",  # type: ignore[arg-type]
                                   f"The model with its new head was saved to\n{path}\nOpen it now?",
                                   button.Open | button.Cancel, button.Open)
        return ans == button.Open

    # -- what it bought ---------------------------------------------------------------------
    def _compute_savings(self, session: Any, arrays: Mapping[str, np.ndarray]) -> None:
        try:
            from weightlab.core.savings import savings
        except ImportError:  # the savings report lands with engineer C's part
            self.panel.set_summary("")
            return
        # against the opened model (what the pruning and the training together bought), not only the training
        after = {**self._edited_before, **arrays}
        model = session.model
        saver = _saver_for(model)

        def compute() -> Any:
            return savings(model, {}, after, saver=saver)

        def show(out: Any) -> None:
            self.savings = out
            self.panel.set_summary(self._summary_html(out))

        self.panel.set_summary("<i>What it bought: computing…</i>")
        self._in_pool(compute, show, lambda m: self.panel.set_summary(f"What it bought: cannot compute ({_esc(m)})"))

    def _summary_html(self, s: Any) -> str:
        """Two short lines at most: sparsity, parameters removable by structured pruning, the gzip-compressed
        size, from the opened file to now; the per-layer table in the tooltip."""
        self.panel.summary.setToolTip("What it bought, from the opened file to the weights now:\n\n" + s.table())
        parts = [f"kernels <b>{100 * s.kernel_sparsity_before:.1f} → {100 * s.kernel_sparsity_after:.1f} % zero</b>, "
                 f"all weights {100 * s.sparsity_before:.1f} → {100 * s.sparsity_after:.1f} %",
                 f"removable {s.removable_before:,} → {s.removable_after:,} params"]
        if s.gzip_before is not None and s.gzip_after is not None:
            r = s.gzip_ratio
            ratio = "" if not r else f" ({r:.2f}× smaller)" if r >= 1 else f" ({1 / r:.2f}× larger)"
            parts.append(f"gzip {s.gzip_before / 1024:,.0f} → {s.gzip_after / 1024:,.0f} KiB{ratio}")
        return f"<b>What it bought</b> ({'model' if self._session is not None and getattr(self._session.model, 'in_memory', False) else 'file'} → now): " + " · ".join(parts)

    def shutdown(self) -> None:
        """The window closes: stop the timer (pool tasks' outcomes are dropped)."""
        self._token += 1
        self._tick.stop()


def _saver_for(model: Any) -> Callable[[Any, Mapping[str, np.ndarray], Any], None] | None:
    """How *What it bought* writes a state of ``model`` to measure its compressed size (None: it cannot).

    A file is written in its own format (:func:`weightlab.formats.save_model`).
    An in-memory model has no file of its own: its materialised ``.keras``
    (``exec_path``, the unedited weights saved by Keras, under the same
    tensor names) is the source written with the changed tensors, so the
    size is that of the model saved as ``.keras``. Not materialised: no size.
    """
    from weightlab.formats import open_model, save_model

    if not getattr(model, "in_memory", False):
        return save_model
    exec_path = getattr(model, "exec_path", None)
    if exec_path is None:
        return None

    def save(_model: Any, changed: Mapping[str, np.ndarray], out: Any) -> None:
        src = open_model(exec_path)
        try:
            target = Path(out)
            if target.suffix != ".keras":  # the in-memory display name has no format's suffix
                target = target.with_name("model.keras")
            save_model(src, changed, target)
            if target != Path(out):
                os.replace(target, out)
        finally:
            src.close()

    return save


def _f(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{x:.4f}" if math.isfinite(x) else "–"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

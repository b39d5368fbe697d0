"""Evaluation: the engine adapter and the evaluation panel, kept in step with the workspace.

:class:`EvaluationController` (re)opens the model in the engine when the
session, the held-out set, the options or trust change, asks for an evaluation
of the edited tensors when the session's values change, and shows the
engine's answers in the evaluation panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from weightlab.app.workspace import (
    DataChanged,
    HistoryChanged,
    ModelInfoChanged,
    OptionsChanged,
    SessionReplaced,
    TensorsChanged,
    TrustChanged,
    Workspace,
)

from ..engine_adapter import EngineAdapter
from .host import WindowHost
from .paths import ARCHITECTURE_FILTER, NO_DATA_REASON, data_display_name, without_private_data_path


class EvaluationController(QObject):
    """Drives the engine from the workspace and shows its results.

    Parameters
    ----------
    window:
        The main window (its evaluation panel, status bar and dialogs).
    workspace:
        The state evaluated.
    engine:
        The evaluation engine's adapter.
    """

    def __init__(self, window: WindowHost, workspace: Workspace, engine: EngineAdapter):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.engine = engine
        self.panel = window.eval_panel
        self._model_ok = False
        self._eval_applied: tuple = ()
        #: The live evaluation's job id (a sweep or a ranking queued beside it is not this controller's).
        self._live_job: int | None = None
        eng, panel = engine, self.panel
        eng.ready.connect(lambda ev: panel.set_device(f"{ev.device} · TensorFlow {ev.tensorflow_version}"))
        eng.modelReady.connect(self._on_model_ready)
        panel.architectureRequested.connect(self.choose_architecture_dialog)
        panel.optionChosen.connect(self.set_option)
        eng.estimate.connect(panel.set_running)
        eng.result.connect(self._on_result)
        eng.failed.connect(lambda msg: panel.show_message(f"Evaluation failed: {msg}"))
        eng.crashed.connect(self._on_crashed)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(self._on_tensors, TensorsChanged)
        workspace.subscribe(self._on_history, HistoryChanged)
        workspace.subscribe(lambda _ev: self.restart(), DataChanged, TrustChanged)
        workspace.subscribe(self._on_options, OptionsChanged)
        workspace.subscribe(lambda ev: self._offer_choices(ev.info), ModelInfoChanged)

    # -- workspace events -----------------------------------------------------------------
    def _on_replaced(self, ev: SessionReplaced) -> None:
        self.engine.cancel()
        # Another model: nothing of the previous one stays (numbers, history points, classes, choices).
        self.panel.clear()
        self._eval_applied = ()
        s = ev.session
        self.panel.set_history(s.steps if s else [], s.position if s else 0)
        self._offer_choices(None)
        self.restart()

    def _on_tensors(self, ev: TensorsChanged) -> None:
        self.request()  # the history was announced just before (HistoryChanged)

    def _on_history(self, ev: HistoryChanged) -> None:
        s = self.ws.session
        if s is not None:
            self.panel.set_history(s.steps, s.position)

    def _on_options(self, ev: OptionsChanged) -> None:
        self._offer_choices(self.ws.model_info)
        self.restart()

    # -- choices ------------------------------------------------------------------------
    def choose_architecture_dialog(self) -> None:
        """Evaluation › Choose architecture…: the model file a checkpoint's weights belong to."""
        path = self.w._ask_open_path("Choose architecture", ARCHITECTURE_FILTER)
        if path:
            self.set_option("architecture", path)

    def set_option(self, key: str, value: str | None) -> None:
        """Set an engine ``open`` option (``architecture``, ``signature``, ``output``); the evaluation restarts."""
        self.ws.set_option(key, value)

    def _offer_choices(self, ev: Any = None) -> None:
        """Offer the evaluation choices this model and the engine allow (``ev``: its ModelReady, None before it)."""
        s = self.ws.session
        options = self.ws.eval_options
        arch = options.get("architecture")
        self.panel.offer_architecture(
            s is not None and s.model.format == "checkpoint" and self.engine.available,
            Path(arch).name if arch else None,
        )
        for key, field in (("signature", "signatures"), ("output", "outputs")):
            values = list(getattr(ev, field, None) or []) if ev is not None else []
            self.panel.offer_choices(key, values, options.get(key))

    # -- evaluating ----------------------------------------------------------------------
    def restart(self) -> None:
        """(Re)build the model in the worker with the current held-out set and evaluate the baseline."""
        self._model_ok = False
        s, data = self.ws.session, self.ws.data_path
        self.panel.reset(data_display_name(data))
        if s is None:
            return
        self.panel.set_history(s.steps, s.position)
        # The worker builds the model from a file: the opened one, or the one an
        # in-memory model was materialised to before the window got it.
        executable = s.model.exec_path
        if data is None:
            self.panel.set_off(NO_DATA_REASON)
        elif executable is None:
            self.panel.set_off(f"{s.model.path.name} has no file the evaluation engine can build it from")
        elif not self.engine.open(executable, data, trust=self.ws.trust, **self.ws.eval_options):
            self.panel.set_off(self.engine.unavailable_reason or "evaluation engine unavailable")
        else:
            self.panel.start_pass(0)

    def request(self) -> None:
        """Evaluate the session's current values (once the baseline is known)."""
        s = self.ws.session
        if s is None or not self._model_ok or self.panel.baseline is None:
            return  # evaluated once the baseline arrives
        self._eval_applied = tuple(s.steps[: s.position])
        edited = s.edited_versions()
        if not edited:
            # Stored weights: the baseline is the exact answer, no need to ask the worker.
            # Only the live evaluation is dropped: a sweep or a ranking keeps running.
            if self._live_job is not None:
                self.engine.cancel_job(self._live_job)
                self._live_job = None
            # But the worker must drop the undone edits: later sweeps, rankings and
            # training start from the tensors it holds.
            self.engine.sync({})
            self.panel.end_pass()
            self.panel.set_current(self.panel.baseline, s.position, self._eval_applied)
            return
        self.panel.set_busy("evaluating…")
        self.panel.start_pass(s.position)
        self._live_job = self.engine.evaluate(edited, tag=s.position)

    def _on_model_ready(self, ev: Any) -> None:
        self.ws.set_model_info(ev)
        if not ev.ok:
            self._model_ok = False
            self.panel.set_off(without_private_data_path(ev.reason or "the model cannot be evaluated", self.ws.data_path))
            return
        self._model_ok = True
        data = self.ws.data_path
        self.panel.set_data_info(data_display_name(data) or "?", ev.num_samples, ev.num_classes)
        unmapped = list(ev.unmapped or [])
        if unmapped:
            self.panel.show_message(
                f"{len(unmapped)} tensor(s) not matched in the built model; their edits are not evaluated: "
                + ", ".join(unmapped[:4]) + ("…" if len(unmapped) > 4 else "")
            )

    def _on_result(self, ev: Any) -> None:
        if ev.baseline:
            self.panel.set_baseline(ev.metrics)
            self.request()
            return
        self.panel.set_current(ev.metrics, int(ev.tag) if ev.tag is not None else 0, self._eval_applied)
        self.w.statusBar().showMessage(f"held-out accuracy {100 * ev.metrics.accuracy:.1f} %", 4000)

    def _on_crashed(self, message: str) -> None:
        self._model_ok = False
        message = without_private_data_path(message, self.ws.data_path)
        self.panel.show_message(message)
        self.w.statusBar().showMessage(message, 10000)

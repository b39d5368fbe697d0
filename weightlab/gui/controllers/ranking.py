"""Ranking: the *Ranking* tab's jobs, its link to the neuron selection, and its exports.

:class:`RankingController` adds a :class:`~weightlab.gui.ranking_view.RankingView`
to the window's centre tabs. *Rank* submits a
:class:`~weightlab.core.sweeps.RankSpec` through the engine adapter (a job: its
progress and Cancel show in the status bar's jobs area as well); the units
arrive one by one as the job's partial results (``JobProgress.partial =
SweepPoint.to_dict()``: ``target`` the layer and ``value`` the unit for single
units, ``"top k"``/``"bottom k"`` for the cumulative points, ``""`` for a
baseline) and are drawn as they come; the job's
:class:`~weightlab.core.sweeps.RankResult` replaces them when it ends. The
window never waits: the ablations run in the engine process.

Picking bars (or table rows, or *Select top k*) sets the window's
:class:`~weightlab.gui.selection.NeuronSelection` on the ranked layer (showing
that layer's kernel first when another tensor is shown), so *Zero neurons*
and every neuron op act on the picked units; the selection made in the
heatmap or the norm plot is drawn back on the bars.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer

from weightlab.app.workspace import (
    CurrentChanged,
    DataChanged,
    SessionReplaced,
    TensorsChanged,
    Workspace,
)
from weightlab.core.atomic import atomic_path
from weightlab.core.edits import neuron_count, neuron_tensors
from weightlab.core.errors import WeightLabError
from weightlab.core.session import EditSession
from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint, UnitAblation

from ..edit_panel import optimizer_layers
from ..engine_adapter import EngineAdapter
from ..export import export_plot
from ..ranking_view import REDRAW_MS, RankingView
from .host import WindowHost
from .paths import NO_DATA_REASON, split_name

__all__ = ["EXPORT_FILTERS", "RankingController", "rankable_layers"]

#: Save-dialog filters of the exports.
EXPORT_FILTERS = {
    "csv": "CSV table (*.csv)",
    "json": "JSON (*.json)",
    "png": "PNG image (*.png)",
    "svg": "SVG drawing (*.svg)",
}


class RankingHost(WindowHost, Protocol):
    """What the ranking uses of the window beyond :class:`WindowHost`."""

    def show_tensor(self, name: str) -> None: ...


def rankable_layers(session: EditSession | None) -> list[str]:
    """Layers whose output units can be ranked: a kernel of two or more axes (optimizer state excluded), in model order."""
    if session is None:
        return []
    skip = optimizer_layers(session)
    out = []
    for layer in session.model.layers:
        kernel = layer.tensor("kernel")
        if layer.name not in skip and kernel is not None and len(kernel.shape) >= 2:
            out.append(layer.name)
    return out


class RankingController(QObject):
    """Runs neuron ablation rankings for the *Ranking* tab and links its bars to the neuron selection.

    Parameters
    ----------
    window:
        The main window (its centre tabs, neuron selection, evaluation panel,
        dialogs and ``show_tensor``).
    workspace:
        The state ranked.
    engine:
        The engine adapter the ranking jobs go through.

    Attributes
    ----------
    view:
        The tab.
    job:
        Id of the running ranking job (None when none runs).
    result:
        The ranking shown (final, cancelled-partial, or growing), or None.
    """

    def __init__(self, window: RankingHost, workspace: Workspace, engine: EngineAdapter):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.engine = engine
        self.view = RankingView()
        index = window.views.addTab(self.view, "Ranking")
        window.views.setTabToolTip(
            index,
            "Which output neurons of a layer the model relies on: ablate each alone, sort by the accuracy it costs",
        )
        self.job: int | None = None
        self.spec: RankSpec | None = None
        self.result: RankResult | None = None
        self._baseline: SweepPoint | None = None  # the ranking's own (when streamed)
        self._estimate: SweepPoint | None = None  # the window's last evaluation, while running
        self._points: list[SweepPoint] = []
        self._top: list[SweepPoint] = []
        self._bottom: list[SweepPoint] = []
        self._total = 0
        self._versions: dict[str, int] | None = None  # the edited tensors' versions the ranking saw
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._draw_live)

        v = self.view
        v.rankRequested.connect(self.rank)
        v.cancelRequested.connect(self.cancel)
        v.exportRequested.connect(self.export)
        v.unitsPicked.connect(self.select_units)
        engine.jobProgress.connect(self._on_progress)
        engine.jobResult.connect(self._on_result)
        engine.jobFinished.connect(self._on_finished)
        window.selection.changed.connect(self._on_selection)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(self._on_current, CurrentChanged)
        workspace.subscribe(self._on_tensors, TensorsChanged)
        workspace.subscribe(lambda _ev: self._offer(), DataChanged)
        self._offer()

    # -- workspace events -------------------------------------------------------------------
    def _on_replaced(self, ev: SessionReplaced) -> None:
        self.cancel()
        self.job = None
        self._reset()
        self.view.set_running(False)
        self.view.clear()
        self.view.set_layers(rankable_layers(ev.session))
        self._offer()

    def _on_current(self, ev: CurrentChanged) -> None:
        s = self.ws.session
        if s is not None and ev.name is not None and self.job is None:
            self.view.choose_layer(s.model.tensors[ev.name].layer)

    def _on_tensors(self, ev: TensorsChanged) -> None:
        if self.result is not None and self.job is None:
            self._show(self.result)

    def _offer(self) -> None:
        """Say why *Rank* cannot run (no model, no held-out set), or nothing."""
        if self.job is not None:
            return
        s = self.ws.session
        if s is None:
            self.view.set_status("")
        elif not rankable_layers(s):
            self.view.set_status("no layer with a kernel to rank")
        elif self.ws.data_path is None:
            self.view.set_status(NO_DATA_REASON)
        else:
            self.view.set_status("")

    # -- running a ranking -----------------------------------------------------------------
    def rank(self, spec: RankSpec | None = None) -> int | None:
        """Submit ``spec`` (default: the tab's set-up) as an engine job; its id, or None when it cannot run.

        A ranking already running is cancelled first. The reason a ranking
        cannot run (no held-out set, evaluation off) is shown in the tab.
        """
        s = self.ws.session
        spec = spec or self.view.spec()
        if s is None or spec is None:
            return None
        try:
            total = neuron_count(spec.layer, s.model)
        except WeightLabError as e:
            self.view.set_status(str(e))
            return None
        if self.ws.data_path is None:
            self.view.set_status(NO_DATA_REASON)
            return None
        if self.job is not None:
            self.cancel()
        job = self.engine.submit(spec)
        if job is None:
            self.view.set_status(self.engine.unavailable_reason or "the evaluation engine is not running")
            return None
        self._reset()
        self.job, self.spec, self._total = job, spec, total
        self._versions = self._edited_versions()
        self._estimate = self._window_estimate(s)
        self.view.clear(
            f"Ranking the {total} units of <b>{html.escape(spec.layer, quote=False)}</b> ({spec.ablation} ablation)…"
        )
        self.view.set_running(True, "queued…")
        return job

    def rank_current(self) -> int | None:
        """*Analysis › Rank neurons of layer*: show the tab and rank the shown tensor's layer (or the chosen one)."""
        self.w.views.setCurrentWidget(self.view)
        s, name = self.ws.session, self.ws.current
        if s is not None and name is not None:
            self.view.choose_layer(s.model.tensors[name].layer)
        return self.rank()

    def cancel(self) -> None:
        """Cancel the running ranking (the units measured so far stay shown, marked partial)."""
        if self.job is not None:
            self.engine.cancel_job(self.job)

    def _reset(self) -> None:
        self._redraw.stop()
        self.result = None
        self.spec = None
        self._baseline = self._estimate = None
        self._points, self._top, self._bottom = [], [], []
        self._versions = None

    def _window_estimate(self, session: EditSession) -> SweepPoint | None:
        """The window's evaluation of the state ranked, as an estimate of the ranking's baseline (None: unknown)."""
        panel = self.w.eval_panel
        metrics = panel.current if session.edited_versions() else (panel.current or panel.baseline)
        if metrics is None or getattr(metrics, "accuracy", None) is None:
            return None
        try:
            return SweepPoint.from_metrics("", None, metrics)
        except (TypeError, ValueError):
            return None

    def _on_progress(self, ev: Any) -> None:
        if ev.job_id != self.job or self.spec is None:
            return
        fraction = "" if ev.fraction is None else f"{100 * ev.fraction:.0f} % · "
        self.view.set_status(f"{fraction}{ev.message}")
        if not isinstance(ev.partial, dict):
            return
        try:
            point = SweepPoint.from_dict(ev.partial)
        except (WeightLabError, TypeError, ValueError):
            return
        if point.target == "":
            self._baseline = point
        elif point.target == self.spec.layer:
            self._points.append(point)
        elif point.target.startswith("top "):
            self._top.append(point)
        elif point.target.startswith("bottom "):
            self._bottom.append(point)
        if not self._redraw.isActive():
            self._redraw.start()

    def _live_result(self) -> RankResult:
        assert self.spec is not None
        base = self._baseline or self._estimate
        if base is None:
            # No baseline yet: the order is exact (ascending ablated accuracy), the drops are not known.
            units = sorted(
                (UnitAblation(int(p.value or 0), p, None, None) for p in self._points),
                key=lambda u: (u.point.accuracy is None, u.point.accuracy or 0.0, u.index),
            )
            return RankResult(
                self.spec,
                SweepPoint("", None, None, None),
                units,
                list(self._top),
                list(self._bottom),
                complete=False,
            )
        return RankResult.from_points(
            self.spec,
            base,
            self._points,
            cumulative_top=list(self._top),
            cumulative_bottom=list(self._bottom),
            complete=False,
        )

    def _draw_live(self) -> None:
        if self.job is None or self.spec is None:
            return
        self.result = self._live_result()
        self._show(self.result, provisional=self._baseline is None, total=self._total)

    def _on_result(self, ev: Any) -> None:
        if ev.job_id != self.job or not isinstance(ev.result, RankResult):
            return
        self._redraw.stop()
        self.result = ev.result

    def _on_finished(self, info: Any) -> None:
        if info.job_id != self.job:
            return
        self.job = None
        self._redraw.stop()
        if info.state == "done" and self.result is not None and self.result.complete:
            self.view.set_running(False, "done")
            self._show(self.result)
        elif info.state == "cancelled":
            # the engine's reason when it stopped the job itself (evaluation off: no model, no data)
            why = f"cancelled: {info.message}" if info.message else "cancelled"
            self.view.set_running(False, why)
            if self.spec is not None and self._points:
                partial = self._live_result()
                self.result = partial
                self._show(partial, provisional=self._baseline is None, total=self._total, note=why)
            else:
                self.result = None
                self.view.clear(
                    f"The ranking was {html.escape(why, quote=False)} before any unit was measured."
                )
        else:
            message = info.message or "no result"
            self.view.set_running(False, "failed")
            self.result = None
            self.view.clear(
                f"<span style='color:#c62828'>Ranking failed: {html.escape(message, quote=False)}</span>"
            )

    def _show(
        self, result: RankResult, *, provisional: bool = False, total: int | None = None, note: str = ""
    ) -> None:
        if self._versions is not None and self._edited_versions() != self._versions:
            changed = "the weights changed since this ranking; Rank again to measure them"
            note = f"{note} · {changed}" if note else changed
        self.view.set_result(result, provisional=provisional, total=total, note=note)
        self._on_selection()

    def _edited_versions(self) -> dict[str, int]:
        s = self.ws.session
        return {} if s is None else {name: version for name, (version, _) in s.edited_versions().items()}

    # -- the neuron selection ---------------------------------------------------------------
    def select_units(self, units: list[int]) -> bool:
        """Make ``units`` of the ranked layer the window's neuron selection.

        When the selection is on another target (another tensor is shown),
        the ranked layer's kernel is shown first. Returns False when there
        is no ranking or the layer is no longer in the model.
        """
        s, r = self.ws.session, self.result
        if s is None or r is None:
            return False
        layer = r.spec.layer
        sel = self.w.selection
        try:
            count = neuron_count(layer, s.model)
            kernel = neuron_tensors(layer, s.model)[0]
        except WeightLabError as e:
            self.view.set_status(str(e))
            return False
        if sel.target != layer or sel.count != count:
            self.w.show_tensor(kernel)
        if sel.target != layer or sel.count != count:
            self.view.set_status(f"cannot select the units of {layer}: its kernel is not shown")
            return False
        sel.set_neurons(units)
        return True

    def select_top(self, k: int) -> bool:
        """Select the ``k`` most important units (*Select top k*)."""
        return self.select_units(self.view.top_units(k))

    def _on_selection(self) -> None:
        sel, r = self.w.selection, self.result
        s = self.ws.session
        if r is None or s is None or sel.target != r.spec.layer:
            self.view.set_highlight([])
            return
        self.view.set_highlight(sel.neurons)

    # -- exports -------------------------------------------------------------------------
    def default_path(self, kind: str) -> Path:
        """Where an export of ``kind`` is offered: beside the model, ``<stem>-rank-<layer>.<kind>``."""
        layer = (self.result.spec.layer if self.result else "layer").replace("/", "-")
        s = self.ws.session
        if s is None:
            return Path.cwd() / f"weightlab-rank-{layer}.{kind}"
        stem, _ = split_name(s.model.path)
        return s.model.path.with_name(f"{stem}-rank-{layer}.{kind}")

    def export(self, kind: str, path: str | Path | None = None) -> Path | None:
        """Write the ranking shown as ``kind`` (``csv``, ``json``, ``png``, ``svg``); the path written, or None.

        ``path`` None asks with a save dialog. CSV and JSON
        (:meth:`RankResult.to_csv`, :meth:`RankResult.to_json`) are written
        atomically; PNG and SVG are the bar chart
        (:func:`weightlab.gui.export.export_plot`). A failure is reported in an
        error dialog naming the file.
        """
        r = self.result
        if r is None or kind not in EXPORT_FILTERS:
            return None
        if path is None:
            chosen = self.w._ask_save_path(
                f"Export ranking as {kind.upper()}", self.default_path(kind), EXPORT_FILTERS[kind]
            )
            if not chosen:
                return None
            path = chosen
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(f".{kind}")
        try:
            if kind in ("csv", "json"):
                text = r.to_csv() if kind == "csv" else json.dumps(r.to_json(), indent=2) + "\n"
                with atomic_path(target) as tmp:
                    tmp.write_text(text, encoding="utf-8")
                out = target
            else:
                if target.suffix.lower() != f".{kind}":
                    raise ValueError(f"a {kind.upper()} export needs the .{kind} extension")
                out = export_plot(self.view.plot, target)
        except (OSError, ValueError) as e:
            self.w._error("Cannot export the ranking", f"{target}: {e}")
            return None
        self.w.statusBar().showMessage(f"ranking of {r.spec.layer} written to {out}", 5000)
        return out

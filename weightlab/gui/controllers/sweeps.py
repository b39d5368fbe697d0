"""Sweeps: the Sweeps tab's job, its live points, applying a point or a plan, exports, the tree's colours.

:class:`SweepsController` adds a :class:`~weightlab.gui.sweeps_panel.SweepsPanel`
to the window's centre tabs. *Run* builds a
:class:`~weightlab.core.sweeps.SweepSpec` from the panel and submits it
through the engine adapter (a job: progress and Cancel also show in the
status bar's jobs area). The worker streams each measured point as the job's
``partial`` (``SweepPoint.to_dict()``; target ``""`` is the baseline); the
final :class:`~weightlab.core.sweeps.SweepResult` comes with the job's
``JobResult``. Only this controller's job id is listened to.

Clicking a point applies its edit (:func:`~weightlab.core.sweeps.sweep_edit`,
expanded to recipe steps by :func:`~weightlab.core.sweeps.recipe_edits`)
through the edits controller: an ordinary undoable history step, evaluated
live like any edit. *Plan…* runs :func:`weightlab.core.plan.plan` on the
result; *Apply plan* applies its edits as one transaction, and the live
evaluation that follows is recorded as the plan's joint point (its real drop
beside the sum of the single drops).

An ``each`` sweep with a budget colours the model tree by sensitivity (the
value at which a target's drop passes the budget, :meth:`SweepResult.sensitivities`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from weightlab.app.workspace import SessionReplaced, Workspace
from weightlab.core.atomic import atomic_path
from weightlab.core.errors import WeightLabError
from weightlab.core.plan import Plan, plan
from weightlab.core.sweeps import (
    GROUP_PREFIX,
    SweepPoint,
    SweepResult,
    SweepSpec,
    SweepTarget,
    recipe_edits,
    sweep_edit,
    sweep_targets,
)
from weightlab.engine.protocol import JobInfo, JobProgress, JobResult

from ..engine_adapter import EngineAdapter
from ..export import export_plot
from ..model_tree import sensitivity_colour
from ..sweeps_panel import SweepsPanel
from .edits import EditsController
from .host import WindowHost
from .paths import NO_DATA_REASON

__all__ = ["SweepsController", "EXPORT_FILTERS"]

EXPORT_FILTERS = {
    "csv": "CSV table (*.csv)",
    "json": "JSON (*.json)",
    "png": "PNG image (*.png)",
    "svg": "SVG drawing (*.svg)",
}


class SweepsController(QObject):
    """Runs sweeps from the Sweeps tab and applies what the user picks.

    Parameters
    ----------
    window:
        The main window (its centre tabs, tree, status bar and dialogs).
    workspace:
        The session swept and edited.
    engine:
        The adapter the sweep job is submitted to.
    edits:
        Applies a point or a plan as undoable steps.

    Attributes
    ----------
    panel:
        The Sweeps tab.
    job_id:
        The running sweep's job (None when none runs).
    result:
        The latest sweep's result (growing while it runs).
    plan:
        The latest plan (:meth:`make_plan`).
    """

    def __init__(self, window: WindowHost, workspace: Workspace, engine: EngineAdapter, edits: EditsController):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.engine = engine
        self.edits = edits
        self.panel = SweepsPanel()
        self.tab_index = window.views.addTab(self.panel, "Sweeps")
        window.views.setTabToolTip(self.tab_index, "Sensitivity sweeps: accuracy vs an edit's strength, per target")
        self.job_id: int | None = None
        self.result: SweepResult | None = None
        self.plan: Plan | None = None
        self._targets: dict[str, SweepTarget] = {}
        self._plan_position: int | None = None  # history position the applied plan lands at
        p = self.panel
        p.runRequested.connect(self.run)
        p.cancelRequested.connect(self.cancel)
        p.pointChosen.connect(self.apply_point)
        p.planRequested.connect(self.make_plan)
        p.applyPlanRequested.connect(self.apply_plan)
        p.exportRequested.connect(self.export_dialog)
        p.budget_spin.valueChanged.connect(lambda _v: self._show_sensitivity())
        window.tree.targetsSelected.connect(p.set_targets_text)
        p.target_kind.currentIndexChanged.connect(lambda _i: p.set_targets_text(window.tree.selected_targets()))
        engine.jobProgress.connect(self._on_progress)
        engine.jobResult.connect(self._on_result)
        engine.jobFinished.connect(self._on_finished)
        engine.result.connect(self._on_evaluation)
        workspace.subscribe(self._on_replaced, SessionReplaced)

    # -- state ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while this controller's sweep job is queued or running."""
        return self.job_id is not None

    def _on_replaced(self, ev: SessionReplaced) -> None:
        # The engine cancels every job of the old model (EvaluationController); forget ours.
        self.job_id = None
        self.result = None
        self.plan = None
        self._targets = {}
        self._plan_position = None
        self.panel.set_result(None)
        self.panel.set_running(False)
        self.panel.set_has_result(False)
        self.panel.set_notes({})
        self.panel.set_legend("")
        self.panel.set_plan_text("", False)
        self.panel.show_message("")
        self.w.tree.clear_sensitivity()

    # -- running ----------------------------------------------------------------------------
    def spec(self) -> SweepSpec:
        """The sweep the panel describes.

        Raises
        ------
        weightlab.core.errors.RecipeError
            (``SpecError``) When a field is wrong; the message names it.
        """
        return SweepSpec(**self.panel.spec_fields(self.w.tree.selected_targets()))

    def run(self, spec: SweepSpec | None = None) -> int | None:
        """*Run sweep*: submit ``spec`` (default: the panel's sweep); the job id, or None (the panel says why)."""
        s = self.ws.session
        if s is None:
            self.panel.show_message("Open a model first.")
            return None
        if self.ws.data_path is None:
            self.panel.show_message(f"Sweeps need a held-out set: {NO_DATA_REASON}")
            return None
        if self.running:
            return self.job_id
        from_elsewhere = spec is not None
        try:
            spec = spec or self.spec()
            targets = sweep_targets(spec, s.model)
        except WeightLabError as e:
            self.panel.show_message(f"Cannot sweep: {e}")
            return None
        job_id = self.engine.submit(spec)
        if job_id is None:
            self.panel.show_message(f"Evaluation is off: {self.engine.unavailable_reason or 'engine not running'}")
            return None
        self.job_id = job_id
        if from_elsewhere:
            self.panel.show_spec(spec)  # e.g. viewer.sweep(...) from a notebook: the form describes what runs
        self._targets = {t.name: t for t in targets}
        self.result = None
        self.plan = None
        self._plan_position = None
        self._pending_spec = spec
        self.panel.set_result(None)
        self.panel.set_plan_text("", False)
        self.panel.set_has_result(False)
        self.panel.set_notes({t.name: t.note for t in targets if t.note})
        self.panel.set_legend("")
        self.w.tree.clear_sensitivity()
        self.panel.set_running(True)
        n = len(spec.initial_values()) * len(targets)
        self.panel.show_message(f"{spec.label}: {len(targets)} target(s), {n} point(s)"
                                + (" to start (adaptive)" if spec.adaptive else "") + " — running…")
        return job_id

    def cancel(self) -> None:
        """*Cancel*: stop the running sweep (its points so far stay)."""
        if self.job_id is not None:
            self.engine.cancel_job(self.job_id)

    def _on_progress(self, ev: JobProgress) -> None:
        if ev.job_id != self.job_id or not isinstance(ev.partial, dict):
            return
        try:
            point = SweepPoint.from_dict(ev.partial)
        except WeightLabError:
            return
        if point.target == "" and point.value is None:
            self.result = SweepResult(self._pending_spec, point, [], {t: x.note for t, x in self._targets.items()
                                                                      if x.note}, complete=False)
        elif self.result is not None:
            self.result.points.append(point)
        else:
            return
        if ev.message:
            self.panel.show_message(f"{self._pending_spec.label}: {ev.message}")
        self.panel.set_result(self.result)
        self._show_sensitivity()

    def _on_result(self, ev: JobResult) -> None:
        if ev.job_id != self.job_id or not isinstance(ev.result, SweepResult):
            return
        self.result = ev.result
        self.panel.set_result(self.result, now=True)
        self.panel.set_notes(self.result.notes)
        self._show_sensitivity()

    def _on_finished(self, info: JobInfo) -> None:
        if info.job_id != self.job_id:
            return
        self.job_id = None
        self.panel.set_running(False)
        r = self.result
        if r is not None:
            if info.state != "done":
                r.complete = False
            self.panel.set_result(r, now=True)
        has = r is not None and bool(r.points)
        self.panel.set_has_result(has, has and bool(r.spec.sweep_param.stronger))
        n = len(r.points) if r is not None else 0
        if info.state == "done":
            stopped = f"; {len(r.stopped)} target(s) stopped early past the budget" if r and r.stopped else ""
            self.panel.show_message(f"Sweep done: {n} point(s){stopped}. Click a point to apply it.")
        elif info.state == "cancelled":
            self.panel.show_message(f"Sweep cancelled after {n} point(s)"
                                    + (f": {info.message}" if info.message else "") + ".")
        else:
            self.panel.show_message(f"Sweep failed: {info.message or 'unknown error'}")
        self._show_sensitivity()

    # -- applying ---------------------------------------------------------------------------
    def point_edits(self, target: str, value: float) -> list:
        """The registered edits of ``target`` at ``value`` on the current weights (recipe steps).

        Raises
        ------
        weightlab.core.errors.RecipeError
            When the edit does not fit the model.
        """
        assert self.result is not None and self.ws.session is not None
        s = self.ws.session
        edit = sweep_edit(self.result.spec, self._targets.get(target, target), value, s.model)
        return recipe_edits(edit, s.model, s)

    def apply_point(self, target: str, value: float) -> bool:
        """Apply the sweep's edit of ``target`` at ``value`` as an undoable step (or one transaction
        of steps for a multi-layer neuron point); True when it started."""
        if self.result is None or self.ws.session is None:
            return False
        try:
            steps = self.point_edits(target, value)
        except WeightLabError as e:
            self.w._error("Cannot apply the sweep point", str(e))
            return False
        spec = self.result.spec
        started = self.edits.apply_edits(steps, f"sweep point {spec.op}.{spec.param} = {value:g} on {target}")
        if started:
            self.panel.show_message(f"Applying {spec.op} {spec.param} = {value:g} to {target} "
                                    "(undo with Ctrl+Z).")
        return started

    def make_plan(self) -> Plan | None:
        """*Plan…*: the strongest value per target within the panel's budget (None: the panel says why)."""
        r = self.result
        if r is None or not r.points:
            return None
        budget = self.panel.budget_pp
        if budget is None:
            self.panel.set_plan_text("Set a budget (pp) to plan.", False)
            return None
        try:
            self.plan = plan(r, budget)
        except WeightLabError as e:
            self.panel.set_plan_text(f"Cannot plan: {_esc(str(e))}", False)
            return None
        self._plan_position = None
        self._show_plan()
        return self.plan

    def _show_plan(self) -> None:
        p = self.plan
        if p is None:
            return
        parts = []
        for c in p.choices[:8]:
            if c.value is None:
                parts.append(f"{_esc(c.target)} → <i>unedited</i>")
            else:
                parts.append(f"{_esc(c.target)} → <b>{c.value:.4g}</b>" + (" (interp.)" if c.interpolated else "")
                             + (f" {c.single_drop_pp:.2f} pp" if c.single_drop_pp is not None else ""))
        more = f"; … {len(p.choices) - 8} more" if len(p.choices) > 8 else ""
        joint = p.joint_drop_pp
        if joint is None:
            real = "real drop: apply the plan to measure it"
        else:
            real = (f"real drop <b>{joint:.2f} pp</b> (interaction {p.interaction_pp:+.2f} pp: "
                    + ("the edits hurt more together" if (p.interaction_pp or 0) > 0 else "no extra loss together")
                    + ")")
        html = (f"Plan within {p.budget_pp:g} pp: " + "; ".join(parts) + more
                + f"<br>sum of single drops {p.sum_single_drops_pp:.2f} pp · {real}")
        self.panel.set_plan_text(html, any(c.value is not None for c in p.choices))

    def apply_plan(self) -> bool:
        """*Apply plan*: the plan's edits as one transaction; its real drop is shown when evaluated."""
        p, s = self.plan, self.ws.session
        if p is None or s is None:
            return False
        try:
            edits = p.edits(s.model, s)
        except WeightLabError as e:
            self.w._error("Cannot apply the plan", str(e))
            return False
        if not edits:
            return False
        position = s.position + len(edits)
        if not self.edits.apply_edits(edits, f"plan within {p.budget_pp:g} pp"):
            return False
        self._plan_position = position
        return True

    def _on_evaluation(self, ev: Any) -> None:
        """A live evaluation result: the applied plan's real accuracy when it is the plan's position."""
        p = self.plan
        if p is None or self._plan_position is None or ev.baseline or ev.tag is None:
            return
        if int(ev.tag) != self._plan_position:
            return
        p.set_joint(SweepPoint.from_metrics("plan", None, ev.metrics))
        self._show_plan()

    # -- sensitivity colours ----------------------------------------------------------------
    def sensitivity_scores(self) -> tuple[dict[str, float | None], dict[str, str]]:
        """``({row name: score 0 (sensitive) .. 1 (robust) or None}, {row name: tooltip})`` of an
        ``each`` sweep with a budget; empty otherwise. Group targets colour each of their layers."""
        r, budget = self.result, self.panel.budget_pp
        if r is None or budget is None or r.spec.mode != "each" or not r.spec.sweep_param.stronger:
            return {}, {}
        sens = r.sensitivities(budget)
        measured = sorted({p.value for p in r.points if p.value is not None})
        if not measured:
            return {}, {}
        # Positions on a log axis when asked for, or when the values span a decade or more.
        log = measured[0] > 0 and (r.spec.scale == "log" or measured[-1] >= 10 * measured[0])

        def pos(v: float) -> float:
            return math.log(v) if log else v

        lo, hi = pos(measured[0]), pos(measured[-1])
        up = r.spec.sweep_param.stronger == "up"
        scores: dict[str, float | None] = {}
        tips: dict[str, str] = {}
        label = f"{r.spec.op}.{r.spec.param}"
        for target, v in sens.items():
            if v is None:
                score = None
                tip = f"{target}: within the {budget:g} pp budget over the whole range swept ({label})"
            else:
                t = 0.5 if hi == lo else (pos(max(v, measured[0])) - lo) / (hi - lo)
                score = min(1.0, max(0.0, t if up else 1.0 - t))
                tip = f"{target}: drop passes {budget:g} pp at {label} = {v:.4g}"
            names = self._targets[target].group.layers if (
                target in self._targets and self._targets[target].group is not None
            ) else ([] if target.startswith(GROUP_PREFIX) else [target])
            for n in names:
                scores[n] = score
                tips[n] = tip
        return scores, tips

    def _show_sensitivity(self) -> None:
        scores, tips = self.sensitivity_scores()
        tree = self.w.tree
        if not scores:
            if tree.sensitivity:
                tree.clear_sensitivity()
            self.panel.set_legend("")
            return
        tree.set_sensitivity(scores, tips)
        r = self.result
        assert r is not None
        base = tree.tree.palette().color(tree.tree.palette().ColorRole.Base)

        def swatch(c: Any) -> str:
            return f"<span style='background-color:{c.name()}'>&nbsp;&nbsp;&nbsp;&nbsp;</span>"

        weak = "large" if r.spec.sweep_param.stronger == "down" else "small"
        partial = "" if r.complete and self.job_id is None else " (partial: sweep still running or stopped)"
        self.panel.set_legend(
            f"Tree colours, {r.spec.op}.{r.spec.param} each, budget {self.panel.budget_pp:g} pp{partial}: "
            f"{swatch(sensitivity_colour(0.0, base))} sensitive (passes the budget at a {weak}, weak value) … "
            f"{swatch(sensitivity_colour(1.0, base))} robust · "
            f"{swatch(sensitivity_colour(None, base))} within budget over the whole range"
        )

    # -- exports ----------------------------------------------------------------------------
    def export(self, kind: str, path: str | Path) -> Path:
        """Write the result as ``kind`` (``csv``, ``json``, ``png``, ``svg``) to ``path``; the file.

        Raises
        ------
        OSError, ValueError
            When the file cannot be written.
        """
        r = self.result
        if r is None:
            raise ValueError("no sweep result to export")
        p = Path(path)
        if kind in ("csv", "json"):
            text = r.to_csv() if kind == "csv" else json.dumps(r.to_json(), indent=2, allow_nan=False) + "\n"
            with atomic_path(p) as tmp:
                tmp.write_text(text, encoding="utf-8")
            return p
        return export_plot(self.panel.plot.plot, p)

    def export_dialog(self, kind: str) -> bool:
        """An export button: ask for the file, write it; True when written."""
        r, s = self.result, self.ws.session
        if r is None:
            return False
        folder = s.model.path.parent if s is not None else Path.cwd()
        stem = s.model.path.stem if s is not None else "weightlab"
        default = folder / f"{stem}-sweep-{r.spec.op}-{r.spec.param}.{kind}"
        chosen = self.w._ask_save_path(f"Export sweep as {kind.upper()}", default, EXPORT_FILTERS[kind])
        if not chosen:
            return False
        target = Path(chosen)
        if not target.suffix:
            target = target.with_suffix(f".{kind}")
        try:
            out = self.export(kind, target)
        except (OSError, ValueError) as e:
            self.w._error("Cannot export the sweep", f"{target}: {e}")
            return False
        self.w.statusBar().showMessage(f"sweep written to {out}", 5000)
        return True


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


"""Views: the model tree, the shown tensor's histogram, heatmap, diff and neuron norms.

:class:`ViewsController` shows the workspace's current tensor: it computes its
statistics off the window's thread (:class:`~weightlab.gui.tensor_worker.TensorComputer`),
hands the plots their data one per event-loop turn, refreshes them when the
shown tensor's values change, and says "applying …" over them while a change of
the session runs.

When another model is shown (:class:`~weightlab.app.workspace.SessionReplaced`)
nothing of the previous one stays on screen: every view is cleared (its
``clear()`` where it has one), the status bar's hover readout, selection
label and message are emptied, and computations still running for the old
model are dropped.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QObject, QTimer

from weightlab.app.workspace import BusyChanged, CurrentChanged, SessionReplaced, TensorsChanged, Workspace
from weightlab.core.edits import neuron_count, neuron_tensors
from weightlab.core.errors import WeightLabError
from weightlab.core.session import EditSession

from ..diff_view import DiffData, compute_diff
from ..heatmap_view import HOVER_HINT
from ..selection import neuron_target
from ..tensor_worker import SYNC_LIMIT, TensorComputer, TensorRequest, TensorView
from .host import WindowHost

#: The status bar's note while a tensor's statistics are computed.
COMPUTING_NOTE = "computing statistics…"


class ViewsController(QObject):
    """Keeps the tree and the tensor views in step with the workspace.

    Parameters
    ----------
    window:
        The main window (its tree, plots, selection and status bar).
    workspace:
        The state shown.
    """

    def __init__(self, window: WindowHost, workspace: Workspace):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.computer: TensorComputer = window.computer
        self._norms_of: str | None = None
        self._view_stage = 0  # number of the latest view being handed to the plots (see _on_view)
        self._view_steps_pending = False
        self._keep_range = False
        self._selecting = False
        self._titles: tuple[str, str] | None = None  # the plots' titles under the busy note
        w, c = window, self.computer
        w.tree.tensorSelected.connect(self._on_tree_tensor)
        w.views.currentChanged.connect(lambda _i: self.update_diff())
        c.ready.connect(self._on_view)
        c.diffed.connect(self._on_diff)
        c.diffFailed.connect(lambda msg: w.diff_view.clear(f"Cannot compute the diff: {msg}"))
        c.preview.connect(w.histogram.set_preview)
        c.tile.connect(w.heatmap.set_tile)
        c.counted.connect(w.histogram.set_count)
        w.heatmap.regionWanted.connect(
            lambda rows, cols: w.heatmap.view is not None and c.render(w.heatmap.view, rows, cols)
        )
        w.histogram.countWanted.connect(
            lambda lo, hi: w.histogram.view is not None and c.count(w.histogram.view, lo, hi)
        )
        c.failed.connect(lambda msg: w._error("Cannot read tensor", msg))
        c.busy.connect(self._on_computing)
        w.histogram.binsChanged.connect(lambda _n: self.request_view(keep_range=True))
        w.heatmap.hovered.connect(w.hover_label.setText)
        w.selection.changed.connect(self._on_selection)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(self._on_tensors, TensorsChanged)
        workspace.subscribe(self._on_current, CurrentChanged)
        workspace.subscribe(self._on_busy, BusyChanged)

    # -- workspace events -------------------------------------------------------------------
    def _on_replaced(self, ev: SessionReplaced) -> None:
        w = self.w
        self.computer.cancel()
        self._view_stage += 1  # drop the plot steps of a view of the previous model
        self._view_steps_pending = False
        self._norms_of = None
        w.selection.set_target(None, 0)
        self.clear_views()
        w.tree.set_session(ev.session)
        if ev.session is not None:
            first = w.tree.first_tensor()
            if first:
                # The tree is drawn in this turn, the first tensor's plots
                # from the next one (each repaint in its own turn; see _on_view).
                session = ev.session
                QTimer.singleShot(1, w, lambda: self._show_first(session, first))

    def _on_computing(self, busy: bool) -> None:
        """Say "computing statistics…" while they are computed; take back only that note, not another message."""
        bar = self.w.statusBar()
        if busy:
            bar.showMessage(COMPUTING_NOTE, 0)
        elif bar.currentMessage() == COMPUTING_NOTE:
            bar.clearMessage()

    def clear_views(self) -> None:
        """Show nothing of any model: plots, diff, evaluation panel, hover readout, selection label, status message.

        Each view's own ``clear()`` is used where it has one (it forgets
        everything model-specific: axes, classes, hints); otherwise what
        empties it.
        """
        w = self.w
        _clear(w.histogram, lambda: w.histogram.set_view(None))
        _clear(w.heatmap, lambda: w.heatmap.set_view(None))
        w.heatmap.hover_label.setText(HOVER_HINT)  # the heatmap's own readout of the last hovered cell
        _clear(w.norms, lambda: w.norms.set_norms(None))
        w.diff_view.clear("Edit a tensor to see how it changed")
        eval_clear = getattr(w.eval_panel, "clear", None)
        if callable(eval_clear):
            eval_clear()
        self._titles = None  # a busy note's saved titles belong to the old model's plots
        w.hover_label.setText("")
        w.selection_label.setText("")
        w.statusBar().clearMessage()

    def _show_first(self, session: EditSession, name: str) -> None:
        if self.ws.session is session and self.ws.current is None:
            self.w.tree.select(name)

    def _on_tensors(self, ev: TensorsChanged) -> None:
        self.w.tree.refresh(set(ev.names))
        if self.ws.current in ev.names or self._norms_of in ev.names:
            self.request_view(keep_range=True)

    def _on_current(self, ev: CurrentChanged) -> None:
        s = self.ws.session
        if s is None or ev.name is None:
            return
        target = neuron_target(s.model, ev.name)
        try:
            self._norms_of = neuron_tensors(target, s.model)[0]
            count = neuron_count(target, s.model)
        except WeightLabError:
            self._norms_of, count = None, 0
        self.w.selection.set_target(target, count)
        self.request_view(keep_range=False)

    def _on_busy(self, ev: BusyChanged) -> None:
        titles = (self.w.histogram.title, self.w.heatmap.title)
        if ev.label is not None:
            if self._titles is None:
                self._titles = (titles[0].text(), titles[1].text())
            note = f"<i>applying {html.escape(ev.label)}…</i>"
            for label in titles:
                label.setText(note)
        elif self._titles is not None:
            for label, text in zip(titles, self._titles, strict=True):
                if label.text().startswith("<i>applying "):
                    label.setText(text)
            self._titles = None

    # -- showing a tensor ----------------------------------------------------------------------
    def show_tensor(self, name: str) -> None:
        """Show tensor ``name``, and make it the tree selection (edits on the selection reach only it)."""
        s = self.ws.session
        if s is None:
            return
        selected = self.w.tree.selected_targets()
        if name not in selected and s.model.tensors[name].layer not in selected:
            self._selecting = True
            try:
                self.w.tree.select_only(name)
            finally:
                self._selecting = False
        self.ws.set_current(name)

    def _on_tree_tensor(self, name: str) -> None:
        """A tensor row became current in the tree (a click, or select_only)."""
        if not self._selecting and self.ws.session is not None:
            self.ws.set_current(name)

    def request_view(self, keep_range: bool) -> None:
        """Compute the shown tensor's view again (``keep_range``: keep the histogram's brushed range)."""
        s, name = self.ws.session, self.ws.current
        if s is None or name is None:
            return
        self._keep_range = keep_range
        info = s.model.tensors[name]
        req = TensorRequest(
            generation=self.computer.next_generation(),
            name=name,
            source=s,
            bins=self.w.histogram.bins.value(),
            edited=s.is_edited(name),
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
        w = self.w
        steps = [
            lambda: w.histogram.set_view(view, keep_range=keep_range),
            lambda: w.heatmap.set_view(view),
            lambda: w.norms.set_norms(view.norms, norms_of),
            lambda: self._view_done(view),
        ]
        w.tree.set_zero_fraction(view.request.name, view.stats.zeros)
        self._run_view_steps(stage, steps)

    @property
    def settled(self) -> bool:
        """True when no computed view is still being handed to the plots."""
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
            QTimer.singleShot(1, self.w, lambda: self._run_view_steps(stage, steps[1:]))

    def _view_done(self, view: TensorView) -> None:
        if self._titles is not None:  # a busy note stays; what it covers is now this view's title
            self._titles = (self.w.histogram.title.text(), self.w.heatmap.title.text())
            self._on_busy(BusyChanged(self.ws.busy))
        self.update_diff()
        self.w.viewShown.emit(view.request.name)

    def update_diff(self) -> None:
        """Refresh the diff tab while it is shown; a large tensor's diff is computed in the pool."""
        w = self.w
        if w.views.currentWidget() is not w.diff_view:
            return
        s, name = self.ws.session, self.ws.current
        if s is None or name is None:
            w.diff_view.clear("No tensor shown")
        elif not s.is_edited(name):
            w.diff_view.clear(f"<b>{name}</b> is not edited: it equals the stored values")
        elif s.model.tensors[name].size <= SYNC_LIMIT:
            w.diff_view.show_diff(name, s.original(name), s.array(name))
        else:
            w.diff_view.clear(f"<b>{name}</b>: computing the diff…")
            current = s.array(name)  # immutable: the values as of this request
            self.computer.diff(name, lambda: compute_diff(name, s.original(name), current))

    def _on_diff(self, data: DiffData) -> None:
        """A diff computed in the pool: shown when it is still the tensor on screen."""
        if self.w.views.currentWidget() is self.w.diff_view and data.diff.name == self.ws.current:
            self.w.diff_view.show_data(data)

    def _on_selection(self) -> None:
        sel = self.w.selection
        self.w.selection_label.setText(sel.describe() if sel.neurons else "")
        self.ws.set_selected_neurons(len(sel.neurons))

    def cancel(self) -> None:
        """The window closes: drop every pending computation."""
        self.computer.cancel()


def _clear(widget, fallback) -> None:
    """``widget.clear()`` when the widget has one, else ``fallback()``."""
    clear = getattr(widget, "clear", None)
    if callable(clear):
        clear()
    else:
        fallback()

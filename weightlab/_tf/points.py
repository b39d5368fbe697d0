"""Many edits of one opened model, evaluated fast: the engine side of sweeps and rankings.

A sweep or a ranking evaluates the model at many *points*: the caller's
current edits (the *base*) plus one change (a clipped kernel, a zeroed unit).
:class:`PointEvaluator` runs them on an opened session
(:func:`weightlab._tf.passes.open_session`) and returns
:class:`~weightlab.engine.events.Metrics` equal to a full pass of the model
holding those weights.

Suffix passes
-------------
The incremental :class:`~weightlab._tf.session.EngineSession` restarts from
*cuts*, tensors every path to the output passes through; inside a residual
block the nearest cut is the block's input. A sweep knows more: every point of
one target changes the same variables, so every tensor that does not depend on
them is the same for all of its points. For a set of changed layers the
evaluator takes the *frontier*: the tensors that do not depend on those layers
and feed a tensor that does (a convolution's input and a residual block's
shortcut, for a convolution inside the block). It computes the frontier's
activations on the held-out set once per target (from the latest valid cached
cut of the session, which the baseline pass recorded), builds the rest of the
model from the frontier with the model's own layers
(``keras.Model(inputs=frontier, outputs=model.outputs)``), and runs only that
for each point: the point's values are assigned to the variables, the suffix
runs, and the base values are assigned back. The layers run are the same
operations on the same inputs as in a full pass.

A sweep knows its targets in advance: :meth:`PointEvaluator.prepare` runs the
base model once from the inputs with every target's frontier as extra
outputs when they fit :data:`FRONTIER_BUDGET` together, so no target needs a
pass of its own to reach its frontier (and the session's cuts are neither
written nor needed).

Sessions without a graph plan (SavedModels, frozen graphs, several outputs,
an incremental budget of 0) evaluate every point through the session's own
``evaluate`` (full passes, or the session's cuts).

A change that leaves every tensor bit for bit as in the base (a clip threshold
above the largest magnitude) is not run: its metrics are the base's.

Agreement
---------
:class:`PointEvaluator` compares every point with the *base* model (the
caller's current edits; the unedited model when there are none): the fraction
of held-out samples whose predicted class is unchanged. It needs no labels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..core.errors import EngineError
from ..engine.events import Metrics
from ..engine.scoring import Agreement, PassScorer
from .incremental import _node_of
from .model import prepare_arrays
from .runtime import EvaluationCancelled, device_name
from .session import ACTIVATION_BUDGET, EngineSession, _compile

__all__ = ["FRONTIER_BUDGET", "MIN_CALL_ROWS", "OriginalValues", "PointEvaluator", "original_values"]

#: Bytes of frontier activations a :class:`PointEvaluator` may hold for one target.
FRONTIER_BUDGET = 1 << 30
#: Fewest rows per call of a suffix pass (larger convolution calls are faster on a CPU: a full pass of
#: the benchmark's residual CNN took 1.21 s at 64 rows per call, 1.15 s at 128 and 1.18 s at 256).
MIN_CALL_ROWS = 128


class OriginalValues(Mapping[str, np.ndarray]):
    """The file's values of every mapped tensor of a session, read on first use (canonical name -> array).

    Reads the session's variables, or the copies the session keeps of the
    ones it has overwritten with edits; each tensor is read once. Read
    lazily so that a sweep of a few layers of a large model copies only
    those.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._read: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        a = self._read.get(name)
        if a is None:
            s = self._session
            if name not in s.tmap.variables:
                raise KeyError(name)
            kept: Mapping[str, np.ndarray] = getattr(s, "_originals", {})
            exe = getattr(s, "exe", None)
            if name in kept:
                a = np.array(kept[name], copy=True)
            elif exe is not None:
                a = exe.value(name)
            else:
                a = np.array(s.tmap.variables[name].numpy(), copy=True)
            a.flags.writeable = False
            self._read[name] = a
        return a

    def __iter__(self) -> Iterator[str]:
        return iter(self._session.tmap.variables)

    def __len__(self) -> int:
        return len(self._session.tmap.variables)

    def __contains__(self, name: object) -> bool:
        return name in self._session.tmap.variables


def original_values(session: Any) -> OriginalValues:
    """The file's values of every mapped tensor of ``session``, read lazily (see :class:`OriginalValues`)."""
    return OriginalValues(session)


class _Graph:
    """Topological order of a one-input, one-output functional model's tensors."""

    def __init__(self, model: keras.Model) -> None:
        source, sink = model.inputs[0], model.outputs[0]
        self.source, self.sink = source, sink
        self.order: list[Any] = []
        self.pos: dict[int, int] = {}
        self.parents: dict[int, list[Any]] = {}
        self.op: dict[int, Any] = {}
        stack: list[tuple[Any, bool]] = [(sink, False)]
        while stack:
            t, expanded = stack.pop()
            if id(t) in self.pos:
                continue
            if expanded:
                self.pos[id(t)] = len(self.order)
                self.order.append(t)
                continue
            ins = [] if t is source else list(_node_of(t).input_tensors)
            self.parents[id(t)] = ins
            self.op[id(t)] = None if t is source else _node_of(t).operation
            stack.append((t, True))
            stack.extend((p, False) for p in reversed(ins) if id(p) not in self.pos)
        # variable id -> ids of the graph operations whose weights include it
        self.owners: dict[int, set[int]] = {}
        for t in self.order:
            op = self.op[id(t)]
            if op is not None:
                for v in op.weights:
                    self.owners.setdefault(id(v), set()).add(id(op))

    def _frontier(self, changed: Callable[[Any], bool]) -> tuple[list[Any], int, set[int]] | None:
        """``(frontier in topological order, position of the first changed tensor, ids of the changed ones)``.

        A tensor is changed when ``changed(tensor)`` or one of its inputs is
        changed; the frontier holds the unchanged tensors that feed changed
        ones. None when the output is not changed.
        """
        affected: set[int] = set()
        first = None
        for i, t in enumerate(self.order):
            if changed(t) or any(id(p) in affected for p in self.parents[id(t)]):
                affected.add(id(t))
                first = i if first is None else first
        if id(self.sink) not in affected or first is None:
            return None
        front: dict[int, Any] = {}
        for t in self.order:
            if id(t) in affected:
                for p in self.parents[id(t)]:
                    if id(p) not in affected:
                        front[id(p)] = p
        return sorted(front.values(), key=lambda t: self.pos[id(t)]), first, affected

    def frontier_of_ops(self, ops: set[int]) -> tuple[list[Any], int, set[int]] | None:
        """The frontier of the tensors computed by the operations ``ops`` (ids) and everything after them."""
        return self._frontier(lambda t: self.op[id(t)] is not None and id(self.op[id(t)]) in ops)

    def frontier_after(self, tensor: Any) -> tuple[list[Any], int, set[int]] | None:
        """The frontier of the tensors computed from ``tensor`` (``tensor`` itself unchanged)."""
        return self._frontier(lambda t: any(p is tensor for p in self.parents[id(t)]))

    def layer_output(self, layer: str) -> Any:
        """The one tensor the layer called ``layer`` produces in this graph.

        Raises
        ------
        EngineError
            When the layer is not in the graph, is called more than once or has several outputs.
        """
        found = [t for t in self.order if self.op[id(t)] is not None and self.op[id(t)].name == layer]
        if not found:
            raise EngineError(f"layer {layer!r} is not a layer of the model's graph (nested models are not ranked)")
        if len(found) > 1:
            raise EngineError(f"layer {layer!r} produces {len(found)} tensors (shared or multi-output): not ranked")
        return found[0]


def _rows_bytes(tensors: Iterable[Any], rows: int) -> int:
    total = 0
    for t in tensors:
        dims = tuple(t.shape)[1:]
        if any(d is None for d in dims):
            return -1
        total += int(math.prod(dims)) * np.dtype(keras.backend.standardize_dtype(t.dtype)).itemsize * rows
    return total


class _Suffix:
    """Frontier activations of one target and the compiled pass from them to the output."""

    def __init__(self, names: frozenset[str], batches: list[list[Any]], fn: Callable, layers_run: int, cut: str):
        self.names = names
        self.batches = batches
        self.fn = fn
        self.layers_run = layers_run
        self.cut = cut
        self.key: tuple[int, ...] = ()
        self.first = 0


class _Replaced:
    """A layer's output and the rest of the frontier it needs, and a pass that replaces one unit."""

    def __init__(self, layer, batches, fn, means, units, layers_run, cut):
        self.layer, self.batches, self.fn, self.means = layer, batches, fn, means
        self.units, self.layers_run, self.cut = units, layers_run, cut


class PointEvaluator:
    """Evaluate ``base + change`` points on an opened session.

    Parameters
    ----------
    session:
        An :class:`~weightlab._tf.session.EngineSession` or
        :class:`~weightlab._tf.passes.PassSession` with a held-out set.
    base:
        Canonical name -> values of every tensor the caller has edited
        (None: the file's values everywhere).
    versions:
        The base tensors' versions (``EditSession.edited_versions``), passed
        on to the session (see :meth:`EngineSession.evaluate`).
    frontier_budget:
        Bytes of frontier activations to hold for one target; a target whose
        frontier needs more is evaluated through the session.

    Raises
    ------
    EngineError
        When the session has no held-out set.
    """

    def __init__(
        self,
        session: Any,
        base: Mapping[str, np.ndarray] | None = None,
        *,
        versions: Mapping[str, int] | None = None,
        frontier_budget: int = FRONTIER_BUDGET,
    ) -> None:
        if not session.num_samples:
            raise EngineError("no held-out set: load one before evaluating")
        self.session = session
        self.originals = original_values(session)
        self.base = prepare_arrays(session.tmap, dict(base or {}))
        self.versions = dict(versions or {})
        self.frontier_budget = int(frontier_budget)
        self.agreement = Agreement()
        self.base_metrics: Metrics | None = None
        self._graph: _Graph | None = None
        self._suffix: _Suffix | None = None
        self._replaced: _Replaced | None = None
        self._recorded: dict[int, list[Any]] = {}  # frontier tensor id -> its activations per batch (base)
        self.suffix_points = 0  # points run from a frontier (statistics for tests and benchmarks)
        self.session_points = 0  # points run through session.evaluate
        self.unchanged_points = 0  # points whose change equals the base
        plan = getattr(session, "_plan", None)
        if isinstance(session, EngineSession) and plan is not None:
            self._graph = _Graph(session.model)

    # -- values ------------------------------------------------------------------------
    def current(self, name: str) -> np.ndarray:
        """The base value of tensor ``name`` (the caller's edit, or the file's value).

        Raises
        ------
        EngineError
            When the engine's model has no such tensor.
        """
        a = self.base.get(name)
        if a is not None:
            return a
        try:
            return self.originals[name]
        except KeyError:
            raise EngineError(f"the evaluated model has no tensor {name!r}") from None

    def array(self, name: str) -> np.ndarray:
        """:class:`~weightlab.core.edits.ArraySource`: the base value (read-only use)."""
        return self.current(name)

    def original(self, name: str) -> np.ndarray:
        """:class:`~weightlab.core.edits.ArraySource`: the file's value."""
        if name not in self.originals:
            raise EngineError(f"the evaluated model has no tensor {name!r}")
        return self.originals[name]

    def position(self, names: Iterable[str]) -> int:
        """Where the first tensor that depends on tensors ``names`` is, in the graph's topological order.

        Sweeps run targets from the output backwards by it. -1 when unknown
        (no analysable graph, a tensor the graph does not use).
        """
        if self._graph is None:
            return -1
        ops: set[int] = set()
        for n in names:
            var = self.session.tmap.variables.get(n)
            ops |= self._graph.owners.get(id(var), set()) if var is not None else set()
        found = self._graph.frontier_of_ops(ops) if ops else None
        return -1 if found is None else found[1]

    # -- evaluation ----------------------------------------------------------------------
    def baseline(
        self, *, progress: Callable[[int, int, int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Metrics:  # fmt: skip
        """Evaluate the base model (records the session's cuts and the outputs points are compared with).

        Raises
        ------
        EvaluationCancelled
            When ``should_stop()`` returned True.
        """
        captured: list[np.ndarray] = []
        m = self._session_pass({}, progress, should_stop, capture=captured)
        agree, change = self.agreement.compare(captured, is_baseline=True)
        self.base_metrics = replace(m, agreement=agree, mean_abs_change=change)
        return self.base_metrics

    def prepare(
        self,
        targets: Iterable[Iterable[str]],
        *,
        progress: Callable[[int, int, int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Metrics:
        """Evaluate the base model and, in the same pass, record the frontiers of ``targets``.

        Parameters
        ----------
        targets:
            For each target of a sweep, the tensors its points change.

        Returns
        -------
        Metrics
            The base model's metrics (as :meth:`baseline`).

        Notes
        -----
        When every target's frontier fits :attr:`frontier_budget` together,
        one pass from the inputs computes the output and every frontier
        tensor (the session's own cuts are not recorded), so no target needs
        a pass of its own to reach its frontier. Otherwise this is
        :meth:`baseline` (the session's cuts serve the targets one by one).
        """
        g, s = self._graph, self.session
        if g is None or s._batches is None:
            return self.baseline(progress=progress, should_stop=should_stop)
        wanted: dict[int, Any] = {}
        for names in targets:
            ops: set[int] = set()
            for n in names:
                var = s.tmap.variables.get(n)
                owners = None if var is None else g.owners.get(id(var))
                if not owners:
                    return self.baseline(progress=progress, should_stop=should_stop)
                ops |= owners
            found = g.frontier_of_ops(ops)
            if found is not None:
                wanted.update((id(t), t) for t in found[0] if t is not g.source)
        tensors = sorted(wanted.values(), key=lambda t: g.pos[id(t)])
        rows = s.batch_size * len(s._batches)
        need = _rows_bytes(tensors, rows)
        if not tensors or need < 0 or need > self.frontier_budget:
            return self.baseline(progress=progress, should_stop=should_stop)
        t0 = time.perf_counter()
        s._assign(self.base, self.versions)
        model = keras.Model(inputs=g.source, outputs=[*tensors, s.model.outputs[0]])
        fn = _compile(model, s.jit_compile)
        kept: list[list[Any]] = [[] for _ in tensors]
        scorer = PassScorer(s._y, s.num_classes, s.num_samples)
        total = len(s._batches)
        for b, xb in enumerate(s._batches):
            if should_stop is not None and should_stop():
                raise EvaluationCancelled()
            recs, out, class_scores, is_logits = fn(xb)
            for k, t in zip(kept, recs):
                k.append(t)
            scorer.add([out.numpy()], class_scores.numpy(), bool(is_logits))
            if progress is not None:
                progress(b + 1, total, scorer.samples, scorer.hits)
        layers = len(s._plan.node_positions)
        self.base_metrics = scorer.metrics(
            self.agreement,
            is_baseline=True,
            outputs=s.output_names,
            seconds=time.perf_counter() - t0,
            device=device_name(),
            mode="full",
            layers_run=layers,
            layers_total=layers,
            batch_size=s.batch_size,
        )
        self._recorded = {id(t): k for t, k in zip(tensors, kept)}
        return self.base_metrics

    def _session_pass(
        self,
        changes: Mapping[str, np.ndarray],
        progress: Callable[[int, int, int, int], None] | None,
        should_stop: Callable[[], bool] | None,
        *,
        agreement: Agreement | None = None,
        capture: list[np.ndarray] | None = None,
    ) -> Metrics:
        """A pass through the session itself with ``base + changes``.

        ``agreement``: compare the outputs with it instead of the session's own
        (which compares with the unedited file); ``capture``: append the outputs.
        """
        s = self.session
        edited = {**self.base, **changes}
        versions = {k: v for k, v in self.versions.items() if k not in changes}
        own = s._agreement
        target = own if agreement is None else agreement

        class _Through(Agreement):
            def compare(self, outputs, *, is_baseline):
                if capture is not None:
                    capture.extend(np.array(o, copy=True) for o in outputs)
                return target.compare(outputs, is_baseline=is_baseline and agreement is None)

        s._agreement = _Through()
        try:
            return s.evaluate(edited, versions=versions, progress=progress, should_stop=should_stop)
        finally:
            s._agreement = own

    def evaluate(
        self,
        changes: Mapping[str, np.ndarray],
        *,
        progress: Callable[[int, int, int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Metrics:
        """Metrics of the model holding ``base`` with ``changes`` on top.

        Parameters
        ----------
        changes:
            Canonical name -> new values (shape and dtype kind as stored) of
            the tensors this point changes.
        progress, should_stop:
            As for :meth:`EngineSession.evaluate`.

        Returns
        -------
        Metrics
            ``agreement`` with the base model; ``mode`` is ``"suffix"`` (a
            pass from the target's frontier; ``cut`` names the latest layer
            of the frontier), ``"unchanged"`` (no tensor differs from the
            base: the base metrics) or the session's mode.

        Raises
        ------
        EngineError
            When a tensor is unknown or has the wrong shape or dtype.
        EvaluationCancelled
            When ``should_stop()`` returned True.
        """
        if self.base_metrics is None:
            self.baseline(should_stop=should_stop)
        assert self.base_metrics is not None
        t0 = time.perf_counter()
        ready = prepare_arrays(self.session.tmap, dict(changes))
        ready = {
            n: a for n, a in ready.items()
            if not (a.dtype == self.current(n).dtype and np.array_equal(a, self.current(n), equal_nan=False))
        }  # fmt: skip
        if not ready:
            self.unchanged_points += 1
            return replace(self.base_metrics, mode="unchanged", seconds=time.perf_counter() - t0)
        suffix = self._suffix_for(frozenset(ready), should_stop)
        if suffix is None:
            self.session_points += 1
            m = self._session_pass(ready, progress, should_stop, agreement=self.agreement)
        else:
            self.suffix_points += 1
            m = self._suffix_pass(suffix, ready, progress, should_stop)
        return replace(m, seconds=time.perf_counter() - t0)

    # -- suffix passes ---------------------------------------------------------------------
    def _suffix_for(self, names: frozenset[str], should_stop) -> _Suffix | None:
        """The suffix pass for changes of tensors ``names``: reused while the frontier stays the same."""
        if self._graph is None:
            return None
        if self._suffix is not None and self._suffix.names == names:
            return self._suffix
        s: EngineSession = self.session
        g = self._graph
        ops: set[int] = set()
        for n in names:
            owners = g.owners.get(id(s.tmap.variables[n]))
            if not owners:
                return None
            ops |= owners
        found = g.frontier_of_ops(ops)
        if found is None:
            return None
        front, first, affected = found
        key = tuple(id(t) for t in front)
        if self._suffix is not None and self._suffix.key == key and self._suffix.first == first:
            # Another set of tensors with the same frontier (a together sweep where a value leaves some
            # tensors unchanged): same activations, same pass.
            self._suffix.names = names
            return self._suffix
        self._suffix = None  # one target's activations at a time
        batches = self._frontier_batches(front, first, affected, should_stop)
        if batches is None:
            return None
        model = keras.Model(inputs=front if len(front) > 1 else front[0], outputs=s.model.outputs[0])
        self._suffix = _Suffix(names, batches, _compile(model, s.jit_compile), *self._where(front, first))
        self._suffix.key, self._suffix.first = key, first
        return self._suffix

    def _where(self, front: list[Any], first: int) -> tuple[int, str]:
        """``(layer calls run from the frontier, the name of the latest frontier layer)``."""
        assert self._graph is not None
        g = self._graph
        op = g.op[id(front[-1])]
        return sum(1 for t in g.order[first:] if g.op[id(t)] is not None), "input" if op is None else str(op.name)

    def _frontier_batches(
        self, front: list[Any], first: int, affected: set[int], should_stop
    ) -> list[list[Any]] | None:
        """The frontier's activations on the held-out set, batch by batch, for the base weights.

        Computed from the latest valid cached cut of the session that does not
        depend on the changed tensors (or from the inputs). One batch holding
        every row when a pass from the frontier fits the activation budget.
        None when they exceed :attr:`frontier_budget`.
        """
        s: EngineSession = self.session
        g = self._graph
        assert g is not None and s._batches is not None
        rows = s.batch_size * len(s._batches)
        need_bytes = _rows_bytes(front, rows)
        if need_bytes < 0 or need_bytes > self.frontier_budget:
            return None
        s._assign(self.base, self.versions)  # a session pass may have left a point's values
        if all(t is g.source or id(t) in self._recorded for t in front):
            source = s._batches
            batches = [
                [source[b] if t is g.source else self._recorded[id(t)][b] for t in front] for b in range(len(source))
            ]
            return self._grouped(batches, first)
        start = None
        for cut in reversed(s._stored):
            ck = s._checkpoints.get(cut.position)
            if ck is not None and id(cut.tensor) not in affected and ck.state == s._state(cut):
                start = cut
                break
        source_tensor = g.source if start is None else start.tensor
        source = s._batches if start is None else s._checkpoints[start.position].batches
        need = [t for t in front if t is not source_tensor]
        if need:
            prefix = keras.Model(inputs=source_tensor, outputs=need)
            pfn = tf.function(lambda x: prefix(x, training=False), jit_compile=s.jit_compile, reduce_retracing=True)
        batches: list[list[Any]] = []
        for xb in source:
            if should_stop is not None and should_stop():
                raise EvaluationCancelled()
            got = pfn(xb) if need else []
            it = iter(list(got) if isinstance(got, list | tuple) else [got])
            batches.append([xb if t is source_tensor else next(it) for t in front])
        return self._grouped(batches, first)

    def _grouped(self, batches: list[list[Any]], first: int) -> list[list[Any]]:
        """Fewer, larger calls where the suffix is small (late layers): as many batches per call as fit
        the activation budget (every row at once when the whole set fits), in calls of equal size."""
        s: EngineSession = self.session
        g = self._graph
        assert g is not None
        suffix_bytes = _rows_bytes(g.order[first:], 1)
        n = len(batches)
        group = n if suffix_bytes <= 0 else ACTIVATION_BUDGET[s._kind] // (suffix_bytes * s.batch_size)
        group = max(1, min(n, int(group)))
        while n % group:  # equal calls: one trace of the suffix
            group -= 1
        if group * s.batch_size < MIN_CALL_ROWS:  # at least MIN_CALL_ROWS rows per call: the next divisor up
            group = next((k for k in range(group, n + 1) if n % k == 0 and k * s.batch_size >= MIN_CALL_ROWS), n)
        if group > 1:
            batches = [
                [tf.concat([b[i] for b in batches[lo : lo + group]], axis=0) for i in range(len(batches[0]))]
                for lo in range(0, len(batches), group)
            ]
        return batches

    # -- replaced activations (mean ablation) ------------------------------------------------
    def _activations_for(self, layer: str, should_stop) -> _Replaced:
        if self._replaced is not None and self._replaced.layer == layer:
            return self._replaced
        self._replaced = None
        if self._graph is None:
            raise EngineError(
                "replacing a unit's output needs a Keras model with one input and one output "
                f"evaluated incrementally ({getattr(self.session, 'plan_problem', None) or 'not this model'})"
            )
        s: EngineSession = self.session
        g = self._graph
        tensor = g.layer_output(layer)
        found = g.frontier_after(tensor)
        if found is None:  # pragma: no cover - every layer output of the graph reaches the output
            raise EngineError(f"the output of layer {layer!r} does not reach the model's output")
        front, first, affected = found
        batches = self._frontier_batches(front, first, affected, should_stop)
        if batches is None:
            raise EngineError(
                f"the activations after layer {layer!r} need more than {self.frontier_budget >> 20} MiB"
            )
        idx = next(i for i, t in enumerate(front) if t is tensor)
        n = s.num_samples
        acts = np.concatenate([b[idx].numpy() for b in batches])[:n]
        means = acts.reshape(-1, acts.shape[-1]).astype(np.float64).mean(axis=0)
        model = keras.Model(inputs=front if len(front) > 1 else front[0], outputs=s.model.outputs[0])
        inner = _compile(model, s.jit_compile)

        @tf.function(reduce_retracing=True)
        def fn(xs, mask, value):
            xs = list(xs)
            xs[idx] = tf.where(mask, tf.cast(value, xs[idx].dtype), xs[idx])
            return inner(xs if len(xs) > 1 else xs[0])

        layers_run, cut = self._where(front, first)
        self._replaced = _Replaced(layer, batches, fn, means, int(acts.shape[-1]), layers_run, cut)
        return self._replaced

    def unit_means(self, layer: str, *, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Mean of each output unit of ``layer`` over the held-out set, base weights.

        Returns
        -------
        ``float64`` array ``(units,)``: the layer's output averaged over the
        samples and, for convolutions, every position (all axes but the last).

        Raises
        ------
        EngineError
            When the model has no analysable graph, the layer is not a layer
            of it (nested) or is called more than once.
        """
        return self._activations_for(layer, should_stop).means.copy()

    def evaluate_replaced(
        self,
        layer: str,
        units: int | Iterable[int],
        values: float | Iterable[float] | None = None,
        *,
        progress: Callable[[int, int, int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Metrics:
        """Metrics of the base model with output units of ``layer`` replaced by constants.

        The layer's output activations (after its activation function) are
        computed once per layer; for each call the channels of ``units`` are
        set to ``values`` everywhere (every sample and position; default: each
        unit's mean, :meth:`unit_means`) and the rest of the model runs from
        there. A BatchNormalization after the layer normalises the constant
        as it would the mean.

        Parameters
        ----------
        layer:
            The layer's name.
        units:
            One unit index or several (indices on the output's last axis).
        values:
            One value for all, one per unit, or None for the units' means.

        Raises
        ------
        EngineError
            As :meth:`unit_means`, or when a unit is outside the layer's units.
        EvaluationCancelled
            When ``should_stop()`` returned True.
        """
        if self.base_metrics is None:
            self.baseline(should_stop=should_stop)
        t0 = time.perf_counter()
        r = self._activations_for(layer, should_stop)
        idx = np.atleast_1d(np.asarray(units, dtype=np.int64))
        bad = idx[(idx < 0) | (idx >= r.units)]
        if bad.size:
            raise EngineError(f"layer {layer!r} has {r.units} output units; got unit {int(bad[0])}")
        s: EngineSession = self.session
        full = r.means.copy()
        if values is not None:
            full[idx] = np.broadcast_to(np.asarray(values, dtype=np.float64), idx.shape)
        mask_np = np.zeros(r.units, dtype=bool)
        mask_np[idx] = True
        mask = tf.constant(mask_np)
        val = tf.constant(full, tf.float64)
        scorer = PassScorer(s._y, s.num_classes, s.num_samples)
        total = len(r.batches)
        for b, xb in enumerate(r.batches):
            if should_stop is not None and should_stop():
                raise EvaluationCancelled()
            _, out, class_scores, is_logits = r.fn(xb, mask, val)
            scorer.add([out.numpy()], class_scores.numpy(), bool(is_logits))
            if progress is not None:
                progress(b + 1, total, scorer.samples, scorer.hits)
        self.suffix_points += 1
        return scorer.metrics(
            self.agreement,
            is_baseline=False,
            outputs=s.output_names,
            seconds=time.perf_counter() - t0,
            device=device_name(),
            mode="suffix",
            cut=r.cut,
            layers_run=r.layers_run,
            layers_total=len(s._plan.node_positions),
            batch_size=s.batch_size,
        )

    def _suffix_pass(self, suffix: _Suffix, ready, progress, should_stop) -> Metrics:
        s: EngineSession = self.session
        variables = s.tmap.variables
        scorer = PassScorer(s._y, s.num_classes, s.num_samples)
        total = len(suffix.batches)
        try:
            for name, a in ready.items():
                variables[name].assign(a)
            for b, xb in enumerate(suffix.batches):
                if should_stop is not None and should_stop():
                    raise EvaluationCancelled()
                _, out, class_scores, is_logits = suffix.fn(xb if len(xb) > 1 else xb[0])
                scorer.add([out.numpy()], class_scores.numpy(), bool(is_logits))
                if progress is not None:
                    progress(b + 1, total, scorer.samples, scorer.hits)
        finally:
            for name in ready:
                variables[name].assign(self.current(name))
        plan = s._plan
        return scorer.metrics(
            self.agreement,
            is_baseline=False,
            outputs=s.output_names,
            device=device_name(),
            mode="suffix",
            cut=suffix.cut,
            layers_run=suffix.layers_run,
            layers_total=len(plan.node_positions) if plan is not None else 0,
            batch_size=s.batch_size,
        )

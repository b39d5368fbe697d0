"""Sweeps over several worker processes: shards, the child side, and the merge.

A sweep's points are independent given the base weights, so they can run in
separate processes, each with its own opened model. :func:`run_parallel`
splits a sweep into *shards*, runs them in ``workers`` local child processes
(:class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start
method) and merges their points into the :class:`~weightlab.core.sweeps.SweepResult`
the one-process :func:`~weightlab._tf.sweep.run_sweep` returns: the same
points in the same order, the same notes and early stops, accuracies equal to
floating-point noise. :mod:`weightlab._tf.cluster` runs the same shards on Ray.

Shards
------
Shards keep cached activations useful (see :mod:`weightlab._tf.points`):

* mode ``"each"``: one shard per target, holding every value of that target,
  so the activations entering the target are computed once in the worker
  that runs it, and the early stop per target works as in one process;
* mode ``"together"`` with explicit values (``values`` or ``value_range``):
  ``workers`` contiguous chunks of the values, weakest first. With a budget,
  the merge keeps the points up to the first one past the budget, as one
  process would have stopped there (the later chunks' points are measured
  but dropped);
* mode ``"together"``, adaptive: one shard (refinement is sequential: each
  batch of values depends on the points before it); it runs in one worker.

Each shard is a :class:`~weightlab.core.sweeps.SweepSpec` restricted to its
targets (``targets=(name,)``) or values (``values=chunk``), run with
:func:`~weightlab._tf.sweep.run_sweep` by a :class:`ShardRunner`: the model
and held-out set opened once per worker, with the same options
(``batch_size``, ``trust``, ``cache_budget``...) and the same edited base.
A worker evaluates the base model once, recording the frontier activations
of every target of the sweep in the same pass (:meth:`PointEvaluator.prepare`),
and then serves all of its shards from them: ``workers`` base passes in all
instead of one, and each worker holds the frontier activations one process
would hold.

Progress, cancel, resume
------------------------
Workers send each measured point to the parent through a queue as it is
measured; the parent reports it through ``progress`` and appends it to the
:class:`~weightlab.core.sweeps.SweepLog` (the parent alone writes the log).
``should_stop`` is polled by the parent; True sets an event the workers poll
between batches, cancels the shards not started, keeps the points of the
running ones (they return what they measured) and shuts the pool down
(children still running after :data:`STOP_GRACE_S` are terminated). A sweep resumed
on a log dispatches only the shards the log does not complete, and a shard
measures only the points the log lacks: the log's points are replayed by
:func:`~weightlab._tf.sweep.run_sweep` itself (same order, same early stops)
without evaluating anything.

Child processes are quiet (their descriptors 1 and 2 go to the null device
unless ``WEIGHTLAB_DEBUG`` is set) and import neither Qt nor Ray. Errors a
user can cause come back as the same :class:`~weightlab.core.errors.WeightLabError`.

This module imports TensorFlow only inside the functions a worker runs, so a
``spawn``-ed child can silence its output before TensorFlow starts.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import math
import multiprocessing
import os
import queue as queue_mod
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import EngineError, WeightLabError
from ..core.sweeps import SweepLog, SweepPoint, SweepResult, SweepSpec, past_budget
from ..engine.quiet import is_verbose, quiet_libraries

__all__ = [
    "Shard", "ShardRunner", "SweepLayout", "default_workers", "merge", "run_parallel", "shard_bound", "shards_of",
]

#: ``progress(fraction or None, message, point or None)`` (as :data:`weightlab._tf.sweep.ProgressFn`).
ProgressFn = Callable[[float | None, str, SweepPoint | None], None]

#: Seconds a child may take to stop after a cancel before it is terminated.
STOP_GRACE_S = 10.0
#: Seconds between two looks at ``should_stop`` while waiting for workers.
POLL_S = 0.05


def default_workers() -> int:
    """The number of worker processes when none is given: the machine's cores (at least 1)."""
    return max(1, os.cpu_count() or 1)


# -- shards -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """One unit of work: ``spec`` restricted to some targets or values.

    Attributes
    ----------
    index:
        Position of the shard in the merge order.
    spec:
        The restricted sweep (``targets=(name,)`` or ``values=chunk``).
    targets:
        The :attr:`SweepTarget.name` of the points it measures.
    cost:
        A relative estimate of its time (larger first when dispatching).
    """

    index: int
    spec: SweepSpec
    targets: tuple[str, ...]
    cost: float = 1.0


@dataclass(frozen=True)
class SweepLayout:
    """What a worker found out about a sweep before any point runs (:meth:`ShardRunner.layout`).

    Attributes
    ----------
    targets:
        ``(name, note)`` of every target, in the order one process runs them.
    shards:
        The shards, in merge order.
    done:
        ``{shard index: result}`` for shards the log completes (not dispatched).
    changed:
        Canonical names of every tensor the sweep's points change (what a
        worker records frontiers for), or None when some target cannot say.
    """

    targets: tuple[tuple[str, str], ...]
    shards: tuple[Shard, ...]
    done: dict[int, SweepResult]
    changed: tuple[tuple[str, ...], ...] | None


def shards_of(spec: SweepSpec, ordered: Sequence[tuple[str, int]], workers: int) -> list[Shard]:
    """Split ``spec`` into shards (see the module docstring).

    Parameters
    ----------
    spec:
        The sweep.
    ordered:
        ``(target name, graph position)`` of its targets in run order
        (position -1 when unknown).
    workers:
        Worker processes; the number of value chunks of a together sweep.

    Returns
    -------
    list of Shard
        In merge order; costs favour the targets nearest the input (longest
        suffix passes).
    """
    if spec.mode == "each":
        top = max([p for _, p in ordered] + [0]) + 1
        return [
            Shard(i, dataclasses.replace(spec, targets=(name,)), (name,), float(top - pos if pos >= 0 else top))
            for i, (name, pos) in enumerate(ordered)
        ]
    (name, _), = ordered
    if spec.adaptive is not None:
        return [Shard(0, spec, (name,))]
    values = spec.initial_values()
    n = max(1, min(workers, len(values)))
    size = math.ceil(len(values) / n)
    chunks = [values[i : i + size] for i in range(0, len(values), size)]
    return [
        Shard(i, dataclasses.replace(spec, values=tuple(chunk), value_range=None), (name,), float(len(chunk)))
        for i, chunk in enumerate(chunks)
    ]


def shard_bound(model_path: str | os.PathLike[str], spec: SweepSpec, workers: int) -> int:
    """At most ``workers``, and no more processes than ``spec`` has shards where that is cheap to know.

    Together sweeps: their values (1 when adaptive). Each sweeps of a Keras
    ``.keras``/``.h5`` file: its targets, read from the file's stored
    architecture (:func:`weightlab.formats.open_model`, no TensorFlow); other
    formats: ``workers``.
    """
    if spec.mode == "together":
        return 1 if spec.adaptive is not None else max(1, min(workers, len(spec.initial_values())))
    from pathlib import Path

    from ..core.sweeps import sweep_targets
    from ..formats import open_model

    p = Path(model_path)
    if workers == 1 or not (p.is_file() and p.suffix.lower() in (".keras", ".h5")):
        return workers
    try:
        model = open_model(p)
    except WeightLabError:  # the workers report it
        return workers
    try:
        return max(1, min(workers, len(sweep_targets(spec, model))))
    except WeightLabError:
        return workers
    finally:
        model.close()


def merge(
    spec: SweepSpec,
    layout: SweepLayout,
    results: Mapping[int, SweepResult],
    baseline: SweepPoint,
) -> SweepResult:
    """The one-process result of ``spec`` from its shards' results.

    A shard missing from ``results`` (cancelled) or incomplete makes the
    merged result incomplete; its points so far are kept.
    """
    merged = SweepResult(spec, baseline, notes={name: note for name, note in layout.targets if note})
    complete = True
    chunked = spec.mode == "together" and spec.adaptive is None and spec.budget_pp is not None
    for shard in layout.shards:
        r = results.get(shard.index)
        if r is None:
            complete = False
            continue
        complete = complete and r.complete
        if not chunked:
            merged.points.extend(r.points)
            merged.stopped.update(r.stopped)
            continue
        # Value chunks: one process stops at the first point past the budget, so do we (the later
        # chunks' points are dropped, and so is an incomplete later chunk's incompleteness).
        for p in r.points:
            merged.points.append(p)
            if past_budget(baseline, p, spec.budget_pp, spec.metric):
                assert p.value is not None
                merged.stopped[p.target] = float(p.value)
                merged.complete = complete
                return merged
        if not r.complete:
            break
    merged.complete = complete
    return merged


# -- the worker side --------------------------------------------------------------------------


class _LogView:
    """A :class:`SweepLog` stand-in for one shard: the parent's logged points, nothing written.

    :func:`run_sweep` takes the points it holds as measured; new points
    reach the parent through the progress callback.
    """

    def __init__(self, spec: SweepSpec, points: Sequence[SweepPoint], baseline: SweepPoint | None) -> None:
        self.spec = spec
        self.path = "<parent's log>"
        self.points = list(points)
        self.baseline = baseline

    def set_baseline(self, baseline: SweepPoint) -> None:
        pass

    def append(self, point: SweepPoint) -> None:
        pass


class _Unmeasured(Exception):
    """Replaying a log reached a point the log lacks."""


class ShardRunner:
    """One worker's opened model: lays a sweep out and runs its shards.

    The model and held-out set are opened once (:func:`weightlab._tf.passes.open_session`
    with ``trust`` and ``options``), with ``edited`` as the base of every
    point; the first shard evaluates the base and records the frontiers of
    every target of the sweep (``changed``), later shards reuse them.

    Parameters
    ----------
    model_path, data_path, edited, trust, options:
        As for :func:`weightlab._tf.headless.sweep`.

    Raises
    ------
    EngineError, DataError, FormatError
        When the model or held-out set cannot be opened.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        data_path: str | os.PathLike[str],
        edited: Mapping[str, np.ndarray] | None,
        trust: bool,
        options: Mapping[str, Any],
    ) -> None:
        from .passes import open_session
        from .points import PointEvaluator
        from .runtime import run_errors
        from .sweep import engine_model_file

        self.model_path = model_path
        with run_errors(model_path):
            session = open_session(model_path, data_path, trust=trust, **dict(options))
            self.evaluator = PointEvaluator(session, edited)
            self.model = engine_model_file(session, model_path, self.evaluator.originals)
        self._prepared = False

    def close(self) -> None:
        """Close the model file."""
        self.model.close()

    def layout(
        self, spec: SweepSpec, workers: int, logged: Sequence[SweepPoint] = (), baseline: SweepPoint | None = None
    ) -> SweepLayout:
        """Order ``spec``'s targets as one process would, split it into shards, replay the log.

        Parameters
        ----------
        spec:
            The sweep.
        workers:
            Worker processes (chunks of a together sweep).
        logged, baseline:
            Points and baseline of the sweep's log (resume).

        Raises
        ------
        RecipeError
            When a target or value does not fit the model.
        """
        from ..core.sweeps import sweep_targets
        from .runtime import run_errors
        from .sweep import _changed, order_targets

        with run_errors(self.model_path):
            ev, model = self.evaluator, self.model
            targets = order_targets(ev, spec, sweep_targets(spec, model), model)
            changed = [_changed(spec, t, model) for t in targets]
            ordered = [(t.name, ev.position(c) if c is not None else -1) for t, c in zip(targets, changed)]
            shards = shards_of(spec, ordered, workers)
            done: dict[int, SweepResult] = {}
            if baseline is not None:
                for shard in shards:
                    replayed = self._replay(shard, logged, baseline)
                    if replayed is not None:
                        done[shard.index] = replayed
        return SweepLayout(
            targets=tuple((t.name, t.note) for t in targets),
            shards=tuple(shards),
            done=done,
            changed=None if any(c is None for c in changed) else tuple(tuple(c) for c in changed if c is not None),
        )

    def _replay(self, shard: Shard, logged: Sequence[SweepPoint], baseline: SweepPoint) -> SweepResult | None:
        """The shard's result from the log alone, or None when it needs a point the log lacks."""
        from .sweep import run_sweep

        view = _LogView(shard.spec, [p for p in logged if p.target in shard.targets], baseline)
        try:
            return run_sweep(_Replay(self.evaluator, baseline), self.model, shard.spec, log=view)  # type: ignore[arg-type]
        except _Unmeasured:
            return None

    def run(
        self,
        shard: Shard,
        changed: Sequence[Sequence[str]] | None,
        logged: Sequence[SweepPoint] = (),
        *,
        progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> SweepResult:
        """Measure ``shard`` (:func:`run_sweep` on its restricted spec; cancel gives a partial result).

        Parameters
        ----------
        shard:
            What to measure.
        changed:
            :attr:`SweepLayout.changed`: the first shard records every
            target's frontier in its base pass.
        logged:
            Points of the log (not measured again).
        progress, should_stop:
            As for :func:`run_sweep`.

        Raises
        ------
        RecipeError, EngineError
            As :func:`run_sweep`.
        """
        from .runtime import EvaluationCancelled, run_errors
        from .sweep import run_sweep

        with run_errors(self.model_path):
            if not self._prepared:
                try:
                    if changed is not None:
                        self.evaluator.prepare(changed, should_stop=should_stop)
                    else:
                        self.evaluator.baseline(should_stop=should_stop)
                except EvaluationCancelled:  # stopped before the base pass ended: nothing measured
                    return SweepResult(shard.spec, SweepPoint("", None, None, None), complete=False)
                self._prepared = True
            view = _LogView(shard.spec, [p for p in logged if p.target in shard.targets], None)
            return run_sweep(
                _Prepared(self.evaluator), self.model, shard.spec,  # type: ignore[arg-type]
                progress=progress, should_stop=should_stop, log=view, partial_on_cancel=True,
            )  # fmt: skip


class _Prepared:
    """The worker's evaluator whose base pass has run: :meth:`prepare` and :meth:`baseline` return it."""

    def __init__(self, evaluator: Any) -> None:
        self._ev = evaluator

    def prepare(self, targets: Any, **kw: Any) -> Any:
        return self._ev.base_metrics

    def baseline(self, **kw: Any) -> Any:
        return self._ev.base_metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ev, name)


class _Replay(_Prepared):
    """An evaluator that knows only the log: the logged baseline; any evaluation raises :class:`_Unmeasured`."""

    def __init__(self, evaluator: Any, baseline: SweepPoint) -> None:
        super().__init__(evaluator)
        self._baseline = baseline

    def prepare(self, targets: Any, **kw: Any) -> Any:
        return self._baseline

    def baseline(self, **kw: Any) -> Any:
        return self._baseline

    def evaluate(self, changes: Any, **kw: Any) -> Any:
        raise _Unmeasured()


# -- local worker processes --------------------------------------------------------------------

_child: dict[str, Any] = {}


def _silence_child() -> None:
    """In a worker process: descriptors 1 and 2 to the null device (unless verbose), quiet loggers."""
    quiet_libraries()
    if is_verbose() or os.name != "posix":
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _child_init(
    model_path: str, data_path: str, edited: Mapping[str, np.ndarray] | None, trust: bool,
    options: Mapping[str, Any], points: Any, stop: Any,
) -> None:  # fmt: skip
    """Pool initializer: open the model once; an error is kept and raised by every task."""
    _silence_child()
    _child["points"], _child["stop"] = points, stop
    try:
        _child["runner"] = ShardRunner(model_path, data_path, edited, trust, options)
    except WeightLabError as e:
        _child["error"] = e
    except Exception as e:  # noqa: BLE001 - any failure to open: reported by the tasks as an EngineError
        _child["error"] = EngineError(f"a sweep worker could not open the model: {type(e).__name__}: {e}", model_path)


def _runner() -> ShardRunner:
    err = _child.get("error")
    if err is not None:
        raise err
    return _child["runner"]  # type: ignore[no-any-return]


def _child_layout(spec: SweepSpec, workers: int, logged: list[SweepPoint], baseline: SweepPoint | None
                  ) -> tuple[SweepLayout, dict[str, Any]]:  # fmt: skip
    """Task: :meth:`ShardRunner.layout`, with facts about the worker process (for tests)."""
    facts = {
        "pid": os.getpid(),
        "qt": any(m.startswith("PySide6") for m in sys.modules),
        "ray": "ray" in sys.modules,
        "stderr": os.path.realpath("/proc/self/fd/2") if os.path.exists("/proc/self/fd/2") else None,
    }
    return _runner().layout(spec, workers, logged, baseline), facts


def _child_ready() -> None:
    """Task: nothing (its submission starts a worker, whose initializer opens the model)."""
    _runner()


def _child_run(shard: Shard, changed: Any, logged: list[SweepPoint]) -> SweepResult:
    """Task: :meth:`ShardRunner.run`, each point put on the parent's queue as it is measured."""
    points, stop = _child["points"], _child["stop"]

    def progress(fraction: float | None, message: str, point: SweepPoint | None) -> None:
        if point is not None:
            points.put((shard.index, point.to_dict()))

    return _runner().run(shard, changed, logged, progress=progress, should_stop=stop.is_set)


class _Reporter:
    """The parent's side of streamed points: progress, the log, each point once."""

    def __init__(self, spec: SweepSpec, layout: SweepLayout | None, progress: ProgressFn | None,
                 log: SweepLog | None) -> None:  # fmt: skip
        self.spec, self.progress, self.log = spec, progress, log
        self.seen: set[tuple[str, float]] = set() if log is None else set(log.done())
        self.planned: int | None = None
        self.done = len(self.seen)  # logged points count as done (one process reports them again)
        if layout is not None:
            self.set_layout(layout)

    def set_layout(self, layout: SweepLayout) -> None:
        if self.spec.adaptive is None:
            self.planned = len(layout.targets) * len(self.spec.initial_values())

    def point(self, point: SweepPoint) -> None:
        assert point.value is not None
        key = (point.target, float(point.value))
        if key in self.seen:
            return
        self.seen.add(key)
        if self.log is not None:
            self.log.append(point)
        self.done += 1
        if self.progress is not None:
            frac = None if self.planned is None else min(1.0, self.done / max(self.planned, 1))
            self.progress(frac, f"{point.target} at {self.spec.param} = {point.value:g}", point)

    def result(self, result: SweepResult) -> None:
        for p in result.points:
            self.point(p)


def run_parallel(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    spec: SweepSpec,
    *,
    workers: int,
    edited: Mapping[str, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: SweepLog | None = None,
    trust: bool = False,
    options: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run ``spec`` in ``workers`` local child processes (see the module docstring).

    Parameters
    ----------
    model_path, data_path:
        The model and its held-out ``.npz``.
    spec:
        The sweep.
    workers:
        Child processes (>= 1; no more than the sweep has shards where
        :func:`shard_bound` can tell). All start at once: while the first
        lays the sweep out, the others open the model.
    edited:
        Canonical name -> values of tensors already edited (the base of
        every point); sent to every child once, when it starts.
    progress:
        ``progress(fraction, message, point)`` in the caller's thread, once
        per measured point (in the order points arrive, not the merge order).
    should_stop:
        Polled every :data:`POLL_S` seconds; True stops the workers and
        returns the points so far (``complete`` False).
    log:
        The resumable log (written by this process only).
    trust, options:
        As for :func:`weightlab._tf.headless.sweep`.

    Returns
    -------
    SweepResult
        Equal to the one-process result.

    Raises
    ------
    WeightLabError
        A child's error, with its message (RecipeError for a target or value
        that does not fit, EngineError, DataError, FormatError).
    EngineError
        When a worker process dies.
    """
    from .runtime import EvaluationCancelled

    if log is not None and log.spec.spec_hash() != spec.spec_hash():
        raise EngineError(f"the sweep log {log.path} is of another sweep")
    workers = shard_bound(model_path, spec, max(1, int(workers)))
    ctx = multiprocessing.get_context("spawn")
    points_q = ctx.Queue()
    stop = ctx.Event()
    logged = [] if log is None else list(log.points)
    logged_base = None if log is None else log.baseline
    reporter = _Reporter(spec, None, progress, log)
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_child_init,
        initargs=(os.fspath(model_path), os.fspath(data_path), edited, trust, dict(options or {}), points_q, stop),
    )
    results: dict[int, SweepResult] = {}
    baseline = logged_base
    cancelled = False
    try:
        layout_f = _submit(pool, _child_layout, spec, workers, logged, logged_base)
        for _ in range(int(workers) - 1):  # start the other workers now: they open the model meanwhile
            _submit(pool, _child_ready)
        try:
            layout, _ = _wait_one(layout_f, should_stop)
        except EvaluationCancelled:
            return SweepResult(spec, logged_base or SweepPoint("", None, None, None), complete=False)
        reporter.set_layout(layout)
        results.update(layout.done)
        todo = sorted((s for s in layout.shards if s.index not in results), key=lambda s: (-s.cost, s.index))
        futures = {_submit(pool, _child_run, s, layout.changed, logged): s for s in todo}
        pending = set(futures)
        deadline = math.inf
        while pending and time.monotonic() < deadline:
            if not cancelled and should_stop is not None and should_stop():
                # Running shards stop at their next batch and return their points so far.
                cancelled = True
                stop.set()
                for f in pending:
                    f.cancel()
                deadline = time.monotonic() + STOP_GRACE_S
            done, pending = cf.wait(pending, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
            # A stop asked while points pour in is seen at the next point, not after the queue is empty.
            _drain(points_q, reporter, None if cancelled else should_stop)
            for f in done:
                if f.cancelled():
                    continue
                try:
                    r = f.result()
                except EvaluationCancelled:  # pragma: no cover - a shard stops with a partial result
                    continue
                results[futures[f].index] = r
                if baseline is None and r.baseline.num_samples:  # a shard stopped early has none
                    baseline = r.baseline
                    if log is not None:
                        log.set_baseline(baseline)
                reporter.result(r)
        merged = merge(spec, layout, results, baseline or SweepPoint("", None, None, None))
        if cancelled:
            merged.complete = False
        return merged
    except BrokenProcessPool as e:
        raise EngineError(f"a sweep worker process died ({e})", model_path) from None
    finally:
        _close(pool, stop, points_q, reporter)


def _submit(pool: cf.ProcessPoolExecutor, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
    from ..engine.spawn import _caller_main_hidden

    with _caller_main_hidden(), _sigint_ignored():  # the pool starts its children in submit
        return pool.submit(fn, *args)


@contextlib.contextmanager
def _sigint_ignored() -> Any:
    """Children started in here ignore SIGINT (SIG_IGN survives exec, and Python keeps it): a terminal's
    Ctrl+C reaches the whole process group, and only the parent decides (``should_stop``, the stop event),
    so the sweep ends with its points instead of a worker's KeyboardInterrupt. Main thread only."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _wait_one(f: cf.Future[Any], should_stop: Callable[[], bool] | None) -> Any:
    from .runtime import EvaluationCancelled

    while True:
        try:
            return f.result(timeout=POLL_S)
        except cf.TimeoutError:
            if should_stop is not None and should_stop():
                raise EvaluationCancelled() from None


def _drain(points_q: Any, reporter: _Reporter | None, should_stop: Callable[[], bool] | None = None) -> None:
    """Report the queued points; with ``should_stop``, return as soon as it says stop (points stay queued)."""
    while True:
        try:
            _, d = points_q.get_nowait()
        except queue_mod.Empty:
            return
        except (OSError, ValueError):  # the queue is closed
            return
        if reporter is not None:
            reporter.point(SweepPoint.from_dict(d))
        if should_stop is not None and should_stop():
            return


def _close(pool: cf.ProcessPoolExecutor, stop: Any, points_q: Any, reporter: _Reporter | None) -> None:
    """Stop the pool and wait for its children: no task starts, running ones stop at their next batch,
    children still running after :data:`STOP_GRACE_S` are terminated; report the points still queued."""
    stop.set()
    _drain(points_q, reporter)
    procs = list((getattr(pool, "_processes", None) or {}).values())

    def terminate() -> None:
        for p in procs:
            with contextlib.suppress(OSError, ValueError):  # gone already
                p.terminate()

    # The pool's own thread joins (reaps) the children; this timer only signals the stuck ones.
    timer = threading.Timer(STOP_GRACE_S, terminate)
    timer.daemon = True
    timer.start()
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        timer.cancel()
        timer.join()
    _drain(points_q, reporter)
    points_q.close()
    points_q.join_thread()

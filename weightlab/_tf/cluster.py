"""Sweeps on a Ray cluster: the shards of :mod:`weightlab._tf.parallel` as tasks of Ray actors.

The only module of WeightLab that imports Ray (``pip install 'weightlab[cluster]'``),
and only when :func:`run_ray` is called.

How the work travels
--------------------
* The edited base weights (the caller's current edits, often empty) are put
  in Ray's object store **once** (``ray.put``); every actor receives the
  reference and reads them from the store of its node.
* ``workers`` actors (one CPU each) open the model and held-out set once, in
  their constructor (:class:`~weightlab._tf.parallel.ShardRunner`), and keep
  the opened model and its :class:`~weightlab._tf.points.PointEvaluator`:
  an actor evaluates the base once, recording the activations entering every
  target, and every shard it runs reuses them.
* Each task carries only its shard: the sweep spec restricted to one target
  (mode ``"each"``) or to a chunk of values (``"together"``), and the log's
  points for it when resuming. Its answer is the shard's points.

The model and held-out files are opened by path on every node: they must be
readable at the same path everywhere (a shared filesystem, or the same copy
on each node). Ray ships no files.

The merged result equals the one-process result (same points, same order;
see :func:`~weightlab._tf.parallel.merge`). Progress arrives per shard (each
point of a shard is reported when its shard returns); the parent writes the
log. ``should_stop`` kills the actors; the shards that finished are kept,
the result is incomplete.

Ray's own output is kept off the terminal: workers' logs are not forwarded
(``log_to_driver=False``), Ray's loggers are at ERROR, no dashboard, and a
local instance keeps its session files in a fresh folder under the system
temporary directory, removed after ``ray.shutdown()``. A Ray instance that
was already running (``ray.is_initialized()``) is used and left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ..core.errors import EngineError, WeightLabError
from ..core.sweeps import SweepLog, SweepPoint, SweepResult, SweepSpec
from ..engine.quiet import quiet_libraries
from .parallel import POLL_S, ProgressFn, Shard, ShardRunner, SweepLayout, _Reporter, merge, shard_bound

__all__ = ["LOCAL", "NOT_INSTALLED", "ray_session", "run_ray"]

#: Addresses that start a local Ray instance.
LOCAL = ("", "local")
#: Seconds to wait for the actors to remove their temporary folders before they are killed.
CLOSE_S = 5.0
#: The error when Ray is asked for and missing.
NOT_INSTALLED = "Ray is not installed: pip install 'weightlab[cluster]'"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EngineError(NOT_INSTALLED) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str, num_cpus: int | None = None) -> Iterator[Any]:
    """A connected Ray: started locally (``address`` ``""`` or ``"local"``) or joined (``ray.init(address=...)``).

    Yields the ``ray`` module. An instance this call starts is shut down and
    its temporary folder removed on exit; one already running is left alone.

    Raises
    ------
    EngineError
        When Ray is not installed, or cannot start or connect (the message
        names the address).
    """
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report, no prompt
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
    tmp = None
    try:
        if address in LOCAL:
            tmp = tempfile.mkdtemp(prefix="wlray-")
            ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=tmp, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as e:  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, ValueError)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        where = "a local Ray instance" if address in LOCAL else f"the Ray cluster at {address!r}"
        raise EngineError(f"could not start or join {where}: {type(e).__name__}: {e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class ShardActor:
    """A Ray actor around a :class:`~weightlab._tf.parallel.ShardRunner` (the model opened once).

    An error while opening is kept and raised by every call, so the caller
    sees the same :class:`~weightlab.core.errors.WeightLabError`.
    """

    def __init__(self, model_path: str, data_path: str, edited: Mapping[str, np.ndarray] | None,
                 trust: bool, options: Mapping[str, Any], scratch: str | None = None) -> None:  # fmt: skip
        # This process's temporary files (TensorFlow's autograph writes generated source there and
        # removes it only at a normal exit, which a killed actor never has) go to ``scratch``,
        # removed by :meth:`close` (and by the driver, for a local instance).
        self.scratch = scratch
        if scratch is not None:
            os.makedirs(scratch, exist_ok=True)
            tempfile.tempdir = scratch
        quiet_libraries()
        self.error: Exception | None = None
        self.runner: ShardRunner | None = None
        try:
            self.runner = ShardRunner(model_path, data_path, edited, trust, options)
        except WeightLabError as e:
            self.error = e
        except Exception as e:  # noqa: BLE001 - any failure to open, reported as an EngineError
            self.error = EngineError(f"a Ray worker could not open the model: {type(e).__name__}: {e}", model_path)

    def _get(self) -> ShardRunner:
        if self.error is not None:
            raise self.error
        assert self.runner is not None
        return self.runner

    def layout(self, spec: SweepSpec, workers: int, logged: list[SweepPoint], baseline: SweepPoint | None
               ) -> SweepLayout:  # fmt: skip
        """:meth:`ShardRunner.layout`."""
        return self._get().layout(spec, workers, logged, baseline)

    def run(self, shard: Shard, changed: Any, logged: list[SweepPoint]) -> SweepResult:
        """:meth:`ShardRunner.run`."""
        return self._get().run(shard, changed, logged)

    def close(self) -> bool:
        """Remove this actor's temporary folder (before it is killed)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        return True


def _get(ray: Any, ref: Any, should_stop: Callable[[], bool] | None) -> Any:
    """``ray.get(ref)``, polling ``should_stop``; a task's WeightLabError is raised as itself."""
    from .runtime import EvaluationCancelled

    while True:
        ready, _ = ray.wait([ref], timeout=POLL_S)
        if ready:
            return _result(ray, ref)
        if should_stop is not None and should_stop():
            raise EvaluationCancelled()


def _result(ray: Any, ref: Any) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, WeightLabError):
            raise cause from None
        raise EngineError(f"a Ray task failed: {cause or e}") from None
    except ray.exceptions.RayActorError as e:
        raise EngineError(f"a Ray worker died: {e}") from None


def run_ray(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    spec: SweepSpec,
    *,
    address: str,
    workers: int | None = None,
    edited: Mapping[str, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: SweepLog | None = None,
    trust: bool = False,
    options: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run ``spec`` on Ray (see the module docstring).

    Parameters
    ----------
    model_path, data_path:
        Readable at the same path on every node (shared filesystem).
    spec:
        The sweep.
    address:
        ``""`` or ``"local"``: start a local Ray instance (with ``workers``
        CPUs); otherwise ``ray.init(address=address)`` (``"auto"``,
        ``"ray://head:10001"``...).
    workers:
        Actors (one CPU each); None: the cluster's CPUs. No more than the
        sweep's shards (:func:`~weightlab._tf.parallel.shard_bound`).
    edited:
        The base weights: put in the object store once.
    progress, should_stop, log, trust, options:
        As for :func:`weightlab._tf.parallel.run_parallel` (progress per shard).

    Returns
    -------
    SweepResult
        Equal to the one-process result.

    Raises
    ------
    EngineError
        When Ray is not installed (``pip install 'weightlab[cluster]'``),
        cannot start or connect, or a worker dies.
    WeightLabError
        A task's error, with its message.
    """
    from .runtime import EvaluationCancelled

    if log is not None and log.spec.spec_hash() != spec.spec_hash():
        raise EngineError(f"the sweep log {log.path} is of another sweep")
    logged = [] if log is None else list(log.points)
    logged_base = None if log is None else log.baseline
    empty = SweepResult(spec, logged_base or SweepPoint("", None, None, None), complete=False)
    with ray_session(address, workers) as ray:
        n = shard_bound(model_path, spec, workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        base_ref = ray.put(dict(edited or {}))  # once; every actor reads it from the object store
        actor_cls = ray.remote(num_cpus=1)(ShardActor)
        args = (os.fspath(model_path), os.fspath(data_path), base_ref, trust, dict(options or {}))
        stem = os.path.join(tempfile.gettempdir(), f"weightlab-ray-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        scratch = [f"{stem}-{i}" for i in range(n)]
        actors = [actor_cls.remote(*args, scratch[i]) for i in range(n)]
        try:
            try:
                layout = _get(ray, actors[0].layout.remote(spec, n, logged, logged_base), should_stop)
            except EvaluationCancelled:
                return empty
            reporter = _Reporter(spec, layout, progress, log)
            results: dict[int, SweepResult] = dict(layout.done)
            todo = sorted((s for s in layout.shards if s.index not in results), key=lambda s: (-s.cost, s.index))
            idle = list(actors)
            running: dict[Any, tuple[Any, Shard]] = {}
            baseline = logged_base
            cancelled = False
            while todo or running:
                while todo and idle:
                    actor, shard = idle.pop(0), todo.pop(0)
                    running[actor.run.remote(shard, layout.changed, logged)] = (actor, shard)
                if should_stop is not None and should_stop():
                    cancelled = True
                    break
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    actor, shard = running.pop(ref)
                    r = _result(ray, ref)
                    results[shard.index] = r
                    idle.append(actor)
                    if baseline is None and r.baseline.num_samples:
                        baseline = r.baseline
                        if log is not None:
                            log.set_baseline(baseline)
                    reporter.result(r)
            merged = merge(spec, layout, results, baseline or SweepPoint("", None, None, None))
            if cancelled:
                merged.complete = False
            return merged
        finally:
            closing = [a.close.remote() for a in actors]  # queued behind a running shard: waited for briefly
            with contextlib.suppress(Exception):
                ray.wait(closing, num_returns=len(closing), timeout=CLOSE_S)
            for a in actors:
                ray.kill(a)
            for folder in scratch:  # a local instance's actors share this machine's temporary folder
                shutil.rmtree(folder, ignore_errors=True)


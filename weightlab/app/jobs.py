"""The window's list of engine jobs, without Qt: :class:`JobList`.

A job (an evaluation, later a sweep, a ranking, a fine-tune) is queued, runs
with progress, and ends done, failed or cancelled. :class:`JobList` keeps one
immutable :class:`JobRecord` per job id, replaces it on every change, and tells
its subscribers with a :class:`JobEvent` (``"added"``, ``"changed"``,
``"removed"``). Active jobs stay until they finish; of the finished ones only
the latest :attr:`JobList.keep_finished` are kept (a count, not a timer), so the
list never grows without bound and nothing here needs a clock to fire.

The list is fed by the window's engine adapter (``weightlab.gui.jobs_view``
binds the adapter's typed job signals to it) and read by the status-bar jobs
view. It is owned by one thread (the window's) and is not thread-safe.

Examples
--------
>>> jobs = JobList(clock=iter(range(100)).__next__)
>>> seen = []
>>> jobs.subscribe(lambda ev: seen.append((ev.kind, ev.job.job_id, ev.job.state)))
>>> _ = jobs.add(1, "evaluate", "Evaluate held-out set")
>>> _ = jobs.update(1, fraction=0.5, message="2 / 4 batches")
>>> _ = jobs.finish(1, "done")
>>> seen
[('added', 1, 'queued'), ('changed', 1, 'running'), ('changed', 1, 'done')]
>>> jobs[1].fraction, jobs.running, jobs.queued
(1.0, (), ())
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "JobEvent",
    "JobList",
    "JobRecord",
    "JobState",
]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
#: States of a job that has not ended: it can still progress or be cancelled.
ACTIVE_STATES: frozenset[str] = frozenset({"queued", "running"})
#: States of a job that has ended.
FINISHED_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
_STATES = frozenset(get_args(JobState))


class _Unset:
    """Marks an argument that was not given (``None`` is a meaningful value)."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


@dataclass(frozen=True)
class JobRecord:
    """What the window knows about one job; replaced (never mutated) on every change.

    Attributes
    ----------
    job_id : int
        The engine client's id of the job.
    kind : str
        The job's kind (``"evaluate"``, later ``"sweep"``, ``"rank"``...).
    label : str
        What the user sees ("Evaluate held-out set").
    state : {"queued", "running", "done", "failed", "cancelled"}
    fraction : float or None
        Progress in [0, 1]; None while it is not known (an indeterminate
        bar). A job that ends ``"done"`` has 1.0.
    message : str
        The latest progress message, or why the job failed.
    partial : object
        The latest partial result the engine streamed (None before any).
    queued_at : float
        When it was added, in seconds of the list's clock (monotonic).
    started_at, finished_at : float or None
        When it started running and when it ended, None until then.
    """

    job_id: int
    kind: str
    label: str
    state: JobState = "queued"
    fraction: float | None = None
    message: str = ""
    partial: Any = None
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        """True while the job is queued or running (it can still be cancelled)."""
        return self.state in ACTIVE_STATES

    @property
    def finished(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state in FINISHED_STATES

    def elapsed(self, now: float) -> float | None:
        """Seconds it has run at clock time ``now`` (up to its end once finished); None before it ran."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else now
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class JobEvent:
    """A change of the job list: ``kind`` is ``"added"``, ``"changed"`` or ``"removed"``.

    ``job`` is the record after the change (for ``"removed"``, the last record).
    """

    kind: Literal["added", "changed", "removed"]
    job: JobRecord


Listener = Callable[[JobEvent], None]


def _check_state(state: str, allowed: frozenset[str] = _STATES) -> JobState:
    if state not in allowed:
        raise ValueError(f"job state must be one of {sorted(allowed)}, got {state!r}")
    return state  # type: ignore[return-value]


def _clean_fraction(fraction: float | None) -> float | None:
    """``fraction`` clipped to [0, 1]; None (indeterminate) for None and NaN."""
    if fraction is None:
        return None
    value = float(fraction)
    if math.isnan(value):
        return None
    return min(1.0, max(0.0, value))


class JobList:
    """The jobs the window shows: active ones, then the latest finished ones.

    Parameters
    ----------
    keep_finished : int, default 5
        How many finished jobs are kept; when one more ends, the one that
        ended first is removed (a ``"removed"`` event). 0 removes a job as
        soon as it ends.
    clock : callable, default time.monotonic
        Returns the time in seconds stamped on records (tests pass their own).

    Raises
    ------
    ValueError
        When ``keep_finished`` is negative.

    Notes
    -----
    Records are kept in the order the jobs were added. Subscribers are called
    synchronously, in subscription order, after the list has changed; a
    subscriber may read the list but should not change it.
    """

    def __init__(self, keep_finished: int = 5, *, clock: Callable[[], float] = time.monotonic):
        if keep_finished < 0:
            raise ValueError(f"keep_finished must be >= 0, got {keep_finished}")
        self.keep_finished = int(keep_finished)
        self._clock = clock
        self._jobs: dict[int, JobRecord] = {}
        self._listeners: list[Listener] = []

    # -- reading ------------------------------------------------------------------
    def __getitem__(self, job_id: int) -> JobRecord:
        """The record of ``job_id``; raises KeyError for a job the list does not hold."""
        return self._jobs[job_id]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[JobRecord]:
        """Every record, in the order the jobs were added."""
        return iter(tuple(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: int) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        return self._jobs.get(job_id)

    @property
    def running(self) -> tuple[JobRecord, ...]:
        """Running jobs, in the order they were added."""
        return tuple(j for j in self._jobs.values() if j.state == "running")

    @property
    def queued(self) -> tuple[JobRecord, ...]:
        """Queued jobs (not started yet), in the order they were added."""
        return tuple(j for j in self._jobs.values() if j.state == "queued")

    @property
    def active(self) -> tuple[JobRecord, ...]:
        """Running and queued jobs, in the order they were added."""
        return tuple(j for j in self._jobs.values() if j.active)

    @property
    def finished(self) -> tuple[JobRecord, ...]:
        """The finished jobs kept, the one that ended first first."""
        done = [j for j in self._jobs.values() if j.finished]
        return tuple(sorted(done, key=lambda j: (j.finished_at or 0.0)))

    # -- subscribers ----------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` with a :class:`JobEvent` after every change."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``; raises ValueError when it was not subscribed."""
        self._listeners.remove(listener)

    def _emit(self, kind: Literal["added", "changed", "removed"], job: JobRecord) -> None:
        event = JobEvent(kind, job)
        for fn in list(self._listeners):
            fn(event)

    # -- changing -------------------------------------------------------------------
    def add(
        self,
        job_id: int,
        kind: str,
        label: str,
        *,
        state: str = "queued",
        message: str = "",
    ) -> JobRecord:
        """Add a job (normally ``"queued"``) and return its record.

        Parameters
        ----------
        job_id : int
            The engine client's id; unique among the jobs the list holds.
        kind, label : str
            The job's kind and what the user sees.
        state : str, default "queued"
            Any job state: a job first heard of when it runs or ends is added
            in that state (a finished one counts towards ``keep_finished``).
        message : str
            A first message.

        Raises
        ------
        ValueError
            When the list already holds ``job_id``, or ``state`` is not a job state.
        """
        job_id = int(job_id)
        if job_id in self._jobs:
            raise ValueError(f"job {job_id} is already in the list ({self._jobs[job_id].label!r})")
        checked = _check_state(state)
        now = self._clock()
        record = JobRecord(
            job_id=job_id,
            kind=str(kind),
            label=str(label),
            state=checked,
            fraction=1.0 if checked == "done" else None,
            message=str(message),
            queued_at=now,
            started_at=now if checked != "queued" else None,
            finished_at=now if checked in FINISHED_STATES else None,
        )
        self._jobs[job_id] = record
        self._emit("added", record)
        self._trim()
        return record

    def update(
        self,
        job_id: int,
        *,
        state: str | None = None,
        fraction: float | None = _UNSET,
        message: str | None = None,
        partial: Any = _UNSET,
    ) -> JobRecord:
        """Record progress of an active job and return its new record.

        Progress (``fraction``, ``message`` or ``partial`` given) of a queued
        job starts it: its state becomes ``"running"``.

        Parameters
        ----------
        job_id : int
            A job the list holds.
        state : {"queued", "running"}, optional
            A new active state (use :meth:`finish` to end a job).
        fraction : float or None, optional
            Progress in [0, 1], clipped to it; None (or NaN) means unknown
            (an indeterminate bar). Left as it was when not given.
        message : str, optional
            The new progress message; left as it was when not given.
        partial : object, optional
            The latest partial result; left as it was when not given.

        Returns
        -------
        JobRecord
            The new record (the same one, and no event, when nothing changed;
            also when the job has already finished: late progress is ignored).

        Raises
        ------
        KeyError
            When the list does not hold ``job_id``.
        ValueError
            When ``state`` is not ``"queued"`` or ``"running"``.
        """
        old = self._jobs[int(job_id)]
        if old.finished:
            return old  # progress that raced the end of its job
        changes: dict[str, Any] = {}
        if fraction is not _UNSET:
            changes["fraction"] = _clean_fraction(fraction)
        if message is not None:
            changes["message"] = str(message)
        if partial is not _UNSET:
            changes["partial"] = partial
        if state is not None:
            changes["state"] = _check_state(state, ACTIVE_STATES)
        elif changes and old.state == "queued":
            changes["state"] = "running"
        if changes.get("state") == "running" and old.started_at is None:
            changes["started_at"] = self._clock()
        new = replace(old, **changes)
        if new == old:
            return old
        self._jobs[new.job_id] = new
        self._emit("changed", new)
        return new

    def finish(self, job_id: int, state: str = "done", message: str | None = None) -> JobRecord:
        """End an active job as ``"done"``, ``"failed"`` or ``"cancelled"`` and return its record.

        A job that ends ``"done"`` gets ``fraction`` 1.0. Finishing an already
        finished job changes nothing (the first end wins). Then the oldest
        finished jobs beyond :attr:`keep_finished` are removed.

        Raises
        ------
        KeyError
            When the list does not hold ``job_id``.
        ValueError
            When ``state`` is not a finished state.
        """
        checked = _check_state(state, FINISHED_STATES)
        old = self._jobs[int(job_id)]
        if old.finished:
            return old
        now = self._clock()
        new = replace(
            old,
            state=checked,
            fraction=1.0 if checked == "done" else old.fraction,
            message=old.message if message is None else str(message),
            started_at=old.started_at if old.started_at is not None else now,
            finished_at=now,
        )
        self._jobs[new.job_id] = new
        self._emit("changed", new)
        self._trim()
        return new

    def remove(self, job_id: int) -> JobRecord:
        """Take a job out of the list (any state) and return its last record; raises KeyError if absent."""
        record = self._jobs.pop(int(job_id))
        self._emit("removed", record)
        return record

    def clear_finished(self) -> int:
        """Remove every finished job; return how many were removed."""
        gone = self.finished
        for record in gone:
            self.remove(record.job_id)
        return len(gone)

    def _trim(self) -> None:
        finished = self.finished
        for record in finished[: max(0, len(finished) - self.keep_finished)]:
            self.remove(record.job_id)

"""Job specs: what a long-running engine job is asked to do, as JSON-serialisable values.

A job runs in the engine worker (:mod:`weightlab._tf.worker`); its spec is
made in the window's process, crosses the process boundary as
``spec.to_dict()`` (plain JSON values) and is rebuilt there with
:func:`spec_from_dict`. Adding a kind of job means adding a spec class here
(decorated with :func:`register`) and a handler for its ``kind`` in the
worker.

Examples
--------
>>> spec = EvaluateSpec(versions={"dense/kernel": 3}, tag=2)
>>> spec_from_dict(spec.to_dict()) == spec
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

__all__ = ["JobSpec", "EvaluateSpec", "register", "spec_from_dict", "SPEC_KINDS"]

#: kind -> spec class, filled by :func:`register`.
SPEC_KINDS: dict[str, type[JobSpec]] = {}

_S = TypeVar("_S", bound="type[JobSpec]")


def register(cls: _S) -> _S:
    """Class decorator: make ``cls`` (a :class:`JobSpec` subclass) known under ``cls.kind``.

    Raises
    ------
    ValueError
        When another class already has that kind.
    """
    kind = cls.kind
    if kind in SPEC_KINDS and SPEC_KINDS[kind] is not cls:
        raise ValueError(f"job kind {kind!r} is registered twice ({SPEC_KINDS[kind].__name__}, {cls.__name__})")
    SPEC_KINDS[kind] = cls
    return cls


@dataclass(frozen=True)
class JobSpec:
    """Base class of job specs: frozen dataclasses of JSON values with a class-level ``kind``.

    Attributes
    ----------
    live:
        True for a job whose newer submission replaces the older one still
        queued or running (latest wins: the live evaluation of the current
        edits); False for jobs that queue up and each run.
    """

    kind: ClassVar[str] = ""
    live: bool = False

    @property
    def label(self) -> str:
        """Short user-facing description (a jobs list shows it)."""
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON values: ``{"kind": ..., field: value, ...}``.

        Raises
        ------
        TypeError
            When a field holds a value JSON cannot carry.
        """
        data = {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}
        json.dumps(data, allow_nan=False)  # raises TypeError/ValueError for non-JSON values
        return data

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - set(known) - {"kind"})
        if unknown:
            raise ValueError(f"job spec {cls.kind!r} has unknown fields: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def spec_from_dict(data: Mapping[str, Any]) -> JobSpec:
    """Rebuild a spec from :meth:`JobSpec.to_dict`.

    Raises
    ------
    ValueError
        When the kind is unknown or a field is not the spec's.
    """
    kind = data.get("kind")
    cls = SPEC_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(sorted(SPEC_KINDS))})")
    return cls._from_fields(data)


def _versions(value: Mapping[str, int]) -> dict[str, int]:
    return {str(k): int(v) for k, v in value.items()}


@register
@dataclass(frozen=True)
class EvaluateSpec(JobSpec):
    """Evaluate the opened model on its held-out set, with the edited tensors at given versions.

    Attributes
    ----------
    versions:
        Canonical name -> version (:meth:`weightlab.core.session.EditSession.version`)
        of every edited tensor; the others have their stored values. The
        worker checks that the tensors it holds have these versions.
    tag:
        The caller's JSON value, echoed in the result (the window: the
        history position).
    baseline:
        True for the evaluation of the unedited model after an open.
    live:
        True (default): latest wins, a newer live evaluation cancels this one.
    """

    kind: ClassVar[str] = "evaluate"
    versions: dict[str, int] = field(default_factory=dict)
    tag: Any = None
    baseline: bool = False
    live: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "versions", _versions(self.versions))

    @property
    def label(self) -> str:
        """``"Baseline evaluation"`` or ``"Evaluation"``."""
        return "Baseline evaluation" if self.baseline else "Evaluation"

"""Training as data: fine-tune and prune-and-retrain job specs, and what they return (pure).

Two job kinds of :mod:`weightlab.core.jobs`:

* ``"finetune"`` (:class:`FinetuneSpec`): train the model as currently edited
  on a training set, with pruned/ablated/zeroed entries kept at exactly zero
  by default, frozen layers, a learning-rate schedule, regularizers,
  constraints, early stopping, gradual magnitude pruning or a new head;
* ``"prune_retrain"`` (:class:`PruneRetrainSpec`): rounds of magnitude pruning
  each followed by a fine-tune with masks kept.

The engine (:mod:`weightlab._tf.train`) runs them and returns a
:class:`FinetuneResult` / :class:`PruneRetrainResult`; ``to_json()`` gives the
command line's ``--json`` shape. Epochs and rounds are 1-based wherever users
see them.

Examples
--------
>>> spec = FinetuneSpec(train="train.npz", val_split=0.1, epochs=5, lr=0.001)
>>> spec.describe()
'fine-tune 5 epochs, lr 0.001, masks kept'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from .jobs import JobSpec, register
from .sweeps import SpecError
from .sweeps import short_number as _short

__all__ = [
    "OPTIMIZERS",
    "CONSTRAINTS",
    "MONITORS",
    "FinetuneSpec",
    "PruneRetrainSpec",
    "EpochRecord",
    "FinetuneResult",
    "RoundRecord",
    "PruneRetrainResult",
    "TrainingSpecError",
]

#: Optimizers a fine-tune may name (``"auto"``: the compile config's, else Adam).
OPTIMIZERS = ("auto", "adam", "sgd", "rmsprop")
#: Weight constraints (``kind`` of a :attr:`FinetuneSpec.constraints` entry) and their arguments.
CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "max_norm": ("max_value", "axis"),
    "non_neg": (),
    "unit_norm": ("axis",),
    "min_max_norm": ("min_value", "max_value", "rate", "axis"),
    "clip": ("value",),
}
#: Quantities early stopping and ReduceLROnPlateau may watch.
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")

_EARLY_KEYS = ("monitor", "patience", "min_delta", "start_from_epoch", "restore_best_weights")
_REDUCE_KEYS = ("monitor", "factor", "patience", "min_lr", "min_delta", "cooldown")


class TrainingSpecError(SpecError):
    """A fine-tune or prune-retrain spec with a bad field (a ``RecipeError`` and a ``ValueError``)."""


def _bad(spec: str, name: str, message: str) -> TrainingSpecError:
    return TrainingSpecError(f"{spec} spec: field {name!r}: {message}")


def _num(
    spec: str,
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _bad(spec, name, f"expected a number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise _bad(spec, name, f"expected a finite number; got {value!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise _bad(spec, name, f"must be {'>' if lo_open else '>='} {lo:g}; got {v:g}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise _bad(spec, name, f"must be {'<' if hi_open else '<='} {hi:g}; got {v:g}")
    return v


def _int(spec: str, name: str, value: Any, *, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _bad(spec, name, f"expected an integer; got {value!r}")
    v = int(value)
    if lo is not None and v < lo:
        raise _bad(spec, name, f"must be >= {lo}; got {v}")
    return v


def _globs(spec: str, name: str, value: Any) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) and s for s in items):
        raise _bad(spec, name, f"expected layer names or globs; got {value!r}")
    return tuple(items)


def _keys(spec: str, name: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(spec, name, f"expected an object; got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _bad(spec, name, f"unknown keys {', '.join(map(repr, unknown))} (known: {', '.join(allowed)})")
    return {str(k): (list(v) if isinstance(v, tuple) else v) for k, v in value.items()}


def _fmt(x: float) -> str:
    return f"{x:g}"


@register
@dataclass(frozen=True)
class FinetuneSpec(JobSpec):
    """Fine-tune the model as currently edited (job kind ``"finetune"``).

    Attributes
    ----------
    train:
        Training data: an ``.npz`` with ``x`` and ``y`` (as a held-out set,
        :func:`weightlab.core.dataset.load_heldout`) or an image folder with
        one subfolder per class.
    val, val_split:
        Validation data (``.npz`` or image folder), or the fraction of
        ``train`` held back for validation (the LAST fraction, Keras'
        ``validation_split``; for an image folder, its seeded ``subset``);
        at most one of the two.
    heldout:
        A held-out ``.npz``: accuracy and loss after each epoch, and ``final``.
    epochs, batch_size:
        Epochs (>= 1) and batch size (>= 1).
    lr:
        Initial learning rate; None: the compile config's, else 0.001.
    optimizer, momentum:
        One of :data:`OPTIMIZERS`; ``momentum`` is SGD's.
    schedule:
        A learning-rate schedule, :meth:`weightlab.core.schedules.LRSchedule.to_dict`.
    keep_masks:
        Entries that are 0 now and were not 0 in the stored file stay exactly
        0 through training (default); False lets them train.
    freeze, train_last:
        Layers not trained: names or globs over layer names, and/or every
        layer with weights except the last ``train_last``.
    regularizers:
        Kernel regularizers, ``{"layers": "dense*", "l1": 0.0, "l2": 0.01}``
        (``layers`` defaults to every layer with a kernel).
    constraints:
        Weight constraints applied after every update,
        ``{"layers": "*", "kind": "max_norm", "max_value": 2.0}``; kinds and
        arguments in :data:`CONSTRAINTS` (``clip``: ``value``, kernels kept in
        ``[-value, value]``).
    clip_weights:
        Clip every kernel to ``[-c, c]`` at the end of every epoch.
    early_stopping:
        ``{"monitor": "val_loss", "patience": 3, "min_delta": 0.0,
        "start_from_epoch": 0, "restore_best_weights": True}`` (Keras 3's
        meaning: the best weights come back also when training does not stop
        early).
    reduce_lr:
        ``{"monitor": "val_loss", "factor": 0.5, "patience": 2, "min_lr": 0.0}``
        (Keras' ReduceLROnPlateau); not with a ``schedule``.
    pruning:
        Gradual magnitude pruning during training:
        ``{"schedule": SparsitySchedule.to_dict(), "layers": "*", "scope": "layer" | "global"}``.
    new_head, output:
        Replace the output layer by a freshly initialised Dense with
        ``new_head`` units and save the trained model as ``.keras`` to ``output``.
        The new head keeps the replaced layer's name: ``regularizers`` and
        ``constraints`` whose globs match that name apply to it.
    seed:
        Keras' and TensorFlow's seed (with op determinism: repeatable on CPU).
    on_cancel:
        ``"best"`` or ``"last"``: the weights kept when the job is cancelled.
    watch:
        Canonical tensor names whose values are streamed after every epoch.

    Raises
    ------
    TrainingSpecError
        (a ``RecipeError`` and ``ValueError``) on construction, for a bad
        field; the message names it.
    """

    kind: ClassVar[str] = "finetune"
    train: str = ""
    val: str | None = None
    val_split: float | None = None
    heldout: str | None = None
    epochs: int = 1
    batch_size: int = 32
    lr: float | None = None
    optimizer: str = "auto"
    momentum: float = 0.9
    schedule: dict[str, Any] | None = None
    keep_masks: bool = True
    freeze: tuple[str, ...] = ()
    train_last: int | None = None
    regularizers: tuple[dict[str, Any], ...] = ()
    constraints: tuple[dict[str, Any], ...] = ()
    clip_weights: float | None = None
    early_stopping: dict[str, Any] | None = None
    reduce_lr: dict[str, Any] | None = None
    pruning: dict[str, Any] | None = None
    new_head: int | None = None
    output: str | None = None
    seed: int = 0
    on_cancel: str = "best"
    watch: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        s = "finetune"
        set_ = object.__setattr__
        if not isinstance(self.train, str) or not self.train:
            raise _bad(
                s, "train", f"expected the training data's path (.npz or image folder); got {self.train!r}"
            )
        for name in ("val", "heldout", "output"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise _bad(s, name, f"expected a path or nothing; got {v!r}")
        if self.val_split is not None:
            set_(
                self,
                "val_split",
                _num(s, "val_split", self.val_split, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
            )
            if self.val is not None:
                raise _bad(s, "val_split", "give val or val_split, not both")
        set_(self, "epochs", _int(s, "epochs", self.epochs, lo=1))
        set_(self, "batch_size", _int(s, "batch_size", self.batch_size, lo=1))
        if self.lr is not None:
            set_(self, "lr", _num(s, "lr", self.lr, lo=0.0, lo_open=True))
        if self.optimizer not in OPTIMIZERS:
            raise _bad(s, "optimizer", f"expected one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        set_(self, "momentum", _num(s, "momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True))
        if self.schedule is not None:
            set_(self, "schedule", self._schedule_dict(self.schedule))
        if not isinstance(self.keep_masks, bool):
            raise _bad(s, "keep_masks", f"expected true or false; got {self.keep_masks!r}")
        set_(self, "freeze", _globs(s, "freeze", self.freeze))
        if self.train_last is not None:
            set_(self, "train_last", _int(s, "train_last", self.train_last, lo=1))
        set_(self, "regularizers", tuple(self._regularizer(r) for r in self._list("regularizers")))
        set_(self, "constraints", tuple(self._constraint(c) for c in self._list("constraints")))
        if self.clip_weights is not None:
            set_(self, "clip_weights", _num(s, "clip_weights", self.clip_weights, lo=0.0, lo_open=True))
        if self.early_stopping is not None:
            set_(self, "early_stopping", self._early(self.early_stopping))
        has_val = self.val is not None or self.val_split is not None
        if (
            self.early_stopping is not None
            and self.early_stopping["monitor"].startswith("val_")
            and not has_val
        ):
            raise _bad(
                s,
                "early_stopping",
                f"{self.early_stopping['monitor']} needs validation data (val or val_split)",
            )
        if self.reduce_lr is not None:
            set_(self, "reduce_lr", self._reduce(self.reduce_lr))
            if self.reduce_lr["monitor"].startswith("val_") and not has_val:
                raise _bad(
                    s, "reduce_lr", f"{self.reduce_lr['monitor']} needs validation data (val or val_split)"
                )
            if self.schedule is not None:
                raise _bad(
                    s,
                    "reduce_lr",
                    "ReduceLROnPlateau cannot change a scheduled learning rate; "
                    "give a schedule or reduce_lr, not both",
                )
        if self.pruning is not None:
            set_(self, "pruning", self._pruning(self.pruning))
        if self.new_head is not None:
            set_(self, "new_head", _int(s, "new_head", self.new_head, lo=1))
            if not self.output:
                raise _bad(
                    s,
                    "output",
                    "a new head changes the model's structure: give the .keras file to save it to",
                )
            if not self.output.lower().endswith(".keras"):
                raise _bad(s, "output", f"a new-head model is saved as .keras; got {self.output!r}")
        set_(self, "seed", _int(s, "seed", self.seed, lo=0))
        if self.on_cancel not in ("best", "last"):
            raise _bad(s, "on_cancel", f"expected 'best' or 'last'; got {self.on_cancel!r}")
        watch = (self.watch,) if isinstance(self.watch, str) else self.watch
        if not isinstance(watch, (list, tuple)) or not all(isinstance(w, str) and w for w in watch):
            raise _bad(s, "watch", f"expected canonical tensor names; got {self.watch!r}")
        set_(self, "watch", tuple(watch))
        if not isinstance(self.live, bool) or self.live:
            raise _bad(s, "live", "a fine-tune is not a live job")

    def _list(self, name: str) -> tuple[Any, ...]:
        v = getattr(self, name)
        if isinstance(v, Mapping):
            return (v,)
        if not isinstance(v, (list, tuple)):
            raise _bad("finetune", name, f"expected a list of objects; got {v!r}")
        return tuple(v)

    @staticmethod
    def _schedule_dict(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or not isinstance(value.get("kind"), str):
            raise _bad("finetune", "schedule", f"expected a schedule object with a 'kind'; got {value!r}")
        try:
            from .schedules import LRSchedule
        except ImportError:  # pragma: no cover - schedules.py lands with engineer B's part
            return dict(value)
        try:
            return LRSchedule.from_dict(value, source="finetune spec: field 'schedule'").to_dict()
        except ValueError as e:
            raise _bad("finetune", "schedule", str(e)) from None

    @staticmethod
    def _regularizer(value: Any) -> dict[str, Any]:
        r = _keys("finetune", "regularizers", value, ("layers", "l1", "l2"))
        layers = _globs("finetune", "regularizers", r.get("layers", "*"))
        l1 = _num("finetune", "regularizers", r.get("l1", 0.0), lo=0.0)
        l2 = _num("finetune", "regularizers", r.get("l2", 0.0), lo=0.0)
        if l1 == 0 and l2 == 0:
            raise _bad("finetune", "regularizers", f"give l1 and/or l2 > 0; got {dict(value)!r}")
        return {"layers": list(layers), "l1": l1, "l2": l2}

    @staticmethod
    def _constraint(value: Any) -> dict[str, Any]:
        c = _keys(
            "finetune",
            "constraints",
            value,
            ("layers", "kind", *sorted({a for v in CONSTRAINTS.values() for a in v})),
        )
        kind = c.get("kind")
        if kind not in CONSTRAINTS:
            raise _bad(
                "finetune", "constraints", f"expected kind one of {', '.join(CONSTRAINTS)}; got {kind!r}"
            )
        extra = sorted(set(c) - {"layers", "kind", *CONSTRAINTS[kind]})
        if extra:
            raise _bad(
                "finetune",
                "constraints",
                f"{kind} takes {', '.join(CONSTRAINTS[kind]) or 'no arguments'}; got {', '.join(extra)}",
            )
        out: dict[str, Any] = {
            "layers": list(_globs("finetune", "constraints", c.get("layers", "*"))),
            "kind": kind,
        }
        for k in CONSTRAINTS[kind]:
            if k not in c:
                continue
            if k == "axis":
                ax = c[k]
                if isinstance(ax, (list, tuple)):
                    out[k] = [_int("finetune", "constraints", a) for a in ax]
                else:
                    out[k] = _int("finetune", "constraints", ax)
            else:
                out[k] = _num("finetune", "constraints", c[k], lo=0.0)
        if kind == "clip" and not out.get("value"):
            raise _bad("finetune", "constraints", "clip needs value > 0")
        if kind == "min_max_norm" and out.get("min_value", 0.0) > out.get("max_value", 1.0):
            raise _bad("finetune", "constraints", "min_max_norm needs min_value <= max_value")
        return out

    @staticmethod
    def _monitor(name: str, d: dict[str, Any]) -> None:
        if d["monitor"] not in MONITORS:
            raise _bad(
                "finetune", name, f"monitor must be one of {', '.join(MONITORS)}; got {d['monitor']!r}"
            )

    def _early(self, value: Any) -> dict[str, Any]:
        e = _keys("finetune", "early_stopping", value, _EARLY_KEYS)
        out = {
            "monitor": e.get("monitor", "val_loss"),
            "patience": _int("finetune", "early_stopping", e.get("patience", 3), lo=0),
            "min_delta": _num("finetune", "early_stopping", e.get("min_delta", 0.0), lo=0.0),
            "start_from_epoch": _int("finetune", "early_stopping", e.get("start_from_epoch", 0), lo=0),
            "restore_best_weights": e.get("restore_best_weights", True),
        }
        self._monitor("early_stopping", out)
        if not isinstance(out["restore_best_weights"], bool):
            raise _bad("finetune", "early_stopping", "restore_best_weights must be true or false")
        return out

    def _reduce(self, value: Any) -> dict[str, Any]:
        r = _keys("finetune", "reduce_lr", value, _REDUCE_KEYS)
        out = {
            "monitor": r.get("monitor", "val_loss"),
            "factor": _num(
                "finetune", "reduce_lr", r.get("factor", 0.5), lo=0.0, hi=1.0, lo_open=True, hi_open=True
            ),
            "patience": _int("finetune", "reduce_lr", r.get("patience", 2), lo=0),
            "min_lr": _num("finetune", "reduce_lr", r.get("min_lr", 0.0), lo=0.0),
            "min_delta": _num("finetune", "reduce_lr", r.get("min_delta", 1e-4), lo=0.0),
            "cooldown": _int("finetune", "reduce_lr", r.get("cooldown", 0), lo=0),
        }
        self._monitor("reduce_lr", out)
        return out

    @staticmethod
    def _pruning(value: Any) -> dict[str, Any]:
        p = _keys("finetune", "pruning", value, ("schedule", "layers", "scope"))
        sched = p.get("schedule")
        if not isinstance(sched, Mapping):
            raise _bad("finetune", "pruning", f"expected a sparsity schedule object; got {sched!r}")
        try:
            from .schedules import SparsitySchedule
        except ImportError:  # pragma: no cover - schedules.py lands with engineer B's part
            sched_d = dict(sched)
        else:
            try:
                sched_d = SparsitySchedule.from_dict(sched, source="finetune spec: field 'pruning'").to_dict()
            except ValueError as e:
                raise _bad("finetune", "pruning", str(e)) from None
        scope = p.get("scope", "layer")
        if scope not in ("layer", "global"):
            raise _bad("finetune", "pruning", f"scope must be 'layer' or 'global'; got {scope!r}")
        return {
            "schedule": sched_d,
            "layers": list(_globs("finetune", "pruning", p.get("layers", "*"))),
            "scope": scope,
        }

    @property
    def label(self) -> str:
        """The jobs list's text: :meth:`describe` with a capital."""
        d = self.describe()
        return d[:1].upper() + d[1:]

    def describe(self, lr: str | None = None) -> str:
        """One line for the history: ``"fine-tune 5 epochs, lr 0.001, masks kept"``.

        Parameters
        ----------
        lr:
            The learning rate training ran with, as text (``"0.001"``, or a
            schedule's :meth:`~weightlab.core.schedules.LRSchedule.describe`):
            the engine passes it once the rate is known (the compile config's,
            Adam's default). Without it the line reads ``lr auto`` when the
            rate comes from the compile config, and names the schedule's kind.

        Frozen layers, regularizers, constraints, clipping, early stopping,
        gradual pruning and a new head are named when set.
        """
        parts = [f"fine-tune {self.epochs} epoch{'s' if self.epochs != 1 else ''}"]
        if lr is not None:
            parts.append(f"lr {lr}")
        else:
            parts.append(f"lr {_fmt(self.lr)}" if self.lr is not None else "lr auto")
            if self.schedule is not None:
                parts.append(str(self.schedule.get("kind")))
        if self.optimizer != "auto":
            parts.append(self.optimizer)
        parts.append("masks kept" if self.keep_masks else "masks free")
        if self.freeze or self.train_last is not None:
            frozen = list(self.freeze)
            if self.train_last is not None:
                frozen.append(f"all but last {self.train_last}")
            parts.append("frozen " + "/".join(frozen))
        for r in self.regularizers:
            parts.append(" ".join(f"{k.upper()} {_fmt(r[k])}" for k in ("l1", "l2") if r[k]))
        for c in self.constraints:
            parts.append(str(c["kind"]))
        if self.clip_weights is not None:
            parts.append(f"clip {_fmt(self.clip_weights)}/epoch")
        if self.early_stopping is not None:
            parts.append(f"early stop {self.early_stopping['monitor']}")
        if self.pruning is not None:
            sched = self.pruning["schedule"]
            parts.append(f"gradual pruning to {_fmt(float(sched.get('final_sparsity', 0.0)))}")
        if self.new_head is not None:
            parts.append(f"new head {self.new_head}")
        return ", ".join(parts)


@register
@dataclass(frozen=True)
class PruneRetrainSpec(JobSpec):
    """Iterative prune-and-retrain (job kind ``"prune_retrain"``).

    Each round prunes with :class:`weightlab.core.edits.PruneMagnitude`'s
    semantics (``threshold * factor ** (r - 1)`` in round ``r``, or
    ``sparsities[r - 1]``) and then fine-tunes with masks kept.

    Attributes
    ----------
    finetune:
        :class:`FinetuneSpec` fields for each round (``epochs`` = E per
        round; ``keep_masks`` is forced on, ``new_head`` is refused).
    rounds:
        Number of rounds R (>= 1); with ``sparsities`` it must equal their count.
    threshold, factor:
        The first round's ``|w|`` threshold and its factor per round.
    sparsities:
        Or a target sparsity per round, in ``[0, 1)``.
    target, scope:
        The tensors pruned (glob, as ``prune_magnitude``) and ``"tensor"`` or
        ``"global"`` ranking.
    budget_pp:
        Stop after a round whose held-out accuracy is more than this many
        percentage points below the baseline (needs ``finetune["heldout"]``).

    Raises
    ------
    TrainingSpecError
        On construction, for a bad field.
    """

    kind: ClassVar[str] = "prune_retrain"
    finetune: dict[str, Any] = field(default_factory=dict)
    rounds: int = 3
    threshold: float | None = None
    factor: float = 0.8
    sparsities: tuple[float, ...] = ()
    target: str = "*/kernel"
    scope: str = "tensor"
    budget_pp: float | None = None

    def __post_init__(self) -> None:
        s = "prune_retrain"
        set_ = object.__setattr__
        if not isinstance(self.finetune, Mapping):
            raise _bad(s, "finetune", f"expected the fine-tune fields of each round; got {self.finetune!r}")
        ft = {k: v for k, v in self.finetune.items() if k != "kind"}
        if ft.get("new_head") is not None:
            raise _bad(s, "finetune", "a new head cannot be pruned and retrained in rounds")
        ft["keep_masks"] = True
        known = {f.name for f in fields(FinetuneSpec)}
        unknown = sorted(set(ft) - known)
        if unknown:
            raise _bad(s, "finetune", f"unknown fine-tune fields: {', '.join(unknown)}")
        try:
            spec = FinetuneSpec(**ft)
        except TrainingSpecError as e:
            raise TrainingSpecError(f"prune_retrain spec: {e}") from None
        d = spec.to_dict()
        d.pop("kind")
        set_(self, "finetune", d)
        set_(self, "rounds", _int(s, "rounds", self.rounds, lo=1))
        sp = (self.sparsities,) if isinstance(self.sparsities, (int, float)) else self.sparsities
        if not isinstance(sp, (list, tuple)):
            raise _bad(s, "sparsities", f"expected a list of fractions; got {self.sparsities!r}")
        sp = tuple(_num(s, "sparsities", v, lo=0.0, hi=1.0, hi_open=True) for v in sp)
        set_(self, "sparsities", sp)
        if (self.threshold is None) == (not sp):
            raise _bad(s, "threshold", "give a threshold (and factor) or sparsities, exactly one")
        if self.threshold is not None:
            set_(self, "threshold", _num(s, "threshold", self.threshold, lo=0.0, lo_open=True))
        set_(self, "factor", _num(s, "factor", self.factor, lo=0.0, lo_open=True))
        if sp and len(sp) != self.rounds:
            raise _bad(s, "sparsities", f"{len(sp)} sparsities for {self.rounds} rounds")
        if not isinstance(self.target, str) or not self.target:
            raise _bad(s, "target", f"expected a tensor glob; got {self.target!r}")
        if self.scope not in ("tensor", "global"):
            raise _bad(s, "scope", f"expected 'tensor' or 'global'; got {self.scope!r}")
        if self.budget_pp is not None:
            set_(self, "budget_pp", _num(s, "budget_pp", self.budget_pp, lo=0.0))
            if not self.finetune.get("heldout"):
                raise _bad(s, "budget_pp", "an accuracy budget needs a held-out set (finetune.heldout)")
        if not isinstance(self.live, bool) or self.live:
            raise _bad(s, "live", "prune-and-retrain is not a live job")

    @property
    def finetune_spec(self) -> FinetuneSpec:
        """The :class:`FinetuneSpec` of each round."""
        return FinetuneSpec(**self.finetune)

    def round_threshold(self, r: int) -> float | None:
        """Round ``r``'s (1-based) ``|w|`` threshold, None with ``sparsities``."""
        return None if self.threshold is None else self.threshold * self.factor ** (r - 1)

    def round_sparsity(self, r: int) -> float | None:
        """Round ``r``'s (1-based) target sparsity, None with a threshold."""
        return self.sparsities[r - 1] if self.sparsities else None

    @property
    def label(self) -> str:
        """The jobs list's text."""
        d = self.describe()
        return d[:1].upper() + d[1:]

    def describe(self) -> str:
        """``"prune-retrain 3 rounds, threshold 0.05 x0.8, 2 epochs each"``."""
        how = (
            f"threshold {_fmt(self.threshold)} x{_fmt(self.factor)}"
            if self.threshold is not None
            else "sparsity " + "/".join(_fmt(v) for v in self.sparsities)
        )
        e = int(self.finetune.get("epochs", 1))
        return f"prune-retrain {self.rounds} round{'s' if self.rounds != 1 else ''}, {how}, {e} epoch{'s' if e != 1 else ''} each"


# -- results ------------------------------------------------------------------------------


def _json_num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class EpochRecord:
    """One epoch's numbers (``epoch`` is 1-based); None where not measured."""

    epoch: int
    loss: float
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    heldout_accuracy: float | None = None
    heldout_loss: float | None = None
    lr: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON values (NaN and infinities become None)."""
        return {k: (v if k == "epoch" else _json_num(v)) for k, v in asdict(self).items()}


@dataclass
class FinetuneResult:
    """What a fine-tune did.

    Attributes
    ----------
    history:
        One :class:`EpochRecord` per epoch run.
    best_epoch:
        The 1-based epoch whose weights were kept by early stopping or a
        cancel with ``on_cancel="best"``; None when the last epoch's are kept.
    final:
        ``{"accuracy", "loss"}`` on the held-out set after training, or None.
    arrays:
        Canonical tensor name -> trained value (its stored dtype), every
        tensor training changed; empty with a new head (see ``saved``).
    label:
        The history step's text: :meth:`FinetuneSpec.describe` plus how it ended.
    """

    history: list[EpochRecord]
    best_epoch: int | None
    final: dict[str, Any] | None
    arrays: dict[str, np.ndarray]
    label: str
    stopped_early: bool = False
    cancelled: bool = False
    kept: str = "last"
    masked_entries: int = 0
    device: str = "CPU"
    seconds: float = 0.0
    saved: str | None = None

    def __repr__(self) -> str:
        """One line; ``to_json()`` and the fields keep the data."""
        final = (self.final or {}).get("accuracy")
        return (f"FinetuneResult(epochs={len(self.history)}, best_epoch={self.best_epoch}, "
                f"final_accuracy={_short(final)}, tensors={len(self.arrays)}, saved={self.saved!r})")  # fmt: skip

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a summary table and the plot (:func:`weightlab.core.richdisplay.finetune_html`)."""
        from .richdisplay import finetune_html

        return finetune_html(self)

    def _repr_svg_(self) -> str:
        """The plot alone as an SVG document (:func:`weightlab.core.richdisplay.finetune_svg`)."""
        from .richdisplay import STANDALONE_INK, finetune_svg

        return finetune_svg(self, ink=STANDALONE_INK)

    def to_json(self) -> dict[str, Any]:
        """``{"history": [{"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}, ...], "best_epoch", "final"}``."""
        keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
        hist = [{k: rec.to_dict()[k] for k in keys} for rec in self.history]
        final = None if self.final is None else {k: _json_num(v) for k, v in self.final.items()}
        return {"history": hist, "best_epoch": self.best_epoch, "final": final}

    def to_dataframe(self) -> Any:
        """The history as a pandas DataFrame, one row per epoch: every :class:`EpochRecord` field
        (``epoch`` 1-based; NaN where not measured). ImportError without pandas."""
        columns = [f.name for f in fields(EpochRecord)]
        rows = [[getattr(rec, c) for c in columns] for rec in self.history]
        return _pandas().DataFrame(rows, columns=columns).astype({c: float for c in columns[1:]})


@dataclass
class RoundRecord:
    """One prune-and-retrain round (``round`` is 1-based); ``sparsity`` of the pruned tensors after it.

    ``kept`` is False for a round measured past the accuracy budget: its
    weights were dropped and the result holds the last round within it.
    """

    round: int
    sparsity: float
    accuracy: float | None = None
    loss: float | None = None
    threshold: float | None = None
    kept: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON values."""
        return {k: (v if k in ("round", "kept") else _json_num(v)) for k, v in asdict(self).items()}


@dataclass
class PruneRetrainResult:
    """What prune-and-retrain did: rounds, the baseline (``{"accuracy", "loss"}``
    before round 1, or None), the final arrays, the label and why it stopped early
    (None when every round ran).

    With a budget, a round past it stays in ``rounds`` (``kept=False``) and
    ``arrays`` are those of the last round within it (:attr:`kept_round`);
    when round 1 is already past it, ``arrays`` is empty: nothing is kept.
    """

    rounds: list[RoundRecord]
    baseline: dict[str, Any] | None
    arrays: dict[str, np.ndarray]
    label: str
    stopped: str | None = None

    def __repr__(self) -> str:
        """One line; ``to_json()`` and the fields keep the data."""
        kept = next((r for r in self.rounds if r.round == self.kept_round), None)
        where = "" if kept is None else f", sparsity={_short(kept.sparsity)}, accuracy={_short(kept.accuracy)}"
        return (f"PruneRetrainResult(rounds={len(self.rounds)}, kept_round={self.kept_round}{where}, "
                f"stopped={self.stopped!r})")  # fmt: skip

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a summary table and the plot (:func:`weightlab.core.richdisplay.prune_retrain_html`)."""
        from .richdisplay import prune_retrain_html

        return prune_retrain_html(self)

    def _repr_svg_(self) -> str:
        """The plot alone as an SVG document (:func:`weightlab.core.richdisplay.prune_retrain_svg`)."""
        from .richdisplay import STANDALONE_INK, prune_retrain_svg

        return prune_retrain_svg(self, ink=STANDALONE_INK)

    @property
    def kept_round(self) -> int:
        """The round whose weights ``arrays`` holds; 0 when none was kept (the model as it was)."""
        return max((r.round for r in self.rounds if r.kept), default=0)

    def to_json(self) -> dict[str, Any]:
        """``{"rounds": [{"round", "sparsity", "accuracy", "kept"}, ...]}``."""
        keys = ("round", "sparsity", "accuracy", "kept")
        return {"rounds": [{k: r.to_dict()[k] for k in keys} for r in self.rounds]}

    def to_dataframe(self) -> Any:
        """The rounds as a pandas DataFrame: ``round``, ``sparsity``, ``accuracy``, ``loss``,
        ``threshold`` (NaN where not measured), ``kept`` (bool). ImportError without pandas."""
        columns = [f.name for f in fields(RoundRecord)]
        rows = [[getattr(r, c) for c in columns] for r in self.rounds]
        numeric = {c: float for c in columns if c not in ("round", "kept")}
        return _pandas().DataFrame(rows, columns=columns).astype({**numeric, "kept": bool})


def _pandas() -> Any:
    """pandas, an optional dependency (ImportError when it is not installed)."""
    import importlib

    return importlib.import_module("pandas")

"""Scores of one evaluation pass: accuracy and loss against labels, agreement with the baseline.

Pure NumPy (no TensorFlow): every session (:class:`weightlab._tf.session.EngineSession`
for Keras models, :class:`weightlab._tf.passes.PassSession` for SavedModels,
frozen graphs and multi-output models) feeds its batches of outputs here, so
all of them compute the numbers of :class:`~weightlab.engine.events.Metrics`
the same way.

Loss: see :mod:`weightlab._tf.model`. Agreement: the outputs of the
unedited model on the held-out set (the *baseline*) are kept once per
held-out set; every later pass is compared with them (fraction of samples
whose ``argmax`` is unchanged in every output with a class axis of size >= 2,
and the mean absolute change of each output).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..core.errors import DataError
from .events import Metrics

__all__ = [
    "EPSILON",
    "Agreement",
    "OutputLog",
    "PassScorer",
    "Scores",
    "check_labels",
    "rows_are_probabilities",
]

#: Probability clipping of Keras' cross-entropy.
EPSILON = 1e-7


def rows_are_probabilities(out: np.ndarray) -> bool:
    """True when every row of ``out`` ``(B, C)`` is non-negative and sums to 1 within ``1e-3``."""
    return bool(np.all(out >= 0) and np.all(np.abs(out.sum(axis=1) - 1.0) <= 1e-3))


def check_labels(
    y: np.ndarray, n: int, num_classes: int, data_path: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """Return ``y`` as ``int64`` class indices ``(n,)`` in ``[0, num_classes)``.

    Raises
    ------
    DataError
        When the shape differs or a label is outside the model's classes.
    """
    y = np.asarray(y).astype(np.int64, copy=False)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"labels must have shape ({n},); received {y.shape}", data_path)
    c = num_classes
    if y.min() < 0 or y.max() >= c:
        raise DataError(
            f"labels must be class indices in [0, {c}) for this model's {c} outputs; received labels "
            f"from {int(y.min())} to {int(y.max())}: this held-out set does not fit the model",
            data_path,
        )
    return y


class Scores:
    """Per-sample correctness and loss of a pass, accumulated batch by batch.

    Parameters
    ----------
    y:
        Class indices ``(N,)``, ``int64``.
    num_classes:
        ``C``, the size of the scored output's class axis.
    """

    def __init__(self, y: np.ndarray, num_classes: int) -> None:
        self.y = y
        self.num_classes = num_classes
        n = y.shape[0]
        self.correct = np.zeros(n, dtype=bool)
        self.nll = np.zeros(n, dtype=np.float64)
        self.done = 0
        self.hits = 0
        self.probabilities: bool | None = None  # decided on the first batch

    def add(self, out: np.ndarray, is_logits: bool) -> None:
        """Score the next batch of outputs ``(B, C)``; rows past the held-out set are padding."""
        lo = self.done
        hi = min(self.y.shape[0], lo + out.shape[0])
        out = out[: hi - lo].astype(np.float64)
        yb = self.y[lo:hi]
        if self.probabilities is None:
            self.probabilities = not is_logits and rows_are_probabilities(out)
        ok = np.argmax(out, axis=1) == yb
        self.correct[lo:hi] = ok
        rows = np.arange(hi - lo)
        if self.probabilities:
            p = out / out.sum(axis=1, keepdims=True)
            self.nll[lo:hi] = -np.log(np.clip(p, EPSILON, 1.0 - EPSILON)[rows, yb])
        else:
            m = out.max(axis=1, keepdims=True)
            logsum = np.log(np.exp(out - m).sum(axis=1)) + m[:, 0]
            self.nll[lo:hi] = logsum - out[rows, yb]
        self.done = hi
        self.hits += int(ok.sum())

    def per_class(self) -> list[float]:
        """Accuracy of each class ``0 .. C-1`` (``nan`` for classes absent from ``y``)."""
        counts = np.bincount(self.y, minlength=self.num_classes)
        hits = np.bincount(self.y, weights=self.correct.astype(np.float64), minlength=self.num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
        return [float(v) for v in values]


class OutputLog:
    """The outputs of one pass, batch by batch, cut to the held-out set's ``n`` samples.

    Parameters
    ----------
    n:
        Number of held-out samples (rows past it are padding and dropped).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._parts: list[list[np.ndarray]] = []
        self._rows = 0

    def add(self, outputs: Sequence[np.ndarray]) -> None:
        """Append one batch: one array ``(B, ...)`` per output."""
        if not self._parts:
            self._parts = [[] for _ in outputs]
        take = min(self.n - self._rows, int(outputs[0].shape[0])) if len(outputs) else 0
        for part, out in zip(self._parts, outputs):
            part.append(np.asarray(out)[:take])
        self._rows += take

    def arrays(self) -> list[np.ndarray]:
        """One array ``(n, ...)`` per output."""
        return [np.concatenate(part) for part in self._parts]


class Agreement:
    """The baseline outputs of a held-out set and the agreement of later passes with them."""

    def __init__(self) -> None:
        self.baseline: list[np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the baseline (a new held-out set)."""
        self.baseline = None

    def compare(
        self, outputs: list[np.ndarray], *, is_baseline: bool
    ) -> tuple[float | None, list[float] | None]:
        """``(agreement, mean_abs_change)`` of ``outputs`` with the baseline.

        Parameters
        ----------
        outputs:
            One array ``(N, ...)`` per output, from a complete pass.
        is_baseline:
            True for a pass of the unedited model: its outputs become the
            baseline when none is stored yet.

        Returns
        -------
        tuple
            The fraction of samples whose ``argmax`` over the last axis is
            unchanged in every output of rank >= 2 with a last axis >= 2
            (None when there is no such output), and the mean absolute
            change of each output (float64). ``(None, None)`` when no
            baseline is stored yet and this is not a baseline pass (the
            unedited model was not evaluated on this held-out set).
        """
        if self.baseline is None:
            if not is_baseline:
                return None, None
            self.baseline = [np.array(o, copy=True) for o in outputs]
        same: np.ndarray | None = None
        changes = []
        for out, base in zip(outputs, self.baseline):
            changes.append(float(np.mean(np.abs(out.astype(np.float64) - base.astype(np.float64)))))
            if out.ndim >= 2 and out.shape[-1] >= 2:
                eq = np.argmax(out, axis=-1) == np.argmax(base, axis=-1)
                eq = eq.reshape(eq.shape[0], -1).all(axis=1)
                same = eq if same is None else same & eq
        return (None if same is None else float(same.mean())), changes


class PassScorer:
    """Everything one pass accumulates: label scores (when labelled) and the outputs.

    Parameters
    ----------
    y:
        Class indices ``(N,)``, or None when accuracy is not computed.
    num_classes:
        Size of the scored output's class axis (ignored without ``y``).
    n:
        Number of held-out samples.
    """

    def __init__(self, y: np.ndarray | None, num_classes: int, n: int) -> None:
        self.scores = None if y is None else Scores(y, num_classes)
        self.log = OutputLog(n)
        self.n = n

    @property
    def samples(self) -> int:
        """Labelled samples scored so far (0 without labels)."""
        return 0 if self.scores is None else self.scores.done

    @property
    def hits(self) -> int:
        """Correct predictions so far (0 without labels)."""
        return 0 if self.scores is None else self.scores.hits

    def add(self, outputs: Sequence[np.ndarray], class_scores: np.ndarray | None, is_logits: bool) -> None:
        """Add one batch: every compared output ``(B, ...)`` and the scored output's class scores ``(B, C)``."""
        self.log.add(outputs)
        if self.scores is not None and class_scores is not None:
            self.scores.add(class_scores, is_logits)

    def metrics(self, agreement: Agreement, *, is_baseline: bool, outputs: list[str], **extra) -> Metrics:
        """The :class:`Metrics` of the finished pass; ``extra`` are further Metrics fields."""
        agree, change = agreement.compare(self.log.arrays(), is_baseline=is_baseline)
        sc = self.scores
        return Metrics(
            accuracy=float(sc.correct.mean()) if sc is not None else float("nan"),
            loss=float(sc.nll.mean()) if sc is not None else float("nan"),
            per_class=sc.per_class() if sc is not None else [],
            num_samples=self.n,
            labels=sc is not None,
            agreement=agree,
            mean_abs_change=change,
            outputs=list(outputs),
            **extra,
        )

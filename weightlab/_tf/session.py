"""One opened model and held-out set in the engine: edits, incremental evaluation, caches.

:class:`EngineSession` is what the engine worker process holds for the window
and what ``weightlab eval`` uses headless, so both evaluate edits through the
same code. It imports TensorFlow and Keras.

Incremental evaluation
----------------------
The session analyses the model's functional graph once
(:func:`weightlab._tf.incremental.plan_graph`) and picks *cuts*: tensors
every path from the input to the output passes through, one just upstream of
each layer with weights (a residual block's input for the layers inside the
block). It records the held-out set's activations at those cuts during a pass
(the baseline pass records all of them) as *checkpoints*, within a memory
budget (``cache_budget``, 1 GiB by default; the latest cuts are preferred).
An evaluation starts from the latest checkpoint that is *valid* and runs only
the layers after it, built with the Keras functional API from the model's own
layers (``keras.Model(inputs=cut, outputs=[later cuts..., output])``); it
re-records the later checkpoints on the way. With no valid checkpoint (or none
stored: budget too small, graph not analysable) it runs the full model.

Validity is exact bookkeeping, not a heuristic: a checkpoint's activations are
a function of the held-out inputs and of the variables of the layers upstream
of its cut only. Every tensor currently differing from the file holds a
*version* (a number from a counter that never repeats, renewed whenever the
assigned values change); a tensor without a version holds its original values.
A checkpoint stores the ``(name, version)`` pairs of the edited tensors
upstream of its cut at recording time and is valid when they equal the current
pairs, hence exactly when those variables hold the same values. Reverting to
the baseline (or undoing an edit) makes checkpoints recorded before the edit
valid again if no later pass re-recorded them. A cancelled pass commits
nothing.

Compiled forward pass and batch size
------------------------------------
Each forward function (full model, or from one cut) is a ``tf.function`` traced
once: every batch has the same size, the last one padded with zeros (padded
rows are dropped before scoring; inference layers do not mix samples). The
held-out inputs are converted once to tensors on the evaluation device (the
first GPU when there is one), and checkpoints stay where they were computed, so
on a GPU machine the data never leaves the GPU between edits; only the class
scores of each batch are copied back for exact float64 metrics. XLA
(``jit_compile``) is used on a GPU and not on a CPU by default (see
:data:`JIT_DEFAULT`).

Unless the caller fixes it, the batch size ``B`` is the largest power of two with
``B * sample_bytes <= ACTIVATION_BUDGET`` (``sample_bytes``: bytes of all of
one sample's activations in the graph, an upper bound of a pass' working set),
clamped to ``[MIN_BATCH, MAX_BATCH]`` and to the number of samples. The CPU
maximum keeps one batch short (a newer edit cancels a pass between batches)
and progress frequent. A checkpoint whose downstream pass fits the same
budget for the whole set at once is stored as one tensor, and the pass from it
is a single call (one progress step).
"""

from __future__ import annotations

import itertools
import math
import os
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..core.dataset import conform_inputs, load_heldout
from ..core.errors import DataError, EngineError
from ..engine.events import Metrics
from ..engine.scoring import Agreement, PassScorer, check_labels
from .incremental import Cut, GraphPlan, plan_graph
from .model import Layout, build_model, check_model_io, file_layout, map_tensors, model_layout, prepare_arrays
from .runtime import EvaluationCancelled, device_name

__all__ = [
    "ACTIVATION_BUDGET",
    "DEFAULT_CACHE_BUDGET",
    "JIT_DEFAULT",
    "MAX_BATCH",
    "MIN_BATCH",
    "EngineSession",
    "ProgressCallback",
]

#: Default memory for cached activations (bytes).
DEFAULT_CACHE_BUDGET = 1 << 30
#: Bytes of activations one batch may need, per device kind ("CPU", "GPU").
ACTIVATION_BUDGET = {"CPU": 128 << 20, "GPU": 2 << 30}
#: Largest automatic batch size per device kind.
MAX_BATCH = {"CPU": 256, "GPU": 4096}
#: Smallest automatic batch size.
MIN_BATCH = 16
#: ``jit_compile`` when the caller does not choose, per device kind.
JIT_DEFAULT = {"CPU": False, "GPU": True}

#: ``progress(done_batches, total_batches, samples_done, correct_so_far)``.
ProgressCallback = Callable[[int, int, int, int], None]


@dataclass
class _Checkpoint:
    """Activations at a cut for the whole held-out set, one tensor per batch."""

    batches: list[Any]
    state: tuple[tuple[str, int], ...]


def _same(a: np.ndarray | None, b: np.ndarray) -> bool:
    """True when ``a`` holds exactly ``b``'s values (NaNs compare unequal: a new version)."""
    return a is not None and a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def _compile(model: keras.Model, jit: bool) -> Callable:
    """``fn(x) -> (recorded tensors, output, class scores, scores_are_logits)`` as a ``tf.function``.

    ``model`` maps a batch to ``[recorded..., final output]`` or to the final
    output alone. The class scores are the output itself or, when the final
    activation is a softmax, its input (logits), as Keras' own loss uses them.
    """

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def fn(x):
        outs = model(x, training=False)
        recs = list(outs[:-1]) if isinstance(outs, list | tuple) else []
        out = outs[-1] if isinstance(outs, list | tuple) else outs
        logits = getattr(out, "_keras_logits", None)
        if logits is not None:
            return recs, out, logits, tf.constant(True)
        return recs, out, out, tf.constant(False)

    return fn


def _output_name(model: keras.Model) -> str:
    """The name of a one-output model's output (its layer's name)."""
    names = getattr(model, "output_names", None) or []
    return str(names[0]) if names else "output"


#: Full-model forward functions per model and jit flag, shared by sessions on the same model.
_FULL: weakref.WeakKeyDictionary[Any, dict[bool, Callable]] = weakref.WeakKeyDictionary()


def _device_kind() -> str:
    try:
        return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    except Exception:  # noqa: BLE001  # pragma: no cover - broken driver setups: TF raises any kind
        return "CPU"


class EngineSession:
    """A model, its held-out set, the current edits and the activation cache.

    Parameters
    ----------
    model:
        A built one-input classifier with outputs ``(N, C)``, ``C >= 2``.
    layout:
        The file's tensor listing (see :func:`weightlab._tf.model.map_tensors`);
        None derives canonical names from the model.
    batch_size:
        Samples per forward pass; None chooses it from memory (see the module
        docstring).
    cache_budget:
        Bytes of activations the session may cache; 0 turns incremental
        evaluation off (every evaluation is a full pass).
    jit_compile:
        Compile forward passes with XLA; None uses :data:`JIT_DEFAULT`.
    model_path:
        The model file, named in errors.
    order_fallback:
        Map file tensors whose names match nothing by order and shape (see
        :func:`weightlab._tf.model.map_tensors`).

    Raises
    ------
    EngineError
        When the model is not a one-input, one-output classifier.
    """

    #: A SavedModel's signatures (none for Keras models; same interface as ``PassSession``).
    signatures: list[str] = []

    def __init__(
        self,
        model: keras.Model,
        layout: Layout | None = None,
        *,
        batch_size: int | None = None,
        cache_budget: int = DEFAULT_CACHE_BUDGET,
        jit_compile: bool | None = None,
        model_path: str | os.PathLike[str] | None = None,
        order_fallback: bool = False,
    ) -> None:
        self.model = model
        self.input_shape, self.num_classes = check_model_io(model, model_path)
        self.output_names = [_output_name(model)]
        self.tmap = map_tensors(
            model, model_layout(model) if layout is None else layout, order_fallback=order_fallback
        )
        self.cache_budget = max(0, int(cache_budget))
        self._kind = _device_kind()
        self.jit_compile = JIT_DEFAULT[self._kind] if jit_compile is None else bool(jit_compile)
        self._requested_batch = None if batch_size is None else max(1, int(batch_size))
        self._originals: dict[str, np.ndarray] = {}
        self._edited: dict[str, tuple[int, np.ndarray | None]] = {}
        self._sources: dict[str, int | None] = {}  # name -> the caller's version assigned last
        self._versions = itertools.count(1)
        self._plan: GraphPlan | None = None
        self.plan_problem: str | None = "incremental evaluation is off (cache budget 0)"
        if self.cache_budget > 0:
            try:
                self._plan = plan_graph(model)
                self.plan_problem = None
            except (ValueError, AttributeError, IndexError, TypeError) as exc:
                self.plan_problem = f"incremental evaluation is off: {exc}"
        self._stored: list[Cut] = []
        self._checkpoints: dict[int, _Checkpoint] = {}
        self._fns: dict[tuple[int, tuple[int, ...]], Callable] = {}
        self._batches: list[Any] | None = None
        self._y: np.ndarray | None = None
        self._n = 0
        self._agreement = Agreement()
        self.batch_size = 0
        self.data_path: str | None = None

    @classmethod
    def from_file(
        cls,
        model_path: str | os.PathLike[str],
        data_path: str | os.PathLike[str] | None = None,
        *,
        trust: bool = False,
        layout: Layout | None = None,
        **options: Any,
    ) -> EngineSession:
        """Build the model in ``model_path`` (see :func:`build_model`) and load ``data_path``.

        ``layout`` defaults to the file's own listing; ``options`` are those of
        the constructor.

        Raises
        ------
        EngineError, DataError
            With a user-facing message naming the file.
        """
        model = build_model(model_path, trust=trust)
        if layout is None:
            layout = file_layout(model_path) or model_layout(model)
        session = cls(model, layout, model_path=model_path, **options)
        if data_path is not None:
            data = load_heldout(data_path)
            session.set_heldout(data.x, data.y, data_path)
        return session

    # -- held-out set ---------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Samples in the held-out set (0 before one is set)."""
        return self._n

    @property
    def labelled(self) -> bool:
        """True when the held-out set has labels (accuracy is computed)."""
        return self._y is not None

    @property
    def cached_layers(self) -> list[str]:
        """Layers whose outputs are cached now (valid or not), in graph order."""
        return [c.layer for c in self._stored if c.position in self._checkpoints]

    @property
    def cache_bytes(self) -> int:
        """Bytes of the activations cached now."""
        return sum(
            int(math.prod(t.shape)) * t.dtype.size for ck in self._checkpoints.values() for t in ck.batches
        )

    def set_heldout(
        self, x: np.ndarray, y: np.ndarray | None, data_path: str | os.PathLike[str] | None = None
    ) -> None:
        """Use ``(x, y)`` as the held-out set; clears the activation cache and the baseline outputs.

        Parameters
        ----------
        x:
            Inputs ``(N, ...)``, any numeric dtype, cast to the model's input
            dtype; a missing trailing channel axis of size 1 is added (see
            :func:`weightlab.core.dataset.conform_inputs`).
        y:
            Class indices ``(N,)`` in ``[0, C)``; None for an unlabelled set
            (only the agreement with the baseline is reported).
        data_path:
            The held-out file, named in errors.

        Raises
        ------
        DataError
            When ``x`` does not fit the model's input shape, lengths differ,
            the set is empty or a label is outside ``[0, C)``.
        """
        x = conform_inputs(np.asarray(x), self.input_shape, data_path)
        n = int(x.shape[0])
        if n == 0:
            raise DataError("the held-out set is empty", data_path)
        if y is not None:
            y = check_labels(y, n, self.num_classes, data_path)
        x = x.astype(keras.backend.standardize_dtype(self.model.inputs[0].dtype), copy=False)
        b = self._choose_batch(n, x)
        batches = []
        with tf.device(f"/{self._kind}:0"):
            for lo in range(0, n, b):
                xb = x[lo : lo + b]
                if xb.shape[0] < b:
                    xb = np.concatenate([xb, np.zeros((b - xb.shape[0],) + xb.shape[1:], xb.dtype)])
                batches.append(tf.identity(tf.convert_to_tensor(xb)))
        self._checkpoints.clear()
        self._agreement.reset()
        self._batches, self._y, self._n, self.batch_size = batches, y, n, b
        self.data_path = None if data_path is None else os.fspath(data_path)
        rows = b * len(batches)
        self._stored = self._plan.select(self.cache_budget, rows) if self._plan is not None else []

    def _choose_batch(self, n: int, x: np.ndarray) -> int:
        if self._requested_batch is not None:
            return min(self._requested_batch, n)
        per_sample = self._plan.sample_bytes if self._plan is not None else 0
        per_sample = max(per_sample, x[:1].nbytes, 1)
        fit = ACTIVATION_BUDGET[self._kind] // per_sample
        b = 1 << max(0, int(fit).bit_length() - 1)
        return min(max(MIN_BATCH, min(b, MAX_BATCH[self._kind])), n)

    # -- edits ----------------------------------------------------------------------------
    def _assign(self, edited: Mapping[str, np.ndarray], versions: Mapping[str, int] | None = None) -> None:
        """Make the model hold ``edited`` and the original values everywhere else.

        With ``versions`` (the window's per-tensor versions,
        ``EditSession.edited_versions``), a tensor whose version equals the
        one assigned last is taken as unchanged without comparing values;
        without them the values are compared.
        """
        ready = prepare_arrays(self.tmap, edited)  # raises before anything is assigned
        try:
            for name, a in ready.items():
                source = None if versions is None else versions.get(name)
                if source is not None and name in self._edited and self._sources.get(name) == source:
                    continue
                if source is None and _same(self._edited.get(name, (0, None))[1], a):
                    continue
                var = self.tmap.variables[name]
                if name not in self._originals:
                    self._originals[name] = np.array(var.numpy(), copy=True)
                self._edited[name] = (next(self._versions), a)
                self._sources[name] = source
                var.assign(a)
            for name in [n for n in self._edited if n not in ready]:
                self.tmap.variables[name].assign(self._originals[name])
                del self._edited[name]
                self._sources.pop(name, None)
        except Exception:
            # Unknown variable contents: forget the cache and re-assign everything next time.
            self._checkpoints.clear()
            self._edited = {name: (next(self._versions), None) for name in self._originals}
            self._sources.clear()
            raise

    def _state(self, cut: Cut) -> tuple[tuple[str, int], ...]:
        """``(name, version)`` of the edited tensors that ``cut``'s activations depend on."""
        assert self._plan is not None
        var_ops = self._plan.var_ops
        out = []
        for name, (version, _) in self._edited.items():
            ops = var_ops.get(id(self.tmap.variables[name]))
            if ops is None or not ops.isdisjoint(cut.prefix_ops):
                out.append((name, version))
        return tuple(sorted(out))

    # -- evaluation ----------------------------------------------------------------------
    def _start(self) -> Cut | None:
        """The latest stored cut whose checkpoint is valid now, or None (start from the inputs)."""
        for cut in reversed(self._stored):
            ck = self._checkpoints.get(cut.position)
            if ck is not None and ck.state == self._state(cut):
                return cut
        return None

    def _regroup(self, cut: Cut, kept: list[Any]) -> list[Any]:
        """One tensor for the whole set when a pass from ``cut`` fits the activation budget at once.

        Passes from late cuts (a classifier head on pooled features) are then
        one call instead of one per batch; their progress has one step.
        """
        if len(kept) > 1 and cut.suffix_bytes * self.batch_size * len(kept) <= ACTIVATION_BUDGET[self._kind]:
            return [tf.concat(kept, axis=0)]
        return kept

    def _forward(self, start: Cut | None, record: list[Cut]) -> Callable:
        key = (-1 if start is None else start.position, tuple(c.position for c in record))
        fn = self._fns.get(key)
        if fn is None:
            if start is None and not record:
                per_model = _FULL.setdefault(self.model, {})
                fn = per_model.get(self.jit_compile)
                if fn is None:
                    fn = per_model[self.jit_compile] = _compile(self.model, self.jit_compile)
            else:
                source = self.model.inputs[0] if start is None else start.tensor
                outputs = [c.tensor for c in record] + [self.model.outputs[0]]
                fn = _compile(keras.Model(inputs=source, outputs=outputs), self.jit_compile)
            self._fns[key] = fn
        return fn

    def evaluate(
        self,
        edited: Mapping[str, np.ndarray] | None = None,
        *,
        versions: Mapping[str, int] | None = None,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Metrics:
        """Evaluate the model with ``edited`` tensors and the original values elsewhere.

        Parameters
        ----------
        edited:
            Canonical name -> values of *every* currently edited tensor (shape
            and dtype kind as the variable's); None or ``{}`` for the
            baseline.
        versions:
            Optional ``{name: version}`` of ``edited`` (the window's
            ``EditSession.edited_versions``; equal versions mean equal
            arrays): tensors whose version did not change since the last call
            are not compared or re-assigned. Without it, values are compared.
        progress:
            Called after each batch as ``progress(done_batches,
            total_batches, samples_done, correct_so_far)``.
        should_stop:
            Polled before each batch; True stops the pass with
            :class:`EvaluationCancelled` (the edits stay assigned, the cache
            keeps only what was valid before).

        Returns
        -------
        Metrics
            Equal to a full pass (and to ``model.evaluate``) whatever the
            path; ``mode``, ``cut``, ``layers_run`` say which layers ran;
            ``seconds`` is the wall time of this call.

        Raises
        ------
        EngineError
            When no held-out set is set, or an edited tensor is unknown or has
            the wrong shape or dtype (nothing is assigned then).
        EvaluationCancelled
            When ``should_stop()`` returned True.
        """
        t0 = time.perf_counter()
        if self._batches is None:
            raise EngineError("no held-out set: load one before evaluating")
        self._assign(edited or {}, versions)
        start = self._start()
        record = [c for c in self._stored if start is None or c.position > start.position]
        fn = self._forward(start, record)
        source = self._batches if start is None else self._checkpoints[start.position].batches
        for cut in record:  # stale now; re-recorded below when the pass completes
            self._checkpoints.pop(cut.position, None)
        fresh: list[list[Any]] = [[] for _ in record]
        scorer = PassScorer(self._y, self.num_classes, self._n)
        total = len(source)
        for b, xb in enumerate(source):
            if should_stop is not None and should_stop():
                raise EvaluationCancelled()
            recs, out, class_scores, is_logits = fn(xb)
            for kept, t in zip(fresh, recs):
                kept.append(t)
            scorer.add([out.numpy()], class_scores.numpy(), bool(is_logits))
            if progress is not None:
                progress(b + 1, total, scorer.samples, scorer.hits)
        for cut, kept in zip(record, fresh):
            self._checkpoints[cut.position] = _Checkpoint(self._regroup(cut, kept), self._state(cut))
        plan = self._plan
        layers_total = len(plan.node_positions) if plan is not None else 0
        return scorer.metrics(
            self._agreement,
            is_baseline=not self._edited,
            outputs=self.output_names,
            seconds=time.perf_counter() - t0,
            device=device_name(),
            mode="full" if start is None else "incremental",
            cut=None if start is None else start.layer,
            layers_run=layers_total if start is None or plan is None else plan.layers_after(start),
            layers_total=layers_total,
            batch_size=self.batch_size,
        )


"""One-shot, in-process evaluation for headless callers: the command line, :func:`weightlab.evaluate`, scripts.

Imports TensorFlow in the calling process (the window evaluates in the engine
worker process instead). The headless entry points enter the wall here and
nowhere else (import-linter: ``weightlab`` and ``weightlab.cli`` import
:mod:`weightlab._tf` only through this module).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..core.plan import Plan
from ..core.session import EditSession
from ..core.sweeps import RankResult, RankSpec, SweepLog, SweepResult, SweepSpec
from ..core.training import FinetuneResult, FinetuneSpec, PruneRetrainResult, PruneRetrainSpec
from ..engine.events import Metrics
from .passes import open_session
from .runtime import EvaluationCancelled, run_errors
from .session import EngineSession

__all__ = [
    "EvaluationCancelled",
    "evaluate",
    "evaluate_file",
    "evaluate_session",
    "finetune",
    "heldout_arrays",
    "inference_seconds",
    "materialise",
    "materialise_model",
    "open_session",
    "plan",
    "prune_retrain",
    "rank",
    "run_errors",
    "session_from_model",
    "sweep",
    "to_keras",
]


# -- in-memory models (the logic is in weightlab._tf.memory) -----------------------------------
def session_from_model(model: Any, *, session_class: type[EditSession] = EditSession) -> EditSession:
    """An edit session over a live, built Keras model: its variables are the tensors, no file involved.

    Parameters
    ----------
    model : keras.Model or tf_keras.Model
        A built Keras 3 model (``keras.Model``, also ``tf.keras``) or a
        ``tf_keras`` model: Sequential, functional, nested, or subclassed.
    session_class : type, optional
        :class:`~weightlab.core.session.EditSession` or a subclass, built as
        ``session_class(model_file, saver=...)``.

    Returns
    -------
    EditSession
        Its ``model`` is a :class:`~weightlab.core.model.ModelFile` with
        ``format == "memory"``, ``in_memory`` True, ``source`` the given
        model, ``path`` a display name (``"<name> (in memory)"``, never read
        or written), ``exec_path`` None (see :func:`materialise`). Tensors are
        read-only copies of the model's variables taken now (their dtypes,
        shapes in Keras axis order: a Dense kernel ``(in, out)``), under the
        canonical names :func:`weightlab.open` gives the model saved with
        ``model.save("m.keras")`` (``dense/kernel``,
        ``batch_normalization/moving_mean``); layer class names and the
        non-trainable tensors (BatchNorm statistics, frozen layers) as that
        file lists them. Edits work on copies: the model is never changed.
        ``session.save(path)`` writes through Keras' own saving by the
        path's ending (``.keras``, ``.h5``, ``.weights.h5``), atomically.

    Raises
    ------
    TypeError
        When ``model`` is not a Keras model.
    FormatError
        When the model is not built yet (the message says to call it on a
        batch or build it first).
    """
    from .memory import session_from_model as _make

    return _make(model, session_class=session_class)


def to_keras(session: EditSession, *, trust: bool = False) -> keras.Model:
    """A new Keras model holding the session's current weights; the source is never modified.

    Parameters
    ----------
    session : EditSession
        An in-memory session (:func:`session_from_model`) or a session on a
        Keras ``.keras``/``.h5`` model file.
    trust : bool, optional
        For files: as :func:`~weightlab._tf.model.build_model` (Lambda layers
        and custom objects refused unless True). Ignored for in-memory models.

    Returns
    -------
    keras.Model or tf_keras.Model
        In-memory: a clone of ``session.model.source`` of the same library,
        every variable assigned the session's current values (cast to the
        variable's dtype), compiled like the source when the source was
        compiled (same loss and metrics, a fresh optimizer of the same
        config), so ``m.evaluate(x, y)`` works at once. Files: the model
        built from the file, not compiled, the edited tensors assigned.

    Raises
    ------
    EngineError
        When Keras cannot copy or build the model (a subclassed model without
        ``get_config``; for files: a Lambda layer untrusted, a custom class, a
        weights-only file, a SavedModel, checkpoint or frozen graph), or an
        edited tensor cannot be mapped to it; the message names the model.
    """
    from .memory import to_keras as _to_keras

    return _to_keras(session, trust=trust)


def materialise(model_file: Any) -> Path:
    """The file another process builds ``model_file``'s executable model from (its ``exec_path``).

    For a file, the file itself. For an in-memory model, written once: the
    model with the ORIGINAL (unedited) values the session read, saved by
    Keras as ``<name>.keras`` in a private folder
    (``tempfile.mkdtemp(prefix="weightlab-memory-")``): the source model
    itself when it still holds those values (saving only reads it), else a
    clone holding them, compiled like the source (training reads the loss
    and optimizer). The edited
    arrays are applied by whoever evaluates, exactly as for files. The folder
    is removed by ``model_file.close()``, when ``model_file`` is
    garbage-collected, and at interpreter exit.

    Parameters
    ----------
    model_file : ModelFile
        ``session.model``.

    Returns
    -------
    pathlib.Path
        ``model_file.exec_path`` (set by this call for in-memory models).

    Raises
    ------
    EngineError
        When Keras cannot copy or save the model.
    """
    if not getattr(model_file, "in_memory", False):
        return Path(model_file.exec_path)
    from .memory import materialise as _materialise

    return _materialise(model_file)


def materialise_model(model: Any) -> Path:
    """A ``.keras`` file of a live Keras model as it is now (see :func:`weightlab._tf.memory.materialise_model`).

    Raises
    ------
    TypeError
        When ``model`` is not a Keras model.
    FormatError
        When it is not built.
    EngineError
        When Keras cannot save it.
    """
    from .memory import materialise_model as _write

    return _write(model)


def heldout_arrays(data: Any) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(x, y or None, file or None)`` of held-out data in any form :func:`evaluate_session` takes.

    See :func:`weightlab._tf.memory.heldout_arrays` (one-hot labels become
    class indices; a ``tf.data.Dataset`` is read once and concatenated).

    Raises
    ------
    DataError
        When the data is malformed.
    TypeError
        When ``data`` is none of the forms.
    """
    from .memory import heldout_arrays as _arrays

    return _arrays(data)


def evaluate_session(
    session: EditSession, data: Any, *, trust: bool = False, batch_size: int = 256, **options: Any
) -> Metrics:
    """Evaluate a session's current weights on held-out data, in this process.

    Parameters
    ----------
    session : EditSession
        An in-memory session (evaluated from a clone of its source model,
        no file) or a session on any evaluable model file (see
        :func:`weightlab._tf.passes.open_session`).
    data : str, os.PathLike, tuple, numpy.ndarray or tf.data.Dataset
        * a held-out ``.npz`` path (arrays ``x`` and optionally ``y``, see
          :func:`weightlab.core.dataset.load_heldout`);
        * ``(x, y)``: inputs ``(N, ...)`` of any real dtype (cast to the
          model's input dtype; a missing trailing channel axis of size 1 is
          added) and class indices ``(N,)`` in ``[0, C)``;
        * ``x`` alone: no labels, only the agreement with the unedited
          model is reported (``labels`` False, ``accuracy`` and ``loss``
          NaN);
        * a ``tf.data.Dataset`` yielding batches of ``(x, y)`` (a third
          element, sample weights, is ignored) or of ``x``: every batch is
          read once and concatenated in memory, so it must be finite and
          fit in memory.
    trust : bool, optional
        For files: allow code in the file (see :func:`weightlab._tf.passes.open_session`).
    batch_size : int, optional
        Samples per forward pass.
    options
        For files: ``architecture``, ``signature``, ``output``, ``input``;
        for in-memory models: ``output`` (a model with several outputs),
        ``cache_budget``, ``jit_compile``.

    Returns
    -------
    Metrics
        Accuracy (fraction in ``[0, 1]``), loss (mean sparse categorical
        cross-entropy, nats), per-class accuracy, agreement with the unedited
        model, samples, seconds, device. When the session has edits,
        ``baseline`` holds the unedited model's Metrics on the same data
        (None otherwise).

    Raises
    ------
    DataError
        When the data is malformed or does not fit the model (the message
        names the file for ``.npz`` data).
    EngineError
        When no executable model can be built safely (files untrusted), an
        option does not apply, or the model fails while running.
    TypeError
        When ``data`` is none of the forms above.
    """
    from .memory import evaluate_session as _evaluate

    return _evaluate(session, data, trust=trust, batch_size=batch_size, **options)



def evaluate(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_path: str | os.PathLike[str] | None = None,
) -> Metrics:
    """Evaluate a classifier on ``(x, y)``, batch by batch (one full pass, no cache).

    A one-shot :class:`weightlab._tf.session.EngineSession` with a cache
    budget of 0.

    Parameters
    ----------
    model:
        One-input, one-output classifier with outputs ``(N, C)``.
    x:
        Inputs ``(N, ...)``, any numeric dtype; cast to the model's input
        dtype. A missing trailing channel axis of size 1 is added (see
        :func:`weightlab.core.dataset.conform_inputs`).
    y:
        Class indices ``(N,)``, integers in ``[0, C)``.
    batch_size:
        Samples per forward pass.
    progress:
        Called as ``progress(done_batches, total_batches)`` after each batch.
    should_stop:
        Polled between batches; when it returns True the evaluation stops by
        raising :class:`EvaluationCancelled`.
    data_path:
        The held-out file, named in errors.

    Returns
    -------
    Metrics
        Accuracy, loss (see the module docstring), per-class accuracy (length
        ``C``, ``nan`` for classes absent from ``y``), sample count, seconds,
        device.

    Raises
    ------
    DataError
        When ``x`` does not fit the model's input shape, lengths differ, or a
        label is outside ``[0, C)``.
    EngineError
        When the model is not a one-input classifier.
    EvaluationCancelled
        When ``should_stop()`` returned True.
    """
    session = EngineSession(model, [], batch_size=batch_size, cache_budget=0)
    session.set_heldout(x, y, data_path)
    report = None if progress is None else (lambda done, total, *_: progress(done, total))
    return session.evaluate(progress=report, should_stop=should_stop)


def evaluate_file(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    trust: bool = False,
    batch_size: int = 256,
    **options: Any,
) -> Metrics:
    """Build a model, assign edited tensors and evaluate it on a held-out set (one shot).

    Parameters
    ----------
    model_path:
        Any evaluable model (see :func:`weightlab._tf.passes.open_session`).
    data_path:
        Held-out ``.npz`` (see :func:`weightlab.core.dataset.load_heldout`).
    edited:
        Canonical name -> new values (shape and dtype kind must match).
    trust, batch_size:
        As for :func:`~weightlab._tf.model.build_model` and :func:`evaluate`.
    options:
        ``architecture``, ``signature``, ``output``, ``input`` of
        :func:`~weightlab._tf.passes.open_session`.

    Raises
    ------
    EngineError, DataError
        With a user-facing message naming the file.
    """
    with run_errors(model_path):
        session = open_session(
            model_path, data_path, trust=trust, batch_size=batch_size, cache_budget=0, **options
        )
        if edited:
            session.evaluate()  # the unedited outputs, for the agreement fields
        return session.evaluate(edited)


def _points_session(
    model_path: str | os.PathLike[str], data_path: str | os.PathLike[str], edited: Mapping[str, np.ndarray] | None,
    trust: bool, options: Mapping[str, Any],
) -> tuple[Any, Any, Any]:  # fmt: skip
    """``(session, PointEvaluator, ModelFile)`` for a sweep or a ranking."""
    from .points import PointEvaluator
    from .sweep import engine_model_file

    session = open_session(model_path, data_path, trust=trust, **options)
    evaluator = PointEvaluator(session, edited)
    return session, evaluator, engine_model_file(session, model_path, evaluator.originals)


def sweep(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    spec: SweepSpec,
    *,
    edited: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[float | None, str, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    trust: bool = False,
    workers: int | None = 1,
    ray_address: str | None = None,
    **options: Any,
) -> SweepResult:
    """Run a sweep in this process (see :mod:`weightlab._tf.sweep`).

    Parameters
    ----------
    model_path, data_path:
        Any evaluable model and its held-out ``.npz`` (as :func:`evaluate_file`).
    spec:
        The sweep.
    edited:
        Canonical name -> values of tensors already edited (the base the
        points are added to); None: the file as stored.
    progress:
        ``progress(fraction, message, point)`` after each point.
    should_stop:
        Polled between batches; True ends the sweep early: the points so far
        are returned with ``complete`` False.
    log_path:
        Partial results, one JSON line per point (:class:`~weightlab.core.sweeps.SweepLog`):
        created when absent, resumed when it holds this sweep's points.
    trust, options:
        As for :func:`evaluate_file` (``batch_size``, ``cache_budget``...).
    workers:
        Processes measuring points: 1 (the default) measures them in this
        process; N > 1 in N local worker processes (:mod:`weightlab._tf.parallel`);
        None: one per core (:func:`os.cpu_count`). With ``ray_address``, the
        number of Ray actors (None: the cluster's CPUs).
    ray_address:
        None: no Ray. ``""`` or ``"local"``: a local Ray instance
        (``ray.init()``); otherwise the address of a running Ray cluster
        (:mod:`weightlab._tf.cluster`; needs ``pip install 'weightlab[cluster]'``).
        The result equals the one-process result either way.

    Raises
    ------
    EngineError, DataError, FormatError
        With a user-facing message naming the file.
    RecipeError
        When a target or value does not fit the model.
    DataError
        When ``log_path`` holds another sweep's log.
    EngineError
        When a worker process dies, or Ray is asked for and not installed.
    """
    from .sweep import run_sweep

    if ray_address is not None or workers != 1:
        return _sweep_elsewhere(model_path, data_path, spec, edited, progress, should_stop, log_path, trust,
                                workers, ray_address, options)
    with run_errors(model_path):
        _, evaluator, model = _points_session(model_path, data_path, edited, trust, options)
        try:
            log = None if log_path is None else SweepLog.open(log_path, spec)
            return run_sweep(
                evaluator, model, spec, progress=progress, should_stop=should_stop, log=log, partial_on_cancel=True
            )
        finally:
            model.close()


def _sweep_elsewhere(
    model_path: str | os.PathLike[str], data_path: str | os.PathLike[str], spec: SweepSpec,
    edited: Mapping[str, np.ndarray] | None, progress: Any, should_stop: Callable[[], bool] | None,
    log_path: str | os.PathLike[str] | None, trust: bool, workers: int | None, ray_address: str | None,
    options: Mapping[str, Any],
) -> SweepResult:  # fmt: skip
    """:func:`sweep` in worker processes (:mod:`weightlab._tf.parallel`) or on Ray (:mod:`weightlab._tf.cluster`)."""
    from ..core.errors import EngineError
    from .parallel import default_workers, run_parallel

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise EngineError(f"workers must be a whole number of at least 1 (or None: one per core); got {workers!r}")
    log = None if log_path is None else SweepLog.open(log_path, spec)
    kw: dict[str, Any] = dict(edited=edited, progress=progress, should_stop=should_stop, log=log, trust=trust,
                              options=options)  # fmt: skip
    if ray_address is not None:
        from .cluster import run_ray

        return run_ray(model_path, data_path, spec, address=ray_address, workers=workers, **kw)
    return run_parallel(model_path, data_path, spec, workers=default_workers() if workers is None else workers, **kw)


def rank(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    spec: RankSpec,
    *,
    edited: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[float | None, str, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trust: bool = False,
    **options: Any,
) -> RankResult:
    """Rank a layer's output units in this process (see :mod:`weightlab._tf.rank`).

    Parameters as for :func:`sweep`; a cancelled ranking returns the units
    measured so far (``complete`` False).

    Raises
    ------
    EngineError, DataError, FormatError
        With a user-facing message naming the file.
    RecipeError
        When the layer has no kernel.
    """
    from .rank import run_rank

    with run_errors(model_path):
        _, evaluator, model = _points_session(model_path, data_path, edited, trust, options)
        try:
            return run_rank(evaluator, model, spec, progress=progress, should_stop=should_stop, partial_on_cancel=True)
        finally:
            model.close()


def plan(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    spec: SweepSpec,
    budget_pp: float,
    *,
    edited: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[float | None, str, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    trust: bool = False,
    workers: int | None = 1,
    ray_address: str | None = None,
    **options: Any,
) -> tuple[Plan, SweepResult]:
    """Sweep, pick per target the strongest value within ``budget_pp``, evaluate the composed recipe once.

    The sweep as :func:`sweep` (mode ``"each"`` for per-target curves); the
    plan as :func:`weightlab.core.plan.plan`; its joint point measured on the
    same opened model (:func:`weightlab._tf.sweep.evaluate_plan`).

    Returns
    -------
    tuple
        ``(plan with its joint point, the sweep's result)``. A cancelled
        sweep gives a plan of the points so far, not evaluated (``joint``
        None).

    ``workers`` and ``ray_address`` as for :func:`sweep`: the sweep runs
    there, the plan's joint point in this process.

    Raises
    ------
    As :func:`sweep`.
    """
    from ..core.plan import plan as make_plan
    from .sweep import evaluate_plan, run_sweep

    if ray_address is not None or workers != 1:
        result = _sweep_elsewhere(model_path, data_path, spec, edited, progress, should_stop, log_path, trust,
                                  workers, ray_address, options)
        chosen = make_plan(result, budget_pp)
        if result.complete:
            with run_errors(model_path):
                _, evaluator, model = _points_session(model_path, data_path, edited, trust, options)
                try:
                    evaluate_plan(evaluator, model, chosen, should_stop=should_stop)
                except EvaluationCancelled:
                    pass
                finally:
                    model.close()
        return chosen, result
    with run_errors(model_path):
        _, evaluator, model = _points_session(model_path, data_path, edited, trust, options)
        try:
            log = None if log_path is None else SweepLog.open(log_path, spec)
            result = run_sweep(
                evaluator, model, spec, progress=progress, should_stop=should_stop, log=log, partial_on_cancel=True
            )
            chosen = make_plan(result, budget_pp)
            if result.complete:
                try:
                    evaluate_plan(evaluator, model, chosen, should_stop=should_stop)
                except EvaluationCancelled:
                    pass
            return chosen, result
        finally:
            model.close()


def finetune(
    model_path: str | os.PathLike[str],
    spec: FinetuneSpec,
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    trust: bool = False,
    on_progress: Callable[[float | None, str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    gpus: int | None = None,
) -> FinetuneResult:
    """Fine-tune a Keras model in this process (see :mod:`weightlab._tf.train`).

    Parameters
    ----------
    model_path:
        A ``.keras`` or ``.h5`` model with its architecture.
    spec:
        The fine-tune (:class:`~weightlab.core.training.FinetuneSpec`).
    edited:
        Canonical name -> current values of edited tensors (the model as
        currently edited); None: the file as stored.
    trust:
        As for :func:`~weightlab._tf.model.build_model`.
    on_progress:
        ``on_progress(fraction, message, partial)`` with the partial dicts of
        :mod:`weightlab.core.training`.
    should_stop:
        Polled after every batch; True cancels: the best or last complete
        epoch is kept (``spec.on_cancel``) and returned with ``cancelled`` True.
    gpus:
        None: TensorFlow's placement (the first GPU when present); 0: the
        CPU; 1: one GPU; N >= 2: the first N GPUs through
        ``tf.distribute.MirroredStrategy`` (see :func:`weightlab._tf.train.open_trainable`).

    Returns
    -------
    FinetuneResult

    Raises
    ------
    EngineError
        For a model Keras cannot rebuild (SavedModel, checkpoint, frozen
        graph, weights only: "training needs a Keras model"), naming the file.
    DataError
        For training, validation or held-out data that does not fit.
    EvaluationCancelled
        When cancelled before the first epoch ended.
    """
    from .train import open_trainable, run_finetune

    with run_errors(model_path):
        tm = open_trainable(model_path, trust=trust, gpus=gpus, seed=spec.seed)
        return run_finetune(tm, spec, edited, on_progress=on_progress, should_stop=should_stop)


def prune_retrain(
    model_path: str | os.PathLike[str],
    spec: PruneRetrainSpec,
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    trust: bool = False,
    on_progress: Callable[[float | None, str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    gpus: int | None = None,
) -> PruneRetrainResult:
    """Iterative prune-and-retrain in this process (see :func:`weightlab._tf.train.run_prune_retrain`).

    Parameters and errors as for :func:`finetune`; also ``RecipeError`` when
    ``spec.target`` matches no tensor. A cancel ends the rounds: the rounds
    done are returned with ``stopped`` saying so.
    """
    from .train import open_trainable, run_prune_retrain

    with run_errors(model_path):
        tm = open_trainable(model_path, trust=trust, gpus=gpus, seed=spec.finetune_spec.seed)
        return run_prune_retrain(tm, spec, edited, on_progress=on_progress, should_stop=should_stop)


def inference_seconds(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    repeats: int = 5,
    trust: bool = False,
) -> float:
    """Median wall-clock seconds of one full forward pass over the held-out set (see
    :func:`weightlab._tf.train.inference_seconds`)."""
    from .train import inference_seconds as _seconds

    with run_errors(model_path):
        return _seconds(model_path, data_path, edited, repeats=repeats, trust=trust)

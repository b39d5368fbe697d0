"""WeightLab: look inside trained TensorFlow/Keras models and edit their weights by hand.

Python API (the same core objects the window and the ``weightlab`` command use)::

    import weightlab
    from weightlab.edits import Clip, ZeroNeurons

    s = weightlab.open("model.keras")          # reads tensors as data; runs no model code
    s.array("conv2d/kernel")                    # current values (numpy, read-only)
    s.apply(Clip(target="conv2d/kernel", min=-0.1, max=0.1))
    s.apply(ZeroNeurons(target="dense", neurons=[0, 3]))
    s.undo(); s.redo()
    recipe = s.to_recipe()                      # {"version": 1, "edits": [...]}
    s.save("model-edited.keras")                # same format, atomic, never over the original
    weightlab.evaluate(s, "heldout.npz")        # accuracy/loss (imports TensorFlow)

Sweeps, rankings and budget plans (issue 11; they import TensorFlow too)::

    r = weightlab.sweep("model.keras", "heldout.npz", op="clip", param="threshold",
                        values=[0.5, 0.2, 0.1, 0.05], mode="each")
    r.to_json(); r.to_csv(); r.to_dataframe()  # one row per point (pandas optional)
    k = weightlab.rank("model.keras", "heldout.npz", layer="dense")
    p = weightlab.plan("model.keras", "heldout.npz", op="prune_magnitude", param="sparsity",
                       range="0.1:0.9:0.1", budget_pp=1.0)
    p.joint_drop_pp, p.sum_single_drops_pp; p.recipe()

Fine-tuning and prune-and-retrain (issue 12; they import TensorFlow too)::

    r = weightlab.finetune("model.keras", "train.npz", val_split=0.1, epochs=5, lr=1e-3,
                           data="heldout.npz", output="tuned.keras")   # pruned weights stay 0
    r.to_json(); r.to_dataframe()             # one row per epoch (pandas)
    q = weightlab.prune_retrain("model.keras", "train.npz", val_split=0.1, rounds=3,
                                threshold=0.05, factor=0.8, epochs=2, data="heldout.npz")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from weightlab.core.errors import (
    DataError,
    EngineError,
    FormatError,
    RecipeError,
    WeightLabError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from weightlab.core.plan import Plan
    from weightlab.core.session import EditSession
    from weightlab.core.sweeps import RankResult, SweepResult
    from weightlab.core.training import FinetuneResult, PruneRetrainResult

__version__ = "0.1.0"
__all__ = [
    "DataError",
    "EngineError",
    "FormatError",
    "RecipeError",
    "WeightLabError",
    "evaluate",
    "finetune",
    "open",
    "plan",
    "prune_retrain",
    "rank",
    "sweep",
]


def open(path: str | os.PathLike[str]) -> EditSession:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a model file for inspection and editing.

    Reads the layer/tensor structure with the format's own reader (h5py for
    Keras files; for SavedModel folders, checkpoints and frozen GraphDefs,
    TensorFlow's readers in a child process); tensor values are read on first
    use. No model code runs and TensorFlow is not imported in this process.
    Close ``session.model`` when done (it ends a reader process, if any).

    Returns
    -------
    EditSession
        With ``.model`` (the :class:`~weightlab.core.model.ModelFile`),
        ``apply``/``undo``/``redo``/``save``/``to_recipe``.

    Raises
    ------
    FormatError
        When the file is missing, unreadable or not a supported model file.
    """
    from weightlab.formats import open_session

    return open_session(path)


def evaluate(
    session_or_path: EditSession | str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    trust: bool = False,
    batch_size: int = 256,
    **options: Any,
) -> Any:
    """Evaluate a model (with a session's current edits) on a held-out ``.npz`` set.

    Imports TensorFlow in this process (the GUI uses a worker process instead).
    ``options`` are ``architecture`` (for a checkpoint), ``signature``,
    ``output`` and ``input`` (see :func:`weightlab._tf.passes.open_session`).

    Returns
    -------
    Metrics
        ``accuracy``, ``loss``, ``per_class``, ``num_samples``, ``seconds``, ``device``.

    Raises
    ------
    EngineError
        When no executable model can be built safely (Lambda layers, custom
        objects, weights-only files) and ``trust`` is False.
    DataError
        When the held-out set is malformed or does not fit the model.
    """
    from weightlab._tf.headless import evaluate_file
    from weightlab.core.session import EditSession

    if isinstance(session_or_path, EditSession):
        return evaluate_file(
            session_or_path.model.path,
            data,
            session_or_path.edited_arrays(),
            trust=trust,
            batch_size=batch_size,
            **options,
        )
    return evaluate_file(session_or_path, data, None, trust=trust, batch_size=batch_size, **options)


#: Keyword arguments of :func:`sweep` and :func:`plan` that are fields of the sweep's spec.
_SPEC_OPTIONS = ("max_points", "initial_points", "scale", "resolution_pp")


def _parallel(workers: int | None, ray: str | bool | None) -> dict[str, Any]:
    """The parallel options of a sweep, passed on only when they ask for more than this process.

    ``workers`` 1 (the default) is this process, None one worker per core;
    ``ray`` None or False is no Ray, True or ``""`` a local Ray, else its address.
    """
    out: dict[str, Any] = {}
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise RecipeError(f"sweep: workers must be a whole number >= 1 (or None: one per core); got {workers!r}")
    if workers != 1:
        out["workers"] = workers
    if ray is not None and ray is not False:
        out["ray_address"] = "" if ray is True else str(ray)
    return out


def sweep(
    model: EditSession | str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    op: str,
    param: str,
    values: Iterable[float] | str | None = None,
    range: Sequence[float] | str | None = None,  # noqa: A002 - as the command's --range
    adaptive: Sequence[float] | str | bool | None = None,
    targets: str | Iterable[str] | None = None,
    mode: str = "together",
    budget_pp: float | None = None,
    metric: str = "accuracy",
    fixed: Mapping[str, Any] | None = None,
    coupled: bool = False,
    log: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    ray: str | bool | None = None,
    progress: Callable[[float | None, str, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trust: bool = False,
    **options: Any,
) -> SweepResult:
    """Measure the model while one numeric parameter of one edit varies (a sensitivity sweep).

    Imports TensorFlow in this process. Every point is the model with the
    edit ``op(param=value)`` applied to the targets (mode ``"together"``: all
    of them at once, one curve named by the glob; ``"each"``: every matched
    tensor, or layer for neuron ops, alone, one curve each), evaluated on the
    held-out set; the model file is never changed.

    Parameters
    ----------
    model:
        A model file, or an open :class:`~weightlab.core.session.EditSession`
        whose current (edited) tensors are the base of every point.
    data:
        Held-out ``.npz`` with ``x`` (and ``y``; without labels only the
        agreement with the unedited model is measured).
    op, param:
        A catalogue op and one of its sweepable parameters
        (:func:`weightlab.core.catalogue.sweepable_params`): ``clip``/``threshold``
        (``min=-t, max=t``), ``prune_magnitude``/``sparsity``, ``add_noise``/``std``...
    values, range, adaptive:
        Exactly one: explicit values (a list, or ``"0.3,0.1"``); a range
        ``(start, stop, step)`` or ``"start:stop:step"`` (stop included);
        adaptive bounds ``(low, high)``, ``"low:high"`` or True (the
        parameter's valid range): a coarse grid, then refined where the metric
        falls fastest.
    targets:
        Globs over canonical names (``"*/kernel"``, the default), tensor or
        layer names, or coupled-group ids (``"group:add"``).
    mode:
        ``"together"`` or ``"each"``.
    budget_pp:
        Early stop per target once its drop exceeds this many percentage points.
    metric:
        ``"accuracy"`` or ``"agreement"``: what early stop and refinement follow.
    fixed:
        The op's other parameters (``{"scope": "global"}``).
    coupled:
        Each mode with a neuron op: sweep layers coupled by a residual
        ``Add``, a ``Concatenate`` or a BatchNormalization as one group.
    log:
        A JSON-lines file of partial results: written point by point; a
        second call with the same sweep and ``log`` measures only the points
        it lacks.
    workers, ray:
        ``workers``: processes measuring points, 1 (the default) this one,
        None one per core; ``ray``: a Ray cluster's address, ``""`` or True a
        local Ray (``pip install 'weightlab[cluster]'``), with ``workers``
        actors (None: the cluster's CPUs). The result equals the
        one-process result (:mod:`weightlab._tf.parallel`, :mod:`weightlab._tf.cluster`).
    progress, should_stop:
        ``progress(fraction, message, point)`` after each point;
        ``should_stop()`` polled between batches, True ends the sweep early
        with the points so far (``complete`` False).
    trust, options:
        As for :func:`evaluate` (``batch_size``, ``architecture``,
        ``signature``...); further spec fields (``max_points``,
        ``initial_points``, ``scale``, ``resolution_pp``) go to the spec.

    Returns
    -------
    SweepResult
        ``baseline`` and ``points`` (accuracy and agreement as fractions with
        95 % Wilson intervals, loss, per-class accuracy), ``notes`` per
        target ("edited alone", "coupled with ..."), ``stopped`` (early
        stops), ``complete``; ``to_json()``, ``to_csv()``, ``to_dataframe()``
        (pandas), ``threshold(target, budget_pp)``.

    Raises
    ------
    RecipeError
        For an unknown op or parameter, bad values, or a target that matches
        nothing (before TensorFlow is imported).
    FormatError, DataError, EngineError
        When the model or held-out file is missing or unusable, or ``log``
        holds another sweep's log; the message names the file.
    """
    from weightlab.analysis import check_sweep, model_source, sweep_spec

    spec_fields = {k: options.pop(k) for k in _SPEC_OPTIONS if k in options}
    spec = sweep_spec(
        op, param, values=values, range=range, adaptive=adaptive, targets=targets, mode=mode,
        budget_pp=budget_pp, metric=metric, fixed=fixed, coupled=coupled, **spec_fields,
    )  # fmt: skip
    path, edited = model_source(model)
    parallel = _parallel(workers, ray)
    check_sweep(spec, path, data)
    from weightlab._tf import headless

    return headless.sweep(
        path, data, spec, edited=edited, progress=progress, should_stop=should_stop, log_path=log, trust=trust,
        **parallel, **options,
    )  # fmt: skip


def rank(
    model: EditSession | str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    layer: str,
    ablation: str = "zero",
    cumulative: bool = True,
    batchnorm: bool | None = None,
    progress: Callable[[float | None, str, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trust: bool = False,
    **options: Any,
) -> RankResult:
    """Rank a layer's output neurons/filters by the accuracy each one's ablation costs.

    Imports TensorFlow in this process. Each unit is ablated alone (``"zero"``:
    its kernel slice and bias zeroed, and a following BatchNormalization's
    channel when one follows; ``"mean"``: its output replaced by its mean over
    the held-out set) and the model evaluated.

    Parameters
    ----------
    model, data, progress, should_stop, trust, options:
        As for :func:`sweep`.
    layer:
        A layer with a kernel (Dense, Conv...).
    ablation:
        ``"zero"`` or ``"mean"``.
    cumulative:
        Also measure the curves of the ``k`` most and least important units
        ablated together, ``k = 1 .. n``.
    batchnorm:
        Zero ablation: silence the following BatchNormalization's channel too
        (None: when one follows).

    Returns
    -------
    RankResult
        ``units`` largest drop first; ``drop`` is baseline accuracy minus
        ablated accuracy, a fraction (negative: removing the unit raised
        accuracy, see ``raising()``); ``to_json()``, ``to_csv()``,
        ``to_dataframe()``.

    Raises
    ------
    RecipeError
        When the layer does not exist or has no kernel, or the ablation is unknown.
    FormatError, DataError, EngineError
        As :func:`sweep`.
    """
    from weightlab.analysis import check_rank, model_source, rank_spec

    spec = rank_spec(layer, ablation=ablation, cumulative=cumulative, batchnorm=batchnorm)
    path, edited = model_source(model)
    check_rank(spec, path, data)
    from weightlab._tf import headless

    return headless.rank(
        path, data, spec, edited=edited, progress=progress, should_stop=should_stop, trust=trust, **options
    )


def plan(
    model: EditSession | str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    op: str,
    param: str,
    budget_pp: float,
    values: Iterable[float] | str | None = None,
    range: Sequence[float] | str | None = None,  # noqa: A002 - as the command's --range
    adaptive: Sequence[float] | str | bool | None = None,
    targets: str | Iterable[str] | None = None,
    metric: str = "accuracy",
    fixed: Mapping[str, Any] | None = None,
    coupled: bool = False,
    log: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    ray: str | bool | None = None,
    progress: Callable[[float | None, str, Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trust: bool = False,
    **options: Any,
) -> Plan:
    """The strongest value per target within an accuracy budget, composed and evaluated once.

    Sweeps every target alone (mode ``"each"``, stopping each past the
    budget), picks per target the strongest value whose drop stays within
    ``budget_pp`` (interpolated between measured points,
    :func:`weightlab.core.plan.plan`), then evaluates all choices together.

    Parameters
    ----------
    budget_pp:
        Largest drop allowed per target, in percentage points (>= 0).
    model, data, op, param, values, range, adaptive, targets, metric, fixed, coupled, log,
    workers, ray, progress, should_stop, trust, options:
        As for :func:`sweep`.

    Returns
    -------
    Plan
        ``choices`` (target, value, single-target drop in pp),
        ``sum_single_drops_pp``, ``joint_drop_pp`` (the composed edits
        evaluated together; None when the sweep was stopped early),
        ``interaction_pp``, ``recipe(model_file, source)``, ``to_json()``.

    Raises
    ------
    RecipeError
        For a negative budget, a parameter without a stronger direction, or
        as :func:`sweep`.
    FormatError, DataError, EngineError
        As :func:`sweep`.
    """
    from weightlab.analysis import check_sweep, model_source, sweep_spec

    spec_fields = {k: options.pop(k) for k in _SPEC_OPTIONS if k in options}
    if isinstance(budget_pp, bool) or not isinstance(budget_pp, (int, float)) or not 0 <= budget_pp < float("inf"):
        raise RecipeError(f"plan: budget must be a finite number of percentage points >= 0; got {budget_pp!r}")
    spec = sweep_spec(
        op, param, values=values, range=range, adaptive=adaptive, targets=targets, mode="each",
        budget_pp=budget_pp, metric=metric, fixed=fixed, coupled=coupled, **spec_fields,
    )  # fmt: skip
    path, edited = model_source(model)
    parallel = _parallel(workers, ray)
    check_sweep(spec, path, data)
    from weightlab._tf import headless

    chosen, _ = headless.plan(
        path, data, spec, float(budget_pp), edited=edited, progress=progress, should_stop=should_stop,
        log_path=log, trust=trust, **parallel, **options,
    )  # fmt: skip
    return chosen


def finetune(
    model: EditSession | str | os.PathLike[str],
    train: str | os.PathLike[str],
    *,
    recipe: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[float | None, str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trust: bool = False,
    gpus: int | None = None,
    **options: Any,
) -> FinetuneResult:
    """Fine-tune a Keras model as currently edited; pruned, ablated and zeroed weights stay exactly 0.

    Imports TensorFlow in this process; the model file is never changed.
    Training starts from the model with its edits (an
    :class:`~weightlab.core.session.EditSession`'s, or ``recipe``'s): entries
    that are 0 there and were not 0 in the stored file are kept at 0 through
    training unless ``keep_masks=False``. With masks off and no extras it is
    ``model.fit`` with the same seed, data order and settings.

    Parameters
    ----------
    model:
        A ``.keras`` file or an ``.h5`` file with its architecture, or an open
        session on one.
    train:
        Training data: ``.npz`` with ``x`` ``(N, ...)`` and ``y`` ``(N,)``
        integer class indices, or an image folder (one subfolder per class).
    recipe:
        Edits applied before training (a recipe file or dict).
    output:
        Where to write the trained model (its input's format, atomically; its
        recipe beside it: :func:`weightlab.training.write_outputs`). With
        ``new_head`` it is the ``.keras`` file of the new model.
    progress:
        Called as ``progress(fraction, message, partial)``: the fraction done
        (or None), a line of text, and the job's partial result (a dict whose
        ``"type"`` is ``"batch"``, ``"epoch"`` or ``"sparsity"``; see
        docs/training.md).
    should_stop:
        Polled between batches; True ends training, keeping the best or the
        last epoch's weights (``on_cancel``).
    trust:
        Allow code in the file (Lambda layers): only for files you trust.
    gpus:
        None: TensorFlow's placement (the first GPU when there is one); 0: the
        CPU; 1: one GPU; N >= 2: the first N GPUs with
        ``tf.distribute.MirroredStrategy``.
    options:
        The keyword arguments of :func:`weightlab.training.finetune_spec`:
        ``val``, ``val_split``, ``data`` (held-out ``.npz``), ``epochs``,
        ``batch_size``, ``lr``, ``optimizer``, ``schedule``, ``keep_masks``,
        ``freeze``, ``train_last``, ``l1``, ``l2``, ``constraints``,
        ``clip_weights``, ``early_stopping``, ``monitor``,
        ``restore_best_weights``, ``reduce_lr``, ``pruning``, ``new_head``,
        ``seed``...

    Returns
    -------
    FinetuneResult
        ``history`` (one :class:`~weightlab.core.training.EpochRecord` per
        epoch: losses, accuracies as fractions, learning rate, seconds),
        ``best_epoch`` (1-based), ``final`` (``{"accuracy", "loss"}`` on
        ``data``), ``arrays`` (canonical name -> trained values),
        ``label``, ``stopped_early``, ``device``, ``saved``; ``to_json()``;
        ``to_dataframe()`` (pandas): one row per epoch.

    Raises
    ------
    RecipeError
        For a bad argument or recipe (before TensorFlow is imported).
    EngineError
        When the model is not a Keras model Keras can rebuild, naming the file,
        or ``gpus`` asks for more GPUs than TensorFlow sees.
    FormatError, DataError
        When the model, training, validation or held-out file is missing or
        unusable; the message names the file.
    """
    from weightlab import training

    new_head = options.get("new_head") is not None
    spec = training.finetune_spec(train, output=output if new_head else None, **options)
    session = training.open_model(model, recipe)
    try:
        training.check_training(session, spec)
        from weightlab._tf import headless

        result = headless.finetune(
            session.model.path, spec, session.edited_arrays() or None, trust=trust, on_progress=progress,
            should_stop=should_stop, gpus=gpus,
        )  # fmt: skip
        if output is not None and not new_head:
            result.saved = str(training.write_outputs(session, result.arrays, result.label, output,
                                                      spec=spec.to_dict()).model)  # fmt: skip
        return result
    finally:
        if session is not model:
            session.model.close()


def prune_retrain(
    model: EditSession | str | os.PathLike[str],
    train: str | os.PathLike[str],
    *,
    recipe: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[float | None, str, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    trust: bool = False,
    gpus: int | None = None,
    **options: Any,
) -> PruneRetrainResult:
    """Iterative prune-and-retrain: R rounds of magnitude pruning, each followed by a fine-tune with masks kept.

    Imports TensorFlow in this process; the model file is never changed.

    Parameters
    ----------
    model, train, recipe, progress, should_stop, trust, gpus:
        As for :func:`finetune` (``progress`` also gets ``"round"`` partials,
        round 0 being the unpruned baseline; batch and epoch partials carry
        their ``"round"``).
    output:
        Where to write the pruned and retrained model (and its recipe): the
        last round within ``budget_pp``; not written when round 1 is already
        past it (``result.kept_round == 0``).
    options:
        The keyword arguments of :func:`weightlab.training.prune_retrain_spec`:
        ``rounds``, ``threshold`` and ``factor`` or ``sparsities``, ``epochs``
        (per round), ``target``, ``scope``, ``budget_pp``, and those of
        :func:`finetune` (``val``, ``val_split``, ``data``, ``lr``...).

    Returns
    -------
    PruneRetrainResult
        ``rounds`` (1-based ``round``, ``sparsity`` of the pruned tensors as a
        fraction, held-out ``accuracy``/``loss``, ``threshold``), ``baseline``,
        ``arrays``, ``label``, ``stopped`` (why it ended early); ``to_json()``;
        ``to_dataframe()`` (pandas): one row per round.

    Raises
    ------
    RecipeError, EngineError, FormatError, DataError
        As :func:`finetune`.
    """
    from weightlab import training

    spec = training.prune_retrain_spec(train, **options)
    session = training.open_model(model, recipe)
    try:
        training.check_training(session, spec)
        from weightlab._tf import headless

        result = headless.prune_retrain(
            session.model.path, spec, session.edited_arrays() or None, trust=trust, on_progress=progress,
            should_stop=should_stop, gpus=gpus,
        )  # fmt: skip
        if output is not None and result.kept_round > 0:  # round 1 past the budget: nothing kept, nothing written
            training.write_outputs(session, result.arrays, result.label, output, spec=spec.to_dict())
        return result
    finally:
        if session is not model:
            session.model.close()

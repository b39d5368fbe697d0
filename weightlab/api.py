"""WeightLab's Python API: the functions :mod:`weightlab` exports (``weightlab.open``, ``weightlab.evaluate``...).

Import them from :mod:`weightlab` (``import weightlab; weightlab.open(...)``);
this module is where they live. Importing it is light (NumPy, no TensorFlow,
no Qt, no HDF5 reading): each function that needs TensorFlow imports it when
it is called, and enters it through one door, :mod:`weightlab._tf.headless`.

A *model* argument is any of:

- a model file (``.keras``, ``.h5``, ``.weights.h5``, a SavedModel folder, a
  checkpoint, a frozen ``.pb`` graph): opened with the format's own reader;
- an open :class:`~weightlab.session.Session` (any
  :class:`~weightlab.core.session.EditSession`): its current, edited values;
- a live Keras model (``keras.Model``, or ``tf_keras.Model``): its variables,
  copied; the model object is never changed.

Held-out *data* is any of: an ``.npz`` file with ``x`` and ``y``; an
``(x, y)`` pair of arrays (``x`` of shape ``(N, ...)``, ``y`` of shape
``(N,)`` integer class indices); ``x`` alone (no labels: only the agreement
with the unedited model is measured); a ``tf.data.Dataset`` yielding
``(x, y)`` or ``x`` batches (read once and concatenated in memory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from weightlab.core.errors import FormatError, RecipeError, WeightLabError
from weightlab.core.session import EditSession
from weightlab.session import Session

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from weightlab.core.diff import ModelDiff
    from weightlab.core.plan import Plan
    from weightlab.core.sweeps import RankResult, SweepResult
    from weightlab.core.training import FinetuneResult, PruneRetrainResult
    from weightlab.engine.events import Metrics

__all__ = [
    "compare",
    "evaluate",
    "finetune",
    "is_keras_model",
    "open",
    "plan",
    "prune_retrain",
    "rank",
    "sweep",
    "to_keras",
]


def is_keras_model(obj: object) -> bool:
    """True when ``obj`` is a live ``keras.Model`` or ``tf_keras.Model`` (Keras 2 via ``tf.keras``).

    Never imports TensorFlow or Keras: an object can only be a Keras model
    when its library is imported already.

    Parameters
    ----------
    obj:
        Any object.

    Returns
    -------
    bool
        Whether :func:`open` takes ``obj`` as a live model.
    """
    for library in ("keras", "tf_keras"):
        module = sys.modules.get(library)
        model_class = getattr(module, "Model", None) if module is not None else None
        if isinstance(model_class, type) and isinstance(obj, model_class):
            return True
    return False


def _is_path(obj: object) -> TypeGuard[str | os.PathLike[str]]:
    return isinstance(obj, (str, os.PathLike))


_DATA_LABELS = {"data": "", "train": "training ", "val": "validation "}
#: Private data files being used now -> how they are named to the user (``the (x, y) arrays``).
_LABELS: dict[str, str] = {}


def _provenance(spec: Any) -> dict[str, Any]:
    """``spec.to_dict()`` for a recipe, private data files named as the user gave them (no dead temp paths)."""

    def named(value: Any) -> Any:
        if isinstance(value, str):
            return _LABELS.get(value, value)
        if isinstance(value, dict):
            return {k: named(v) for k, v in value.items()}
        return value

    return {k: named(v) for k, v in spec.to_dict().items()}


def _data_label(argument: str, data: Any) -> str:
    """How an error names in-memory data: ``the (x, y) arrays``, ``the training x array``..."""
    kind = _DATA_LABELS.get(argument, f"{argument} ")
    if isinstance(data, tuple | list):
        return f"the {kind}(x, y) arrays"
    if hasattr(data, "element_spec"):
        return f"the {kind}tf.data.Dataset"
    return f"the {kind}x array"


@contextlib.contextmanager
def _data_files(**data: Any) -> Iterator[dict[str, Any]]:
    """Held-out or training data as the ``.npz`` paths path-based jobs read.

    Paths (and None) pass through. ``(x, y)`` arrays, ``x`` alone or a
    ``tf.data.Dataset`` (see :func:`evaluate`) are written to a private
    folder, removed on exit, also on error; a :class:`WeightLabError` that
    names such a file names ``the (x, y) arrays`` (or ``the x array``, ``the
    tf.data.Dataset``) instead.
    """
    if all(value is None or _is_path(value) for value in data.values()):
        yield dict(data)
        return
    from weightlab._tf import headless

    folder = tempfile.mkdtemp(prefix="weightlab-data-")
    names: dict[str, str] = {}
    try:
        out: dict[str, Any] = {}
        for argument, value in data.items():
            if value is None or _is_path(value):
                out[argument] = value
                continue
            x, y, _ = headless.heldout_arrays(value)
            path = os.path.join(folder, f"{argument}.npz")
            import numpy as np

            np.savez(path, x=x) if y is None else np.savez(path, x=x, y=y)
            names[path] = _data_label(argument, value)
            out[argument] = path
        _LABELS.update(names)
        yield out
    except WeightLabError as exc:
        message, shown = exc.message, exc.path
        for path, label in names.items():
            for form in {path, str(Path(path).resolve())}:
                message = message.replace(form, label)
            if shown is not None and os.path.abspath(shown) == os.path.abspath(path):
                shown, message = None, f"{label}: {message}"
        if shown == exc.path and message == exc.message:
            raise
        try:
            error = type(exc)(message, shown)
        except TypeError:  # a subclass with another signature: keep it as it is
            raise exc from None
        raise error from None
    finally:
        for path in names:
            _LABELS.pop(path, None)
        shutil.rmtree(folder, ignore_errors=True)


def open(source: str | os.PathLike[str] | Any) -> Session:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a model file or a live Keras model for inspection and editing.

    A file is read with its format's own reader (h5py for Keras files; for
    SavedModel folders, checkpoints and frozen graphs, TensorFlow's readers
    in a child process); tensor values are read on first use. No model code
    runs and TensorFlow is not imported in this process.

    A live Keras model (Keras 3 ``keras.Model``, or ``tf_keras.Model``) gives
    a session whose tensors are copies of the model's variables, under the
    canonical names the same model saved as ``.keras`` would have
    (``dense/kernel``); the model object is never changed (take the edited
    model back with :meth:`Session.to_keras <weightlab.session.Session.to_keras>`).

    Close the session when done (``session.close()``, or ``with
    weightlab.open(...) as s:``): it ends a reader process, if any, and
    removes an in-memory model's private files.

    Parameters
    ----------
    source:
        A model file or folder path, or a built Keras model.

    Returns
    -------
    Session
        ``tensors`` (name -> shape, dtype, layer, trainable), ``array(name)``
        (current values, read-only NumPy), ``apply``/``undo``/``redo``,
        ``history``, ``diff()``, ``to_recipe()``, ``save(path)``,
        ``evaluate(data)``, ``to_keras()``.

    Raises
    ------
    FormatError
        When the file is missing, unreadable or not a supported model file,
        or the Keras model is not built yet (call it on data, or ``build`` it).
    TypeError
        When ``source`` is neither a path nor a Keras model.

    Examples
    --------
    >>> s = weightlab.open("model.keras")                        # doctest: +SKIP
    >>> s.tensors["dense/kernel"].shape                          # doctest: +SKIP
    (1568, 10)
    """
    if _is_path(source):
        from weightlab.formats import open_session

        session = open_session(source, session_class=Session)
        assert isinstance(session, Session)
        return session
    if is_keras_model(source):
        from weightlab._tf import headless

        session = headless.session_from_model(source, session_class=Session)
        assert isinstance(session, Session)
        return session
    raise TypeError(
        f"weightlab.open: expected a model file path or a Keras model; got {type(source).__module__}."
        f"{type(source).__qualname__}"
    )


def _session(model: Any, *, what: str) -> tuple[EditSession, bool]:
    """``(session, owned)``: ``model`` itself when it is a session, else one opened on it (owned: close it)."""
    if isinstance(model, EditSession):
        return model, False
    if _is_path(model) or is_keras_model(model):
        return open(model), True
    raise TypeError(
        f"weightlab.{what}: expected a model file path, a session or a Keras model; got "
        f"{type(model).__module__}.{type(model).__qualname__}"
    )


def evaluate(
    model: EditSession | str | os.PathLike[str] | Any,
    data: str | os.PathLike[str] | Any,
    *,
    trust: bool = False,
    batch_size: int = 256,
    **options: Any,
) -> Metrics:
    """Evaluate a model (with a session's current edits) on held-out data.

    Imports TensorFlow in this process (the window uses a worker process
    instead). A file-backed model is built from its file and the edited
    arrays assigned; a live model is evaluated in this process from a copy,
    the model object never changed.

    Parameters
    ----------
    model:
        A model file, an open session (its current edits are evaluated) or
        a live Keras model.
    data:
        Held-out data: an ``.npz`` file with ``x`` and ``y``; ``(x, y)``
        arrays, ``x`` of shape ``(N, ...)`` (any numeric dtype, cast to the
        model's input dtype) and ``y`` of shape ``(N,)`` integer class
        indices in ``[0, C)``; ``x`` alone (no labels: only the agreement
        with the unedited model is measured); or a ``tf.data.Dataset``
        yielding ``(x, y)`` or ``x`` batches (read once, concatenated in
        memory).
    trust:
        Allow code stored in the file to run (Lambda layers, custom
        objects): only for files you trust.
    batch_size:
        Samples per forward pass.
    **options:
        ``architecture`` (the model file of a checkpoint), ``signature``,
        ``output`` and ``input`` (which signature and tensors of a SavedModel
        or frozen graph to use, by name).

    Returns
    -------
    Metrics
        ``accuracy`` (a fraction in [0, 1]), ``loss`` (mean sparse
        categorical cross-entropy, natural log), ``per_class`` accuracies,
        ``agreement`` with the unedited model, ``num_samples``, ``seconds``
        (wall time), ``device``; ``baseline``: the unedited model's Metrics
        on the same data when the session has edits, else None.

    Raises
    ------
    EngineError
        When no executable model can be built safely (Lambda layers, custom
        objects, weights-only files) and ``trust`` is False.
    DataError
        When the held-out data are malformed or do not fit the model.
    FormatError
        When the model file is missing or unreadable.
    TypeError
        When ``model`` is not a path, a session or a Keras model.
    """
    from weightlab._tf import headless

    if _is_path(model) and _is_path(data):  # a file on a file: nothing to open here
        return headless.evaluate_file(model, data, None, trust=trust, batch_size=batch_size, **options)
    session, owned = _session(model, what="evaluate")
    try:
        return headless.evaluate_session(session, data, trust=trust, batch_size=batch_size, **options)
    finally:
        if owned:
            session.model.close()


def to_keras(model: EditSession | str | os.PathLike[str] | Any, *, trust: bool = False) -> Any:
    """A new Keras model with a session's current weights (or a file's stored ones).

    Imports TensorFlow. The source (file or live model) is never changed.
    See :meth:`Session.to_keras <weightlab.session.Session.to_keras>`.

    Parameters
    ----------
    model:
        An open session, a Keras model file (``.keras``, or ``.h5`` with its
        architecture) or a live Keras model (a clone comes back).
    trust:
        Allow code stored in the file (Lambda layers, custom objects) to run
        while the model is built: only for files you trust.

    Returns
    -------
    keras.Model or tf_keras.Model
        A new model, compiled like a live source model was; its weights equal
        the session's current arrays.

    Raises
    ------
    EngineError
        When no Keras model can be built safely from the file (Lambda layers
        or custom objects without ``trust``, a weights-only file, a
        SavedModel or frozen graph).
    FormatError
        When the file is missing or unreadable.
    TypeError
        When ``model`` is not a path, a session or a Keras model.
    """
    from weightlab._tf import headless

    session, owned = _session(model, what="to_keras")
    try:
        return headless.to_keras(session, trust=trust)
    finally:
        if owned:
            session.model.close()


def _label(model: Any, session: EditSession) -> str:
    if _is_path(model):
        return Path(model).name or str(model)
    name = session.model.path.name
    return f"{name} (edited)" if isinstance(model, EditSession) and session.edited_names else name


def compare(
    a: EditSession | str | os.PathLike[str] | Any,
    b: EditSession | str | os.PathLike[str] | Any,
    *,
    a_label: str | None = None,
    b_label: str | None = None,
) -> ModelDiff:
    """Per-tensor change from model ``a`` to model ``b`` (two files, sessions or live models).

    For two versions of one architecture (before and after fine-tuning,
    pruning, an edit), like Keras' ``KerasFileEditor.compare_to``, with
    numbers: for every tensor, the entries that differ, the relative change
    ``||b - a||_2 / ||a||_2`` and the largest absolute change (in the
    tensor's own units). A session contributes its current (edited) values.
    Tensors are read one at a time; TensorFlow is not imported unless a side
    is a live model.

    Parameters
    ----------
    a, b:
        Model files, open sessions or live Keras models (any mix).
    a_label, b_label:
        Names for the two sides in the result (default: the file names,
        ``"(edited)"`` added for a session with edits).

    Returns
    -------
    ModelDiff
        One :class:`~weightlab.core.diff.TensorDiff` per tensor, in ``a``'s
        model order; ``changed()`` keeps the tensors that differ;
        ``to_dataframe()`` (pandas).

    Raises
    ------
    FormatError
        When a file is missing or unreadable, or the two models do not have
        the same tensors (names and shapes); the message names ``b``.
    TypeError
        When a side is not a path, a session or a Keras model.
    """
    from weightlab.core.diff import model_diff

    sa, own_a = _session(a, what="compare")
    try:
        sb, own_b = _session(b, what="compare")
        try:
            ta, tb = sa.tensors, sb.tensors
            la, lb = a_label or _label(a, sa), b_label or _label(b, sb)
            only_a = [n for n in ta if n not in tb]
            only_b = [n for n in tb if n not in ta]
            if only_a or only_b:
                raise FormatError(
                    f"not the same tensors as {la}: only in {la}: {only_a[:5]}; only in {lb}: {only_b[:5]}",
                    sb.model.path,
                )
            for n, info in ta.items():
                if info.shape != tb[n].shape:
                    msg = f"tensor {n!r} has shape {tb[n].shape} here but {info.shape} in {la}"
                    raise FormatError(msg, sb.model.path)
            return model_diff(list(ta), sa.peek, sb.peek, la, lb)
        finally:
            if own_b:
                sb.model.close()
    finally:
        if own_a:
            sa.model.close()


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
    model: EditSession | str | os.PathLike[str] | Any,
    data: str | os.PathLike[str] | Any,
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
        A model file, an open :class:`~weightlab.session.Session` whose
        current (edited) tensors are the base of every point, or a live Keras
        model.
    data:
        Held-out data in any form :func:`evaluate` takes: an ``.npz`` with
        ``x`` (and ``y``; without labels only the agreement with the unedited
        model is measured), ``(x, y)`` arrays, ``x`` alone or a
        ``tf.data.Dataset`` (written to a private temporary ``.npz`` for the
        job, removed afterwards).
    op:
        A catalogue op (:data:`weightlab.edits.CATALOGUE`): ``"clip"``,
        ``"prune_magnitude"``, ``"add_noise"``...
    param:
        One of the op's sweepable parameters
        (:func:`weightlab.core.catalogue.sweepable_params`): ``clip``'s
        ``threshold`` (``min=-t, max=t``), ``prune_magnitude``'s ``sparsity``
        (a fraction), ``add_noise``'s ``std``...
    values:
        Explicit values (a list, or ``"0.3,0.1"``). Give exactly one of
        ``values``, ``range`` and ``adaptive``.
    range:
        ``(start, stop, step)`` or ``"start:stop:step"`` (stop included).
    adaptive:
        Bounds ``(low, high)``, ``"low:high"``, or True (the parameter's valid
        range): a coarse grid, then refined where the metric falls fastest.
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
    workers:
        Processes measuring points: 1 (the default) this one, None one per
        core; with ``ray``, Ray actors (None: the cluster's CPUs). The result
        equals the one-process result.
    ray:
        A Ray cluster's address, or ``""`` or True for a local Ray
        (``pip install 'weightlab[cluster]'``); None: no Ray.
    progress:
        Called as ``progress(fraction, message, point)`` after each point.
    should_stop:
        Polled between batches; True ends the sweep early with the points so
        far (``complete`` False).
    trust:
        Allow code stored in the file to run (Lambda layers): only for files
        you trust.
    **options:
        ``batch_size``, ``architecture``, ``signature``... as for
        :func:`evaluate`; the spec fields ``max_points``, ``initial_points``,
        ``scale`` and ``resolution_pp`` go to the sweep's spec.

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
    FormatError
        When the model file is missing or unreadable.
    DataError
        When the held-out file is missing or unusable, or ``log`` holds
        another sweep's log; the message names the file.
    EngineError
        When no executable model can be built safely and ``trust`` is False.
    """
    from weightlab.analysis import check_sweep, model_source, sweep_spec

    spec_fields = {k: options.pop(k) for k in _SPEC_OPTIONS if k in options}
    spec = sweep_spec(
        op, param, values=values, range=range, adaptive=adaptive, targets=targets, mode=mode,
        budget_pp=budget_pp, metric=metric, fixed=fixed, coupled=coupled, **spec_fields,
    )  # fmt: skip
    path, edited = model_source(model)
    parallel = _parallel(workers, ray)
    with _data_files(data=data) as files:
        check_sweep(spec, path, files["data"])
        from weightlab._tf import headless

        return headless.sweep(
            path, files["data"], spec, edited=edited, progress=progress, should_stop=should_stop, log_path=log,
            trust=trust, **parallel, **options,
        )  # fmt: skip


def rank(
    model: EditSession | str | os.PathLike[str] | Any,
    data: str | os.PathLike[str] | Any,
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
    model:
        A model file, an open session (its edits are the base) or a live
        Keras model.
    data:
        Held-out ``.npz``, as for :func:`sweep`.
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
    progress:
        Called as ``progress(fraction, message, unit)`` after each unit.
    should_stop:
        Polled between batches; True ends the ranking early.
    trust:
        Allow code stored in the file to run (Lambda layers): only for files
        you trust.
    **options:
        ``batch_size``, ``architecture``, ``signature``...: as for :func:`evaluate`.

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
    FormatError
        As :func:`sweep`.
    DataError
        As :func:`sweep`.
    EngineError
        As :func:`sweep`.
    """
    from weightlab.analysis import check_rank, model_source, rank_spec

    spec = rank_spec(layer, ablation=ablation, cumulative=cumulative, batchnorm=batchnorm)
    path, edited = model_source(model)
    with _data_files(data=data) as files:
        check_rank(spec, path, files["data"])
        from weightlab._tf import headless

        return headless.rank(
            path, files["data"], spec, edited=edited, progress=progress, should_stop=should_stop, trust=trust,
            **options,
        )  # fmt: skip


def plan(
    model: EditSession | str | os.PathLike[str] | Any,
    data: str | os.PathLike[str] | Any,
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
    model:
        A model file, an open session (its edits are the base) or a live
        Keras model.
    data:
        Held-out ``.npz``, as for :func:`sweep`.
    op:
        A catalogue op, as for :func:`sweep`.
    param:
        The swept parameter, as for :func:`sweep`; it must have a stronger
        direction (``sparsity`` up, ``threshold`` down...).
    values:
        As for :func:`sweep`.
    range:
        As for :func:`sweep`.
    adaptive:
        As for :func:`sweep`.
    targets:
        As for :func:`sweep`; each target is planned alone.
    metric:
        As for :func:`sweep`.
    fixed:
        As for :func:`sweep`.
    coupled:
        As for :func:`sweep`.
    log:
        As for :func:`sweep`.
    workers:
        As for :func:`sweep`.
    ray:
        As for :func:`sweep`.
    progress:
        As for :func:`sweep`.
    should_stop:
        As for :func:`sweep`.
    trust:
        As for :func:`sweep`.
    **options:
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
    FormatError
        As :func:`sweep`.
    DataError
        As :func:`sweep`.
    EngineError
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
    with _data_files(data=data) as files:
        check_sweep(spec, path, files["data"])
        from weightlab._tf import headless

        chosen, _ = headless.plan(
            path, files["data"], spec, float(budget_pp), edited=edited, progress=progress, should_stop=should_stop,
            log_path=log, trust=trust, **parallel, **options,
        )  # fmt: skip
        return chosen


def finetune(
    model: EditSession | str | os.PathLike[str] | Any,
    train: str | os.PathLike[str] | Any,
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
        A ``.keras`` file or an ``.h5`` file with its architecture, an open
        session on one, or a live Keras model (or a session on one).
    train:
        Training data: ``.npz`` with ``x`` ``(N, ...)`` and ``y`` ``(N,)``
        integer class indices, an image folder (one subfolder per class),
        ``(x, y)`` arrays or a ``tf.data.Dataset`` of ``(x, y)`` batches
        (arrays and datasets, here and for ``val`` and ``data``, are written
        to a private temporary ``.npz``, removed afterwards).
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
    **options:
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
    FormatError
        When the model file is missing or unusable; the message names it.
    DataError
        When the training, validation or held-out data are missing or
        unusable; the message names the file.
    """
    from weightlab import training

    new_head = options.get("new_head") is not None
    with _data_files(train=train, val=options.pop("val", None), data=options.pop("data", None)) as files:
        spec = training.finetune_spec(files.pop("train"), output=output if new_head else None, **files, **options)
        return _finetune(training, spec, model, recipe, output, new_head, progress, should_stop, trust, gpus)


def _finetune(training: Any, spec: Any, model: Any, recipe: Any, output: Any, new_head: bool,
              progress: Any, should_stop: Any, trust: bool, gpus: int | None) -> FinetuneResult:  # fmt: skip
    session = training.open_model(model, recipe)
    try:
        training.check_training(session, spec)
        from weightlab._tf import headless

        result = headless.finetune(
            headless.materialise(session.model), spec, session.edited_arrays() or None, trust=trust, on_progress=progress,
            should_stop=should_stop, gpus=gpus,
        )  # fmt: skip
        if output is not None and not new_head:
            result.saved = str(training.write_outputs(session, result.arrays, result.label, output,
                                                      spec=_provenance(spec)).model)  # fmt: skip
        return result
    finally:
        if session is not model:
            session.model.close()


def prune_retrain(
    model: EditSession | str | os.PathLike[str] | Any,
    train: str | os.PathLike[str] | Any,
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
    model:
        As for :func:`finetune`.
    train:
        As for :func:`finetune`.
    recipe:
        As for :func:`finetune`.
    output:
        Where to write the pruned and retrained model (and its recipe): the
        last round within ``budget_pp``; not written when round 1 is already
        past it (``result.kept_round == 0``).
    progress:
        As for :func:`finetune`; also gets ``"round"`` partials (round 0 is
        the unpruned baseline), and batch and epoch partials carry their
        ``"round"``.
    should_stop:
        As for :func:`finetune`.
    trust:
        As for :func:`finetune`.
    gpus:
        As for :func:`finetune`.
    **options:
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
    RecipeError
        For a bad argument or recipe (before TensorFlow is imported).
    EngineError
        When the model is not a Keras model Keras can rebuild.
    FormatError
        When the model file is missing or unusable.
    DataError
        When a data file is missing or unusable.
    """
    from weightlab import training

    with _data_files(train=train, val=options.pop("val", None), data=options.pop("data", None)) as files:
        spec = training.prune_retrain_spec(files.pop("train"), **files, **options)
        return _prune_retrain(training, spec, model, recipe, output, progress, should_stop, trust, gpus)


def _prune_retrain(training: Any, spec: Any, model: Any, recipe: Any, output: Any,
                   progress: Any, should_stop: Any, trust: bool, gpus: int | None) -> PruneRetrainResult:  # fmt: skip
    session = training.open_model(model, recipe)
    try:
        training.check_training(session, spec)
        from weightlab._tf import headless

        result = headless.prune_retrain(
            headless.materialise(session.model), spec, session.edited_arrays() or None, trust=trust, on_progress=progress,
            should_stop=should_stop, gpus=gpus,
        )  # fmt: skip
        if output is not None and result.kept_round > 0:  # round 1 past the budget: nothing kept, nothing written
            training.write_outputs(session, result.arrays, result.label, output, spec=_provenance(spec))
        return result
    finally:
        if session is not model:
            session.model.close()

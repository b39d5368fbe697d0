"""Fine-tuning and prune-and-retrain from plain arguments: the part of :func:`weightlab.finetune`,
:func:`weightlab.prune_retrain` and the ``weightlab finetune|prune-retrain`` commands that runs
before and after the training itself (TensorFlow-free).

It turns arguments (numbers, or the command line's text: ``"exponential_decay:decay_steps=100,
decay_rate=0.9"``) into the job specs of :mod:`weightlab.core.training`, checks the model and
the data files with the format readers only (a mistake is reported in a second, naming the
file, before TensorFlow is imported), and writes what training produced: the trained model in
the input's format and a recipe whose last step is the training (:mod:`weightlab.core.trained`).
The training runs in :mod:`weightlab._tf.headless`, entered from :mod:`weightlab` and
:mod:`weightlab.cli` (the TensorFlow wall's doors).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from weightlab.core.errors import DataError, EngineError, RecipeError, WeightLabError

if TYPE_CHECKING:
    from weightlab.core.session import EditSession
    from weightlab.core.training import FinetuneResult, FinetuneSpec, PruneRetrainResult, PruneRetrainSpec

__all__ = [
    "KERAS_ONLY",
    "TrainingOutputs",
    "check_training",
    "finetune_spec",
    "history_frame",
    "open_model",
    "parse_constraint",
    "parse_sparsities",
    "prune_retrain_spec",
    "recipe_path",
    "rounds_frame",
    "write_outputs",
]

#: The refusal for a model Keras cannot rebuild (design12.md).
KERAS_ONLY = "training needs a Keras model (.keras or .h5 with its architecture)"

# -- arguments -> specs ------------------------------------------------------------------------


def _path(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise RecipeError(f"{what}: expected a file path; got {value!r}")


def _lr_schedule(schedule: Any) -> dict[str, Any] | None:
    """An :class:`~weightlab.core.schedules.LRSchedule`, its text or dict -> its dict."""
    if schedule is None:
        return None
    from weightlab.core.schedules import LRSchedule

    try:
        if isinstance(schedule, LRSchedule):
            return schedule.to_dict()
        if isinstance(schedule, str):
            return LRSchedule.parse(schedule).to_dict()
        if isinstance(schedule, Mapping):
            return LRSchedule.from_dict(schedule).to_dict()
    except ValueError as e:
        raise RecipeError(f"schedule: {e}") from None
    raise RecipeError(f"schedule: expected an LRSchedule, its text or its dict; got {schedule!r}")


def _sparsity_schedule(schedule: Any) -> dict[str, Any]:
    """A :class:`~weightlab.core.schedules.SparsitySchedule`, its text or dict -> its dict."""
    from weightlab.core.schedules import SparsitySchedule

    try:
        if isinstance(schedule, SparsitySchedule):
            return schedule.to_dict()
        if isinstance(schedule, str):
            return SparsitySchedule.parse(schedule).to_dict()
        if isinstance(schedule, Mapping):
            return SparsitySchedule.from_dict(schedule).to_dict()
    except ValueError as e:
        raise RecipeError(f"pruning: {e}") from None
    raise RecipeError(f"pruning: expected a SparsitySchedule, its text or its dict; got {schedule!r}")


def _callback(value: Any, what: str, defaults: Mapping[str, Any]) -> dict[str, Any] | None:
    """``patience`` (an int) or a dict -> the spec's dict with ``defaults`` filled in; None/False -> None."""
    if value is None or value is False:
        return None
    if isinstance(value, bool):
        raise RecipeError(f"{what}: expected a patience (epochs) or an object; got {value!r}")
    if isinstance(value, (int, np.integer)):
        return {**defaults, "patience": int(value)}
    if isinstance(value, Mapping):
        return {**defaults, **value}
    raise RecipeError(f"{what}: expected a patience (epochs) or an object; got {value!r}")


def _globs(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def parse_constraint(text: str) -> dict[str, Any]:
    """``"max_norm:max_value=2,axis=0"`` -> ``{"kind": "max_norm", "max_value": 2.0, "axis": 0}``.

    An optional ``@GLOB`` at the end names the layers (``"non_neg@dense*"``;
    default every layer with a kernel). Values are numbers.

    Raises
    ------
    RecipeError
        When the text is not ``KIND[:KEY=VALUE,...][@GLOB]`` with numeric values.
    """
    body, _, layers = str(text).partition("@")
    kind, _, args = body.partition(":")
    out: dict[str, Any] = {"kind": kind.strip()}
    if layers.strip():
        out["layers"] = layers.strip()
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not key.strip() or not math.isfinite(number):
            raise RecipeError(
                f"constraint: expected KIND[:KEY=NUMBER,...][@LAYERS], e.g. max_norm:max_value=2; got {text!r}"
            )
        out[key.strip()] = int(number) if key.strip() == "axis" else number
    return out


def parse_sparsities(value: str | Iterable[float]) -> tuple[float, ...]:
    """``"0.5,0.7,0.8"`` (or numbers) -> ``(0.5, 0.7, 0.8)``.

    Raises
    ------
    RecipeError
        When an item is not a number.
    """
    items = str(value).split(",") if isinstance(value, str) else list(value)
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise RecipeError(f"sparsities: expected fractions such as 0.5,0.7,0.8; got {value!r}") from None


def finetune_spec(
    train: str | os.PathLike[str],
    *,
    val: str | os.PathLike[str] | None = None,
    val_split: float | None = None,
    data: str | os.PathLike[str] | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float | None = None,
    optimizer: str = "auto",
    momentum: float = 0.9,
    schedule: Any = None,
    keep_masks: bool = True,
    freeze: str | Iterable[str] | None = None,
    train_last: int | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    regularize: str | Iterable[str] = "*",
    regularizers: Iterable[Mapping[str, Any]] = (),
    constraints: Iterable[Mapping[str, Any] | str] = (),
    clip_weights: float | None = None,
    early_stopping: int | Mapping[str, Any] | None = None,
    monitor: str = "val_loss",
    min_delta: float = 0.0,
    start_from_epoch: int = 0,
    restore_best_weights: bool = True,
    reduce_lr: int | Mapping[str, Any] | None = None,
    pruning: Any = None,
    pruning_layers: str | Iterable[str] = "*",
    pruning_scope: str = "layer",
    new_head: int | None = None,
    output: str | os.PathLike[str] | None = None,
    seed: int = 0,
    on_cancel: str = "best",
    watch: Iterable[str] = (),
) -> FinetuneSpec:
    """The :class:`~weightlab.core.training.FinetuneSpec` of plain arguments.

    Parameters
    ----------
    train, val, val_split, data:
        Training data (``.npz`` with ``x`` ``(N, ...)`` and ``y`` ``(N,)``
        class indices, or an image folder with one subfolder per class);
        validation data, or the last fraction of ``train`` held back (Keras'
        ``validation_split``); a held-out ``.npz`` measured after every epoch.
    epochs, batch_size, lr, optimizer, momentum, seed:
        As the spec's fields; ``lr`` None: the compile config's, else 0.001.
    schedule:
        An :class:`~weightlab.core.schedules.LRSchedule`, its dict, or its
        text (``"cosine_decay:decay_steps=1000"``).
    keep_masks, freeze, train_last:
        Masks kept (default); layer names/globs frozen; train only the last N
        layers with weights.
    l1, l2, regularize, regularizers:
        Kernel regularizer factors for the layers ``regularize`` matches
        (every layer with a kernel by default); ``regularizers`` adds entries
        ``{"layers", "l1", "l2"}``.
    constraints:
        Dicts ``{"kind": "max_norm", "max_value": 2, "layers": "*"}`` or texts
        for :func:`parse_constraint`.
    clip_weights:
        Clip every kernel to ``[-c, c]`` at the end of every epoch.
    early_stopping, monitor, min_delta, start_from_epoch, restore_best_weights:
        ``early_stopping`` a patience in epochs (with the other four) or the
        spec's dict.
    reduce_lr:
        ReduceLROnPlateau: a patience in epochs (factor 0.5) or the spec's dict.
    pruning, pruning_layers, pruning_scope:
        Gradual magnitude pruning: a
        :class:`~weightlab.core.schedules.SparsitySchedule`, its dict or
        text (``"polynomial_decay:initial_sparsity=0.3,final_sparsity=0.7,
        begin_step=0,end_step=1000"``); the layers pruned; ``"layer"`` or
        ``"global"`` ranking.
    new_head, output:
        A fresh Dense output layer of ``new_head`` classes; the ``.keras``
        file the new model is saved to.
    on_cancel, watch:
        As the spec's fields.

    Raises
    ------
    RecipeError
        (:class:`~weightlab.core.training.TrainingSpecError` among them) for
        a bad argument; the message names it.
    """
    from weightlab.core.training import FinetuneSpec

    regs = [dict(r) for r in regularizers]
    if l1 or l2:
        regs.append({"layers": list(_globs(regularize)) or ["*"], "l1": l1, "l2": l2})
    cons = [parse_constraint(c) if isinstance(c, str) else dict(c) for c in constraints]
    early = _callback(
        early_stopping, "early_stopping",
        {"monitor": monitor, "min_delta": min_delta, "start_from_epoch": start_from_epoch,
         "restore_best_weights": restore_best_weights},
    )  # fmt: skip
    prune = None
    if pruning is not None:
        prune = {"schedule": _sparsity_schedule(pruning), "layers": list(_globs(pruning_layers)) or ["*"],
                 "scope": pruning_scope}  # fmt: skip
    return FinetuneSpec(
        train=_path(train, "train") or "",
        val=_path(val, "val"),
        val_split=val_split,
        heldout=_path(data, "data"),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        momentum=momentum,
        schedule=_lr_schedule(schedule),
        keep_masks=keep_masks,
        freeze=_globs(freeze),
        train_last=train_last,
        regularizers=tuple(regs),
        constraints=tuple(cons),
        clip_weights=clip_weights,
        early_stopping=early,
        reduce_lr=_callback(reduce_lr, "reduce_lr", {"monitor": monitor, "factor": 0.5}),
        pruning=prune,
        new_head=new_head,
        output=_path(output, "output"),
        seed=seed,
        on_cancel=on_cancel,
        watch=tuple(watch),
    )


def prune_retrain_spec(
    train: str | os.PathLike[str],
    *,
    rounds: int = 3,
    threshold: float | None = None,
    factor: float = 0.8,
    sparsities: str | Iterable[float] | None = None,
    epochs: int = 1,
    target: str = "*/kernel",
    scope: str = "tensor",
    budget_pp: float | None = None,
    **finetune: Any,
) -> PruneRetrainSpec:
    """The :class:`~weightlab.core.training.PruneRetrainSpec` of plain arguments.

    Parameters
    ----------
    train:
        As :func:`finetune_spec`.
    rounds:
        Rounds R; each prunes, then fine-tunes ``epochs`` epochs with masks kept.
    threshold, factor, sparsities:
        Either round 1's ``|w|`` threshold, multiplied by ``factor`` each
        round, or one target sparsity per round (fractions, ``"0.5,0.7,0.8"``).
    target, scope:
        Tensors pruned (glob over canonical names) and ``"tensor"`` or
        ``"global"`` ranking.
    budget_pp:
        Stop at a round whose held-out accuracy (``data``) is more than this
        many percentage points below the unpruned model's; the result keeps
        the round before it (nothing when it is round 1).
    finetune:
        The other keyword arguments of :func:`finetune_spec` (``val``,
        ``val_split``, ``data``, ``lr``, ``batch_size``, ``seed``...).

    Raises
    ------
    RecipeError
        For a bad argument (both or neither of ``threshold`` and
        ``sparsities``...); the message names it.
    """
    from weightlab.core.training import PruneRetrainSpec

    if finetune.get("new_head") is not None:
        raise RecipeError("prune_retrain: a new head cannot be pruned and retrained in rounds")
    ft = finetune_spec(train, epochs=epochs, **finetune).to_dict()
    ft.pop("kind", None)
    return PruneRetrainSpec(
        finetune=ft,
        rounds=rounds,
        threshold=threshold,
        factor=factor,
        sparsities=() if sparsities is None else parse_sparsities(sparsities),
        target=target,
        scope=scope,
        budget_pp=budget_pp,
    )


# -- checks before TensorFlow ------------------------------------------------------------------


def open_model(model: Any, recipe: Mapping[str, Any] | str | os.PathLike[str] | None = None) -> EditSession:
    """An :class:`~weightlab.core.session.EditSession` on ``model`` with ``recipe`` applied.

    Parameters
    ----------
    model : str, os.PathLike, EditSession or keras.Model
        A path is opened with the format readers (close ``session.model``
        when done); a session is used as it is (its edits are the base
        training starts from), ``recipe`` applied to it too. A live Keras
        model becomes an in-memory session
        (:func:`weightlab._tf.headless.session_from_model`; close its model
        when done). In-memory sessions are materialised
        (:func:`weightlab._tf.headless.materialise`): training builds the
        model from ``session.model.exec_path`` and applies the session's
        edited arrays. The last two import TensorFlow.
    recipe : mapping, str or os.PathLike, optional
        A recipe (its dict, JSON text or file) applied to the session.

    Raises
    ------
    FormatError
        When the file is missing or unreadable, or a live model is not built.
    RecipeError
        When the recipe is malformed or does not fit the model.
    EngineError
        When Keras cannot write an in-memory model.
    TypeError
        When ``model`` is none of the above.
    """
    import weightlab
    from weightlab.analysis import is_keras_model
    from weightlab.core.session import EditSession

    if isinstance(model, EditSession):
        session = model
    elif isinstance(model, (str, os.PathLike)):
        session = weightlab.open(model)
    elif is_keras_model(model):
        from weightlab._tf import headless

        session = headless.session_from_model(model)
    else:
        raise TypeError(
            f"model: expected a file path, an EditSession or a Keras model; got {type(model).__name__}"
        )
    try:
        if session.model.in_memory and session.model.source is not None:
            from weightlab._tf import headless

            headless.materialise(session.model)
        if recipe is not None:
            session.apply_recipe(recipe)
    except (WeightLabError, TypeError):
        if session is not model:
            session.model.close()
        raise
    return session


def _check_data(path: str | None, what: str, *, folder_ok: bool) -> None:
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such {what}", p)
    if p.is_dir():
        if not folder_ok:
            raise DataError(f"is a folder; the {what} is an .npz file with arrays x and y", p)
        if not any(c.is_dir() for c in p.iterdir()):
            raise DataError(f"an image folder for the {what} needs one subfolder per class; found none", p)
    elif not p.is_file():
        raise DataError(f"not a file: the {what} is an .npz file with arrays x and y", p)


def check_training(session: EditSession, spec: FinetuneSpec | PruneRetrainSpec) -> None:
    """Refuse, before TensorFlow is imported, a model Keras cannot rebuild and missing data files.

    Raises
    ------
    EngineError
        When the model is not a ``.keras`` file or an ``.h5`` file with its
        architecture, nor an in-memory Keras model materialised by
        :func:`open_model` (:data:`KERAS_ONLY`), naming the file.
    DataError
        When a training, validation or held-out file does not exist (or an
        image folder has no class subfolder), naming it.
    """
    from weightlab.core.training import FinetuneSpec

    model = session.model
    keras_file = model.format in ("keras", "h5") and model.config is not None
    if not keras_file and not (model.in_memory and model.exec_path is not None):
        raise EngineError(KERAS_ONLY, model.path)
    ft = spec if isinstance(spec, FinetuneSpec) else spec.finetune_spec
    _check_data(ft.train, "training data", folder_ok=True)
    _check_data(ft.val, "validation data", folder_ok=True)
    _check_data(ft.heldout, "held-out file", folder_ok=False)


# -- results -> files and tables ---------------------------------------------------------------


def recipe_path(output: str | os.PathLike[str]) -> Path:
    """The recipe written beside a trained model: ``out.keras`` -> ``out.recipe.json``."""
    out = Path(output)
    return out.with_name(out.stem + ".recipe.json")


@dataclass
class TrainingOutputs:
    """The files :func:`write_outputs` wrote: the model, and the recipe (None when not written)."""

    model: Path
    recipe: Path | None


def write_outputs(
    session: EditSession,
    arrays: Mapping[str, np.ndarray],
    label: str,
    output: str | os.PathLike[str],
    *,
    spec: Mapping[str, Any] | None = None,
    recipe: bool = True,
    overwrite: bool = False,
) -> TrainingOutputs:
    """Apply the trained ``arrays`` to ``session`` as one history step and write the model (and its recipe).

    The step is a :class:`~weightlab.core.trained.Trained` edit (``label``,
    the arrays' SHA-256, ``spec`` as provenance). The model is written in the
    opened file's format, atomically, never over the opened file unless
    ``overwrite``; the recipe (every step of ``session``, the training last)
    goes to :func:`recipe_path` with the trained arrays in a sidecar ``.npz``
    beside it, so that ``weightlab apply MODEL out.recipe.json`` replays the
    training exactly (checked by hash).

    Parameters
    ----------
    session:
        The model as it was when training started (its recipe applied).
    arrays:
        Canonical tensor name -> trained values (the shapes and dtypes of the
        model's tensors).
    label:
        The step's text (:attr:`FinetuneResult.label`).
    output:
        The model file to write.

    Raises
    ------
    WeightLabError
        When ``output`` is the opened file (and not ``overwrite``) or cannot be written.
    """
    from weightlab.core.recipe import save_recipe
    from weightlab.core.trained import Trained

    if arrays:  # training that changed nothing (every layer frozen) adds no step
        session.apply(Trained.from_arrays(arrays, label, dict(spec) if spec is not None else None))
    out = session.save(output, overwrite=overwrite)
    written = None
    if recipe:
        written = recipe_path(out)
        try:
            save_recipe(session.to_recipe(), written)
        except OSError as e:
            raise WeightLabError(f"cannot write the recipe: {e.strerror or e}", written) from None
    return TrainingOutputs(out, written)


def history_frame(result: FinetuneResult) -> Any:
    """A fine-tune's history as a pandas DataFrame (:meth:`FinetuneResult.to_dataframe
    <weightlab.core.training.FinetuneResult.to_dataframe>`): one row per epoch, columns
    ``epoch`` (1-based), ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``heldout_accuracy``, ``heldout_loss`` (fractions and the loss's own units; NaN where
    not measured), ``lr`` (the rate at the epoch's end), ``seconds``.

    Raises
    ------
    ImportError
        When pandas is not installed.
    """
    return result.to_dataframe()


def rounds_frame(result: PruneRetrainResult) -> Any:
    """Prune-and-retrain rounds as a pandas DataFrame (:meth:`PruneRetrainResult.to_dataframe
    <weightlab.core.training.PruneRetrainResult.to_dataframe>`): ``round``, ``sparsity``,
    ``accuracy``, ``loss``, ``threshold``.

    Raises
    ------
    ImportError
        When pandas is not installed.
    """
    return result.to_dataframe()

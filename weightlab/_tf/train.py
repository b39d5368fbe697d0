"""Training in the engine: fine-tune and prune-and-retrain on Keras' own machinery.

One implementation serves the engine worker's ``"finetune"`` and
``"prune_retrain"`` jobs (:mod:`weightlab._tf.worker`) and the headless
:func:`weightlab._tf.headless.finetune` / :func:`~weightlab._tf.headless.prune_retrain`
(command line, Python API). The specs and results are
:mod:`weightlab.core.training`'s.

How a fine-tune runs
--------------------
The model is rebuilt from its file (:func:`weightlab._tf.model.build_model`;
only ``.keras`` and ``.h5`` files with their architecture can be trained),
the caller's edited arrays are assigned, and ``model.fit`` trains it:

* **masks**: with ``keep_masks`` (default) every trainable entry that is 0
  now and was not 0 in the stored file (pruned, ablated, zeroed; an ablated
  neuron's bias too) gets a Keras constraint, applied by the optimizer after
  every update, that writes exactly 0 there (after the user's own constraint);
* **freezing**: ``layer.trainable = False``; a frozen BatchNormalization runs
  in inference mode (Keras 3 does so for non-trainable BatchNormalization);
* **regularizers** are set on the kernel variables (``variable.regularizer``,
  which Keras 3 adds to the model's losses), **constraints** likewise
  (``variable.constraint``); ``clip_weights`` clips every kernel at each
  epoch's end;
* the optimizer comes from the file's compile config when it has one (read
  from the file, never by running it: ``build_model`` loads with
  ``compile=False``); the loss is the live evaluation's
  (:class:`weightlab.engine.scoring.Scores`): sparse categorical
  cross-entropy on the logits Keras keeps for a softmax or sigmoid output, on
  rows that are distributions as probabilities, else on the outputs as
  logits, whatever ``from_logits`` the compile config says;
* learning-rate schedules are Keras' own objects
  (``keras.optimizers.schedules.deserialize`` of
  :meth:`weightlab.core.schedules.LRSchedule.keras_config`);
* early stopping and ReduceLROnPlateau are Keras' callbacks;
* gradual magnitude pruning is a callback that, at the start of each batch,
  asks the :class:`~weightlab.core.schedules.SparsitySchedule` whether to
  prune at the optimizer's step and, when it says so, zeroes the
  smallest-``|w|`` entries of each kernel (or of all of them ranked together)
  so that all but ``max(round(n * (1 - s)), 1)`` entries are zero, as
  TensorFlow Model Optimization's pruning counts them; the masks then hold
  through every update (an entry once pruned stays pruned). The model
  carries no wrapper layers.

Determinism: the job sets Keras' seed (``keras.utils.set_random_seed``) and
TensorFlow's op determinism right before ``fit``; op determinism is switched
off again afterwards when it was off before. On CPU a fine-tune with masks
off and no extras equals ``model.fit`` with the same seed and settings.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..core.dataset import conform_inputs, load_heldout
from ..core.errors import DataError, EngineError
from ..core.training import (
    EpochRecord,
    FinetuneResult,
    FinetuneSpec,
    PruneRetrainResult,
    PruneRetrainSpec,
    RoundRecord,
)
from ..engine.scoring import check_labels, rows_are_probabilities
from .model import (
    TensorMap,
    _leaf_layers,
    _strip,
    assign_arrays,
    build_model,
    file_layout,
    map_tensors,
    model_layout,
)
from .runtime import EvaluationCancelled, device_name

__all__ = [
    "NEEDS_KERAS",
    "TrainableModel",
    "finetune_job",
    "inference_seconds",
    "open_trainable",
    "prune_retrain_job",
    "run_finetune",
    "run_prune_retrain",
]

#: The refusal for formats Keras cannot rebuild.
NEEDS_KERAS = "training needs a Keras model (.keras or .h5 with its architecture)"
#: Least seconds between two per-batch progress partials.
BATCH_INTERVAL = 0.1
#: Model file suffixes that can be trained.
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: Largest config.json read for the compile config (bytes).
_MAX_CONFIG_BYTES = 64 * 1024 * 1024

#: ``on_progress(fraction or None, message, partial dict)``.
ProgressFn = Callable[[float | None, str, dict[str, Any]], None]


# -- the model ------------------------------------------------------------------------
@dataclass
class TrainableModel:
    """A model rebuilt for training, its tensor map and the file's values.

    Attributes
    ----------
    model:
        The Keras model (not compiled).
    tmap:
        Canonical tensor name -> variable.
    stored:
        Canonical name -> the value stored in the file.
    path:
        The model file.
    compile_config:
        The file's compile config (loss, optimizer), or None.
    """

    model: keras.Model
    tmap: TensorMap
    stored: dict[str, np.ndarray]
    path: Path
    compile_config: dict | None = None
    strategy: Any = None  # a tf.distribute.MirroredStrategy (several GPUs), or None
    device: str | None = (
        None  # "/CPU:0" when training is kept off the GPUs, else None (TensorFlow's placement)
    )
    _constraints: dict[int, Any] = field(default_factory=dict)
    _regularizers: dict[int, Any] = field(default_factory=dict)
    _trainable: dict[int, bool] = field(default_factory=dict)
    _extra: list[tuple[Any, np.ndarray]] = field(default_factory=list)  # seed generators' states at open

    def placement(self) -> contextlib.AbstractContextManager:
        """The context training runs in: the strategy's scope, the CPU, or TensorFlow's own placement."""
        if self.strategy is not None:
            return self.strategy.scope()
        if self.device is not None:
            return tf.device(self.device)
        return contextlib.nullcontext()

    @property
    def device_label(self) -> str:
        """``"CPU"``, the GPU's name, or ``"2 x NVIDIA H100 ..."`` with several GPUs."""
        if self.device is not None:
            return "CPU"
        if self.strategy is not None:
            return f"{self.strategy.num_replicas_in_sync} x {device_name()}"
        return device_name()

    def reset(self) -> None:
        """The file's values, constraints, regularizers, trainable flags and random states again."""
        assign_arrays(self.tmap, self.stored)
        for v, value in self._extra:
            v.assign(value)
        for layer in _leaf_layers(self.model):
            layer.trainable = self._trainable.get(id(layer), True)
            for v in layer.weights:
                if id(v) in self._constraints:
                    v.constraint = self._constraints[id(v)]
                    v.regularizer = self._regularizers[id(v)]


def _check_trainable_file(path: Path) -> None:
    if path.is_dir() or path.suffix.lower() not in _KERAS_SUFFIXES:
        raise EngineError(NEEDS_KERAS, path)
    if not path.is_file():
        raise EngineError("model file does not exist", path)


def _compile_config(path: Path) -> dict | None:
    """The compile config a Keras ``.keras``/``.h5`` file stores, read as data (None when absent or unreadable)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("config.json")
                if info.file_size > _MAX_CONFIG_BYTES:
                    return None
                cfg = json.loads(zf.read(info)).get("compile_config")
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("training_config")
            if raw is None:
                return None
            cfg = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
            if isinstance(cfg, dict) and "optimizer_config" in cfg:
                cfg = {**cfg, "optimizer": cfg["optimizer_config"]}
    except (KeyError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _gpu_devices() -> list[str]:
    """The logical GPU devices TensorFlow sees (``["/device:GPU:0", ...]``)."""
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def open_trainable(
    model_path: str | os.PathLike[str], *, trust: bool = False, gpus: int | None = None, seed: int = 0
) -> TrainableModel:
    """Rebuild the Keras model in ``model_path`` for training.

    Parameters
    ----------
    model_path:
        A ``.keras`` or ``.h5`` file with its architecture.
    trust:
        As for :func:`~weightlab._tf.model.build_model`.
    gpus:
        None: TensorFlow's placement (the first GPU when there is one, else
        the CPU). 0: the CPU. 1: one GPU. N >= 2: the first N GPUs through
        ``tf.distribute.MirroredStrategy`` (each batch split across them, the
        gradients summed: the same training, faster); the model is built in
        the strategy's scope.
    seed:
        Keras' seed (``keras.utils.set_random_seed``) set before the model is
        built: layers that draw random numbers (Dropout) take their seed
        generators' seeds then, as in a script that seeds and loads before
        ``fit``. Every :func:`run_finetune` on the model starts from these
        states again.

    Raises
    ------
    EngineError
        For a SavedModel, checkpoint, frozen graph or weights-only file
        (:data:`NEEDS_KERAS`, naming the file), for more GPUs than TensorFlow
        sees, and as :func:`~weightlab._tf.model.build_model`.
    """
    p = Path(model_path)
    _check_trainable_file(p)
    strategy, device = None, None
    if gpus is not None:
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise EngineError(f"gpus must be a number of GPUs >= 0 (0: the CPU); got {gpus!r}", p)
        seen = _gpu_devices()
        if gpus > len(seen):
            raise EngineError(f"training on {gpus} GPU(s) was asked for; TensorFlow sees {len(seen)}", p)
        if gpus == 0:
            device = "/CPU:0"
        elif gpus >= 2:
            strategy = tf.distribute.MirroredStrategy(devices=seen[:gpus])
    keras.utils.set_random_seed(seed)
    try:
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build_model(p, trust=trust)
    except EngineError as exc:
        if "weights-only" in exc.message:
            raise EngineError(f"{NEEDS_KERAS}; this file holds weights only", p) from exc
        raise
    layout = file_layout(p) or model_layout(model)
    tmap = map_tensors(model, layout)
    stored = {name: np.array(v.numpy()) for name, v in tmap.variables.items()}
    tm = TrainableModel(model, tmap, stored, p, _compile_config(p), strategy=strategy, device=device)
    mapped = {id(v) for v in tmap.variables.values()}
    tm._extra = [(v, np.array(v.numpy())) for v in model.variables if id(v) not in mapped]
    for layer in _leaf_layers(model):
        tm._trainable[id(layer)] = bool(layer.trainable)
        for v in layer.weights:
            tm._constraints[id(v)] = v.constraint
            tm._regularizers[id(v)] = v.regularizer
    return tm


# -- data -----------------------------------------------------------------------------
@dataclass
class _Split:
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    dataset: Any = None  # a batched tf.data.Dataset (image folders)
    path: str = ""

    @property
    def fit_args(self) -> dict[str, Any]:
        return {"x": self.dataset} if self.dataset is not None else {"x": self.x, "y": self.y}

    @property
    def validation(self) -> Any:
        return self.dataset if self.dataset is not None else (self.x, self.y)


def _load_npz(path: str, model: keras.Model, num_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    data = load_heldout(path)
    if data.y is None:
        raise DataError(f"the {what} set has no labels (y): training needs them", path)
    x = conform_inputs(np.asarray(data.x), tuple(model.inputs[0].shape), path)
    y = check_labels(data.y, int(x.shape[0]), num_classes, path)
    x = x.astype(keras.backend.standardize_dtype(model.inputs[0].dtype), copy=False)
    return x, y


def _image_folder(path: str, model: keras.Model, spec: FinetuneSpec, subset: str | None) -> Any:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] not in (1, 3, 4):
        raise DataError(
            f"an image folder needs a model with image inputs (N, H, W, 1|3|4); this one takes {shape}", path
        )
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}[shape[3]]
    kw: dict[str, Any] = {}
    if subset is not None:
        kw = {"validation_split": spec.val_split, "subset": subset}
    try:
        return keras.utils.image_dataset_from_directory(
            path,
            labels="inferred",
            label_mode="int",
            color_mode=mode,
            image_size=(int(shape[1]), int(shape[2])),
            batch_size=spec.batch_size,
            shuffle=True,
            seed=spec.seed,
            verbose=False,
            **kw,
        )
    except ValueError as exc:
        raise DataError(f"not a usable image folder ({exc})", path) from exc


def _load_data(spec: FinetuneSpec, model: keras.Model, num_classes: int) -> tuple[_Split, _Split | None]:
    """The training and validation data (``val_split``: Keras' last fraction of the training arrays)."""
    if Path(spec.train).is_dir():
        train = _Split(dataset=_image_folder(spec.train, model, spec, "training" if spec.val_split else None))
        val = None
        if spec.val_split:
            val = _Split(dataset=_image_folder(spec.train, model, spec, "validation"))
    else:
        x, y = _load_npz(spec.train, model, num_classes, "training")
        train, val = _Split(x, y, path=spec.train), None
        if spec.val_split:
            split_at = int(math.floor(len(x) * (1.0 - spec.val_split)))  # keras' train_validation_split
            if split_at < 1 or split_at >= len(x):
                raise DataError(
                    f"val_split {spec.val_split:g} leaves no training or no validation samples", spec.train
                )
            train, val = (
                _Split(x[:split_at], y[:split_at], path=spec.train),
                _Split(x[split_at:], y[split_at:]),
            )
    if spec.val is not None:
        if Path(spec.val).is_dir():
            val = _Split(dataset=_image_folder(spec.val, model, spec, None))
        else:
            vx, vy = _load_npz(spec.val, model, num_classes, "validation")
            val = _Split(vx, vy, path=spec.val)
    return train, val


# -- loss, optimizer, schedule ---------------------------------------------------------
def _probabilities(model: keras.Model, train: _Split) -> bool:
    """True when the model outputs probabilities: a softmax output, or rows that are distributions
    (:func:`~weightlab.engine.scoring.rows_are_probabilities`, the live evaluation's test)."""
    last = model.layers[-1]
    if (
        isinstance(last, keras.layers.Softmax)
        or getattr(getattr(last, "activation", None), "__name__", "") == "softmax"
    ):
        return True
    if train.x is not None:
        xb = train.x[: min(len(train.x), 64)]
    else:
        xb = next(iter(train.dataset))[0]
    return rows_are_probabilities(np.asarray(model(xb, training=False), dtype=np.float64))


def _loss(tm: TrainableModel, train: _Split) -> keras.losses.Loss:
    """The live evaluation's loss (:class:`~weightlab.engine.scoring.Scores`), so that the validation
    loss Keras reports and the held-out loss WeightLab shows are one function.

    Cross-entropy of the class indices: on the logits Keras keeps for a
    softmax or sigmoid output, on rows that are distributions as
    probabilities, else on the outputs as logits. The compile config's
    ``from_logits`` is not followed where it says otherwise (a linear output
    compiled with ``from_logits=False``: Keras would clip its negative outputs).
    """
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not _probabilities(tm.model, train))


def _learning_rate(spec: FinetuneSpec, tm: TrainableModel) -> tuple[float, Any]:
    """``(initial rate, rate or Keras schedule object)``."""
    lr0 = spec.lr
    if lr0 is None:
        opt = (tm.compile_config or {}).get("optimizer")
        stored = ((opt or {}).get("config") or {}).get("learning_rate") if isinstance(opt, dict) else None
        lr0 = float(stored) if isinstance(stored, (int, float)) and not isinstance(stored, bool) else 0.001
    if spec.schedule is None:
        return lr0, lr0
    from ..core.schedules import LRSchedule

    sched = LRSchedule.from_dict(spec.schedule, source="finetune spec: field 'schedule'")
    return lr0, keras.optimizers.schedules.deserialize(sched.keras_config(lr0))


def _optimizer(spec: FinetuneSpec, tm: TrainableModel) -> keras.optimizers.Optimizer:
    _, rate = _learning_rate(spec, tm)
    if spec.optimizer == "auto":
        cfg = (tm.compile_config or {}).get("optimizer")
        name = cfg.get("class_name") if isinstance(cfg, dict) else cfg if isinstance(cfg, str) else None
        cls = getattr(keras.optimizers, str(name), None) if name else None
        if isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer):
            conf = dict(cfg.get("config") or {}) if isinstance(cfg, dict) else {}
            if (
                spec.lr is not None
                or spec.schedule is not None
                or not isinstance(conf.get("learning_rate"), dict)
            ):
                conf["learning_rate"] = rate  # else the file's own schedule goes on
            try:
                return cls.from_config(conf)
            except (TypeError, ValueError):
                pass  # a config this Keras cannot take back: the default optimizer
        return keras.optimizers.Adam(learning_rate=rate)
    if spec.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=spec.momentum)
    if spec.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=rate)
    return keras.optimizers.Adam(learning_rate=rate)


def _lr_text(spec: FinetuneSpec, tm: TrainableModel, optimizer: keras.optimizers.Optimizer) -> str:
    """The learning rate ``optimizer`` trained with, for the label: ``"0.001"``, the spec's schedule
    (``"ExponentialDecay(0.001, decay_steps=100, decay_rate=0.9)"``) or the file's own schedule."""
    # the rate or schedule it was built with (ReduceLROnPlateau changes the variable's value, not this)
    rate = optimizer._learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        if spec.schedule is not None:
            from ..core.schedules import LRSchedule

            lr0, _ = _learning_rate(spec, tm)
            sched = LRSchedule.from_dict(spec.schedule, source="finetune spec: field 'schedule'")
            return sched.describe(_short(lr0))
        cfg = rate.get_config()
        args = ", ".join(
            f"{k}={_short(v) if isinstance(v, float) else v!r}"
            for k, v in cfg.items()
            if k not in ("name", "initial_learning_rate")
        )
        start = cfg.get("initial_learning_rate")
        return f"{type(rate).__name__}({'' if start is None else f'{_short(start)}, '}{args}) (the file's)"
    lr0, _ = _learning_rate(spec, tm)
    return f"{_short(lr0)}"


def _short(x: float) -> float:
    """``x`` to float32's 7 significant digits: a rate stored as float32 (0.0010000000474974513) reads 0.001."""
    return float(f"{float(x):.7g}")


# -- constraints, masks, freezing -----------------------------------------------------
class ClipValue(keras.constraints.Constraint):
    """Keep every entry in ``[-value, value]`` (a weight constraint)."""

    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, w):
        return keras.ops.clip(w, -self.value, self.value)

    def get_config(self) -> dict:
        return {"value": self.value}


class KeepZero(keras.constraints.Constraint):
    """Apply ``inner`` (another constraint, or None), then write exactly 0 where ``mask`` is True.

    ``mask`` is a boolean ``tf.Variable``: gradual pruning updates it in place
    and the compiled training step sees the new mask.
    """

    def __init__(self, mask: tf.Variable, inner: Any = None):
        self.mask = mask
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return tf.where(self.mask, tf.zeros_like(w), w)


def _user_constraint(c: Mapping[str, Any]) -> Any:
    kind = c["kind"]
    args = {k: v for k, v in c.items() if k not in ("kind", "layers")}
    if kind == "max_norm":
        return keras.constraints.MaxNorm(**args)
    if kind == "non_neg":
        return keras.constraints.NonNeg()
    if kind == "unit_norm":
        return keras.constraints.UnitNorm(**args)
    if kind == "min_max_norm":
        return keras.constraints.MinMaxNorm(**args)
    return ClipValue(args["value"])


def _kernels(layer: Any) -> list[Any]:
    """The layer's kernel variables (weights whose name ends with ``kernel``)."""
    return [v for v in layer.weights if _strip(v.name).endswith("kernel")]


def _matching(model: keras.Model, globs: Any, what: str, path: Path) -> list[Any]:
    globs = [globs] if isinstance(globs, str) else list(globs)
    leaves = [layer for layer in _leaf_layers(model) if layer.weights]
    found = [layer for layer in leaves if any(fnmatch.fnmatchcase(layer.name, g) for g in globs)]
    if not found:
        names = ", ".join(layer.name for layer in leaves[:12])
        raise EngineError(
            f"{what}: no layer with weights matches {', '.join(map(repr, globs))} (layers: {names})", path
        )
    return found


def _freeze(spec: FinetuneSpec, tm: TrainableModel) -> list[str]:
    frozen: list[Any] = []
    if spec.freeze:
        frozen += _matching(tm.model, spec.freeze, "freeze", tm.path)
    if spec.train_last is not None:
        weighted = [layer for layer in _leaf_layers(tm.model) if layer.weights]
        frozen += weighted[: max(0, len(weighted) - spec.train_last)]
    for layer in frozen:
        layer.trainable = False
    if not tm.model.trainable_weights:
        raise EngineError("every layer is frozen: nothing to train", tm.path)
    return sorted({layer.name for layer in frozen})


@dataclass
class _Masks:
    """Per-variable boolean masks (True: kept at 0) enforced by :class:`KeepZero`."""

    masks: dict[int, tf.Variable] = field(default_factory=dict)

    def ensure(self, var: Any) -> tf.Variable:
        m = self.masks.get(id(var))
        if m is None:
            m = tf.Variable(tf.zeros(var.shape, tf.bool), trainable=False)
            self.masks[id(var)] = m
            var.constraint = KeepZero(m, var.constraint)
        return m

    def count(self) -> int:
        return int(sum(int(tf.math.count_nonzero(m)) for m in self.masks.values()))


def _regularize(layer: Any, spec: FinetuneSpec) -> None:
    """The spec's kernel regularizers and constraints whose globs match ``layer``'s name, on its kernels."""
    for r in spec.regularizers:
        if _globs_match(r["layers"], layer.name):
            for v in _kernels(layer):
                v.regularizer = keras.regularizers.L1L2(l1=r["l1"], l2=r["l2"])
    for c in spec.constraints:
        if _globs_match(c["layers"], layer.name):
            for v in _kernels(layer):
                v.constraint = _user_constraint(c)


def _globs_match(globs: Any, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in ([globs] if isinstance(globs, str) else globs))


def _prepare_variables(spec: FinetuneSpec, tm: TrainableModel) -> _Masks:
    """Regularizers, constraints and masks on the trainable variables."""
    model = tm.model
    for what, terms in (("regularizers", spec.regularizers), ("constraints", spec.constraints)):
        for t in terms:
            _matching(model, t["layers"], what, tm.path)  # a glob that matches no layer is refused
    for layer in _leaf_layers(model):
        if layer.weights:
            _regularize(layer, spec)
    masks = _Masks()
    if spec.keep_masks:
        trainable = {id(v) for v in model.trainable_weights}
        for name, var in tm.tmap.variables.items():
            if id(var) not in trainable:
                continue
            stored = tm.stored[name]
            cur = np.asarray(var.numpy())
            keep = (cur == 0) & (stored != 0)
            if keep.any():
                masks.ensure(var).assign(keep)
    return masks


# -- callbacks ------------------------------------------------------------------------
class _ClipKernels(keras.callbacks.Callback):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def on_epoch_end(self, epoch, logs=None):
        for layer in _leaf_layers(self.model):
            if layer.trainable:
                for v in _kernels(layer):
                    v.assign(keras.ops.clip(v, -self.value, self.value))


class _GradualPrune(keras.callbacks.Callback):
    """Gradual magnitude pruning: at each batch's start, prune when the schedule says so."""

    def __init__(
        self,
        schedule: Any,
        variables: list[Any],
        scope: str,
        masks: _Masks,
        report: Callable[[int, float], None],
    ):
        super().__init__()
        self.schedule, self.variables, self.scope, self.masks, self.report = (
            schedule,
            variables,
            scope,
            masks,
            report,
        )

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        prune, sparsity = self.schedule(step)
        if not prune:
            return
        values = [np.asarray(v.numpy()) for v in self.variables]
        if self.scope == "global":
            flat = np.concatenate([np.abs(a).ravel() for a in values])
            zero = _smallest_mask(flat, sparsity)
            new, start = [], 0
            for a in values:
                new.append(zero[start : start + a.size].reshape(a.shape))
                start += a.size
        else:
            new = [_smallest_mask(np.abs(a).ravel(), sparsity).reshape(a.shape) for a in values]
        zeros = total = 0
        for v, a, m in zip(self.variables, values, new):
            mask = self.masks.ensure(v)
            keep = np.asarray(mask.numpy()) | m
            mask.assign(keep)
            v.assign(np.where(keep, np.zeros_like(a), a))
            zeros += int(np.count_nonzero(keep))
            total += a.size
        self.report(step, zeros / total if total else 0.0)


def _smallest_mask(magnitude: np.ndarray, sparsity: float) -> np.ndarray:
    """True at the entries gradual pruning zeroes: all but the ``max(round(n * (1 - sparsity)), 1)`` largest.

    The count is TensorFlow Model Optimization's (``pruning_impl.Pruning._update_mask``,
    computed in float32 as there); ties are broken by position, so exactly that
    many entries are kept (TF-MOT keeps every entry tied with the threshold).
    """
    n = magnitude.size
    keep = max(int(np.round(np.float32(n) * (np.float32(1.0) - np.float32(sparsity)))), 1)
    mask = np.zeros(n, bool)
    if keep < n:
        mask[np.argsort(magnitude, kind="stable")[: n - keep]] = True
    return mask


def _monitor_mode(monitor: str) -> str:
    return "max" if "acc" in monitor else "min"


class _Live(keras.callbacks.Callback):
    """Streams the partials of :mod:`weightlab.core.training`, records epochs, watches for a cancel."""

    def __init__(self, run: _Run):
        super().__init__()
        self.run = run
        self._last_batch = 0.0
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    # Batch-level work happens at a batch's *start*: a callback with an ``on_train_batch_end``
    # makes Keras turn every batch's logs into Python numbers on the training thread (a device
    # sync per batch); without one, Keras hands them to a worker thread as in a plain ``fit``.
    def on_train_batch_begin(self, batch, logs=None):
        run = self.run
        if run.should_stop is not None and run.should_stop():
            run.cancelled = True
            self.model.stop_training = True  # seen after this batch
            return
        now = time.monotonic()
        if batch == 0 or run.on_progress is None or now - self._last_batch < BATCH_INTERVAL:
            return
        self._last_batch = now
        epoch = len(run.history) + 1
        steps = run.steps
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        tracker = next((m for m in self.model.metrics if m.name == "loss"), None)
        loss = math.nan if tracker is None else float(keras.ops.convert_to_numpy(tracker.result()))
        partial = {
            "type": "batch",
            "epoch": epoch,
            "batch": batch,  # batches done in this epoch
            "batches": steps,
            "step": step,
            "loss": loss,  # the epoch's running mean, as Keras' progress bar shows it
            "lr": run.current_lr(),
        }
        frac = ((epoch - 1) + batch / steps) / run.spec.epochs if steps else None
        run.on_progress(frac, f"epoch {epoch} of {run.spec.epochs}, batch {batch} of {steps}", partial)

    def on_epoch_end(self, epoch, logs=None):
        run = self.run
        if run.cancelled:
            return  # a partial epoch: not recorded
        logs = logs or {}
        held = run.heldout_metrics()
        rec = EpochRecord(
            epoch=epoch + 1,
            loss=float(logs.get("loss", math.nan)),
            accuracy=_opt(logs.get("accuracy")),
            val_loss=_opt(logs.get("val_loss")),
            val_accuracy=_opt(logs.get("val_accuracy")),
            heldout_accuracy=None if held is None else held[0],
            heldout_loss=None if held is None else held[1],
            lr=run.current_lr(),
            seconds=time.monotonic() - self._epoch_start,
        )
        run.history.append(rec)
        run.note_epoch(rec, self.model)
        if run.on_progress is not None:
            elapsed = time.monotonic() - run.t0
            eta = elapsed / rec.epoch * (run.spec.epochs - rec.epoch)
            tensors = {
                n: np.array(run.tm.tmap.variables[n].numpy())
                for n in run.spec.watch
                if n in run.tm.tmap.variables
            }
            partial = {
                "type": "epoch",
                **rec.to_dict(),
                "tensors": tensors,
                "eta_s": eta,
                "device": run.device,
            }
            run.on_progress(rec.epoch / run.spec.epochs, f"epoch {rec.epoch} of {run.spec.epochs}", partial)


def _opt(x: Any) -> float | None:
    return None if x is None else float(x)


# -- the run --------------------------------------------------------------------------
@dataclass
class _Run:
    spec: FinetuneSpec
    tm: TrainableModel
    on_progress: ProgressFn | None
    should_stop: Callable[[], bool] | None
    steps: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    cancelled: bool = False
    t0: float = 0.0
    device: str = "CPU"
    heldout: Any = None  # an EngineSession on the held-out set
    model: Any = None  # the model trained (a new head's is not tm.model)
    monitor: str = "loss"
    best_value: float | None = None
    best_epoch: int | None = None
    best_weights: list[np.ndarray] | None = None
    last_weights: list[np.ndarray] | None = None

    def current_lr(self) -> float:
        opt = self.model.optimizer
        return float(keras.ops.convert_to_numpy(opt.learning_rate))

    def heldout_metrics(self) -> tuple[float, float] | None:
        if self.heldout is None:
            return None
        m = self.heldout.evaluate()
        return float(m.accuracy), float(m.loss)

    def note_epoch(self, rec: EpochRecord, model: keras.Model) -> None:
        """Keep the weights a cancel may fall back to (best by :attr:`monitor`, or the last epoch's)."""
        if self.spec.on_cancel == "last":
            self.last_weights = model.get_weights()
            return
        value = getattr(rec, self.monitor, None)
        if value is None or not math.isfinite(value):
            return
        better = self.best_value is None or (
            value > self.best_value if _monitor_mode(self.monitor) == "max" else value < self.best_value
        )
        if better:
            self.best_value, self.best_epoch, self.best_weights = value, rec.epoch, model.get_weights()


def _new_head(model: keras.Model, spec: FinetuneSpec, path: Path) -> keras.Model:
    """``model`` with its last Dense layer replaced by a fresh ``Dense(spec.new_head)`` (glorot_uniform,
    seeded), named as the layer it replaces: the spec's regularizers and constraints that name that layer
    apply to the new head."""
    k, seed = int(spec.new_head or 0), spec.seed
    layers = model.layers
    i = len(layers) - 1
    while (
        i > 0
        and not layers[i].weights
        and isinstance(layers[i], (keras.layers.Activation, keras.layers.Softmax))
    ):
        i -= 1
    old = layers[i]
    if not isinstance(old, keras.layers.Dense):
        raise EngineError(f"a new head replaces a Dense output layer; the last layer with weights, {old.name!r}, "
                          f"is a {type(old).__name__}", path)  # fmt: skip
    head = keras.layers.Dense(
        k,
        activation=old.activation,
        use_bias=old.use_bias,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=old.name,
    )
    out = head(old.input)
    _regularize(head, spec)
    for layer in layers[i + 1 :]:
        out = type(layer).from_config(layer.get_config())(out)
    return keras.Model(model.inputs, out, name=model.name)


def run_finetune(
    tm: TrainableModel,
    spec: FinetuneSpec,
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Fine-tune ``tm``'s model with ``edited`` assigned (see the module docstring).

    Parameters
    ----------
    tm:
        The model, from :func:`open_trainable`; it is reset to the file's
        values first, so one ``tm`` serves several runs.
    spec:
        The fine-tune.
    edited:
        Canonical name -> current value of every edited tensor (shape of the
        tensor, dtype kind of the tensor); None: the file as stored.
    on_progress:
        ``on_progress(fraction, message, partial)`` with the partial dicts of
        :mod:`weightlab.core.training` (``batch`` at most ten a second,
        ``epoch``, ``sparsity``).
    should_stop:
        Polled before every batch; True ends training after that batch (a
        cancel): the weights of the best or the last complete epoch are kept
        (``spec.on_cancel``).

    Returns
    -------
    FinetuneResult
        ``arrays``: canonical name -> trained value (the dtype of the edited
        or stored array), every tensor training changed.

    Raises
    ------
    EngineError
        A layer glob that matches nothing, every layer frozen, a model that
        is not a one-input classifier, a new head on a non-Dense output.
    DataError
        Training/validation/held-out data that does not fit the model.
    EvaluationCancelled
        When cancelled before the first epoch ended (nothing to keep).
    """
    with tm.placement():
        return _run_finetune(tm, spec, edited, on_progress, should_stop)


def _run_finetune(
    tm: TrainableModel,
    spec: FinetuneSpec,
    edited: Mapping[str, np.ndarray] | None,
    on_progress: ProgressFn | None,
    should_stop: Callable[[], bool] | None,
) -> FinetuneResult:
    from .session import EngineSession

    t_start = time.monotonic()
    tm.reset()
    if edited:
        assign_arrays(tm.tmap, edited)
    before = {name: np.array(v.numpy()) for name, v in tm.tmap.variables.items()}
    num_classes = int(tm.model.outputs[0].shape[-1])
    if len(tm.model.inputs) != 1 or len(tm.model.outputs) != 1 or len(tm.model.outputs[0].shape) != 2:
        raise EngineError("training needs a one-input classifier with outputs (N, C)", tm.path)
    train, val = _load_data(spec, tm.model, num_classes)
    _freeze(spec, tm)
    masks = _prepare_variables(spec, tm)
    masked_entries = masks.count()
    model = tm.model
    if spec.new_head is not None:
        model = _new_head(model, spec, tm.path)
        num_classes = spec.new_head
    run = _Run(spec, tm, on_progress, should_stop, device=tm.device_label, model=model)
    if spec.heldout:
        hx, hy = _load_npz(spec.heldout, model, num_classes, "held-out")
        run.heldout = EngineSession(model, [], batch_size=256, cache_budget=0)
        run.heldout.set_heldout(hx, hy, spec.heldout)
    es = spec.early_stopping
    run.monitor = es["monitor"] if es else ("val_loss" if val is not None else "loss")
    if run.monitor.startswith("val_") and val is None:
        raise EngineError(f"{run.monitor} needs validation data (val or val_split)", tm.path)
    if spec.reduce_lr and spec.reduce_lr["monitor"].startswith("val_") and val is None:
        raise EngineError(
            f"reduce_lr on {spec.reduce_lr['monitor']} needs validation data (val or val_split)", tm.path
        )
    loss = _loss(tm, train)
    optimizer = _optimizer(spec, tm)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    callbacks: list[keras.callbacks.Callback] = []
    if spec.clip_weights is not None:
        callbacks.append(_ClipKernels(spec.clip_weights))
    if spec.pruning is not None:
        from ..core.schedules import SparsitySchedule

        sched = SparsitySchedule.from_dict(spec.pruning["schedule"], source="finetune spec: field 'pruning'")
        pruned = [v for layer in _matching(model, spec.pruning["layers"], "pruning", tm.path) if layer.trainable
                  for v in _kernels(layer)]  # fmt: skip

        def report(step: int, sparsity: float) -> None:
            if on_progress is not None:
                on_progress(None, f"pruned to sparsity {sparsity:.3f} at step {step}",
                            {"type": "sparsity", "step": step, "sparsity": sparsity})  # fmt: skip

        callbacks.append(_GradualPrune(sched, pruned, spec.pruning["scope"], masks, report))
    callbacks.append(_Live(run))
    early = None
    if es:
        early = keras.callbacks.EarlyStopping(
            monitor=es["monitor"],
            patience=es["patience"],
            min_delta=es["min_delta"],
            start_from_epoch=es["start_from_epoch"],
            restore_best_weights=es["restore_best_weights"],
            mode=_monitor_mode(es["monitor"]),
        )
        callbacks.append(early)
    if spec.reduce_lr:
        r = spec.reduce_lr
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=r["monitor"], factor=r["factor"], patience=r["patience"], min_lr=r["min_lr"],
                min_delta=r["min_delta"], cooldown=r["cooldown"], mode=_monitor_mode(r["monitor"]),
            )
        )  # fmt: skip
    if train.dataset is not None:
        run.steps = int(train.dataset.cardinality())
    else:
        run.steps = math.ceil(len(train.x) / spec.batch_size)

    was_deterministic = _op_determinism()
    keras.utils.set_random_seed(spec.seed)
    tf.config.experimental.enable_op_determinism()
    run.t0 = time.monotonic()
    try:
        model.fit(
            **train.fit_args,
            batch_size=None if train.dataset is not None else spec.batch_size,
            epochs=spec.epochs,
            shuffle=True,
            validation_data=None if val is None else val.validation,
            callbacks=callbacks,
            verbose=0,
        )
    finally:
        if not was_deterministic:
            _disable_op_determinism()

    stopped_early = bool(early is not None and early.stopped_epoch > 0 and not run.cancelled)
    best_epoch: int | None = None
    kept = "last"
    if run.cancelled:
        if not run.history:
            raise EvaluationCancelled("training was cancelled before its first epoch ended")
        if spec.on_cancel == "best" and run.best_weights is not None:
            model.set_weights(run.best_weights)
            best_epoch, kept = run.best_epoch, "best"
        elif run.last_weights is not None:
            model.set_weights(run.last_weights)
    elif early is not None and es["restore_best_weights"] and early.best_weights is not None:
        best_epoch, kept = early.best_epoch + 1, "best"
    label = spec.describe(lr=_lr_text(spec, tm, optimizer))
    if stopped_early:
        label += f", stopped early at epoch {len(run.history)}"
    if run.cancelled:
        label += f", cancelled after {len(run.history)} epochs, kept {kept}"
        if kept == "best":
            label += f" (epoch {best_epoch})"
    final = None
    if run.heldout is not None:
        acc, lo = run.heldout_metrics() or (math.nan, math.nan)
        final = {"accuracy": acc, "loss": lo}
    arrays: dict[str, np.ndarray] = {}
    saved = None
    if spec.new_head is not None:
        from ..core.atomic import atomic_path

        assert spec.output is not None
        with atomic_path(spec.output) as tmp:
            model.save(tmp)
        saved = spec.output
    else:
        for name, var in tm.tmap.variables.items():
            value = np.asarray(var.numpy())
            if not np.array_equal(value, before[name]):
                dtype = np.asarray(edited[name]).dtype if edited and name in edited else tm.stored[name].dtype
                arrays[name] = value.astype(dtype, copy=False)
    if spec.pruning is not None:
        masked_entries = masks.count()
    return FinetuneResult(
        history=run.history,
        best_epoch=best_epoch,
        final=final,
        arrays=arrays,
        label=label,
        stopped_early=stopped_early,
        cancelled=run.cancelled,
        kept=kept,
        masked_entries=masked_entries,
        device=run.device,
        seconds=time.monotonic() - t_start,
        saved=saved,
    )


def _op_determinism() -> bool:
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


def _disable_op_determinism() -> None:
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


# -- prune and retrain ----------------------------------------------------------------
class _Arrays:
    """An :class:`~weightlab.core.edits.ArraySource` over plain dicts."""

    def __init__(self, current: Mapping[str, np.ndarray], stored: Mapping[str, np.ndarray]):
        self.current, self.stored = current, stored

    def array(self, name: str) -> np.ndarray:
        return self.current[name]

    def original(self, name: str) -> np.ndarray:
        return self.stored[name]


def run_prune_retrain(
    tm: TrainableModel,
    spec: PruneRetrainSpec,
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PruneRetrainResult:
    """Rounds of magnitude pruning (:class:`~weightlab.core.edits.PruneMagnitude`) each followed by a fine-tune with masks kept.

    Round ``r`` prunes ``spec.target`` at ``threshold * factor ** (r - 1)``
    (or ``sparsities[r - 1]``), then fine-tunes ``finetune["epochs"]``
    epochs; its :class:`RoundRecord` holds the sparsity of the pruned tensors
    and the held-out accuracy after the fine-tune. With ``budget_pp`` the
    rounds stop at the first one more than that many percentage points
    below the baseline (the held-out accuracy before round 1): that round
    stays in ``rounds`` with ``kept=False``, and the result's arrays are the
    previous round's (none at all when it is round 1: nothing is kept).

    Parameters as for :func:`run_finetune`; a cancel ends the rounds (a round
    cancelled mid-way keeps its best or last epoch, and is the last).

    Raises
    ------
    RecipeError
        When ``spec.target`` matches no tensor.
    EngineError, DataError
        As :func:`run_finetune`.
    """
    from ..core.edits import PruneMagnitude, resolve_tensors
    from ..core.model import ModelFile

    ft = spec.finetune_spec
    current = {n: np.asarray(a) for n, a in (edited or {}).items()}
    full = {**tm.stored, **current}
    mf = ModelFile.from_arrays(full, tm.path)
    baseline = None
    if ft.heldout:
        from .session import EngineSession

        tm.reset()
        if current:
            assign_arrays(tm.tmap, current)
        hx, hy = _load_npz(ft.heldout, tm.model, int(tm.model.outputs[0].shape[-1]), "held-out")
        session = EngineSession(tm.model, [], batch_size=256, cache_budget=0)
        session.set_heldout(hx, hy, ft.heldout)
        m = session.evaluate()
        baseline = {"accuracy": float(m.accuracy), "loss": float(m.loss)}
        if on_progress is not None:
            # round 0's sparsity counts what every later round counts: the tensors the rounds prune
            pruned_names = resolve_tensors(spec.target, mf, "prune-retrain")
            on_progress(0.0, "baseline measured", {"type": "round", "round": 0,
                                                   "sparsity": _sparsity(full, pruned_names),
                                                   "accuracy": baseline["accuracy"], "loss": baseline["loss"],
                                                   "threshold": None})  # fmt: skip
    rounds: list[RoundRecord] = []
    stopped = None
    targets: list[str] | None = None
    for r in range(1, spec.rounds + 1):
        threshold, sparsity = spec.round_threshold(r), spec.round_sparsity(r)
        edit = PruneMagnitude(target=spec.target, threshold=threshold, sparsity=sparsity, scope=spec.scope)
        source = _Arrays(full, tm.stored)
        pruned = edit.apply(mf, source)
        targets = list(pruned)
        undo = {n: (full[n], current.get(n)) for n in pruned}
        before = (dict(full), dict(current))  # the last round within the budget, if this one falls past it
        full.update(pruned)
        current.update(pruned)

        def round_progress(fraction: float | None, message: str, partial: dict[str, Any], r: int = r) -> None:
            if on_progress is not None:
                f = None if fraction is None else ((r - 1) + fraction) / spec.rounds
                on_progress(f, f"round {r} of {spec.rounds}: {message}", {**partial, "round": r})

        try:
            result = run_finetune(tm, ft, current, on_progress=round_progress, should_stop=should_stop)
        except EvaluationCancelled:  # before its first epoch ended: the round's pruning is undone too
            for n, (was_full, was_current) in undo.items():
                full[n] = was_full
                if was_current is None:
                    current.pop(n, None)
                else:
                    current[n] = was_current
            stopped = f"cancelled in round {r}"
            break
        full.update(result.arrays)
        current.update(result.arrays)
        acc = None if result.final is None else result.final["accuracy"]
        past = (spec.budget_pp is not None and baseline is not None and acc is not None
                and (baseline["accuracy"] - acc) * 100.0 > spec.budget_pp)  # fmt: skip
        rec = RoundRecord(round=r, sparsity=_sparsity(full, targets), accuracy=acc,
                          loss=None if result.final is None else result.final["loss"], threshold=threshold,
                          kept=not past)  # fmt: skip
        rounds.append(rec)
        if on_progress is not None:
            on_progress(r / spec.rounds, f"round {r} of {spec.rounds}", {"type": "round", **rec.to_dict()})
        if past:  # measured and reported, but its weights are dropped: the result is the round before
            full, current = before
            fell = 100.0 * (baseline["accuracy"] - acc)  # type: ignore[index,operator]
            kept = f"kept round {r - 1}" if r > 1 else "kept nothing (the model as it was before round 1)"
            stopped = (
                f"round {r} fell {fell:.2f} pp below the baseline (budget {spec.budget_pp:g} pp); {kept}"
            )
            break
        if result.cancelled:
            stopped = f"cancelled in round {r}"
            break
    arrays = {
        n: a
        for n, a in current.items()
        if edited is None or n not in edited or not np.array_equal(a, edited[n])
    }
    kept_rounds = [x for x in rounds if x.kept]
    label = spec.describe()
    if kept_rounds:
        label += f", now {kept_rounds[-1].sparsity:.1%} zero"
        if kept_rounds[-1] is not rounds[-1]:
            label += f" (kept round {kept_rounds[-1].round}: round {rounds[-1].round} fell past the budget)"
    if stopped and not (rounds and not rounds[-1].kept):
        label += f", stopped: {stopped}"
    return PruneRetrainResult(rounds=rounds, baseline=baseline, arrays=arrays, label=label, stopped=stopped)


def _sparsity(arrays: Mapping[str, np.ndarray], names: list[str] | None) -> float:
    names = list(arrays) if names is None else names
    total = sum(arrays[n].size for n in names)
    zeros = sum(arrays[n].size - int(np.count_nonzero(arrays[n])) for n in names)
    return zeros / total if total else 0.0


# -- jobs in the worker ---------------------------------------------------------------
def _worker_inputs(worker: Any, seed: int) -> tuple[TrainableModel, dict[str, np.ndarray]]:
    path = getattr(worker, "model_path", None)
    if path is None:
        raise EngineError(f"training is off: {worker.reason or 'no model is open'}")
    tm = open_trainable(path, trust=bool(getattr(worker, "trust", False)), seed=seed)
    return tm, {name: array for name, (_, array) in worker.tensors.items()}


def _ctx_progress(ctx: Any) -> ProgressFn:
    def progress(fraction: float | None, message: str, partial: dict[str, Any]) -> None:
        ctx.progress(fraction, message, partial, final=partial.get("type") != "batch")

    return progress


def finetune_job(worker: Any, spec: Any, ctx: Any) -> FinetuneResult:
    """The worker's ``finetune`` job: :func:`run_finetune` on the opened model with the mirrored tensors.

    The model is rebuilt from its file for the job (the evaluation session's
    model is never trained). A cancel keeps the best or last epoch and
    returns the result; before the first epoch ends it cancels the job.
    """
    assert isinstance(spec, FinetuneSpec)
    tm, edited = _worker_inputs(worker, spec.seed)
    return run_finetune(tm, spec, edited, on_progress=_ctx_progress(ctx), should_stop=ctx.should_stop)


def prune_retrain_job(worker: Any, spec: Any, ctx: Any) -> PruneRetrainResult:
    """The worker's ``prune_retrain`` job: :func:`run_prune_retrain` on the opened model with the mirrored tensors."""
    assert isinstance(spec, PruneRetrainSpec)
    tm, edited = _worker_inputs(worker, spec.finetune_spec.seed)
    return run_prune_retrain(tm, spec, edited, on_progress=_ctx_progress(ctx), should_stop=ctx.should_stop)


# -- inference time -------------------------------------------------------------------
def inference_seconds(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    edited: Mapping[str, np.ndarray] | None = None,
    *,
    repeats: int = 5,
    trust: bool = False,
) -> float:
    """Median wall-clock seconds of one full forward pass over the held-out set.

    One warm-up pass (tracing) is not counted; then ``repeats`` timed passes
    of the batched, compiled forward function
    (:class:`~weightlab._tf.session.EngineSession` without cache).

    Raises
    ------
    EngineError, DataError
        As :func:`weightlab._tf.headless.evaluate_file`.
    """
    from .passes import open_session

    session = open_session(model_path, data_path, trust=trust, cache_budget=0)
    session.evaluate(edited)  # warm-up: traces the function, assigns the edits
    times = []
    for _ in range(max(1, int(repeats))):
        t = time.perf_counter()
        session.evaluate(edited)
        times.append(time.perf_counter() - t)
    return float(np.median(times))

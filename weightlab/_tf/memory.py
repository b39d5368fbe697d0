"""Live Keras models as WeightLab sessions: no file to open, the model's variables are the tensors.

Imports TensorFlow and Keras (Keras 3, and ``tf_keras`` when the model is one
of its models). The public doors are :func:`weightlab._tf.headless.session_from_model`,
``to_keras``, ``materialise`` and ``evaluate_session``; this module holds
their logic.

Canonical names
---------------
An in-memory model's tensors carry the names :func:`weightlab.open` gives the
same model saved with ``model.save("m.keras")``: the model's serialized config
is walked with the very functions the ``.keras`` reader uses
(:func:`weightlab.formats._keras3.weight_names` on each layer's class and
config; nested models flattened, a Sequential's InputLayer left out), and each
layer's variables are taken in the order Keras' saving writes them: the
layer's own variables (trainable, then non-trainable), then those of the
layers it holds as attributes (an RNN's ``cell``, a wrapper's ``layer``), in
the order of their attribute names. The names are therefore identical by
construction; the tests compare them, and the values, with saved files.

Values are copied once when the session is made: training the source model
further in a notebook does not change the session, and nothing the session
does changes the source model. Executing an in-memory model (evaluation, the
model returned by :func:`to_keras`, the file :func:`materialise` writes)
always works on a clone holding the session's values.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np

from ..core.atomic import atomic_path
from ..core.dataset import load_heldout
from ..core.errors import DataError, EngineError, FormatError, WeightLabError
from ..core.model import ArrayReader, LayerInfo, ModelFile, TensorInfo
from ..core.session import EditSession
from ..engine.events import Metrics
from ..formats._h5io import config_layers, layer_config
from ..formats._keras3 import weight_names

__all__ = [
    "SAVE_SUFFIXES",
    "clone_model",
    "clone_variables",
    "evaluate_session",
    "heldout_arrays",
    "keras_library",
    "materialise",
    "materialise_model",
    "model_variables",
    "read_model",
    "save_model",
    "session_from_model",
    "to_keras",
]

#: File name endings :func:`save_model` writes, longest first.
SAVE_SUFFIXES = (".weights.h5", ".keras", ".h5")
#: Prefix of the private folders :func:`materialise` writes.
TEMP_PREFIX = "weightlab-memory-"

_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_NON_TRAINABLE = {"moving_mean", "moving_variance"}
_LOCK = threading.RLock()


# -- which Keras --------------------------------------------------------------------------------
def keras_library(model: Any) -> ModuleType:
    """The Keras library ``model`` belongs to: :mod:`keras` (Keras 3) or :mod:`tf_keras`.

    Raises
    ------
    TypeError
        When ``model`` is not a Keras model of either.
    """
    if isinstance(model, keras.Model):
        return keras
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.Model):
        return tf_keras
    raise TypeError(
        f"expected a Keras model (keras.Model or tf_keras.Model); got {type(model).__module__}."
        f"{type(model).__name__}"
    )


def _display_path(model: Any) -> Path:
    return Path(f"{getattr(model, 'name', None) or 'model'} (in memory)")


def _check_built(model: Any, shown: Path) -> None:
    if not getattr(model, "built", False):
        raise FormatError(
            f"the Keras model {getattr(model, 'name', '')!r} is not built, so it has no weights yet: "
            "build it first (call it on a batch, model.build(input_shape), or give it an Input)",
            shown,
        )


def _sublayers(model: Any) -> Iterable[Any]:
    return getattr(model, "layers", None) or ()


# -- naming: the .keras reader's names, from the live model ----------------------------------
def _own_variables(layer: Any) -> list[Any]:
    """The layer's own variables in the order its ``save_own_variables`` writes them."""
    if hasattr(layer, "_trainable_variables"):  # Keras 3
        return list(layer._trainable_variables) + list(layer._non_trainable_variables)
    return list(getattr(layer, "_trainable_weights", [])) + list(getattr(layer, "_non_trainable_weights", []))


_BASE_ATTRS: dict[int, set[str]] = {}


def _base_attrs(lib: ModuleType) -> set[str]:
    """Attributes every layer of ``lib`` has (Keras' saving skips them when it looks for sub-objects)."""
    key = id(lib)
    if key not in _BASE_ATTRS:
        _BASE_ATTRS[key] = set(dir(lib.layers.Layer()))
    return _BASE_ATTRS[key]


def _layer_variables(layer: Any, lib: ModuleType, seen: set[int] | None = None) -> list[Any]:
    """Variables of one (leaf) layer in the order the ``.keras`` reader lists them.

    Own variables first, then the variables of sub-layers held as attributes,
    by attribute name (the reader sorts the groups Keras wrote under those
    names); a sub-layer named ``layers`` is a nested model's, not this layer's.
    """
    seen = set() if seen is None else seen
    seen.add(id(layer))
    out = _own_variables(layer)
    skip = _base_attrs(lib)
    children = []
    for attr, value in vars(layer).items():
        if attr in skip or attr.startswith("__") or attr == "layers":
            continue
        if isinstance(value, lib.layers.Layer) and id(value) not in seen:
            children.append((attr, value))
    for _, child in sorted(children, key=lambda kv: kv[0]):
        if id(child) not in seen:
            out += _layer_variables(child, lib, seen)
    return out


def _serialized(model: Any, lib: ModuleType) -> dict[str, Any] | None:
    """The model's config as ``model.save`` writes it to ``config.json``, or None when Keras cannot give one."""
    try:
        cfg = lib.saving.serialize_keras_object(model)
    except Exception:  # noqa: BLE001 - subclassed models without get_config: use the live layers
        return None
    return cfg if isinstance(cfg, dict) and isinstance(cfg.get("config"), dict | list) else None


def _find_layer(container: Any, name: str) -> Any:
    for layer in _sublayers(container):
        if layer.name == name:
            return layer
    return None


def _walk_config(
    container: Any, cfg: dict[str, Any], lib: ModuleType, out: list[tuple[LayerInfo, list[Any]]]
) -> bool:
    """As :func:`weightlab.formats._keras3._walk_container`, over the live model; False when they disagree."""
    sequential = cfg.get("class_name") == "Sequential"
    for lc in config_layers(cfg):
        cls = lc.get("class_name", "")
        if sequential and cls == "InputLayer":
            continue
        cfg_l = layer_config(lc)
        lname = cfg_l.get("name", "")
        layer = _find_layer(container, lname)
        if layer is None:
            if cls == "InputLayer":  # Keras 3 functional models list their inputs without a layer
                out.append((LayerInfo(lname, cls, []), []))
                continue
            return False
        if cls in _MODEL_CLASSES and isinstance(cfg_l.get("layers"), list):
            if not _walk_config(layer, lc, lib, out):
                return False
            continue
        variables = _layer_variables(layer, lib)
        names = weight_names(cls, cfg_l, len(variables))
        trainable = bool(cfg_l.get("trainable", True))
        infos = [
            _info(lname, w, v, trainable and w not in _NON_TRAINABLE)
            for w, v in zip(names, variables, strict=True)
        ]
        out.append((LayerInfo(lname, cls, infos), variables))
    return True


def _walk_live(model: Any, lib: ModuleType, out: list[tuple[LayerInfo, list[Any]]]) -> None:
    """The same listing from the live layers alone (models Keras cannot serialize)."""
    for layer in _sublayers(model):
        cls = type(layer).__name__
        if isinstance(layer, lib.Model) and _sublayers(layer):
            _walk_live(layer, lib, out)
            continue
        if isinstance(model, lib.Sequential) and cls == "InputLayer":
            continue
        variables = _layer_variables(layer, lib)
        try:
            cfg = layer.get_config()
        except Exception:  # noqa: BLE001 - a custom layer without get_config: default flags
            cfg = {}
        names = weight_names(cls, cfg, len(variables))
        infos = [
            _info(layer.name, w, v, bool(layer.trainable) and w not in _NON_TRAINABLE)
            for w, v in zip(names, variables, strict=True)
        ]
        out.append((LayerInfo(layer.name, cls, infos), variables))


def _info(layer: str, weight: str, var: Any, trainable: bool) -> TensorInfo:
    path = getattr(var, "path", None) or var.name
    dtype = np.dtype(keras.backend.standardize_dtype(var.dtype)).name
    name = f"{layer}/{weight}"
    return TensorInfo(name, layer, weight, str(path).removesuffix(":0"), tuple(int(d) for d in var.shape), dtype,
                      trainable)  # fmt: skip


def model_variables(model: Any) -> tuple[list[LayerInfo], dict[str, Any], dict[str, Any] | None]:
    """``(layers, {canonical name: variable}, config)`` of a built Keras model.

    Layers and names as :func:`weightlab.open` lists the model saved as
    ``.keras`` (see the module docstring); ``config`` is the serialized model
    (None for a model Keras cannot serialize: names then come from the live
    layers, which agree with the file for the built-in layers).

    Raises
    ------
    TypeError
        When ``model`` is not a Keras model.
    FormatError
        When the model is not built, or two of its tensors share a name.
    """
    lib = keras_library(model)
    shown = _display_path(model)
    _check_built(model, shown)
    cfg = _serialized(model, lib)
    out: list[tuple[LayerInfo, list[Any]]] = []
    if cfg is None or not config_layers(cfg) or not _walk_config(model, cfg, lib, out):
        out = []
        _walk_live(model, lib, out)
    variables: dict[str, Any] = {}
    for info, vs in out:
        for t, v in zip(info.tensors, vs, strict=True):
            if t.name in variables:
                raise FormatError(f"two tensors are both named {t.name!r}", shown)
            variables[t.name] = v
    return [info for info, _ in out], variables, cfg


def read_model(model: Any) -> ModelFile:
    """A :class:`~weightlab.core.model.ModelFile` holding copies of ``model``'s variables (``format "memory"``).

    Raises
    ------
    TypeError, FormatError
        As :func:`model_variables`.
    """
    layers, variables, cfg = model_variables(model)
    values = {}
    for name, var in variables.items():
        arr = np.array(var.numpy(), copy=True)
        arr.flags.writeable = False
        values[name] = arr
    lib = keras_library(model)
    attrs = {
        "library": lib.__name__,
        "keras_version": getattr(lib, "__version__", ""),
        "model_class": type(model).__name__,
        "model_name": getattr(model, "name", ""),
    }
    config = cfg.get("config") if isinstance(cfg, dict) and isinstance(cfg.get("config"), dict) else None
    return ModelFile(_display_path(model), "memory", layers, ArrayReader(values), config=config, attrs=attrs,
                     source=model)  # fmt: skip


def session_from_model(model: Any, *, session_class: type[EditSession] = EditSession) -> EditSession:
    """See :func:`weightlab._tf.headless.session_from_model`."""
    return session_class(read_model(model), saver=save_model)


# -- executable clones ---------------------------------------------------------------------
def _source(model_file: ModelFile) -> Any:
    if not model_file.in_memory or model_file.source is None:
        raise EngineError("this model has no live Keras model behind it", model_file.path)
    return model_file.source


def _compiled(model: Any) -> bool:
    return bool(getattr(model, "compiled", False) or getattr(model, "_is_compiled", False))


def _compile_like(clone: Any, source: Any, lib: ModuleType) -> None:
    """Compile ``clone`` as ``source`` was (same loss and metrics, a fresh optimizer of the same config)."""
    try:
        config = source.get_compile_config()
    except Exception:  # noqa: BLE001 - not compiled from serializable arguments
        config = None
    if config:
        try:
            clone.compile_from_config(copy.deepcopy(config))
            return
        except Exception:  # noqa: BLE001, S110 - fall back to the live arguments below
            pass
    optimizer = getattr(source, "optimizer", None)
    fresh = type(optimizer).from_config(optimizer.get_config()) if optimizer is not None else "rmsprop"
    metrics = getattr(source, "_compile_metrics", None)
    clone.compile(optimizer=fresh, loss=getattr(source, "loss", None),
                  metrics=getattr(metrics, "_user_metrics", None))  # fmt: skip


def clone_model(model_file: ModelFile, arrays: Mapping[str, np.ndarray], *, compile: bool = True) -> Any:  # noqa: A002
    """A new model of ``model_file.source``'s library and architecture holding ``arrays`` (every tensor).

    Parameters
    ----------
    model_file:
        An in-memory model (:func:`read_model`).
    arrays:
        Canonical name -> values for every tensor of ``model_file`` (shapes
        as listed, dtypes cast to the variables').
    compile:
        Compile the clone as the source was compiled (when it was).

    Raises
    ------
    EngineError
        When Keras cannot clone the source model (a subclassed model without
        ``get_config``), or an array does not fit.
    """
    source = _source(model_file)
    lib = keras_library(source)
    try:
        clone = lib.models.clone_model(source)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; its chained tracebacks do not help
        raise _copy_error(source, exc, model_file.path) from None
    if not getattr(clone, "built", False) and getattr(source, "built", False):
        shape = getattr(source, "input_shape", None)
        with contextlib.suppress(Exception):
            clone.build(shape)
    variables = clone_variables(model_file, clone)
    for name, var in variables.items():
        a = np.asarray(arrays[name])
        if tuple(a.shape) != tuple(var.shape):
            raise EngineError(f"tensor {name!r} has shape {a.shape}; the model needs {tuple(var.shape)}",
                              model_file.path)  # fmt: skip
        var.assign(a.astype(keras.backend.standardize_dtype(var.dtype), copy=False))
    if compile and _compiled(source):
        _compile_like(clone, source, lib)
    return clone


def _copy_error(source: Any, exc: BaseException, shown: Any) -> EngineError:
    """One line: what Keras said (its root cause, shortened) and how to make the model copyable.

    The error's ``cannot_copy`` attribute is True (evaluation then falls back
    to :func:`_lent_source`).
    """
    cls = type(source).__qualname__
    marker = "Error encountered during deserialization:"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = next((line[len(marker):].strip() for line in lines if line.startswith(marker)), None)
    said = said or _first_line(exc)
    said = said if len(said) <= 160 else said[:157] + "..."
    error = EngineError(
        f"Keras cannot copy this model ({said}); a subclassed model is copied through its config: give "
        f"{cls} a get_config() returning its constructor arguments and accept **kwargs in its __init__ "
        f"(or register it with keras.saving.register_keras_serializable)",
        shown,
    )
    error.cannot_copy = True  # type: ignore[attr-defined]
    return error


@contextlib.contextmanager
def _lent_source(model_file: ModelFile) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The live source model holding the session's ORIGINAL values, its own values put back on exit.

    For models Keras cannot copy: evaluation runs on the source itself. Every
    variable's value is saved first and assigned back on exit, also on error,
    so the source is left exactly as it was.
    """
    source = _source(model_file)
    _, variables, _ = model_variables(source)
    if set(variables) != set(model_file.tensors):
        raise EngineError("the model's variables changed since it was opened; open it again", model_file.path)
    saved = {name: np.array(var.numpy(), copy=True) for name, var in variables.items()}
    try:
        for name, var in variables.items():
            var.assign(np.asarray(model_file.read(name)).astype(saved[name].dtype, copy=False))
        yield source, {name: variables[name] for name in model_file.tensors}
    finally:
        for name, var in variables.items():
            var.assign(saved[name])


def clone_variables(model_file: ModelFile, clone: Any) -> dict[str, Any]:
    """``{canonical name of model_file: variable of clone}`` for a clone of ``model_file.source``.

    By name; when the clone's automatic layer names differ (a subclassed
    model's layers are created anew, ``dense_1`` becoming ``dense_3``), by
    position, provided every shape agrees.

    Raises
    ------
    EngineError
        When the clone's tensors fit neither way.
    """
    try:
        _, variables, _ = model_variables(clone)
    except FormatError as exc:
        raise EngineError(
            f"the copy of this model cannot be listed ({exc.message})", model_file.path
        ) from exc
    if set(variables) == set(model_file.tensors):
        return {name: variables[name] for name in model_file.tensors}
    infos, found = list(model_file.tensors.values()), list(variables.values())
    if len(infos) == len(found) and all(tuple(v.shape) == t.shape for t, v in zip(infos, found, strict=True)):
        return {t.name: v for t, v in zip(infos, found, strict=True)}
    missing = sorted(set(model_file.tensors) ^ set(variables))[:5]
    raise EngineError(f"the copy of this model has other tensors than the model ({missing})", model_file.path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _current(session: EditSession) -> dict[str, np.ndarray]:
    return {name: session.array(name) for name in session.model.tensors}


def _originals(model_file: ModelFile) -> dict[str, np.ndarray]:
    return {name: model_file.read(name) for name in model_file.tensors}


def to_keras(session: EditSession, *, trust: bool = False) -> Any:
    """See :func:`weightlab._tf.headless.to_keras`."""
    model_file = session.model
    if model_file.in_memory:
        return clone_model(model_file, _current(session))
    from .model import assign_arrays, build_model, file_layout, map_tensors, model_layout

    path = model_file.exec_path or model_file.path
    model = build_model(path, trust=trust)
    tmap = map_tensors(model, file_layout(path) or model_layout(model))
    edited = session.edited_arrays()
    unmapped = [n for n in edited if n not in tmap.variables]
    if unmapped:
        raise EngineError(f"edited tensor(s) {unmapped[:5]} cannot be mapped to the built model", path)
    assign_arrays(tmap, edited)
    return model


# -- saving ------------------------------------------------------------------------------------
def _suffix(out: Path) -> str | None:
    low = out.name.lower()
    return next((s for s in SAVE_SUFFIXES if low.endswith(s) and len(low) > len(s)), None)


def save_model(model_file: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
    """Write an in-memory model with ``changed`` tensors through Keras' own saving, atomically.

    The saver of sessions made by :func:`session_from_model`. The format is
    the one the name ends with: ``.keras`` (``model.save``), ``.h5`` (legacy
    HDF5, ``model.save``) or ``.weights.h5`` (``model.save_weights``). A
    clone is written (:func:`clone_model`); the source model is never
    changed. The file appears complete or not at all (a temporary file in the
    destination folder, then :func:`os.replace`).

    Raises
    ------
    FormatError
        For a name with another ending (naming the path and the endings to
        use), or when Keras cannot write the model (nothing is left behind).
    """
    p = Path(out)
    suffix = _suffix(p)
    if suffix is None:
        raise FormatError(
            "an in-memory Keras model is saved by Keras, in the format the name ends with: "
            f"use a name ending in {', '.join(SAVE_SUFFIXES[1:])} or {SAVE_SUFFIXES[0]}",
            p,
        )
    if not p.parent.is_dir():
        raise FormatError("cannot save: the folder does not exist", p)
    arrays = {
        name: changed[name] if name in changed else model_file.read(name) for name in model_file.tensors
    }
    unknown = sorted(set(changed) - set(model_file.tensors))
    if unknown:
        raise WeightLabError(f"no tensor named {unknown[0]!r} in this model", model_file.path)
    clone = clone_model(model_file, arrays)
    try:
        with atomic_path(p, suffix=suffix) as tmp:
            os.remove(tmp)  # Keras writes the file itself (and asks before overwriting)
            if suffix == ".weights.h5":
                clone.save_weights(str(tmp))
            else:
                clone.save(str(tmp))
    except WeightLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras and the OS raise many kinds
        raise FormatError(f"cannot save: {_first_line(exc)}", p) from None


# -- materialising: a file another process can build the model from -------------------------
def _remove_folder(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _write_private(model: Any, name: str) -> Path:
    """Save ``model`` as ``name.keras`` in a new private folder (the caller removes the folder)."""
    folder = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    try:
        path = Path(folder) / f"{name}.keras"
        model.save(str(path))
    except BaseException as exc:
        _remove_folder(folder)
        if isinstance(exc, Exception):
            raise EngineError(f"Keras cannot save this model ({_first_line(exc)})") from exc
        raise
    return path


def _safe_name(model: Any) -> str:
    raw = str(getattr(model, "name", "") or "model")
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in raw)[:64] or "model"


def _holds(model: Any, arrays: Mapping[str, np.ndarray]) -> bool:
    """True when ``model``'s variables hold exactly ``arrays`` (same names, dtypes, bits)."""
    try:
        _, variables, _ = model_variables(model)
    except (FormatError, TypeError):
        return False
    if list(variables) != list(arrays):
        return False
    for name, var in variables.items():
        now, then = np.asarray(var.numpy()), arrays[name]
        if now.dtype != then.dtype or now.shape != then.shape or now.tobytes() != then.tobytes():
            return False
    return True


def materialise(model_file: ModelFile) -> Path:
    """See :func:`weightlab._tf.headless.materialise`."""
    with _LOCK:
        existing = model_file.exec_path
        if existing is not None:
            return existing
        source = _source(model_file)
        originals = _originals(model_file)
        # The source itself when it still holds the values read (saving only reads it); else a clone.
        holder = source if _holds(source, originals) else clone_model(model_file, originals)
        path = _write_private(holder, _safe_name(source))
        # Removed by model_file.close(), when the model file is garbage-collected, or at exit.
        finalizer = weakref.finalize(model_file, _remove_folder, str(path.parent))
        model_file.exec_path = path
        model_file.on_close(finalizer)
        return path


#: Live models written for path-based jobs: model -> (digest of its values, file, folder finalizer).
_LIVE: weakref.WeakKeyDictionary[Any, tuple[str, Path, weakref.finalize]] = weakref.WeakKeyDictionary()


def _digest(model: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for v in model.weights:
        a = np.ascontiguousarray(v.numpy())
        h.update(f"{v.path if hasattr(v, 'path') else v.name}|{a.dtype}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def materialise_model(model: Any) -> Path:
    """A ``.keras`` file of a live model as it is now, for jobs that take a path (sweeps, rankings).

    The file is written once per state of the model's values (a model trained
    further is written again) into a private folder removed when the model is
    garbage-collected or the interpreter exits. The model itself is only read
    (``model.save``).

    Raises
    ------
    TypeError
        When ``model`` is not a Keras model.
    FormatError
        When it is not built.
    EngineError
        When Keras cannot save it.
    """
    keras_library(model)
    _check_built(model, _display_path(model))
    digest = _digest(model)
    with _LOCK:
        known = _LIVE.get(model)
        if known is not None and known[0] == digest and known[1].exists():
            return known[1]
        path = _write_private(model, _safe_name(model))
        finalizer = weakref.finalize(model, _remove_folder, str(path.parent))
        _LIVE[model] = (digest, path, finalizer)  # an older file stays until the model goes
        return path


# -- evaluation --------------------------------------------------------------------------------
def heldout_arrays(data: Any, *, sample_rank: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(x, y or None, file or None)`` of the held-out forms :func:`evaluate_session` takes.

    Labels given as one-hot rows or class probabilities ``(N, C)`` become
    class indices (``argmax``), as :func:`weightlab.core.dataset.load_heldout`
    does for files.

    Raises
    ------
    DataError
        For an unreadable ``.npz`` (see :func:`weightlab.core.dataset.load_heldout`),
        a tuple that is not ``(x, y)``, inputs that are not finite real numbers,
        labels that are not ``(N,)`` or ``(N, C)`` real numbers, a dataset
        whose elements are not ``x`` or ``(x, y)`` batches, or an empty one.
    TypeError
        For anything else.

    Notes
    -----
    ``sample_rank``, when known, is the rank of one sample of the model's
    input (3 for images ``(H, W, C)``): a dataset whose ``x`` elements have
    that rank, or whose labels are scalars, yields single samples and is
    refused with a message saying to call ``.batch(n)``.
    """
    if isinstance(data, str | os.PathLike):
        held = load_heldout(data)
        return held.x, held.y, os.fspath(data)
    if isinstance(data, tuple | list):
        if len(data) != 2:
            raise DataError(f"held-out data: expected (x, y) arrays; got a sequence of {len(data)} items")
        return _conform(data[0], data[1])
    if isinstance(data, np.ndarray):
        return _conform(data, None)
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        _check_batched(data, sample_rank)
        x, y, _ = _from_dataset(data)
        return _conform(x, y)
    if hasattr(data, "__array__"):
        return _conform(data, None)
    raise TypeError(
        "data: expected a held-out .npz path, (x, y) arrays, x alone or a tf.data.Dataset; "
        f"got {type(data).__name__}"
    )


def _conform(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None, None]:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"held-out x must hold real numbers; got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(
            f"held-out x contains {int(np.count_nonzero(~np.isfinite(x)))} NaN or infinite value(s)"
        )
    if y is None:
        return x, None, None
    y = np.asarray(y)
    if y.dtype.kind not in "biuf" or y.ndim not in (1, 2):
        raise DataError(
            f"held-out y must be class indices (N,) or one-hot rows (N, C) of real numbers; "
            f"got shape {y.shape}, dtype {y.dtype}"
        )
    if y.ndim == 2:
        if not np.all(np.isfinite(y)):
            raise DataError("held-out y (one-hot / probabilities) contains NaN or infinite values")
        y = np.argmax(y, axis=1).astype(np.int64)
    return x, y, None


def _check_batched(ds: Any, sample_rank: int | None) -> None:
    """Refuse a dataset of single samples (``Dataset.from_tensor_slices(...)`` without ``.batch``)."""
    spec = ds.element_spec
    x_spec = spec[0] if isinstance(spec, tuple) and spec else spec
    y_spec = spec[1] if isinstance(spec, tuple) and len(spec) in (2, 3) else None
    x_rank = getattr(getattr(x_spec, "shape", None), "rank", None)
    y_rank = getattr(getattr(y_spec, "shape", None), "rank", None)
    if y_rank == 0 or (sample_rank is not None and x_rank == sample_rank):
        shape = tuple(x_spec.shape)
        raise DataError(
            f"held-out dataset: it yields single samples (x of shape {shape}"
            + (", scalar labels" if y_rank == 0 else "")
            + "), not batches: call .batch(n) on it, e.g. dataset.batch(256)"
        )


def _sample_rank(model_file: ModelFile) -> int | None:
    """The rank of one input sample of an in-memory model with symbolic inputs (None when unknown)."""
    return _input_rank(model_file.source)


def _input_rank(model: Any) -> int | None:
    """The rank of one input sample of a one-input Keras model with symbolic inputs (None when unknown)."""
    try:
        inputs = getattr(model, "inputs", None)
        return len(inputs[0].shape) - 1 if inputs and len(inputs) == 1 else None
    except (AttributeError, TypeError, ValueError, IndexError):
        return None


def _from_dataset(ds: Any) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    labelled: bool | None = None
    for element in ds.as_numpy_iterator():
        if isinstance(element, tuple) and len(element) in (2, 3):
            x, y = element[0], element[1]  # (x, y) or (x, y, sample_weight)
            if labelled is False:
                raise DataError("held-out dataset: some elements are (x, y) and some x alone")
            labelled = True
            ys.append(np.asarray(y))
        elif isinstance(element, np.ndarray):
            x = element
            if labelled:
                raise DataError("held-out dataset: some elements are (x, y) and some x alone")
            labelled = False
        else:
            raise DataError(
                f"held-out dataset: expected batches of x or (x, y) arrays; got an element of type "
                f"{type(element).__name__}"
            )
        xs.append(np.asarray(x))
    if not xs:
        raise DataError("held-out dataset: it yields no batch")
    try:
        x_all = np.concatenate(xs) if xs[0].ndim else np.stack(xs)
        y_all = (np.concatenate(ys) if ys[0].ndim else np.stack(ys)) if labelled else None
    except ValueError as exc:
        raise DataError(f"held-out dataset: its batches do not stack ({exc})") from None
    return x_all, y_all, None


def _with_baseline(result: Metrics, baseline: Metrics | None) -> Metrics:
    if baseline is None or "baseline" not in {f.name for f in fields(Metrics)}:
        return result
    return replace(result, baseline=baseline)


def evaluate_session(
    session: EditSession, data: Any, *, trust: bool = False, batch_size: int = 256, **options: Any
) -> Metrics:
    """See :func:`weightlab._tf.headless.evaluate_session`."""
    from .passes import _keras_session, open_session
    from .runtime import run_errors

    model_file = session.model
    import tensorflow as tf

    # A dataset on a file's model is read once the model is built (its input rank tells an unbatched one).
    later = not model_file.in_memory and isinstance(data, tf.data.Dataset)
    if not later:
        x, y, data_path = heldout_arrays(data, sample_rank=_sample_rank(model_file) if model_file.in_memory else None)
    edited = session.edited_arrays()
    shown: Any = model_file.path
    if model_file.in_memory:
        unknown = sorted(set(options) - {"output", "cache_budget", "jit_compile"})
        if unknown:
            raise EngineError(f"option(s) {unknown} do not apply to an in-memory Keras model", shown)
        layout = [(layer.name, [(t.name, t.shape) for t in layer.tensors]) for layer in model_file.layers]
        options.setdefault("cache_budget", 0)
        with contextlib.ExitStack() as lent, run_errors(shown):
            try:
                clone = clone_model(model_file, _originals(model_file), compile=False)
                variables = clone_variables(model_file, clone)
            except EngineError as exc:  # a model Keras cannot copy is evaluated itself, its values put back
                if not getattr(exc, "cannot_copy", False):
                    raise
                clone, variables = lent.enter_context(_lent_source(model_file))
            output = options.pop("output", None)
            engine = _keras_session(
                _with_io(clone, x), layout, output, shown, batch_size=batch_size, **options
            )
            # The exact mapping (the names were derived from these very variables).
            engine.tmap.variables.clear()
            engine.tmap.variables.update(variables)
            engine.tmap.unmapped.clear()
            engine.tmap.unused.clear()
            return _run(engine, x, y, data_path, edited)
    path = model_file.exec_path or model_file.path
    with run_errors(path):
        engine = open_session(path, None, trust=trust, batch_size=batch_size, cache_budget=0, **options)
        if later:
            x, y, data_path = heldout_arrays(data, sample_rank=_input_rank(getattr(engine, "model", None)))
        return _run(engine, x, y, data_path, edited)


def _with_io(model: Any, x: np.ndarray) -> Any:
    """``model``, or for a subclassed model (no symbolic inputs) a functional model calling it on ``x``'s shape.

    The wrapper shares the model's layers and variables.
    """
    try:
        if getattr(model, "inputs", None) and getattr(model, "outputs", None):
            return model
    except (AttributeError, ValueError):
        pass
    lib = keras_library(model)
    dtype = x.dtype.name if x.dtype.kind in "iub" else "float32"
    inp = lib.Input(shape=tuple(x.shape[1:]), dtype=dtype)
    return lib.Model(inp, model(inp))


def _run(engine: Any, x: np.ndarray, y: np.ndarray | None, data_path: str | None,
         edited: Mapping[str, np.ndarray]) -> Metrics:  # fmt: skip
    engine.set_heldout(x, y, data_path)
    baseline = engine.evaluate({})  # the unedited outputs, for agreement and the change from baseline
    if not edited:
        return baseline
    return _with_baseline(engine.evaluate(edited), baseline)

"""Executable Keras models: building one from a file, and mapping its variables to tensor names.

This module imports Keras. It is imported only inside the engine worker
process (:mod:`weightlab._tf.worker`) and by headless callers such as the
command line; the GUI process never imports it.

Building a model runs code described by the file, so :func:`build_model`
refuses anything that could run code that is not Keras' own unless the caller
trusts the file: Lambda layers (Python bytecode inside the file) and custom
layer classes. Inspection never needs this module (see
:mod:`weightlab.formats`).

Loss and outputs
----------------
The model must map one input tensor to one output of shape ``(N, C)``, class
scores for ``C >= 2`` classes. The outputs are read as follows:

* when the model's final activation is a softmax (a layer with
  ``activation="softmax"`` or a ``Softmax`` layer), its pre-softmax logits
  are used, as Keras' own loss does;
* otherwise, when every output row of the first batch is non-negative and
  sums to 1 within ``1e-3``, outputs are treated as probabilities: rows are
  renormalised and clipped to ``[1e-7, 1 - 1e-7]`` before the log, as Keras'
  ``sparse_categorical_crossentropy(from_logits=False)`` does;
* otherwise outputs are treated as logits (a log-softmax is applied).

The loss is the mean over samples of ``-log p[y]`` computed in float64, which
equals ``model.evaluate`` with ``loss="sparse_categorical_crossentropy"``
within float32 round-off.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..core.errors import EngineError
from ..formats import open_model

__all__ = [
    "Layout",
    "TensorMap",
    "assign_arrays",
    "build_model",
    "check_model_io",
    "file_layout",
    "map_tensors",
    "model_layout",
    "prepare_arrays",
]

#: Largest config.json read from a .keras archive (bytes).
_MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: Class names that embed Python code in the file.
_CODE_CLASSES = {"Lambda", "TFOpLambda", "__lambda__", "SlicingOpLambda"}
#: Built-in layers of Keras 2 (tf.keras) that Keras 3 removed: files using them cannot be rebuilt.
_KERAS2_ONLY = {
    "LocallyConnected1D",
    "LocallyConnected2D",
    "ThresholdedReLU",
    "DenseFeatures",
    "CuDNNLSTM",
    "CuDNNGRU",
    "RandomFourierFeatures",
}

#: A file's layout: (layer name, [(canonical tensor name, shape or None), ...]) per layer.
Layout = Sequence[tuple[str, Sequence[tuple[str, tuple[int, ...] | None] | str]]]


# -- building -----------------------------------------------------------------
def _read_config(path: Path) -> dict[str, Any] | None:
    """Return the model config stored in a ``.keras`` zip or legacy ``.h5`` file.

    Returns None when the file holds no architecture (a weights-only file).

    Raises
    ------
    EngineError
        When the file is neither, or its config cannot be parsed.
    """
    if path.is_dir():
        raise EngineError(
            "a SavedModel folder is no Keras model file: it is evaluated through its signature "
            "(weightlab._tf.passes.open_session), after its graph is checked for unsafe ops",
            path,
        )
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                if "config.json" not in zf.namelist():
                    return None
                info = zf.getinfo("config.json")
                if info.file_size > _MAX_CONFIG_BYTES:
                    raise EngineError(f"config.json is too large ({info.file_size} bytes)", path)
                return json.loads(zf.read("config.json"))
        except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise EngineError(f"the model config cannot be read ({exc}); evaluation is off", path) from exc
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise EngineError(f"not a Keras model file (.keras or .h5) ({exc}); evaluation is off", path) from exc
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EngineError(f"the model config cannot be parsed ({exc}); evaluation is off", path) from exc


def _walk_class_names(node: Any) -> Iterable[tuple[str, Any]]:
    """Yield ``(class_name, module)`` of every serialized object in a config tree."""
    if isinstance(node, dict):
        cls = node.get("class_name")
        if isinstance(cls, str):
            yield cls, node.get("module")
        for v in node.values():
            yield from _walk_class_names(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_class_names(v)


def _layer_class_names(config: Any) -> list[str]:
    """Class names of the layers listed in a model config (nested models included)."""
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            cfg = node.get("config")
            if isinstance(node.get("class_name"), str):
                names.append(node["class_name"])
            if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
                for layer in cfg["layers"]:
                    visit(layer)
            elif isinstance(cfg, dict) and isinstance(cfg.get("layer"), dict):  # wrappers
                visit(cfg["layer"])

    visit(config)
    return names


def _known_class(name: str) -> bool:
    return name in {"Functional", "Sequential", "Model", "InputLayer"} or isinstance(
        getattr(keras.layers, name, None), type
    )


def build_model(path: str | os.PathLike[str], *, trust: bool = False) -> keras.Model:
    """Build the executable Keras model stored in ``path``.

    Parameters
    ----------
    path:
        A Keras 3 ``.keras`` archive or a legacy ``.h5`` model (Keras 2 /
        tf.keras files load through Keras 3's legacy loader).
    trust:
        When False (default), the model is loaded with ``safe_mode=True`` and
        WeightLab refuses, before Keras sees the file, any model containing a
        Lambda layer. When True, Lambda layers are deserialized and run:
        only for files the user trusts.

    Returns
    -------
    keras.Model
        The model, not compiled.

    Raises
    ------
    EngineError
        The message names the file and says why evaluation is off: a Lambda
        layer in safe mode, an unknown (custom) layer class, a weights-only
        file, a SavedModel folder, a file Keras cannot load.
    """
    p = Path(path)
    if not p.exists():
        raise EngineError("model file does not exist", p)
    config = _read_config(p)
    if config is None:
        raise EngineError("weights-only file: no architecture to evaluate; evaluation is off", p)
    found = list(_walk_class_names(config))
    if not trust and any(cls in _CODE_CLASSES for cls, _ in found):
        raise EngineError(
            "the model contains a Lambda layer (code inside the file); evaluation is off "
            "unless you trust the file",
            p,
        )
    try:
        model = keras.saving.load_model(p, compile=False, safe_mode=not trust)
    except Exception as exc:  # Keras raises ValueError/TypeError/... for many reasons
        unknown = [c for c in _layer_class_names(config) if not _known_class(c)]
        dropped = [c for c in unknown if c in _KERAS2_ONLY]
        if dropped:
            raise EngineError(
                f"layer class {dropped[0]!r} is a Keras 2 layer that Keras 3 no longer has, so the model "
                "cannot be rebuilt; evaluation is off (inspecting and editing still work)",
                p,
            ) from exc
        if unknown:
            raise EngineError(
                f"unknown layer class {unknown[0]!r} (custom objects are not loaded); evaluation is off",
                p,
            ) from exc
        text = str(exc)
        if "Lambda" in text or "safe_mode" in text:
            raise EngineError(
                "the model contains code (a Lambda layer or Python function); evaluation is off "
                "unless you trust the file",
                p,
            ) from exc
        m = re.search(r"Unknown (?:layer|object)[^'\"]*['\"]([^'\"]+)['\"]", text)
        if m:
            raise EngineError(
                f"unknown layer class {m.group(1)!r} (custom objects are not loaded); evaluation is off",
                p,
            ) from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise EngineError(f"Keras cannot build this model ({first}); evaluation is off", p) from exc
    if not isinstance(model, keras.Model):
        raise EngineError(f"the file holds a {type(model).__name__}, not a model; evaluation is off", p)
    return model


# -- naming and mapping ------------------------------------------------------
def _leaf_layers(model: keras.Model) -> list[Any]:
    """Layers of ``model`` with nested functional/sequential models flattened."""
    out: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model) and hasattr(layer, "layers") and layer.layers:
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _strip(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def model_layout(model: keras.Model) -> list[tuple[str, list[tuple[str, tuple[int, ...]]]]]:
    """Canonical tensor names WeightLab derives from a built model.

    Each (leaf) layer that owns variables gives ``(layer name,
    [(f"{layer}/{weight}", shape), ...])`` in ``layer.weights`` order, nested
    models flattened. Used when the file's own listing (from
    :mod:`weightlab.formats`) is not available.
    """
    out = []
    for layer in _leaf_layers(model):
        if layer.weights:
            out.append(
                (layer.name, [(f"{layer.name}/{_strip(v.name)}", tuple(v.shape)) for v in layer.weights])
            )
    return out


@dataclass
class TensorMap:
    """Canonical tensor name -> model variable.

    Attributes
    ----------
    variables:
        Mapped tensors, in the file's order.
    unmapped:
        Canonical names from the file's listing that match no variable.
    unused:
        Paths of model variables no file tensor maps to.
    """

    variables: dict[str, Any] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _norm_entry(entry: tuple[str, tuple[int, ...] | None] | str) -> tuple[str, tuple[int, ...] | None]:
    if isinstance(entry, str):
        return entry, None
    name, shape = entry
    return name, (tuple(int(d) for d in shape) if shape is not None else None)


def map_tensors(model: keras.Model, layout: Layout, *, order_fallback: bool = False) -> TensorMap:
    """Map the file's canonical tensor names to the model's variables.

    Parameters
    ----------
    model:
        The built model.
    layout:
        The file's listing: for each layer, ``(layer name, [tensor, ...])``
        with tensors in the layer's own weight order, each a canonical name
        ``"layer/weight"`` or a ``(name, shape)`` pair.
    order_fallback:
        Map what names leave unmapped by order and shape over the whole model:
        each remaining file tensor, in the file's order, takes the first
        remaining variable (in the model's weight order) of the same shape.
        For files whose layer names differ from the model's (a checkpoint
        written by a model with other automatic names).

    Returns
    -------
    TensorMap
        Names are matched first (``f"{layer}/{v.name}"`` of the innermost
        layer owning the variable, the variable's full ``v.path``, or the
        last two components of ``v.path``, e.g. ``lstm_cell/kernel``; a
        ``:0`` suffix is ignored). A tensor whose name matches nothing falls
        back to its position within the same-named layer (``layer.weights``
        order), accepted only when the shapes agree (when the layout gives a
        shape). Every variable is mapped at most once; the rest is reported in
        ``unmapped``/``unused``.
    """
    leaves = {layer.name: layer for layer in _leaf_layers(model)}
    # Three tiers of names, tried in order: innermost "layer/weight", full path, path suffix.
    tiers: list[dict[str, list[Any]]] = [{}, {}, {}]
    all_vars: dict[int, Any] = {}
    for lname, layer in leaves.items():
        for v in layer.weights:
            if id(v) in all_vars:
                continue
            all_vars[id(v)] = v
            path = _strip(getattr(v, "path", v.name))
            parts = path.split("/")
            keys = [f"{lname}/{_strip(v.name)}", path, "/".join(parts[-2:]) if len(parts) >= 2 else None]
            for tier, key in zip(tiers, keys):
                if key is not None:
                    tier.setdefault(key, []).append(v)

    result = TensorMap()
    used: set[int] = set()
    pending: list[tuple[str, int, str, tuple[int, ...] | None]] = []
    for lname, tensors in layout:
        for pos, entry in enumerate(tensors):
            name, shape = _norm_entry(entry)
            key = _strip(name)
            var = None
            for tier in tiers:
                found = tier.get(key, [])
                if len(found) == 1:
                    var = found[0]
                    break
                if len(found) > 1:
                    break  # ambiguous name: fall back to the position
            if var is not None and id(var) not in used and (shape is None or tuple(var.shape) == shape):
                result.variables[name] = var
                used.add(id(var))
            else:
                pending.append((lname, pos, name, shape))
    for lname, pos, name, shape in pending:
        layer = leaves.get(lname)
        var = None
        if layer is not None and pos < len(layer.weights):
            cand = layer.weights[pos]
            if id(cand) not in used and (shape is None or tuple(cand.shape) == shape):
                var = cand
        if var is None:
            result.unmapped.append(name)
        else:
            result.variables[name] = var
            used.add(id(var))
    if order_fallback:
        shapes = {_norm_entry(e)[0]: _norm_entry(e)[1] for _, ts in layout for e in ts}
        for name in list(result.unmapped):
            var = next(
                (v for k, v in all_vars.items() if k not in used and tuple(v.shape) == shapes[name]), None
            )
            if var is not None:
                result.variables[name] = var
                used.add(id(var))
                result.unmapped.remove(name)
    result.unused = [_strip(getattr(v, "path", v.name)) for k, v in all_vars.items() if k not in used]
    # Restore the file's order.
    order = [_norm_entry(e)[0] for _, ts in layout for e in ts]
    result.variables = {n: result.variables[n] for n in order if n in result.variables}
    return result


def prepare_arrays(tmap: TensorMap, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check ``arrays`` (canonical name -> values) against the mapped variables.

    Returns
    -------
    dict
        Name -> array in the variable's dtype (floats are cast to it).

    Raises
    ------
    EngineError
        When a name is not mapped, a shape differs, or the dtype kind differs
        (a float array for an integer variable).
    """
    checked: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        var = tmap.variables.get(name)
        if var is None:
            why = (
                "it could not be mapped to the model" if name in tmap.unmapped else "there is no such tensor"
            )
            raise EngineError(f"cannot evaluate an edit of {name!r}: {why}")
        a = np.asarray(arr)
        want = tuple(var.shape)
        if tuple(a.shape) != want:
            raise EngineError(f"edited tensor {name!r} has shape {tuple(a.shape)}; the model needs {want}")
        vdtype = np.dtype(keras.backend.standardize_dtype(var.dtype))
        if a.dtype != vdtype:
            if not np.can_cast(a.dtype, vdtype, casting="same_kind"):
                raise EngineError(f"edited tensor {name!r} has dtype {a.dtype}; the model needs {vdtype}")
            a = a.astype(vdtype)
        checked[name] = a
    return checked


def assign_arrays(tmap: TensorMap, arrays: Mapping[str, np.ndarray]) -> None:
    """Assign ``arrays`` (canonical name -> values) to the mapped variables.

    Raises
    ------
    EngineError
        As :func:`prepare_arrays`; nothing is assigned when any array is
        refused.
    """
    for name, a in prepare_arrays(tmap, arrays).items():
        tmap.variables[name].assign(a)


# -- checks and the file's own listing ------------------------------------------
def check_model_io(model: keras.Model, path: str | os.PathLike[str] | None = None) -> tuple[tuple, int]:
    """Return ``(input_shape, num_classes)`` of a one-input classifier.

    Raises
    ------
    EngineError
        When the model has several inputs or outputs, or its output is not
        ``(N, C)`` with ``C >= 2``.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise EngineError(
            f"only models with one input and one output can be evaluated; this one has "
            f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)",
            path,
        )
    in_shape = tuple(model.inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None or out_shape[1] < 2:
        raise EngineError(
            f"the model's output {out_shape} is not a vector of class scores (N, C) with C >= 2; "
            "evaluation is off",
            path,
        )
    return in_shape, int(out_shape[1])


def file_layout(path: str | os.PathLike[str]) -> Layout | None:
    """The file's own tensor listing from :mod:`weightlab.formats`, or None.

    None when the formats cannot read the file; callers then fall back to
    :func:`model_layout`.
    """
    try:
        mf = open_model(path)
    except Exception:  # noqa: BLE001 - any failure means: no listing, use the model's
        return None
    try:
        return [(layer.name, [(t.name, tuple(t.shape)) for t in layer.tensors]) for layer in mf.layers]
    finally:
        try:
            mf.close()
        except Exception:  # noqa: BLE001, S110 - closing a listing never fails the evaluation
            pass

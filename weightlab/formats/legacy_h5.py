"""Legacy Keras HDF5 files: full models (``model.save("m.h5")``) and Keras 2 weights-only files.

Layout (Keras 2 / tf_keras and Keras 3 write the same tree)::

    /                     attrs: model_config (JSON), keras_version, backend, training_config
    model_weights/        attrs: layer_names = [layer, ...] in model order
      <layer>/            attrs: weight_names = ["dense/kernel:0", ...]   (Keras 2)
                                                ["sequential/dense/kernel", ...] (Keras 3: var.path)
        <weight name>     the dataset, at <layer>/<weight name>
    optimizer_weights/    optimizer state: not model tensors, kept on save

A Keras 2 ``save_weights("w.h5")`` file has ``layer_names`` (and the layer
groups) at the root and no config.

The canonical weight name is the last component of the stored name without
``:0``. A nested model's group holds the weights of its inner layers: they are
listed under the inner layers (from ``model_config``, or in Keras 2 files from
the first component of the weight name).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.errors import FormatError
from ..core.model import LayerInfo, ModelFile
from . import h5safe
from ._h5io import (
    H5Reader,
    attr_str,
    check_model_config,
    config_layers,
    file_stat,
    layer_config,
    load_json,
    open_guarded,
    save_patched_h5,
    sniff_h5,
    str_list,
    tensor_info,
    wrap_errors,
)

name = "h5"
description = "Keras legacy HDF5 model or weights (.h5, .hdf5)"
extensions = (".h5", ".hdf5")

_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_NON_TRAINABLE = {"moving_mean", "moving_variance"}


def _is_legacy(h5: h5py.File) -> bool:
    return "model_weights" in h5 or "layer_names" in h5.attrs


def sniff(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is HDF5 with ``model_weights`` or a root ``layer_names`` attribute."""
    return sniff_h5(path, _is_legacy)


def _flatten_config(cfg: dict[str, Any], classes: dict[str, str], inner: dict[str, list[str]]) -> list[str]:
    """Record class names of all layers; return ``cfg``'s layer names with nested models expanded."""
    names: list[str] = []
    sequential = cfg.get("class_name") == "Sequential"
    for lc in config_layers(cfg):
        lcfg = layer_config(lc)
        lname, cls = lcfg.get("name", ""), lc.get("class_name", "")
        if sequential and cls == "InputLayer":
            continue
        classes[lname] = cls
        if cls in _MODEL_CLASSES and isinstance(lcfg.get("layers"), list):
            inner[lname] = _flatten_config(lc, classes, inner)
            names += inner[lname]
        else:
            names.append(lname)
    return names


def tf_scope_of(part: str, layer: str) -> bool:
    """True when ``part`` is the TensorFlow name scope TF 1.x gave ``layer``'s variables.

    Keras 2.0-2.2 created a layer's variables under ``tf.name_scope(layer.name)``;
    TensorFlow makes a scope name unique in its graph by adding ``_1``, ``_2``...
    So a layer Keras calls ``conv2d_1`` may store ``conv2d_1_1/kernel:0``
    (``layer_names`` and the config still say ``conv2d_1``).
    """
    return part == layer or (part.startswith(layer + "_") and part[len(layer) + 1 :].isdigit())


def _assign(group_name: str, weight: str, candidates: set[str]) -> tuple[str, list[str]]:
    """Return (layer, path parts) of a stored weight name within the layer group ``group_name``.

    The layer is the name Keras gives it (``layer_names``, the config), not the
    TensorFlow scope in the stored name (``conv2d_1_1/kernel:0`` in group
    ``conv2d_1`` is ``conv2d_1``'s ``kernel``, see :func:`tf_scope_of`).
    """
    parts = weight.removesuffix(":0").split("/")
    if candidates:
        for i in range(len(parts) - 2, -1, -1):
            if parts[i] in candidates:
                return parts[i], parts[i + 1 :]
        for i in range(len(parts) - 2, -1, -1):  # an inner layer's TF scope ("dense_1_1")
            scoped = [c for c in candidates if tf_scope_of(parts[i], c)]
            if len(scoped) == 1:
                return scoped[0], parts[i + 1 :]
        return group_name, parts[-1:]
    if group_name in parts[:-1]:
        i = len(parts) - 2 - parts[-2::-1].index(group_name)
        return group_name, parts[i + 1 :]
    if len(parts) > 1 and tf_scope_of(parts[0], group_name):  # Keras 2.0-2.2 under TF 1.x
        return group_name, parts[1:]
    if len(parts) > 1:  # Keras 2 nested model: "<inner layer>/<weight>:0"
        return parts[0], parts[1:]
    return group_name, parts


def open(path: str | os.PathLike[str]) -> ModelFile:  # noqa: A001 - the handler protocol's name
    """Open a legacy Keras HDF5 model or weights file; tensor values are read on demand.

    Returns
    -------
    ModelFile
        ``format="h5"``; ``config`` = the parsed ``model_config`` (None for
        weights-only files); ``attrs``: ``keras_version``, ``backend``,
        ``weights_only``, ``has_optimizer``, ``stored_under_other_names`` (the
        layers whose stored weight names carry a TensorFlow scope instead of
        the layer's name, as Keras 2.0-2.2 wrote them: ``conv2d_1_1/kernel:0``
        for ``conv2d_1/kernel``; each tensor's ``key`` keeps the stored path).

    Raises
    ------
    FormatError
        Not HDF5, no Keras weights, damaged file or config.
    UnsafeFileError
        Links, external/virtual datasets, shape bombs.
    """
    path = Path(path)
    with wrap_errors(path, "open the file"):
        stat = file_stat(path)
    reader = open_guarded(path, path)
    h5 = reader.h5
    try:
        with reader.errors("read the Keras HDF5 layout"):
            return _open(h5, reader, path, stat)
    except BaseException:
        reader.close()
        raise


def _open(h5: h5py.File, reader: H5Reader, path: Path, stat: tuple[int, int]) -> ModelFile:
    if "model_weights" in h5:
        root = h5safe.child(h5, "model_weights", path)
        prefix = "model_weights/"
    elif "layer_names" in h5.attrs:
        root, prefix = h5, ""
    else:
        raise FormatError("not a Keras model file: an HDF5 file without Keras model weights", path)
    if not isinstance(root, h5py.Group) or "layer_names" not in root.attrs:
        raise FormatError("damaged Keras HDF5 file: model_weights has no layer_names", path)
    config = None
    raw = attr_str(h5, "model_config")
    if raw:
        config = load_json(raw, "the model_config attribute", path)
        check_model_config(config, "the model_config attribute", path)
    classes: dict[str, str] = {}
    inner: dict[str, list[str]] = {}
    if isinstance(config, dict):
        _flatten_config(config, classes, inner)
        if config.get("class_name") not in _MODEL_CLASSES:  # a bare layer saved as a model
            classes.setdefault(layer_config(config).get("name", ""), config.get("class_name", ""))
    trainable_layers = _trainable_flags(config)

    layers: list[LayerInfo] = []
    seen: dict[str, LayerInfo] = {}

    def layer(lname: str) -> LayerInfo:
        if lname not in seen:
            seen[lname] = LayerInfo(lname, classes.get(lname, ""))
            layers.append(seen[lname])
        return seen[lname]

    scoped: set[str] = set()  # layers whose stored names carry another (TF scope) name
    group_names = _unique_names(str_list(root.attrs["layer_names"]), "layer_names", path)
    if "top_level_model_weights" in root and "top_level_model_weights" not in group_names:
        group_names.append("top_level_model_weights")
    for gname in group_names:
        group = h5safe.child(root, gname, path)
        if not isinstance(group, h5py.Group):
            raise FormatError(f"layer {gname!r} is not an HDF5 group", path)
        candidates = set(inner.get(gname, []))
        for lname in inner.get(gname, []):
            layer(lname)  # inner layers in config order, with or without weights
        entries: list[tuple[str, list[str], h5py.Dataset]] = []
        weight_names = str_list(group.attrs.get("weight_names"))
        for wname in _unique_names(weight_names, f"the weight_names of layer {gname!r}", path):
            ds = h5safe.get(group, wname, path)
            if not isinstance(ds, h5py.Dataset):
                raise FormatError(f"weight {gname}/{wname} is not a dataset", path)
            lname, parts = _assign(gname, wname, candidates)
            scopes = wname.split("/")[:-1]
            if lname not in scopes and any(tf_scope_of(part, lname) for part in scopes):
                scoped.add(lname)
            entries.append((lname, parts, ds))
        if not entries:
            if not candidates and gname != "top_level_model_weights":
                layer(gname)  # a layer without weights
            continue
        for lname, weight, ds in _unique_weights(entries):
            trainable = trainable_layers.get(lname, True) and weight not in _NON_TRAINABLE
            layer(lname).tensors.append(tensor_info(lname, weight, ds, reader.file_size, path, trainable))

    attrs: dict[str, Any] = {
        "keras_version": attr_str(h5, "keras_version") or attr_str(root, "keras_version") or "",
        "backend": attr_str(h5, "backend") or attr_str(root, "backend") or "",
        "weights_only": prefix == "",
        "has_optimizer": "optimizer_weights" in h5,
        "stored_under_other_names": sorted(scoped),
        "_stat": stat,
    }
    return ModelFile(path, name, layers, reader, config=config, attrs=attrs)


def _unique_names(names: list[str], what: str, path: Path) -> list[str]:
    """Return ``names`` after checking that no name repeats (Keras refuses such files too).

    Keras' ``load_weights_from_hdf5_group`` matches ``layer_names`` one to one
    with the model's layers; a repeated name cannot be loaded, and reading it
    again for every repeat would make opening take time far beyond the file's
    size.

    Raises
    ------
    FormatError
        Naming the first repeated name and how often it appears.
    """
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise FormatError(f"{what} lists {n!r} {names.count(n):,} times (names must be unique)", path)
            seen.add(n)
    return names


def _unique_weights(
    entries: list[tuple[str, list[str], h5py.Dataset]],
) -> list[tuple[str, str, h5py.Dataset]]:
    """Weight name = last path part; the longer relative path where that would repeat in a layer."""
    counts: dict[tuple[str, str], int] = {}
    for lname, parts, _ in entries:
        counts[lname, parts[-1]] = counts.get((lname, parts[-1]), 0) + 1
    return [
        (lname, parts[-1] if counts[lname, parts[-1]] == 1 else "/".join(parts), ds)
        for lname, parts, ds in entries
    ]


def _trainable_flags(config: Any) -> dict[str, bool]:
    """``{layer name: trainable}`` from a model config (nested models' flags inherited)."""
    flags: dict[str, bool] = {}

    def walk(cfg: dict[str, Any], parent: bool) -> None:
        for lc in config_layers(cfg):
            lcfg = layer_config(lc)
            t = parent and bool(lcfg.get("trainable", True))
            flags[lcfg.get("name", "")] = t
            if isinstance(lcfg.get("layers"), list):
                walk(lc, t)

    if isinstance(config, dict):
        walk(config, bool(layer_config(config).get("trainable", True)))
    return flags


def save(model: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
    """Write a copy of the file with ``changed`` tensors overwritten in place, atomically.

    Attributes, config, optimizer state and untouched tensors stay identical.

    Parameters
    ----------
    model:
        An opened legacy HDF5 file (read, never written).
    changed:
        ``{canonical name: array}`` of the stored shapes.
    out:
        Destination path.

    Raises
    ------
    FormatError
        Unknown name, wrong shape, source changed on disk, destination not writable.
    """
    save_patched_h5(model, changed, out)

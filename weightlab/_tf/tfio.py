"""Read and write TensorFlow weight files with TensorFlow's own readers (imports TensorFlow).

Runs only in a child process (:mod:`weightlab._tf.reader`) or in headless
tools; the GUI process never imports this module. Nothing here runs model code:
tensor bundles are read with TensorFlow's checkpoint reader, ``saved_model.pb``
and GraphDefs are parsed as protocol buffers (never ``tf.saved_model.load``,
``load_model`` or ``import_graph_def``).

Three kinds of *location*:

``"savedmodel"``
    A SavedModel folder; tensors are the variables bundle
    ``<folder>/variables/variables``.
``"checkpoint"``
    A tensor-bundle prefix (``/run/ckpt-5``; ``/run/`` for files named
    ``.index`` and ``.data-00000-of-00001``).
``"graphdef"``
    A frozen GraphDef ``.pb`` file; tensors are float ``Const`` nodes.

Listings are plain picklable dicts::

    {"layers": [{"name": str, "class_name": str,
                 "tensors": [{"name", "layer", "weight", "key", "shape", "dtype", "trainable"}]}],
     "aliases": {primary key: [other keys holding the same variable]},
     "attrs": {...}}

Optimizer state (slots such as Adam's momentum and velocity, iteration
counters, ``save_counter``, ``global_step``) is listed in one layer called
:data:`OPTIMIZER_LAYER` whose ``class_name`` is also :data:`OPTIMIZER_LAYER`;
its tensors have ``trainable=False`` and are named
``(optimizer)/<variable name>`` (``(optimizer)/adam/dense_kernel_momentum``).
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message
from google.protobuf import text_format
from tensorflow.core.framework import graph_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2
from tensorflow.python.framework import tensor_util
from tensorflow.python.training import py_checkpoint_reader

from ..core.atomic import atomic_folder, atomic_path, remove_stale_temps, remove_tree, temp_path
from ..core.errors import FormatError
from ..core.links import check_prefix, check_tree, copy_tree, is_inside

#: Name and class name of the layer that holds optimizer and bookkeeping state.
OPTIMIZER_LAYER = "(optimizer)"
#: Layer (name and class name) of a tf.keras model's metrics variables, kept under this key prefix.
METRICS_LAYER = "(metrics)"
_METRICS_PREFIX = "keras_api/metrics/"

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_OPTIMIZER_EDGES = {"optimizer", "_optimizer"}
_BOOKKEEPING = {"save_counter", "global_step", "beta1_power", "beta2_power"}
_NON_TRAINABLE = {"moving_mean", "moving_variance", "running_mean", "running_var"}
_FLOAT_TYPES = {
    types_pb2.DT_HALF: np.float16,
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_BFLOAT16: None,  # ml_dtypes bfloat16, via tf.bfloat16.as_numpy_dtype
}
_WEIGHT_WORDS = ("kernel", "bias", "weight", "gamma", "beta", "moving_", "embedding", "filter")
#: Trailing name components that say nothing about the weight (frozen v2 graphs).
_OPISH = {"resource", "ReadVariableOp", "read", "Read"}
#: (consumer op, input index) -> Keras weight name, for Const nodes named after ops.
_CONSUMER_WEIGHT = {
    ("MatMul", 1): "kernel",
    ("BatchMatMulV2", 1): "kernel",
    ("Conv2D", 1): "kernel",
    ("Conv3D", 1): "kernel",
    ("Conv2DBackpropInput", 1): "kernel",
    ("DepthwiseConv2dNative", 1): "depthwise_kernel",
    ("BiasAdd", 1): "bias",
    ("AddV2", 1): "bias",
    ("Add", 1): "bias",
    ("FusedBatchNormV3", 1): "gamma",
    ("FusedBatchNormV3", 2): "beta",
    ("FusedBatchNormV3", 3): "moving_mean",
    ("FusedBatchNormV3", 4): "moving_variance",
    ("GatherV2", 0): "embeddings",
    ("ResourceGather", 0): "embeddings",
}
#: A Const whose declared size exceeds this many bytes and is not backed by
#: stored data of that size (a broadcast scalar) is refused as a shape bomb.
MAX_BROADCAST_BYTES = 256 * 2**20


# -- small helpers ----------------------------------------------------------------
def _tf_message(exc: BaseException) -> str:
    """The first line of a TensorFlow error, without its graph context."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def _reader(prefix: str, shown: str | os.PathLike[str]) -> Any:
    """Open a tensor bundle with TensorFlow's checkpoint reader.

    Raises
    ------
    FormatError
        When the index is missing, truncated or damaged, or data files are missing.
    """
    check_data_files(prefix, shown)
    try:
        return py_checkpoint_reader.NewCheckpointReader(prefix)
    except Exception as exc:  # noqa: BLE001 - TF raises many error types
        raise FormatError(
            f"cannot read the tensor bundle index {Path(prefix + '.index').name!r}: {_tf_message(exc)}", shown
        ) from None


def check_data_files(prefix: str, shown: str | os.PathLike[str]) -> None:
    """Check that every data shard ``<prefix>.data-NNNNN-of-MMMMM`` exists.

    Raises
    ------
    FormatError
        When the index is missing or a shard named by the others is missing.
    """
    folder, base = os.path.split(prefix)
    folder = folder or "."
    if not os.path.isfile(prefix + ".index"):
        raise FormatError(f"the checkpoint index {base + '.index'!r} is missing", shown)
    shards = [f for f in os.listdir(folder) if f.startswith(base + ".data-") and "-of-" in f]
    if not shards:
        raise FormatError(f"the checkpoint data file {base + '.data-00000-of-00001'!r} is missing", shown)
    try:
        total = int(shards[0].rsplit("-of-", 1)[1])
    except ValueError:
        return
    for i in range(total):
        name = f"{base}.data-{i:05d}-of-{total:05d}"
        if name not in shards:
            raise FormatError(f"the checkpoint data file {name!r} is missing", shown)


def _split(name: str) -> tuple[str, str]:
    """``"a/b/kernel"`` -> ``("a/b", "kernel")``; ``"bias"`` -> ``("", "bias")``."""
    name = name[:-2] if name.endswith(":0") else name
    layer, _, weight = name.rpartition("/")
    return layer, weight


def _tensor(layer: str, weight: str, key: str, shape, dtype, trainable: bool) -> dict[str, Any]:
    return {
        "name": f"{layer}/{weight}",
        "layer": layer,
        "weight": weight,
        "key": key,
        "shape": tuple(int(d) for d in shape),
        "dtype": np.dtype(dtype).name,
        "trainable": bool(trainable),
    }


def _group_layers(tensors: list[dict[str, Any]], class_names: dict[str, str] | None = None) -> list[dict]:
    """Group tensor dicts into layer dicts (first-appearance order; optimizer state last).

    A tf.keras model's metrics totals (key ``[.../]keras_api/metrics/0/total/...``)
    go to the :data:`METRICS_LAYER` (``(metrics)/0/total``, not trainable).
    """
    for t in tensors:
        _, found, rest = f"/{t['key']}".partition(f"/{_METRICS_PREFIX}")  # also under a checkpoint's root object
        if found and t["layer"] != OPTIMIZER_LAYER:
            weight = rest.split("/.ATTRIBUTES/")[0]
            t.update(layer=METRICS_LAYER, weight=weight, name=f"{METRICS_LAYER}/{weight}", trainable=False)
    _make_unique(tensors)
    layers: dict[str, dict[str, Any]] = {}
    for t in sorted(tensors, key=lambda t: t["layer"] == OPTIMIZER_LAYER):
        layer = layers.setdefault(
            t["layer"],
            {"name": t["layer"], "class_name": (class_names or {}).get(t["layer"], ""), "tensors": []},
        )
        if t["layer"] in (OPTIMIZER_LAYER, METRICS_LAYER):
            layer["class_name"] = t["layer"]
        layer["tensors"].append(t)
    return list(layers.values())


def _make_unique(tensors: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for t in tensors:
        base, k = t["weight"], 1
        while t["name"] in seen:
            t["weight"] = f"{base}_{k}"
            t["name"] = f"{t['layer']}/{t['weight']}"
            k += 1
        seen.add(t["name"])


# -- tensor bundles (checkpoints and SavedModel variables) ---------------------------
def _object_graph(reader: Any, shown: str | os.PathLike[str]) -> Any | None:
    if not reader.has_tensor(OBJECT_GRAPH_KEY):
        return None
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    except (pb_message.DecodeError, RuntimeError, ValueError) as exc:
        raise FormatError(f"cannot parse the checkpoint's object graph: {_tf_message(exc)}", shown) from None
    return graph


def _paths(graph: Any, skip_optimizer: bool) -> dict[int, list[str]]:
    """Shortest trackable path (list of local names) of every node reachable from the root."""
    paths: dict[int, list[str]] = {0: []}
    queue = deque([0])
    while queue:
        i = queue.popleft()
        for child in graph.nodes[i].children:
            if skip_optimizer and child.local_name in _OPTIMIZER_EDGES:
                continue
            if child.node_id not in paths and 0 <= child.node_id < len(graph.nodes):
                paths[child.node_id] = [*paths[i], child.local_name]
                queue.append(child.node_id)
    return paths


def _describe_bundle(
    reader: Any,
    shown: str | os.PathLike[str],
    saved_vars: dict[int, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """List the tensors of a bundle with meaningful names, and the keys that alias one variable.

    ``saved_vars`` maps object-graph node ids to ``SavedVariable`` protos (from a
    SavedModel), whose ``name`` and ``trainable`` win over the checkpoint's own.
    """
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    graph = _object_graph(reader, shown)
    tensors: list[dict[str, Any]] = []
    claimed: set[str] = {OBJECT_GRAPH_KEY}
    if graph is not None:
        model_paths = _paths(graph, skip_optimizer=True)
        all_paths = _paths(graph, skip_optimizer=False)
        order = list(model_paths) + [i for i in all_paths if i not in model_paths]
        order += [i for i in range(len(graph.nodes)) if i not in all_paths]
        for i in order:
            node = graph.nodes[i]
            for attr in node.attributes:
                key = attr.checkpoint_key
                if key not in shapes or key in claimed:
                    continue
                claimed.add(key)
                saved = (saved_vars or {}).get(i)
                full = (saved.name if saved is not None and saved.name else attr.full_name) or ""
                path = all_paths.get(i) or model_paths.get(i)
                if attr.name != "VARIABLE_VALUE":
                    full = f"{full or key}/{attr.name}"
                optimizer = i not in model_paths or (path is not None and path[-1] in _BOOKKEEPING)
                if optimizer:
                    weight = (full or key.replace(_VALUE_SUFFIX, "")).removesuffix(":0")
                    tensors.append(
                        _tensor(OPTIMIZER_LAYER, weight, key, shapes[key], dtypes[key].as_numpy_dtype, False)
                    )
                    continue
                layer, weight = _split(full) if full else ("", "")
                if not weight:  # no name recorded: use the trackable path
                    layer, weight = _split("/".join(path or [key.replace(_VALUE_SUFFIX, "")]))
                if not layer:  # a bare name (tf.Module variable): layer = the owning object's path
                    layer = "/".join((path or [])[:-1]) or "root"
                trainable = saved.trainable if saved is not None else weight not in _NON_TRAINABLE
                tensors.append(
                    _tensor(layer, weight, key, shapes[key], dtypes[key].as_numpy_dtype, trainable)
                )
    # Name-based (TF1) keys, and any key the object graph does not mention.
    rest = sorted(k for k in shapes if k not in claimed)
    rest_set = set(rest)
    for key in rest:
        layer, weight = _split(key)
        parent = key.rpartition("/")[0]
        slot = any(
            parent[:j] in rest_set for j in range(len(parent), 0, -1) if j == len(parent) or parent[j] == "/"
        )
        if slot or key.rpartition("/")[2] in _BOOKKEEPING:
            tensors.append(_tensor(OPTIMIZER_LAYER, key, key, shapes[key], dtypes[key].as_numpy_dtype, False))
        else:
            tensors.append(
                _tensor(
                    layer or "root",
                    weight,
                    key,
                    shapes[key],
                    dtypes[key].as_numpy_dtype,
                    weight not in _NON_TRAINABLE,
                )
            )
    return _merge_aliases(reader, tensors)


def _merge_aliases(
    reader: Any, tensors: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Merge tensors that are one variable saved under several keys.

    Two keys are one variable when they have the same name, shape and dtype and
    bit-identical values (Keras 3 exports list every variable under
    ``variables/N`` and ``_all_variables/M``).
    """
    by_name: dict[tuple, list[dict[str, Any]]] = {}
    for t in tensors:
        by_name.setdefault((t["name"], t["shape"], t["dtype"]), []).append(t)
    aliases: dict[str, list[str]] = {}
    dropped: set[int] = set()
    for group in by_name.values():
        if len(group) < 2:
            continue
        values = [_read_bundle_tensor(reader, t["key"], "") for t in group]
        for a in range(len(group)):
            if id(group[a]) in dropped:
                continue
            for b in range(a + 1, len(group)):
                if id(group[b]) not in dropped and _identical(values[a], values[b]):
                    aliases.setdefault(group[a]["key"], []).append(group[b]["key"])
                    dropped.add(id(group[b]))
    return [t for t in tensors if id(t) not in dropped], aliases


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist()
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _read_bundle_tensor(reader: Any, key: str, shown: str | os.PathLike[str]) -> np.ndarray:
    try:
        value = reader.get_tensor(key)
    except Exception as exc:  # noqa: BLE001 - TF raises many error types
        raise FormatError(f"cannot read tensor {key!r}: {_tf_message(exc)}", shown) from None
    if isinstance(value, bytes):  # a string scalar: keep it whole (NumPy "S" would drop trailing NULs)
        return np.array(value, dtype=object)
    return np.asarray(value)


def _write_bundle(
    reader: Any, changed: dict[str, np.ndarray], prefix: str, shown: str | os.PathLike[str]
) -> None:
    """Write every tensor of ``reader`` (``changed`` ones replaced) as a one-shard bundle at ``prefix``."""
    shapes = reader.get_variable_to_shape_map()
    unknown = sorted(set(changed) - set(shapes))
    if unknown:
        raise FormatError(f"cannot save: the bundle has no tensor {unknown[0]!r}", shown)
    names = sorted(shapes)
    values = []
    for key in names:
        value = changed[key] if key in changed else _read_bundle_tensor(reader, key, shown)
        values.append(tf.convert_to_tensor(value))
    try:
        tf.raw_ops.SaveV2(
            prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values
        )
    except Exception as exc:  # noqa: BLE001 - TF raises many kinds; the user gets one FormatError naming the file
        raise FormatError(f"cannot write the tensor bundle: {_tf_message(exc)}", shown) from None


# -- SavedModel -------------------------------------------------------------------
def _load_saved_model_proto(folder: Path) -> Any:
    sm = saved_model_pb2.SavedModel()
    pb, pbtxt = folder / "saved_model.pb", folder / "saved_model.pbtxt"
    try:
        if pb.is_file():
            sm.ParseFromString(pb.read_bytes())
        else:
            text_format.Parse(pbtxt.read_text("utf-8"), sm)
    except (pb_message.DecodeError, text_format.ParseError, UnicodeDecodeError, OSError) as exc:
        part = pb.name if pb.is_file() else pbtxt.name
        raise FormatError(f"cannot parse {part}: {_tf_message(exc)}", folder) from None
    if not sm.meta_graphs:
        raise FormatError("saved_model.pb holds no MetaGraph", folder)
    return sm


def _saved_variables(sm: Any, graph: Any | None) -> dict[int, Any]:
    """SavedVariable protos by node id, when the SavedModel's object graph matches the bundle's."""
    nodes = sm.meta_graphs[0].object_graph_def.nodes
    if graph is None or len(nodes) != len(graph.nodes):
        return {}
    return {i: n.variable for i, n in enumerate(nodes) if n.WhichOneof("kind") == "variable"}


def list_saved_model(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe the tensors of a SavedModel folder (see the module docstring for the layout).

    Names come from the variables' own names in the SavedModel object graph
    (``dense/kernel``), else from the trackable path; the bundle key
    (``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``) is kept as ``key``.

    Raises
    ------
    FormatError
        When ``saved_model.pb`` cannot be parsed or the variables bundle cannot be read.
    """
    folder = Path(folder)
    check_tree(folder)
    sm = _load_saved_model_proto(folder)
    prefix = str(folder / "variables" / "variables")
    if not (folder / "variables" / "variables.index").is_file():
        return {"layers": [], "aliases": {}, "attrs": _saved_model_attrs(sm)}
    reader = _reader(prefix, folder)
    saved = _saved_variables(sm, _object_graph(reader, folder))
    tensors, aliases = _describe_bundle(reader, folder, saved)
    return {"layers": _group_layers(tensors), "aliases": aliases, "attrs": _saved_model_attrs(sm)}


def _saved_model_attrs(sm: Any) -> dict[str, Any]:
    mg = sm.meta_graphs[0]
    return {
        "signatures": sorted(mg.signature_def),
        "tags": list(mg.meta_info_def.tags),
        "tensorflow_version": mg.meta_info_def.tensorflow_version,
    }


_BUNDLE_FILES = ("variables/variables.index", "variables/variables.data-")


def save_saved_model(
    folder: str | os.PathLike[str], changed: dict[str, np.ndarray], out: str | os.PathLike[str]
) -> None:
    """Copy the SavedModel folder to ``out`` with the tensors ``changed`` (by key) replaced.

    Everything else (graph, signatures, object graph, assets) is copied as
    regular files (a link inside the folder becomes a copy of its target; see
    :mod:`weightlab.core.links` for what is refused); the variables bundle is
    rewritten with untouched tensors bit-identical and ``fingerprint.pb`` is
    recomputed. The copy is built in a fresh folder beside ``out``
    (:func:`~weightlab.core.atomic.atomic_folder`) and renamed into place:
    nothing in the opened folder and nothing behind a link is written,
    truncated or deleted (saving over the opened folder itself replaces it as
    a whole, after the copy is complete).

    Raises
    ------
    UnsafeFileError
        When the opened folder holds a link leading outside it, a link to a
        folder or a special file.
    FormatError
        When ``out`` is a link, exists and is neither empty nor a SavedModel,
        lies inside the opened folder (or holds it), or writing fails.
    """
    folder, out = Path(folder), Path(out)
    check_tree(folder)
    if out.is_symlink():
        raise FormatError("cannot save: it is a link; name a real folder", out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "saved_model.pb").exists())):
        raise FormatError("cannot save: it exists and is not an empty folder or a SavedModel", out)
    same = os.path.realpath(out) == os.path.realpath(folder)
    if not same and (is_inside(out, folder) or is_inside(folder, out)):
        raise FormatError(f"cannot save inside the opened folder {os.fspath(folder)!r} or around it", out)
    bundle = (folder / "variables" / "variables.index").is_file()
    if changed and not bundle:
        raise FormatError("cannot save: the SavedModel has no variables", folder)
    reader = _reader(str(folder / "variables" / "variables"), folder) if bundle else None

    def skip(rel: str) -> bool:
        return rel == "fingerprint.pb" or (bundle and rel.startswith(_BUNDLE_FILES))

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(out) as tmp:
            copy_tree(folder, tmp, skip=skip)
            if reader is not None:
                (tmp / "variables").mkdir(exist_ok=True)
                _write_bundle(reader, changed, str(tmp / "variables" / "variables"), out)
            if (folder / "fingerprint.pb").is_file():
                _write_fingerprint(tmp)
    except OSError as exc:
        raise FormatError(f"cannot save: {exc.strerror or exc}", out) from None


def _write_fingerprint(folder: Path) -> None:
    """Write a new ``fingerprint.pb`` for the SavedModel in ``folder`` (it hashes the variables).

    Best effort: the fingerprint is metadata TensorFlow does not need to load,
    so the copy goes without one when TensorFlow cannot compute it.
    """
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fpw

        data = fpw.CreateFingerprintDef(str(folder))
    except Exception:  # noqa: BLE001 - the fingerprint is metadata only
        return
    with open(folder / "fingerprint.pb", "xb") as fh:
        fh.write(data)


# -- checkpoints --------------------------------------------------------------------
def list_checkpoint(prefix: str) -> dict[str, Any]:
    """Describe the tensors of a checkpoint prefix (see the module docstring for the layout).

    Object-based (TF2) checkpoints are named from their object graph (the
    variables' ``full_name``: ``dense/kernel``); name-based (TF1) ones by their
    keys (``fc1/weights``). Optimizer state goes to the :data:`OPTIMIZER_LAYER`.

    Raises
    ------
    FormatError
        When the index is missing, truncated or damaged, or a data file is missing.
    """
    check_prefix(prefix)
    reader = _reader(prefix, prefix + ".index")
    tensors, aliases = _describe_bundle(reader, prefix + ".index")
    attrs = {
        "object_based": reader.has_tensor(OBJECT_GRAPH_KEY),
        "has_meta": os.path.isfile(prefix + ".meta"),
    }
    return {"layers": _group_layers(tensors), "aliases": aliases, "attrs": attrs}


def save_checkpoint(prefix: str, changed: dict[str, np.ndarray], out: str) -> None:
    """Write a copy of the checkpoint at prefix ``out`` with ``changed`` (by key) replaced.

    The bundle (one data shard, and a copy of a ``.meta`` beside the source)
    is written into a fresh temporary folder in ``out``'s folder, then each
    file is renamed into place (data and ``.meta`` first, index last), and
    data shards of an earlier checkpoint at ``out`` are removed. A
    ``checkpoint`` state file pointing to ``out`` (relative to its folder) is
    written when the folder has none, or replaced when the folder is not the
    source's own folder (whose state file is never changed). Renames replace
    links at ``out``'s names; nothing is written through a link.

    Raises
    ------
    UnsafeFileError
        When a file of the source checkpoint is a link leading out of its
        folder or a special file.
    FormatError
        When ``out`` is the source prefix or writing fails.
    """
    shown = out + ".index"
    if os.path.realpath(prefix) == os.path.realpath(out):
        raise FormatError("cannot save over the opened checkpoint; choose another prefix", shown)
    check_prefix(prefix)
    reader = _reader(prefix, prefix + ".index")
    folder, base = os.path.split(out)
    folder = folder or "."
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temps(folder)
        tmp = temp_path(folder, base or "ckpt", directory=True)
        try:
            _write_bundle(reader, changed, os.path.join(tmp, "ckpt"), shown)
            if os.path.isfile(prefix + ".meta"):
                _copy_regular(prefix + ".meta", os.path.join(tmp, "ckpt.meta"))
            produced = [f for f in os.listdir(tmp) if f.startswith("ckpt.")]
            produced.sort(key=lambda f: f.endswith(".index"))  # index last
            for f in produced:
                os.replace(os.path.join(tmp, f), out + f[len("ckpt") :])
            written = {base + f[len("ckpt") :] for f in produced}
            for stale in os.listdir(folder):
                if stale.startswith(base + ".data-") and stale not in written:
                    os.unlink(os.path.join(folder, stale))  # a link is unlinked, never followed
        finally:
            remove_tree(tmp)
        state = os.path.join(folder, "checkpoint")
        same_folder = os.path.realpath(folder) == os.path.realpath(os.path.dirname(prefix) or ".")
        if not os.path.lexists(state) or not same_folder:
            text = f'model_checkpoint_path: "{base}"\nall_model_checkpoint_paths: "{base}"\n'
            with atomic_path(state) as tmp_state:
                tmp_state.write_text(text, "utf-8")
    except OSError as exc:
        raise FormatError(f"cannot save: {exc.strerror or exc}", shown) from None


def _copy_regular(src: str, dst: str) -> None:
    """Copy the regular file ``src`` (a link to one is read through) to the new file ``dst``."""
    if not os.path.isfile(src):  # never open a FIFO (it would block)
        raise FormatError("is not a regular file", src)
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)


# -- frozen GraphDefs -----------------------------------------------------------------
_GRAPHS: dict[str, tuple[int, Any]] = {}


def _graph(path: str) -> Any:
    """Parse (and cache, by modification time) the GraphDef at ``path``."""
    try:
        mtime = os.stat(path).st_mtime_ns
        cached = _GRAPHS.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        graph = graph_pb2.GraphDef()
        graph.ParseFromString(Path(path).read_bytes())
    except (pb_message.DecodeError, OSError, RuntimeError) as exc:
        raise FormatError(f"cannot parse the GraphDef: {_tf_message(exc)}", path) from None
    if not graph.node and not graph.library.function:
        raise FormatError("the GraphDef has no nodes", path)
    _GRAPHS[path] = (mtime, graph)
    return graph


def _const_nodes(graph: Any) -> list[tuple[str, Any, Any]]:
    """``(key, node, consumers_graph)`` of every Const node (main graph, then library functions)."""
    out = [(n.name, n, graph.node) for n in graph.node if n.op == "Const"]
    for fn in graph.library.function:
        out += [(f"{fn.signature.name}::{n.name}", n, fn.node_def) for n in fn.node_def if n.op == "Const"]
    return out


def _const_shape(node: Any, key: str, path: str) -> tuple[tuple[int, ...], Any]:
    """Declared shape and NumPy dtype of a float Const, checked against its stored data.

    Raises
    ------
    FormatError
        For a negative dimension, or a declared size not backed by stored data
        and larger than :data:`MAX_BROADCAST_BYTES` (a shape bomb).
    """
    proto = node.attr["value"].tensor
    dtype = tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape) or proto.tensor_shape.unknown_rank:
        raise FormatError(f"Const node {key!r} declares an invalid shape {shape}", path)
    n = 1
    for d in shape:
        n *= d
    nbytes = n * np.dtype(dtype).itemsize
    if proto.tensor_content:
        if len(proto.tensor_content) != nbytes:
            raise FormatError(
                f"Const node {key!r} declares shape {shape} ({nbytes} bytes) but stores "
                f"{len(proto.tensor_content)} bytes",
                path,
            )
    elif nbytes > MAX_BROADCAST_BYTES:
        raise FormatError(f"Const node {key!r} declares an absurd shape {shape} ({nbytes} bytes)", path)
    return shape, dtype


def _consumer_weight(key: str, graph_nodes: Any) -> tuple[str, str] | None:
    """Follow Identity/Cast chains from a Const to its consumer; map it to (layer scope, weight)."""
    name = key.rpartition("::")[2]
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph_nodes:
        for idx, inp in enumerate(node.input):
            consumers.setdefault(inp.split(":")[0].lstrip("^"), []).append((node, idx))
    seen = {name}
    frontier = [name]
    while frontier:
        cur = frontier.pop()
        for node, idx in consumers.get(cur, []):
            if node.op in ("Identity", "Cast", "ReadVariableOp") and node.name not in seen:
                seen.add(node.name)
                frontier.append(node.name)
            elif (node.op, idx) in _CONSUMER_WEIGHT:
                return node.name.rpartition("/")[0], _CONSUMER_WEIGHT[(node.op, idx)]
    return None


def _is_weight(node: Any, shape: tuple[int, ...]) -> bool:
    n = 1
    for d in shape:
        n *= d
    last = node.name.rpartition("/")[2].lower()
    return n >= 2 or any(w in last for w in _WEIGHT_WORDS)


def list_graphdef(path: str) -> dict[str, Any]:
    """Describe the weight-holding float ``Const`` nodes of a frozen GraphDef.

    A Const is a weight when its dtype is floating point and it has at least 2
    elements or its name looks like a weight (``kernel``, ``bias``, ``weights``).
    Names: a Const named after its variable (``fc1/weights``) keeps that name;
    one named after ops (v2 frozen graphs: ``model/dense/MatMul/ReadVariableOp/resource``)
    is named after its consumer (``model/dense/kernel``). Keys are node names
    (``function::node`` inside library functions).

    Raises
    ------
    FormatError
        When the file is not a GraphDef or a Const declares an invalid or absurd shape.
    """
    graph = _graph(path)
    tensors = []
    for key, node, scope_nodes in _const_nodes(graph):
        if node.attr["dtype"].type not in _FLOAT_TYPES:
            continue
        shape, dtype = _const_shape(node, key, path)
        if not _is_weight(node, shape):
            continue
        parts = node.name.split("/")
        while len(parts) > 1 and parts[-1] in _OPISH:
            parts.pop()
        layer, weight = "/".join(parts[:-1]), parts[-1]
        if weight[:1].isupper() or weight in _OPISH:  # named after an op (Cast, BiasAdd): ask its consumer
            found = _consumer_weight(key, scope_nodes)
            if found:
                layer, weight = found
        if "::" in key:
            layer = f"{key.partition('::')[0]}/{layer}".rstrip("/")
        tensors.append(_tensor(layer or "root", weight, key, shape, dtype, True))
    return {"layers": _group_layers(tensors), "aliases": {}, "attrs": {"nodes": len(graph.node)}}


def _find_const(graph: Any, key: str, path: str) -> Any:
    for k, node, _ in _const_nodes(graph):
        if k == key:
            return node
    raise FormatError(f"the GraphDef has no Const node {key!r}", path)


def save_graphdef(path: str, changed: dict[str, np.ndarray], out: str) -> None:
    """Write a copy of the GraphDef with the ``changed`` Const nodes' values replaced, atomically.

    Raises
    ------
    FormatError
        When a key is not a Const node of the graph or writing fails.
    """
    graph = graph_pb2.GraphDef()
    graph.CopyFrom(_graph(path))
    for key, value in changed.items():
        node = _find_const(graph, key, path)
        shape, dtype = _const_shape(node, key, path)
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype).reshape(shape))
        node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(arr, shape=shape))
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(graph.SerializeToString())
    except OSError as exc:
        raise FormatError(f"cannot save: {exc.strerror or exc}", out) from None


# -- the interface used by the reader process ---------------------------------------------
_READERS: dict[str, tuple[int, Any]] = {}


def _cached_reader(prefix: str, shown: str | os.PathLike[str], folder: str | None = None) -> Any:
    """The checkpoint reader of ``prefix``, reopened when its index changed (links checked on each open).

    ``folder`` is the SavedModel folder holding the bundle, whose whole tree is checked.
    """
    try:
        mtime = os.stat(prefix + ".index").st_mtime_ns
    except OSError:
        mtime = -1
    cached = _READERS.get(prefix)
    if cached is None or cached[0] != mtime:
        if folder is not None:
            check_tree(folder)
        else:
            check_prefix(prefix, shown)
        cached = (mtime, _reader(prefix, shown))
        _READERS[prefix] = cached
    return cached[1]


def list_location(kind: str, location: str) -> dict[str, Any]:
    """Describe ``location`` of ``kind`` (``"savedmodel"``, ``"checkpoint"``, ``"graphdef"``)."""
    if kind == "savedmodel":
        return list_saved_model(location)
    if kind == "checkpoint":
        return list_checkpoint(location)
    if kind == "graphdef":
        return list_graphdef(location)
    raise ValueError(f"unknown kind {kind!r}")


def read_tensor(kind: str, location: str, key: str) -> np.ndarray:
    """Read the tensor stored under ``key``; an array of the stored shape and dtype.

    Raises
    ------
    FormatError
        When the key is missing or its data cannot be read (names the file and key).
    """
    if kind == "graphdef":
        node = _find_const(_graph(location), key, location)
        shape, _ = _const_shape(node, key, location)
        try:
            return np.asarray(tensor_util.MakeNdarray(node.attr["value"].tensor)).reshape(shape)
        except (ValueError, TypeError) as exc:
            raise FormatError(f"cannot read Const node {key!r}: {exc}", location) from None
    if kind == "savedmodel":
        shown: str = location
        prefix = os.path.join(location, "variables", "variables")
        return _read_bundle_tensor(_cached_reader(prefix, shown, location), key, shown)
    prefix, shown = location, location + ".index"
    return _read_bundle_tensor(_cached_reader(prefix, shown), key, shown)


def save(kind: str, location: str, changed_by_key: dict[str, np.ndarray], out: str) -> None:
    """Save ``location`` to ``out`` in the same format with the tensors ``changed_by_key`` replaced.

    ``changed_by_key`` maps every file key to write (aliases included) to its
    new values, already of the stored shape and dtype.
    """
    if kind == "savedmodel":
        save_saved_model(location, changed_by_key, out)
    elif kind == "checkpoint":
        save_checkpoint(location, changed_by_key, out)
    elif kind == "graphdef":
        save_graphdef(location, changed_by_key, out)
    else:
        raise ValueError(f"unknown kind {kind!r}")

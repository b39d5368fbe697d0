"""Evaluation of every evaluable format: Keras files, SavedModels, checkpoints, frozen graphs.

Imports TensorFlow and Keras: used in the engine worker and by headless callers
(``weightlab eval``), never in the GUI process. :func:`open_session` is the one
entry point; it detects the format by content and returns a session with the
interface of :class:`~weightlab._tf.session.EngineSession` (``set_heldout``,
``evaluate(edited, progress=..., should_stop=...)``, ``tmap``, ``input_shape``, ``num_classes``, ``num_samples``, ``labelled``,
``output_names``, ``signatures``).

Evaluation paths
----------------
Keras ``.keras`` / ``.h5`` (Keras 3, and Keras 2 files through Keras 3's legacy loader)
    :func:`~weightlab._tf.model.build_model` (Lambda layers and custom
    classes refused unless trusted), then an incremental
    :class:`~weightlab._tf.session.EngineSession`; a model with several
    outputs gets a :class:`PassSession` (full passes).
Checkpoint + architecture
    The architecture (a Keras file, built as above) receives the
    checkpoint's values: tensors are matched by the canonical names the
    checkpoint listing gives (:func:`weightlab._tf.tfio.list_checkpoint`),
    then by order and shape; optimizer state is ignored. Edits are keyed by
    the checkpoint's canonical names.
SavedModel
    After :func:`weightlab.engine.graph_safety.check_saved_model`,
    ``tf.saved_model.load`` and the chosen signature (``serving_default`` by
    default) called batch by batch. Edited tensors are assigned to the loaded
    object's variables, found by the bundle keys the listing
    (:func:`weightlab._tf.tfio.list_saved_model`) gives each canonical
    name, walking the loaded object graph with TensorFlow's own checkpoint
    key scheme.
Frozen GraphDef
    After :func:`weightlab.engine.graph_safety.check_graph_def`, the graph is
    imported into a fresh ``tf.Graph`` and run in a ``tf.compat.v1.Session``;
    edited ``Const`` values are fed in place of the constants (TensorFlow
    does not fold fed nodes). Inputs: the ``Placeholder`` nodes; output: the
    sink (a node nothing consumes), preferring ``Softmax``, then
    ``Identity``; both overridable. Constants inside library functions
    cannot be fed: they are listed as unmapped.

Outputs and labels
------------------
The *scored* output (accuracy and loss against labels) is the chosen output,
or the only one; it must be class scores ``(N, C)`` with ``C >= 2``. With
several outputs and none chosen, or without labels, only the agreement with
the unedited model is reported (see :mod:`weightlab.engine.scoring`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..core.dataset import conform_inputs, load_heldout
from ..core.errors import DataError, EngineError
from ..engine.events import Metrics
from ..engine.graph_safety import check_graph_def, check_saved_model
from ..engine.scoring import Agreement, PassScorer, check_labels
from ..formats.tf_formats import evaluation_kind
from . import tfio
from .model import Layout, TensorMap, build_model, file_layout, map_tensors, model_layout, prepare_arrays
from .runtime import EvaluationCancelled, device_name, run_reason
from .session import EngineSession, ProgressCallback

__all__ = [
    "DEFAULT_BATCH",
    "GraphDefExecutable",
    "KerasExecutable",
    "PassSession",
    "SavedModelExecutable",
    "checkpoint_session",
    "open_session",
    "run_failure",
]

#: Samples per forward pass of a :class:`PassSession` when the caller does not choose.
DEFAULT_BATCH = 256


# -- executables: one forward pass and assignable tensors ------------------------------
class _Slot:
    """A tensor a user may edit that is no variable (a frozen graph's Const): shape and dtype."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)


class _Executable:
    """What a :class:`PassSession` needs from a model.

    Attributes
    ----------
    input_shape:
        Input shape with the batch axis, None for free dimensions.
    input_dtype:
        NumPy dtype of the input.
    output_names:
        Names of the evaluated outputs, in the order of :meth:`run`.
    output_shapes:
        Their shapes (batch axis included; None when unknown).
    fixed_batch:
        The batch size the model requires, or None.
    tmap:
        Canonical name -> variable or :class:`_Slot`.
    node_ops:
        Node name -> op type, for the graph and its library functions (names
        the op in run-time errors; empty when unknown).
    """

    input_shape: tuple
    input_dtype: np.dtype
    output_names: list[str]
    output_shapes: list[tuple | None]
    fixed_batch: int | None = None
    tmap: TensorMap
    signatures: list[str] = []
    node_ops: dict[str, str] = {}

    def value(self, name: str) -> np.ndarray:
        """The current values of tensor ``name``."""
        return np.array(self.tmap.variables[name].numpy(), copy=True)

    def assign(self, name: str, values: np.ndarray | None) -> None:
        """Give tensor ``name`` these values (None: the file's own, for slots that can forget)."""
        self.tmap.variables[name].assign(values)

    def run(self, xb: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - abstract
        """Outputs of one batch, one array ``(B, ...)`` per output name."""
        raise NotImplementedError


def _choose_output(names: Sequence[str], output: str | None, what: str, shown: Any) -> list[str]:
    """The outputs to evaluate: ``[output]`` when chosen (checked), else all ``names``."""
    if output is None:
        return list(names)
    if output not in names:
        raise EngineError(f"{what} has no output {output!r}; its outputs are {sorted(names)}", shown)
    return [output]


class KerasExecutable(_Executable):
    """A built Keras model with any number of outputs, run as one ``tf.function`` per batch.

    Parameters
    ----------
    model:
        The built model (one input).
    tmap:
        Its :class:`~weightlab._tf.model.TensorMap`.
    output:
        Evaluate only this output (one of ``model.output_names``).
    """

    def __init__(self, model: keras.Model, tmap: TensorMap, output: str | None = None, shown: Any = None):
        if len(model.inputs) != 1:
            raise EngineError(
                f"only models with one input can be evaluated; this one has {len(model.inputs)}"
            )
        self.model, self.tmap = model, tmap
        self.input_shape = tuple(model.inputs[0].shape)
        self.input_dtype = np.dtype(keras.backend.standardize_dtype(model.inputs[0].dtype))
        names = [str(n) for n in model.output_names]
        self.output_names = _choose_output(names, output, "the model", shown)
        picks = [names.index(n) for n in self.output_names]
        self.output_shapes = [tuple(model.outputs[i].shape) for i in picks]

        @tf.function(reduce_retracing=True)
        def forward(x):
            outs = model(x, training=False)
            outs = list(outs) if isinstance(outs, list | tuple) else [outs]
            return [outs[i] for i in picks]

        self._forward = forward

    def run(self, xb: np.ndarray) -> list[np.ndarray]:
        """Outputs of one batch."""
        return [o.numpy() for o in self._forward(tf.constant(xb))]


def _saved_model_variables(loaded: Any) -> dict[str, Any]:
    """Bundle key -> variable of a loaded SavedModel, with TensorFlow's checkpoint key scheme.

    Walks the loaded object graph breadth first (as the bundle's keys were
    made when it was saved): a variable reached by the path ``a/b/c`` is
    saved under ``a/b/c/.ATTRIBUTES/VARIABLE_VALUE`` (names escaped as
    TensorFlow escapes them).
    """
    from tensorflow.python.trackable import trackable_utils

    keys: dict[str, Any] = {}
    seen = {id(loaded)}
    queue: list[tuple[Any, str]] = [(loaded, "")]
    while queue:
        obj, path = queue.pop(0)
        children = getattr(obj, "_trackable_children", None)
        if children is None:
            continue
        try:
            items = children(save_type="checkpoint")
        except Exception:  # noqa: BLE001 - a restored object without children
            continue
        for local, child in items.items():
            child_path = f"{path}/{trackable_utils.escape_local_name(local)}".lstrip("/")
            if isinstance(child, tf.Variable):
                keys.setdefault(trackable_utils.checkpoint_key(child_path, "VARIABLE_VALUE"), child)
            elif id(child) not in seen:
                seen.add(id(child))
                queue.append((child, child_path))
    return keys


def _tensor_spec_shape(info: Any) -> tuple:
    if info.tensor_shape.unknown_rank:
        return ()
    return tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)


class SavedModelExecutable(_Executable):
    """A SavedModel loaded with ``tf.saved_model.load`` and run through one signature.

    Parameters
    ----------
    folder:
        The SavedModel folder.
    signature:
        Signature key; default ``serving_default`` (or the only signature).
    output:
        Evaluate only this output key of the signature.
    trust:
        Skip the op scan of :func:`~weightlab.engine.graph_safety.check_saved_model`.

    Raises
    ------
    EngineError
        For an op that is not on the allowlist (untrusted), an unknown
        signature or output, a signature with several inputs, or a SavedModel TensorFlow cannot load.
    FormatError
        When ``saved_model.pb`` or the variables cannot be read.
    """

    def __init__(self, folder: str, signature: str | None, output: str | None, trust: bool):
        sm = tfio._load_saved_model_proto(Path(folder))
        metas = [m for m in sm.meta_graphs if "serve" in m.meta_info_def.tags] or list(sm.meta_graphs)
        meta = metas[0]
        if not trust:
            check_saved_model(meta, folder)  # before TensorFlow sees the graph
        self.node_ops = _node_ops(meta.graph_def)
        self.signatures = sorted(k for k in meta.signature_def if not k.startswith("__"))
        if not self.signatures:
            raise EngineError("the SavedModel has no signature to evaluate", folder)
        if signature is None:
            if "serving_default" in self.signatures:
                signature = "serving_default"
            elif len(self.signatures) == 1:
                signature = self.signatures[0]
            else:
                raise EngineError(f"choose a signature (--signature): it has {self.signatures}", folder)
        if signature not in self.signatures:
            raise EngineError(
                f"the SavedModel has no signature {signature!r}; it has {self.signatures}", folder
            )
        sdef = meta.signature_def[signature]
        if len(sdef.inputs) != 1:
            raise EngineError(
                f"signature {signature!r} has {len(sdef.inputs)} inputs {sorted(sdef.inputs)}; "
                "only one-input signatures can be evaluated",
                folder,
            )
        ((self._input_key, info),) = sdef.inputs.items()
        self.input_shape = _tensor_spec_shape(info)
        self.input_dtype = np.dtype(tf.as_dtype(info.dtype).as_numpy_dtype)
        self.signature = signature
        self.output_names = _choose_output(sorted(sdef.outputs), output, f"signature {signature!r}", folder)
        self.output_shapes = [_tensor_spec_shape(sdef.outputs[k]) for k in self.output_names]
        first = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = first
        try:
            loaded = tf.saved_model.load(folder, tags=list(meta.meta_info_def.tags))
        except Exception as exc:  # TF raises many kinds
            raise EngineError(
                f"TensorFlow cannot load this SavedModel ({tfio._tf_message(exc)})", folder
            ) from exc
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[signature]
        listing = tfio.list_saved_model(folder)
        by_key = _saved_model_variables(loaded)
        self.tmap = TensorMap()
        for layer in listing["layers"]:
            for t in layer["tensors"]:
                var = by_key.get(t["key"])
                if var is None:
                    var = next((by_key[k] for k in listing["aliases"].get(t["key"], []) if k in by_key), None)
                if var is not None and tuple(var.shape) == tuple(t["shape"]):
                    self.tmap.variables[t["name"]] = var
                else:
                    self.tmap.unmapped.append(t["name"])

    def run(self, xb: np.ndarray) -> list[np.ndarray]:
        """The chosen outputs of the signature for one batch."""
        out = self._fn(**{self._input_key: tf.constant(xb)})
        return [out[k].numpy() for k in self.output_names]


def _graph_io(graph_def: Any) -> tuple[list[str], list[str]]:
    """``(placeholders, sinks)``: input candidates and output candidates of a frozen graph.

    Sinks are nodes no other node consumes (data or control), that are no
    Const/Placeholder/NoOp, sorted with ``Softmax`` first, then ``Identity``.
    """
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    placeholders = [n.name for n in graph_def.node if n.op in ("Placeholder", "PlaceholderV2")]
    sinks = [
        n
        for n in graph_def.node
        if n.name not in consumed and n.op not in ("Const", "Placeholder", "PlaceholderV2", "NoOp")
    ]
    rank = {"Softmax": 0, "Identity": 1}
    sinks.sort(key=lambda n: rank.get(n.op, 2))
    return placeholders, [n.name for n in sinks]


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


class GraphDefExecutable(_Executable):
    """A frozen GraphDef imported into a fresh graph and run in a session, edited Consts fed.

    Parameters
    ----------
    path:
        The ``.pb`` file.
    input, output:
        Tensor or node names (``"x"``, ``"x:0"``); None finds them (see the
        module docstring).
    trust:
        Skip :func:`~weightlab.engine.graph_safety.check_graph_def`.

    Raises
    ------
    EngineError
        When the input or output cannot be found or chosen unambiguously, an
        op that is not on the allowlist feeds the output (untrusted), or
        TensorFlow cannot import the graph.
    """

    def __init__(self, path: str, input: str | None, output: str | None, trust: bool):  # noqa: A002 - the CLI's --input
        gd = tfio._graph(path)
        placeholders, sinks = _graph_io(gd)
        if input is None:
            if len(placeholders) != 1:
                raise EngineError(
                    f"choose the input (--input): the graph has {len(placeholders)} placeholders "
                    f"{placeholders[:10]}",
                    path,
                )
            input = placeholders[0]  # noqa: A001 - the CLI's --input
        if output is None:
            top = [s for s in sinks if sinks and _op(gd, s) == _op(gd, sinks[0])] if sinks else []
            if len(top) != 1:
                raise EngineError(f"choose the output (--output): the graph ends in {sinks[:10]}", path)
            output = top[0]
        in_name, out_name = _tensor_name(input), _tensor_name(output)
        nodes = {n.name: n for n in gd.node}
        for what, name in (("input", in_name), ("output", out_name)):
            if name.split(":")[0] not in nodes:
                raise EngineError(f"the graph has no {what} node {name.split(':')[0]!r}", path)
        if not trust:
            check_graph_def(gd, [out_name], path)  # before TensorFlow sees the graph
        self.node_ops = _node_ops(gd)
        self.graph = tf.Graph()
        try:
            with self.graph.as_default():
                tf.graph_util.import_graph_def(gd, name="")
            self._in = self.graph.get_tensor_by_name(in_name)
            self._out = self.graph.get_tensor_by_name(out_name)
        except Exception as exc:  # TF raises many kinds
            raise EngineError(
                f"TensorFlow cannot import this graph ({tfio._tf_message(exc)})", path
            ) from exc
        self._session = tf.compat.v1.Session(graph=self.graph)
        shape = self._in.shape
        self.input_shape = tuple(shape.as_list()) if shape.rank is not None else ()
        self.input_dtype = np.dtype(self._in.dtype.as_numpy_dtype)
        self.fixed_batch = self.input_shape[0] if self.input_shape else None
        self.output_names = [out_name]
        self.output_shapes = [tuple(self._out.shape.as_list()) if self._out.shape.rank is not None else None]
        self._path = path
        self._feeds: dict[Any, np.ndarray] = {}
        self._keys: dict[str, str] = {}
        self.tmap = TensorMap()
        for layer in tfio.list_graphdef(path)["layers"]:
            for t in layer["tensors"]:
                if "::" in t["key"]:  # a Const inside a library function cannot be fed
                    self.tmap.unmapped.append(t["name"])
                    continue
                self._keys[t["name"]] = t["key"]
                self.tmap.variables[t["name"]] = _Slot(t["shape"], t["dtype"])

    def value(self, name: str) -> np.ndarray:
        """The file's values of Const ``name`` (edits are fed, never written into the graph)."""
        return tfio.read_tensor("graphdef", self._path, self._keys[name])

    def assign(self, name: str, values: np.ndarray | None) -> None:
        """Feed ``values`` for Const ``name`` from now on; None: use the file's value again."""
        tensor = self.graph.get_tensor_by_name(_tensor_name(self._keys[name]))
        if values is None:
            self._feeds.pop(tensor, None)
        else:
            self._feeds[tensor] = values

    def run(self, xb: np.ndarray) -> list[np.ndarray]:
        """The output of one batch."""
        return [self._session.run(self._out, {self._in: xb, **self._feeds})]

    def close(self) -> None:
        """Release the TensorFlow session."""
        self._session.close()


def _op(graph_def: Any, name: str) -> str:
    return next(n.op for n in graph_def.node if n.name == name)


def _node_ops(graph_def: Any) -> dict[str, str]:
    """Node name -> op type, for the graph's nodes, then its library functions' (first one wins)."""
    ops = {n.name: n.op for n in graph_def.node}
    for fn in graph_def.library.function:
        for n in fn.node_def:
            ops.setdefault(n.name, n.op)
    return ops


# -- run-time failures ------------------------------------------------------------------------
#: Exceptions TensorFlow raises while running a graph or a model on a batch.
_RUN_ERRORS: tuple[type[BaseException], ...] = (tf.errors.OpError, ValueError, TypeError)



def _op_of(node: str, node_ops: Mapping[str, str]) -> str | None:
    """The op type of ``node``, also when TensorFlow prefixed it with its callers' names (``a/b/MatMul``)."""
    parts = node.split("/")
    return next((node_ops["/".join(parts[i:])] for i in range(len(parts)) if "/".join(parts[i:]) in node_ops), None)


def run_failure(
    exc: BaseException, shown: Any, *, first: int, count: int, batch_shape: tuple[int, ...],
    node_ops: Mapping[str, str] | None = None,
) -> EngineError:  # fmt: skip
    """The :class:`EngineError` for a model that failed while evaluating samples ``first .. first+count-1``.

    Parameters
    ----------
    exc:
        What TensorFlow raised (usually a ``tf.errors.OpError``).
    shown:
        The model file, named in the error.
    first, count:
        The held-out samples of the failing batch.
    batch_shape:
        The shape of the input batch fed (padding included).
    node_ops:
        Node name -> op type of the graph, to name the failing op.

    Returns
    -------
    EngineError
        ``"evaluation failed at node 'Reshape' (op Reshape) on held-out samples
        0-99 (input batch of shape (100, 4)): InvalidArgumentError: Input to
        reshape is a tensor with 400 values, but the requested shape requires a
        multiple of 3"``.
    """
    reason, node = run_reason(exc)
    op = getattr(getattr(exc, "node_def", None), "op", None) or (
        _op_of(node, node_ops or {}) if node else None
    )
    where = ""
    if node:
        where = f" at node {node!r}" + (f" (op {op})" if op else "")
    samples = f"sample {first}" if count == 1 else f"samples {first}-{first + count - 1}"
    kind = type(exc).__name__
    return EngineError(
        f"evaluation failed{where} on held-out {samples} (input batch of shape {tuple(batch_shape)}): "
        f"{kind}: {reason}",
        shown,
    )


# -- a session of full passes ----------------------------------------------------------------
class PassSession:
    """A model evaluated by full passes, batch by batch, with the interface of ``EngineSession``.

    Parameters
    ----------
    exe:
        The executable model (:class:`SavedModelExecutable`,
        :class:`GraphDefExecutable`, :class:`KerasExecutable`).
    batch_size:
        Samples per pass; None: the model's fixed batch size or
        :data:`DEFAULT_BATCH`.
    model_path:
        The model, named in errors.
    """

    def __init__(self, exe: _Executable, *, batch_size: int | None = None, model_path: Any = None):
        self.exe = exe
        self.tmap = exe.tmap
        self.input_shape = exe.input_shape
        self.output_names = list(exe.output_names)
        self.signatures = list(getattr(exe, "signatures", []))
        self.model_path = model_path
        self._scored: int | None = None
        self.num_classes = 0
        if len(exe.output_names) == 1:
            shape = exe.output_shapes[0]
            if shape is not None and len(shape) == 2 and shape[1] is not None and shape[1] >= 2:
                self._scored, self.num_classes = 0, int(shape[1])
        requested = None if batch_size is None else max(1, int(batch_size))
        self._batch = exe.fixed_batch or requested or DEFAULT_BATCH
        self._originals: dict[str, np.ndarray] = {}
        self._edited: dict[str, np.ndarray] = {}
        self._sources: dict[str, int | None] = {}  # name -> the caller's version assigned last
        self._agreement = Agreement()
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self.batch_size = 0

    @property
    def num_samples(self) -> int:
        """Samples in the held-out set (0 before one is set)."""
        return 0 if self._x is None else int(self._x.shape[0])

    @property
    def labelled(self) -> bool:
        """True when accuracy is computed (labels and one scored output)."""
        return self._y is not None

    def set_heldout(self, x: np.ndarray, y: np.ndarray | None, data_path: Any = None) -> None:
        """Use ``(x, y)`` as the held-out set (``y`` None: unlabelled); forgets the baseline outputs.

        Labels are ignored when no output is scored (several outputs and none
        chosen, or an output that is no ``(N, C)`` class-score matrix).

        Raises
        ------
        DataError
            When ``x`` does not fit the model's input, the set is empty, or a
            label is outside the scored output's classes.
        """
        if self.input_shape:
            x = conform_inputs(np.asarray(x), self.input_shape, data_path)
        n = int(np.asarray(x).shape[0])
        if n == 0:
            raise DataError("the held-out set is empty", data_path)
        if y is not None and self._scored is not None:
            y = check_labels(y, n, self.num_classes, data_path)
        else:
            y = None
        self._x = np.asarray(x).astype(self.exe.input_dtype, copy=False)
        self._y = y
        self.batch_size = min(self._batch, n) if self.exe.fixed_batch is None else self._batch
        self._agreement.reset()

    def _assign(self, edited: Mapping[str, np.ndarray], versions: Mapping[str, int] | None = None) -> None:
        """As :meth:`weightlab._tf.session.EngineSession._assign`: unchanged versions are skipped."""
        ready = prepare_arrays(self.tmap, edited)  # raises before anything is assigned
        for name, a in ready.items():
            source = None if versions is None else versions.get(name)
            old = self._edited.get(name)
            if source is not None and old is not None and self._sources.get(name) == source:
                continue
            if source is None and old is not None and old.dtype == a.dtype and np.array_equal(old, a):
                continue
            if name not in self._originals:
                self._originals[name] = self.exe.value(name)
            self.exe.assign(name, a)
            self._edited[name] = a
            self._sources[name] = source
        for name in [n for n in self._edited if n not in ready]:
            self.exe.assign(name, self._originals[name])
            del self._edited[name]
            self._sources.pop(name, None)

    def _batches(self) -> list[np.ndarray]:
        assert self._x is not None
        b, x = self.batch_size, self._x
        out = []
        for lo in range(0, x.shape[0], b):
            xb = x[lo : lo + b]
            if self.exe.fixed_batch is not None and xb.shape[0] < b:
                xb = np.concatenate([xb, np.zeros((b - xb.shape[0],) + xb.shape[1:], xb.dtype)])
            out.append(xb)
        return out

    def evaluate(
        self,
        edited: Mapping[str, np.ndarray] | None = None,
        *,
        versions: Mapping[str, int] | None = None,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Metrics:
        """Evaluate with ``edited`` tensors (canonical name -> values) and the file's values elsewhere.

        As :meth:`weightlab._tf.session.EngineSession.evaluate`, always a
        full pass (``mode="full"``).

        Raises
        ------
        EngineError
            When no held-out set is set, an edited tensor is unknown or has
            the wrong shape or dtype (nothing is assigned then), or the model
            fails while running (:func:`run_failure`: the node, its op, the
            samples and TensorFlow's reason).
        EvaluationCancelled
            When ``should_stop()`` returned True.
        """
        t0 = time.perf_counter()
        if self._x is None:
            raise EngineError("no held-out set: load one before evaluating")
        self._assign(edited or {}, versions)
        scorer = PassScorer(self._y, self.num_classes, self.num_samples)
        batches = self._batches()
        for b, xb in enumerate(batches):
            if should_stop is not None and should_stop():
                raise EvaluationCancelled()
            try:
                outs = self.exe.run(xb)
            except _RUN_ERRORS as exc:
                first = b * self.batch_size
                raise run_failure(
                    exc,
                    self.model_path,
                    first=first,
                    count=min(self.batch_size, self.num_samples - first),
                    batch_shape=xb.shape,
                    node_ops=self.exe.node_ops,
                ) from exc
            scores = outs[self._scored] if self._scored is not None else None
            scorer.add(outs, scores, False)
            if progress is not None:
                progress(b + 1, len(batches), scorer.samples, scorer.hits)
        return scorer.metrics(
            self._agreement,
            is_baseline=not self._edited,
            outputs=self.output_names,
            seconds=time.perf_counter() - t0,
            device=device_name(),
            mode="full",
            batch_size=self.batch_size,
        )


# -- opening ------------------------------------------------------------------------------------
def _keras_session(model: keras.Model, layout: Layout, output: str | None, shown: Any, **options: Any) -> Any:
    """An incremental EngineSession for a one-output model, a PassSession otherwise."""
    if len(model.outputs) == 1 and output is None:
        options.setdefault("order_fallback", False)
        return EngineSession(model, layout, model_path=shown, **options)
    tmap = map_tensors(model, layout, order_fallback=options.get("order_fallback", False))
    return PassSession(
        KerasExecutable(model, tmap, output, shown), batch_size=options.get("batch_size"), model_path=shown
    )


def checkpoint_session(
    prefix: str, architecture: str | os.PathLike[str], *, trust: bool = False, output: str | None = None,
    **options: Any,
) -> Any:  # fmt: skip
    """A session on the architecture in ``architecture`` holding the checkpoint's values.

    Parameters
    ----------
    prefix:
        The checkpoint prefix.
    architecture:
        A Keras ``.keras``/``.h5`` model file (built with
        :func:`~weightlab._tf.model.build_model`).
    trust, output, options:
        As for :func:`open_session`.

    Raises
    ------
    EngineError
        When no checkpoint variable fits the architecture, or the architecture
        cannot be built.
    """
    shown = prefix + ".index"
    model = build_model(architecture, trust=trust)
    listing = tfio.list_checkpoint(prefix)
    tensors = {
        t["name"]: t
        for layer in listing["layers"]
        if layer["name"] != tfio.OPTIMIZER_LAYER
        for t in layer["tensors"]
    }
    layout = [
        (layer["name"], [(t["name"], tuple(t["shape"])) for t in layer["tensors"]])
        for layer in listing["layers"]
        if layer["name"] != tfio.OPTIMIZER_LAYER
    ]
    session = _keras_session(model, layout, output, shown, order_fallback=True, **options)
    if not session.tmap.variables:
        raise EngineError(
            f"none of the checkpoint's {len(tensors)} tensors fits the architecture {os.fspath(architecture)}",
            shown,
        )
    values = {n: tfio.read_tensor("checkpoint", prefix, tensors[n]["key"]) for n in session.tmap.variables}
    for name, arr in prepare_arrays(session.tmap, values).items():
        session.tmap.variables[name].assign(arr)
    return session


def open_session(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str] | None = None,
    *,
    trust: bool = False,
    architecture: str | os.PathLike[str] | None = None,
    signature: str | None = None,
    output: str | None = None,
    input: str | None = None,  # noqa: A002 - the CLI's --input
    layout: Layout | None = None,
    **options: Any,
) -> Any:
    """Open any evaluable model file and (optionally) its held-out set.

    Parameters
    ----------
    model_path:
        A ``.keras``/``.h5`` file, a SavedModel folder (or its
        ``saved_model.pb``), a checkpoint (prefix, ``.index`` or folder), or a
        frozen GraphDef ``.pb``.
    data_path:
        Held-out ``.npz``; None to load one later.
    trust:
        Allow code in the file: Lambda layers and custom objects (Keras),
        graph ops outside the allowlist (SavedModel, GraphDef; see
        :mod:`weightlab.engine.graph_safety`).
    architecture:
        For a checkpoint: the Keras model file giving its architecture.
    signature:
        For a SavedModel: the signature (default ``serving_default``).
    output:
        The output to evaluate: a signature's output key, a graph's output
        tensor, a Keras model's output name.
    input:
        For a frozen graph: the input tensor.
    layout:
        For Keras files: the file's tensor listing (default: read it).
    options:
        ``batch_size``, and for Keras one-output models ``cache_budget`` and
        ``jit_compile`` (see :class:`~weightlab._tf.session.EngineSession`).

    Returns
    -------
    EngineSession or PassSession

    Raises
    ------
    EngineError
        The message names the file: an option that does not apply to the
        format, a checkpoint without architecture, an unsafe file, a model
        that cannot be built.
    DataError, FormatError
        For the held-out set or an unreadable file.
    """
    p = Path(model_path)
    kind, location = evaluation_kind(p, architecture=architecture, signature=signature, input=input)
    batch = options.get("batch_size")
    if kind == "savedmodel":
        session: Any = PassSession(
            SavedModelExecutable(location, signature, output, trust), batch_size=batch, model_path=p
        )
    elif kind == "graphdef":
        session = PassSession(
            GraphDefExecutable(location, input, output, trust), batch_size=batch, model_path=p
        )
    elif kind == "checkpoint":
        assert architecture is not None
        session = checkpoint_session(location, architecture, trust=trust, output=output, **options)
    else:
        model = build_model(p, trust=trust)
        if layout is None:
            layout = file_layout(p) or model_layout(model)
        session = _keras_session(model, layout, output, p, **options)
    if data_path is not None:
        data = load_heldout(data_path)
        session.set_heldout(data.x, data.y, data_path)
    return session

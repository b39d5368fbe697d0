"""Which TensorFlow graph ops may run when WeightLab evaluates a SavedModel or a frozen GraphDef.

Running a graph runs whatever ops the file author put in it. Most ops only
compute on tensors, but some reach outside the model: they read or write
files, call back into Python, talk to the network or drive accelerators of
another host. TensorFlow says so itself: its ``SECURITY.md`` ("TensorFlow
models are programs") asks users to treat a model as untrusted code, citing
exactly ``tf.io.write_file``/``tf.io.read_file`` and ``tf.py_function``.

This module inspects the graph as protocol buffers (it imports no TensorFlow)
*before* :func:`tf.saved_model.load` or :func:`tf.graph_util.import_graph_def`
is called, and refuses the file, naming the op and where it is, unless the user
trusts the file. Every op is checked against :data:`UNSAFE_OPS`,
:data:`UNSAFE_SUBSTRINGS` and :func:`unsafe_reason`: the main graph's nodes
and the nodes of every function of the function library the scan reaches
(through ``PartitionedCall``/``If``/``While``... attributes of type ``func``,
and ops named after a library function).

What is scanned
---------------
GraphDef
    Only the nodes the chosen outputs depend on (through data and control
    inputs) and the functions they call: a ``tf.compat.v1.Session`` runs only
    that subgraph, and importing a graph runs nothing.
SavedModel
    Every node and every library function, except the SavedModel's own
    *saver*: the nodes the ``SaverDef`` names (``save_tensor_name``,
    ``restore_op_name``), the nodes they depend on, and the functions called
    only from there (``__inference__traced_save_N`` /
    ``__inference__traced_restore_N`` in TF2 exports). Inside the saver,
    checkpoint I/O (:data:`CHECKPOINT_IO_OPS`) is allowed: ``tf.saved_model.load``
    never runs the TF2 saver (it restores variables with ops it builds
    itself), and for TF1 SavedModels it runs only the restore op, which it
    feeds with the SavedModel's own ``variables/`` path. Every other unsafe op
    is refused there too. Scanning everything else, rather than only what the
    chosen signature reaches, is deliberate: loading a SavedModel may run
    functions no signature calls (resource and table initializers,
    ``saveable`` restore functions, a TF1 ``main_op``), and a refused file can
    still be trusted explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ..core.errors import EngineError

__all__ = [
    "CHECKPOINT_IO_OPS",
    "UNSAFE_OPS",
    "UNSAFE_SUBSTRINGS",
    "check_graph_def",
    "check_saved_model",
    "unsafe_reason",
]

#: Checkpoint reading and writing (files named by a tensor); allowed only in a SavedModel's saver.
CHECKPOINT_IO_OPS: dict[str, str] = {
    op: "reads or writes checkpoint files"
    for op in (
        "Save",
        "SaveV2",
        "SaveSlices",
        "Restore",
        "RestoreV2",
        "RestoreSlice",
        "MergeV2Checkpoints",
    )
}

#: Op type -> why it reaches outside the model. Sources: TensorFlow's SECURITY.md
#: (file I/O and Python callbacks), the op registry (``tf.raw_ops``) for the
#: file-, summary-, debugger-, dataset- and network-touching kernels.
UNSAFE_OPS: dict[str, str] = {
    **CHECKPOINT_IO_OPS,
    # Python callbacks: arbitrary Python code of the writer's process, not in the file.
    "PyFunc": "calls a Python function (tf.numpy_function / tf.py_func)",
    "PyFuncStateless": "calls a Python function (tf.numpy_function / tf.py_func)",
    "EagerPyFunc": "calls a Python function (tf.py_function)",
    # Files (tf.io and the TF1 readers).
    "ReadFile": "reads a file (tf.io.read_file)",
    "WriteFile": "writes a file (tf.io.write_file)",
    "MatchingFiles": "lists files (tf.io.matching_files)",
    "ImmutableConst": "memory-maps a file",
    "InitializeTableFromTextFile": "reads a file into a lookup table",
    "InitializeTableFromTextFileV2": "reads a file into a lookup table",
    "LoadAndRemapMatrix": "reads a checkpoint file",
    "GenerateVocabRemapping": "reads vocabulary files",
    "DecodeProtoV2": "may read a protobuf descriptor file",
    "EncodeProto": "may read a protobuf descriptor file",
    "WholeFileReader": "reads files (TF1 reader)",
    "WholeFileReaderV2": "reads files (TF1 reader)",
    "TextLineReader": "reads files (TF1 reader)",
    "TextLineReaderV2": "reads files (TF1 reader)",
    "TFRecordReader": "reads files (TF1 reader)",
    "TFRecordReaderV2": "reads files (TF1 reader)",
    "FixedLengthRecordReader": "reads files (TF1 reader)",
    "FixedLengthRecordReaderV2": "reads files (TF1 reader)",
    "LMDBReader": "reads files (TF1 reader)",
    # Datasets that read or write files.
    "TFRecordDataset": "reads files (dataset)",
    "TFRecordDatasetV2": "reads files (dataset)",
    "TextLineDataset": "reads files (dataset)",
    "FixedLengthRecordDataset": "reads files (dataset)",
    "FixedLengthRecordDatasetV2": "reads files (dataset)",
    "CSVDataset": "reads files (dataset)",
    "CSVDatasetV2": "reads files (dataset)",
    "ExperimentalCSVDataset": "reads files (dataset)",
    "LMDBDataset": "reads files (dataset)",
    "ExperimentalLMDBDataset": "reads files (dataset)",
    "SqlDataset": "opens a database (dataset)",
    "ExperimentalSqlDataset": "opens a database (dataset)",
    "SaveDataset": "writes files (dataset)",
    "SaveDatasetV2": "writes files (dataset)",
    "LoadDataset": "reads files (dataset)",
    "SnapshotDataset": "reads and writes files (dataset)",
    "SnapshotDatasetV2": "reads and writes files (dataset)",
    "CacheDataset": "may write a cache file (dataset)",
    "CacheDatasetV2": "may write a cache file (dataset)",
    "DatasetToTFRecord": "writes files (dataset)",
    "ExperimentalDatasetToTFRecord": "writes files (dataset)",
    # Summaries and the debugger: they write event files or send tensors elsewhere.
    "CreateSummaryFileWriter": "writes summary files",
    "CreateSummaryDbWriter": "writes a summary database",
    "WriteSummary": "writes summary files",
    "WriteRawProtoSummary": "writes summary files",
    "WriteScalarSummary": "writes summary files",
    "WriteHistogramSummary": "writes summary files",
    "WriteImageSummary": "writes summary files",
    "WriteAudioSummary": "writes summary files",
    "WriteGraphSummary": "writes summary files",
    "ImportEvent": "writes summary files",
    "DebugIdentity": "sends tensors to a debugger (file or gRPC URL)",
    "DebugIdentityV2": "sends tensors to a debugger (file or gRPC URL)",
    "DebugIdentityV3": "sends tensors to a debugger (file or gRPC URL)",
    "DebugNanCount": "sends tensors to a debugger (file or gRPC URL)",
    "DebugNumericSummary": "sends tensors to a debugger (file or gRPC URL)",
    "DebugNumericSummaryV2": "sends tensors to a debugger (file or gRPC URL)",
    # Network and other hosts.
    "DataServiceDataset": "talks to a tf.data service over the network",
    "DataServiceDatasetV2": "talks to a tf.data service over the network",
    "DataServiceDatasetV3": "talks to a tf.data service over the network",
    "DataServiceDatasetV4": "talks to a tf.data service over the network",
    "RegisterDataset": "talks to a tf.data service over the network",
    "RegisterDatasetV2": "talks to a tf.data service over the network",
    "BigQueryReader": "talks to BigQuery over the network",
    "GenerateBigQueryReaderPartitions": "talks to BigQuery over the network",
    "GcsConfigureCredentials": "configures cloud credentials",
    "GcsConfigureBlockCache": "configures cloud storage",
    # Accelerators of this or another host.
    "ExecuteTPU": "runs a TPU program",
    "TPUExecute": "runs a TPU program",
    "TPUExecuteAndUpdateVariables": "runs a TPU program",
    "TPUPartitionedCall": "runs a TPU program",
    "ConfigureDistributedTPU": "configures TPU hosts",
    "ShutdownDistributedTPU": "configures TPU hosts",
}

#: Op-type fragments that mark network, RPC or TPU-execution ops not listed by name.
UNSAFE_SUBSTRINGS: dict[str, str] = {
    "Socket": "opens a network socket",
    "Rpc": "makes a remote procedure call",
    "Http": "makes an HTTP request",
    "TPUCompile": "compiles a TPU program",
    "TPUExecute": "runs a TPU program",
}


def unsafe_reason(node: Any, *, allow_checkpoint_io: bool = False) -> str | None:
    """Why the op of ``node`` (a ``NodeDef``) reaches outside the model, or None when it does not.

    ``PrintV2`` is unsafe only when its ``output_stream`` is a file
    (``file://...``); printing to stderr/stdout/the log is harmless. With
    ``allow_checkpoint_io`` the :data:`CHECKPOINT_IO_OPS` pass.
    """
    op = node.op
    if allow_checkpoint_io and op in CHECKPOINT_IO_OPS:
        return None
    if op in UNSAFE_OPS:
        return UNSAFE_OPS[op]
    for part, why in UNSAFE_SUBSTRINGS.items():
        if part in op:
            return why
    if op == "PrintV2" and "output_stream" in node.attr:
        stream = node.attr["output_stream"].s.decode("utf-8", "replace")
        if stream.startswith("file://"):
            return f"prints to a file ({stream})"
    return None


def _called(node: Any, functions: dict[str, Any]) -> list[str]:
    """Names of library functions ``node`` calls: its op, and ``func``/``list(func)`` attributes."""
    out = [node.op] if node.op in functions else []
    for value in node.attr.values():
        if value.HasField("func"):
            out.append(value.func.name)
        elif value.HasField("list"):
            out += [f.name for f in value.list.func]
    return [name for name in out if name in functions]


def _producers(names: Iterable[str]) -> list[str]:
    """Node names of input references (``"a:1"``, ``"^b"`` -> ``"a"``, ``"b"``)."""
    return [name.lstrip("^").split(":")[0] for name in names]


def _closure(roots: Iterable[str], nodes: dict[str, Any]) -> set[str]:
    """The nodes ``roots`` depend on (themselves included), through data and control inputs."""
    seen: set[str] = set()
    stack = [r for r in roots if r in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [p for p in _producers(nodes[name].input) if p in nodes and p not in seen]
    return seen


def _function_closure(names: Iterable[str], functions: dict[str, Any]) -> set[str]:
    """Functions ``names`` and every function they call, transitively."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            stack += _called(node, functions)
    return seen


def _refuse(where: str, node: Any, why: str, shown: str | os.PathLike[str] | None) -> EngineError:
    return EngineError(
        f"the graph reaches outside the model: op {node.op} ({why}) in {where}; evaluation runs the "
        "graph, so it is off unless you trust the file",
        shown,
    )


def _scan(
    nodes: Iterable[Any],
    where: str,
    shown: str | os.PathLike[str] | None,
    allow_checkpoint_io: bool = False,
) -> None:
    for node in nodes:
        why = unsafe_reason(node, allow_checkpoint_io=allow_checkpoint_io)
        if why is not None:
            raise _refuse(f"{where}, node {node.name!r}", node, why, shown)


def check_graph_def(
    graph_def: Any, outputs: Iterable[str], shown: str | os.PathLike[str] | None = None
) -> None:
    """Refuse a frozen graph whose ``outputs`` depend on an unsafe op.

    Parameters
    ----------
    graph_def:
        A ``tf.compat.v1.GraphDef`` (parsed, not imported).
    outputs:
        Tensor or node names the evaluation fetches (``"y:0"``, ``"y"``).
    shown:
        The file named in the error.

    Raises
    ------
    EngineError
        Naming the op, what it does and the node (and function) holding it.
    """
    nodes = {n.name: n for n in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    needed = _closure(_producers(outputs), nodes)
    ordered = [n for n in graph_def.node if n.name in needed]
    _scan(ordered, "the graph", shown)
    called = _function_closure((f for n in ordered for f in _called(n, functions)), functions)
    for name in sorted(called):
        _scan(functions[name].node_def, f"function {name!r}", shown)


def check_saved_model(meta_graph: Any, shown: str | os.PathLike[str] | None = None) -> None:
    """Refuse a SavedModel MetaGraph holding an unsafe op outside its own saver.

    See the module docstring for what is scanned and why.

    Parameters
    ----------
    meta_graph:
        The ``MetaGraphDef`` that will be loaded (parsed from ``saved_model.pb``).
    shown:
        The folder named in the error.

    Raises
    ------
    EngineError
        Naming the op, what it does and the node (and function) holding it.
    """
    graph_def = meta_graph.graph_def
    nodes = {n.name: n for n in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    saver = meta_graph.saver_def
    saver_roots = [name for name in (saver.save_tensor_name, saver.restore_op_name) if name]
    saver_nodes = _closure(_producers(saver_roots), nodes)
    other_nodes = [n for n in graph_def.node if n.name not in saver_nodes]
    called_anywhere = {f for n in graph_def.node for f in _called(n, functions)}
    called_anywhere |= {f for fn in functions.values() for n in fn.node_def for f in _called(n, functions)}
    orphans = [name for name in functions if name not in called_anywhere]
    reached_otherwise = _function_closure(
        [f for n in other_nodes for f in _called(n, functions)] + orphans, functions
    )
    saver_only = (
        _function_closure(
            (f for n in graph_def.node if n.name in saver_nodes for f in _called(n, functions)), functions
        )
        - reached_otherwise
    )
    strict = set(functions) - saver_only
    _scan(other_nodes, "the graph", shown)
    _scan((n for n in graph_def.node if n.name in saver_nodes), "the saver", shown, allow_checkpoint_io=True)
    for name in sorted(strict):
        _scan(functions[name].node_def, f"function {name!r}", shown)
    for name in sorted(saver_only):
        _scan(functions[name].node_def, f"saver function {name!r}", shown, allow_checkpoint_io=True)

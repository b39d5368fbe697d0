"""The op allowlist for running graphs, and graph run-time failures as one clean error.

* Every op in the installed TensorFlow's registry is classified exactly once
  (allowed, or denied with a reason), so an upgrade cannot widen what runs.
* Graphs reaching files (``RecordInput``, snapshot and file-matching datasets,
  ...) are refused without trust, naming the op and where it is: a node of the
  graph, a node of a library function, a function-valued attribute, a gradient
  function. With trust they run (and their result depends on the file read).
* Real Keras 2 SavedModels (convolution, batch norm, GRU/LSTM with their cuDNN
  variants, lookup tables) still pass the scan and evaluate as TensorFlow does.
* A graph that fails while running gives one ``EngineError`` naming the file,
  node, op and TensorFlow's reason; through the CLI one line and exit 2.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from weightlab.core.errors import EngineError

tf = pytest.importorskip("tensorflow")
tf_eval = pytest.importorskip("weightlab._tf.passes")  # the engine's own imports (TF, Keras)

from weightlab.engine import graph_safety as gs  # noqa: E402

#: The file-reaching ops issue 9 found unlisted by the old blocklist.
FILE_OPS = (
    "RecordInput",
    "SnapshotChunkDataset",
    "SnapshotDatasetReader",
    "SnapshotNestedDatasetReader",
    "ListSnapshotChunksDataset",
    "MatchingFilesDataset",
    "ExperimentalMatchingFilesDataset",
    "DistributedSave",
    "FileSystemSetConfiguration",
    "StatsAggregatorSetSummaryWriter",
)
W = np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 0.5], [0.0, 0.0]], np.float32)


# -- the registry ---------------------------------------------------------------------------------
def _registered_ops() -> set[str]:
    """Every op registered in this process (what a GraphDef may name), test and internal ops included."""
    from tensorflow.python.framework import c_api_util

    return set(c_api_util.ApiDefMap().op_names())


def test_every_registered_op_is_allowed_or_denied_never_both():
    ops = _registered_ops()
    raw = {name for name in dir(tf.raw_ops) if not name.startswith("_")}
    assert len(ops) > 1000 and raw <= ops  # the full registry, not only the Python wrappers
    unclassified = sorted(op for op in ops if gs.classify(op) is None)
    assert not unclassified, (
        f"{len(unclassified)} ops of TensorFlow {tf.__version__} are not classified: add each to "
        f"graph_safety.ALLOWED_GROUPS (pure computation) or to its denied table: {unclassified}"
    )
    both = sorted(op for op in gs.ALLOWED_OPS if gs.denied_reason(op) is not None)
    assert not both, f"allowed and denied at once: {both}"


def test_the_classification_keeps_its_promises():
    allowed = {op for op in _registered_ops() if op in gs.ALLOWED_OPS}
    # What evaluation needs: variables, restore in a saver, calls, control flow, pure math.
    for op in (
        "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "Placeholder", "Const", "Identity", "NoOp",
        "StatefulPartitionedCall", "PartitionedCall", "If", "StatelessIf", "While", "StatelessWhile",
        "MatMul", "Conv2D", "FusedBatchNormV3", "Softmax", "CudnnRNNV3", "TensorListReserve",
        "RandomUniform", "StatelessRandomUniformV2", "HashTableV2", "LookupTableFindV2", "ResizeBilinear",
    ):  # fmt: skip
        assert op in allowed, op
    # Nothing that reaches files, Python, the network, other devices, or stalls the process.
    for op in (
        *FILE_OPS, *gs.CHECKPOINT_IO_OPS, "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
        "PyFunc", "EagerPyFunc", "PrintV2", "TFRecordDataset", "IteratorGetNext", "WriteScalarSummary",
        "FIFOQueueV2", "TFRecordReaderV2", "CollectiveReduceV2", "TPUExecute", "XlaLaunch", "_Send",
        "_Recv", "RemoteCall", "RpcCall", "DecodeJpeg", "ParseExampleV2", "InitializeTableFromTextFileV2",
        "ResourceApplyAdam", "Abort", "DebugIdentityV2", "MutexLock",
    ):  # fmt: skip
        assert op not in gs.ALLOWED_OPS and gs.denied_reason(op), op
    assert "files" in gs.denied_reason("RecordInput") and "files" in gs.denied_reason("SnapshotChunkDataset")


# -- refusals, naming the op and where it is --------------------------------------------------------
@pytest.fixture(scope="module")
def base_graph():
    """A frozen graph ``x -> inner function (relu) -> probs``; returns (GraphDef bytes, function name)."""
    with tf.Graph().as_default() as g:
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")

        @tf.function
        def inner(v):
            return tf.nn.relu(v)

        tf.nn.softmax(tf.matmul(inner(x), tf.constant(W)), name="probs")
        gd = g.as_graph_def()
    (fn,) = [f.signature.name for f in gd.library.function]
    return gd.SerializeToString(), fn


def _graph(data: bytes):
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(data)
    return gd


def _node(gd, name: str):
    return next(n for n in gd.node if n.name == name)


@pytest.mark.parametrize("op", FILE_OPS)
def test_file_reaching_op_in_the_graph_is_refused_naming_it_and_its_node(base_graph, op):
    gd = _graph(base_graph[0])
    gs.check_graph_def(gd, ["probs:0"])  # the graph as built is allowed
    reach = gd.node.add(name="reach", op=op)
    assert reach.op == op
    _node(gd, "probs").input.append("^reach")
    with pytest.raises(EngineError, match=rf"op {op}, which .* at node 'reach' of the graph.*trust") as err:
        gs.check_graph_def(gd, ["probs:0"], "model.pb")
    assert str(err.value).startswith("model.pb: ")


@pytest.mark.parametrize("op", ["SnapshotDatasetReader", "MatchingFilesDataset", "Print"])
def test_refused_op_inside_a_library_function_is_named_with_its_function(base_graph, op):
    data, fn = base_graph
    gd = _graph(data)
    (func,) = gd.library.function
    func.node_def.add(name="hidden", op=op)
    with pytest.raises(EngineError, match=rf"op {op}, which .* at node 'hidden' of function '{fn}'"):
        gs.check_graph_def(gd, ["probs"])


def test_ops_named_by_function_attributes_and_gradient_functions_are_checked(base_graph):
    data, fn = base_graph
    # A call whose target names a registered op instead of a library function runs that op.
    gd = _graph(data)
    call = gd.node.add(name="call", op="PartitionedCall")
    call.attr["f"].func.name = "ReadFile"
    _node(gd, "probs").input.append("^call")
    with pytest.raises(EngineError, match=r"op ReadFile, which reads a file .* attribute 'f' of node 'call'"):
        gs.check_graph_def(gd, ["probs"])
    # Nested: a function attribute inside a function attribute.
    gd = _graph(data)
    call = gd.node.add(name="call", op="PartitionedCall")
    call.attr["f"].func.name = fn
    call.attr["f"].func.attr["g"].func.name = "WriteFile"
    _node(gd, "probs").input.append("^call")
    with pytest.raises(EngineError, match=r"op WriteFile"):
        gs.check_graph_def(gd, ["probs"])
    # A library function named like a denied op is no disguise.
    gd = _graph(data)
    fake = gd.library.function.add()
    fake.signature.name = "ReadFile"
    fake.node_def.add(name="noop", op="NoOp")
    gd.node.add(name="disguised", op="ReadFile")
    _node(gd, "probs").input.append("^disguised")
    with pytest.raises(EngineError, match=r"op ReadFile, which reads a file .* node 'disguised' of the graph"):
        gs.check_graph_def(gd, ["probs"])
    # A gradient function registered for a called function is scanned with it.
    gd = _graph(data)
    grad = gd.library.function.add()
    grad.signature.name = "evil_grad"
    grad.node_def.add(name="dump", op="DumpTensor")
    gd.library.gradient.add(function_name=fn, gradient_func="evil_grad")
    with pytest.raises(EngineError, match=r"op DumpTensor, which writes .* node 'dump' of function 'evil_grad'"):
        gs.check_graph_def(gd, ["probs"])


def test_several_refused_ops_are_all_named(base_graph):
    gd = _graph(base_graph[0])
    for i, op in enumerate(("RecordInput", "PyFunc", "UnknownOpFromTheFuture")):
        gd.node.add(name=f"n{i}", op=op)
        _node(gd, "probs").input.append(f"^n{i}")
    with pytest.raises(EngineError) as err:
        gs.check_graph_def(gd, ["probs"])
    msg = str(err.value)
    assert "op RecordInput" in msg and "(also PyFunc, UnknownOpFromTheFuture)" in msg
    assert gs.classify("UnknownOpFromTheFuture") is None  # unclassified: refused all the same


# -- RecordInput end to end: refused without trust, run (and reading the file) with it ---------------
def _record_input_graph(pattern: str) -> bytes:
    """Class scores whose sign depends on the length of the record RecordInput reads from ``pattern``."""
    with tf.Graph().as_default() as g:
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        rec = tf.raw_ops.RecordInput(
            file_pattern=pattern, batch_size=1, file_buffer_size=1, file_parallelism=1,
            file_shuffle_shift_ratio=0.0, name="records",
        )  # fmt: skip
        n = tf.reshape(tf.cast(tf.strings.length(rec), tf.float32), [])
        tf.nn.softmax(tf.matmul(x, tf.constant(W)) * (5.5 - n), name="probs")  # 1 byte: +, 10 bytes: -
        return g.as_graph_def().SerializeToString()


def _write_record(path, payload: bytes) -> None:
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(payload)


def _heldout(tmp_path):
    x = np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)
    y = np.argmax(x @ W, axis=1)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return tmp_path / "data.npz"


def _accuracy_trusted(model, data) -> float:
    sess = tf_eval.open_session(model, data, trust=True)
    try:
        return sess.evaluate().accuracy
    finally:
        sess.exe.close()


def test_record_input_graph_is_refused_without_trust_and_reads_the_file_with_it(tmp_path):
    data = _heldout(tmp_path)
    records = tmp_path / "records.tfrecord"
    model = tmp_path / "record_input.pb"
    model.write_bytes(_record_input_graph(str(records)))
    _write_record(records, b"x")
    with pytest.raises(EngineError, match=r"op RecordInput, which reads the files .* node 'records' of the graph"):
        tf_eval.open_session(model, data)
    assert _accuracy_trusted(model, data) == 1.0
    _write_record(records, b"x" * 10)  # the same model, another file: the other answer
    assert _accuracy_trusted(model, data) == 0.0


def test_savedmodel_listing_files_with_tf_data_is_refused_naming_its_function(tmp_path):
    class Lister(tf.Module):
        def __init__(self, pattern):
            super().__init__()
            self.pattern = pattern

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            files = tf.data.Dataset.list_files(self.pattern, shuffle=False)
            count = files.reduce(tf.constant(0.0), lambda total, _: total + 1.0)
            return {"scores": tf.matmul(x, tf.constant(W)) * count}

    module = Lister(str(tmp_path / "*.npz"))
    tf.saved_model.save(module, str(tmp_path / "lister"), signatures={"serving_default": module.serve})
    with pytest.raises(EngineError, match=r"op MatchingFiles, which lists files .* of function '__inference_serve"):
        tf_eval.open_session(tmp_path / "lister", _heldout(tmp_path))


# -- real models still pass ------------------------------------------------------------------------------
def test_keras2_savedmodel_with_conv_batchnorm_and_recurrent_layers_passes_and_evaluates(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(4)
    layers = tf_keras.layers
    m = tf_keras.Sequential([
        layers.InputLayer((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization(), layers.Dropout(0.2),
        layers.Reshape((16, 3)), layers.GRU(4, return_sequences=True), layers.LSTM(3),
        layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    x = np.random.default_rng(5).normal(size=(40, 6, 6, 2)).astype(np.float32)
    y = np.random.default_rng(6).integers(0, 3, 40)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)  # optimizer state and training functions in the export
    m.save(str(tmp_path / "k2"), save_format="tf")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    sess = tf_eval.open_session(tmp_path / "k2", tmp_path / "data.npz", batch_size=16)  # untrusted
    expected = float(np.mean(np.argmax(m.predict(x, verbose=0), axis=1) == y))
    assert abs(sess.evaluate().accuracy - expected) <= 1e-6


# -- run-time failures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_reshape(tmp_path_factory):
    """A frozen graph and a SavedModel whose reshape to (-1, 3) cannot fit 4 features per sample."""
    root = tmp_path_factory.mktemp("runtime")
    with tf.Graph().as_default() as g:
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        r = tf.reshape(x, [-1, 3], name="fold")
        tf.nn.softmax(tf.matmul(r, tf.ones([3, 2])), name="probs")
        (root / "bad.pb").write_bytes(g.as_graph_def().SerializeToString())

    class Bad(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"probs": tf.nn.softmax(tf.matmul(tf.reshape(x, [-1, 3], name="fold"), tf.ones([3, 2])))}

    module = Bad()
    tf.saved_model.save(module, str(root / "bad_sm"), signatures={"serving_default": module.serve})
    x = np.random.default_rng(0).normal(size=(70, 4)).astype(np.float32)
    np.savez(root / "data.npz", x=x, y=np.zeros(70, np.int64))
    return root


@pytest.mark.parametrize("model", ["bad.pb", "bad_sm"])
def test_graph_failing_at_run_time_raises_one_engine_error_naming_node_op_and_reason(bad_reshape, model):
    path = bad_reshape / model
    sess = tf_eval.open_session(path, bad_reshape / "data.npz", batch_size=32)
    with pytest.raises(EngineError) as err:
        sess.evaluate()
    msg = str(err.value)
    assert msg.startswith(f"{path}: evaluation failed at node ")
    assert "'fold' (op Reshape) on held-out samples 0-31 (input batch of shape (32, 4))" in msg
    assert msg.endswith(
        "InvalidArgumentError: Input to reshape is a tensor with 128 values, "
        "but the requested shape requires a multiple of 3"
    )
    assert "\n" not in msg and isinstance(err.value.__cause__, tf.errors.InvalidArgumentError)


def test_run_failure_names_the_last_partial_batch():
    exc = tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [5,3] vs. [4,3]")
    err = tf_eval.run_failure(exc, "m.pb", first=64, count=6, batch_shape=(6, 4))
    assert str(err) == (
        "m.pb: evaluation failed on held-out samples 64-69 (input batch of shape (6, 4)): "
        "InvalidArgumentError: Incompatible shapes: [5,3] vs. [4,3]"
    )


def test_cli_eval_of_a_failing_graph_prints_one_error_line_and_exits_2(bad_reshape):
    r = subprocess.run(
        [sys.executable, "-m", "weightlab", "eval", str(bad_reshape / "bad.pb"), "--data",
         str(bad_reshape / "data.npz")],
        capture_output=True, text=True, timeout=240, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"weightlab: error: {bad_reshape / 'bad.pb'}: evaluation failed at node 'fold'")
    assert "(op Reshape)" in last and "Input to reshape is a tensor with 280 values" in last

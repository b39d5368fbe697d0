"""Damaged TensorFlow files: each gives a FormatError naming the file and the part that failed.

Also: a native crash of the reader process becomes a FormatError, and the next
read starts a new reader.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import weightlab
from weightlab.core.errors import FormatError
from weightlab.formats import describe_file

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A tiny object-based checkpoint, a SavedModel and a frozen-graph-like GraphDef."""
    root = tmp_path_factory.mktemp("tfbad")
    mod = tf.Module()
    with tf.name_scope("dense"):
        mod.kernel = tf.Variable(np.ones((4, 3), "float32"), name="kernel")
    mod.f = tf.function(lambda x: x @ mod.kernel, input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    prefix = tf.train.Checkpoint(m=mod).write(str(root / "ckpt" / "ckpt"))
    tf.saved_model.save(mod, str(root / "sm"), signatures=mod.f)
    return {"ckpt": Path(prefix), "sm": root / "sm"}


def _copy_ckpt(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.parent.iterdir():
        if f.name.startswith(src.name + "."):
            shutil.copy(f, dst / f.name)
    return dst / src.name


def _graphdef(path: Path, dims: list[int], content: bytes | None) -> Path:
    gd = tf.compat.v1.GraphDef()
    node = gd.node.add(name="fc/kernel", op="Const")
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    t = node.attr["value"].tensor
    t.dtype = tf.float32.as_datatype_enum
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    if content is None:
        t.float_val.append(1.0)
    else:
        t.tensor_content = content
    gd.node.add(name="x", op="Placeholder")
    path.write_bytes(gd.SerializeToString())
    return path


def _open_fails(path, *fragments: str) -> str:
    with pytest.raises(FormatError) as err:
        s = weightlab.open(path)
        s.model.close()
    text = str(err.value)
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_index(good, tmp_path, keep):
    prefix = _copy_ckpt(good["ckpt"], tmp_path / "c")
    index = Path(str(prefix) + ".index")
    data = index.read_bytes()
    index.write_bytes(data[: int(len(data) * keep)])
    # No longer a tensor bundle by content: it is described, not handed to TensorFlow.
    _open_fails(index, str(index), "not a Keras model file")


def test_damaged_index_body_is_reported_by_the_reader(good, tmp_path):
    prefix = _copy_ckpt(good["ckpt"], tmp_path / "c")
    index = Path(str(prefix) + ".index")
    data = bytearray(index.read_bytes())
    data[: len(data) - 48] = bytes(len(data) - 48)  # body zeroed, footer kept
    index.write_bytes(bytes(data))
    _open_fails(index, str(index), "ckpt.index")


def test_missing_data_file(good, tmp_path):
    prefix = _copy_ckpt(good["ckpt"], tmp_path / "c")
    Path(str(prefix) + ".data-00000-of-00001").unlink()
    _open_fails(str(prefix) + ".index", str(prefix) + ".index", "data file", "missing")


def test_byte_flipped_saved_model_pb(good, tmp_path):
    sm = tmp_path / "sm"
    shutil.copytree(good["sm"], sm)
    pb = sm / "saved_model.pb"
    data = bytearray(pb.read_bytes())
    for i in range(0, min(len(data), 64)):
        data[i] ^= 0xFF
    pb.write_bytes(bytes(data))
    _open_fails(sm, str(sm), "saved_model.pb")


@pytest.mark.parametrize(
    ("dims", "content", "what"),
    [
        ([-4, 3], None, "invalid shape"),
        ([1 << 20, 1 << 20], None, "absurd shape"),
        ([1000, 1000], b"\0" * 48, "stores 48 bytes"),
    ],
)
def test_graphdef_with_bad_declared_shape(tmp_path, dims, content, what):
    path = _graphdef(tmp_path / "frozen.pb", dims, content)
    _open_fails(path, str(path), "fc/kernel", what)


def test_right_extension_wrong_content(tmp_path):
    pb = tmp_path / "model.pb"
    pb.write_text("this is not a graph\n")
    _open_fails(pb, str(pb), "a text file")
    idx = tmp_path / "model.index"
    idx.write_bytes(os.urandom(100))
    _open_fails(idx, str(idx))
    _open_fails(tmp_path / "no-such-prefix", "no such file")


def test_describe_file_names_tensorflow_files(good):
    assert describe_file(str(good["ckpt"]) + ".index") == "a TensorFlow checkpoint index (tensor bundle)"
    assert describe_file(good["ckpt"].parent) == "a folder of TensorFlow checkpoints"


def test_reader_crash_becomes_a_format_error_and_the_reader_restarts(good):
    s = weightlab.open(good["ckpt"])
    try:
        process = s.model.attrs["_reader"].process
        os.kill(process.pid, signal.SIGSEGV)
        with pytest.raises(FormatError, match=r"TensorFlow reader crashed while reading .* \(exit -11\)"):
            s.model.read("dense/kernel")
        np.testing.assert_array_equal(s.model.read("dense/kernel"), np.ones((4, 3), "float32"))
    finally:
        s.model.close()

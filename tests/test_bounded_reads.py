"""Hostile Keras files of issue 9: each gives one clear FormatError, within bounded time, memory and disk.

Zip oddities, zip and HDF5 decompression bombs, repeated layer names, CRC
failures (at open and while saving), deep or huge JSON, complex tensors and a
global heap that HDF5 itself would loop on. Files are made with h5py and
zipfile only (no TensorFlow).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import threading
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from weightlab.core.atomic import TEMP_MARK
from weightlab.core.errors import FormatError, UnsafeFileError
from weightlab.formats import h5safe, keras_zip, legacy_h5, open_model, save_model

CONFIG = {
    "class_name": "Sequential",
    "config": {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "dense"}}]},
}


def _weights_h5(path: Path, kernel: np.ndarray | None = None, extra: bytes = b"") -> Path:
    with h5py.File(path, "w") as h5:
        v = h5.create_group("layers/dense/vars")
        v.attrs["name"] = "dense"
        v.create_dataset("0", data=np.arange(12, dtype="float32").reshape(4, 3) if kernel is None else kernel)
        v.create_dataset("1", data=np.zeros(kernel.shape[-1] if kernel is not None else 3, "float32"))
    if extra:
        with open(path, "ab") as fh:
            fh.write(extra)
    return path


def _keras(path: Path, weights: Path, config: str | None = None, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(CONFIG) if config is None else config)
        zf.write(weights, "model.weights.h5", compress_type=compression)
    return path


def _legacy_h5(path: Path, layer_names: list[bytes] | None = None, config: str | None = None) -> Path:
    with h5py.File(path, "w", libver="latest") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG) if config is None else config
        mw = h5.create_group("model_weights")
        g = mw.create_group("dense")
        g.create_dataset("dense/kernel:0", data=np.ones((4, 3), "float32"))
        g.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        mw.attrs.create("layer_names", np.array(layer_names or [b"dense"]))
    return path


def _fails(path: Path, *fragments: str, kind: type = FormatError) -> str:
    with pytest.raises(FormatError) as err:
        open_model(path).close()
    assert type(err.value) is kind, err.value
    text = str(err.value)
    assert text.startswith(f"{path}: "), text
    for fragment in fragments:
        assert fragment in text, text
    return text


def _ours() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if f"{TEMP_MARK}{os.getpid()}-" in n}


# -- zip -------------------------------------------------------------------------------


def _set_version_needed(path: Path, member: str, version: int) -> None:
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<H", raw, info.header_offset + 4, version)
    i = raw.find(b"PK\x01\x02")
    while i >= 0:
        nlen = struct.unpack_from("<H", raw, i + 28)[0]
        if raw[i + 46 : i + 46 + nlen] == member.encode():
            struct.pack_into("<H", raw, i + 6, version)
        i = raw.find(b"PK\x01\x02", i + 4)
    path.write_bytes(bytes(raw))


def test_zip_version_131_is_a_format_error_and_sniffing_never_raises(tmp_path):
    path = _keras(tmp_path / "v.keras", _weights_h5(tmp_path / "w.h5"))
    _set_version_needed(path, "model.weights.h5", 131)
    assert keras_zip.sniff(path) is True  # so that open says what is unsupported
    _fails(path, "zip file version 13.1", "cannot read")


def test_two_members_of_one_name_are_refused(tmp_path):
    path = _keras(tmp_path / "d.keras", _weights_h5(tmp_path / "w.h5"))
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("config.json", json.dumps(CONFIG))
    _fails(path, "two members named 'config.json'")


def test_compressed_weights_beyond_kerass_ratio_are_refused_before_unpacking(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(keras_zip, "EXPANSION_FLOOR", 1 << 20)  # the 256 MiB floor, scaled down
    bomb = _weights_h5(tmp_path / "w.h5", extra=bytes(8 << 20))  # valid HDF5 + 8 MiB of zeros
    path = _keras(tmp_path / "bomb.keras", bomb, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model.weights.h5")
    assert info.file_size > 100 * info.compress_size
    _fails(path, "model.weights.h5", "zip bomb", f"over {keras_zip.MAX_EXPANSION}", kind=UnsafeFileError)
    assert os.listdir(tmp_path / "tmp") == []  # nothing was unpacked


def test_compressed_weights_need_free_space_and_leave_no_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = _keras(tmp_path / "z.keras", _weights_h5(tmp_path / "w.h5"), compression=zipfile.ZIP_DEFLATED)
    with open_model(path) as m:  # unpacked to a temporary copy named with this process's id
        copies = os.listdir(tmp_path / "tmp")
        assert len(copies) == 1 and f"{TEMP_MARK}{os.getpid()}-" in copies[0], copies
        assert m.read("dense/kernel")[3, 2] == 11
    assert os.listdir(tmp_path / "tmp") == []
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(keras_zip.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    _fails(path, "only 1,000 bytes are free")
    assert os.listdir(tmp_path / "tmp") == []


# -- CRC -------------------------------------------------------------------------------


def _flip_in_member(path: Path, member: str, at: int) -> None:
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + at] ^= 0x40
    path.write_bytes(bytes(raw))


def test_stored_weights_failing_their_crc_are_refused_at_open(tmp_path):
    weights = _weights_h5(tmp_path / "w.h5")
    with h5py.File(weights, "r") as h5:
        offset = h5["layers/dense/vars/0"].id.get_offset()
    path = _keras(tmp_path / "crc.keras", weights)
    _flip_in_member(path, "model.weights.h5", offset + 5)  # a kernel value, not HDF5 metadata
    _fails(path, "model.weights.h5 fails its CRC check")
    assert not [t for t in threading.enumerate() if t.name == "weightlab-zip-crc"]


def test_damaged_config_json_is_refused(tmp_path):
    path = _keras(tmp_path / "c.keras", _weights_h5(tmp_path / "w.h5"))
    _flip_in_member(path, "config.json", 3)
    _fails(path, "config.json")


def test_save_checks_the_crc_of_members_it_copies(tmp_path):
    path = _keras(tmp_path / "s.keras", _weights_h5(tmp_path / "w.h5"))
    model = open_model(path)
    try:
        st = path.stat()
        _flip_in_member(path, "metadata.json", 2)  # damaged after opening, size and time kept
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        out = tmp_path / "out.keras"
        with pytest.raises(FormatError, match="CRC") as err:
            save_model(model, {"dense/kernel": np.zeros((4, 3), "float32")}, out)
        assert str(err.value).startswith(f"{path}: ")
        assert not out.exists()
        assert sorted(os.listdir(tmp_path)) == ["s.keras", "w.h5"]
    finally:
        model.close()


# -- HDF5 ------------------------------------------------------------------------------


def test_compressed_dataset_beyond_the_ratio_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(h5safe, "EXPANSION_FLOOR", 1 << 20)  # the 16 MiB floor, scaled down
    rng = np.random.default_rng(0)
    data = np.zeros(1 << 22, "uint8")
    data[:: 1 << 10] = rng.integers(1, 255, size=1 << 12)  # about 300:1 with gzip
    path = tmp_path / "bomb.weights.h5"
    with h5py.File(path, "w") as h5:
        v = h5.create_group("layers/dense/vars")
        ds = v.create_dataset("0", data=data, chunks=(1 << 22,), compression="gzip", compression_opts=9)
        ratio = data.nbytes / ds.id.get_storage_size()
    assert h5safe.MAX_EXPANSION < ratio < h5safe.MAX_RATIO  # passed the old limit (Keras' 1000)
    _fails(path, "'/layers/dense/vars/0'", "decompression bomb", kind=UnsafeFileError)
    monkeypatch.setattr(h5safe, "EXPANSION_FLOOR", 16 << 20)  # below the floor: a small tensor reads
    with open_model(path) as m:
        assert np.array_equal(m.read(next(iter(m.tensors))), data)


def test_repeated_layer_names_are_refused_before_any_layer_is_read(tmp_path, monkeypatch):
    path = _legacy_h5(tmp_path / "dup.h5", [b"dense"] * 200_000)

    def read_layer(*args, **kwargs):
        raise AssertionError("a layer was read: every repeat would read it again (about 25 s before)")

    monkeypatch.setattr(legacy_h5, "_unique_weights", read_layer)  # runs once per layer read
    _fails(path, "layer_names lists 'dense' 200,000 times")


def test_repeated_weight_names_are_refused(tmp_path):
    path = _legacy_h5(tmp_path / "dupw.h5")
    with h5py.File(path, "r+") as h5:
        h5["model_weights/dense"].attrs["weight_names"] = np.array([b"dense/kernel:0"] * 3)
    _fails(path, "weight_names of layer 'dense' lists 'dense/kernel:0' 3 times")


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_tensors_are_a_clear_format_error(tmp_path, dtype):
    path = tmp_path / "c.weights.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("layers/dense/vars").create_dataset("0", data=np.ones(3, dtype) * 1j)
    _fails(path, f"holds complex numbers ({dtype})", "real-valued")


def _zero_global_heap_object(path: Path) -> int:
    """Make the first object of the file's global heap read as (index 0, size 0)."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"GCOL\x01\x00\x00\x00")
    assert at >= 0
    raw[at + 16 : at + 32] = bytes(16)
    path.write_bytes(bytes(raw))
    return at


@pytest.mark.timeout(60)
def test_a_global_heap_hdf5_would_loop_on_is_refused(tmp_path):
    path = _legacy_h5(tmp_path / "heap.h5")
    at = _zero_global_heap_object(path)
    _fails(path, f"global heap collection at byte {at}", "impossible size 0")


# -- JSON ------------------------------------------------------------------------------

_DEEP = '{"class_name": "Sequential", "config": {"layers": ' + "[" * 100_000 + "]" * 100_000 + "}}"
_BIG_NUMBER = '{"class_name": "Sequential", "config": {"layers": [], "seed": ' + "9" * 5000 + "}}"
_BAD_JSON = [
    (_DEEP, "nested more than 256 levels deep"),
    (_BIG_NUMBER, "holds a 5000-digit number"),
    ('{"class_name": "Sequential", "config": {"layers": [1]}}', "layer 0 of the model is not an object"),
    (
        '{"class_name": "Sequential", "config": {"layers": {"a": 1}}}',
        "the layers of the model are not a list",
    ),
    (
        json.dumps({"class_name": "S", "config": {"layers": [{"config": {"name": 5}}]}}),
        "name that is not a string",
    ),
    (
        json.dumps({"class_name": "S", "config": {"layers": [CONFIG["config"]["layers"][0]] * 2}}),
        "two layers named",
    ),
    ('{"class_name": "Sequential", "config": ', "not valid JSON"),
]


@pytest.mark.parametrize(("text", "expect"), _BAD_JSON, ids=range(len(_BAD_JSON)))
def test_bad_config_json_in_a_keras_archive(tmp_path, text, expect):
    path = _keras(tmp_path / "j.keras", _weights_h5(tmp_path / "w.h5"), config=text)
    _fails(path, "config.json", expect)


@pytest.mark.parametrize(("text", "expect"), _BAD_JSON, ids=range(len(_BAD_JSON)))
def test_bad_model_config_in_a_legacy_h5(tmp_path, text, expect):
    _fails(_legacy_h5(tmp_path / "j.h5", config=text), "the model_config attribute", expect)

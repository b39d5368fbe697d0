"""Hostile held-out sets: one DataError naming the file, bounded work, nothing unpickled."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from weightlab.core import dataset
from weightlab.core.dataset import MAX_LABEL, load_heldout
from weightlab.core.errors import DataError

X = np.random.default_rng(0).random((4, 3)).astype(np.float32)
Y = np.array([0, 1, 2, 1])


def npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, a, allow_pickle=allow_pickle)
    return b.getvalue()


def write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def refused(path, *fragments: str, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_heldout(path, **kw)
    msg = str(info.value)
    assert str(path) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def with_shape(data: bytes, old: str, new: str) -> bytes:
    """The .npy ``data`` with its header's shape ``old`` replaced by ``new`` (header re-padded)."""
    end = data.index(b"\n") + 1
    header = data[10:end].decode("latin1").replace(old, new).rstrip()
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data[end:]


def peak_traced(fn) -> int:
    """Peak bytes NumPy and Python allocated while ``fn`` ran."""
    tracemalloc.start()
    try:
        fn()
    except DataError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_valid_archives_still_read_exactly(tmp_path):
    xf = np.asfortranarray(np.arange(24, dtype=">f8").reshape(4, 6))
    for i, comp in enumerate((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)):
        p = write_zip(tmp_path / f"d{i}.npz", {"x.npy": npy(xf), "y.npy": npy(np.array([True, False, True, True]))}, comp)
        h = load_heldout(p)
        assert h.x.dtype == xf.dtype and np.array_equal(h.x, xf) and h.y.tolist() == [1, 0, 1, 1]


def test_member_that_is_not_an_npy_array(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x": b"hello", "y.npy": npy(Y)})
    refused(p, "array 'x' is not a NumPy .npy array")


def test_huge_declared_shape_is_refused_before_allocating(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x.npy": with_shape(npy(X), "(4, 3)", "(100000000000, 3)"), "y.npy": npy(Y)})
    peak = peak_traced(lambda: refused(p, "declares shape (100000000000, 3)", "1200000000000 bytes", "holds 48 bytes"))
    assert peak < 1 << 20


def test_zip_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    x = np.zeros((1024, 16384), np.float32)  # 64 MiB of zeros, about 64 KB deflated
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, x=x, y=np.zeros(1024, np.int64))
    del x
    assert p.stat().st_size < 1 << 20
    peak = peak_traced(lambda: refused(p, "would take 67117056 bytes", "the limit is 16777216", max_bytes=16 << 20))
    assert peak < 1 << 20  # nothing inflated
    monkeypatch.setattr(dataset, "MAX_HELDOUT_BYTES", 1 << 20)  # the default limit applies the same way
    refused(p, "the limit is 1048576")


def test_shapes_that_do_not_fit_are_refused_before_reading(tmp_path):
    p = tmp_path / "d.npz"
    np.savez_compressed(p, x=np.zeros((4096, 4096), np.float32), y=np.zeros(3, np.int64))
    peak = peak_traced(lambda: refused(p, "x has 4096 samples, y has 3"))
    assert peak < 1 << 20


def test_damaged_deflate_stream(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x.npy": npy(np.random.default_rng(1).random((100, 10))), "y.npy": npy(np.zeros(100, int))}, zipfile.ZIP_DEFLATED)
    data = bytearray(p.read_bytes())
    data[200:210] = b"\xff" * 10
    p.write_bytes(bytes(data))
    refused(p, "cannot read the .npz archive")


def test_bad_crc_is_detected(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x.npy": npy(X), "y.npy": npy(Y)})
    data = bytearray(p.read_bytes())
    at = data.index(npy(X)[-8:])  # inside x's stored data
    data[at] ^= 0x01
    p.write_bytes(bytes(data))
    refused(p, "CRC")


def _patch_all_headers(path, offset_local: int, offset_central: int, fmt: str, value: int) -> None:
    """Set a field of every local and central zip header."""
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        at = data.find(sig)
        while at >= 0:
            struct.pack_into(fmt, data, at + off, value)
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))


def test_encrypted_member(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x.npy": npy(X), "y.npy": npy(Y)})
    _patch_all_headers(p, 6, 8, "<H", 0x1)  # general purpose flag: encrypted
    refused(p, "array 'x' is encrypted")


def test_unsupported_compression_method(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x.npy": npy(X), "y.npy": npy(Y)})
    _patch_all_headers(p, 8, 10, "<H", 99)  # compression method 99 (AES): unknown to zipfile
    refused(p, "cannot read the .npz archive", "NotImplementedError")


class _Trap:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("key", ["x", "y"])
def test_pickled_arrays_are_never_unpickled(tmp_path, key):
    trap = tmp_path / "unpickled"
    evil = np.empty(4, dtype=object)
    evil[:] = [_Trap(trap)] * 4
    arrays = {"x.npy": npy(X), "y.npy": npy(Y)}
    arrays[f"{key}.npy"] = npy(evil, allow_pickle=True)
    p = write_zip(tmp_path / "d.npz", arrays)
    refused(p, f"array {key!r} holds Python objects")
    assert not trap.exists()


@pytest.mark.parametrize(
    "x, y, fragment",
    [
        (np.zeros((4, 3), np.complex64), Y, "x must be a real numeric array"),
        (np.zeros((4, 3), "m8[s]"), Y, "received dtype timedelta64[s]"),
        (np.zeros((4, 3), "M8[D]"), Y, "received dtype datetime64[D]"),
        (np.zeros((4, 3), [("a", "f4")]), Y, "received dtype [('a', '<f4')]"),
        (X, np.zeros(4, np.complex128), "y must be numeric labels"),
        (X, np.array(["a", "b", "c", "d"]), "y must be numeric labels"),
        (X, np.array([0.0, np.nan, 1.0, 2.0]), "1 NaN or infinite label(s)"),
        (X, np.array([0.0, np.inf, -np.inf, 2.0]), "2 NaN or infinite label(s)"),
        (X, np.array([0.0, 1e300, 1.0, 2.0]), f"at most {MAX_LABEL}"),
        (X, np.array([0, 2**40, 1, 2]), f"at most {MAX_LABEL}"),
        (X, np.array([0, 2**64 - 1, 1, 2], np.uint64), f"at most {MAX_LABEL}"),
        (X, np.array([0, -3, 1, 2], np.int8), "negative label(s) (smallest -3)"),
        (X, np.array([[0.5, np.nan]] * 4), "NaN or infinite values"),
        (X, np.zeros((4, 0)), "(N, C)"),
        (X, np.zeros(5, int), "x has 4 samples, y has 5"),
    ],
    ids=lambda v: None,
)
def test_bad_arrays(tmp_path, x, y, fragment):
    p = write_zip(tmp_path / "d.npz", {"x.npy": npy(x), "y.npy": npy(y)})
    refused(p, fragment)


def test_array_present_twice(tmp_path):
    p = write_zip(tmp_path / "d.npz", {"x.npy": npy(X), "x": npy(X), "y.npy": npy(Y)})
    refused(p, "holds array 'x' twice")


def test_oversized_npy_header(tmp_path):
    data = npy(X)
    end = data.index(b"\n")
    header = data[10:end] + b" " * 20_000 + b"\n"
    big = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header + data[end + 1 :]
    p = write_zip(tmp_path / "d.npz", {"x.npy": big, "y.npy": npy(Y)})
    msg = refused(p, "array 'x' is not a NumPy .npy array")
    assert "Python objects" not in msg


def test_single_npy_file_is_named_without_reading_it(tmp_path):
    p = tmp_path / "d.npy"
    p.write_bytes(with_shape(npy(X), "(4, 3)", "(100000000000, 3)"))
    refused(p, "single array of shape (100000000000, 3)")

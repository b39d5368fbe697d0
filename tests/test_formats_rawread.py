"""The raw read path for large contiguous datasets (legacy .h5 and stored .keras archives).

Values must be bit-identical to h5py's own read; chunked, compressed, small
or otherwise unusual datasets must fall back to h5py. No TensorFlow needed.
"""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest

from weightlab.core.model import TensorInfo
from weightlab.core.stats import histogram, summarize, tensor_stats
from weightlab.formats import _h5io, h5safe, keras_zip

SHAPE = (600, 520)  # 1.19 MiB as float32: above the raw-read threshold


def _write(path, **datasets_kw):
    rng = np.random.default_rng(0)
    arrays = {}
    with h5py.File(path, "w") as f:
        for name, kw in datasets_kw.items():
            dtype = kw.pop("dtype", "<f4")
            a = rng.normal(0, 0.05, SHAPE).astype(dtype)
            a.flat[:5] = [0.0, -0.0, 1e-40, np.finfo(np.float32).max, -1.0] if a.dtype.kind == "f" else 0
            f.create_dataset(name, data=a, **kw)
            arrays[name] = a
    return arrays


def _info(name, a):
    return TensorInfo(name=f"l/{name}", layer="l", weight=name, key=name, shape=a.shape, dtype=a.dtype.name)


CASES = {
    "contiguous": {},
    "bigendian": {"dtype": ">f4"},
    "float64": {"dtype": "<f8"},
    "chunked": {"chunks": (100, 520)},
    "gzip": {"chunks": (100, 520), "compression": "gzip"},
}


@pytest.fixture()
def h5file(tmp_path):
    path = tmp_path / "w.h5"
    arrays = _write(path, **{k: dict(v) for k, v in CASES.items()})
    return path, arrays


def _reader_for(path):
    h5 = h5py.File(path, "r")
    return _h5io.H5Reader(h5, path.stat().st_size, path)


@pytest.mark.parametrize("name", list(CASES))
def test_raw_read_is_bit_identical_to_h5py(h5file, name):
    path, arrays = h5file
    reader = _reader_for(path)
    try:
        ds = reader.h5[name]
        got = reader.read(_info(name, arrays[name]))
        want = ds[()]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        raw = reader._read_raw(ds)
        if name in ("chunked", "gzip"):
            assert raw is None  # falls back to h5py
            assert h5safe.contiguous_extent(ds, path.stat().st_size) is None
        else:
            assert raw is not None and raw.tobytes() == want.tobytes()
            assert raw.flags.writeable and raw.flags.owndata
    finally:
        reader.close()


def test_small_and_truncated_extents_fall_back(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("small", data=np.arange(10, dtype=np.float32))
        f.create_dataset("big", data=np.ones(SHAPE, np.float32))
    reader = _reader_for(path)
    try:
        assert reader._read_raw(reader.h5["small"]) is None
        ds = reader.h5["big"]
        offset, nbytes = h5safe.contiguous_extent(ds, path.stat().st_size)
        assert h5safe.contiguous_extent(ds, offset + nbytes - 1) is None  # extent past the data: refused
    finally:
        reader.close()


def test_raw_read_does_not_follow_a_replaced_file(tmp_path):
    path = tmp_path / "r.h5"
    arrays = _write(path, a={})
    reader = _reader_for(path)
    try:
        other = tmp_path / "other.h5"
        with h5py.File(other, "w") as f:
            f.create_dataset("a", data=np.zeros(SHAPE, np.float32))
        other.replace(path)  # what an atomic save over the original does
        got = reader.read(_info("a", arrays["a"]))
        assert got.tobytes() == arrays["a"].tobytes()
    finally:
        reader.close()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_keras_archive_member_read_is_bit_identical(tmp_path, compression):
    h5path = tmp_path / "model.weights.h5"
    arrays = _write(h5path, a={}, c={"chunks": (100, 520), "compression": "gzip"})
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w", compression=compression) as zf:
        zf.writestr("metadata.json", "{}")
        zf.write(h5path, keras_zip.WEIGHTS)
    with zipfile.ZipFile(archive) as zf:
        reader = keras_zip._open_weights(archive, zf, zf.getinfo(keras_zip.WEIGHTS))
    try:
        for name in ("a", "c"):
            got = reader.read(_info(name, arrays[name]))
            assert got.tobytes() == arrays[name].tobytes()
        raw = reader._read_raw(reader.h5["a"])
        assert raw is not None and raw.tobytes() == arrays["a"].tobytes()
        assert reader._read_raw(reader.h5["c"]) is None
    finally:
        reader.close()


# -- statistics of large tensors (blocked path) ------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.normal(0, 0.01, 2_100_000).astype(np.float32),
        lambda r: np.sort(r.standard_t(3, 1_500_000)),  # float64, sorted (strided sample on structure)
        lambda r: r.integers(-100, 100, 1_200_000).astype(np.int8),
        lambda r: np.r_[np.zeros(1_100_000, np.float32), r.normal(size=9).astype(np.float32)],  # heavy ties
        lambda r: (r.normal(3.0, 1e-3, 1_300_000)).astype(np.float32),  # narrow range far from 0
    ],
)
def test_summarize_equals_numpy_on_large_tensors(make):
    a = make(np.random.default_rng(7))
    x = a.astype(np.float64)
    for threads in (1, 2):
        counts, edges, st = summarize(a, 100, threads=threads)
        ref_c, ref_e = np.histogram(a, 100)
        np.testing.assert_array_equal(counts, ref_c)
        np.testing.assert_array_equal(edges, ref_e)
        assert edges.dtype == ref_e.dtype
        c2, e2 = histogram(a, 100, threads=threads)
        np.testing.assert_array_equal(c2, ref_c)
        assert st == tensor_stats(a, threads=threads)
        assert st.count == a.size and st.min == x.min() and st.max == x.max()
        assert st.zeros == np.mean(a == 0)
        p1, p99 = np.percentile(x, [1, 99])
        assert st.p1 == p1 and st.p99 == p99
        np.testing.assert_allclose(
            [st.mean, st.std, st.l1, st.l2], [x.mean(), x.std(), np.abs(x).sum(), np.linalg.norm(x)], rtol=1e-12
        )


def test_summarize_with_non_finite_values_matches_the_plain_path():
    a = np.random.default_rng(1).normal(size=1_200_000).astype(np.float32)
    a[5] = np.nan
    counts, edges, st = summarize(a, 50)
    finite = a[np.isfinite(a)]
    ref_c, ref_e = np.histogram(finite, 50)
    np.testing.assert_array_equal(counts, ref_c)
    assert np.isnan(st.mean) and np.isnan(st.p1)

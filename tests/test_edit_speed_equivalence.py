"""The blocked, partition-based value edits give the previous implementation's bits.

``weightlab.core.edits`` computes zero range/outside and magnitude pruning
block by block, zeroing branch-free through the bits, and pruning to a
sparsity with ``np.partition`` instead of a stable argsort, so that a
100M-value tensor edits at NumPy's speed (clip, scale and add stay one ufunc
call each; they are checked here too). Recipes must replay bit for bit, so every result is compared,
byte for byte, with the whole-array expressions the ops used before: on every
real dtype, with ties, zeros, ``-0.0``, NaN and infinities, on block boundaries
(the block size is made tiny), on non-contiguous and read-only inputs, and for
per-tensor and global pruning scopes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from weightlab.core import edits
from weightlab.core.edits import Add, Clip, PruneMagnitude, Scale, ZeroOutside, ZeroRange
from weightlab.core.model import ModelFile
from weightlab.core.session import EditSession

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool"]
FLOATS = ["float16", "float32", "float64"]

# -- the previous implementation, verbatim -------------------------------------------


def _cast(value, like):
    return like.dtype.type(value)


def old_clip(a, lo, hi):
    return np.clip(a, _cast(lo, a), _cast(hi, a))


def old_zero_range(a, lo, hi):
    lo, hi = _cast(lo, a), _cast(hi, a)
    return np.where((a >= lo) & (a <= hi), a.dtype.type(0), a)


def old_zero_outside(a, lo, hi):
    lo, hi = _cast(lo, a), _cast(hi, a)
    return np.where((a < lo) | (a > hi), a.dtype.type(0), a)


def old_scale(a, factor):
    return a * _cast(factor, a)


def old_add(a, value):
    return a + _cast(value, a)


def old_prune_threshold(a, threshold):
    return np.where(np.abs(a) <= _cast(threshold, a), a.dtype.type(0), a)


def old_prune_tensor(a, sparsity):
    k = math.floor(sparsity * a.size)
    mask = np.zeros(a.size, dtype=bool)
    mask[np.argsort(np.abs(a.astype(np.float64)).ravel(), kind="stable")[:k]] = True
    return np.where(mask.reshape(a.shape), a.dtype.type(0), a)


def old_prune_global(arrays, sparsity):
    flat = np.concatenate([np.abs(a.astype(np.float64, copy=False)).ravel() for a in arrays])
    k = math.floor(sparsity * flat.size)
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.argsort(flat, kind="stable")[:k]] = True
    out, start = [], 0
    for a in arrays:
        out.append(np.where(mask[start : start + a.size].reshape(a.shape), a.dtype.type(0), a))
        start += a.size
    return out


# -- data -----------------------------------------------------------------------------


def values(dtype, shape, seed, *, special=True):
    """Values with many ties (few distinct magnitudes), zeros, and for floats -0.0, NaN and +-inf."""
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        pool = np.array([0, 1, 2, 3, 7, info.max, info.max - 1], dtype=dt)
        if dt.kind == "i":
            pool = np.concatenate([pool, np.array([-1, -2, -3, -7, info.min, info.min + 1], dtype=dt)])
        a = rng.choice(pool, n)
        if dt.itemsize == 8:  # large magnitudes that round to the same float64: ties in the old ranking
            a[rng.random(n) < 0.1] = dt.type(info.max - 5)
        return a.reshape(shape)
    a = rng.choice(np.array([0.5, 0.25, 1.0, 0.125, 3.0], dtype=dt), n) * rng.choice([-1, 1], n).astype(dt)
    a += rng.normal(0, 0.5, n).astype(dt) * (rng.random(n) < 0.5)
    if special:
        for value, p in ((0.0, 0.08), (-0.0, 0.08), (np.nan, 0.04), (-np.nan, 0.02), (np.inf, 0.02), (-np.inf, 0.02)):
            a[rng.random(n) < p] = value
        # a NaN with another payload: must pass through untouched
        bits = a.view(f"u{dt.itemsize}")
        nan_bits = np.array(np.nan, dt).view(f"u{dt.itemsize}") | 1
        bits[rng.random(n) < 0.02] = nan_bits
    return a.reshape(shape)


def assert_same_bits(got, expected, what=""):
    assert got.dtype == expected.dtype, what
    assert got.shape == expected.shape, what
    if got.dtype == np.longdouble and got.dtype.itemsize > 10:  # x87 extended: 6 bytes are padding
        assert np.array_equal(got, expected, equal_nan=True), what
        assert np.array_equal(np.signbit(got), np.signbit(expected)), what
        return
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes(), what


@pytest.fixture(params=[3, 64, 1 << 16], ids=lambda b: f"block{b}")
def block(request, monkeypatch):
    """Run with tiny blocks too, so that small tensors cross many block boundaries."""
    monkeypatch.setattr(edits, "_BLOCK", request.param)
    return request.param


SHAPES = [(), (1,), (7,), (5, 13), (4, 3, 17), (0, 3)]


# -- element-wise ops -----------------------------------------------------------------


ELEMENTWISE = [
    ("clip", lambda a: Clip(target="t", min=-0.4, max=2.0).compute("t", a, None), lambda a: old_clip(a, -0.4, 2.0)),
    ("clip ints", lambda a: Clip(target="t", min=-3, max=2).compute("t", a, None), lambda a: old_clip(a, -3, 2)),
    ("zero_range", lambda a: ZeroRange(target="t", min=-0.5, max=1.0).compute("t", a, None),
     lambda a: old_zero_range(a, -0.5, 1.0)),
    ("zero_range ints", lambda a: ZeroRange(target="t", min=-2, max=3).compute("t", a, None),
     lambda a: old_zero_range(a, -2, 3)),
    ("zero_outside", lambda a: ZeroOutside(target="t", min=-0.5, max=1.0).compute("t", a, None),
     lambda a: old_zero_outside(a, -0.5, 1.0)),
    ("scale", lambda a: Scale(target="t", factor=-1.5).compute("t", a, None), lambda a: old_scale(a, -1.5)),
    ("scale ints", lambda a: Scale(target="t", factor=3).compute("t", a, None), lambda a: old_scale(a, 3)),
    ("add", lambda a: Add(target="t", value=0.25).compute("t", a, None), lambda a: old_add(a, 0.25)),
    ("add ints", lambda a: Add(target="t", value=5).compute("t", a, None), lambda a: old_add(a, 5)),
    ("prune threshold", lambda a: edits._prune_below(a, 0.5), lambda a: old_prune_threshold(a, 0.5)),
    ("prune threshold 2", lambda a: edits._prune_below(a, 2.0), lambda a: old_prune_threshold(a, 2.0)),
    ("prune threshold 0", lambda a: edits._prune_below(a, 0.0), lambda a: old_prune_threshold(a, 0.0)),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf * 0, int overflow: the same warnings as before
@pytest.mark.parametrize("op", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_ops_give_the_previous_bits(op, dtype, block):
    _, new, old = op
    for i, shape in enumerate(SHAPES):
        a = values(dtype, shape, seed=i)
        a.flags.writeable = False  # session arrays are read-only: the op must not write them
        before = a.tobytes()
        with np.errstate(all="ignore"):
            try:
                expected = old(a)
            except OverflowError:  # a negative parameter cast to an unsigned dtype: still refused
                with pytest.raises(OverflowError):
                    new(a)
                continue
            got = new(a)
        assert_same_bits(got, expected, f"{op[0]} {dtype} {shape}")
        assert a.tobytes() == before
        assert got.base is None or got.base is not a  # a new array, never a view of the input


@pytest.mark.parametrize("layout", ["fortran", "strided", "transposed"])
@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_non_contiguous_inputs(layout, dtype, block):
    base = values(dtype, (9, 14), seed=3)
    a = {
        "fortran": np.asfortranarray(base),
        "strided": base[::2, 1::3],
        "transposed": base.T,
    }[layout]
    pairs = [
        (Clip(target="t", min=-1, max=1).compute("t", a, None), old_clip(a, -1, 1)),
        (ZeroRange(target="t", min=-1, max=1).compute("t", a, None), old_zero_range(a, -1, 1)),
        (Scale(target="t", factor=2).compute("t", a, None), old_scale(a, 2)),
        (edits._prune_below(a, 1), old_prune_threshold(a, 1)),
        (edits._prune_smallest([a], 0.4)[0], old_prune_tensor(a, 0.4)),
    ]
    for got, expected in pairs:
        assert_same_bits(got, expected)


# -- magnitude pruning to a sparsity ----------------------------------------------------------


SPARSITIES = [0.0, 0.01, 0.3, 0.5, 0.77, 0.9, 0.97, 1.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_prune_to_sparsity_per_tensor_gives_the_previous_bits(dtype, block):
    for i, shape in enumerate([(1,), (2,), (7,), (5, 13), (4, 3, 17), (0, 3), ()]):
        a = values(dtype, shape, seed=10 + i)
        a.flags.writeable = False
        before = a.tobytes()
        for sparsity in SPARSITIES:
            with np.errstate(all="ignore"):
                expected = old_prune_tensor(a, sparsity)
            got = edits._prune_smallest([a], sparsity)[0]
            assert_same_bits(got, expected, f"{dtype} {shape} sparsity {sparsity}")
        assert a.tobytes() == before


@pytest.mark.parametrize("dtype", FLOATS)
def test_prune_to_sparsity_every_count_through_ties_and_nans(dtype, block):
    # Few distinct magnitudes, several NaNs: every k lands inside a group of
    # ties at some point, and the last ones reach into the NaNs.
    a = np.array([0.5, -0.5, np.nan, 0.0, -0.0, 1.0, -np.inf, 0.5, np.nan, -1.0, 0.25, -0.5, np.inf, -np.nan, 0.0],
                 dtype=dtype).reshape(3, 5)
    for k in range(a.size + 1):
        sparsity = k / a.size
        got = edits._prune_smallest([a], sparsity)[0]
        assert_same_bits(got, old_prune_tensor(a, sparsity), f"k={k}")
        assert np.count_nonzero(got.view(f"u{a.itemsize}") == 0) >= math.floor(sparsity * a.size)


@pytest.mark.parametrize("seed", range(12))
def test_prune_global_scope_mixed_dtypes_gives_the_previous_bits(seed, block):
    rng = np.random.default_rng(seed)
    dtypes = rng.choice(DTYPES, size=int(rng.integers(1, 5)))
    if seed % 3 == 0:  # floats only: ranked in the common float dtype
        dtypes = rng.choice(FLOATS, size=int(rng.integers(2, 5)))
    arrays = []
    for j, dt in enumerate(dtypes):
        shape = tuple(int(x) for x in rng.integers(0, 9, size=int(rng.integers(0, 3))))
        arr = values(dt, shape, seed=100 * seed + j)
        arr.flags.writeable = False
        arrays.append(arr)
    snapshots = [a.tobytes() for a in arrays]
    for sparsity in SPARSITIES:
        with np.errstate(all="ignore"):
            expected = old_prune_global(arrays, sparsity)
        got = edits._prune_smallest(arrays, sparsity)
        for g, e, dt in zip(got, expected, dtypes):
            assert_same_bits(g, e, f"{dt} sparsity {sparsity} of {list(dtypes)}")
    assert [a.tobytes() for a in arrays] == snapshots


@pytest.mark.parametrize("dtype", FLOATS)
def test_prune_ranks_magnitudes_one_ulp_apart(dtype):
    # Distinct magnitudes one ulp apart, shuffled: ranking them in any coarser
    # dtype would make ties and prune by position instead of by value.
    rng = np.random.default_rng(5)
    dt = np.dtype(dtype)
    a = (dt.type(1) + np.arange(40, dtype=dt) * np.finfo(dt).eps) * rng.choice([-1, 1], 40).astype(dt)
    a = a[rng.permutation(40)]
    order = np.argsort(np.abs(a))
    for k in range(41):
        got = edits._prune_smallest([a], k / 40)[0]
        assert set(np.flatnonzero(got == 0)) == set(order[:k].tolist()), k
        got_global = edits._prune_smallest([a[:15], a[15:]], k / 40)
        assert set(np.flatnonzero(np.concatenate(got_global) == 0)) == set(order[:k].tolist()), k


def test_ties_across_tensors_go_to_the_earlier_tensor_first():
    a = np.array([1.0, 2.0, 1.0], dtype=np.float32)
    b = np.array([1.0, 1.0], dtype=np.float16)
    got = edits._prune_smallest([a, b], 0.6)  # k = 3 of five entries, four tie at 1.0
    np.testing.assert_array_equal(got[0], [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(got[1], [0.0, 1.0])


def test_prune_keeps_memory_to_the_result_and_blocks():
    """Pruning one float tensor allocates its result and block-sized scratch, no full-size temporaries."""
    import tracemalloc

    a = values("float32", (1000, 500), seed=7, special=False)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        got = edits._prune_smallest([a], 0.5)[0]
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert_same_bits(got, old_prune_tensor(a, 0.5))
    assert peak < a.nbytes + 16 * edits._BLOCK * 4


# -- through the session: the recipe path -------------------------------------------------------


def _session(arrays):
    return EditSession(ModelFile.from_arrays(arrays, classes={n.split("/")[0]: "Dense" for n in arrays}))


@pytest.mark.parametrize("scope", ["tensor", "global"])
def test_session_prune_matches_the_previous_implementation(scope, block):
    arrays = {
        "a/kernel": values("float32", (6, 11), seed=1),
        "b/kernel": values("float16", (5, 4), seed=2),
        "c/kernel": values("float64", (13,), seed=3),
        "d/kernel": values("int8", (3, 7), seed=4),
    }
    s = _session(arrays)
    s.apply(PruneMagnitude(target="*", sparsity=0.45, scope=scope))
    if scope == "global":
        expected = dict(zip(arrays, old_prune_global(list(arrays.values()), 0.45)))
    else:
        expected = {n: old_prune_tensor(a, 0.45) for n, a in arrays.items()}
    for name in arrays:
        assert_same_bits(s.array(name), expected[name], name)
    # Undo, then replay the same edit from a recipe: the same bits again.
    first = {n: s.array(n).tobytes() for n in arrays}
    s.undo()
    s.apply_recipe({"version": 1, "edits": [{"op": "prune_magnitude", "target": "*", "sparsity": 0.45, "scope": scope}]})
    assert {n: s.array(n).tobytes() for n in arrays} == first


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize("dtype", ["longdouble", "complex64", "complex128"])
def test_dtypes_only_an_in_memory_model_has_give_the_previous_bits(dtype, block):
    # No format reads these (they refuse complex and floats over 8 bytes), but
    # ModelFile.from_arrays accepts them: the ops behave as they always did.
    rng = np.random.default_rng(9)
    a = rng.choice(np.array([0.5, -0.5, 0.0, 1.0, -2.0, np.nan]), 60).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.choice(np.array([0.0, 1.0, -1.0]), 60)
    a = a.reshape(6, 10)
    pairs = [
        (lambda: Clip(target="t", min=-0.5, max=0.5).compute("t", a, None), lambda: old_clip(a, -0.5, 0.5)),
        (lambda: ZeroRange(target="t", min=-0.5, max=0.5).compute("t", a, None), lambda: old_zero_range(a, -0.5, 0.5)),
        (lambda: Scale(target="t", factor=2).compute("t", a, None), lambda: old_scale(a, 2)),
        (lambda: edits._prune_below(a, 0.5), lambda: old_prune_threshold(a, 0.5)),
        (lambda: edits._prune_smallest([a], 0.4)[0], lambda: old_prune_tensor(a, 0.4)),
        (lambda: edits._prune_smallest([a, a[:2]], 0.4)[1], lambda: old_prune_global([a, a[:2]], 0.4)[1]),
    ]
    for new, old in pairs:
        with np.errstate(all="ignore"):
            try:
                expected = old()
            except TypeError:  # an op the dtype never supported
                with pytest.raises(TypeError):
                    new()
                continue
            assert_same_bits(new(), expected)

"""Seeded mutation fuzzing of every reader: a clean error or a valid read, nothing else, nothing left.

Each case takes one of the suite's own model files (the bundled demo, models
from :mod:`modelfactory`, small TensorFlow fixtures), applies one seeded
mutation from :mod:`fuzzlib` (truncation, byte flips, zeroed blocks, damaged,
renamed, repeated or recompressed zip members, odd zip header fields, bad
config JSON, huge declared shapes, odd dtypes, damaged name lists, links),
opens the result, reads every tensor and closes it. It must give either

- a :class:`~weightlab.core.errors.WeightLabError` whose message names the
  file, or
- a valid read: every tensor an array of its declared shape and dtype;

any other exception fails the case, and so does a file left behind in the
case's folder or a WeightLab temporary file of this process (or of the
TensorFlow reader process) in the temporary folder.

The HDF5/.keras blocks run in child processes (a fresh one per block, spawned):
HDF5 is C code parsing damaged files, and damage it does not detect can
leave the library's state broken for whatever runs next in that process
(the suite once hung for the whole CI budget in a window test that ran right
after this module, inside ``h5py``'s ``get_file_id``, holding the interpreter
lock so that no timeout could fire). In a child, a block that hangs fails
here with its number after a time limit, and nothing else shares the state.

Cases are seeded from ``WEIGHTLAB_FUZZ_SEED`` (default 9) and run in blocks;
a failure names its block, case number, base file and mutation, so
``WEIGHTLAB_FUZZ_SEED=<seed> pytest tests/test_fuzz.py -k "<block>"``
replays it. The outcome counts are printed at the end of the module.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
from pathlib import Path

import fuzzlib
import modelfactory as mf
import numpy as np
import pytest
from tinytf import write_tiny_tf_formats

from weightlab.core.atomic import TEMP_MARK
from weightlab.core.errors import WeightLabError
from weightlab.formats import open_model

SEED = int(os.environ.get("WEIGHTLAB_FUZZ_SEED", "9"))
#: HDF5/.keras cases: BLOCKS x PER_BLOCK (at least 500 per run).
BLOCKS, PER_BLOCK = 12, 45
#: TensorFlow cases: per fixture kind (SavedModel, checkpoint, GraphDef).
TF_PER_KIND = 20

OUTCOMES: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_outcomes(request):
    yield
    if OUTCOMES:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items()))
        line = f"fuzz outcomes (seed {SEED}): {counts}"
        reporter = request.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)


def _ours(pids: set[int]) -> set[str]:
    """WeightLab temporary entries of the given processes in the temporary folder."""
    marks = tuple(f"{TEMP_MARK}{pid}-" for pid in pids)
    return {n for n in os.listdir(tempfile.gettempdir()) if any(m in n for m in marks)}


def _check_error(exc: WeightLabError, folder: Path) -> None:
    assert str(folder) in str(exc), f"the message does not name the file: {exc}"
    assert "Traceback" not in str(exc)


def _open_and_read(path: Path, folder: Path) -> str:
    """Open ``path``, read every tensor, close; return ``"clean error"`` or ``"valid read"``."""
    try:
        model = open_model(path)
    except WeightLabError as exc:
        _check_error(exc, folder)
        return "clean error"
    try:
        for info in list(model.tensors.values()):
            try:
                arr = model.read(info.name)
            except WeightLabError as exc:
                _check_error(exc, folder)
                return "clean error"
            assert isinstance(arr, np.ndarray), type(arr)
            assert arr.shape == info.shape, (info.name, arr.shape, info.shape)
            # The declared dtype is a name ("float64"); values keep the stored byte order.
            assert arr.dtype.newbyteorder("=") == np.dtype(info.dtype), (info.name, arr.dtype, info.dtype)
        return "valid read"
    finally:
        model.close()


def _collect_block(part: str, cases, pids) -> tuple[collections.Counter[str], list[str]]:
    """Run ``cases`` = [(label, make(folder) -> description, folder, path to open)].

    Returns the outcome counts and one line per case that raised anything
    but a WeightLabError naming the file, read a tensor of the wrong shape or
    dtype, or left files behind.
    """
    counts: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    for label, make, folder, path in cases:
        folder.mkdir(parents=True)
        before = _ours(pids())
        what = "?"
        try:
            what = make(folder)
            before_files = sorted(p.relative_to(folder) for p in folder.rglob("*"))
            outcome = _open_and_read(path, folder)
            after_files = sorted(p.relative_to(folder) for p in folder.rglob("*"))
            assert after_files == before_files, (
                f"files changed in the case folder: {before_files} -> {after_files}"
            )
            left = _ours(pids()) - before
            assert not left, f"temporary files left behind: {sorted(left)}"
            counts[outcome] += 1
        except Exception as exc:  # noqa: BLE001 - every failing case is listed
            counts["other"] += 1
            failures.append(f"{label} [{what}]: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return counts, failures


def _check_block(part: str, counts: collections.Counter[str], failures: list[str]) -> None:
    OUTCOMES.update({f"{part}: {k}": v for k, v in counts.items()})
    assert not failures, f"{len(failures)} case(s) failed:\n" + "\n".join(failures[:15])


def _run_block(part: str, cases, pids) -> collections.Counter[str]:
    """:func:`_collect_block` in this process; fails listing every failing case."""
    counts, failures = _collect_block(part, cases, pids)
    _check_block(part, counts, failures)
    return counts


# -- HDF5 and .keras, in a child process ---------------------------------------------------


@pytest.fixture(scope="module")
def bases(tmp_path_factory, demo_paths) -> list[tuple[Path, str]]:
    """``(file, kind)`` for the demo files and modelfactory models in every Keras format."""
    d = tmp_path_factory.mktemp("fuzzbases")
    k3 = mf.save_keras3(d / "k3", "cnn")
    k2 = mf.save_tf_keras(d / "k2", "rnn")
    out = [(demo_paths["keras"], "zip"), (demo_paths["h5"], "h5")]
    out += [(k3.paths["keras"], "zip"), (k3.paths["h5"], "h5"), (k3.paths["weights.h5"], "h5")]
    out += [(k2.paths["h5"], "h5"), (k2.paths["h5-weights"], "h5")]
    for path, _ in out:  # the unmutated files read cleanly
        assert _open_and_read(path, path.parent) == "valid read", path
    return out


def _hdf5_block(bases: list[tuple[Path, str]], root: Path, block: int) -> tuple[dict[str, int], list[str]]:
    """One block of HDF5/.keras cases (run in the child process; its own pid for the temporary-file check)."""
    cases = []
    for i in range(PER_BLOCK):
        rng = np.random.default_rng([SEED, block, i])
        src, kind = bases[int(rng.integers(0, len(bases)))]
        mutations = fuzzlib.mutations_for(kind)
        mutation = mutations[int(rng.integers(0, len(mutations)))]

        def make(folder, src=src, kind=kind, mutation=mutation, rng=rng):
            return f"{mutation.__name__}: {mutation(rng, src, folder / src.name, kind)}"

        label = f"seed {SEED} block {block} case {i} ({src.name}, {mutation.__name__})"
        folder = root / f"case{i}"
        cases.append((label, make, folder, folder / src.name))
    counts, failures = _collect_block("HDF5/.keras", cases, lambda: {os.getpid()})
    return dict(counts), failures


#: Seconds one block may take in the child (a block takes a few seconds).
BLOCK_LIMIT = 240


@pytest.fixture
def hdf5_child():
    """A spawned process that runs one block of HDF5/.keras cases (killed if the block hangs)."""
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):  # a hung child does not end
            if proc.is_alive():
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("block", range(BLOCKS), ids=lambda b: f"block{b}")
def test_fuzz_keras_and_hdf5(bases, hdf5_child, tmp_path, block):
    import concurrent.futures

    future = hdf5_child.submit(_hdf5_block, bases, tmp_path, block)
    try:
        counts_dict, failures = future.result(timeout=BLOCK_LIMIT)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"seed {SEED} block {block}: no result after {BLOCK_LIMIT} s (HDF5 hung on a damaged file)")
    counts = collections.Counter(counts_dict)
    _check_block("HDF5/.keras", counts, failures)
    # The mutations reach both outcomes: damage that is refused, and damage that still reads.
    assert counts["clean error"] >= PER_BLOCK // 5, counts
    assert counts["valid read"] >= 2, counts


# -- TensorFlow files, through the engine's reader process ------------------------------


class _SharedReader:
    """Stands in for :class:`TFReaderProcess` in the handlers: one child for a whole block.

    Each opened model gets its own instance (with its own name for messages);
    all of them call one real reader process, ended by the block.
    """

    process = None

    def __init__(self, shown):
        self.shown = os.fspath(shown)

    def _real(self):
        type(self).process.shown = self.shown
        return type(self).process

    def list(self, kind, location):
        return self._real().list(kind, location)

    def read(self, kind, location, key):
        return self._real().read(kind, location, key)

    def save(self, kind, location, changed, out):  # pragma: no cover - the fuzzer never saves
        return self._real().save(kind, location, changed, out)

    @property
    def pid(self):
        return type(self).process.pid

    def close(self):
        pass


@pytest.fixture(scope="module")
def tf_bases(tmp_path_factory) -> dict[str, Path]:
    """A SavedModel folder, a checkpoint folder and a folder holding a frozen GraphDef."""
    pytest.importorskip("tensorflow")
    return write_tiny_tf_formats(tmp_path_factory.mktemp("fuzztf"))


def _graphdef_shape(rng, src: Path, dst: Path, kind: str) -> str:
    """Give a Const a huge declared shape, another dtype, or content of the wrong length."""
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(src.read_bytes())
    consts = [n for n in gd.node if n.op == "Const"]
    node = consts[int(rng.integers(0, len(consts)))]
    t = node.attr["value"].tensor
    choice = int(rng.integers(0, 4))
    if choice == 0:
        del t.tensor_shape.dim[:]
        for d in (1 << 31, 1 << 31):
            t.tensor_shape.dim.add(size=d)
    elif choice == 1:
        t.tensor_shape.dim.add(size=-5)
    elif choice == 2:
        t.dtype = node.attr["dtype"].type = tf.complex64.as_datatype_enum
    else:
        t.tensor_content = t.tensor_content[: len(t.tensor_content) // 2]
    dst.write_bytes(gd.SerializeToString())
    return f"{node.name}: variant {choice}"


def _remove(rng, src: Path, dst: Path, kind: str) -> str:
    dst.unlink()
    return "file removed"


@pytest.mark.parametrize("kind", ["savedmodel", "checkpoint", "graphdef"])
def test_fuzz_tensorflow_reader(tf_bases, tmp_path, monkeypatch, kind):
    from weightlab.formats import tf_formats  # registers the TensorFlow formats

    real_process = tf_formats.TFReaderProcess

    base = tf_bases[kind]
    files = sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())
    mutations = [*fuzzlib.RAW_MUTATIONS, *fuzzlib.RAW_MUTATIONS, _remove]
    if kind == "graphdef":
        mutations += [_graphdef_shape, _graphdef_shape]
    cases = []
    for i in range(TF_PER_KIND):
        rng = np.random.default_rng([SEED, 1000 + len(kind), i])
        rel = files[int(rng.integers(0, len(files)))]
        mutation = mutations[int(rng.integers(0, len(mutations)))]

        def make(folder, rel=rel, mutation=mutation, rng=rng):
            shutil.rmtree(folder)
            shutil.copytree(base, folder)
            return f"{rel}: {mutation.__name__}: {mutation(rng, base / rel, folder / rel, 'tf')}"

        label = f"seed {SEED} {kind} case {i} ({rel}, {mutation.__name__})"
        folder = tmp_path / f"case{i}"
        opened = {"savedmodel": folder, "checkpoint": folder / "ckpt.index", "graphdef": folder / "frozen.pb"}
        cases.append((label, make, folder, opened[kind]))

    _SharedReader.process = real_process(tmp_path)
    monkeypatch.setattr(tf_formats, "TFReaderProcess", _SharedReader)
    pids = {os.getpid()}

    def all_pids():
        if _SharedReader.process.pid is not None:
            pids.add(_SharedReader.process.pid)
        return pids

    try:
        counts = _run_block("TensorFlow", cases, all_pids)
    finally:
        _SharedReader.process.close()
        _SharedReader.process = None
    assert counts["clean error"] >= 2, counts

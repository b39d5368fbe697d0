"""Damaged, foreign and hostile files: each gives a FormatError naming the file, nothing else.

The corpus is generated here with h5py/zipfile only (no TensorFlow), in the
Keras layouts, so these tests are fast.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from weightlab.core.errors import FormatError, UnsafeFileError
from weightlab.formats import describe_file, open_model


def _legacy_h5(path: Path, extra=None) -> Path:
    """A minimal legacy Keras .h5 (one Dense layer); ``extra(layer_group)`` may add a bad weight."""
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(
            {
                "class_name": "Sequential",
                "config": {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "dense"}}]},
            }
        )
        h5.attrs["keras_version"] = "2.21.0"
        mw = h5.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"dense"])
        g = mw.create_group("dense")
        g.create_dataset("dense/kernel:0", data=np.arange(12, dtype="float32").reshape(4, 3))
        g.create_dataset("dense/bias:0", data=np.zeros(3, "float32"))
        names = [b"dense/kernel:0", b"dense/bias:0"]
        if extra is not None:
            names.append(extra(g, path).encode())
        g.attrs["weight_names"] = np.array(names)
    return path


def _keras_zip(path: Path, weights_h5: Path | None = None) -> Path:
    """A minimal .keras archive with one Dense layer."""
    inner = path.with_suffix(".inner")
    if weights_h5 is None:
        with h5py.File(inner, "w") as h5:
            v = h5.create_group("layers/dense/vars")
            v.attrs["name"] = "dense"
            v.create_dataset("0", data=np.ones((4, 3), "float32"))
            v.create_dataset("1", data=np.zeros(3, "float32"))
        weights_h5 = inner
    config = {
        "class_name": "Sequential",
        "config": {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "dense"}}]},
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(config))
        zf.write(weights_h5, "model.weights.h5")
    inner.unlink(missing_ok=True)
    return path


def test_good_minimal_files_open(tmp_path):
    with open_model(_legacy_h5(tmp_path / "ok.h5")) as m:
        assert list(m.tensors) == ["dense/kernel", "dense/bias"]
        assert m.read("dense/kernel")[3, 2] == 11
    with open_model(_keras_zip(tmp_path / "ok.keras")) as m:
        assert list(m.tensors) == ["dense/kernel", "dense/bias"]


def _bad_corpus(d: Path) -> dict[str, tuple[Path, str]]:
    """{case: (path, text expected in the message)}."""
    good_h5 = _legacy_h5(d / "good.h5").read_bytes()
    good_keras = _keras_zip(d / "good.keras").read_bytes()
    c: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes | str, expect: str) -> None:
        p = d / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        c[name] = (p, expect)

    for frac in (0.0, 0.01, 0.3, 0.5, 0.9, 0.999):
        n = int(len(good_h5) * frac)
        put(f"trunc{n}.h5", good_h5[:n], "file is empty" if n == 0 else "")
        n = int(len(good_keras) * frac)
        put(f"trunc{n}.keras", good_keras[:n], "file is empty" if n == 0 else "")
    put("flipped.h5", b"\x88" + good_h5[1:], "not a Keras model file")
    put("flipped.keras", b"QK" + good_keras[2:], "not a Keras model file")
    put("text.h5", "layer,weight\ndense,0.5\n", "text file")
    put("random.keras", np.random.default_rng(0).bytes(5000), "random binary data")
    put("page.keras", "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", "HTML page")
    put("lfs.h5", "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer")
    with zipfile.ZipFile(d / "empty.keras", "w"):
        pass
    c["empty.keras"] = (d / "empty.keras", "empty zip archive")
    with zipfile.ZipFile(d / "nocfg.keras", "w") as zf:
        zf.writestr("readme.txt", "hi")
    c["nocfg.keras"] = (d / "nocfg.keras", "no config.json")
    with zipfile.ZipFile(d / "badjson.keras", "w") as zf:
        zf.writestr("config.json", "{not json")
        zf.writestr("model.weights.h5", good_h5)
    c["badjson.keras"] = (d / "badjson.keras", "config.json")
    with zipfile.ZipFile(d / "npz.keras", "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        zf.writestr("model.weights.npz", b"")
    c["npz.keras"] = (d / "npz.keras", "model.weights.npz")
    with h5py.File(d / "plain.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    c["plain.h5"] = (d / "plain.h5", "HDF5 file without Keras model weights")
    c["missing.h5"] = (d / "missing.h5", "no such file")
    (d / "folder.keras").mkdir()
    c["folder.keras"] = (d / "folder.keras", "folder")
    put("empty.h5", b"", "file is empty")

    # hostile HDF5
    (d / "secret.h5").write_bytes(good_h5)

    def external_link(g, path):
        g["dense/evil:0"] = h5py.ExternalLink(str(d / "secret.h5"), "/model_weights/dense/dense/kernel:0")
        return "dense/evil:0"

    def soft_link(g, path):
        g["dense/alias:0"] = h5py.SoftLink("/model_weights/dense/dense/kernel:0")
        return "dense/alias:0"

    def external_storage(g, path):
        (d / "raw.bin").write_bytes(b"\0" * 48)
        g.create_dataset("dense/ext:0", shape=(12,), dtype="float32", external=[(str(d / "raw.bin"), 0, 48)])
        return "dense/ext:0"

    def virtual(g, path):
        layout = h5py.VirtualLayout(shape=(3,), dtype="float32")
        layout[:] = h5py.VirtualSource(str(d / "secret.h5"), "model_weights/dense/dense/bias:0", shape=(3,))
        g.create_virtual_dataset("dense/virt:0", layout)
        return "dense/virt:0"

    def huge_unallocated(g, path):
        g.create_dataset("dense/huge:0", shape=(1 << 40,), dtype="float32", chunks=(1 << 20,))
        return "dense/huge:0"

    def huge_contiguous(g, path):
        g.create_dataset("dense/big:0", shape=(1 << 22,), dtype="float32")  # 16 MiB declared, none stored
        return "dense/big:0"

    def compressed_bomb(g, path):
        g.create_dataset("dense/zip:0", data=np.zeros(1 << 22, "int8"), chunks=(1 << 20,), compression="gzip")
        return "dense/zip:0"

    def strings(g, path):
        g.create_dataset("dense/str:0", data=np.array([b"a", b"b"]))
        return "dense/str:0"

    for fn, expect in [
        (external_link, "external link"),
        (soft_link, "soft link"),
        (external_storage, "external storage"),
        (virtual, "virtual dataset"),
        (huge_unallocated, "huge"),
        (huge_contiguous, "big"),
        (compressed_bomb, "ratio"),
        (strings, "not numeric"),
    ]:
        p = _legacy_h5(d / f"{fn.__name__}.h5", fn)
        c[p.name] = (p, expect)
    # a hostile weights store inside a .keras archive
    inner = d / "inner_bad.h5"
    with h5py.File(inner, "w") as h5:
        v = h5.create_group("layers/dense/vars")
        v["0"] = h5py.ExternalLink(str(d / "secret.h5"), "/model_weights/dense/dense/kernel:0")
        v.create_dataset("1", data=np.zeros(3, "float32"))
    c["extlink.keras"] = (_keras_zip(d / "extlink.keras", inner), "external link")
    # a contiguous dataset whose declared extent runs past the end of the file
    p = _legacy_h5(
        d / "past_end.h5",
        lambda g, path: (g.create_dataset("dense/w:0", data=np.ones(1 << 16, "float32")), "dense/w:0")[1],
    )
    p.write_bytes(p.read_bytes()[: -(1 << 17)])
    c["past_end.h5"] = (p, "")
    return c


CASES = [
    *(f"trunc{i}" for i in range(12)),
    "flipped.h5", "flipped.keras", "text.h5", "random.keras", "page.keras", "lfs.h5", "empty.keras",
    "nocfg.keras", "badjson.keras", "npz.keras", "plain.h5", "missing.h5", "folder.keras", "empty.h5",
    "external_link.h5", "soft_link.h5", "external_storage.h5", "virtual.h5", "huge_unallocated.h5",
    "huge_contiguous.h5", "compressed_bomb.h5", "strings.h5", "extlink.keras", "past_end.h5",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    c = _bad_corpus(tmp_path_factory.mktemp("bad"))
    truncs = sorted(k for k in c if k.startswith("trunc"))
    assert len(truncs) == 12
    c.update({f"trunc{i}": c[k] for i, k in enumerate(truncs)})
    return c


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_format_error(corpus, case):
    path, expect = corpus[case]
    with pytest.raises(FormatError) as exc:
        open_model(path).close()
    assert type(exc.value) in (FormatError, UnsafeFileError)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: "), msg
    assert expect in msg, msg
    assert "Traceback" not in msg


@pytest.mark.parametrize(
    "case", ["external_link.h5", "soft_link.h5", "external_storage.h5", "virtual.h5", "huge_unallocated.h5",
             "huge_contiguous.h5", "compressed_bomb.h5", "strings.h5", "extlink.keras"]
)  # fmt: skip
def test_unsafe_files_are_refused_as_unsafe(corpus, case):
    path, _ = corpus[case]
    with pytest.raises(UnsafeFileError):
        open_model(path)


def test_describe_file(corpus):
    assert describe_file(corpus["text.h5"][0]) == "a text file"
    assert describe_file(corpus["random.keras"][0]) == "random binary data"
    assert describe_file(corpus["page.keras"][0]).startswith("an HTML page")
    assert describe_file(corpus["lfs.h5"][0]).startswith("a Git LFS pointer")
    assert describe_file(corpus["empty.keras"][0]) == "an empty zip archive"
    assert describe_file(corpus["plain.h5"][0]) == "an HDF5 file without Keras model weights"
    assert describe_file(corpus["empty.h5"][0]) == "empty file"
    assert describe_file(corpus["missing.h5"][0]) == "no such file"

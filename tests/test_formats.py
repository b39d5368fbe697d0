"""Reading and writing Keras files in every format against models built in code."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import modelfactory as mf
import numpy as np
import pytest

from weightlab.core.errors import FormatError, WeightLabError
from weightlab.formats import FORMATS, describe_file, open_model, save_model

CASES = [("keras3", m, f) for m in mf.MODELS for f in ("keras", "h5", "weights.h5")] + [
    ("tf_keras", m, f) for m in mf.MODELS for f in ("h5", "h5-weights")
]
IDS = ["-".join(c) for c in CASES]
FORMAT_OF = {"keras": "keras", "h5": "h5", "weights.h5": "weights.h5", "h5-weights": "h5"}


@pytest.fixture(scope="session")
def saved(tmp_path_factory) -> dict[tuple[str, str], mf.Saved]:
    """Every test model in every format, built once per session."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {(s.kind, s.model): s for s in mf.build_all(tmp_path_factory.mktemp("models"))}


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _expected_names(s: mf.Saved, fmt: str, model) -> dict[str, str]:
    """{reference name: name in the opened file}; weights.h5 may say var_N where names are unknowable."""
    if fmt != "weights.h5":
        return {n: n for n in s.weights}
    out = {}
    for layer in s.weight_layers:
        ref = [n for n in s.weights if n.rsplit("/", 1)[0] == layer]
        got = [t.name for t in model.layer(layer).tensors]
        assert len(got) == len(ref), layer
        for r, g in zip(ref, got):
            assert g == r or g.split("/")[-1].startswith("var_"), (r, g)
            out[r] = g
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_read_matches_reference(saved, case):
    kind, name, fmt = case
    s = saved[kind, name]
    with open_model(s.paths[fmt]) as m:
        assert m.format == FORMAT_OF[fmt]
        names = _expected_names(s, fmt, m)
        assert list(m.tensors) == [names[n] for n in s.weights]  # same names in model order
        assert [layer.name for layer in m.layers if layer.tensors] == s.weight_layers
        if fmt in ("keras", "h5"):
            assert [layer.name for layer in m.layers] == s.layers
        for ref_name, ref in s.weights.items():
            info = m.tensor(names[ref_name])
            assert info.shape == ref.shape and info.dtype == ref.dtype.name
            got = m.read(info.name)
            assert got.dtype == ref.dtype and np.array_equal(got, ref), ref_name
        if m.config is not None:
            assert m.config["class_name"] in ("Sequential", "Functional")


def test_keras_class_names_and_trainable(saved):
    s = saved["keras3", "cnn"]
    for fmt in ("keras", "h5"):
        with open_model(s.paths[fmt]) as m:
            classes = [layer.class_name for layer in m.layers]
            assert classes == [
                "InputLayer", "Conv2D", "BatchNormalization", "DepthwiseConv2D", "Add",
                "SeparableConv2D", "Flatten", "Dense", "LayerNormalization", "Dense",
            ]  # fmt: skip
            bn = m.layers[2]
            assert [t.trainable for t in bn.tensors] == [True, True, False, False]
            assert m.attrs["keras_version"].startswith("3.")
            if fmt == "keras":
                assert m.layers[1].tensors[0].key == "layers/conv2d/vars/0"
                assert m.layers[7].tensors[0].key == "layers/sequential/layers/dense/vars/0"


def _edit(m) -> dict[str, np.ndarray]:
    names = list(m.tensors)
    picked = [names[0], names[-1]]
    return {n: (m.read(n) * -1.5 + 0.25).astype(m.tensor(n).dtype) for n in picked}


def _h5_tree(path: Path, root: str = "") -> dict[str, object]:
    """{path: attrs dict or dataset bytes} of every object of an HDF5 file."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as h5:
        out["/attrs"] = {k: np.asarray(v).tolist() for k, v in h5.attrs.items()}

        def visit(name, obj):
            out[name + "/attrs"] = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                out[name] = np.asarray(obj[()]).tobytes()

        h5.visititems(visit)
    return out


def _zip_h5(path: Path, tmp: Path) -> Path:
    dest = tmp / f"{path.name}.inner.h5"
    with zipfile.ZipFile(path) as zf:
        dest.write_bytes(zf.read("model.weights.h5"))
    return dest


def _load_reference(s: mf.Saved, fmt: str, out: Path) -> dict[str, np.ndarray]:
    """Weights of ``out`` as Keras itself loads them, under reference names."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if s.kind == "keras3":
            import keras

            if fmt == "weights.h5":
                model = keras.saving.load_model(s.paths["keras"], compile=False)
                model.load_weights(out)
            else:
                model = keras.saving.load_model(out, compile=False)
            return mf._reference(model, keras2=False)[0]
        import tf_keras

        if fmt == "h5-weights":
            model = tf_keras.models.load_model(s.paths["h5"], compile=False)
            model.load_weights(out)
        else:
            model = tf_keras.models.load_model(out, compile=False)
        return mf._reference(model, keras2=True)[0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_edit_save_reread(saved, case, tmp_path):
    kind, name, fmt = case
    s = saved[kind, name]
    src = s.paths[fmt]
    before = _sha(src)
    out = tmp_path / ("edited" + "".join(src.suffixes))
    with open_model(src) as m:
        names = _expected_names(s, fmt, m)
        changed = _edit(m)
        save_model(m, changed, out)
    assert _sha(src) == before, "saving touched the source"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name], "temporary files left behind"

    with open_model(out) as m2:
        assert list(m2.tensors) == [names[n] for n in s.weights]
        for ref_name, ref in s.weights.items():
            got = m2.read(names[ref_name])
            want = changed.get(names[ref_name], ref)
            assert np.array_equal(got, want), ref_name
        changed_keys = {m2.tensor(n).key for n in changed}

    # the rest of the file is preserved
    if fmt == "keras":
        with zipfile.ZipFile(src) as a, zipfile.ZipFile(out) as b:
            assert [(i.filename, i.compress_type) for i in a.infolist()] == [
                (i.filename, i.compress_type) for i in b.infolist()
            ]
            for n in a.namelist():
                if n != "model.weights.h5":
                    assert a.read(n) == b.read(n), n
        old_tree, new_tree = _h5_tree(_zip_h5(src, tmp_path)), _h5_tree(_zip_h5(out, tmp_path))
    else:
        old_tree, new_tree = _h5_tree(src), _h5_tree(out)
    assert old_tree.keys() == new_tree.keys()
    diff = {k for k in old_tree if old_tree[k] != new_tree[k]}
    assert diff == changed_keys
    assert any("optimizer" in k for k in old_tree) == (fmt != "h5-weights")  # optimizer state kept

    # Keras itself loads the edited file with the edited values
    loaded = _load_reference(s, fmt, out)
    inv = {v: k for k, v in names.items()}
    for n, arr in changed.items():
        assert np.array_equal(loaded[inv[n]], arr), n
    for n in s.weights:
        if names[n] not in changed:
            assert np.array_equal(loaded[n], s.weights[n]), n


def test_compressed_keras_archive(saved, tmp_path):
    s = saved["keras3", "cnn"]
    src = tmp_path / "deflated.keras"
    with zipfile.ZipFile(s.paths["keras"]) as zin, zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info), compress_type=zipfile.ZIP_DEFLATED)
    kernel = next(n for n in s.weights if n.endswith("/kernel"))
    bias = kernel.replace("/kernel", "/bias")
    with open_model(src) as m:
        assert m.attrs["weights_compressed"] is True
        assert np.array_equal(m.read(kernel), s.weights[kernel])
        save_model(m, {bias: np.zeros(s.weights[bias].shape, "float32")}, tmp_path / "out.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deflated.keras", "out.keras"]
    with zipfile.ZipFile(tmp_path / "out.keras") as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    with open_model(tmp_path / "out.keras") as m:
        assert not m.read(bias).any()


def test_save_over_source_and_bad_values(saved, tmp_path):
    src = tmp_path / "m.h5"
    shutil.copyfile(saved["keras3", "dense"].paths["h5"], src)
    with open_model(src) as m:
        kernel = next(iter(m.tensors))
        with pytest.raises(WeightLabError, match="no tensor named"):
            save_model(m, {"nope/kernel": np.zeros(1)}, tmp_path / "x.h5")
        with pytest.raises(FormatError, match="shape"):
            save_model(m, {kernel: np.zeros((1, 1), "float32")}, tmp_path / "x.h5")
        with pytest.raises(FormatError, match="dtype"):
            save_model(m, {kernel: np.zeros(m.tensor(kernel).shape, "complex64")}, tmp_path / "x.h5")
        new = np.ones(m.tensor(kernel).shape)  # float64 is cast to the stored float32
        save_model(m, {kernel: new}, src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]
    with open_model(src) as m:
        assert np.array_equal(m.read(kernel), new.astype("float32"))


@pytest.mark.parametrize("fmt", ["keras", "h5", "weights.h5"])
def test_save_to_bad_destination(saved, tmp_path, fmt):
    with open_model(saved["keras3", "dense"].paths[fmt]) as m:
        change = {next(iter(m.tensors)): m.read(next(iter(m.tensors)))}
        with pytest.raises(FormatError) as exc:
            save_model(m, change, tmp_path / "missing" / "out.bin")
        assert "missing" in str(exc.value)
        with pytest.raises(FormatError):
            save_model(m, change, tmp_path)  # a folder
        if os.name == "posix" and os.geteuid() != 0:
            locked = tmp_path / "locked"
            locked.mkdir()
            locked.chmod(0o500)
            try:
                with pytest.raises(FormatError, match="locked"):
                    save_model(m, change, locked / "out.bin")
                assert list(locked.iterdir()) == []
            finally:
                locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["locked"])


def test_source_changed_on_disk(saved, tmp_path):
    src = tmp_path / "m.keras"
    shutil.copyfile(saved["keras3", "dense"].paths["keras"], src)
    with open_model(src) as m:
        os.utime(src, ns=(1, 1))
        with pytest.raises(FormatError, match="changed on disk"):
            save_model(m, {}, tmp_path / "out.keras")


def test_read_after_close(saved):
    m = open_model(saved["keras3", "dense"].paths["keras"])
    m.close()
    with pytest.raises(FormatError, match="closed"):
        m.read(next(iter(m.tensors)))


def test_registry_and_describe(saved):
    # the built-in Keras handlers; TensorFlow formats register themselves after them
    keras_formats = [f for f in FORMATS if f.name in ("keras", "h5", "weights.h5")]
    assert [f.name for f in keras_formats] == ["keras", "h5", "weights.h5"]
    for f in FORMATS:
        assert f.description and callable(f.sniff)
    assert all(f.extensions for f in keras_formats)  # (a SavedModel is a folder: none)
    s = saved["keras3", "dense"]
    assert describe_file(s.paths["keras"]) == "a Keras archive"
    # detection is by content: a .keras file renamed .h5 still opens as "keras"
    assert [f.sniff(s.paths["keras"]) for f in FORMATS] == [f.name == "keras" for f in FORMATS]
    assert [f.sniff(s.paths["weights.h5"]) for f in FORMATS] == [f.name == "weights.h5" for f in FORMATS]


def test_renamed_file_opens_by_content(saved, tmp_path):
    p = tmp_path / "model.bin"
    shutil.copyfile(saved["keras3", "rnn"].paths["keras"], p)
    with open_model(p) as m:
        assert m.format == "keras"


def test_import_does_not_import_tensorflow():
    code = (
        "import weightlab.formats, sys; "
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras', 'PySide6') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])

"""Install like a Python tool (issue 14): the demo is package data, ``python -m weightlab.demo``
says what to install and writes where the user says, the metadata accepts Python 3.10 to 3.13,
and packaging/check-wheel (run by ./dev test) catches a wheel without its data.

The full check (build, fresh environment, the demo from the wheel) is packaging/check-wheel
itself, run after the suite by ./dev test: minutes, so not repeated here.
"""

from __future__ import annotations

import fnmatch
import importlib.machinery
import importlib.util
import json
import shutil
import sys
import sysconfig
import types
import zipfile
from pathlib import Path

import pytest

import weightlab
from weightlab import demo
from weightlab.core.errors import WeightLabError
from weightlab.demo import __main__ as demo_main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(weightlab.__file__).resolve().parent

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _check_wheel() -> types.ModuleType:
    """packaging/check-wheel (a script without .py) as a module."""
    loader = importlib.machinery.SourceFileLoader("check_wheel", str(ROOT / "packaging" / "check-wheel"))
    spec = importlib.util.spec_from_loader("check_wheel", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_demo_files_live_in_the_package():
    for path in (demo.MODEL_KERAS, demo.MODEL_H5, demo.HELDOUT, demo.TRAIN):
        assert path.is_file(), path
        assert PACKAGE in path.resolve().parents, f"{path} is outside the weightlab package"
    assert not (ROOT / "resources").exists(), "the demo moved to weightlab/resources/demo"


def test_package_data_globs_cover_every_shipped_resource():
    globs = _pyproject()["tool"]["setuptools"]["package-data"]["weightlab"]
    shipped = [
        p.relative_to(PACKAGE).as_posix()
        for p in (PACKAGE / "resources").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert any(s.startswith("resources/demo/") for s in shipped)
    assert any(s.startswith("resources/icons/") and s.endswith(".svg") for s in shipped)
    for rel in shipped:
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} would be left out of the wheel ({globs})"


def test_metadata_accepts_python_3_10_to_3_13():
    from packaging.specifiers import SpecifierSet

    project = _pyproject()["project"]
    spec = SpecifierSet(project["requires-python"])
    assert [v for v in ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14") if spec.contains(f"{v}.0")] == [
        "3.10", "3.11", "3.12", "3.13",
    ]
    for v in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {v}" in project["classifiers"]
    tool = _pyproject()["tool"]
    assert tool["ruff"]["target-version"] == "py310"
    assert tool["mypy"]["python_version"] == "3.10"


def test_dependencies_carry_no_environment_markers():
    # pip install --dry-run --python-version X evaluates markers for the Python pip runs
    # on, so check-wheel's resolution for 3.10/3.12/3.13 is only true without them.
    for req in _pyproject()["project"]["dependencies"]:
        assert ";" not in req, req


def test_rebuild_without_scikit_learn_says_what_to_install(tmp_path, monkeypatch, capsys):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError
    out = tmp_path / "out"
    assert demo_main.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'weightlab[demo]'" in err
    assert "scikit-learn" in err
    assert not out.exists()


def test_rebuild_refuses_the_installed_packages(capsys):
    site = Path(sysconfig.get_paths()["purelib"])
    with pytest.raises(WeightLabError, match="--out"):
        demo_main.check_out_dir(site / "weightlab" / "resources" / "demo")
    assert demo_main.main(["--out", str(site / "anything")]) == 2
    assert "will not write the demo into the installed packages" in capsys.readouterr().err


def test_rebuild_writes_to_the_current_folder_by_default(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    built = []

    def build(out, split, *, seed, epochs):  # stands in for the TensorFlow training
        built.append((out, epochs))
        return 0.99

    monkeypatch.setitem(sys.modules, "weightlab._tf.demo", types.SimpleNamespace(build=build))
    monkeypatch.chdir(tmp_path)
    assert demo_main.main(["--epochs", "1"]) == 0
    assert built == [(tmp_path.resolve(), 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_heldout.npz", "digits_train.npz"]


def test_check_wheel_refuses_a_wheel_without_its_demo(tmp_path):
    check_wheel = _check_wheel()
    good, bad = tmp_path / "good.whl", tmp_path / "bad.whl"
    members = ["weightlab/py.typed", "weightlab/resources/icons/weightlab.svg"]
    members += [f"weightlab/resources/demo/{p.name}" for p in demo.DEMO_DIR.iterdir()]
    for path, names in ((good, members), (bad, [m for m in members if "digits_heldout" not in m])):
        with zipfile.ZipFile(path, "w") as zf:
            for name in names:
                zf.writestr(name, b"")
    check_wheel.check_contents(good)
    with pytest.raises(check_wheel.CheckFailed, match="digits_heldout.npz"):
        check_wheel.check_contents(bad)


def _config_keys(obj, found=None) -> set[tuple[str, object]]:
    found = set() if found is None else found
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(v, (dict, list)):
                found.add((k, repr(v)))
            _config_keys(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _config_keys(v, found)
    return found


def _demo_configs(folder: Path) -> tuple[dict, dict]:
    import h5py

    with zipfile.ZipFile(folder / demo.MODEL_KERAS.name) as zf:
        keras_config = json.loads(zf.read("config.json"))
    with h5py.File(folder / demo.MODEL_H5.name, "r") as f:
        h5_config = json.loads(f.attrs["model_config"])
    return keras_config, h5_config


def test_shipped_demo_loads_in_keras_3_12_too():
    # Keras 3.12 (Python 3.10) refuses the keys Keras 3.13+ writes even at their defaults.
    at_defaults = {(k, repr(v)) for k, v in demo.NEWER_KERAS_DEFAULTS.items()}
    for config in _demo_configs(demo.DEMO_DIR):
        assert not _config_keys(config) & at_defaults


def test_make_portable_changes_only_the_configs(tmp_path):
    for path in (demo.MODEL_KERAS, demo.MODEL_H5):
        shutil.copy2(path, tmp_path / path.name)
    with zipfile.ZipFile(tmp_path / demo.MODEL_KERAS.name) as zf:
        config = json.loads(zf.read("config.json"))
    config["config"]["layers"][1]["config"]["renorm"] = False  # as Keras 3.15 writes it
    config["config"]["layers"][1]["config"]["quantization_config"] = {"mode": "int8"}  # not a default: kept
    members = {}
    with zipfile.ZipFile(demo.MODEL_KERAS) as src, zipfile.ZipFile(tmp_path / demo.MODEL_KERAS.name, "w") as out:
        for info in src.infolist():
            data = json.dumps(config).encode() if info.filename == "config.json" else src.read(info)
            members[info.filename] = data
            out.writestr(info, data)
    demo.make_portable(tmp_path)
    keras_config, _ = _demo_configs(tmp_path)
    layer = keras_config["config"]["layers"][1]["config"]
    assert "renorm" not in layer and layer["quantization_config"] == {"mode": "int8"}
    with zipfile.ZipFile(tmp_path / demo.MODEL_KERAS.name) as zf:
        assert zf.namelist() == list(members)
        for name in members:
            if name != "config.json":
                assert zf.read(name) == members[name], name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([demo.MODEL_KERAS.name, demo.MODEL_H5.name])


def test_the_version_has_one_source():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "weightlab._version.__version__"}

"""Issue 14, part D: names as Keras names them, auxiliary (optimizer/metrics) variables, CLI polish, start-up check.

The Keras 2.0.x fixture is written with h5py in the layout Keras 2.0.8's
``save_model`` / ``topology.save_weights_to_hdf5_group`` wrote: root attrs
``keras_version``, ``backend``, ``model_config`` (a Sequential config whose
``config`` is the layer list itself), a ``model_weights`` group with
``layer_names``, and per layer a group with ``weight_names`` = the TF
variables' names. Under TF 1.x those carry the layer's name scope, which TF
made unique (``conv2d_1_1/kernel:0`` for layer ``conv2d_1``), and each dataset
sits at that name inside the layer's group.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

import weightlab
from weightlab import cli, platform_check
from weightlab.core.model import AUX_CLASSES, ModelFile, auxiliary_layers, close_names
from weightlab.formats import FORMATS, open_model, open_session

ROOT = Path(__file__).resolve().parents[1]

#: (layer, class, [(weight, shape)]) of the Keras 2.0.x fixture, in model order.
K20_LAYERS = [
    ("conv2d_1", "Conv2D", [("kernel", (3, 3, 1, 4)), ("bias", (4,))]),
    (
        "batch_normalization_1",
        "BatchNormalization",
        [("gamma", (4,)), ("beta", (4,)), ("moving_mean", (4,)), ("moving_variance", (4,))],
    ),
    ("flatten_1", "Flatten", []),
    ("dense_1", "Dense", [("kernel", (16, 3)), ("bias", (3,))]),
]


def write_keras20_h5(path: Path, *, weights_only: bool = False, scope_suffix: str = "_1") -> dict[str, np.ndarray]:
    """Write a Keras 2.0.8 (TensorFlow backend) file; return ``{stored HDF5 path: values}``."""
    rng = np.random.default_rng(0)
    values: dict[str, np.ndarray] = {}
    config = {
        "class_name": "Sequential",
        "config": [{"class_name": cls, "config": {"name": name, "trainable": True}} for name, cls, _ in K20_LAYERS],
    }
    with h5py.File(path, "w") as f:
        if weights_only:  # Model.save_weights: the layer groups at the root
            root = f
        else:
            f.attrs["keras_version"] = b"2.0.8"
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps(config).encode()
            f.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy"}).encode()
            root = f.create_group("model_weights")
        root.attrs["layer_names"] = [name.encode() for name, _, _ in K20_LAYERS]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.0.8"
        for name, _, weights in K20_LAYERS:
            g = root.create_group(name)
            names = [f"{name}{scope_suffix}/{w}:0".encode() for w, _ in weights]
            g.attrs["weight_names"] = names
            for stored, (_, shape) in zip(names, weights):
                arr = rng.standard_normal(shape).astype("float32")
                ds = g.create_dataset(stored.decode(), data=arr)
                values[ds.name.lstrip("/")] = arr
        if not weights_only:
            opt = f.create_group("optimizer_weights")
            opt.attrs["weight_names"] = [b"training/Adam/Variable:0"]
            opt.create_dataset("training/Adam/Variable:0", data=np.zeros(4, "float32"))
    return values


@pytest.fixture
def k20(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path / "keras208.h5"
    return path, write_keras20_h5(path)


# -- names as Keras names them -----------------------------------------------------


@pytest.mark.parametrize("weights_only", [False, True])
def test_keras20_names_are_keras_names_with_the_stored_path_kept(tmp_path, weights_only):
    path = tmp_path / "k.h5"
    stored = write_keras20_h5(path, weights_only=weights_only)
    with open_model(path) as m:
        assert [layer.name for layer in m.layers] == [name for name, _, _ in K20_LAYERS]
        expected = [f"{name}/{w}" for name, _, ws in K20_LAYERS for w, _ in ws]
        assert list(m.tensors) == expected
        prefix = "" if weights_only else "model_weights/"
        assert m.tensor("conv2d_1/kernel").key == f"{prefix}conv2d_1/conv2d_1_1/kernel:0"
        for info in m:
            np.testing.assert_array_equal(m.read(info.name), stored[info.key])
        assert m.attrs["stored_under_other_names"] == ["batch_normalization_1", "conv2d_1", "dense_1"]
        assert not m.tensor("batch_normalization_1/moving_mean").trainable
        assert m.tensor("batch_normalization_1/gamma").trainable
        if not weights_only:
            assert m.layer("conv2d_1").class_name == "Conv2D" and m.attrs["keras_version"] == "2.0.8"


def test_unscoped_keras2_names_are_not_marked(tmp_path, demo_paths):
    """Keras 2.1+ (tf.keras) names its variables after the layer: nothing renamed, no "stored as" column."""
    path = tmp_path / "k.h5"
    write_keras20_h5(path, scope_suffix="")
    with open_model(path) as m:
        assert m.attrs["stored_under_other_names"] == []
        assert "conv2d_1/kernel" in m
    with open_model(demo_paths["h5"]) as m:
        assert m.attrs["stored_under_other_names"] == []


def test_keras20_nested_model_inner_layers_by_their_keras_names(tmp_path):
    """A Sequential inside a model: the inner layers' TF scopes (dense_1_1) map to their config names."""
    path = tmp_path / "nested.h5"
    inner_layers = [
        {"class_name": "Dense", "config": {"name": "dense_1"}},
        {"class_name": "Dense", "config": {"name": "dense_2"}},
    ]
    outer = {"class_name": "Model", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"name": "input_1"}},
        {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": inner_layers}},
    ]}}  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.0.8"
        f.attrs["model_config"] = json.dumps(outer).encode()
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [b"input_1", b"sequential_1"]
        mw.create_group("input_1").attrs["weight_names"] = []
        g = mw.create_group("sequential_1")
        names = [b"dense_1_1/kernel:0", b"dense_1_1/bias:0", b"dense_2_1/kernel:0"]
        g.attrs["weight_names"] = names
        for n, shape in zip(names, [(2, 3), (3,), (3, 1)]):
            g.create_dataset(n.decode(), data=np.ones(shape, "float32"))
    with open_model(path) as m:
        assert list(m.tensors) == ["dense_1/kernel", "dense_1/bias", "dense_2/kernel"]
        assert m.tensor("dense_2/kernel").key == "model_weights/sequential_1/dense_2_1/kernel:0"


def test_recipe_by_keras_name_applies_and_saves_under_the_stored_paths(k20, tmp_path, run):
    path, stored = k20
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "edits": [
        {"op": "clip", "target": "conv2d_1/kernel", "min": -0.5, "max": 0.5},
        {"op": "scale", "target": "dense_1", "factor": 2},
    ]}))  # fmt: skip
    out = tmp_path / "out.h5"
    code, stdout, err = run("apply", path, recipe, "-o", out)
    assert code == 0, err
    with h5py.File(out, "r") as f:
        kernel = f["model_weights/conv2d_1/conv2d_1_1/kernel:0"][()]
        np.testing.assert_array_equal(kernel, np.clip(stored["model_weights/conv2d_1/conv2d_1_1/kernel:0"], -0.5, 0.5))
        np.testing.assert_array_equal(
            f["model_weights/dense_1/dense_1_1/bias:0"][()], stored["model_weights/dense_1/dense_1_1/bias:0"] * 2
        )
        np.testing.assert_array_equal(f["model_weights/conv2d_1/conv2d_1_1/bias:0"][()],
                                      stored["model_weights/conv2d_1/conv2d_1_1/bias:0"])  # fmt: skip
        with h5py.File(path, "r") as src:  # the file's own names and attributes, untouched
            for name in ("conv2d_1", "dense_1"):
                assert list(f["model_weights"][name].attrs["weight_names"]) == list(
                    src["model_weights"][name].attrs["weight_names"]
                )
            assert f.attrs["keras_version"] == src.attrs["keras_version"]


def test_inspect_shows_the_stored_path_beside_the_keras_name(k20, run):
    path, _ = k20
    code, out, err = run("inspect", path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split()[-2:] == ["stored", "as"]
    row = next(line for line in lines if line.startswith("conv2d_1/kernel "))
    assert row.split()[-1] == "model_weights/conv2d_1/conv2d_1_1/kernel:0"
    assert not any(line.startswith("conv2d_1_1") for line in lines)


# -- suggestions ---------------------------------------------------------------------

NAMES = ["conv2d/kernel", "conv2d/bias", "conv2d_1/kernel", "conv2d_1/bias", "conv2d_2/kernel",
         "conv2d_10/kernel", "dense/kernel", "dense/bias", "dense_1/kernel"]  # fmt: skip


@pytest.mark.parametrize(
    "given, first",
    [
        ("Conv2D_1/Kernel", "conv2d_1/kernel"),  # case
        ("conv2d_1/kernel:0", "conv2d_1/kernel"),  # TF's output index
        ("conv2d_1_1/kernel", "conv2d_1/kernel"),  # a TF scope suffix (Keras 2.0.x stored names)
        ("dense/kernal", "dense/kernel"),  # a typo: before dense_1/kernel
        ("conv2d_1", "conv2d_1/kernel"),  # a layer's tensors, in the model's order
    ],
)
def test_suggestions_rank_close_matches_first(given, first):
    assert close_names(given, NAMES)[0] == first


def test_suggestions_find_the_scoped_layer_difflib_missed():
    """difflib alone (the old suggestion) ranked conv2d_10..12 above conv2d_1_1 and left it out."""
    import difflib

    names = ["conv2d_1_1", "conv2d_10", "conv2d_11", "conv2d_12", "conv2d_1_1/kernel", "conv2d_10/kernel"]
    assert "conv2d_1_1" not in difflib.get_close_matches("conv2d_1", names, n=3)
    assert close_names("conv2d_1", names)[0] == "conv2d_1_1"
    assert close_names("nothing_alike", names) == []
    assert close_names("conv2d_1", names, n=1) == ["conv2d_1_1"]


def test_unknown_name_error_lists_the_close_match_first():
    m = ModelFile.from_arrays({"conv2d_1/kernel": np.ones(2), "conv2d_10/kernel": np.ones(2)})
    with pytest.raises(Exception, match=r"did you mean 'conv2d_1/kernel', 'conv2d_10/kernel'\?"):
        m.tensor("Conv2D_1/kernel")


# -- auxiliary layers: optimizer state and metrics -----------------------------------------


def test_auxiliary_layers_by_class_and_attr():
    m = ModelFile.from_arrays(
        {"dense/kernel": np.ones((2, 2)), "(optimizer)/iteration": np.ones(()), "(metrics)/total": np.ones(()),
         "slots/m": np.ones(2)},
        classes={"dense": "Dense", "(optimizer)": "(optimizer)", "(metrics)": "(metrics)"},
        attrs={"optimizer_layer": "slots"},
    )  # fmt: skip
    assert AUX_CLASSES == ("(optimizer)", "(metrics)")
    assert auxiliary_layers(m) == {"(optimizer)", "(metrics)", "slots"}
    plain = ModelFile.from_arrays({"dense/kernel": np.ones(2)}, attrs={"optimizer_layer": "(optimizer)"})
    assert auxiliary_layers(plain) == set()


@pytest.fixture(scope="module")
def keras_api_metrics(tmp_path_factory) -> dict[str, Path]:
    """A SavedModel and a checkpoint whose object graph has tf.keras' ``keras_api/metrics/<i>/{total,count}``.

    As a tf_keras model saved with ``model.save(folder, save_format="tf")`` after
    ``compile(metrics=...)`` and ``fit`` has them (checked by hand: keys
    ``keras_api/metrics/0/total/.ATTRIBUTES/VARIABLE_VALUE``), without building one.
    """
    import tensorflow as tf

    root_dir = tmp_path_factory.mktemp("metrics")
    mod = tf.Module()
    with tf.name_scope("dense"):
        mod.kernel = tf.Variable(np.arange(6, dtype="float32").reshape(2, 3), name="kernel")
    mod.keras_api = tf.Module()
    metrics = []
    for i in range(2):
        metric = tf.Module()
        metric.total = tf.Variable(np.float32(3.5 + i), name="total")
        metric.count = tf.Variable(np.float32(8), name="count")
        metrics.append(metric)
    mod.keras_api.metrics = metrics
    mod.f = tf.function(lambda x: x @ mod.kernel, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(mod, str(root_dir / "sm"), signatures=mod.f)
    saved = tf.train.Checkpoint(m=mod).save(str(root_dir / "ckpt" / "ckpt"))  # with its save_counter
    return {"savedmodel": root_dir / "sm", "checkpoint": Path(saved + ".index")}


def test_savedmodel_metrics_variables_are_a_metrics_layer(keras_api_metrics):
    with open_model(keras_api_metrics["savedmodel"]) as m:
        assert [layer.name for layer in m.layers] == ["dense", "(metrics)"]
        metrics = m.layer("(metrics)")
        assert metrics.class_name == "(metrics)"
        assert [t.name for t in metrics.tensors] == ["(metrics)/0/total", "(metrics)/0/count",
                                                     "(metrics)/1/total", "(metrics)/1/count"]  # fmt: skip
        assert not any(t.trainable for t in metrics.tensors)
        assert metrics.tensors[0].key.startswith("keras_api/metrics/0/total/")
        assert float(m.read("(metrics)/1/total")) == 4.5
        assert auxiliary_layers(m) == {"(metrics)"}


def test_edited_metrics_variable_saves_under_its_key(keras_api_metrics, tmp_path):
    s = open_session(keras_api_metrics["savedmodel"])
    try:
        from weightlab.core.edits import Scale

        s.apply(Scale(target="(metrics)/0/total", factor=2.0))
        out = s.save(tmp_path / "sm2")
    finally:
        s.model.close()
    with open_model(out) as m:
        assert float(m.read("(metrics)/0/total")) == 7.0 and float(m.read("(metrics)/1/total")) == 4.5
        np.testing.assert_array_equal(m.read("dense/kernel"), np.arange(6, dtype="float32").reshape(2, 3))


def test_inspect_hides_metrics_and_optimizer_unless_all(keras_api_metrics, run):
    code, out, err = run("inspect", keras_api_metrics["checkpoint"])
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines()[2:] if line and not line.startswith("(")]
    assert names == ["dense/kernel"]
    assert "(metrics)/" not in out and "(optimizer)/" not in out
    assert "--all lists them" in out and "metrics variables" in out
    assert "1 layers, 6 parameters" in out.splitlines()[0]
    code, out, err = run("inspect", keras_api_metrics["checkpoint"], "--all")
    assert code == 0, err
    assert "(metrics)/0/total" in out and "(optimizer)/save_counter" in out
    code, out, err = run("inspect", keras_api_metrics["savedmodel"], "--json")
    assert [r["name"] for r in json.loads(out)] == ["dense/kernel"]
    code, out, err = run("inspect", keras_api_metrics["savedmodel"], "--json", "--all")
    assert len(json.loads(out)) == 5


# -- CLI polish --------------------------------------------------------------------------


def test_unknown_command_is_named(run, k20):
    path, _ = k20
    code, out, err = run("frob", path)
    assert code == 2 and out == ""
    assert err.startswith("weightlab: error: unknown command 'frob' (choose from inspect, eval, apply")
    assert "unrecognized arguments" not in err
    code, _, err = run("inspcet", path)
    assert code == 2 and "unknown command 'inspcet'" in err and "did you mean 'inspect'?" in err
    code, _, err = run("-v", "frob")
    assert code == 2 and "unknown command 'frob'" in err


def test_a_model_is_not_taken_for_a_command(tmp_path, monkeypatch):
    folder = tmp_path / "savedmodel"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    assert cli._unknown_command(["savedmodel"]) is None  # an existing folder named like a word
    assert cli._unknown_command(["missing.h5"]) is None  # a file name: the window says it is missing
    assert cli._unknown_command(["--data", "x.npz", "m.h5"]) is None
    assert cli._unknown_command(["missing.keras", "--data", "held.npz"]) is None
    assert cli._unknown_command(["frob"]) == "frob"
    assert cli._unknown_command(["frob", "m.h5", "--json"]) == "frob"


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    out = [("weightlab", cli._gui_parser())]
    for action in cli._subcommand_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += sorted(action.choices.items())
    return out


def test_every_argument_has_help_text():
    missing = [
        (name, action.dest)
        for name, parser in _parsers()
        for action in parser._actions
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == []
    assert {name for name, _ in _parsers()} >= set(cli.SUBCOMMANDS)


def test_top_level_help_names_every_format(run):
    code, out, _ = run("--help")
    assert code == 0
    text = " ".join(out.split())
    for handler in FORMATS:
        for ext in handler.extensions:
            assert ext in text, ext
    for words in ("SavedModel folder", "checkpoint", "frozen TensorFlow graph (.pb)", "--install-desktop"):
        assert words in text
    for sub in ("inspect", "eval", "apply"):
        code, out, _ = run(sub, "--help")
        assert "SavedModel" in out or "any format inspect reads" in out


def test_overwrite_refusal_uses_the_flag(k20, tmp_path, run):
    path, _ = k20
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "edits": [{"op": "scale", "target": "dense_1", "factor": 2}]}))
    before = path.read_bytes()
    code, _, err = run("apply", path, recipe, "-o", path)
    assert code == 2
    assert "pass --overwrite" in err and "overwrite=True" not in err and str(path) in err
    assert path.read_bytes() == before


def test_install_and_uninstall_desktop_flags(monkeypatch, run, tmp_path):
    calls: list[str] = []
    written = [tmp_path / "applications" / "x.desktop", tmp_path / "icons" / "x.svg"]
    fake = types.ModuleType("weightlab.desktop")
    fake.install_desktop = lambda: calls.append("install") or written
    fake.uninstall_desktop = lambda: calls.append("uninstall") or []
    monkeypatch.setitem(sys.modules, "weightlab.desktop", fake)
    # once weightlab.desktop was imported (tests/test_desktop.py), `from weightlab import desktop`
    # reads the package's attribute: replace that too, or the real install writes to ~/.local/share
    monkeypatch.setattr(weightlab, "desktop", fake, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr("weightlab.gui.app.run_app", lambda **kw: pytest.fail("the window opened"), raising=False)
    code, out, _ = run("--install-desktop")
    assert code == 0 and calls == ["install"]
    assert f"installed {written[0]}" in out and f"installed {written[1]}" in out
    code, out, _ = run("--uninstall-desktop")
    assert code == 0 and calls == ["install", "uninstall"] and "nothing to remove" in out
    code, _, err = run("--install-desktop", "--uninstall-desktop")
    assert code == 2 and "not allowed with" in err


# -- start-up check of Qt's xcb plugin ---------------------------------------------------

LDD_SAMPLE = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f8f)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibfoo-new.so.3 => not found
"""


def test_parse_ldd_and_install_commands():
    missing = platform_check.parse_ldd(LDD_SAMPLE)
    assert missing == ["libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libfoo-new.so.3"]
    broken = "/x/libqxcb.so: error while loading shared libraries: /lib/libxcb-icccm.so.4: file too short"
    assert platform_check.parse_ldd(broken) == ["libxcb-icccm.so.4"]
    text = platform_check.install_commands(missing)
    assert "sudo apt-get install libxkbcommon-x11-0 libxcb-cursor0;" in text
    assert "sudo dnf install libxkbcommon-x11 xcb-util-cursor;" in text
    assert "libfoo-new.so.3" in text and "dnf provides" in text


def test_library_table_covers_what_the_installed_plugin_needs():
    """Every system library ldd lists for PySide6's libqxcb.so (besides libc, libstdc++, Qt's own) is in the table."""
    plugin = platform_check.xcb_plugin()
    if plugin is None or shutil.which("ldd") is None:
        pytest.skip("no PySide6 xcb plugin or no ldd here")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30, check=False).stdout
    needed = {line.split()[0] for line in out.splitlines() if "=>" in line and "/PySide6/" not in line}
    base = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1"}
    direct = {"libxcb", "libX11", "libxkb", "libGL.", "libEGL", "libfontc", "libfreetype", "libglib", "libgthr", "libdbus"}
    ours = {n for n in needed - base if n.startswith(tuple(direct))}
    assert ours - set(platform_check.XCB_LIBRARIES) == set()
    # ldd and the ctypes fallback agree on what of the table is missing here
    by_ldd = set(platform_check.missing_xcb_libraries()) & set(platform_check.XCB_LIBRARIES)
    by_ctypes = set(platform_check.missing_xcb_libraries(plugin=plugin, run=_no_ldd))
    assert by_ldd == by_ctypes


def _no_ldd(command: list[str]) -> str:
    raise OSError("ldd is not installed")


def test_xcb_problem_only_where_xcb_is_used():
    gone = lambda: ["libxkbcommon-x11.so.0"]  # noqa: E731
    assert platform_check.xcb_problem({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, "linux", gone) is None
    assert platform_check.xcb_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux", gone) is None
    assert platform_check.xcb_problem({"DISPLAY": ":0"}, "darwin", gone) is None
    assert platform_check.xcb_problem({"DISPLAY": ":0"}, "linux", lambda: []) is None
    text = platform_check.xcb_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", gone)
    assert "libxkbcommon-x11.so.0" in text and "apt-get install libxkbcommon-x11-0" in text
    assert "dnf install libxkbcommon-x11" in text


def test_window_command_exits_1_naming_the_missing_library(monkeypatch, run, k20):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(platform_check, "missing_xcb_libraries", lambda: ["libxkbcommon-x11.so.0"])
    monkeypatch.setattr("weightlab.gui.app.run_app", lambda **kw: pytest.fail("Qt was started"))
    code, out, err = run(k20[0])
    assert code == 1 and out == ""
    assert "libxkbcommon-x11.so.0" in err and "sudo apt-get install libxkbcommon-x11-0" in err
    assert "sudo dnf install libxkbcommon-x11" in err


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs Linux, root and unshare to hide a library in a private mount namespace",
)
def test_really_missing_library_exits_1_where_qt_aborts(tmp_path, k20):
    """libxkbcommon-x11 hidden from the loader (a private mount namespace): Qt aborts (134); weightlab exits 1."""
    libdir = Path("/usr/lib/x86_64-linux-gnu")
    if not (libdir / "libxkbcommon-x11.so.0").exists() or platform_check.xcb_plugin() is None:
        pytest.skip("no libxkbcommon-x11 in /usr/lib/x86_64-linux-gnu or no xcb plugin")
    orig, farm = tmp_path / "orig", tmp_path / "farm"
    orig.mkdir()
    farm.mkdir()
    for entry in libdir.iterdir():
        if not entry.name.startswith("libxkbcommon-x11"):
            (farm / entry.name).symlink_to(orig / entry.name)
    script = tmp_path / "hide.sh"
    script.write_text(f'mount --bind {libdir} {orig} && mount --bind {farm} {libdir} || exit 97\nexec "$@"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":99"  # never reached: the plugin fails to load first

    def hidden(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["unshare", "-m", "sh", str(script), *cmd], env=env, capture_output=True,
                              text=True, timeout=120, cwd=ROOT, check=False)  # fmt: skip

    qt = hidden(sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])")
    if qt.returncode == 97 or "Operation not permitted" in qt.stderr:
        pytest.skip("mount namespaces are not allowed here")
    assert qt.returncode in (134, -6), qt.stderr[-500:]
    ours = hidden(sys.executable, "-m", "weightlab", str(k20[0]))
    assert ours.returncode == 1, ours.stderr[-500:]
    assert "libxkbcommon-x11.so.0" in ours.stderr and "apt-get install libxkbcommon-x11-0" in ours.stderr
    assert "Could not load the Qt platform plugin" not in ours.stderr

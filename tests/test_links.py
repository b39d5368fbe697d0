"""Folder formats never cross a link (issue 9, finding 1).

A SavedModel folder or a checkpoint whose files are symlinks leading outside
(or special files) is refused when opened, evaluated and saved, naming the
entry; a save writes only new regular files into a fresh folder renamed into
place, so nothing behind a link is ever written, truncated or deleted. Links
that stay inside a SavedModel folder and lead to a regular file are read
through and saved as regular files.

Fixtures are written by TensorFlow in a child process; opening reads in the
TensorFlow reader process, so this test process never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab.core.atomic import TEMP_MARK
from weightlab.core.errors import FormatError, UnsafeFileError
from weightlab.engine.reader import TFReaderProcess
from weightlab.formats import open_model, save_model
from weightlab.formats.tf_formats import evaluation_kind

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symlinks and FIFOs")
if importlib.util.find_spec("tensorflow") is None:  # not importorskip: this process stays free of TensorFlow
    pytest.skip("needs TensorFlow to write the fixtures", allow_module_level=True)

_MAKE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
root = sys.argv[1]
mod = tf.Module()
mod.w = tf.Variable(np.arange(12, dtype="float32").reshape(4, 3) / 10, name="dense/kernel")
mod.b = tf.Variable(np.array([0.5, -0.5, 1.0], "float32"), name="dense/bias")
mod.f = tf.function(lambda x: x @ mod.w + mod.b, input_signature=[tf.TensorSpec([None, 4], tf.float32)])
tf.saved_model.save(mod, os.path.join(root, "sm"), signatures=mod.f)
tf.train.Checkpoint(w=mod.w, b=mod.b).write(os.path.join(root, "ckpt", "model"))
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("links")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run(
        [sys.executable, "-c", _MAKE, str(root)], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (root / "sm" / "fingerprint.pb").is_file() and (root / "ckpt" / "model.index").is_file()
    return root


def _hashes(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``folder`` (links followed: what a reader would see)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _no_links_or_temps(folder: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            assert not p.is_symlink(), f"{p} is a link"
            assert TEMP_MARK not in name, f"{p} is a leftover"
            assert p.is_dir() or p.is_file()


@pytest.fixture
def sm(made, tmp_path) -> Path:
    """A fresh copy of the SavedModel, and a folder ``outside`` with a copy of its variables."""
    shutil.copytree(made / "sm", tmp_path / "sm")
    shutil.copytree(made / "sm" / "variables", tmp_path / "outside" / "variables")
    (tmp_path / "outside" / "precious.txt").write_text("precious")
    return tmp_path / "sm"


def _link_variables_outside(sm: Path) -> None:
    shutil.rmtree(sm / "variables")
    (sm / "variables").symlink_to(sm.parent / "outside" / "variables", target_is_directory=True)


def _link_fingerprint_outside(sm: Path) -> None:
    (sm / "fingerprint.pb").unlink()
    (sm / "fingerprint.pb").symlink_to(sm.parent / "outside" / "precious.txt")


def _link_asset_outside(sm: Path) -> None:
    (sm / "assets").mkdir(exist_ok=True)
    (sm / "assets" / "x").symlink_to(sm.parent / "outside" / "precious.txt")


def _link_asset_to_folder_inside(sm: Path) -> None:
    (sm / "assets").mkdir(exist_ok=True)
    (sm / "assets" / "vars").symlink_to(Path("..") / "variables", target_is_directory=True)


def _fifo_asset(sm: Path) -> None:
    (sm / "assets").mkdir(exist_ok=True)
    os.mkfifo(sm / "assets" / "pipe")


def _relative_link_out(sm: Path) -> None:  # leaves through "..": resolved, not judged by its text
    (sm / "assets").mkdir(exist_ok=True)
    (sm / "assets" / "y").symlink_to(Path("..") / ".." / "outside" / "precious.txt")


HOSTILE = {
    "variables->outside": (_link_variables_outside, "'variables' is a link to"),
    "fingerprint->outside": (_link_fingerprint_outside, "'fingerprint.pb' is a link to"),
    "asset->outside": (_link_asset_outside, "'assets/x' is a link to"),
    "asset->../../outside": (_relative_link_out, "'assets/y' is a link to"),
    "asset->folder inside": (_link_asset_to_folder_inside, "links to folders"),
    "fifo": (_fifo_asset, "'assets/pipe' is a FIFO"),
}


@pytest.fixture(scope="module")
def reader(made):
    """One TensorFlow reader process for the module (started here, so no test counts it as its leftover)."""
    process = TFReaderProcess(made / "sm")
    process.list("savedmodel", str(made / "sm"))
    yield process
    process.close()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_savedmodel_is_refused_when_opened_evaluated_and_saved(sm, tmp_path, reader, case):
    make, expected = HOSTILE[case]
    make(sm)
    outside = _hashes(tmp_path / "outside")
    with pytest.raises(UnsafeFileError) as exc:
        open_model(sm)
    assert expected in str(exc.value) and str(exc.value).startswith(f"{sm}:")
    with pytest.raises(UnsafeFileError, match="link|FIFO"):
        evaluation_kind(sm)
    # The reader process (tf_io) refuses on its own too, for listing, reading and saving.
    with pytest.raises(FormatError, match="link|FIFO"):
        reader.list("savedmodel", str(sm))
    with pytest.raises(FormatError, match="link|FIFO"):
        reader.read("savedmodel", str(sm), "variables/0/.ATTRIBUTES/VARIABLE_VALUE")
    with pytest.raises(FormatError, match="link|FIFO"):
        reader.save("savedmodel", str(sm), {}, str(tmp_path / "out"))
    assert _hashes(tmp_path / "outside") == outside
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]


def test_cli_apply_through_a_variables_link_loses_nothing(sm, tmp_path):
    """The reported case: ``apply`` deleted the bundle behind the link, then failed."""
    _link_variables_outside(sm)
    outside = _hashes(tmp_path / "outside")
    recipe = tmp_path / "r.json"
    recipe.write_text('{"version": 1, "edits": [{"op": "scale", "target": "dense/kernel", "factor": 2}]}')
    r = subprocess.run(
        [sys.executable, "-m", "weightlab", "apply", str(sm), str(recipe), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "'variables' is a link to" in r.stderr and "Traceback" not in r.stderr
    assert _hashes(tmp_path / "outside") == outside
    assert not (tmp_path / "out").exists()


def test_links_swapped_in_after_opening_are_refused_at_save(sm, tmp_path):
    outside = _hashes(tmp_path / "outside")
    with open_model(sm) as m:
        _link_fingerprint_outside(sm)
        with pytest.raises(UnsafeFileError, match="'fingerprint.pb' is a link"):
            save_model(m, {"dense/kernel": np.zeros((4, 3), "float32")}, tmp_path / "out")
        # the reader process itself (a caller that skips the handler's check)
        with pytest.raises(FormatError, match="'fingerprint.pb' is a link"):
            m.attrs["_reader"].process.save("savedmodel", str(sm), {}, str(tmp_path / "out"))
    assert _hashes(tmp_path / "outside") == outside
    assert not (tmp_path / "out").exists()


def test_inside_file_links_are_saved_as_regular_files_following_the_umask(sm, tmp_path):
    (sm / "assets").mkdir(exist_ok=True)
    (sm / "assets" / "vocab.txt").write_text("a\nb\n")
    (sm / "assets" / "same.txt").symlink_to("vocab.txt")
    (sm / "assets" / "graph.pb").symlink_to(Path("..") / "saved_model.pb")
    before = _hashes(sm)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        s = weightlab.open(sm)
        try:
            s.apply_recipe({"version": 1, "edits": [{"op": "scale", "target": "dense/kernel", "factor": 2}]})
            s.save(out)
        finally:
            s.model.close()
    finally:
        os.umask(old)
    assert _hashes(sm) == before
    _no_links_or_temps(out)
    assert (out / "assets" / "same.txt").read_text() == "a\nb\n"
    assert (out / "assets" / "graph.pb").read_bytes() == (sm / "saved_model.pb").read_bytes()
    for p in out.rglob("*"):
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p
    assert out.stat().st_mode & 0o777 == 0o755
    with open_model(out) as again:
        np.testing.assert_array_equal(
            again.read("dense/kernel"), np.arange(12, dtype="float32").reshape(4, 3) / 5
        )
        np.testing.assert_array_equal(again.read("dense/bias"), [0.5, -0.5, 1.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "outside", "sm"]


def test_savedmodel_destination_checks_and_overwrite(sm, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (tmp_path / "link").symlink_to(elsewhere, target_is_directory=True)
    kernel = np.ones((4, 3), "float32")
    with open_model(sm) as m:
        with pytest.raises(FormatError, match="it is a link"):
            save_model(m, {"dense/kernel": kernel}, tmp_path / "link")
        with pytest.raises(FormatError, match="inside the opened folder"):
            save_model(m, {"dense/kernel": kernel}, sm / "assets" / "copy")
        with pytest.raises(FormatError, match="under a .keras name"):
            save_model(m, {"dense/kernel": kernel}, tmp_path / "sm.keras")
        save_model(m, {"dense/kernel": kernel}, sm)  # over the opened folder: replaced as a whole
    assert (elsewhere / "keep.txt").read_text() == "keep" and len(list(elsewhere.iterdir())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "link", "outside", "sm"]
    _no_links_or_temps(sm)
    with open_model(sm) as again:
        np.testing.assert_array_equal(again.read("dense/kernel"), kernel)


# -- checkpoints -------------------------------------------------------------------------------
@pytest.fixture
def ckpt(made, tmp_path) -> Path:
    shutil.copytree(made / "ckpt", tmp_path / "ckpt")
    (tmp_path / "outside").mkdir(exist_ok=True)
    (tmp_path / "outside" / "precious.txt").write_text("precious")
    return tmp_path / "ckpt"


def test_checkpoint_files_linked_outside_are_refused(ckpt, tmp_path):
    index = ckpt / "model.index"
    shutil.move(index, tmp_path / "outside" / "model.index")
    index.symlink_to(tmp_path / "outside" / "model.index")
    outside = _hashes(tmp_path / "outside")
    for picked in (index, ckpt):
        with pytest.raises(UnsafeFileError, match="'model.index' is a link to"):
            open_model(picked)
    assert _hashes(tmp_path / "outside") == outside
    index.unlink()
    shutil.move(tmp_path / "outside" / "model.index", index)
    state = ckpt / "checkpoint"
    state.unlink(missing_ok=True)
    state.symlink_to(tmp_path / "outside" / "precious.txt")
    with pytest.raises(UnsafeFileError, match="'checkpoint' is a link to"):
        open_model(index)
    assert (tmp_path / "outside" / "precious.txt").read_text() == "precious"


def test_checkpoint_state_file_naming_a_prefix_outside_the_folder(ckpt, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(ckpt, other)
    (ckpt / "checkpoint").write_text(f'model_checkpoint_path: "{other / "model"}"\n')
    with open_model(ckpt) as m:  # the folder's own copy of that prefix wins
        assert m.attrs["location"] == str(ckpt / "model")
    for f in ckpt.glob("model.*"):
        f.rename(ckpt / f.name.replace("model", "renamed"))
    with pytest.raises(UnsafeFileError, match="outside the opened folder"):
        open_model(ckpt)


def test_checkpoint_save_replaces_links_at_the_destination_without_writing_through(ckpt, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    precious = tmp_path / "outside" / "precious.txt"
    (dest / "checkpoint").symlink_to(precious)
    (dest / "edited.index").symlink_to(precious)
    (dest / "edited.data-00000-of-00001").symlink_to(precious)
    (dest / "edited.data-00000-of-00002").symlink_to(precious)  # a stale shard of an earlier save
    outside = _hashes(tmp_path / "outside")
    before = _hashes(ckpt)
    old = os.umask(0o077)
    try:
        with open_model(ckpt / "model.index") as m:
            save_model(m, {"dense/kernel": np.full((4, 3), 7, "float32")}, dest / "edited")
    finally:
        os.umask(old)
    assert _hashes(tmp_path / "outside") == outside
    assert _hashes(ckpt) == before
    _no_links_or_temps(dest)
    assert sorted(p.name for p in dest.iterdir()) == [
        "checkpoint",
        "edited.data-00000-of-00001",
        "edited.index",
    ]
    for p in dest.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600, p
    assert 'model_checkpoint_path: "edited"' in (dest / "checkpoint").read_text()
    with open_model(dest) as again:
        np.testing.assert_array_equal(again.read("dense/kernel"), np.full((4, 3), 7, "float32"))

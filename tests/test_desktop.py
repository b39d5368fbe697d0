"""weightlab.desktop (install as a desktop application) and the files in packaging/."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from weightlab import desktop
from weightlab.core.errors import UnsafeFileError, WeightLabError
from weightlab.desktop import (
    DESKTOP_FILE,
    ICON_FILE,
    MIME_FILE,
    MIME_TYPES,
    desktop_entry,
    install_desktop,
    launcher,
    mime_xml,
    uninstall_desktop,
)
from weightlab.resources import ICON_NAME, icon_path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"
HAVE = {tool: shutil.which(tool) is not None for tool in
        ("update-mime-database", "update-desktop-database", "desktop-file-validate", "appstreamcli",
         "gtk-update-icon-cache")}


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """An empty XDG_DATA_HOME (the default target of install_desktop)."""
    home = tmp_path / "share"
    home.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    assert parser.sections() == ["Desktop Entry"]
    return dict(parser["Desktop Entry"])


def exec_argv(exec_value: str) -> list[str]:
    """Undo the desktop entry's string escaping, then split Exec as the spec says ('The Exec key').

    Inside double quotes a backslash escapes a double quote, backtick, dollar sign or backslash;
    outside quotes, arguments split at spaces; ``%%`` is a literal ``%``.
    """
    value = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), exec_value)
    args, current, quoted, i, started = [], "", False, 0, False
    while i < len(value):
        c = value[i]
        if quoted and c == "\\" and value[i + 1] in '"`$\\':
            current, i = current + value[i + 1], i + 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if started:
                args.append(current)
            current, started = "", False
        else:
            current, started = current + c, True
        i += 1
    assert not quoted, exec_value
    if started:
        args.append(current)
    return [a.replace("%%", "%") for a in args]


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if not p.is_dir()}


def validate_desktop(path: Path) -> None:
    if HAVE["desktop-file-validate"]:
        done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "error" not in done.stdout.lower(), done.stdout + done.stderr


def test_install_writes_entry_icon_and_mime_types(data_home):
    written = install_desktop()

    assert written == [data_home / DESKTOP_FILE, data_home / ICON_FILE, data_home / MIME_FILE]
    entry = read_entry(data_home / DESKTOP_FILE)
    argv = exec_argv(entry["Exec"])
    assert argv == [*launcher(), "%f"]
    assert os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK), argv
    assert entry["TryExec"] == argv[0]
    assert entry["Icon"] == ICON_NAME and entry["Type"] == "Application" and entry["Terminal"] == "false"
    assert entry["MimeType"].rstrip(";").split(";") == list(MIME_TYPES)
    validate_desktop(data_home / DESKTOP_FILE)

    assert (data_home / ICON_FILE).read_bytes() == icon_path().read_bytes()
    assert ICON_FILE.name == f"{ICON_NAME}.svg" and ICON_FILE.parts[:4] == ("icons", "hicolor", "scalable", "apps")

    xml = ET.parse(data_home / MIME_FILE).getroot()
    globs = {g.get("pattern"): t.get("type") for t in xml.iter(f"{MIME_NS}mime-type")
             for g in t.iter(f"{MIME_NS}glob")}
    assert globs["*.keras"] == "application/x-keras"
    assert globs["*.pb"] == "application/x-tensorflow-graph"
    assert set(globs.values()) <= set(MIME_TYPES)
    if HAVE["update-mime-database"]:  # the desktop's MIME database now types the files
        globs2 = (data_home / "mime" / "globs2").read_text()
        assert ":application/x-keras:*.keras" in globs2 and ":application/x-tensorflow-graph:*.pb" in globs2
        # Qt's MIME database (KDE's file managers) reads it: a double-clicked .keras is application/x-keras.
        probe = ("from PySide6.QtCore import QMimeDatabase as D; db = D(); "
                 "print(*(db.mimeTypeForFile(n, D.MatchMode.MatchExtension).name() for n in ('m.keras', 'g.pb')))")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "XDG_DATA_HOME": str(data_home)})
        assert done.stdout.split() == ["application/x-keras", "application/x-tensorflow-graph"], done.stderr
    if HAVE["update-desktop-database"]:  # and offers WeightLab for them
        cache = (data_home / "applications" / "mimeinfo.cache").read_text()
        for mime in MIME_TYPES:
            assert f"{mime}={DESKTOP_FILE.name};" in cache


def test_install_is_idempotent_and_leaves_no_temporary_file(data_home):
    first = install_desktop()
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first}

    assert install_desktop() == first
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first} == stamps  # up to date: not rewritten
    assert not [p for p in data_home.rglob("*") if "weightlab-tmp" in p.name]


def test_install_replaces_a_changed_file(data_home):
    install_desktop()
    (data_home / DESKTOP_FILE).write_text("[Desktop Entry]\nExec=old\n")

    install_desktop()

    assert read_entry(data_home / DESKTOP_FILE)["Icon"] == ICON_NAME


def test_uninstall_removes_exactly_what_install_wrote(data_home):
    mine = data_home / "applications" / "someone-else.desktop"
    mine.parent.mkdir(parents=True)
    mine.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")
    before = files_under(data_home)
    written = install_desktop()

    assert uninstall_desktop() == written
    assert uninstall_desktop() == []
    assert not any(p.exists() or p.is_symlink() for p in written)
    assert mine.read_text().startswith("[Desktop Entry]")
    # Left: the user's own file and the caches the tools rebuilt, which no longer mention WeightLab.
    left = files_under(data_home) - before
    assert all(p.parts[0] in ("mime", "applications") for p in left), left
    for rel in left:
        text = (data_home / rel).read_bytes()
        assert b"x-keras" not in text and b"tensorflow-graph" not in text and ICON_NAME.encode() not in text, rel


def test_prefix_argument_and_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")  # not absolute: ignored, as the XDG spec says
    assert desktop.data_home() == tmp_path / "home" / ".local" / "share"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert desktop.data_home() == tmp_path / "home" / ".local" / "share"

    written = install_desktop(tmp_path / "elsewhere")

    assert all(p.is_relative_to(tmp_path / "elsewhere") and p.is_file() for p in written)
    assert not (tmp_path / "home").exists()
    assert uninstall_desktop(tmp_path / "elsewhere") == written


def test_no_cache_tools_is_fine(data_home, monkeypatch):
    monkeypatch.setenv("PATH", str(data_home / "no-tools-here"))

    written = install_desktop()

    assert all(p.is_file() for p in written)
    assert not (data_home / "mime" / "globs2").exists() and not (data_home / "applications" / "mimeinfo.cache").exists()
    assert uninstall_desktop() == written


@pytest.mark.skipif(not HAVE["gtk-update-icon-cache"], reason="gtk-update-icon-cache not installed")
def test_an_existing_icon_cache_is_rebuilt(data_home):
    cache = data_home / "icons" / "hicolor" / "icon-theme.cache"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"")  # stale: would hide the new icon

    install_desktop()

    assert ICON_NAME.encode() in cache.read_bytes()
    uninstall_desktop()
    assert not cache.exists() or ICON_NAME.encode() not in cache.read_bytes()  # no icon left: no cache


def test_a_link_out_of_the_data_folder_is_refused(data_home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_home / "applications").symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafeFileError, match="outside"):
        install_desktop()
    with pytest.raises(UnsafeFileError, match="outside"):
        uninstall_desktop()
    assert list(outside.iterdir()) == []


def test_links_inside_the_data_folder_are_followed_and_a_linked_file_is_replaced_not_written_through(
        data_home, tmp_path):
    (data_home / "real-icons").mkdir()
    (data_home / "icons").symlink_to(data_home / "real-icons", target_is_directory=True)
    victim = tmp_path / "victim.desktop"
    victim.write_text("keep me")
    (data_home / "applications").mkdir()
    (data_home / DESKTOP_FILE).symlink_to(victim)

    install_desktop()

    assert (data_home / "real-icons" / ICON_FILE.relative_to("icons")).is_file()
    assert not (data_home / DESKTOP_FILE).is_symlink() and victim.read_text() == "keep me"
    (data_home / DESKTOP_FILE).unlink()
    (data_home / DESKTOP_FILE).symlink_to(victim)
    assert data_home / DESKTOP_FILE in uninstall_desktop()
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("path", [
    "/opt/my apps/bin/weightlab",
    '/opt/we"ird$dir`x`/back\\slash/100%/weightlab',
    "/home/zoë/.venv/bin/weightlab",
])
def test_exec_quoting_round_trips(tmp_path, path):
    text = desktop_entry([path, "-m", "weightlab"])
    entry_file = tmp_path / "x.desktop"
    entry_file.write_text(text, encoding="utf-8")

    entry = read_entry(entry_file)

    assert exec_argv(entry["Exec"]) == [path, "-m", "weightlab", "%f"]
    assert re.sub(r"\\(.)", r"\1", entry["TryExec"]) == path
    validate_desktop(entry_file)


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_windows_and_macos_are_told_it_is_for_linux_desktops(data_home, monkeypatch, platform):
    monkeypatch.setattr(sys, "platform", platform)

    for call in (install_desktop, uninstall_desktop):
        with pytest.raises(WeightLabError, match=f"freedesktop.org.*{platform}"):
            call()
    assert list(data_home.iterdir()) == []


def test_a_line_break_in_the_launcher_path_is_refused():
    with pytest.raises(WeightLabError, match="line break"):
        desktop_entry(["/opt/a\nb/weightlab"])


def test_launcher_choices(tmp_path, monkeypatch):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text("")
    monkeypatch.setattr(sys, "executable", str(python))
    assert launcher() == [str(python), "-m", "weightlab"]  # no weightlab script beside the interpreter

    script = bin_dir / "weightlab"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert launcher() == [str(script)]

    monkeypatch.setattr(sys, "frozen", True, raising=False)  # a PyInstaller bundle
    assert launcher() == [str(python)]


def test_hdf5_globs_are_defined_only_when_the_system_lacks_them(tmp_path):
    def types(xml: str) -> dict[str, list[str]]:
        root = ET.fromstring(xml)
        return {t.get("type"): [g.get("pattern") for g in t.iter(f"{MIME_NS}glob")]
                for t in root.iter(f"{MIME_NS}mime-type")}

    assert "application/x-hdf5" not in types(mime_xml({"*.h5", "*.hdf5"}))
    assert types(mime_xml(set()))["application/x-hdf5"] == ["*.h5", "*.hdf5"]
    assert types(mime_xml({"*.h5"}))["application/x-hdf5"] == ["*.hdf5"]

    (tmp_path / "sys" / "mime").mkdir(parents=True)
    (tmp_path / "sys" / "mime" / "globs2").write_text("# comment\n50:application/x-hdf:*.h5\n50:application/x-hdf:*.hdf5\n")
    assert desktop._system_globs({"XDG_DATA_DIRS": f"{tmp_path / 'missing'}:{tmp_path / 'sys'}"}) == {"*.h5", "*.hdf5"}


# -- packaging/ ----------------------------------------------------------------------------------------------


def test_packaged_desktop_entry_is_the_installed_one_for_a_launcher_on_path():
    packaged = PACKAGING / f"{ICON_NAME}.desktop"

    assert packaged.read_text(encoding="utf-8") == desktop_entry(["weightlab"])
    assert read_entry(packaged)["Icon"] == ICON_NAME
    validate_desktop(packaged)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_appstream_metadata():
    path = PACKAGING / f"{ICON_NAME}.metainfo.xml"
    root = ET.parse(path).getroot()

    assert root.findtext("id") == ICON_NAME
    assert root.findtext("launchable") == f"{ICON_NAME}.desktop"
    assert (PACKAGING / root.findtext("launchable")).is_file()
    assert root.findtext("icon") == ICON_NAME
    assert [m.text for m in root.iter("mediatype")] == list(MIME_TYPES)
    images = list(root.iter("image"))
    assert images
    for image in images:
        url = image.text.strip()
        match = re.fullmatch(r"https://raw\.githubusercontent\.com/weightlab/weightlab/main/(docs/[\w./-]+\.png)", url)
        assert match, url
        shot = ROOT / match[1]
        assert shot.is_file(), f"{url}: no {shot} in the repository"
        assert png_size(shot) == (int(image.get("width")), int(image.get("height")))
    assert "example.invalid" not in path.read_text()
    if HAVE["appstreamcli"]:
        done = subprocess.run(["appstreamcli", "validate", "--no-net", str(path)], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_bundle_spec_and_script_are_consistent():
    script = (PACKAGING / "build-bundle").read_text()
    assert os.access(PACKAGING / "build-bundle", os.X_OK)
    assert "weightlab-bundle.spec" in script and (PACKAGING / "weightlab-bundle.spec").is_file()
    assert "tensorflow-cpu" in script and "/.venv" in script  # CPU-only TensorFlow; refuses the project's .venv
    done = subprocess.run(["bash", "-n", str(PACKAGING / "build-bundle")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr

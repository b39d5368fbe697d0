"""Keras 3 ``.keras`` archives: a zip of config.json, metadata.json, model.weights.h5.

Layer order and class names come from ``config.json``; tensors are read lazily
from ``model.weights.h5`` (see :mod:`weightlab.formats._keras3` for its layout).
A weights member stored uncompressed (as Keras writes it) is read in place
through a window on the archive; its zip CRC is checked at open, streamed in
1 MiB blocks on a second thread while the HDF5 layout is read. A compressed
one is extracted, CRC-checked, to a temporary file removed on close, within
bounds: at most :data:`MAX_EXPANSION` times its compressed size above
:data:`EXPANSION_FLOOR` (Keras' own limits) and only with that much free disk
space to spare.

Saving writes a new archive: every other member is copied with the same name,
order, date and compression (and its CRC checked on the way), and
``model.weights.h5`` is the original bytes with only the changed datasets
overwritten in place.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import struct
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import remove_stale_temps, temp_path
from ..core.errors import FormatError, UnsafeFileError
from ..core.model import ModelFile
from . import _keras3
from ._h5io import (
    GuardedWindow,
    H5Reader,
    atomic_output,
    check_model_config,
    check_source_unchanged,
    file_stat,
    load_json,
    open_guarded,
    open_window,
    patch_h5,
    prepare_changes,
    read_head,
    wrap_errors,
)

name = "keras"
description = "Keras 3 model archive (.keras)"
extensions = (".keras",)

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
WEIGHTS_NPZ = "model.weights.npz"
_MAX_JSON = 64 * 1024**2
#: Largest ratio of a member's declared size to its compressed size, for any size
#: (DEFLATE itself cannot exceed about 1032:1; more is a lie or another codec's bomb).
_MAX_RATIO = 1000
#: Largest ratio of a compressed member's size to its stored size above
#: :data:`EXPANSION_FLOOR`: Keras' own limit (``keras/src/saving/saving_lib.py``,
#: ``_ZIP_MEMBER_MAX_EXPANSION = 100``).
MAX_EXPANSION = 100
#: Members up to this size may expand up to :data:`_MAX_RATIO` times: Keras' floor
#: for extracting members to disk (``_ZIP_EXTRACT_BOMB_FLOOR_BYTES``, 256 MiB).
EXPANSION_FLOOR = 256 * 1024**2
#: Free disk space left over after unpacking a compressed weights member.
FREE_SPACE_RESERVE = 512 * 1024**2
_BLOCK = 1024**2


def sniff(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a zip archive holding ``config.json`` (by content).

    Also True for a zip archive that uses zip features Python cannot read
    (``NotImplementedError`` from :mod:`zipfile`, e.g. "zip file version
    13.1"), so that :func:`open` reports what is unsupported. Never raises.
    """
    if not read_head(path, 4).startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return CONFIG in zf.namelist()
    except NotImplementedError:
        return True
    except Exception:  # noqa: BLE001 - sniffing must never raise
        return False


def _check_members(zf: zipfile.ZipFile, path: Path) -> None:
    """Refuse archives whose members WeightLab would read ambiguously or not at all.

    Raises
    ------
    FormatError
        A member name that appears twice (readers disagree on which one
        counts), or an encrypted ``config.json``/``metadata.json``/weights.
    """
    seen: set[str] = set()
    for info in zf.infolist():
        if info.filename in seen:
            raise FormatError(f"damaged zip archive: it holds two members named {info.filename!r}", path)
        seen.add(info.filename)
        if info.filename in (CONFIG, METADATA, WEIGHTS) and info.flag_bits & 0x1:
            raise FormatError(f"{info.filename} is encrypted", path)


def _read_json(zf: zipfile.ZipFile, member: str, path: Path) -> Any:
    info = zf.getinfo(member)
    if info.file_size > _MAX_JSON:
        raise UnsafeFileError(f"refusing {member} of {info.file_size} bytes", path)
    _check_ratio(info, path)
    with wrap_errors(path, f"read {member}"):
        raw = zf.read(member)
    return load_json(raw, member, path)


def _check_ratio(info: zipfile.ZipInfo, path: Path) -> None:
    """Refuse a compressed member that declares far more bytes than it stores (a zip bomb)."""
    if info.compress_type == zipfile.ZIP_STORED:
        return
    stored = max(info.compress_size, 1)
    limit = MAX_EXPANSION if info.file_size > EXPANSION_FLOOR else _MAX_RATIO
    if info.file_size > limit * stored:
        raise UnsafeFileError(
            f"refusing {info.filename}: {info.compress_size} compressed bytes expand to {info.file_size} "
            f"(ratio {info.file_size / stored:.0f}, over {limit}: a zip bomb)",
            path,
        )


def _data_offset(path: str | os.PathLike[str], info: zipfile.ZipInfo) -> int:
    """Offset in the archive of a member's (stored) data, from its local header."""
    with builtins.open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise FormatError(f"damaged zip archive: bad local header for {info.filename}", path)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _open_weights(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> H5Reader:
    """Open the weights member as HDF5: in place when stored, else via a bounded temporary copy.

    A stored member's CRC is not checked here (see :class:`_CrcCheck`); a
    compressed one's is, as it is extracted.

    Raises
    ------
    UnsafeFileError
        A compressed member expanding beyond :data:`MAX_EXPANSION` (or
        :data:`_MAX_RATIO`) times its compressed size.
    FormatError
        Encrypted, damaged (CRC), not HDF5, or too large for the free space
        in the temporary folder.
    """
    if info.flag_bits & 0x1:
        raise FormatError(f"{info.filename} is encrypted", path)
    if info.compress_type == zipfile.ZIP_STORED:
        start = _data_offset(path, info)
        window = GuardedWindow(builtins.open(path, "rb"), start, info.file_size)  # noqa: SIM115 - closed by the reader
        h5 = open_window(window, path)
        raw = None
        with contextlib.suppress(Exception):
            if h5.userblock_size == 0:
                raw = (window.archive_fd, start)
        return H5Reader(h5, info.file_size, path, cleanup=window.close, raw=raw, window=window)
    _check_ratio(info, path)
    folder = Path(tempfile.gettempdir())
    remove_stale_temps(folder)  # copies left by killed WeightLab processes
    free = shutil.disk_usage(folder).free
    if info.file_size + FREE_SPACE_RESERVE > free:
        raise FormatError(
            f"cannot unpack the compressed {info.filename} ({info.file_size:,} bytes): only {free:,} bytes "
            f"are free in {folder} (store the archive's members uncompressed, as Keras does, to open it in place)",
            path,
        )
    tmp = temp_path(folder, path.name, suffix=".h5")
    try:
        with builtins.open(tmp, "wb") as out, zf.open(info) as src:
            shutil.copyfileobj(src, out, _BLOCK)  # zipfile stops at file_size and checks the CRC at the end
        reader = open_guarded(tmp, path, after_close=lambda: _unlink(tmp))
    except zipfile.BadZipFile as exc:
        _unlink(tmp)
        raise FormatError(f"damaged zip archive: {info.filename}: {exc}", path) from None
    except BaseException:
        _unlink(tmp)
        raise
    return reader


class _CrcCheck:
    """Check a stored member's zip CRC on a thread, streaming it in 1 MiB blocks.

    Started before the HDF5 layout is read so that both overlap (zlib and file
    reads release the GIL); :meth:`result` waits for it. Memory stays at one
    block whatever the member's size.
    """

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path):
        self._zf, self._info, self._path = zf, info, path
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="weightlab-zip-crc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._zf.open(self._info) as src:
                while not self._stop.is_set() and src.read(_BLOCK):
                    pass
        except BaseException as exc:  # noqa: BLE001 - handed to result()
            self._error = exc

    def cancel(self) -> None:
        """Stop early (the open failed for another reason) and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def result(self) -> None:
        """Wait for the check.

        Raises
        ------
        FormatError
            When the member's bytes do not match its CRC (or cannot be read).
        """
        self._thread.join()
        exc = self._error
        if exc is None:
            return
        if isinstance(exc, zipfile.BadZipFile) and "CRC" in str(exc):
            raise FormatError(
                f"damaged zip archive: {self._info.filename} fails its CRC check "
                f"(its bytes are not the ones that were written)",
                self._path,
            )
        with wrap_errors(self._path, f"read {self._info.filename}"):
            raise exc


def _unlink(p: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        os.unlink(p)


def open(path: str | os.PathLike[str]) -> ModelFile:  # noqa: A001 - the handler protocol's name
    """Open a ``.keras`` archive; tensor values are read on demand.

    Returns
    -------
    ModelFile
        ``format="keras"``; ``config`` = the parsed ``config.json``; ``attrs`` =
        ``metadata.json`` (``keras_version``, ``date_saved``, ``backend`` when
        present) plus ``weights_compressed``.

    Raises
    ------
    FormatError
        Not a zip, no ``config.json``/``model.weights.h5`` (an ``.npz`` weights
        store is reported as unsupported), damaged JSON or HDF5.
    UnsafeFileError
        Links, external/virtual datasets, shape or zip bombs.
    """
    path = Path(path)
    with wrap_errors(path, "read the .keras archive"):
        stat = file_stat(path)
        with zipfile.ZipFile(path) as zf:
            _check_members(zf, path)
            names = set(zf.namelist())
            info = zf.getinfo(WEIGHTS) if WEIGHTS in names else None
            # The CRC pass runs while the config and the HDF5 layout are read.
            crc = (
                _CrcCheck(zf, info, path)
                if info is not None and info.compress_type == zipfile.ZIP_STORED
                else None
            )
            reader = None
            try:
                config, meta = _read_configs(zf, names, path)
                if info is None:
                    if WEIGHTS_NPZ in names:
                        raise FormatError(
                            f"this archive stores its weights as {WEIGHTS_NPZ}, which WeightLab cannot read "
                            f"yet (re-save the model with Keras' default HDF5 weights store)",
                            path,
                        )
                    raise FormatError(f"the archive has no {WEIGHTS}", path)
                reader = _open_weights(path, zf, info)
                with reader.errors(f"read {WEIGHTS}"):
                    layers = _keras3.layers_from_config(reader.h5, config, reader.file_size, path)
                if crc is not None:
                    crc.result()
            except BaseException:
                if crc is not None:
                    crc.cancel()
                if reader is not None:
                    reader.close()
                raise
    try:
        attrs: dict[str, object] = {
            k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if isinstance(v, str | int)
        }
        attrs.update(weights_compressed=info.compress_type != zipfile.ZIP_STORED, _stat=stat)
        return ModelFile(path, name, layers, reader, config=config, attrs=attrs)
    except BaseException:
        reader.close()
        raise


def _read_configs(zf: zipfile.ZipFile, names: set[str], path: Path) -> tuple[dict[str, Any], Any]:
    """``(config.json, metadata.json or {})``, parsed and checked."""
    if CONFIG not in names:
        raise FormatError("not a Keras archive: it has no config.json", path)
    config = _read_json(zf, CONFIG, path)
    if not isinstance(config, dict) or "class_name" not in config:
        raise FormatError("config.json does not describe a Keras model", path)
    check_model_config(config, CONFIG, path)
    meta = _read_json(zf, METADATA, path) if METADATA in names else {}
    return config, meta


def _copy_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    new = zipfile.ZipInfo(info.filename, info.date_time)
    new.compress_type = info.compress_type
    new.external_attr = info.external_attr
    new.create_system = info.create_system
    new.comment = info.comment
    return new


def save(model: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
    """Write ``model`` with ``changed`` tensors to ``out`` (atomically) as a ``.keras`` archive.

    Parameters
    ----------
    model:
        An opened ``.keras`` file (its archive is read, never written).
    changed:
        ``{canonical name: array}``; each array has the stored shape (dtype cast
        with ``same_kind`` casting).
    out:
        Destination path.

    Raises
    ------
    FormatError
        Unknown name, wrong shape, source changed on disk, destination folder
        missing or not writable. Nothing is left behind on failure.
    """
    updates = prepare_changes(model, changed)
    check_source_unchanged(model)
    with atomic_output(out) as tmp:
        with zipfile.ZipFile(model.path) as zin, zipfile.ZipFile(tmp, "w", allowZip64=True) as zout:
            for info in zin.infolist():
                big = info.file_size > 2**31
                if info.filename == WEIGHTS:
                    h5tmp = temp_path(tmp.parent, Path(out).name, suffix=".h5")
                    try:
                        _copy_member(zin, info, h5tmp, model.path)
                        patch_h5(h5tmp, updates, out)
                        with (
                            builtins.open(h5tmp, "rb") as src,
                            zout.open(_copy_info(info), "w", force_zip64=big) as dst,
                        ):
                            shutil.copyfileobj(src, dst, _BLOCK)
                    finally:
                        _unlink(h5tmp)
                else:
                    with zout.open(_copy_info(info), "w", force_zip64=big) as dst:
                        _copy_member(zin, info, dst, model.path)


def _copy_member(zin: zipfile.ZipFile, info: zipfile.ZipInfo, dst: Path | Any, source: Path) -> None:
    """Copy a member's bytes to ``dst`` (a path or a writable file), checking its CRC.

    Raises
    ------
    FormatError
        Naming the source archive and the member when its bytes do not match
        its CRC (the archive was damaged since it was opened).
    """
    try:
        with zin.open(info) as src, contextlib.ExitStack() as stack:
            out = stack.enter_context(builtins.open(dst, "wb")) if isinstance(dst, Path) else dst
            shutil.copyfileobj(src, out, _BLOCK)  # zipfile checks the CRC when it reaches the end
    except zipfile.BadZipFile as exc:
        raise FormatError(f"cannot save: the opened archive is damaged: {exc}", source) from None

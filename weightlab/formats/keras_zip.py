"""Keras 3 ``.keras`` archives: a zip of config.json, metadata.json, model.weights.h5.

Layer order and class names come from ``config.json``; tensors are read lazily
from ``model.weights.h5`` (see :mod:`weightlab.formats._keras3` for its layout).
A weights member stored uncompressed (as Keras writes it) is read in place
through a window on the archive; a compressed one is extracted to a temporary
file removed on close.

Saving writes a new archive: every other member is copied with the same name,
order, date and compression, and ``model.weights.h5`` is the original bytes with
only the changed datasets overwritten in place.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FormatError, UnsafeFileError
from ..core.model import ModelFile
from . import _keras3
from ._h5io import (
    H5Reader,
    atomic_output,
    check_source_unchanged,
    file_stat,
    open_h5,
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
_MAX_RATIO = 1000


def sniff(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a zip archive holding ``config.json`` (by content)."""
    if not read_head(path, 4).startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return CONFIG in zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False


def _read_json(zf: zipfile.ZipFile, member: str, path: str | os.PathLike[str]) -> Any:
    info = zf.getinfo(member)
    if info.file_size > _MAX_JSON:
        raise UnsafeFileError(f"refusing {member} of {info.file_size} bytes", path)
    with wrap_errors(path, f"read {member}"):
        return json.loads(zf.read(member).decode("utf-8"))


class _Window(io.RawIOBase):
    """A read-only file object over ``[start, start + size)`` of another file."""

    def __init__(self, fh: io.BufferedReader, start: int, size: int):
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:  # noqa: D102
        return True

    def seekable(self) -> bool:  # noqa: D102
        return True

    def tell(self) -> int:  # noqa: D102
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # noqa: D102
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf: Any) -> int:  # noqa: D102
        n = max(0, min(len(buf), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buf)[:n])
        self._pos += got
        return got

    def archive_fd(self) -> int:
        """Descriptor of the whole archive (for positioned reads at ``start + offset``)."""
        return self._fh.fileno()

    def close(self) -> None:  # noqa: D102
        self._fh.close()
        super().close()


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
    """Open the weights member as HDF5: in place when stored, else via a temporary copy."""
    if info.flag_bits & 0x1:
        raise FormatError(f"{info.filename} is encrypted", path)
    if info.compress_type == zipfile.ZIP_STORED:
        start = _data_offset(path, info)
        window = _Window(builtins.open(path, "rb"), start, info.file_size)  # noqa: SIM115 - closed by the reader
        try:
            h5 = open_h5(window, path)
        except BaseException:
            window.close()
            raise
        raw = None
        with contextlib.suppress(Exception):
            if h5.userblock_size == 0:
                raw = (window.archive_fd, start)
        return H5Reader(h5, info.file_size, path, cleanup=window.close, raw=raw)
    if info.file_size > _MAX_RATIO * max(info.compress_size, 1):
        raise UnsafeFileError(
            f"refusing {info.filename}: {info.compress_size} compressed bytes expand to {info.file_size}",
            path,
        )
    fd, tmp = tempfile.mkstemp(prefix="weightlab-", suffix=".h5")
    try:
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            shutil.copyfileobj(src, out, 1024**2)
        h5 = open_h5(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return H5Reader(h5, info.file_size, path, cleanup=lambda: _unlink(tmp))


def _unlink(p: str) -> None:
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
            names = zf.namelist()
            if CONFIG not in names:
                raise FormatError("not a Keras archive: it has no config.json", path)
            config = _read_json(zf, CONFIG, path)
            if not isinstance(config, dict) or "class_name" not in config:
                raise FormatError("config.json does not describe a Keras model", path)
            meta = _read_json(zf, METADATA, path) if METADATA in names else {}
            if WEIGHTS not in names:
                if WEIGHTS_NPZ in names:
                    raise FormatError(
                        f"this archive stores its weights as {WEIGHTS_NPZ}, which WeightLab cannot read yet "
                        f"(re-save the model with Keras' default HDF5 weights store)",
                        path,
                    )
                raise FormatError(f"the archive has no {WEIGHTS}", path)
            info = zf.getinfo(WEIGHTS)
            reader = _open_weights(path, zf, info)
    try:
        with wrap_errors(path, f"read {WEIGHTS}"):
            layers = _keras3.layers_from_config(reader.h5, config, reader.file_size, path)
        attrs = {
            k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if isinstance(v, str | int)
        }
        attrs.update(weights_compressed=info.compress_type != zipfile.ZIP_STORED, _stat=stat)
        return ModelFile(path, name, layers, reader, config=config, attrs=attrs)
    except BaseException:
        reader.close()
        raise


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
                    fd, h5tmp = tempfile.mkstemp(prefix=".weightlab-", suffix=".h5", dir=tmp.parent)
                    try:
                        with os.fdopen(fd, "wb") as fh, zin.open(info) as src:
                            shutil.copyfileobj(src, fh, 1024**2)
                        patch_h5(Path(h5tmp), updates, out)
                        with (
                            builtins.open(h5tmp, "rb") as src,
                            zout.open(_copy_info(info), "w", force_zip64=big) as dst,
                        ):
                            shutil.copyfileobj(src, dst, 1024**2)
                    finally:
                        _unlink(h5tmp)
                else:
                    with zin.open(info) as src, zout.open(_copy_info(info), "w", force_zip64=big) as dst:
                        shutil.copyfileobj(src, dst, 1024**2)

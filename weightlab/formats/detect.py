"""Say what an unknown file looks like, for error messages (no format is assumed)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import h5py

from . import tfsniff
from ._h5io import has_hdf5_signature, read_head


def describe_file(path: str | os.PathLike[str]) -> str:
    """Describe what ``path`` looks like, judged by its content.

    Returns
    -------
    str
        A short phrase such as ``"a text file"``, ``"an HTML page"``,
        ``"a Git LFS pointer (...)"``, ``"an empty zip archive"``,
        ``"an HDF5 file without Keras model weights"``, ``"empty file"``,
        ``"random binary data"``; never raises.
    """
    p = Path(path)
    try:
        if not p.exists():
            return "no such file"
        if p.is_dir():
            if (p / "saved_model.pb").exists():
                return "a TensorFlow SavedModel folder (not a single model file)"
            if tfsniff.checkpoint_prefix(p) is not None:
                return "a folder of TensorFlow checkpoints"
            return "a folder"
        if not p.is_file():
            return "not a regular file"
        size = p.stat().st_size
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size == 0:
        return "empty file"
    head = read_head(p, 4096)
    if has_hdf5_signature(head):
        return _describe_h5(p)
    if head.startswith(b"PK"):
        return _describe_zip(p)
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (the real file was not downloaded; run `git lfs pull`)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array file"
    if tfsniff.is_bundle_index(p):
        return "a TensorFlow checkpoint index (tensor bundle)"
    if tfsniff.looks_like_graphdef(p):
        return "a TensorFlow GraphDef (.pb)"
    text = _as_text(head)
    if text is not None:
        low = text.lstrip().lower()
        if low.startswith(("<!doctype html", "<html")) or "<html" in low[:1024]:
            return "an HTML page (perhaps a download or login page instead of the file)"
        if low.startswith(("{", "[")):
            return "a JSON or text file"
        return "a text file"
    return "random binary data"


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return text if printable >= 0.95 * max(len(text), 1) else None


def _describe_h5(p: Path) -> str:
    try:
        with h5py.File(p, "r") as h5:
            if "model_weights" in h5 or "layer_names" in h5.attrs:
                return "a Keras HDF5 model file"
            if "layers" in h5:
                return "a Keras 3 weights file"
            return "an HDF5 file without Keras model weights"
    except Exception:  # noqa: BLE001 - describing never raises
        return "a damaged or truncated HDF5 file"


def _describe_zip(p: Path) -> str:
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except Exception:  # noqa: BLE001 - describing never raises
        return "a damaged or truncated zip archive"
    if not names:
        return "an empty zip archive"
    if "config.json" in names:
        return "a Keras archive"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"a zip archive without a Keras model (no config.json; it holds {shown})"

"""Recognise TensorFlow files by content, in pure Python (no TensorFlow, no protobuf classes).

Used to detect SavedModel folders, tensor-bundle checkpoints and GraphDef
``.pb`` files before any TensorFlow code runs, and to find a checkpoint's
prefix from whatever the user picked (the ``.index`` file, a data shard, the
``.meta``, the prefix itself, the ``checkpoint`` state file or the folder).
Every function here never raises.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ._h5io import read_head

#: Magic number at the end of a LevelDB-style table (a tensor bundle ``.index``).
TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_TABLE_FOOTER = 48
_DATA_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")
_STATE_PATH = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.M)
_OP_NAME = re.compile(rb"^[A-Za-z_][A-Za-z0-9_>.]*$")


def is_bundle_index(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file ending with a LevelDB table footer (tensor bundle index)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < _TABLE_FOOTER:
                return False
            fh.seek(-8, os.SEEK_END)
            return fh.read(8) == TABLE_MAGIC
    except OSError:
        return False


def saved_model_folder(path: str | os.PathLike[str]) -> Path | None:
    """The SavedModel folder for ``path`` (the folder or its ``saved_model.pb``), or None."""
    p = Path(path)
    try:
        if p.is_file() and p.name in ("saved_model.pb", "saved_model.pbtxt"):
            p = p.parent
        if p.is_dir() and ((p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()):
            return p
    except OSError:
        pass
    return None


def _state_prefixes(folder: Path) -> list[str]:
    """Candidate prefixes named by the ``checkpoint`` state file of ``folder``."""
    try:
        text = (folder / "checkpoint").read_text("utf-8", errors="replace")
    except OSError:
        return []
    m = _STATE_PATH.search(text)
    if not m:
        return []
    named = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
    out = [named if os.path.isabs(named) else os.path.join(folder, named)]
    # Written on another machine: keep only the base name (POSIX or Windows separators).
    out.append(os.path.join(folder, re.split(r"[\\/]", named)[-1]))
    return out


def checkpoint_prefix(path: str | os.PathLike[str]) -> str | None:
    """The tensor-bundle prefix the user means by ``path``, or None when it is no checkpoint.

    ``path`` may be the prefix (``run/ckpt-5``), its ``.index``, a data shard,
    its ``.meta``, the ``checkpoint`` state file or the folder. In a folder the
    state file wins (a path written on another machine is looked up by base
    name in the folder); else the newest ``.index``. A checkpoint saved with an
    empty prefix (files ``.index`` and ``.data-00000-of-00001``) has the prefix
    ``"folder/"``.
    """
    s = os.fspath(path)
    p = Path(s)
    try:
        if p.is_file() and p.name == "checkpoint" and not is_bundle_index(p):
            p = p.parent
        if p.is_dir():
            for prefix in _state_prefixes(p):
                if is_bundle_index(prefix + ".index"):
                    return prefix
            indexes = [f for f in p.iterdir() if f.name.endswith(".index") and is_bundle_index(f)]
            if not indexes:
                return None
            newest = max(indexes, key=lambda f: (f.stat().st_mtime_ns, f.name))
            return os.path.join(p, newest.name[: -len(".index")])
        if s.endswith(".index") and is_bundle_index(s):
            return s[: -len(".index")]
        for pattern in (_DATA_SHARD, re.compile(r"\.meta$")):
            m = pattern.search(s)
            if m and is_bundle_index(s[: m.start()] + ".index"):
                return s[: m.start()]
        if is_bundle_index(s + ".index"):
            return s
    except OSError:
        pass
    return None


# -- protocol-buffer wire format ----------------------------------------------------
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise IndexError
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Top-level ``(field number, wire type, value)`` of a message; stops at a cut-off end.

    ``value`` is an int for a varint (wire type 0), else the field's bytes.

    Raises
    ------
    ValueError
        On an invalid wire type or field number.
    """
    out: list[tuple[int, int, int | bytes]] = []
    value: int | bytes
    i = 0
    try:
        while i < len(buf):
            tag, i = _varint(buf, i)
            field, wire = tag >> 3, tag & 7
            if field == 0:
                raise ValueError("field 0")
            if wire == 0:
                value, i = _varint(buf, i)
            elif wire == 2:
                n, i = _varint(buf, i)
                value, i = buf[i : i + n], i + n
            elif wire == 1:
                value, i = buf[i : i + 8], i + 8
            elif wire == 5:
                value, i = buf[i : i + 4], i + 4
            else:
                raise ValueError(f"wire type {wire}")
            out.append((field, wire, value))
    except IndexError:
        pass
    return out


def looks_like_graphdef(path: str | os.PathLike[str], limit: int = 1 << 20) -> bool:
    """True when the start of ``path`` parses as a ``GraphDef`` whose first node has a name and an op.

    Checks the wire format only (fields 1 node, 2 library, 3 version, 4
    versions), so a SavedModel's ``saved_model.pb`` or random bytes are not taken
    for a GraphDef.
    """
    head = read_head(path, limit)
    if not head or head[0] not in (0x0A, 0x12, 0x18, 0x22):
        return False
    try:
        fields = _fields(head)
        allowed = {(1, 2), (2, 2), (3, 0), (4, 2)}
        if not fields or any((f, w) not in allowed for f, w, _ in fields):
            return False
        nodes = [v for f, _, v in fields if f == 1 and isinstance(v, bytes)]  # field 1 has wire type 2
        if not nodes:
            return False
        node = {f: v for f, w, v in _fields(nodes[0]) if w == 2 and f in (1, 2)}
        name, op = node.get(1), node.get(2)
        return isinstance(name, bytes) and bool(name) and isinstance(op, bytes) and bool(_OP_NAME.match(op))
    except ValueError:
        return False

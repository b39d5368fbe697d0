"""Seeded mutations of model files for the fuzz tests (tests/test_fuzz.py).

Every mutation is a function ``(rng, src, dst, kind)``: it reads the base file
``src``, writes a mutated copy to ``dst`` (same name) and returns a short
description of what it changed (for failure messages). ``kind`` is ``"zip"``
(a ``.keras`` archive), ``"h5"`` (any HDF5 model file) or ``"tf"``.
Mutations never import TensorFlow; the HDF5 ones use h5py, the zip ones
zipfile and raw bytes, so the corpus is cheap to make.
"""

from __future__ import annotations

import json
import shutil
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# -- raw bytes -------------------------------------------------------------------------


def _pos(rng: np.random.Generator, n: int) -> int:
    """A position in ``[0, n)``; half the time in the first 4 KiB (headers, metadata)."""
    if n <= 1:
        return 0
    if rng.random() < 0.5:
        return int(rng.integers(0, min(n, 4096)))
    return int(rng.integers(0, n))


def truncate(rng, src: Path, dst: Path, kind: str) -> str:
    data = src.read_bytes()
    n = (
        _pos(rng, len(data))
        if rng.random() < 0.7
        else len(data) - int(rng.integers(1, min(len(data), 512) + 1))
    )
    dst.write_bytes(data[:n])
    return f"truncate to {n} of {len(data)} bytes"


def flip(rng, src: Path, dst: Path, kind: str) -> str:
    data = bytearray(src.read_bytes())
    where = []
    for _ in range(int(rng.integers(1, 9))):
        i = _pos(rng, len(data)) if rng.random() < 0.6 else len(data) - 1 - _pos(rng, len(data))
        data[i] ^= int(rng.integers(1, 256))
        where.append(i)
    dst.write_bytes(bytes(data))
    return f"flip bytes at {where}"


def zero_block(rng, src: Path, dst: Path, kind: str) -> str:
    data = bytearray(src.read_bytes())
    i = _pos(rng, len(data))
    n = int(rng.integers(1, 4097))
    data[i : i + n] = bytes(len(data[i : i + n]))
    dst.write_bytes(bytes(data))
    return f"zero {n} bytes at {i}"


# -- JSON ------------------------------------------------------------------------------

_ODD_VALUES: list[Any] = [None, 0, -1, 10**30, "x", "", [], {}, [1, 2, 3], True, 1e308, {"layers": 5}]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    stack = [(doc, prefix)]
    while stack and len(out) < 5000:
        obj, p = stack.pop()
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for k, v in items:
            out.append((*p, k))
            stack.append((v, (*p, k)))
    return out


def mutate_json(rng: np.random.Generator, text: str) -> tuple[str, str]:
    """A damaged or odd variant of a JSON document; ``(new text, description)``."""
    choice = int(rng.integers(0, 8))
    if choice == 0:
        n = int(rng.integers(0, len(text)))
        return text[:n], f"JSON cut at {n}"
    if choice == 1:
        depth = int(rng.choice([300, 5000, 100_000]))
        return (
            '{"class_name": "Sequential", "config": {"layers": ' + "[" * depth + "]" * depth + "}}",
            f"nested {depth}",
        )
    if choice == 2:
        digits = int(rng.choice([101, 4300, 5000]))
        return text.replace('"trainable": true', '"trainable": ' + "9" * digits, 1).replace(
            '"class_name"', f'"n": {"7" * digits}, "class_name"', 1
        ), f"{digits}-digit number"
    if choice == 3:
        return "\udcff".encode("utf-8", "surrogatepass").decode("latin-1") + text, "not UTF-8"
    doc = json.loads(text)
    paths = _paths(doc)
    target = paths[int(rng.integers(0, len(paths)))]
    if not target:
        return json.dumps(_ODD_VALUES[int(rng.integers(0, len(_ODD_VALUES)))]), "whole config replaced"
    parent = doc
    for k in target[:-1]:
        parent = parent[k]
    if choice == 4 and isinstance(parent, dict):
        del parent[target[-1]]
        return json.dumps(doc), f"deleted {target}"
    if choice == 5 and isinstance(parent, list):
        parent.append(parent[target[-1]])  # a repeated layer or entry
        return json.dumps(doc), f"repeated {target}"
    value = _ODD_VALUES[int(rng.integers(0, len(_ODD_VALUES)))]
    parent[target[-1]] = value
    return json.dumps(doc), f"{target} = {value!r}"[:200]


# -- zip archives ----------------------------------------------------------------------


def _members(src: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(src) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def _write_zip(dst: Path, members: list[tuple[zipfile.ZipInfo, bytes]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        with zipfile.ZipFile(dst, "w") as zf:
            for info, data in members:
                zf.writestr(info, data)


def _renamed(info: zipfile.ZipInfo, name: str) -> zipfile.ZipInfo:
    new = zipfile.ZipInfo(name, info.date_time)
    new.compress_type = info.compress_type
    return new


def zip_members(rng, src: Path, dst: Path, kind: str) -> str:
    """Rename, drop, repeat or recompress a member of the archive."""
    members = _members(src)
    i = int(rng.integers(0, len(members)))
    info, data = members[i]
    op = int(rng.integers(0, 5))
    if op == 0:
        name = str(
            rng.choice(
                ["config.jsn", "model.weights.h5.bak", "../config.json", "CONFIG.JSON", "x/" + info.filename]
            )
        )
        members[i] = (_renamed(info, name), data)
        what = f"rename {info.filename} -> {name}"
    elif op == 1:
        del members[i]
        what = f"drop {info.filename}"
    elif op == 2:
        members.insert(int(rng.integers(0, len(members) + 1)), (_renamed(info, info.filename), data[::-1]))
        what = f"second {info.filename}"
    elif op == 3:
        new = _renamed(info, info.filename)
        new.compress_type = int(rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
        members[i] = (new, data)
        _write_zip(dst, members)
        raw = bytearray(dst.read_bytes())
        with zipfile.ZipFile(dst) as zf:
            zi = zf.getinfo(info.filename)
        start = zi.header_offset + 30 + len(zi.filename.encode()) + len(zi.extra)
        for _ in range(int(rng.integers(0, 4))):  # sometimes damage the compressed stream
            raw[start + int(rng.integers(0, max(zi.compress_size, 1)))] ^= int(rng.integers(1, 256))
        dst.write_bytes(bytes(raw))
        return f"recompress {info.filename} with method {new.compress_type}"
    else:
        members[i] = (info, data + bytes(int(rng.integers(1, 1 << 16))))
        what = f"pad {info.filename} with zeros"
    _write_zip(dst, members)
    return what


def zip_member_bytes(rng, src: Path, dst: Path, kind: str) -> str:
    """Damage bytes inside one member's data (its CRC no longer matches), or fix the CRC too."""
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        infos = zf.infolist()
    info = infos[int(rng.integers(0, len(infos)))]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    n = max(info.compress_size, 1)
    where = [start + int(rng.integers(0, n)) for _ in range(int(rng.integers(1, 5)))]
    for i in where:
        raw[i] ^= int(rng.integers(1, 256))
    dst.write_bytes(bytes(raw))
    return f"damage {info.filename} at {where}"


_CENTRAL_FIELDS = {  # offset in a central directory header: (name, struct format)
    6: ("version needed", "<H"),
    8: ("flags", "<H"),
    10: ("method", "<H"),
    16: ("crc", "<I"),
    20: ("compressed size", "<I"),
    24: ("size", "<I"),
    42: ("local header offset", "<I"),
}


def zip_header(rng, src: Path, dst: Path, kind: str) -> str:
    """Set a field of one central directory (and its local) header to an odd value."""
    raw = bytearray(src.read_bytes())
    eocd = raw.rfind(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HII", raw, eocd + 10)
    entries = []
    pos = cd_offset
    for _ in range(count):
        nlen, elen, clen = struct.unpack_from("<HHH", raw, pos + 28)
        entries.append(pos)
        pos += 46 + nlen + elen + clen
    entry = entries[int(rng.integers(0, len(entries)))]
    off = list(_CENTRAL_FIELDS)[int(rng.integers(0, len(_CENTRAL_FIELDS)))]
    name, fmt = _CENTRAL_FIELDS[off]
    size = struct.calcsize(fmt)
    value = int(
        rng.choice([0, 1, 131, 0xFFFF if size == 2 else 0xFFFFFFFF, int(rng.integers(0, 1 << (8 * size)))])
    )
    if name == "flags":
        value = int(rng.choice([1, 8, 0x41, 0x2000, value]))
    if name == "method":
        value = int(rng.choice([1, 6, 9, 12, 14, 93, 98, 99, value]))
    struct.pack_into(fmt, raw, entry + off, value)
    local = struct.unpack_from("<I", bytes(raw), entry + 42)[0]
    local_field = {6: 4, 8: 6, 10: 8, 16: 14, 20: 18, 24: 22}.get(off)
    if local_field is not None and local + 30 <= len(raw) and raw[local : local + 4] == b"PK\x03\x04":
        struct.pack_into(fmt, raw, local + local_field, value)
    dst.write_bytes(bytes(raw))
    return f"central header {name} = {value}"


def zip_config(rng, src: Path, dst: Path, kind: str) -> str:
    """Replace config.json (or metadata.json) by a damaged or odd variant."""
    members = _members(src)
    names = [i.filename for i, _ in members]
    target = "metadata.json" if "metadata.json" in names and rng.random() < 0.2 else "config.json"
    k = names.index(target)
    text, what = mutate_json(rng, members[k][1].decode("utf-8"))
    members[k] = (members[k][0], text.encode("utf-8", "surrogateescape"))
    _write_zip(dst, members)
    return f"{target}: {what}"


def zip_inner_h5(rng, src: Path, dst: Path, kind: str) -> str:
    """Apply an HDF5 mutation to model.weights.h5 and store it back."""
    members = _members(src)
    k = [i.filename for i, _ in members].index("model.weights.h5")
    inner_src = dst.with_name("inner-src.h5")
    inner_dst = dst.with_name("inner-dst.h5")
    inner_src.write_bytes(members[k][1])
    try:
        mutation = H5_MUTATIONS[int(rng.integers(0, len(H5_MUTATIONS)))]
        what = mutation(rng, inner_src, inner_dst, "h5")
        members[k] = (members[k][0], inner_dst.read_bytes())
    finally:
        inner_src.unlink(missing_ok=True)
        inner_dst.unlink(missing_ok=True)
    _write_zip(dst, members)
    return f"model.weights.h5: {what}"


# -- HDF5 structure --------------------------------------------------------------------


def _datasets(h5: h5py.File) -> list[str]:
    out: list[str] = []
    h5.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


def _groups_with(h5: h5py.File, attr: str) -> list[h5py.Group]:
    out: list[h5py.Group] = [h5] if attr in h5.attrs else []
    h5.visititems(
        lambda name, obj: out.append(obj) if isinstance(obj, h5py.Group) and attr in obj.attrs else None
    )
    return out


def h5_huge_shape(rng, src: Path, dst: Path, kind: str) -> str:
    """Replace a dataset by one declaring a huge shape with little or nothing stored."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h5:
        names = _datasets(h5)
        if not names:
            return "no dataset"
        name = names[int(rng.integers(0, len(names)))]
        dtype = h5[name].dtype
        del h5[name]
        variant = int(rng.integers(0, 4))
        if variant == 0:  # chunked, nothing written
            h5.create_dataset(name, shape=(1 << int(rng.integers(20, 41)),), dtype=dtype, chunks=(1 << 16,))
        elif variant == 1:  # contiguous, never allocated
            h5.create_dataset(name, shape=(1 << int(rng.integers(18, 30)), 4), dtype=dtype)
        elif variant == 2:  # one compressed chunk of zeros standing for a large tensor
            n = 1 << int(rng.integers(22, 25))
            ds = h5.create_dataset(name, shape=(n,), dtype="int8", chunks=(n,), compression="gzip")
            ds[:] = 0
        else:  # a plausible shape, ratio just under Keras' dataset limit
            ds = h5.create_dataset(
                name, shape=(1 << 20,), dtype="float32", chunks=(1 << 18,), compression="gzip"
            )
            ds[: 1 << 18] = np.arange(1 << 18, dtype="float32")
        return f"{name}: huge shape variant {variant}"


def h5_dtype(rng, src: Path, dst: Path, kind: str) -> str:
    """Store a dataset again with another dtype (complex, string, float16, int8, bool, compound...)."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h5:
        names = _datasets(h5)
        if not names:
            return "no dataset"
        name = names[int(rng.integers(0, len(names)))]
        arr = h5[name][()]
        del h5[name]
        choice = int(rng.integers(0, 7))
        if choice == 0:
            h5[name] = arr.astype("complex64")
        elif choice == 1:
            h5[name] = np.array([b"a"] * max(arr.size, 1))
        elif choice == 2:
            h5[name] = arr.astype("float16")
        elif choice == 3:
            h5[name] = arr.astype("int8")
        elif choice == 4:
            h5[name] = arr.astype(bool)
        elif choice == 5:
            h5[name] = np.zeros(arr.shape, dtype=[("a", "f4"), ("b", "i4")])
        else:
            h5[name] = arr.astype(">f8")
        return f"{name}: dtype variant {choice}"


def h5_names(rng, src: Path, dst: Path, kind: str) -> str:
    """Damage a layer_names / weight_names attribute (repeats, missing names, other types)."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h5:
        holders = _groups_with(h5, "layer_names") + _groups_with(h5, "weight_names")
        if not holders:
            return "no names attribute"
        g = holders[int(rng.integers(0, len(holders)))]
        attr = "layer_names" if "layer_names" in g.attrs else "weight_names"
        names = [n if isinstance(n, bytes) else str(n).encode() for n in np.atleast_1d(g.attrs[attr])]
        choice = int(rng.integers(0, 6))
        if choice == 0 and names:
            new = names + [names[int(rng.integers(0, len(names)))]] * int(rng.choice([1, 10, 1000]))
        elif choice == 1:
            new = [*names, b"no_such_layer"]
        elif choice == 2:
            new = []
        elif choice == 3:
            new = np.arange(3)
        elif choice == 4 and names:
            new = [b"../" + n for n in names]
        else:
            new = [b"x" * 300] + names
        del g.attrs[attr]
        g.attrs[attr] = np.array(new) if len(new) else np.array([], dtype="S1")
        return f"{g.name}.{attr} variant {choice}"


def h5_links(rng, src: Path, dst: Path, kind: str) -> str:
    """Replace a dataset by a soft, external or second hard link."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h5:
        names = _datasets(h5)
        if len(names) < 2:
            return "too few datasets"
        a, b = (names[int(i)] for i in rng.choice(len(names), 2, replace=False))
        del h5[a]
        choice = int(rng.integers(0, 3))
        if choice == 0:
            h5[a] = h5py.SoftLink("/" + b)
        elif choice == 1:
            h5[a] = h5py.ExternalLink(str(src), "/" + b)
        else:
            h5[a] = h5[b]  # hard link: the same dataset under two names
        return f"{a} -> link {choice} to {b}"


def h5_config(rng, src: Path, dst: Path, kind: str) -> str:
    """Replace the model_config attribute by a damaged or odd variant (plain copy when absent)."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h5:
        if "model_config" not in h5.attrs:
            return "no model_config"
        raw = h5.attrs["model_config"]
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        new, what = mutate_json(rng, text)
        h5.attrs["model_config"] = new.encode("utf-8", "surrogateescape")
        return f"model_config: {what}"


H5_MUTATIONS = [h5_huge_shape, h5_dtype, h5_names, h5_links, h5_config]
RAW_MUTATIONS = [truncate, flip, zero_block]
ZIP_MUTATIONS = [zip_members, zip_member_bytes, zip_header, zip_config, zip_inner_h5]


def mutations_for(kind: str) -> list:
    """Mutations that apply to a base file of ``kind`` (``"zip"`` or ``"h5"``), raw ones weighted twice."""
    own = ZIP_MUTATIONS if kind == "zip" else H5_MUTATIONS
    return RAW_MUTATIONS * 2 + own

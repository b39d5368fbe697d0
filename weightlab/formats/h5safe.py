"""Guarded access to untrusted HDF5 files (h5py only).

Like Keras' ``saving_lib.safe_get_h5_dataset``, every object WeightLab reaches in
an HDF5 file goes through this module, which refuses:

- external links (they open *other* files) and soft links (they can alias any
  object, or an external link, under an innocent name): only hard links are
  followed;
- datasets with external storage (raw data in other files) and virtual
  datasets (data mapped from other files);
- non-numeric dtypes (strings, objects, compounds, references...);
- shape bombs: datasets whose declared size is absurd for the bytes actually
  stored (contiguous data running past the end of the file, unallocated data,
  chunked data declaring more than :data:`MAX_RATIO` times its stored bytes,
  or more than :data:`MAX_EXPANSION` times once it declares over
  :data:`EXPANSION_FLOOR`, more than :data:`MAX_TENSOR_BYTES` in total).

Every refusal raises :class:`~weightlab.core.errors.UnsafeFileError` naming the
file and the dataset; data WeightLab cannot represent (complex numbers, floats
wider than 64 bits) raises :class:`~weightlab.core.errors.FormatError`. Checks
only read metadata, never tensor values.
"""

from __future__ import annotations

import math
import os

import h5py
import numpy as np

from ..core.errors import FormatError, UnsafeFileError

#: Largest tensor WeightLab will read (bytes).
MAX_TENSOR_BYTES = 16 * 1024**3
#: Largest allowed ratio of declared bytes to stored bytes for chunked data of
#: any size: Keras' own limit for HDF5 datasets
#: (``keras/src/saving/saving_lib.py``, ``_H5_DATASET_MAX_EXPANSION = 1000``,
#: used by ``safe_get_h5_dataset``).
MAX_RATIO = 1000
#: Largest allowed ratio of declared bytes to stored bytes for chunked
#: (compressed) data declaring more than :data:`EXPANSION_FLOOR`: the ratio
#: Keras applies to compressed data it inflates
#: (``keras/src/saving/saving_lib.py``, ``_ZIP_MEMBER_MAX_EXPANSION = 100``:
#: "DEFLATE cannot exceed ~1032:1, so a member that ... expands to more than
#: 100x its on-disk size is a bomb, not a genuine artifact"). Keras applies
#: its HDF5 ratio only above 4 GiB, which lets 2 GiB be inflated from 2 MiB;
#: WeightLab holds every large tensor to the stricter ratio.
MAX_EXPANSION = 100
#: Declared bytes above which :data:`MAX_EXPANSION` applies (a tensor this
#: small may compress better, e.g. all zeros, and costs little to read).
EXPANSION_FLOOR = 16 * 1024**2
#: Declared bytes allowed without any stored data (fill values only).
_MAX_UNALLOCATED = 1024 * 1024
#: dtype kinds accepted as tensors: bool, signed/unsigned int, float.
_NUMERIC_KINDS = "biuf"
#: dtype kinds WeightLab reads as plain bytes (no complex: it is refused earlier).
_RAW_KINDS = "biufc"


def child(group: h5py.Group, name: str, path: str | os.PathLike[str]) -> h5py.Group | h5py.Dataset:
    """Return ``group[name]`` after checking that it is reached by a hard link.

    Parameters
    ----------
    group:
        An open h5py group.
    name:
        Name of a direct member (no ``/``).
    path:
        The file, for error messages.

    Raises
    ------
    UnsafeFileError
        When ``name`` is a soft or external link.
    FormatError
        When there is no such member.
    """
    full = f"{group.name.rstrip('/')}/{name}"
    link = group.get(name, getlink=True)
    if link is None:
        raise FormatError(f"missing HDF5 object {full!r}", path)
    if isinstance(link, h5py.ExternalLink):
        raise UnsafeFileError(
            f"refusing HDF5 external link {full!r} (points to {link.filename!r}:{link.path!r})", path
        )
    if isinstance(link, h5py.SoftLink):
        raise UnsafeFileError(f"refusing HDF5 soft link {full!r} (points to {link.path!r})", path)
    return group[name]


def get(root: h5py.Group, key: str, path: str | os.PathLike[str]) -> h5py.Group | h5py.Dataset:
    """Return the object at ``key`` (``"a/b/c"``), following hard links only.

    Raises
    ------
    UnsafeFileError
        When any component of ``key`` is a soft or external link.
    FormatError
        When a component is missing or is not a group.
    """
    obj: h5py.Group | h5py.Dataset = root
    for part in (p for p in key.split("/") if p):
        if not isinstance(obj, h5py.Group):
            raise FormatError(f"HDF5 object {obj.name!r} is not a group (while looking for {key!r})", path)
        obj = child(obj, part, path)
    return obj


def members(group: h5py.Group, path: str | os.PathLike[str]) -> list[tuple[str, h5py.Group | h5py.Dataset]]:
    """Return ``(name, object)`` for every member of ``group``, refusing links."""
    return [(name, child(group, name, path)) for name in group.keys()]


def check_dataset(ds: h5py.Dataset, file_size: int, path: str | os.PathLike[str]) -> None:
    """Refuse a dataset that is unsafe or absurd to read (metadata only).

    Parameters
    ----------
    ds:
        The dataset.
    file_size:
        Size in bytes of the HDF5 file holding it.
    path:
        The file, for error messages.

    Raises
    ------
    UnsafeFileError
        External storage, virtual dataset, non-numeric dtype or shape bomb.
    """
    name = ds.name
    if ds.is_virtual:
        raise UnsafeFileError(f"refusing virtual dataset {name!r} (its data lives in other files)", path)
    if ds.external:
        raise UnsafeFileError(f"refusing dataset {name!r} with external storage {ds.external[0][0]!r}", path)
    dt = ds.dtype
    if dt.kind == "c" and dt.fields is None and dt.subdtype is None:
        raise FormatError(
            f"dataset {name!r} holds complex numbers ({dt}); WeightLab reads real-valued tensors only", path
        )
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise UnsafeFileError(f"refusing dataset {name!r}: dtype {dt} is not numeric", path)
    if dt.kind == "f" and dt.itemsize > 8:
        raise FormatError(
            f"dataset {name!r} holds {dt.itemsize * 8}-bit floats; WeightLab reads floats of up to 64 bits",
            path,
        )
    shape = ds.shape or ()
    nbytes = math.prod(shape) * ds.dtype.itemsize
    if nbytes == 0:
        return
    if nbytes > MAX_TENSOR_BYTES:
        raise UnsafeFileError(
            f"refusing dataset {name!r}: shape {shape} declares {nbytes} bytes "
            f"(more than {MAX_TENSOR_BYTES} bytes)",
            path,
        )
    layout = ds.id.get_create_plist().get_layout()
    stored = ds.id.get_storage_size()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is None:
            if nbytes > _MAX_UNALLOCATED:
                raise UnsafeFileError(
                    f"refusing dataset {name!r}: shape {shape} declares {nbytes} bytes but none are stored",
                    path,
                )
        elif offset + nbytes > file_size:
            raise UnsafeFileError(
                f"refusing dataset {name!r}: shape {shape} declares {nbytes} bytes at offset {offset}, "
                f"past the end of the {file_size}-byte file",
                path,
            )
    elif layout == h5py.h5d.CHUNKED:
        if stored == 0 and nbytes > _MAX_UNALLOCATED:
            raise UnsafeFileError(
                f"refusing dataset {name!r}: shape {shape} declares {nbytes} bytes but none are stored", path
            )
        if stored > file_size:
            raise UnsafeFileError(
                f"refusing dataset {name!r}: it claims {stored} stored bytes in a {file_size}-byte file", path
            )
        limit = MAX_EXPANSION if nbytes > EXPANSION_FLOOR else MAX_RATIO
        if stored and nbytes > limit * stored:
            raise UnsafeFileError(
                f"refusing dataset {name!r}: shape {shape} declares {nbytes} bytes from {stored} stored "
                f"bytes (ratio {nbytes / stored:.0f}, over {limit}: a decompression bomb)",
                path,
            )
    elif nbytes > 64 * 1024:  # compact data lives in the object header (< 64 KiB)
        raise UnsafeFileError(f"refusing compact dataset {name!r} declaring {nbytes} bytes", path)


def dataset(root: h5py.Group, key: str, file_size: int, path: str | os.PathLike[str]) -> h5py.Dataset:
    """Return the checked dataset at ``key`` (see :func:`get` and :func:`check_dataset`).

    Raises
    ------
    UnsafeFileError, FormatError
        As :func:`get` and :func:`check_dataset`; FormatError when ``key`` is a group.
    """
    ds = get(root, key, path)
    if not isinstance(ds, h5py.Dataset):
        raise FormatError(f"HDF5 object {key!r} is not a dataset", path)
    check_dataset(ds, file_size, path)
    return ds


def read(root: h5py.Group, key: str, file_size: int, path: str | os.PathLike[str]) -> np.ndarray:
    """Read the values of the dataset at ``key`` after all safety checks.

    Returns
    -------
    numpy.ndarray
        A new array with the dataset's shape and dtype (0-d for scalars).

    Raises
    ------
    UnsafeFileError
        As :func:`check_dataset`.
    FormatError
        When the key is missing or the data cannot be read (damaged file).
    """
    ds = dataset(root, key, file_size, path)
    try:
        return np.asarray(ds[()])
    except (OSError, ValueError, RuntimeError) as exc:
        raise FormatError(f"cannot read tensor {key!r}: {exc}", path) from None


def contiguous_extent(ds: h5py.Dataset, file_size: int) -> tuple[int, int] | None:
    """``(offset, nbytes)`` of a dataset's raw bytes in its HDF5 file, or None.

    Only for data that can be read as plain bytes and give exactly what h5py
    gives: contiguous layout (so no filters, no compression), allocated, no
    external storage, not virtual, a plain numeric dtype, and the whole extent
    inside the first ``file_size`` bytes. Call after :func:`check_dataset`.
    Anything else returns None (read it through h5py).
    """
    try:
        if ds.is_virtual or ds.external:
            return None
        dcpl = ds.id.get_create_plist()
        if dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters() != 0:
            return None
        dt = ds.dtype
        if dt.kind not in _RAW_KINDS or dt.fields is not None or dt.subdtype is not None:
            return None
        offset = ds.id.get_offset()
        nbytes = math.prod(ds.shape or ()) * dt.itemsize
        if offset is None or nbytes == 0 or offset < 0 or offset + nbytes > file_size:
            return None
        if ds.id.get_storage_size() != nbytes:
            return None
        return int(offset), int(nbytes)
    except Exception:  # noqa: BLE001 - any doubt: read through h5py
        return None

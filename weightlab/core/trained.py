"""The ``trained`` history step: new weights a training job produced, as one undoable edit.

A fine-tune (or a prune-and-retrain) computes new values for many tensors at
once; they cannot be recomputed from a few parameters the way ``clip`` or
``prune_magnitude`` can (training is deterministic only on CPU, with the same
TensorFlow build). So :class:`Trained` *holds* the arrays: ``apply`` returns
them, checked against the model, and undo, redo, switching the step off and on
and replays work as for any other edit. The step is identified by a hash of
its arrays (:func:`arrays_sha256`), which recipes and journals record.

The hash
--------
``sha256`` is the SHA-256 of this byte string, built from the arrays in the
order of their sorted names (Python's ``sorted`` of the canonical names)::

    b"weightlab-trained-v1\\n"
    then, for each array:
        json.dumps([name, dtype.str, list(shape)], separators=(",", ":")).encode("utf-8") + b"\\n"
        the array's bytes in C order (``numpy.ascontiguousarray(a).tobytes()``)

``dtype.str`` carries the byte order (``"<f4"``), so the digest names the
exact bits. Only arrays of booleans, integers and floats are accepted.

In a recipe
-----------
A ``trained`` step reads::

    {"op": "trained", "target": ["dense/kernel", "dense/bias"],
     "label": "fine-tune 5 epochs, lr 0.001, masks kept",
     "sha256": "9f86d0...", "arrays": "prune.9f86d081884c.npz", "spec": {...}}

``arrays`` is a plain file name in the recipe's folder (see
:mod:`weightlab.core.recipe`): a NumPy ``.npz`` archive written with
:func:`numpy.savez` (no pickle) holding one array per target, keyed by the
canonical name. ``spec`` (optional) is the job specification that produced the
weights, kept for provenance; it is never rerun.

Memory
------
The arrays live as long as the step (the history keeps every edit), so they
count toward the session's history budget like the arrays of a past state
(:attr:`weightlab.core.session.EditSession.history_nbytes`), once per buffer.
:meth:`Trained.apply` returns the held arrays themselves (read-only), so a
checkpoint or the current state holding them costs nothing more.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import weakref
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .atomic import atomic_path
from .edits import MAX_NAME_LENGTH, ArraySource, Edit
from .errors import DataError, RecipeError
from .model import ModelFile, _suggest

__all__ = [
    "Trained",
    "trained_from_dict",
    "arrays_sha256",
    "sidecar_name",
    "write_arrays",
    "read_arrays",
    "live_arrays",
    "MAX_SIDECAR_BYTES",
    "MAX_LABEL_LENGTH",
]

#: Most bytes a sidecar ``.npz`` may hold, as a file and once read (16 GiB).
MAX_SIDECAR_BYTES = 16 * 1024**3
#: Longest label accepted.
MAX_LABEL_LENGTH = 1000
#: Most arrays one trained step may hold.
MAX_TRAINED_TENSORS = 100_000
_HASH_PREFIX = b"weightlab-trained-v1\n"
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_KINDS = "biuf"

#: Trained steps alive in this process, by hash: a recipe dict made by
#: :meth:`EditSession.to_recipe` carries no arrays, and saving or applying it
#: in the same process finds them here.
_LIVE: weakref.WeakValueDictionary[str, Trained] = weakref.WeakValueDictionary()


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """The documented SHA-256 of a set of named arrays (see the module docstring).

    Parameters
    ----------
    arrays:
        ``{canonical name: array}``; arrays of bool, integer or float dtype,
        any shape.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    ValueError
        When an array's dtype is not bool, integer or float.
    """
    h = hashlib.sha256(_HASH_PREFIX)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.kind not in _KINDS:
            raise ValueError(f"array {name!r} has dtype {a.dtype}; trained weights are bool, integer or float")
        h.update(json.dumps([name, a.dtype.str, list(a.shape)], separators=(",", ":")).encode("utf-8") + b"\n")
        h.update(a.data.cast("B") if a.size else b"")
    return h.hexdigest()


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(a)
    out.flags.writeable = False
    return out


def _frozen_copy(a: np.ndarray) -> np.ndarray:
    out = np.array(a, copy=True, order="C")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, kw_only=True, eq=False)
class Trained(Edit):
    """Set tensors to values a training job computed (one history step).

    Build one with :meth:`from_arrays`; a recipe or a journal step parsed by
    :func:`trained_from_dict` has no arrays until :meth:`attach` gives them
    (its ``apply`` raises until then).

    Attributes
    ----------
    target:
        Canonical names of the tensors it sets (exact names, no globs).
    label:
        What the history list shows (``"fine-tune 5 epochs, lr 0.001, masks kept"``).
    sha256:
        :func:`arrays_sha256` of the arrays.
    spec:
        The job specification that produced the weights (a JSON object), or None.

    Two steps are equal when their targets, labels, hashes and specs are.
    """

    op: ClassVar[str] = "trained"
    target: tuple[str, ...]
    label: str
    sha256: str
    spec: dict[str, Any] | None = None

    def _validate(self) -> None:
        target = (self.target,) if isinstance(self.target, str) else self.target
        object.__setattr__(self, "target", target)
        if not target or not all(isinstance(n, str) and n for n in target):
            raise ValueError("target must be a non-empty list of canonical tensor names")
        if len(target) > MAX_TRAINED_TENSORS:
            raise ValueError(f"a trained step sets at most {MAX_TRAINED_TENSORS} tensors; got {len(target)}")
        if len(set(target)) != len(target):
            raise ValueError("target names a tensor twice")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError("label must be a non-empty string")
        if len(self.label) > MAX_LABEL_LENGTH:
            raise ValueError(f"label is {len(self.label)} characters; the limit is {MAX_LABEL_LENGTH}")
        if not isinstance(self.sha256, str) or not _SHA_RE.fullmatch(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if self.spec is not None:
            if not isinstance(self.spec, Mapping):
                raise ValueError(f"spec must be a JSON object or null; got {type(self.spec).__name__}")
            try:
                json.dumps(self.spec, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise ValueError(f"spec is not plain JSON ({e})") from None

    # -- equality: the hash stands for the arrays ----------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trained):
            return NotImplemented
        return (self.target, self.label, self.sha256, self.spec) == (other.target, other.label, other.sha256, other.spec)

    def __hash__(self) -> int:
        return hash((self.op, self.target, self.sha256))

    # -- arrays ---------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], label: str, spec: Mapping[str, Any] | None = None
    ) -> Trained:
        """A step setting each named tensor to its array.

        Parameters
        ----------
        arrays:
            ``{canonical name: new value}``; copied (C order, read-only), so
            later changes to the caller's arrays do not reach the history.
        label:
            The history list's line.
        spec:
            The job specification (JSON object), kept for provenance.

        Raises
        ------
        ValueError
            No arrays, a dtype other than bool/integer/float, an empty label,
            or a spec that is not plain JSON.
        """
        held = {name: _frozen_copy(np.asarray(a)) for name, a in arrays.items()}
        if not held:
            raise ValueError("a trained step needs at least one array")
        step = cls(target=tuple(sorted(held)), label=label, sha256=arrays_sha256(held), spec=_plain(spec))
        object.__setattr__(step, "_arrays", held)
        _LIVE[step.sha256] = step
        return step

    def attach(
        self, arrays: Mapping[str, np.ndarray], source: str = "trained step", *, copy: bool = True
    ) -> Trained:
        """This step with its arrays, after checking them against :attr:`sha256`.

        Parameters
        ----------
        arrays:
            ``{canonical name: array}``, exactly the target's names.
        source:
            How to name the arrays' origin in errors (the sidecar file).
        copy:
            False to keep the given arrays themselves (made read-only) when
            nobody else holds them (arrays just read from a file).

        Raises
        ------
        RecipeError
            Other names than the target's, or a hash that differs.
        """
        if set(arrays) != set(self.target):
            missing = sorted(set(self.target) - set(arrays))
            extra = sorted(set(arrays) - set(self.target))
            raise RecipeError(
                f"{source}: holds other arrays than the trained step sets"
                + (f"; missing {', '.join(missing[:5])}" if missing else "")
                + (f"; unexpected {', '.join(extra[:5])}" if extra else "")
            )
        held = {name: (_frozen_copy if copy else _frozen)(np.asarray(arrays[name])) for name in self.target}
        try:
            digest = arrays_sha256(held)
        except ValueError as e:
            raise RecipeError(f"{source}: {e}") from None
        if digest != self.sha256:
            raise RecipeError(
                f"{source}: its arrays' SHA-256 is {digest}; the step records {self.sha256} "
                "(the file was changed, or belongs to another step)"
            )
        out = Trained(target=self.target, label=self.label, sha256=self.sha256, spec=self.spec)
        object.__setattr__(out, "_arrays", held)
        _LIVE[out.sha256] = out
        return out

    def share_arrays(self, other: Trained) -> Trained:
        """This step holding ``other``'s arrays (same hash and targets; nothing copied or rehashed).

        Raises
        ------
        RecipeError
            When ``other`` holds no arrays, or another hash or other targets.
        """
        if not other.has_arrays or other.sha256 != self.sha256 or set(other.target) != set(self.target):
            raise RecipeError(f"trained step {self.label!r}: the arrays given are not this step's")
        out = Trained(target=self.target, label=self.label, sha256=self.sha256, spec=self.spec)
        object.__setattr__(out, "_arrays", other.held_arrays())
        return out

    @property
    def has_arrays(self) -> bool:
        """True when the step holds its arrays (it can be applied)."""
        return getattr(self, "_arrays", None) is not None

    def held_arrays(self) -> Mapping[str, np.ndarray]:
        """The arrays the step holds (read-only; empty when it has none yet).

        The session counts these toward its history budget.
        """
        return getattr(self, "_arrays", None) or {}

    @property
    def nbytes(self) -> int:
        """Bytes of the held arrays."""
        return sum(a.nbytes for a in self.held_arrays().values())

    # -- the Edit interface -----------------------------------------------------------
    def targets(self, model: ModelFile) -> list[str]:
        """The target names, each checked to be a tensor of ``model``.

        Raises
        ------
        RecipeError
            When a name is not a canonical tensor name of the model.
        """
        for name in self.target:
            if name not in model.tensors:
                raise RecipeError(f"trained: no tensor named {name!r}{_suggest(name, model.tensors)}")
        return list(self.target)

    def apply(self, model: ModelFile, source: ArraySource) -> dict[str, np.ndarray]:
        """The held arrays, after checking each one's shape and dtype against the model.

        Raises
        ------
        RecipeError
            When the step holds no arrays, a target is not a tensor of the
            model, or an array's shape or dtype differs from the tensor's
            (the message names the tensor).
        """
        arrays = self.held_arrays()
        if not arrays:
            raise RecipeError(
                f"trained step {self.label!r}: its weights (SHA-256 {self.sha256[:12]}...) are not loaded; "
                "a recipe with a trained step is read from its file, beside its .npz"
            )
        out = {}
        for name in self.targets(model):
            a, info = arrays[name], model.tensor(name)
            if a.shape != tuple(info.shape) or a.dtype != np.dtype(info.dtype):
                raise RecipeError(
                    f"trained: tensor {name!r} is {tuple(info.shape)} {info.dtype} in the model; "
                    f"the trained array is {a.shape} {a.dtype}"
                )
            out[name] = a
        return out

    def compute(self, name: str, current: np.ndarray, source: ArraySource) -> np.ndarray:
        return self.held_arrays()[name]

    def describe(self) -> str:
        return self.label


def trained_from_dict(d: Mapping[str, Any], where: str = "step") -> Trained:
    """A trained step, without its arrays, from its recipe or journal object.

    ``trained`` is not in :data:`~weightlab.core.edits.EDIT_TYPES`: it is
    no op a user picks, writes or sweeps (the catalogue, the edit menus and
    :func:`~weightlab.core.edits.edit_from_dict` leave it out); recipes
    (:mod:`weightlab.core.recipe`) and journals (:mod:`weightlab.core.journal`)
    read it with this function and then give it its arrays (:meth:`Trained.attach`).

    Parameters
    ----------
    d:
        ``{"op": "trained", "target": [...], "label": ..., "sha256": ..., "spec": {...}}``
        (a recipe's ``arrays`` key removed).
    where:
        How to name the step in errors (``"r.json, step 3"``).

    Raises
    ------
    RecipeError
        An unknown or missing key, or a value of the wrong type; the message
        names the step.
    """
    if not isinstance(d, Mapping) or d.get("op") != Trained.op:
        raise RecipeError(f"{where}: not a trained step")
    fields = ("target", "label", "sha256", "spec")
    unknown = set(d) - {"op", *fields}
    if unknown:
        raise RecipeError(
            f"{where} (trained): unknown parameter(s) {', '.join(sorted(map(str, unknown)))}; "
            f"expected {', '.join(sorted(fields))}"
        )
    missing = [k for k in ("target", "label", "sha256") if k not in d]
    if missing:
        raise RecipeError(f"{where} (trained): missing parameter(s) {', '.join(missing)}")
    target = d["target"]
    if isinstance(target, str):
        target = [target]
    if not isinstance(target, list) or not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME_LENGTH for n in target):
        raise RecipeError(f"{where} (trained): 'target' must be a list of tensor names")
    try:
        return Trained(target=tuple(target), label=d["label"], sha256=d["sha256"], spec=d.get("spec"))
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where} (trained): {e}") from None


def _plain(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON round trip of ``spec`` (tuples become lists), so it equals what a recipe reads back."""
    if spec is None:
        return None
    try:
        return json.loads(json.dumps(spec, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"spec is not plain JSON ({e})") from None


def live_arrays(sha256: str) -> Trained | None:
    """The trained step with this hash still alive in this process (holding its arrays), or None."""
    step = _LIVE.get(sha256)
    return step if step is not None and step.has_arrays else None


# -- sidecar files ----------------------------------------------------------------------


def sidecar_name(owner: str | os.PathLike[str], sha256: str) -> str:
    """The file name of a step's arrays beside ``owner``: ``<owner stem>.<sha256[:12]>.npz``."""
    return f"{Path(owner).stem}.{sha256[:12]}.npz"


def write_arrays(path: str | os.PathLike[str], step: Trained) -> None:
    """Write ``step``'s arrays to ``path`` as :func:`numpy.savez` does (no pickle), atomically.

    Raises
    ------
    RecipeError
        When the step holds no arrays.
    OSError
        When the file cannot be written.
    """
    arrays = step.held_arrays()
    if not arrays:
        raise RecipeError(f"trained step {step.label!r}: its weights are not in memory; nothing to write")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):  # as numpy.savez writes them (one ``<key>.npy`` member each)
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)


def is_plain_name(name: Any) -> bool:
    """True for a plain ``.npz`` file name: no folder part, not hidden, printable, at most 255 bytes."""
    return (
        isinstance(name, str)
        and name.endswith(".npz")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
        and len(name.encode("utf-8", "surrogatepass")) <= 255
    )


def read_arrays(
    folder: str | os.PathLike[str], name: str, *, max_bytes: int = MAX_SIDECAR_BYTES, owner: str = "recipe"
) -> dict[str, np.ndarray]:
    """Read a sidecar ``.npz`` from ``folder`` as untrusted input.

    The name must be a plain file name; the file must be a regular file inside
    ``folder`` (a link is followed only when it stays inside); its size and the
    arrays' declared sizes together are bounded by ``max_bytes`` before any data
    is read; nothing is unpickled; only bool, integer and float arrays load.

    Parameters
    ----------
    folder:
        The recipe's (or journal's) folder.
    name:
        The sidecar's file name, as the step records it.
    max_bytes:
        Most bytes of the file and of its arrays once read.
    owner:
        How to name the recipe in errors.

    Returns
    -------
    dict
        ``{key: array}`` for every array in the archive.

    Raises
    ------
    RecipeError
        Naming ``owner`` and the sidecar: not a plain name, missing, a link
        leading outside the folder, not a regular file, too large, not an
        ``.npz`` archive, damaged, or holding other than real-number arrays.
    """
    from .dataset import _ZIP_ERRORS, _read_data, _read_header
    from .links import is_inside

    def fail(why: str) -> RecipeError:
        return RecipeError(f"{owner}: trained weights {path}: {why}")

    path = Path(folder) / str(name)
    if not is_plain_name(name):
        raise RecipeError(f"{owner}: the trained step's arrays must be a plain .npz file name beside it; got {name!r}")
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        raise fail("missing (saving a recipe writes it beside the recipe)") from None
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})") from None
    if stat.S_ISLNK(lst.st_mode) and not is_inside(path, folder):
        raise fail(f"a link leading outside the recipe's folder (to {os.path.realpath(path)}); refused")
    try:
        st = os.stat(path)
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise fail("not a regular file")
    if st.st_size > max_bytes:
        raise fail(f"the file is {st.st_size} bytes; the limit is {max_bytes}")
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as f:
            if not zipfile.is_zipfile(f):
                raise fail("not an .npz archive")
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                members = [i for i in zf.infolist() if not i.is_dir()]
                if len(members) > MAX_TRAINED_TENSORS:
                    raise fail(f"holds {len(members)} members; the limit is {MAX_TRAINED_TENSORS}")
                headers = {}
                total = 0
                for info in members:
                    if not info.filename.endswith(".npy"):
                        raise fail(f"member {info.filename!r} is not a .npy array")
                    key = info.filename[: -len(".npy")]
                    if key in headers:
                        raise fail(f"holds array {key!r} twice")
                    header = _read_header(zf, key, info, path)
                    if header.dtype.kind not in _KINDS:
                        raise fail(f"array {key!r} has dtype {header.dtype}; only bool, integer and float are read")
                    total += header.nbytes
                    if total > max_bytes:
                        raise fail(f"its arrays hold more than {max_bytes} bytes once read; the limit is {max_bytes}")
                    headers[key] = header
                for key, header in headers.items():
                    out[key] = _read_data(zf, key, header, path)
    except DataError as e:
        raise fail(e.message) from None
    except _ZIP_ERRORS as e:
        raise fail(f"damaged archive ({e})") from None
    return out

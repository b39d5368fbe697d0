"""Recipes: a session's history as JSON, replayable on the original file.

Format (documented in ``docs/recipes.md``)::

    {"version": 1,
     "edits": [{"op": "clip", "target": "conv2d/kernel", "min": -0.1, "max": 0.1},
               {"op": "zero_neurons", "target": "dense", "neurons": [0, 3]}]}

Limits
------
A recipe is untrusted input like a model file, so reading one does bounded
work and every problem is a :class:`~weightlab.core.errors.RecipeError` naming
the file. The limits are module constants (keyword arguments of
:func:`load_recipe` and :func:`parse_recipe` override them):

:data:`MAX_RECIPE_BYTES` (16 MiB)
    Size of a recipe file; checked before reading (the file is read with a
    bounded read, so a FIFO or ``/dev/zero`` cannot make it read forever).
    A 100,000-step recipe of ``scale`` edits is about 6 MB.
:data:`MAX_RECIPE_STEPS` (100,000)
    Number of edits.
:data:`MAX_RECIPE_DEPTH` (32)
    Nesting of JSON arrays and objects; a valid recipe needs 4 (recipe object,
    ``edits`` list, step object, a ``target`` or ``neurons`` list). Checked
    before parsing, so a recipe nested 100,000 deep is refused in linear time
    instead of exhausting Python's recursion limit.
:data:`MAX_INTEGER_DIGITS` (100)
    Digits of one integer literal. No parameter takes a longer one (seeds and
    indices are below ``2**63``), and Python refuses to convert integers of more
    than 4,300 digits at all.
:data:`~weightlab.core.trained.MAX_SIDECAR_BYTES` (16 GiB)
    Size of one trained step's sidecar ``.npz``, as a file and once read
    (``max_sidecar_bytes``).

Trained steps
-------------
A ``trained`` step (:class:`~weightlab.core.trained.Trained`: weights a
fine-tune produced) holds arrays that do not fit in JSON. :func:`save_recipe`
writes them beside the recipe, atomically, as ``<recipe stem>.<sha256[:12]>.npz``
(a NumPy ``.npz``, no pickle) and the step names that plain file name in its
``arrays`` key. :func:`load_recipe` reads the file as untrusted input (a plain
name in the recipe's folder, a link only when it stays inside it, bounded
size, nothing unpickled), checks the arrays' SHA-256 against the step's
``sha256``, and refuses the recipe with a :class:`RecipeError` naming the
recipe and the sidecar when the file is missing, unreadable or different; a
recipe so read replays bit for bit. :func:`parse_recipe` has no folder: it
finds a trained step's arrays only among the trained steps alive in this
process (a dict from :meth:`EditSession.to_recipe
<weightlab.core.session.EditSession.to_recipe>`), else raises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_path, remove_tree
from .edits import Edit, edit_from_dict
from .errors import RecipeError
from .safejson import JSONLimitError, loads
from .trained import (
    MAX_SIDECAR_BYTES,
    Trained,
    live_arrays,
    read_arrays,
    sidecar_name,
    trained_from_dict,
    write_arrays,
)

RECIPE_VERSION = 1
#: Recipes larger than this are refused before parsing (bytes).
MAX_RECIPE_BYTES = 16 * 1024 * 1024
#: Recipes with more edits than this are refused.
MAX_RECIPE_STEPS = 100_000
#: Deepest nesting of JSON arrays/objects accepted (a valid recipe needs 4).
MAX_RECIPE_DEPTH = 32
#: Longest integer literal accepted, in digits.
MAX_INTEGER_DIGITS = 100


def parse_recipe(
    data: Any,
    source: str = "recipe",
    *,
    max_steps: int = MAX_RECIPE_STEPS,
    folder: str | os.PathLike[str] | None = None,
    max_sidecar_bytes: int = MAX_SIDECAR_BYTES,
) -> list[Edit]:
    """Validate a recipe object and return its edits.

    Parameters
    ----------
    data:
        The parsed JSON (``{"version": 1, "edits": [...]}``).
    source:
        How to name the recipe in errors (its file name).
    max_steps:
        Most edits accepted.
    folder:
        The recipe's folder, where trained steps' ``.npz`` files are read
        (:func:`load_recipe` passes it). Without one, a trained step's
        arrays must be alive in this process (see the module docstring).
    max_sidecar_bytes:
        Most bytes of one trained step's ``.npz``.

    Raises
    ------
    RecipeError
        Not an object, wrong or missing ``version``, ``edits`` not a list or
        longer than ``max_steps``, a malformed step (the message names the
        step, counting from 1), or a trained step whose arrays cannot be
        found, read or verified (the message names the recipe and the file).
    """
    if not isinstance(data, Mapping):
        raise RecipeError(f"{source}: a recipe is a JSON object; got {type(data).__name__}")
    version = data.get("version")
    if version != RECIPE_VERSION:
        raise RecipeError(f"{source}: unsupported recipe version {version!r}; expected {RECIPE_VERSION}")
    unknown = set(data) - {"version", "edits", "source", "comment"}
    if unknown:
        raise RecipeError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    steps = data.get("edits")
    if not isinstance(steps, list):
        raise RecipeError(f"{source}: 'edits' must be a list; got {type(steps).__name__}")
    if len(steps) > max_steps:
        raise RecipeError(f"{source}: the recipe has {len(steps)} edits; the limit is {max_steps}")
    read: dict[str, dict[str, Any]] = {}  # sidecars already read, by name (steps may share one)
    return [
        _trained_step(d, f"{source}, step {i}", source, folder, max_sidecar_bytes, read)
        if isinstance(d, Mapping) and d.get("op") == Trained.op
        else edit_from_dict(d, f"{source}, step {i}")
        for i, d in enumerate(steps, 1)
    ]


def _trained_step(
    d: Mapping[str, Any],
    where: str,
    source: str,
    folder: str | os.PathLike[str] | None,
    max_bytes: int,
    read: dict[str, dict[str, Any]],
) -> Trained:
    """A trained step with its arrays: from its ``.npz`` beside the recipe, else from this process."""
    step = dict(d)
    name = step.pop("arrays", None)
    edit = trained_from_dict(step, where)
    if name is not None and not isinstance(name, str):
        raise RecipeError(f"{where} (trained): 'arrays' must be a file name; got {type(name).__name__}")
    if folder is not None and name is not None:
        if name not in read:
            read[name] = read_arrays(folder, name, max_bytes=max_bytes, owner=source)
        return edit.attach(read[name], source=f"{source}: trained weights {Path(folder) / name}", copy=False)
    live = live_arrays(edit.sha256)
    if live is not None:
        return edit.share_arrays(live)
    if name is not None:
        raise RecipeError(
            f"{where} (trained): its weights are in {name!r} beside the recipe file; "
            "read the recipe from its file (load_recipe) so that file can be found"
        )
    raise RecipeError(
        f"{where} (trained): the step names no 'arrays' file and its weights "
        f"(SHA-256 {edit.sha256[:12]}...) are not in memory"
    )


def load_recipe(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_RECIPE_BYTES,
    max_steps: int = MAX_RECIPE_STEPS,
    max_depth: int = MAX_RECIPE_DEPTH,
    max_integer_digits: int = MAX_INTEGER_DIGITS,
    max_sidecar_bytes: int = MAX_SIDECAR_BYTES,
) -> list[Edit]:
    """Read and validate a recipe JSON file (UTF-8, a byte order mark is allowed).

    Trained steps get their arrays from their ``.npz`` files beside the
    recipe, checked by hash (see the module docstring).

    Parameters
    ----------
    path:
        The recipe file.
    max_bytes, max_steps, max_depth, max_integer_digits, max_sidecar_bytes:
        Limits (see the module docstring); the defaults are the module constants.

    Raises
    ------
    RecipeError
        The file is missing, not a regular file, unreadable, larger than
        ``max_bytes``, not JSON, nested deeper than ``max_depth``, holds an
        integer longer than ``max_integer_digits`` digits or more than
        ``max_steps`` edits, or is not a valid recipe, or a trained step's
        ``.npz`` is missing, unsafe, too large, unreadable or not the one the
        step's hash names; the message names the file (and the ``.npz``).
    """
    p = Path(path)
    try:
        if not p.is_file():
            if not p.exists():
                raise RecipeError("no such recipe file", p)
            raise RecipeError("not a regular file (a recipe is a JSON file)", p)
        size = p.stat().st_size
        if size > max_bytes:
            raise RecipeError(f"recipe is {size} bytes; the limit is {max_bytes}", p)
        with p.open("rb") as f:
            raw = f.read(max_bytes + 1)  # bounded even if the file grows meanwhile
        if len(raw) > max_bytes:
            raise RecipeError(f"recipe is more than {max_bytes} bytes; the limit is {max_bytes}", p)
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"cannot read recipe: {e}", p) from None
    try:
        data = loads(text, max_depth=max_depth, max_digits=max_integer_digits)
    except JSONLimitError as e:
        if e.kind == "depth":
            raise RecipeError(
                f"JSON nested {e.found} levels deep; the limit is {max_depth} (a recipe needs 4)", p
            ) from None
        raise RecipeError(f"an integer has {e.found} digits; the limit is {max_integer_digits}", p) from None
    except json.JSONDecodeError as e:
        raise RecipeError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", p) from None
    try:
        return parse_recipe(
            data, source=str(p), max_steps=max_steps, folder=p.parent, max_sidecar_bytes=max_sidecar_bytes
        )
    except RecipeError as e:
        raise RecipeError(e.message) from None


def recipe_dict(edits: Iterable[Edit], source: str | None = None) -> dict[str, Any]:
    """Build a recipe object from edits (``source`` records the original file name)."""
    d: dict[str, Any] = {"version": RECIPE_VERSION}
    if source:
        d["source"] = source
    d["edits"] = [e.to_dict() for e in edits]
    return d


def save_recipe(recipe: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``recipe`` as indented JSON, atomically, with its trained steps' arrays beside it.

    Each ``trained`` step's arrays (found among the trained steps alive in
    this process, by hash) are written first, atomically, to
    ``<recipe stem>.<sha256[:12]>.npz`` in the recipe's folder, and the step
    written names that file in its ``arrays`` key; ``recipe`` itself is not
    changed. When anything fails, the ``.npz`` files this call created are
    removed again and no recipe is written.

    Raises
    ------
    RecipeError
        When a trained step's arrays are not in memory (nothing is written).
    OSError
        When a file cannot be written.
    """
    out = Path(path)
    steps = recipe.get("edits")
    created: list[Path] = []
    try:
        if isinstance(steps, list) and any(isinstance(d, Mapping) and d.get("op") == Trained.op for d in steps):
            recipe = dict(recipe)
            recipe["edits"] = [_with_sidecar(d, out, created) for d in steps]
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        for p in created:
            remove_tree(p)
        raise


def _with_sidecar(d: Any, recipe_path: Path, created: list[Path]) -> Any:
    """Step ``d`` naming its arrays' file, written beside the recipe (trained steps); other steps as they are."""
    if not (isinstance(d, Mapping) and d.get("op") == Trained.op):
        return d
    sha = d.get("sha256")
    live = live_arrays(sha) if isinstance(sha, str) else None
    if live is None:
        raise RecipeError(
            f"trained step {d.get('label')!r}: its weights (SHA-256 {str(sha)[:12]}...) are not in memory; "
            "nothing was written",
            recipe_path,
        )
    name = sidecar_name(recipe_path, live.sha256)
    target = recipe_path.parent / name
    if target not in created:  # two steps of the same weights share one file
        existed = os.path.lexists(target)
        write_arrays(target, live)
        if not existed:
            created.append(target)
    return {**d, "arrays": name}

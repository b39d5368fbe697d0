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
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .edits import Edit, edit_from_dict
from .errors import RecipeError
from .safejson import JSONLimitError, loads

RECIPE_VERSION = 1
#: Recipes larger than this are refused before parsing (bytes).
MAX_RECIPE_BYTES = 16 * 1024 * 1024
#: Recipes with more edits than this are refused.
MAX_RECIPE_STEPS = 100_000
#: Deepest nesting of JSON arrays/objects accepted (a valid recipe needs 4).
MAX_RECIPE_DEPTH = 32
#: Longest integer literal accepted, in digits.
MAX_INTEGER_DIGITS = 100


def parse_recipe(data: Any, source: str = "recipe", *, max_steps: int = MAX_RECIPE_STEPS) -> list[Edit]:
    """Validate a recipe object and return its edits.

    Parameters
    ----------
    data:
        The parsed JSON (``{"version": 1, "edits": [...]}``).
    source:
        How to name the recipe in errors (its file name).
    max_steps:
        Most edits accepted.

    Raises
    ------
    RecipeError
        Not an object, wrong or missing ``version``, ``edits`` not a list or
        longer than ``max_steps``, or a malformed step (the message names the
        step, counting from 1).
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
    return [edit_from_dict(d, f"{source}, step {i}") for i, d in enumerate(steps, 1)]


def load_recipe(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_RECIPE_BYTES,
    max_steps: int = MAX_RECIPE_STEPS,
    max_depth: int = MAX_RECIPE_DEPTH,
    max_integer_digits: int = MAX_INTEGER_DIGITS,
) -> list[Edit]:
    """Read and validate a recipe JSON file (UTF-8, a byte order mark is allowed).

    Parameters
    ----------
    path:
        The recipe file.
    max_bytes, max_steps, max_depth, max_integer_digits:
        Limits (see the module docstring); the defaults are the module constants.

    Raises
    ------
    RecipeError
        The file is missing, not a regular file, unreadable, larger than
        ``max_bytes``, not JSON, nested deeper than ``max_depth``, holds an
        integer longer than ``max_integer_digits`` digits or more than
        ``max_steps`` edits, or is not a valid recipe; the message names the
        file.
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
        return parse_recipe(data, source=str(p), max_steps=max_steps)
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
    """Write ``recipe`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")

"""Recipes: a session's history as JSON, replayable on the original file.

Format (documented in ``docs/recipes.md``)::

    {"version": 1,
     "edits": [{"op": "clip", "target": "conv2d/kernel", "min": -0.1, "max": 0.1},
               {"op": "zero_neurons", "target": "dense", "neurons": [0, 3]}]}
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

RECIPE_VERSION = 1
#: Recipes larger than this are refused before parsing (bytes).
MAX_RECIPE_BYTES = 64 * 1024 * 1024


def parse_recipe(data: Any, source: str = "recipe") -> list[Edit]:
    """Validate a recipe object and return its edits.

    Raises
    ------
    RecipeError
        Not an object, wrong or missing ``version``, ``edits`` not a list, or a
        malformed step (the message names the step, counting from 1).
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
    return [edit_from_dict(d, f"{source}, step {i}") for i, d in enumerate(steps, 1)]


def load_recipe(path: str | os.PathLike[str]) -> list[Edit]:
    """Read and validate a recipe JSON file.

    Raises
    ------
    RecipeError
        The file is missing, unreadable, too large, not JSON, or not a valid
        recipe; the message names the file.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise RecipeError(f"recipe is {size} bytes; the limit is {MAX_RECIPE_BYTES}", p)
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("no such recipe file", p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"cannot read recipe: {e}", p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecipeError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", p) from None
    try:
        return parse_recipe(data, source=str(p))
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

"""JSON from untrusted files, within limits: nesting depth and integer length.

Python's parser recurses once per nesting level (``RecursionError`` deep
inside a 100,000-level file) and turns every integer literal into an ``int``
(``ValueError`` past ``sys.get_int_max_str_digits()``, after quadratic work
below it). :func:`loads` measures the depth in linear time *before* parsing
and refuses long integers while parsing, raising :class:`JSONLimitError`; the
callers (recipes, model configs) turn that into their own error naming their
file.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

__all__ = ["JSONLimitError", "json_depth", "loads"]

# A JSON string literal (unrolled loop: no backtracking on long strings).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class JSONLimitError(Exception):
    """A JSON text exceeds a limit of :func:`loads`.

    Attributes
    ----------
    kind:
        ``"depth"`` or ``"digits"``.
    found:
        The depth of the text, or the number of digits of the integer.
    limit:
        The limit it exceeds.
    """

    def __init__(self, kind: str, found: int, limit: int):
        self.kind, self.found, self.limit = kind, found, limit
        super().__init__(f"JSON {kind} {found} exceeds the limit {limit}")


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text``, in linear time.

    Brackets inside string literals do not count. For text that is not valid
    JSON the result is only an estimate (the parser reports the real error).
    """
    b = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "surrogatepass"), np.uint8)
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int32) - ((b == ord("]")) | (b == ord("}")))
    return int(np.cumsum(step).max()) if step.size else 0


def loads(text: str, *, max_depth: int, max_digits: int) -> Any:
    """Parse JSON ``text`` nested at most ``max_depth`` levels, with integers of at most ``max_digits`` digits.

    Raises
    ------
    JSONLimitError
        Nested deeper (checked before parsing) or holding a longer integer
        (the sign does not count as a digit).
    json.JSONDecodeError
        Not valid JSON.
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise JSONLimitError("depth", depth, max_depth)

    def parse_int(literal: str) -> int:
        digits = len(literal) - (literal[0] == "-")
        if digits > max_digits:
            raise JSONLimitError("digits", digits, max_digits)
        return int(literal)

    return json.loads(text, parse_int=parse_int)

"""Compact number formatting shared by the panels."""

from __future__ import annotations

import math


def fmt_num(x: float, digits: int = 4) -> str:
    """A float in at most ``digits`` significant digits (``"-0.1234"``, ``"3.2e-05"``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def fmt_count(n: int) -> str:
    """An integer with thin thousands separators (``"12 345"``)."""
    return f"{n:,}".replace(",", "\u2009")


def fmt_pct(fraction: float, digits: int = 1) -> str:
    """A fraction as a percentage (``0.917 -> "91.7 %"``)."""
    if fraction is None or math.isnan(fraction):
        return "–"
    return f"{100 * fraction:.{digits}f} %"


def fmt_delta_pp(delta: float) -> str:
    """A change of a fraction in percentage points, with a real minus (``"−4.2 pp"``)."""
    sign = "+" if delta > 0 else ("\u2212" if delta < 0 else "±")
    return f"{sign}{abs(100 * delta):.1f} pp"


def fmt_shape(shape: tuple[int, ...]) -> str:
    """``(3, 3, 1, 8)`` as ``"3×3×1×8"`` (``"scalar"`` for ``()``)."""
    return "×".join(str(s) for s in shape) if shape else "scalar"

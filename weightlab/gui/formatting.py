"""Compact number formatting shared by the panels."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator


def fmt_num(x: float, digits: int = 4) -> str:
    """A float in at most ``digits`` significant digits (``"-0.1234"``, ``"3.2e-05"``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


#: Between a number and its unit (``"91.7 %"``): a no-break space, so a wrapped label never leaves the unit alone.
NBSP = "\u00a0"
#: The thousands separator: a narrow no-break space (a thin space U+2009 lets ``"38 346"`` wrap in the middle).
THOUSANDS_SEP = "\u202f"


def fmt_count(n: int) -> str:
    """An integer with narrow no-break thousands separators (``"12 345"``, U+202F: never wrapped)."""
    return f"{n:,}".replace(",", THOUSANDS_SEP)


def for_rich_text(text: str) -> str:
    """``text`` for a rich-text (HTML) label: U+202F becomes U+00A0.

    Qt's HTML parser turns the narrow no-break space into an ordinary,
    breakable space (a rich-text label wrapped ``"38 346"`` in the middle);
    the no-break space survives it.
    """
    return text.replace(THOUSANDS_SEP, NBSP)


def fmt_pct(fraction: float, digits: int = 1) -> str:
    """A fraction as a percentage (``0.917 -> "91.7 %"``, a no-break space before ``%``)."""
    if fraction is None or math.isnan(fraction):
        return "–"
    return f"{100 * fraction:.{digits}f}{NBSP}%"


def fmt_delta_pp(delta: float) -> str:
    """A change of a fraction in percentage points, with a real minus (``"−4.2 pp"``)."""
    sign = "+" if delta > 0 else ("\u2212" if delta < 0 else "±")
    return f"{sign}{abs(100 * delta):.1f} pp"


def fmt_shape(shape: tuple[int, ...]) -> str:
    """``(3, 3, 1, 8)`` as ``"3×3×1×8"`` (``"scalar"`` for ``()``)."""
    return "×".join(str(s) for s in shape) if shape else "scalar"


def _nice_steps() -> Iterator[int]:
    """Steps between labelled ticks, smallest first: 1, 2, 5, 10, 20, 50, ..."""
    scale = 1
    while True:
        for k in (1, 2, 5):
            yield k * scale
        scale *= 10


def thinned_ticks(
    count: int, unit_px: float, text_width: Callable[[str], float], gap_px: float = 8.0
) -> list[tuple[int, str]]:
    """Tick labels ``0 .. count-1`` for an axis, thinned so that no two labels overlap.

    Every ``step``-th position is labelled, ``step`` the smallest of 1, 2, 5,
    10, 20, 50... for which the widest label plus ``gap_px`` fits in
    ``step * unit_px`` pixels.

    Parameters
    ----------
    count:
        Number of positions (0 gives no ticks).
    unit_px:
        Pixels between two neighbouring positions on screen; 0 or less when
        unknown (the plot has no size yet): then at most 10 labels are kept.
    text_width:
        Width in pixels of a label's text (e.g. ``QFontMetrics.horizontalAdvance``).
    gap_px:
        Smallest free space between two labels.

    Returns
    -------
    list of (int, str)
        ``(position, label)`` pairs, position 0 always among them.
    """
    if count <= 0:
        return []
    widest = max(text_width(str(count - 1)), text_width("0")) + gap_px
    steps = _nice_steps()
    step = next(steps)
    if unit_px > 0:
        while step * unit_px < widest:
            step = next(steps)
    else:
        while count / step > 10:
            step = next(steps)
    return [(i, str(i)) for i in range(0, count, step)]

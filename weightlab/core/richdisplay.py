"""Rich display in Jupyter: small, self-contained HTML and inline SVG for WeightLab's objects.

Pure Python and NumPy (no matplotlib, no Qt): the ``_repr_html_`` and
``_repr_svg_`` methods of sessions, metrics, diffs and job results call the
functions here. :mod:`weightlab.plotting` draws the same plots with
matplotlib.

How the output reads
--------------------
Every string that comes from a model or a user (layer names, labels, notes)
is escaped with :func:`html.escape`. Styles are inline (``style=``
attributes: no ``<style>`` block, which some notebook viewers strip), with
transparent backgrounds, text in the theme's colour (``inherit``), grey
rules with transparency and mid-tone colours for the series, so the output
reads in light and dark Jupyter themes alike. Inline SVG draws its axes and
text in ``currentColor``; the standalone ``_repr_svg_`` documents (shown as
images, where ``currentColor`` is black) use :data:`STANDALONE_INK`, a mid
grey.

Numbers are formatted as the window formats them: accuracies as
percentages (``98.33 %``), changes of accuracy in percentage points with a
real minus (``−0.42 pp``), losses to four significant digits.

Bounded work on big tensors
---------------------------
:func:`session_html` shows at most ``max_rows`` tensors. For each shown
tensor it needs the current values: an edited or already loaded tensor is
used where the session holds it (no copy); a tensor the session has not
read yet is read once through :meth:`EditSession.peek` (not cached) while
the entries read that way stay within ``read_budget`` (later ones show
"not read" and a note says how to read them all). Per tensor:

* the zero fraction (sparsity) is exact: one counting pass over the values
  (:func:`weightlab.core.stats.count_nonzero`, no copy);
* the histogram sparkline is :func:`numpy.histogram` of at most
  :data:`SPARK_SAMPLE` entries: all entries of a tensor that small, else
  every ``k``-th entry of the flattened tensor with
  ``k = ceil(size / SPARK_SAMPLE)`` (:func:`sample_values`; a strided view,
  so only the sampled entries are copied). The sparkline's tooltip says so.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .stats import count_nonzero

__all__ = [
    "SPARK_BINS",
    "SPARK_SAMPLE",
    "STANDALONE_INK",
    "diff_html",
    "finetune_html",
    "finetune_svg",
    "metrics_html",
    "plan_html",
    "plan_svg",
    "prune_retrain_html",
    "prune_retrain_svg",
    "rank_html",
    "rank_svg",
    "sample_values",
    "session_html",
    "sparkline_svg",
    "sweep_html",
    "sweep_svg",
]

#: Bins of a session's per-tensor histogram sparkline.
SPARK_BINS = 32
#: At most this many entries of a tensor are histogrammed for its sparkline.
SPARK_SAMPLE = 1 << 16
#: Entries :func:`session_html` reads at most from the file (tensors the session has not read yet).
DEFAULT_READ_BUDGET = 1 << 26
#: Axis and text colour of standalone SVG documents (``_repr_svg_``): a grey that reads on white and on black.
STANDALONE_INK = "#888888"

#: Series colours: mid tones that read on light and dark backgrounds.
PALETTE = ("#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#ec4899", "#14b8a6", "#84cc16",
           "#f97316", "#6366f1")
_GOOD, _BAD = "#22a35a", "#e0483e"
_CHANGED = "#d48a00"  # an edited tensor: marked, not judged
_RULE = "rgba(128,128,128,0.35)"
_MINUS = "\u2212"

# -- formatting ------------------------------------------------------------------------------------


def _e(x: Any) -> str:
    """``str(x)`` escaped for HTML text and attribute values."""
    return html.escape(str(x), quote=True)


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_pct(fraction: float | None, digits: int = 2) -> str:
    """A fraction as a percentage (``0.9833 -> "98.33 %"``); ``"–"`` when unknown."""
    if _missing(fraction):
        return "–"
    return f"{100 * float(fraction):.{digits}f} %".replace("-", _MINUS)  # type: ignore[arg-type]


def fmt_pp(delta_pp: float | None, digits: int = 2) -> str:
    """A change already in percentage points, signed with a real minus (``"−0.42 pp"``, ``"±0.00 pp"``)."""
    if _missing(delta_pp):
        return "–"
    d = float(delta_pp)  # type: ignore[arg-type]
    text = f"{abs(d):.{digits}f}"
    sign = "±" if float(text) == 0 else ("+" if d > 0 else _MINUS)
    return f"{sign}{text} pp"


def fmt_num(x: float | None, digits: int = 4) -> str:
    """A number in ``digits`` significant digits (``"0.1234"``); ``"–"`` when unknown."""
    if _missing(x):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else _MINUS + "∞"
    return f"{x:.{digits}g}".replace("-", _MINUS)


def _fmt_fraction(f: float) -> str:
    """A fraction in % with one decimal; never rounded to 0.0 % or 100.0 % when it is not exactly that."""
    if 0 < f < 0.0005:
        return "<0.1 %"
    if 0.9995 <= f < 1:
        return ">99.9 %"
    return fmt_pct(f, 1)


def fmt_delta(x: float | None, digits: int = 3) -> str:
    """A signed change in ``digits`` significant digits (``"+0.0123"``)."""
    if _missing(x):
        return "–"
    if x == 0:
        return "±0"
    return f"{x:+.{digits}g}".replace("-", _MINUS)


def fmt_count(n: int) -> str:
    """An integer with thin-space thousands separators (``"12 345"``)."""
    return f"{int(n):,}".replace(",", "\u2009")


def fmt_shape(shape: Sequence[int]) -> str:
    """``(3, 3, 1, 8)`` as ``"3×3×1×8"`` (``"scalar"`` for ``()``)."""
    return "×".join(str(int(s)) for s in shape) if len(shape) else "scalar"


# -- HTML building blocks --------------------------------------------------------------------------

_BOX = "font-family:inherit;font-size:13px;color:inherit;background:transparent;line-height:1.4;max-width:100%"
_TABLE = "border-collapse:collapse;margin:4px 0;color:inherit;background:transparent;font-size:12px"
_TH = f"text-align:left;padding:2px 10px 2px 0;border-bottom:1px solid {_RULE};font-weight:600;background:transparent"
_TD = "text-align:left;padding:2px 10px 2px 0;vertical-align:middle;background:transparent"
_NUM = "text-align:right;padding:2px 10px 2px 0;vertical-align:middle;font-variant-numeric:tabular-nums;" \
       "background:transparent;white-space:nowrap"
_MUTED = "opacity:0.7"


def _box(title: str, *parts: str) -> str:
    """The outer ``<div>`` with a bold title line (``title`` already escaped)."""
    return f'<div class="weightlab-rich" style="{_BOX}"><div style="font-weight:600;margin-bottom:2px">{title}</div>' \
        + "".join(parts) + "</div>"


def _line(text: str, muted: bool = False) -> str:
    style = f' style="{_MUTED}"' if muted else ""
    return f"<div{style}>{text}</div>"


def _table(header: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]], numeric: Sequence[bool]) -> str:
    """A table: ``header`` of ``(escaped text, numeric)``; ``rows`` of escaped cell HTML."""
    head = "".join(f'<th style="{_TH}{";text-align:right" if num else ""}">{t}</th>' for t, num in header)
    body = []
    for r in rows:
        cells = "".join(f'<td style="{_NUM if numeric[i] else _TD}">{c}</td>' for i, c in enumerate(r))
        body.append(f'<tr style="background:transparent">{cells}</tr>')
    return f'<table style="{_TABLE}"><thead><tr style="background:transparent">{head}</tr></thead>' \
           f'<tbody>{"".join(body)}</tbody></table>'


def _coloured(text: str, good: bool | None) -> str:
    """``text`` (escaped) in green when ``good``, red when not good, plain when None."""
    if good is None:
        return text
    return f'<span style="color:{_GOOD if good else _BAD}">{text}</span>'


def _pp_cell(delta_pp: float | None, *, higher_is_better: bool = True) -> str:
    """A change in pp, coloured (a loss of accuracy red)."""
    if _missing(delta_pp) or round(float(delta_pp), 2) == 0:  # type: ignore[arg-type]
        return _e(fmt_pp(delta_pp))
    return _coloured(_e(fmt_pp(delta_pp)), (delta_pp > 0) == higher_is_better)  # type: ignore[operator]


# -- sessions --------------------------------------------------------------------------------------


def sample_values(a: np.ndarray, max_entries: int = SPARK_SAMPLE) -> np.ndarray:
    """At most ``max_entries`` entries of ``a``, evenly spaced in its flattened (C) order.

    All entries (a flat view, no copy) when ``a.size <= max_entries``; else every
    ``k``-th entry with ``k = ceil(a.size / max_entries)``, starting at the first:
    only those entries are copied.

    Parameters
    ----------
    a:
        Any shape and dtype.
    max_entries:
        Upper bound on the entries returned (>= 1).

    Returns
    -------
    numpy.ndarray
        1-D, ``a``'s dtype, ``min(a.size, max_entries)`` entries at most.
    """
    a = np.asarray(a)
    if a.size <= max_entries:
        return a.reshape(-1)
    step = -(-a.size // max_entries)
    if a.flags.c_contiguous:
        return a.reshape(-1)[::step]
    return np.asarray(a.flat[::step])  # copies only the sampled entries


def _spark_counts(a: np.ndarray, bins: int = SPARK_BINS) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """``(counts, edges, sampled, size)`` of the sparkline of ``a``; None without finite values."""
    s = sample_values(a)
    if s.dtype.kind not in "biuf":
        return None
    if s.dtype.kind == "f":
        s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    counts, edges = np.histogram(s, bins=bins)
    return counts, edges, int(s.size), int(np.size(a))


def sparkline_svg(a: np.ndarray, *, width: int = 120, height: int = 22, bins: int = SPARK_BINS) -> str:
    """An inline SVG histogram sparkline of ``a``'s values.

    The bars are ``np.histogram(sample_values(a), bins)`` of the finite values
    (every value for tensors of at most :data:`SPARK_SAMPLE` entries); the counts
    and the range are in the ``data-counts`` and ``data-range`` attributes, and
    the tooltip (``<title>``) says the range and the sampling. Bar heights are
    ``count / max(counts)`` of the height; a non-empty bin is at least one pixel.

    Returns
    -------
    str
        An ``<svg>`` element; empty string when ``a`` has no finite value.
    """
    got = _spark_counts(a, bins)
    if got is None:
        return ""
    counts, edges, sampled, size = got
    top = max(int(counts.max()), 1)
    bw = width / bins
    rects = []
    for i, c in enumerate(counts.tolist()):
        if c == 0:
            continue
        h = max(1.0, (height - 1) * c / top)
        rects.append(f'<rect x="{i * bw:.2f}" y="{height - h:.2f}" width="{max(bw - 0.6, 0.6):.2f}" height="{h:.2f}"/>')
    how = "all values" if sampled == size else f"{fmt_count(sampled)} of {fmt_count(size)} values (every {-(-size // SPARK_SAMPLE)}th)"
    title = f"histogram of {how}: {fmt_num(float(edges[0]))} … {fmt_num(float(edges[-1]))}, {bins} bins"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-counts="{" ".join(str(int(c)) for c in counts)}" data-range="{float(edges[0])!r} {float(edges[-1])!r}" '
        f'style="vertical-align:middle;overflow:visible"><title>{_e(title)}</title>'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="currentColor" stroke-opacity="0.3" '
        f'stroke-width="1"/><g fill="{PALETTE[0]}">{"".join(rects)}</g></svg>'
    )


def session_html(session: Any, *, max_rows: int = 200, read_budget: int | None = DEFAULT_READ_BUDGET) -> str:
    """HTML summary of an edit session: the model, its edits, and one row per tensor.

    Each row: canonical name, layer class, shape, dtype, sparsity (fraction of
    exact zeros of the current values), whether the tensor differs from the
    stored values, and a histogram sparkline of the current values
    (:func:`sparkline_svg`). See the module docstring for the bounded work.

    Parameters
    ----------
    session:
        A :class:`~weightlab.core.session.EditSession` (or anything with its
        ``model``, ``steps``, ``position``, ``is_edited``, ``is_loaded``,
        ``array`` and ``peek``).
    max_rows:
        Tensors shown at most (model order); a last line counts the others.
    read_budget:
        Entries read at most from the file for tensors the session has not
        read yet (None: no limit). Tensors past it show "not read".

    Returns
    -------
    str
        A self-contained ``<div>``.
    """
    model = session.model
    infos = list(model.tensors.values())
    layers = list(getattr(model, "layers", []))
    classes = {lay.name: getattr(lay, "class_name", "") for lay in layers}
    params = sum(int(t.size) for t in infos)
    steps = list(getattr(session, "steps", []))
    pos = int(getattr(session, "position", len(steps)))
    path = getattr(model, "path", None)
    name = getattr(path, "name", None) or str(path or "model")
    fmt = getattr(model, "format", "")
    edited = [t.name for t in infos if session.is_edited(t.name)]
    head = (f"{fmt_count(len(layers))} layers · {fmt_count(len(infos))} tensors · {fmt_count(params)} parameters"
            f" · {fmt_count(len(edited))} tensor{'s' if len(edited) != 1 else ''} changed")
    parts = [_line(_e(head), muted=True)]
    if steps:
        items = []
        for i, st in enumerate(steps):
            text = _e(st.edit.describe() if hasattr(st.edit, "describe") else st.edit)
            style = []
            if i >= pos:
                style.append("opacity:0.5")
            if not getattr(st, "enabled", True):
                style.append("text-decoration:line-through")
            attr = f' style="{";".join(style)}"' if style else ""
            note = " (undone)" if i >= pos else ""
            items.append(f"<li{attr}>{text}{_e(note)}</li>")
        parts.append(f'<div>Edits: {pos} of {len(steps)} applied</div>'
                     f'<ol style="margin:2px 0 4px 20px;padding:0">{"".join(items)}</ol>')
    else:
        parts.append(_line("No edits.", muted=True))
    rows = []
    budget = math.inf if read_budget is None else int(read_budget)
    skipped = 0
    for info in infos[:max_rows]:
        changed = session.is_edited(info.name)
        values: np.ndarray | None = None
        if session.is_loaded(info.name):
            values = session.array(info.name)
        elif info.size <= budget:
            budget -= info.size
            values = session.peek(info.name)
        if values is None:
            skipped += 1
            zeros, spark = f'<span style="{_MUTED}">not read</span>', ""
        else:
            n = int(values.size)
            zeros = _e(_fmt_fraction((n - count_nonzero(values)) / n) if n else "–")
            spark = sparkline_svg(values)
        rows.append([
            f"<code>{_e(info.name)}</code>",
            _e(classes.get(info.layer, "")),
            _e(fmt_shape(info.shape)),
            _e(info.dtype),
            zeros,
            f'<span style="color:{_CHANGED}">changed</span>' if changed else f'<span style="{_MUTED}">–</span>',
            spark,
        ])
    header = [("Tensor", False), ("Layer", False), ("Shape", True), ("dtype", False), ("Zeros", True),
              ("Edited", False), ("Values", False)]
    parts.append(_table(header, rows, [False, False, True, False, True, False, False]))
    if len(infos) > max_rows:
        parts.append(_line(_e(f"… and {fmt_count(len(infos) - max_rows)} more tensors (session_html(session, "
                              f"max_rows={len(infos)}) shows them all)"), muted=True))
    if skipped:
        parts.append(_line(_e(f"{skipped} tensor{'s' if skipped != 1 else ''} not read: over the read budget of "
                              f"{fmt_count(int(read_budget or 0))} entries (session_html(session, read_budget=None) "
                              "reads them all)"), muted=True))
    title = f"{_e(name)} <span style=\"font-weight:400;{_MUTED}\">{_e(fmt)}</span>"
    return _box(title, *parts)


# -- metrics ---------------------------------------------------------------------------------------


def metrics_html(metrics: Any) -> str:
    """HTML of an evaluation's :class:`~weightlab.engine.events.Metrics`.

    Accuracy (as a percentage) and loss; with ``metrics.baseline`` set, the
    unedited model's values and the change (accuracy in percentage points,
    loss as a difference; a loss of accuracy in red). Agreement with the
    unedited model when measured; samples, device and time.

    Parameters
    ----------
    metrics:
        A :class:`~weightlab.engine.events.Metrics` (or anything with its fields).

    Returns
    -------
    str
        A self-contained ``<div>``.
    """
    base = getattr(metrics, "baseline", None)
    labels = bool(getattr(metrics, "labels", True))
    header = [("", False), ("Edited" if base is not None else "Value", True)]
    if base is not None:
        header += [("Baseline", True), ("Change", True)]
    rows = []
    if labels:
        acc = [_e(fmt_pct(metrics.accuracy))]
        loss = [_e(fmt_num(metrics.loss))]
        if base is not None:
            d_acc = None if _missing(base.accuracy) or _missing(metrics.accuracy) else \
                100.0 * (metrics.accuracy - base.accuracy)
            d_loss = None if _missing(base.loss) or _missing(metrics.loss) else metrics.loss - base.loss
            acc += [_e(fmt_pct(base.accuracy)), _pp_cell(d_acc)]
            loss_cell = _e(fmt_delta(d_loss))
            if d_loss is not None and abs(d_loss) > 0:
                loss_cell = _coloured(loss_cell, d_loss < 0)
            loss += [_e(fmt_num(base.loss)), loss_cell]
        rows += [["Accuracy", *acc], ["Loss", *loss]]
    agr = getattr(metrics, "agreement", None)
    if agr is not None:
        row = ["Agreement", _e(fmt_pct(agr))]
        if base is not None:
            b_agr = getattr(base, "agreement", None)
            b_agr = 1.0 if b_agr is None else b_agr
            row += [_e(fmt_pct(b_agr)), _pp_cell(100.0 * (agr - b_agr))]
        rows.append(row)
    parts = [_table(header, rows, [False] + [True] * (len(header) - 1))] if rows else \
        [_line("No labels and no agreement measured.", muted=True)]
    n = int(getattr(metrics, "num_samples", 0) or 0)
    bits = [f"{fmt_count(n)} samples"] if n else []
    if getattr(metrics, "device", ""):
        bits.append(str(metrics.device))
    secs = getattr(metrics, "seconds", 0.0)
    if secs:
        bits.append(f"{secs:.2f} s")
    if bits:
        parts.append(_line(_e(" · ".join(bits)), muted=True))
    return _box("Evaluation", *parts)


# -- diffs -----------------------------------------------------------------------------------------


def diff_html(model_diff: Any, *, max_rows: int = 100) -> str:
    """HTML of a :class:`~weightlab.core.diff.ModelDiff`: the changed tensors, largest relative change first.

    Columns: name, entries changed (count and fraction), relative change
    ``||b - a|| / ||a||`` (as a percentage, with a bar scaled to the largest),
    and the largest absolute change. Unchanged tensors are counted, and listed
    in a collapsed ``<details>``.

    Parameters
    ----------
    model_diff:
        A :class:`~weightlab.core.diff.ModelDiff` (any sequence of
        :class:`~weightlab.core.diff.TensorDiff` with ``a_label``/``b_label``).
    max_rows:
        Changed tensors listed at most.

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles, an inline ``<svg>`` plot).
    """
    diffs = list(model_diff)
    changed = sorted((d for d in diffs if d.changed), key=lambda d: (-d.relative_l2, d.name))
    same = [d for d in diffs if not d.changed]
    a, b = getattr(model_diff, "a_label", "a"), getattr(model_diff, "b_label", "b")
    finite = [d.relative_l2 for d in changed if math.isfinite(d.relative_l2)]
    top = max(finite, default=0.0) or 1.0
    rows = []
    for d in changed[:max_rows]:
        frac = d.relative_l2 / top if math.isfinite(d.relative_l2) else 1.0
        bar = (f'<svg xmlns="http://www.w3.org/2000/svg" width="80" height="10" style="vertical-align:middle">'
               f'<rect x="0" y="1" width="{80 * frac:.1f}" height="8" fill="{PALETTE[1]}"/></svg>')
        rel = "∞" if math.isinf(d.relative_l2) else fmt_pct(d.relative_l2, 2)
        rows.append([f"<code>{_e(d.name)}</code>", _e(f"{fmt_count(d.changed)} of {fmt_count(d.size)}"),
                     _e(fmt_pct(d.fraction_changed, 1)), _e(rel), bar, _e(fmt_num(d.max_abs))])
    header = [("Tensor", False), ("Entries changed", True), ("", True), ("Relative change", True), ("", False),
              ("Max |Δ|", True)]
    parts = [_line(_e(f"{len(changed)} of {len(diffs)} tensors changed"), muted=True)]
    if changed:
        parts.append(_table(header, rows, [False, True, True, True, False, True]))
    if len(changed) > max_rows:
        parts.append(_line(_e(f"… and {len(changed) - max_rows} more changed tensors"), muted=True))
    if same:
        names = ", ".join(f"<code>{_e(d.name)}</code>" for d in same[:max_rows])
        more = _e(f", … {len(same) - max_rows} more") if len(same) > max_rows else ""
        parts.append(f'<details><summary style="cursor:pointer;{_MUTED}">{len(same)} unchanged</summary>'
                     f'<div style="font-size:12px">{names}{more}</div></details>')
    return _box(f"Diff: {_e(a)} → {_e(b)}", *parts)


# -- SVG plots -------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    k0 = math.ceil(lo / step - 1e-9)
    out = []
    k = k0
    while k * step <= hi + step * 1e-9:
        v = round(k * step, 12)
        out.append(0.0 if abs(v) < step * 1e-9 else v)
        k += 1
    return out


def _int_ticks(lo: int, hi: int, n: int = 6) -> list[int]:
    """Whole-number ticks from ``lo`` to ``hi`` (epochs, rounds), about ``n`` of them."""
    step = max(1, math.ceil((hi - lo) / max(n - 1, 1)))
    if step > 1:
        mag = 10 ** math.floor(math.log10(step))
        step = next(int(m * mag) for m in (1, 2, 5, 10) if m * mag >= step)
    return list(range(lo, hi + 1, step))


def _tick_text(v: float) -> str:
    return f"{v:.6g}".replace("-", _MINUS)


class _Plot:
    """One SVG chart: a frame with ticks, labels and a data-to-pixel mapping (linear or log x)."""

    def __init__(self, width: int, height: int, ink: str, *, left: int = 52, right: int = 12, top: int = 22,
                 bottom: int = 38, legend: Sequence[tuple[str, str, str]] = (), legend_at: str = "right",
                 max_entries: int = 12) -> None:
        self.w, self.h, self.ink = width, height, ink
        self.parts: list[str] = []
        self.xlim = (0.0, 1.0)
        self.ylim = (0.0, 1.0)
        self.logx = False
        # The legend sits outside the frame (never over a curve): a column on the right, or rows on top.
        shown = [(t if len(t) <= 30 else t[:29] + "…", c, d) for t, c, d in legend[:max_entries]]
        if len(legend) > max_entries:
            shown.append((f"+ {len(legend) - max_entries} more", "none", ""))
        self._legend: list[tuple[float, float, str, str, str]] = []  # x, y, text, colour, dash
        if shown and legend_at == "right":
            lw = 28 + 6.2 * max(len(t) for t, _, _ in shown)
            right += int(lw) + 6
            for i, (t, c, d) in enumerate(shown):
                self._legend.append((width - lw - 6, top + 8 + 14 * i, t, c, d))
        elif shown:
            x, row = float(left), 0
            for t, c, d in shown:
                w = 30 + 6.2 * len(t)
                if x + w > width - right and x > left:
                    x, row = float(left), row + 1
                self._legend.append((x, top + 4 + 14 * row, t, c, d))
                x += w
            top += 14 * (row + 1) + 4
        self.x0, self.x1, self.y0, self.y1 = left, width - right, height - bottom, top

    def limits(self, xs: Iterable[float], ys: Iterable[float], *, logx: bool = False,
               include_y: Sequence[float] = (), pad: float = 0.06) -> None:
        xv = [float(x) for x in xs if x is not None and math.isfinite(x) and (not logx or x > 0)]
        yv = [float(y) for y in [*ys, *include_y] if y is not None and math.isfinite(y)]
        self.logx = logx and bool(xv)
        if self.logx:
            xv = [math.log10(x) for x in xv]
        lo, hi = (min(xv), max(xv)) if xv else (0.0, 1.0)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.xlim = (lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03)
        lo, hi = (min(yv), max(yv)) if yv else (0.0, 1.0)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.ylim = (lo - (hi - lo) * pad, hi + (hi - lo) * pad)

    def px(self, x: float) -> float:
        if self.logx:
            x = math.log10(x) if x > 0 else self.xlim[0]
        a, b = self.xlim
        return self.x0 + (x - a) / (b - a) * (self.x1 - self.x0)

    def py(self, y: float) -> float:
        a, b = self.ylim
        return self.y0 + (y - a) / (b - a) * (self.y1 - self.y0)

    def frame(self, xlabel: str, ylabel: str, *, xticks: Sequence[float] | None = None,
              xtick_text: Callable[[float], str] = _tick_text) -> None:
        ink, p = self.ink, self.parts
        for t in _nice_ticks(*self.ylim):
            y = self.py(t)
            p.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="{ink}" '
                     f'stroke-opacity="0.15"/>')
            p.append(f'<text x="{self.x0 - 4}" y="{y + 3.5:.1f}" text-anchor="end">{_e(_tick_text(t))}</text>')
        if xticks is None:
            if self.logx:
                a, b = self.xlim
                xticks = [10.0 ** k for k in range(math.ceil(a - 1e-9), math.floor(b + 1e-9) + 1)] or [10 ** a]
            else:
                xticks = _nice_ticks(*self.xlim, n=max(2, int((self.x1 - self.x0) / 70)))
        for t in xticks:
            x = self.px(t)
            p.append(f'<line x1="{x:.1f}" y1="{self.y0}" x2="{x:.1f}" y2="{self.y0 + 4}" stroke="{ink}"/>')
            p.append(f'<text x="{x:.1f}" y="{self.y0 + 15}" text-anchor="middle">{_e(xtick_text(t))}</text>')
        p.append(f'<rect x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" height="{self.y0 - self.y1}" '
                 f'fill="none" stroke="{ink}" stroke-opacity="0.5"/>')
        p.append(f'<text x="{(self.x0 + self.x1) / 2:.1f}" y="{self.h - 6}" text-anchor="middle">{_e(xlabel)}</text>')
        p.append(f'<text transform="translate(12,{(self.y0 + self.y1) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{_e(ylabel)}</text>')

    def hline(self, y: float, label: str, *, dash: str = "5,3", colour: str | None = None) -> None:
        if not math.isfinite(y):
            return
        c = colour or self.ink
        yy = self.py(y)
        self.parts.append(f'<line x1="{self.x0}" y1="{yy:.1f}" x2="{self.x1}" y2="{yy:.1f}" stroke="{c}" '
                          f'stroke-dasharray="{dash}" stroke-width="1.2"/>')
        if label:
            self.parts.append(f'<text x="{self.x1 - 4}" y="{yy - 4:.1f}" text-anchor="end" fill="{c}">{_e(label)}'
                              "</text>")

    def line(self, xs: Sequence[float], ys: Sequence[float], colour: str, *, label: str = "", dash: str = "",
             markers: bool = True, hollow: Sequence[bool] = ()) -> None:
        """A polyline broken at unknown values, with round markers (hollow where ``hollow[i]``)."""
        segs: list[list[str]] = [[]]
        for x, y in zip(xs, ys):
            if _missing(x) or _missing(y) or not math.isfinite(y) or (self.logx and x <= 0):
                segs.append([])
                continue
            segs[-1].append(f"{self.px(x):.1f},{self.py(y):.1f}")
        d = f' stroke-dasharray="{dash}"' if dash else ""
        title = f"<title>{_e(label)}</title>" if label else ""
        g = [f'<g data-series="{_e(label)}">{title}']
        for s in segs:
            if len(s) > 1:
                g.append(f'<polyline points="{" ".join(s)}" fill="none" stroke="{colour}" stroke-width="1.8"{d}/>')
        if markers:
            for i, (x, y) in enumerate(zip(xs, ys)):
                if _missing(x) or _missing(y) or not math.isfinite(y) or (self.logx and x <= 0):
                    continue
                fill = "none" if i < len(hollow) and hollow[i] else colour
                g.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="2.8" fill="{fill}" '
                         f'stroke="{colour}" stroke-width="1.2"/>')
        g.append("</g>")
        self.parts.append("".join(g))

    def draw_legend(self) -> None:
        """Draw the legend reserved at construction."""
        if not self._legend:
            return
        g = ['<g data-legend="1">']
        for x, y, text, colour, dash in self._legend:
            if colour != "none":
                d = f' stroke-dasharray="{dash}"' if dash else ""
                g.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 18:.1f}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-width="2"{d}/>')
            g.append(f'<text x="{x + 23:.1f}" y="{y + 3.5:.1f}">{_e(text)}</text>')
        g.append("</g>")
        self.parts.append("".join(g))

    def title(self, text: str) -> None:
        self.parts.append(f'<text x="{self.x0}" y="14" font-weight="600">{_e(text)}</text>')

    def svg(self) -> str:
        self.draw_legend()
        self._legend = []
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="sans-serif" font-size="11" fill="{self.ink}" '
                f'style="color:inherit;background:transparent">' + "".join(self.parts) + "</svg>")


def _empty_svg(text: str, width: int, height: int, ink: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="12" fill="{ink}"><text x="{width / 2}" y="{height / 2}" text-anchor="middle">{_e(text)}'
            "</text></svg>")


def _metric_word(metric: str) -> str:
    return "agreement" if metric == "agreement" else "accuracy"


def sweep_svg(result: Any, *, width: int = 560, height: int = 300, ink: str = "currentColor",
              max_targets: int = 10) -> str:
    """SVG of a :class:`~weightlab.core.sweeps.SweepResult`: the metric (%) against the value, one curve per target.

    The baseline (the unedited model) is a dashed horizontal line, the
    sweep's budget (``spec.budget_pp`` below it) a dotted one when it falls
    within the measured range; the x axis is logarithmic for a ``log``-scale
    sweep. At most ``max_targets`` curves (the others are counted in the
    legend).

    Parameters
    ----------
    result:
        The result to draw.
    width, height:
        Size in CSS pixels.
    ink:
        Colour of the axes and text: ``currentColor`` (the surrounding text's
        colour) inline in HTML, :data:`STANDALONE_INK` for a standalone document.
    max_targets:
        Curves drawn at most (in the result's target order).

    Returns
    -------
    str
        An ``<svg>`` element (well-formed XML).
    """
    spec = result.spec
    metric = spec.metric
    base = result.baseline.metric(metric)
    targets = result.targets()
    curves = [(t, *result.curve(t, metric)) for t in targets[:max_targets]]
    if not any(len(v) for _, v, _ in curves):
        return _empty_svg("no points measured yet", width, height, ink)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(curves))]
    entries = [(t, c, "") for (t, _, _), c in zip(curves, colours)]
    if len(targets) > max_targets:
        entries.append((f"+ {len(targets) - max_targets} more targets", "none", ""))
    budget = getattr(spec, "budget_pp", None)
    if base is not None:
        entries.append((f"baseline {fmt_pct(base)}", ink, "5,3"))
        if budget is not None:
            entries.append((f"budget {_MINUS}{budget:g} pp", _BAD, "2,3"))
    pl = _Plot(width, height, ink, legend=entries, max_entries=max_targets + 2)
    xs = [x for _, v, _ in curves for x in v.tolist()]
    ys = [100 * y for _, _, m in curves for y in m.tolist()]
    pl.limits(xs, ys, logx=spec.scale == "log", include_y=[100 * base] if base is not None else [])
    if base is not None and budget is not None and pl.ylim[0] <= 100 * base - budget <= pl.ylim[1]:
        pl.hline(100 * base - budget, "", dash="2,3", colour=_BAD)
    pl.title(spec.label)
    pl.frame(f"{spec.op}.{spec.param}", f"{_metric_word(metric)} (%)")
    if base is not None:
        pl.hline(100 * base, "")  # labelled in the legend: a label here would sit on the curves
    for (t, v, m), c in zip(curves, colours):
        pl.line(v.tolist(), (100 * m).tolist(), c, label=t)
    return pl.svg()


def rank_svg(result: Any, *, width: int = 560, height: int = 260, ink: str = "currentColor",
             max_units: int = 64) -> str:
    """SVG of a :class:`~weightlab.core.sweeps.RankResult`: one bar per unit, the drop its ablation costs (pp).

    Units most important first (the result's order), at most ``max_units``;
    a negative drop (the ablation raised the metric) is a bar below zero in
    another colour. Units are labelled on the x axis, every k-th where their labels would overlap.

    Parameters
    ----------
    result:
        The result to draw.
    width, height:
        Size in CSS pixels.
    ink:
        Colour of the axes and text: ``currentColor`` (the surrounding text's
        colour) inline in HTML, :data:`STANDALONE_INK` for a standalone document.
    max_units:
        Bars drawn at most (the most important units).

    Returns
    -------
    str
        An ``<svg>`` element (well-formed XML).
    """
    units = [u for u in result.units if u.drop is not None][:max_units]
    if not units:
        return _empty_svg("no unit measured yet", width, height, ink)
    drops = [100 * u.drop for u in units]
    pl = _Plot(width, height, ink)
    pl.limits([0, len(units)], [0.0, *drops], pad=0.08)
    pl.xlim = (0.0, float(len(units)))
    word = "accuracy" if result.baseline.accuracy is not None else "agreement"
    more = f" (top {len(units)} of {len(result.units)})" if len(result.units) > len(units) else ""
    pl.title(result.spec.label + more)
    slot = (pl.x1 - pl.x0) / len(units)
    # label a unit every `step` bars so that labels never overlap (about 6.5 px per digit at 11 px text)
    label_px = 6.5 * max(len(str(u.index)) for u in units) + 6
    step = max(1, math.ceil(label_px / slot))
    ticks = [i + 0.5 for i in range(0, len(units), step)]
    pl.frame("unit (most important first)" + (f", a label every {step} bars" if step > 1 else ""),
             f"{word} drop (pp)", xticks=ticks, xtick_text=lambda t: str(units[int(t)].index))
    zero = pl.py(0.0)
    bars = []
    for i, (u, d) in enumerate(zip(units, drops)):
        y = pl.py(d)
        top, h = min(y, zero), max(abs(zero - y), 0.8)
        c = PALETTE[0] if d >= 0 else PALETTE[2]
        bars.append(f'<rect x="{pl.x0 + i * slot + slot * 0.12:.1f}" y="{top:.1f}" width="{slot * 0.76:.1f}" '
                    f'height="{h:.1f}" fill="{c}"><title>{_e(f"unit {u.index}: drop {fmt_pp(d)}")}</title></rect>')
    pl.parts.append('<g data-bars="1">' + "".join(bars) + "</g>")
    pl.parts.append(f'<line x1="{pl.x0}" y1="{zero:.1f}" x2="{pl.x1}" y2="{zero:.1f}" stroke="{ink}" '
                    f'stroke-opacity="0.6"/>')
    return pl.svg()


def plan_svg(plan: Any, *, width: int = 560, height: int | None = None, ink: str = "currentColor",
             max_targets: int = 20) -> str:
    """SVG of a :class:`~weightlab.core.plan.Plan`: each target's single drop (pp) at its chosen value,
    with the budget as a dashed line.

    Parameters
    ----------
    plan:
        The result to draw.
    width, height:
        Size in CSS pixels.
    ink:
        Colour of the axes and text: ``currentColor`` (the surrounding text's
        colour) inline in HTML, :data:`STANDALONE_INK` for a standalone document.
    max_targets:
        Targets drawn at most.

    Returns
    -------
    str
        An ``<svg>`` element (well-formed XML).
    """
    choices = list(plan.choices)[:max_targets]
    if not choices:
        return _empty_svg("no targets", width, height or 120, ink)
    row = 18
    label_w = min(220, 12 + 6.2 * max(len(c.target) for c in choices))
    height = height or int(44 + 30 + row * len(choices))
    pl = _Plot(width, height, ink, left=int(label_w) + 8, top=22, bottom=38)
    drops = [c.single_drop_pp for c in choices]
    pl.limits([0.0], [], pad=0.0)
    hi = max([plan.budget_pp, *(d for d in drops if d is not None)], default=1.0) * 1.08 or 1.0
    lo = min([0.0, *(d for d in drops if d is not None)])
    pl.xlim, pl.ylim = (lo, hi), (0.0, float(len(choices)))
    pl.title(f"Plan within {plan.budget_pp:g} pp")
    # Horizontal bars: x is the drop, rows are the targets (top first).
    p = pl.parts
    for t in _nice_ticks(lo, hi):
        x = pl.px(t)
        p.append(f'<line x1="{x:.1f}" y1="{pl.y1}" x2="{x:.1f}" y2="{pl.y0 + 4}" stroke="{ink}" stroke-opacity="0.15"/>')
        p.append(f'<text x="{x:.1f}" y="{pl.y0 + 15}" text-anchor="middle">{_e(_tick_text(t))}</text>')
    p.append(f'<rect x="{pl.x0}" y="{pl.y1}" width="{pl.x1 - pl.x0}" height="{pl.y0 - pl.y1}" fill="none" '
             f'stroke="{ink}" stroke-opacity="0.5"/>')
    p.append(f'<text x="{(pl.x0 + pl.x1) / 2:.1f}" y="{height - 6}" text-anchor="middle">'
             f'{_e(_metric_word(plan.metric))} drop of the target alone (pp)</text>')
    slot = (pl.y0 - pl.y1) / len(choices)
    for i, c in enumerate(choices):
        yc = pl.y1 + slot * (i + 0.5)
        name = c.target if len(c.target) <= 34 else c.target[:33] + "…"
        p.append(f'<text x="{pl.x0 - 6}" y="{yc + 3.5:.1f}" text-anchor="end">{_e(name)}</text>')
        if c.single_drop_pp is None:
            p.append(f'<text x="{pl.x0 + 4}" y="{yc + 3.5:.1f}" opacity="0.7">left unedited</text>')
            continue
        x0, x1 = sorted((pl.px(0.0), pl.px(c.single_drop_pp)))
        p.append(f'<rect x="{x0:.1f}" y="{yc - slot * 0.35:.1f}" width="{max(x1 - x0, 0.8):.1f}" '
                 f'height="{slot * 0.7:.1f}" fill="{PALETTE[0]}"><title>'
                 f'{_e(f"{c.target}: {c.value:g} -> {fmt_pp(c.single_drop_pp)}")}</title></rect>')
    xb = pl.px(plan.budget_pp)
    p.append(f'<line x1="{xb:.1f}" y1="{pl.y1}" x2="{xb:.1f}" y2="{pl.y0}" stroke="{_BAD}" stroke-dasharray="5,3" '
             f'stroke-width="1.2"/><text x="{xb - 3:.1f}" y="{pl.y1 - 3}" text-anchor="end" fill="{_BAD}">'
             f'budget {plan.budget_pp:g} pp</text>')
    return pl.svg()


def finetune_svg(result: Any, *, width: int = 620, height: int = 260, ink: str = "currentColor") -> str:
    """SVG of a :class:`~weightlab.core.training.FinetuneResult`: per-epoch loss (left) and accuracy in % (right).

    Training, validation and held-out curves where measured; the kept
    (best) epoch is marked with a dotted vertical line.

    Parameters
    ----------
    result:
        The result to draw.
    width, height:
        Size in CSS pixels.
    ink:
        Colour of the axes and text: ``currentColor`` (the surrounding text's
        colour) inline in HTML, :data:`STANDALONE_INK` for a standalone document.

    Returns
    -------
    str
        An ``<svg>`` element (well-formed XML).
    """
    hist = list(result.history)
    if not hist:
        return _empty_svg("no epoch finished", width, height, ink)
    epochs = [r.epoch for r in hist]
    half = width // 2
    out = []
    for k, (title, ylabel, series) in enumerate((
        ("Loss", "loss", [("train", "loss", 1.0, PALETTE[0], ""), ("validation", "val_loss", 1.0, PALETTE[1], "5,3"),
                          ("held-out", "heldout_loss", 1.0, PALETTE[2], "2,2")]),
        ("Accuracy", "accuracy (%)", [("train", "accuracy", 100.0, PALETTE[0], ""),
                                      ("validation", "val_accuracy", 100.0, PALETTE[1], "5,3"),
                                      ("held-out", "heldout_accuracy", 100.0, PALETTE[2], "2,2")]),
    )):
        data = []
        for name, field, scale, colour, dash in series:
            ys = [None if getattr(r, field) is None else scale * float(getattr(r, field)) for r in hist]
            if any(y is not None and math.isfinite(y) for y in ys):
                data.append((name, ys, colour, dash))
        pl = _Plot(half, height, ink, legend=[(n, c, d) for n, _, c, d in data], legend_at="top")
        pl.limits(epochs, [y for _, ys, _, _ in data for y in ys if y is not None])
        pl.title(title)
        ticks = _int_ticks(min(epochs), max(epochs))
        pl.frame("epoch", ylabel, xticks=ticks, xtick_text=lambda t: str(int(t)))
        best = getattr(result, "best_epoch", None)
        if best is not None:
            xb = pl.px(best)
            pl.parts.append(f'<line x1="{xb:.1f}" y1="{pl.y1}" x2="{xb:.1f}" y2="{pl.y0}" stroke="{ink}" '
                            f'stroke-dasharray="1,3" stroke-width="1.5"><title>kept epoch {best}</title></line>')
        for name, ys, colour, dash in data:
            pl.line(epochs, [math.nan if y is None else y for y in ys], colour, label=name, dash=dash)
        if not data:
            pl.parts.append(f'<text x="{(pl.x0 + pl.x1) / 2:.1f}" y="{(pl.y0 + pl.y1) / 2:.1f}" text-anchor="middle" '
                            f'opacity="0.7">not measured</text>')
        inner = pl.svg()
        out.append(f'<g transform="translate({k * half},0)">' + inner[inner.index(">") + 1: -len("</svg>")] + "</g>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="11" fill="{ink}" style="color:inherit;background:transparent">'
            + "".join(out) + "</svg>")


def prune_retrain_svg(result: Any, *, width: int = 560, height: int = 280, ink: str = "currentColor") -> str:
    """SVG of a :class:`~weightlab.core.training.PruneRetrainResult`: held-out accuracy (%) against sparsity (%).

    One point per round (labelled with its number; hollow for a round past
    the budget, whose weights were not kept); the baseline accuracy is a
    dashed line.

    Parameters
    ----------
    result:
        The result to draw.
    width, height:
        Size in CSS pixels.
    ink:
        Colour of the axes and text: ``currentColor`` (the surrounding text's
        colour) inline in HTML, :data:`STANDALONE_INK` for a standalone document.

    Returns
    -------
    str
        An ``<svg>`` element (well-formed XML).
    """
    rounds = [r for r in result.rounds if r.accuracy is not None]
    base = (result.baseline or {}).get("accuracy")
    if not rounds:
        return _empty_svg("no round measured", width, height, ink)
    xs = [100 * r.sparsity for r in rounds]
    ys = [100 * r.accuracy for r in rounds]
    pl = _Plot(width, height, ink)
    pl.limits(xs, ys, include_y=[100 * base] if base is not None else [])
    pl.title(f"Prune and retrain: {len(result.rounds)} rounds")
    pl.frame("sparsity of the pruned tensors (%)", "held-out accuracy (%)")
    if base is not None:
        pl.hline(100 * base, f"baseline {fmt_pct(base)}")
    pl.line(xs, ys, PALETTE[0], label="after retraining", hollow=[not r.kept for r in rounds])
    for r, x, y in zip(rounds, xs, ys):
        pl.parts.append(f'<text x="{pl.px(x) + 5:.1f}" y="{pl.py(y) - 5:.1f}">{r.round}</text>')
    return pl.svg()


# -- job results -----------------------------------------------------------------------------------


def _svg_block(svg: str) -> str:
    return f'<div style="margin-top:6px">{svg}</div>'


def sweep_html(result: Any, *, max_rows: int = 30) -> str:
    """HTML of a :class:`~weightlab.core.sweeps.SweepResult`: the baseline, one row per target, and the plot.

    Per target: points measured, the worst drop measured (pp), and the value
    where the drop passes ``spec.budget_pp`` (when the sweep has a budget).

    Parameters
    ----------
    result:
        The result to show.
    max_rows:
        Targets listed at most.

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles, an inline ``<svg>`` plot).
    """
    spec = result.spec
    metric = spec.metric
    base = result.baseline.metric(metric)
    targets = result.targets()
    budget = getattr(spec, "budget_pp", None)
    rows = []
    for t in targets[:max_rows]:
        values, drops = result.drops(t, metric)
        finite = drops[np.isfinite(drops)]
        worst = float(finite.max()) if finite.size else None
        row = [f"<code>{_e(t)}</code>", _e(len(values)), _pp_cell(None if worst is None else -worst)]
        if budget is not None:
            th = result.threshold(t, budget, metric)
            row.append(_e("within budget" if th is None else f"{th:.4g}"))
        note = result.notes.get(t, "")
        if t in result.stopped:
            note = (note + "; " if note else "") + f"stopped after {result.stopped[t]:g} (past the budget)"
        row.append(f'<span style="{_MUTED}">{_e(note)}</span>')
        rows.append(row)
    header = [("Target", False), ("Points", True), ("Worst change", True)]
    if budget is not None:
        header.append((_e(f"Passes −{budget:g} pp at"), True))
    header.append(("", False))
    numeric = [h[1] for h in header]
    state = "" if result.complete else " (partial)"
    line = f"{_metric_word(metric).capitalize()} of the unedited model: {fmt_pct(base)}" + \
        f" · {len(targets)} target{'s' if len(targets) != 1 else ''} · {len(result.points)} points{state}"
    parts = [_line(_e(line), muted=True), _table(header, rows, numeric)]
    if len(targets) > max_rows:
        parts.append(_line(_e(f"… and {len(targets) - max_rows} more targets"), muted=True))
    parts.append(_svg_block(sweep_svg(result)))
    return _box(_e(spec.label), *parts)


def rank_html(result: Any, *, top: int = 10) -> str:
    """HTML of a :class:`~weightlab.core.sweeps.RankResult`: the ``top`` most and least important units and the bars.

    Parameters
    ----------
    result:
        The result to show.
    top:
        Units listed (the most important).

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles, an inline ``<svg>`` plot).
    """
    base = result.baseline
    acc = base.accuracy is not None
    word = "accuracy" if acc else "agreement"
    units = list(result.units)

    def row(u: Any) -> list[str]:
        p = u.point
        val = p.accuracy if acc else p.agreement
        d = None if u.drop is None else -100 * u.drop
        return [_e(u.index), _e(fmt_pct(val)), _pp_cell(d), _e(fmt_delta(u.loss_change))]

    header = [("Unit", True), (word.capitalize(), True), ("Change", True), ("Loss change", True)]
    parts = [_line(_e(f"{word.capitalize()} of the unedited model: {fmt_pct(base.metric(word))} · "
                      f"{len(units)} units" + (f" · method: {result.method}" if result.method else "")
                      + ("" if result.complete else " (partial)")), muted=True)]
    parts.append(_line(_e(f"Most important {min(top, len(units))}:")))
    parts.append(_table(header, [row(u) for u in units[:top]], [True] * 4))
    raising = result.raising()
    if raising:
        parts.append(_line(_e(f"Removing {len(raising)} unit{'s' if len(raising) != 1 else ''} raised {word}: "
                              + ", ".join(str(i) for i in raising[:20]) + (" …" if len(raising) > 20 else ""))))
    parts.append(_svg_block(rank_svg(result)))
    return _box(_e(result.spec.label), *parts)


def plan_html(plan: Any) -> str:
    """HTML of a :class:`~weightlab.core.plan.Plan`: the value chosen per target, the drops and the bars.

    Parameters
    ----------
    plan:
        The result to show.

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles, an inline ``<svg>`` plot).
    """
    rows = []
    for c in plan.choices:
        value = "left unedited" if c.value is None else f"{c.value:.4g}" + (" (interpolated)" if c.interpolated else "")
        d = None if c.single_drop_pp is None else -c.single_drop_pp
        rows.append([f"<code>{_e(c.target)}</code>", _e(value), _pp_cell(d)])
    header = [("Target", False), (_e(f"{plan.spec.op}.{plan.spec.param}"), True), ("Change alone", True)]
    word = _metric_word(plan.metric)
    parts = [_line(_e(f"{word.capitalize()} of the unedited model: {fmt_pct(plan.baseline)}"), muted=True),
             _table(header, rows, [False, True, True])]
    summary = f"Sum of single changes: {fmt_pp(-plan.sum_single_drops_pp)}"
    joint = plan.joint_drop_pp
    if joint is None:
        summary += " · together: not measured yet"
    else:
        summary += f" · together: {fmt_pp(-joint)} (interaction {fmt_pp(-plan.interaction_pp)})"
    parts.append(_line(_e(summary)))
    parts.append(_svg_block(plan_svg(plan)))
    return _box(_e(f"Plan within {plan.budget_pp:g} pp ({plan.spec.op}.{plan.spec.param})"), *parts)


def finetune_html(result: Any, *, max_rows: int = 30) -> str:
    """HTML of a :class:`~weightlab.core.training.FinetuneResult`: how it ended, the epochs and the curves.

    Parameters
    ----------
    result:
        The result to show.
    max_rows:
        Epochs listed at most (the last ones).

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles, an inline ``<svg>`` plot).
    """
    hist = list(result.history)
    bits = [f"{len(hist)} epoch{'s' if len(hist) != 1 else ''}"]
    if result.best_epoch is not None:
        bits.append(f"kept epoch {result.best_epoch}")
    if result.stopped_early:
        bits.append("stopped early")
    if result.cancelled:
        bits.append("cancelled")
    if result.final:
        bits.append(f"held-out accuracy {fmt_pct(result.final.get('accuracy'))}, "
                    f"loss {fmt_num(result.final.get('loss'))}")
    if result.masked_entries:
        bits.append(f"{fmt_count(result.masked_entries)} zeros kept by the masks")
    bits.append(f"{result.device}, {result.seconds:.1f} s")
    cols = [("epoch", "Epoch", None), ("loss", "Loss", "num"), ("accuracy", "Accuracy", "pct"),
            ("val_loss", "Val. loss", "num"), ("val_accuracy", "Val. accuracy", "pct"),
            ("heldout_accuracy", "Held-out accuracy", "pct"), ("lr", "Learning rate", "num")]
    cols = [c for c in cols if c[2] is None or any(getattr(r, c[0]) is not None for r in hist)]
    rows = []
    for r in hist[-max_rows:]:
        cells = []
        for field, _, kind in cols:
            v = getattr(r, field)
            cells.append(_e(v if kind is None else (fmt_pct(v) if kind == "pct" else fmt_num(v))))
        if r.epoch == result.best_epoch:
            cells[0] += " ★"
        rows.append(cells)
    parts = [_line(_e(" · ".join(bits)), muted=True)]
    if len(hist) > max_rows:
        parts.append(_line(_e(f"last {max_rows} of {len(hist)} epochs"), muted=True))
    parts.append(_table([(t, k is not None) for _, t, k in cols], rows, [True] * len(cols)))
    parts.append(_svg_block(finetune_svg(result)))
    return _box(_e(result.label or "Fine-tune"), *parts)


def prune_retrain_html(result: Any) -> str:
    """HTML of a :class:`~weightlab.core.training.PruneRetrainResult`: the rounds with their change and the plot.

    Parameters
    ----------
    result:
        The result to show.

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles, an inline ``<svg>`` plot).
    """
    base = (result.baseline or {}).get("accuracy")
    rows = []
    for r in result.rounds:
        d = None if base is None or r.accuracy is None else 100 * (r.accuracy - base)
        rows.append([_e(r.round), _e(fmt_pct(r.sparsity, 1)), _e(fmt_pct(r.accuracy)), _pp_cell(d),
                     _e(fmt_num(r.loss)), _e("yes" if r.kept else "no (past the budget)")])
    header = [("Round", True), ("Sparsity", True), ("Accuracy", True), ("Change", True), ("Loss", True),
              ("Kept", False)]
    line = f"Baseline accuracy {fmt_pct(base)}"
    if result.stopped:
        line += f" · stopped: {result.stopped}"
    if f"kept round {result.kept_round}" not in (result.stopped or ""):
        line += f" · kept round {result.kept_round}"
    parts = [_line(_e(line), muted=True), _table(header, rows, [True] * 5 + [False]),
             _svg_block(prune_retrain_svg(result))]
    return _box(_e(result.label or "Prune and retrain"), *parts)

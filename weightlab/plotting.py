"""matplotlib plots of WeightLab's results, for notebooks and reports.

``plot(result)`` draws what the window's plots (and the results' inline SVG
in Jupyter, :mod:`weightlab.core.richdisplay`) show: sweep curves per target
with the baseline, a ranking's drop per unit, a fine-tune's curves per epoch,
prune-and-retrain's accuracy against sparsity, a plan's drop per target.
matplotlib is imported only when a plot is made (it is an optional
dependency of WeightLab).
"""

from __future__ import annotations

import math
from typing import Any

from weightlab.core.plan import Plan
from weightlab.core.sweeps import RankResult, SweepResult
from weightlab.core.training import FinetuneResult, PruneRetrainResult

__all__ = ["plot"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "weightlab.plotting needs matplotlib, which is not installed: pip install matplotlib "
            f"(or use the result's inline SVG: result._repr_svg_()); {e}"
        ) from None
    return plt


def _pct(x: float | None) -> float:
    return math.nan if x is None else 100.0 * float(x)


def plot(
    result: SweepResult | RankResult | Plan | FinetuneResult | PruneRetrainResult, ax: Any = None
) -> Any:
    """Plot a result with matplotlib and return the figure.

    Parameters
    ----------
    result:
        - :class:`~weightlab.core.sweeps.SweepResult`: the metric (accuracy or
          agreement, in %) against the swept value, one line per target, the
          baseline as a dashed line (log x axis for a ``log``-scale sweep);
        - :class:`~weightlab.core.sweeps.RankResult`: one bar per unit, most
          important first: the drop its ablation costs, in percentage points;
        - :class:`~weightlab.core.plan.Plan`: each target's drop alone at its
          chosen value (percentage points), with the budget;
        - :class:`~weightlab.core.training.FinetuneResult`: loss and accuracy
          (%) per epoch for training, validation and the held-out set where
          measured (two panels; on a given ``ax`` the accuracy goes on a twin
          y axis), the kept epoch as a dotted line;
        - :class:`~weightlab.core.training.PruneRetrainResult`: held-out
          accuracy (%) against the sparsity of the pruned tensors (%), one
          point per round (hollow: past the budget, not kept), the baseline
          as a dashed line.
    ax:
        A matplotlib ``Axes`` to draw into; None makes a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into (``ax.figure`` when ``ax`` is given).

    Raises
    ------
    ImportError
        When matplotlib is not installed (the message says
        ``pip install matplotlib``).
    TypeError
        For another kind of object.
    """
    if not isinstance(result, (SweepResult, RankResult, Plan, FinetuneResult, PruneRetrainResult)):
        raise TypeError(
            "plot() takes a SweepResult, RankResult, Plan, FinetuneResult or PruneRetrainResult; "
            f"got {type(result).__name__}"
        )
    plt = _pyplot()
    if isinstance(result, FinetuneResult):
        return _finetune(plt, result, ax)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    else:
        fig = ax.figure
    if isinstance(result, SweepResult):
        _sweep(result, ax)
    elif isinstance(result, RankResult):
        _rank(result, ax)
    elif isinstance(result, Plan):
        _plan(result, ax)
    else:
        _prune_retrain(result, ax)
    return fig


def _sweep(result: SweepResult, ax: Any) -> None:
    metric = result.spec.metric
    for t in result.targets():
        values, m = result.curve(t, metric)
        ax.plot(values, 100 * m, marker="o", markersize=4, label=t)
    base = result.baseline.metric(metric)
    if base is not None:
        ax.axhline(100 * base, color="0.5", linestyle="--", linewidth=1, label=f"baseline {100 * base:.2f} %")
    if result.spec.scale == "log":
        ax.set_xscale("log")
    ax.set_xlabel(f"{result.spec.op}.{result.spec.param}")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(result.spec.label)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def _rank(result: RankResult, ax: Any) -> None:
    units = [u for u in result.units if u.drop is not None]
    drops = [100 * u.drop for u in units]  # type: ignore[operator]
    colours = ["C0" if d >= 0 else "C2" for d in drops]
    ax.bar(range(len(units)), drops, color=colours)
    if len(units) <= 32:
        ax.set_xticks(range(len(units)), [str(u.index) for u in units])
        ax.set_xlabel("unit (most important first)")
    else:
        ax.set_xlabel("rank (most important first)")
    word = "accuracy" if result.baseline.accuracy is not None else "agreement"
    ax.set_ylabel(f"{word} drop (pp)")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.set_title(result.spec.label)
    ax.grid(axis="y", alpha=0.3)


def _plan(p: Plan, ax: Any) -> None:
    names = [c.target for c in p.choices]
    drops = [math.nan if c.single_drop_pp is None else c.single_drop_pp for c in p.choices]
    ax.barh(range(len(names)), drops, color="C0")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(p.budget_pp, color="C3", linestyle="--", label=f"budget {p.budget_pp:g} pp")
    ax.set_xlabel(f"{p.metric} drop of the target alone (pp)")
    ax.set_title(f"Plan within {p.budget_pp:g} pp ({p.spec.op}.{p.spec.param})")
    ax.legend(fontsize="small")


def _finetune(plt: Any, r: FinetuneResult, ax: Any) -> Any:
    if ax is None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    else:
        fig, ax_loss = ax.figure, ax
        ax_acc = ax.twinx()
    epochs = [rec.epoch for rec in r.history]
    for field, label, style in (("loss", "train loss", "-"), ("val_loss", "validation loss", "--"),
                                ("heldout_loss", "held-out loss", ":")):
        ys = [getattr(rec, field) for rec in r.history]
        if any(y is not None for y in ys):
            ax_loss.plot(epochs, [math.nan if y is None else y for y in ys], style, marker="o", markersize=4,
                         label=label)
    for field, label, style in (("accuracy", "train accuracy", "-"), ("val_accuracy", "validation accuracy", "--"),
                                ("heldout_accuracy", "held-out accuracy", ":")):
        ys = [getattr(rec, field) for rec in r.history]
        if any(y is not None for y in ys):
            ax_acc.plot(epochs, [_pct(y) for y in ys], style, marker="s", markersize=4, label=label,
                        color=None if ax is None else "C3")
    for a in (ax_loss, ax_acc):
        if r.best_epoch is not None:
            a.axvline(r.best_epoch, color="0.5", linestyle=":", linewidth=1)
        a.set_xlabel("epoch")
        a.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.set_ylabel("loss")
    ax_acc.set_ylabel("accuracy (%)")
    if ax is None:
        ax_loss.set_title("Loss")
        ax_acc.set_title("Accuracy")
        for a in (ax_loss, ax_acc):
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize="small")
            a.grid(alpha=0.3)
    else:
        handles = ax_loss.get_legend_handles_labels()[0] + ax_acc.get_legend_handles_labels()[0]
        if handles:
            ax_loss.legend(handles=handles, fontsize="small")
        ax_loss.set_title(r.label)
    return fig


def _prune_retrain(r: PruneRetrainResult, ax: Any) -> None:
    rounds = [rec for rec in r.rounds if rec.accuracy is not None]
    xs = [100 * rec.sparsity for rec in rounds]
    ys = [_pct(rec.accuracy) for rec in rounds]
    ax.plot(xs, ys, color="C0", linewidth=1.5)
    kept = [(x, y) for x, y, rec in zip(xs, ys, rounds) if rec.kept]
    past = [(x, y) for x, y, rec in zip(xs, ys, rounds) if not rec.kept]
    if kept:
        ax.plot(*zip(*kept), "o", color="C0", label="kept")
    if past:
        ax.plot(*zip(*past), "o", mfc="none", color="C0", label="past the budget (not kept)")
    for x, y, rec in zip(xs, ys, rounds):
        ax.annotate(str(rec.round), (x, y), textcoords="offset points", xytext=(5, 5), fontsize="small")
    base = (r.baseline or {}).get("accuracy")
    if base is not None:
        ax.axhline(100 * base, color="0.5", linestyle="--", linewidth=1, label=f"baseline {100 * base:.2f} %")
    ax.set_xlabel("sparsity of the pruned tensors (%)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(r.label or "Prune and retrain")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)

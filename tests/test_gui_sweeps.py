"""The window's Sweeps panel and the sweep/ranking plot files (weightlab.gui.sweep_plot, sweeps_panel).

Fast tests play the engine with tests/fakes.py (the real JobBook); one test runs
a real sweep on the demo model end to end.
"""

from __future__ import annotations

import numpy as np
import pytest

from weightlab.core.stats import wilson_interval
from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint, SweepResult, SweepSpec

pytestmark = pytest.mark.gui

N = 1000


def _point(target: str, value: float | None, acc: float, agree: float | None = None) -> SweepPoint:
    agree = acc if agree is None else agree
    return SweepPoint(target, value, acc, 1.0 - acc, agree, (), N,
                      wilson_interval(round(acc * N), N), wilson_interval(round(agree * N), N))


def _sweep_result(scale: str = "linear", metric: str = "accuracy") -> SweepResult:
    values = (0.05, 0.1, 0.2, 0.4)
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=values, mode="each",
                     budget_pp=2.0, scale=scale, metric=metric)
    drops = {"a/kernel": (0.30, 0.10, 0.02, 0.0), "b/kernel": (0.05, 0.01, 0.0, 0.0)}
    points = [_point(t, v, 0.9 - d) for t, ds in drops.items() for v, d in zip(values, ds, strict=True)]
    return SweepResult(spec, _point("", None, 0.9), points, notes={t: "edited alone" for t in drops})


def _rank_result(n: int = 12) -> RankResult:
    spec = RankSpec(layer="dense")
    drops = [0.01 * ((i * 7) % 5 - 1) for i in range(n)]  # some negative: removal raises accuracy
    return RankResult.from_points(spec, _point("", None, 0.9), [_point("dense", i, 0.9 - d) for i, d in
                                                               enumerate(drops)])


# -- save_plot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sweep", "rank"])
def test_save_plot_png_and_svg(qapp, tmp_path, kind):
    from PySide6.QtGui import QImage

    from weightlab.gui.export import PNG_WIDTH
    from weightlab.gui.sweep_plot import EXPORT_SIZE, save_plot

    result = _sweep_result() if kind == "sweep" else _rank_result()
    png = save_plot(result, tmp_path / "plot.png")
    svg = save_plot(result, tmp_path / "plot.svg")
    assert png == tmp_path / "plot.png" and svg == tmp_path / "plot.svg"
    image = QImage(str(png))
    assert (image.width(), image.height()) == (PNG_WIDTH, round(PNG_WIDTH * EXPORT_SIZE[1] / EXPORT_SIZE[0]))
    # Not a blank image: the curves/bars put many colours on it.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 10
    text = svg.read_text()
    assert "<svg" in text and len(text) > 2000


def test_save_plot_refuses_other_suffix_and_types(qapp, tmp_path):
    from weightlab.gui.sweep_plot import save_plot

    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_plot(_sweep_result(), tmp_path / "plot.jpg")
    with pytest.raises(TypeError, match="SweepResult or a RankResult"):
        save_plot({"points": []}, tmp_path / "plot.png")
    assert list(tmp_path.iterdir()) == []


def test_sweep_plot_draws_bands_baseline_budget_and_log_axis(qtbot):
    from weightlab.gui.sweep_plot import SweepPlot

    plot = SweepPlot()
    qtbot.addWidget(plot)
    result = _sweep_result(scale="log")
    plot.show_result(result)
    assert set(plot.curves) == {"a/kernel", "b/kernel"}
    line, band, scatter = plot.curves["a/kernel"]
    x, y = line.getData()
    np.testing.assert_allclose(10 ** x if plot.plot.getPlotItem().ctrl.logXCheck.isChecked() else x,
                               [0.05, 0.1, 0.2, 0.4])
    np.testing.assert_allclose(y, [60.0, 80.0, 88.0, 90.0])
    assert band is not None
    assert plot.plot.getPlotItem().ctrl.logXCheck.isChecked()
    assert plot.baseline_line.value() == pytest.approx(90.0)
    assert plot.budget_line.value() == pytest.approx(88.0)
    # Clicking a point says which.
    with qtbot.waitSignal(plot.pointClicked) as sig:
        scatter.sigClicked.emit(scatter, [scatter.points()[1]], None)
    assert sig.args == ["a/kernel", pytest.approx(0.1)]


def test_sweep_plot_agreement_metric(qtbot):
    from weightlab.gui.sweep_plot import SweepPlot

    plot = SweepPlot()
    qtbot.addWidget(plot)
    values = (0.1, 0.2)
    spec = SweepSpec(op="clip", param="threshold", targets=("x",), values=values, metric="agreement")
    result = SweepResult(spec, _point("", None, 0.9, 1.0), [_point("x", 0.1, 0.5, 0.7), _point("x", 0.2, 0.8, 0.95)])
    plot.show_result(result)
    np.testing.assert_allclose(plot.curves["x"][0].getData()[1], [70.0, 95.0])
    assert plot.baseline_line.value() == pytest.approx(100.0)
    assert plot.budget_line is None
    assert "agreement" in plot.plot.getAxis("left").labelText

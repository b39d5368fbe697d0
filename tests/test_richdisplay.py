"""Rich display in Jupyter (weightlab.core.richdisplay, the _repr_html_/_repr_svg_ methods, weightlab.plotting)."""

from __future__ import annotations

import math
import pickle
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from tests.fakes import memory_session
from weightlab.core import richdisplay
from weightlab.core.diff import ModelDiff, TensorDiff, model_diff, tensor_diff
from weightlab.core.edits import Scale, ZeroNeurons
from weightlab.core.errors import WeightLabError
from weightlab.core.plan import plan as make_plan
from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint, SweepResult, SweepSpec
from weightlab.core.training import EpochRecord, FinetuneResult, PruneRetrainResult, RoundRecord
from weightlab.engine.events import Metrics

EVIL = "<script>alert(1)</script>"
VOID = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}


class _Checker(HTMLParser):
    """Collects the text of table cells per row and checks that every tag is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Checker:
    """Parse ``html``; assert balanced tags, no script element, and every inline <svg> well-formed XML."""
    c = _Checker()
    c.feed(html)
    c.close()
    assert not c.errors, c.errors
    assert c.stack == [], f"unclosed: {c.stack}"
    assert c.scripts == 0
    for svg in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        ET.fromstring(svg)
    return c


def row_of(c: _Checker, first: str) -> list[str]:
    rows = [r for r in c.rows if r and r[0] == first]
    assert len(rows) == 1, (first, c.rows)
    return rows[0]


def pct(fraction: float, digits: int = 2) -> str:
    return f"{100 * fraction:.{digits}f} %".replace("-", "\u2212")


def pp(delta: float) -> str:
    text = f"{abs(delta):.2f}"
    sign = "±" if float(text) == 0 else ("+" if delta > 0 else "\u2212")
    return f"{sign}{text} pp"


# -- sessions ---------------------------------------------------------------------------------------


@pytest.fixture
def session():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(6, 4)).astype(np.float32)
    kernel[0, :] = 0.0
    arrays = {
        "dense/kernel": kernel,
        "dense/bias": np.array([0.0, 1.5, -2.0, 0.0], np.float32),
        f"{EVIL}/kernel": rng.normal(size=(4, 3)).astype(np.float32),
    }
    return memory_session("tiny.keras", arrays)


def sparkline_counts(html: str, name: str) -> tuple[list[int], ET.Element]:
    """The data-counts of the sparkline in the row of tensor ``name`` (already escaped in ``html``)."""
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*" + re.escape(name) + r"(?:(?!</tr>).)*</tr>", html, flags=re.S)
    assert row is not None
    svg = re.search(r"<svg\b.*?</svg>", row.group(0), flags=re.S)
    assert svg is not None
    el = ET.fromstring(svg.group(0))
    return [int(x) for x in el.get("data-counts").split()], el


def test_session_html_rows_sparsity_and_sparklines_are_the_numpy_numbers(session):
    session.apply(Scale(target="dense/kernel", factor=2.0))
    html = richdisplay.session_html(session)
    c = parse(html)
    for name in ("dense/kernel", "dense/bias"):
        a = session.array(name)
        row = row_of(c, name)
        assert row[2] == "×".join(map(str, a.shape))
        assert row[3] == "float32"
        assert row[4] == pct(np.count_nonzero(a == 0) / a.size, 1)
        counts, el = sparkline_counts(html, name)
        expected, edges = np.histogram(a, bins=richdisplay.SPARK_BINS)
        assert counts == expected.tolist()
        assert [float(x) for x in el.get("data-range").split()] == [edges[0], edges[-1]]
        # one bar per non-empty bin, the tallest bar for the largest count
        rects = el.findall(".//{http://www.w3.org/2000/svg}rect")
        assert len(rects) == np.count_nonzero(expected)
        heights = [float(r.get("height")) for r in rects]
        assert heights.index(max(heights)) == int(np.argmax(expected[expected > 0]))
    assert row_of(c, "dense/kernel")[5] == "changed"
    assert row_of(c, "dense/bias")[5] == "–"
    assert "Edits: 1 of 1 applied" in html


def test_session_html_escapes_names_and_labels(session):
    session.apply(ZeroNeurons(target=session.model.tensor(f"{EVIL}/kernel").layer, neurons=(1,)))
    html = richdisplay.session_html(session)
    c = parse(html)  # no <script> element
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;/kernel" in html
    assert row_of(c, f"{EVIL}/kernel")[5] == "changed"


def test_session_html_undone_steps_and_row_limit(session):
    session.apply(Scale(target="dense/kernel", factor=2.0))
    session.apply(Scale(target="dense/bias", factor=3.0))
    session.undo()
    html = richdisplay.session_html(session, max_rows=1)
    c = parse(html)
    assert "Edits: 1 of 2 applied" in html and "(undone)" in html
    tensor_rows = [r for r in c.rows if r and r[0] in session.model.tensors]
    assert len(tensor_rows) == 1
    assert "and 2 more tensors" in html


def test_sample_values_is_a_bounded_evenly_spaced_sample():
    a = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    assert richdisplay.sample_values(a, 20_000).base is not None  # small: a view, nothing copied
    s = richdisplay.sample_values(a, 999)
    k = math.ceil(a.size / 999)
    assert s.size <= 999 and np.array_equal(s, a.reshape(-1)[::k])
    t = a.T  # not C-contiguous: the same entries of its C order, only those copied
    assert np.array_equal(richdisplay.sample_values(t, 999), np.ascontiguousarray(t).reshape(-1)[::k])


def test_big_tensor_work_is_bounded(monkeypatch):
    """The sparkline of a big tensor histograms at most SPARK_SAMPLE entries; its sparsity stays exact; tensors
    not read yet are read within the budget and not kept."""
    n = 3_000_001
    big = np.ones(n, np.float32)
    big[::7] = 0.0
    arrays = {"big/kernel": big.reshape(-1, 1), "b/x": np.ones((1000, 1), np.float32),
              "c/x": np.ones((1000, 1), np.float32)}
    s = memory_session("big.keras", arrays)
    s.apply(Scale(target="big/kernel", factor=2.0))  # loaded: the session holds it
    read: list[int] = []
    real_read = s.model.read
    monkeypatch.setattr(s.model, "read", lambda name: read.append(int(np.prod(s.model.tensors[name].shape)))
                        or real_read(name))
    seen: list[int] = []
    real_hist = np.histogram
    monkeypatch.setattr(np, "histogram", lambda a, *args, **kw: seen.append(np.size(a)) or real_hist(a, *args, **kw))
    html = richdisplay.session_html(s, read_budget=1500)
    c = parse(html)
    assert max(seen) <= richdisplay.SPARK_SAMPLE and len(seen) == 2  # big/kernel and one tensor within the budget
    assert sum(read) <= 1500 and read == [1000]
    zeros = len(range(0, n, 7)) / n
    assert row_of(c, "big/kernel")[4] == pct(zeros, 1)
    assert row_of(c, "c/x")[4] == "not read" and "1 tensor not read" in html
    assert not s.is_loaded("b/x")  # read for the display, not kept
    counts, el = sparkline_counts(html, "big/kernel")
    k = math.ceil(n / richdisplay.SPARK_SAMPLE)
    assert counts == real_hist(s.array("big/kernel").reshape(-1)[::k], bins=richdisplay.SPARK_BINS)[0].tolist()
    assert "every" in el.find("{http://www.w3.org/2000/svg}title").text


# -- metrics ----------------------------------------------------------------------------------------


def test_metrics_html_shows_the_change_from_the_baseline():
    base = Metrics(accuracy=0.9533, loss=0.2012, num_samples=600)
    m = Metrics(accuracy=0.9117, loss=0.3124, num_samples=600, device="CPU", seconds=0.25, baseline=base)
    c = parse(m._repr_html_())
    assert row_of(c, "Accuracy") == ["Accuracy", pct(0.9117), pct(0.9533), pp(100 * (0.9117 - 0.9533))]
    assert row_of(c, "Loss") == ["Loss", "0.3124", "0.2012", f"+{0.3124 - 0.2012:.3g}"]
    assert "600 samples" in m._repr_html_()
    alone = parse(base._repr_html_())
    assert row_of(alone, "Accuracy") == ["Accuracy", pct(0.9533)]
    # the new field is pickled over the engine's pipe with the rest
    assert pickle.loads(pickle.dumps(m)) == m and Metrics(0.5, 1.0).baseline is None


def test_metrics_html_without_labels_shows_agreement():
    m = Metrics(accuracy=math.nan, loss=math.nan, labels=False, agreement=0.875,
                baseline=Metrics(accuracy=math.nan, loss=math.nan, labels=False, agreement=1.0))
    c = parse(m._repr_html_())
    assert row_of(c, "Agreement") == ["Agreement", pct(0.875), pct(1.0), pp(-12.5)]
    assert not [r for r in c.rows if r and r[0] == "Accuracy"]


# -- diffs ------------------------------------------------------------------------------------------


def test_model_diff_sequence_changed_and_dataframe():
    rng = np.random.default_rng(1)
    a = {"x/k": rng.normal(size=(5, 5)), "y/k": rng.normal(size=(3,)), "z/k": rng.normal(size=(2, 2))}
    b = dict(a, **{"x/k": a["x/k"] * 1.5, "z/k": a["z/k"].copy()})
    b["z/k"][0, 0] = 9.0
    d = model_diff(list(a), a.__getitem__, b.__getitem__, "before", "after")
    assert len(d) == 3 and d.names() == ["x/k", "y/k", "z/k"]
    assert d[0] == tensor_diff("x/k", a["x/k"], b["x/k"]) and d.get("y/k").changed == 0
    assert [t.name for t in d.changed()] == ["x/k", "z/k"] and d.changed().a_label == "before"
    assert isinstance(d[1:], ModelDiff) and len(d[1:]) == 2
    df = d.to_dataframe()
    assert list(df.columns) == ["name", "changed", "size", "fraction_changed", "relative_l2", "max_abs"]
    assert df["relative_l2"].tolist() == [t.relative_l2 for t in d]
    assert "2 of 3 tensors" in repr(d)
    with pytest.raises(WeightLabError, match="'y/k'.*before.*after"):
        model_diff(["y/k"], a.__getitem__, lambda n: np.zeros(4), "before", "after")


def test_diff_html_largest_change_first_and_escaped():
    diffs = [TensorDiff("a/k", 2, 10, 0.1, 0.5), TensorDiff(f"{EVIL}/k", 10, 10, 0.8, 2.0),
             TensorDiff("same/k", 0, 4, 0.0, 0.0)]
    html = ModelDiff(diffs, "<b>file</b>", "edited")._repr_html_()
    c = parse(html)
    assert EVIL not in html and "<b>file</b>" not in html and "&lt;b&gt;file&lt;/b&gt;" in html
    names = [r[0] for r in c.rows[1:] if r]
    assert names == [f"{EVIL}/k", "a/k"]
    assert row_of(c, "a/k")[1:4] == ["2 of 10", pct(0.2, 1), pct(0.1)]
    assert "1 unchanged" in html and "2 of 3 tensors changed" in html


# -- job results ------------------------------------------------------------------------------------


def sweep_result(targets=("a/kernel", "b/kernel")) -> SweepResult:
    spec = SweepSpec(op="prune_magnitude", param="sparsity", targets=tuple(targets), values=(0.5, 0.8, 0.9),
                     mode="each", budget_pp=2.0)
    base = SweepPoint("", None, 0.95, 0.2, num_samples=400)
    pts = [SweepPoint(t, v, 0.95 - (i + 1) * v * 0.05, 0.3, num_samples=400)
           for i, t in enumerate(targets) for v in (0.5, 0.8, 0.9)]
    return SweepResult(spec, base, pts)


def test_sweep_html_and_svg():
    r = sweep_result(("a/kernel", f"{EVIL}/kernel"))
    html = r._repr_html_()
    c = parse(html)
    assert EVIL not in html and pct(0.95) in html
    row = row_of(c, "a/kernel")
    worst = 100 * (0.95 - (0.95 - 0.9 * 0.05))
    assert row[1] == "3" and row[2] == pp(-worst)
    th = r.threshold("a/kernel", 2.0)
    assert row[3] == ("within budget" if th is None else f"{th:.4g}")
    svg = ET.fromstring(r._repr_svg_())
    ns = "{http://www.w3.org/2000/svg}"
    series = [g for g in svg.iter(f"{ns}g") if g.get("data-series")]
    assert [g.get("data-series") for g in series] == r.targets()
    assert all(len(g.findall(f"{ns}circle")) == 3 for g in series)
    assert "currentColor" not in r._repr_svg_()  # shown as an image: a fixed grey ink
    legend = [t.text for g in svg.iter(f"{ns}g") if g.get("data-legend") for t in g.iter(f"{ns}text")]
    short = [t if len(t) <= 30 else t[:29] + "…" for t in r.targets()]  # long names shortened in the legend
    assert legend == [*short, f"baseline {pct(0.95)}", "budget \u22122 pp"]
    # y pixels fall as accuracy falls (a curve goes down with stronger pruning)
    ys = [float(cc.get("cy")) for cc in series[0].findall(f"{ns}circle")]
    assert ys == sorted(ys)


def test_sweep_svg_log_scale_and_empty():
    spec = SweepSpec(op="clip", param="threshold", targets=("a/kernel",), values=(1.0, 0.1, 0.01), scale="log")
    r = SweepResult(spec, SweepPoint("", None, 0.9, 0.2), [])
    assert "no points" in r._repr_svg_()
    parse(r._repr_html_())
    r.points = [SweepPoint("a/kernel", v, 0.9 - 0.1 * i, 0.3) for i, v in enumerate((1.0, 0.1, 0.01))]
    ns = "{http://www.w3.org/2000/svg}"
    xs = [float(cc.get("cx")) for cc in ET.fromstring(r._repr_svg_()).iter(f"{ns}circle")]
    assert abs((xs[0] - xs[1]) - (xs[1] - xs[2])) < 0.2  # evenly spaced decades


def test_rank_html_and_bars():
    spec = RankSpec(layer="dense", cumulative=False)
    base = SweepPoint("", None, 0.9, 0.3, num_samples=100)
    accs = [0.85, 0.9, 0.92, 0.7]
    r = RankResult.from_points(spec, base, [SweepPoint("dense", float(i), a, 0.3 + 0.01 * i) for i, a in enumerate(accs)])
    c = parse(r._repr_html_())
    assert row_of(c, "3") == ["3", pct(0.7), pp(100 * (0.7 - 0.9)), f"+{0.03:.3g}"]
    assert "Removing 1 unit raised accuracy: 2" in r._repr_html_()
    svg = ET.fromstring(r._repr_svg_())
    ns = "{http://www.w3.org/2000/svg}"
    bars = [rect for g in svg.iter(f"{ns}g") if g.get("data-bars") for rect in g.findall(f"{ns}rect")]
    assert [b.find(f"{ns}title").text.split(":")[0] for b in bars] == ["unit 3", "unit 0", "unit 1", "unit 2"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == max(heights)


def test_plan_html():
    r = sweep_result()
    p = make_plan(r, 2.0)
    c = parse(p._repr_html_())
    for ch in p.choices:
        row = row_of(c, ch.target)
        assert row[2] == ("–" if ch.single_drop_pp is None else pp(-ch.single_drop_pp))
    assert "not measured yet" in p._repr_html_()
    ET.fromstring(p._repr_svg_())


def test_finetune_and_prune_retrain_html():
    hist = [EpochRecord(epoch=e, loss=1.0 / e, accuracy=0.5 + 0.1 * e, val_loss=1.2 / e, val_accuracy=0.45 + 0.1 * e,
                        lr=1e-3) for e in (1, 2, 3)]
    ft = FinetuneResult(history=hist, best_epoch=2, final={"accuracy": 0.9321, "loss": 0.25}, arrays={},
                        label=f"fine-tune {EVIL}", stopped_early=True)
    html = ft._repr_html_()
    c = parse(html)
    assert EVIL not in html and f"held-out accuracy {pct(0.9321)}" in html and "stopped early" in html
    assert row_of(c, "2 ★")[2] == pct(0.7)
    svg = ET.fromstring(ft._repr_svg_())
    ns = "{http://www.w3.org/2000/svg}"
    assert {g.get("data-series") for g in svg.iter(f"{ns}g") if g.get("data-series")} == {"train", "validation"}
    texts = [t.text for t in svg.iter(f"{ns}text")]
    assert texts.count("epoch") == 2 and all(texts.count(str(e)) >= 2 for e in (1, 2, 3))  # whole epochs, both panels
    assert "1.5" not in texts

    rounds = [RoundRecord(1, 0.5, 0.94, 0.2), RoundRecord(2, 0.8, 0.93, 0.25), RoundRecord(3, 0.95, 0.80, 0.9,
                                                                                         kept=False)]
    pr = PruneRetrainResult(rounds=rounds, baseline={"accuracy": 0.95, "loss": 0.2}, arrays={}, label="prune",
                            stopped="round 3 past the budget")
    c = parse(pr._repr_html_())
    assert row_of(c, "3") == ["3", pct(0.95, 1), pct(0.80), pp(100 * (0.80 - 0.95)), "0.9", "no (past the budget)"]
    assert "kept round 2" in pr._repr_html_()
    circles = ET.fromstring(pr._repr_svg_()).iter(f"{ns}circle")
    assert [cc.get("fill") for cc in circles][-1] == "none"  # the round not kept is hollow


# -- matplotlib ---------------------------------------------------------------------------------------


def test_plot_each_result_with_matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from weightlab.plotting import plot

    r = sweep_result()
    rank = RankResult.from_points(RankSpec(layer="d", cumulative=False), SweepPoint("", None, 0.9, 0.3),
                                  [SweepPoint("d", float(i), 0.9 - 0.01 * i, 0.3) for i in range(4)])
    ft = FinetuneResult(history=[EpochRecord(epoch=e, loss=1.0 / e, accuracy=0.5) for e in (1, 2)], best_epoch=None,
                        final=None, arrays={}, label="ft")
    pr = PruneRetrainResult(rounds=[RoundRecord(1, 0.5, 0.9)], baseline={"accuracy": 0.95}, arrays={}, label="pr")
    try:
        fig = plot(r)
        lines = fig.axes[0].get_lines()
        assert len(lines) == 3  # two targets and the baseline
        assert np.allclose(lines[0].get_ydata(), 100 * r.curve("a/kernel")[1])
        assert len(plot(rank).axes[0].patches) == 4
        assert len(plot(ft).axes) == 2
        _, ax = plt.subplots()
        assert plot(pr, ax=ax) is ax.figure
        assert plot(make_plan(r, 2.0)).axes
        with pytest.raises(TypeError, match="SweepResult"):
            plot(object())
    finally:
        plt.close("all")


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    from weightlab import plotting

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plotting.plot(sweep_result())


def test_ipython_picks_up_every_rich_display(session):
    """What Jupyter calls: IPython's display formatter finds HTML for every object, and SVG for the results."""
    formatters = pytest.importorskip("IPython.core.formatters")
    fmt = formatters.DisplayFormatter()
    r = sweep_result()
    rank = RankResult.from_points(RankSpec(layer="d", cumulative=False), SweepPoint("", None, 0.9, 0.3),
                                  [SweepPoint("d", 0.0, 0.8, 0.3)])
    ft = FinetuneResult(history=[EpochRecord(epoch=1, loss=0.5)], best_epoch=None, final=None, arrays={}, label="ft")
    pr = PruneRetrainResult(rounds=[RoundRecord(1, 0.5, 0.9)], baseline=None, arrays={}, label="pr")
    d = model_diff(["dense/bias"], session.original, session.array, "original", "current")
    for obj in (Metrics(0.5, 1.0), d):
        data, _ = fmt.format(obj)
        parse(data["text/html"])
    for obj in (r, rank, make_plan(r, 2.0), ft, pr):
        data, _ = fmt.format(obj)
        parse(data["text/html"])
        ET.fromstring(data["image/svg+xml"])
    # every session (the window's too) shows as the session table
    html = fmt.format(session)[0]["text/html"]
    parse(html)
    assert html == richdisplay.session_html(session)
    # session.diff() is a ModelDiff: shown as the diff table
    session.apply(Scale(target="dense/bias", factor=2.0))
    html = fmt.format(session.diff())[0]["text/html"]
    assert row_of(parse(html), "dense/bias")[1] == "2 of 4"  # the two zeros stay zero

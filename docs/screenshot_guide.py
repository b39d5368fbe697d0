"""Make the user guide's pictures (``docs/guide/img/*.png``): every window feature on the bundled demo.

::

    QT_QPA_PLATFORM=offscreen python docs/screenshot_guide.py [OUT_DIR] [--only NAME[,NAME...]]

Drives the real window (light theme, 1400x900, the real engine) over the
bundled demo and its held-out set as a user would, through the window's own
code paths, and saves one picture per feature: the whole window where the
whole is readable, else the relevant part (``QWidget.grab()`` of the panel,
or a rectangle of the window around several panels). Panels that 1400x900
squeezes (the edit panel's longer forms, the history) are pictured in a
1400x1100 window, the analysis tabs (Sweeps, Ranking, Training) in a
1640x1160 one with the splitters dragged their way. Popups and dialogs (the
jobs list, the File menu, the restore question) are painted onto the window
where a user sees them. :data:`PICTURES` lists the names with what each
shows; ``--only`` saves some of them (the tour still runs whole). Under
``QT_QPA_PLATFORM=offscreen`` the platform gets a 1920x1200 screen.

Settings and edit journals go to temporary folders (``WEIGHTLAB_CONFIG_DIR``,
``WEIGHTLAB_STATE_DIR``), removed at the end; the user's own are not touched.
Pictures over :data:`MAX_BYTES` are saved with a 256-colour palette (screenshots
have few colours; the result looks the same).

Waiting is on the window's own state (the :class:`Tour` of
``docs/screenshot_training.py``), never on fixed sleeps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The picture's name (without .png) -> what it shows (for the guide's author).
PICTURES: dict[str, str] = {
    "window": "the whole window on the demo: tree, histogram, heatmap, norms, edit panel, history, evaluation",
    "model-tree": "the model tree with the model summary line, an edited tensor marked",
    "histogram-brush": "dense/kernel's histogram with a brushed range and the exact count inside it",
    "histogram-clipped": "the same histogram after Clip to range: the original as a grey ghost",
    "heatmap": "conv2d_1/kernel's heatmap: 3x3 blocks, one column of blocks per output filter",
    "neuron-norms": "dense/kernel's heatmap and L2 norm per neuron with 5 neurons selected",
    "edit-panel": "the edit panel's Operation tab: Prune by magnitude on the glob */kernel (live count)",
    "edit-panel-brush": "the edit panel's Brush & neurons tab: the brushed range and the selected neurons",
    "history": "the history list: four steps, one switched off (unticked)",
    "diff": "the Diff vs original tab after zeroing neurons of dense",
    "evaluation": "the held-out evaluation panel: baseline vs edited accuracy/loss, accuracy per step, per class",
    "compare": "File > Compare with...: every tensor's relative change against a fine-tuned copy",
    "jobs": "the jobs in the status bar while a sweep runs, with the list of all jobs opened",
    "sweeps": "the Sweeps tab: an 'each' pruning sweep over */kernel with curves, bands and the plan",
    "sensitivity-tree": "the model tree coloured by each layer's sensitivity after the 'each' sweep",
    "ranking": "the Ranking tab: dense's 64 neurons ranked by accuracy drop, the top 3 selected",
    "training": "the Training tab after a 3-epoch fine-tune: curves, held-out accuracy, watched histogram",
    "recipe-menu": "the File menu with Export recipe... and Apply recipe...",
    "recipe-applied": "the history after applying an exported recipe to the fresh demo: one step per edit",
    "journal-restore": "the start-up question after a crash: restore the unsaved edits?",
    "shortcuts": "Help > Keyboard Shortcuts: every key, filtered as you type",
}
#: Pictures larger than this are saved with a 256-colour palette.
MAX_BYTES = 240_000
SIZE = (1400, 900)
#: The window for panels that need more height than 1400x900 gives them, and for the analysis tabs.
TALL, WIDE = (1400, 1100), (1640, 1160)


def save_png(image: Any, out: Path) -> Path:
    """Save a ``QImage``/``QPixmap`` as PNG, palette-quantised when the full-colour file is over :data:`MAX_BYTES`."""
    from PIL import Image

    image.save(str(out), "PNG")
    if out.stat().st_size > MAX_BYTES:
        with Image.open(out) as im:
            q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        q.save(out, optimize=True)
    return out


class Guide:
    """The pictures of :data:`PICTURES`, taken in one tour of the demo."""

    def __init__(self, out: Path, only: set[str] | None = None) -> None:
        sys.path.insert(0, str(HERE))
        from screenshot_training import Tour

        self.out = out
        self.only = only
        self.tour = Tour(SIZE)
        self.w = self.tour.w
        self.app = self.tour.app
        self.tmp = Path(tempfile.mkdtemp(prefix="weightlab-guide-"))
        self.saved: list[Path] = []
        self.tour.set_theme("light")

    # -- taking pictures ----------------------------------------------------------------------
    def wanted(self, name: str) -> bool:
        return self.only is None or name in self.only

    def save(self, name: str, image: Any) -> None:
        if name not in PICTURES:
            raise SystemExit(f"{name}: not in PICTURES")
        if not self.wanted(name):
            return
        path = save_png(image, self.out / f"{name}.png")
        self.saved.append(path)
        print(f"{path}: {image.width()}x{image.height()}, {path.stat().st_size // 1024} KB", flush=True)

    def shot(self, name: str, *widgets: Any, margin: int = 2) -> None:
        """Save the window (no widgets), one widget's own grab, or the window's rectangle around several."""
        self.tour.settle()
        if not widgets:
            self.save(name, self.w.grab())
        elif len(widgets) == 1:
            self.save(name, widgets[0].grab())
        else:
            self.save(name, self.w.grab(self.region(*widgets, margin=margin)))

    def region(self, *widgets: Any, margin: int = 2) -> Any:
        from PySide6.QtCore import QPoint, QRect

        rect = QRect()
        for wd in widgets:
            rect = rect.united(QRect(wd.mapTo(self.w, QPoint(0, 0)), wd.size()))
        return rect.adjusted(-margin, -margin, margin, margin).intersected(self.w.rect())

    def composite(self, base: Any, layers: list[tuple[Any, Any]]) -> Any:
        """``base`` (a pixmap) with each ``(pixmap, QPoint)`` painted over it, a thin frame around each."""
        from PySide6.QtGui import QColor, QPainter, QPen

        img = base.copy()
        p = QPainter(img)
        for pix, at in layers:
            p.drawPixmap(at, pix)
            p.setPen(QPen(QColor("#777777"), 1))
            p.drawRect(at.x(), at.y(), pix.width() - 1, pix.height() - 1)
        p.end()
        return img

    def wait(self, done: Callable[[], bool], what: str, timeout: float = 600.0) -> None:
        self.tour.wait(done, what, timeout)

    def centre_sizes(self, top: float, mid: float) -> None:
        """Share the centre column: ``top`` of its height to the histogram, ``mid`` to the tabs, the rest to the norms."""
        centre = self.w.splitters[1]
        h = sum(centre.sizes())
        centre.setSizes([int(h * top), int(h * mid), h - int(h * top) - int(h * mid)])

    def right_sizes(self, edit: int | None, history: int) -> None:
        right = self.w.splitters[2]
        h = sum(right.sizes())
        e = edit if edit is not None else self.w.edit_panel.sizeHint().height()
        right.setSizes([e, history, h - e - history])

    # -- the tour -----------------------------------------------------------------------------
    def run(self) -> None:
        """The whole tour; each part leaves the window as the next expects it."""
        self.journal_restore()  # at start-up, before any model is open
        self.tour.open_demo()
        self.hand_edits()
        self.recipes()
        self.w.set_session(None)  # a fresh demo for the analyses (no unsaved-edits question)
        self.tour.open_demo()
        self.wide_centre(True)
        self.sweeps()
        self.ranking()
        self.training()
        self.wide_centre(False)
        self.compare()

    def resize(self, size: tuple[int, int]) -> None:
        self.w.resize(*size)
        self.tour.settle()

    def wide_centre(self, wide: bool) -> None:
        """A larger window whose centre tabs get the room (as a user drags the splitters), or back to normal.

        The analysis tabs (Sweeps, Ranking, Training) are pictured at about their own preferred size.
        """
        self.resize(WIDE if wide else SIZE)
        main = self.w.splitters[0]
        left, right = (260, 390) if wide else (450, 390)
        main.setSizes([left, self.w.width() - left - right, right])
        self.centre_sizes(0.06, 0.88) if wide else self.centre_sizes(0.34, 0.42)
        self.tour.settle()

    def journal_restore(self) -> None:
        """A session killed with unsaved edits (its journal as it left it), then the window's restore offer."""
        if not self.wanted("journal-restore"):
            return
        from PySide6.QtCore import QPoint, QTimer
        from PySide6.QtWidgets import QApplication, QMessageBox

        import weightlab
        from weightlab.core.edits import Clip, ZeroNeurons
        from weightlab.core.journal import SessionJournal, journal_dir
        from weightlab.demo import MODEL_KERAS

        w = self.w
        s = weightlab.open(MODEL_KERAS)
        live = SessionJournal(self.tmp / "live-journal")
        try:
            live.attach(s)
            s.apply_all([Clip(target="dense/kernel", min=-0.1, max=0.1), ZeroNeurons(target="dense", neurons=(3, 17))])
            live.wait_hashed(60)
            folder = journal_dir()
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(live.path, folder / live.path.name)  # what a killed window leaves: unlocked
        finally:
            live.close()
            s.model.close()
        shots: list[Any] = []

        def answer() -> None:  # the question is modal: picture it, then answer "Later"
            box = QApplication.activeModalWidget()
            if not isinstance(box, QMessageBox):
                QTimer.singleShot(50, answer)
                return
            for _ in range(20):
                QApplication.processEvents()
            shots.append((box.grab(), box.size()))
            next(b for b in box.buttons() if b.text() == "Later").click()

        self.tour.settle()
        QTimer.singleShot(0, answer)
        w.journal.offer()
        if not shots:
            raise SystemExit("the restore question was not asked")
        pix, size = shots[0]
        at = QPoint((w.width() - size.width()) // 2, (w.height() - size.height()) // 3)
        self.save("journal-restore", self.composite(w.grab(), [(pix, at)]))
        for cand in w.journal.pending():
            cand.discard()

    def hand_edits(self) -> None:
        """Neurons ablated, a conv kernel clipped on its brushed range, a pruning switched off: the window's basics."""
        from weightlab.core.edits import Clip

        w, tour = self.w, self.tour
        self.centre_sizes(0.34, 0.42)
        # neurons selected on the heatmap / norms, zeroed from the Brush & neurons tab
        w.tree.select("dense/kernel")
        self.wait(lambda: w.view_settled, "dense/kernel")
        w.selection.set_neurons([3, 17, 18, 40, 52])
        self.shot("neuron-norms", w.views, w.norms)
        w.edit_panel.tabs.setCurrentIndex(1)
        w.histogram.set_range(-0.05, 0.05)
        self.wait(lambda: "values" in w.histogram.range_label.text(), "the brushed count")
        self.shot("edit-panel-brush", w.edit_panel)
        w.histogram.clear_range()
        w.edit_panel.zero_neurons_btn.click()
        tour.wait_live("zero neurons")
        w.views.setCurrentWidget(w.diff_view)
        self.wait(lambda: w.view_settled, "the diff")
        self.shot("diff", w.views)
        w.views.setCurrentWidget(w.heatmap)
        w.selection.clear()

        # a conv kernel: its heatmap, its histogram brushed, clipped to the range
        w.tree.select("conv2d_1/kernel")
        self.wait(lambda: w.view_settled, "conv2d_1/kernel")
        self.shot("heatmap", w.views)
        w.histogram.set_range(-0.12, 0.12)
        self.wait(lambda: "values" in w.histogram.range_label.text(), "the brushed count")
        self.shot("histogram-brush", w.histogram)
        w.edit_panel.clip_btn.click()
        tour.wait_live("the clip")
        self.shot("histogram-clipped", w.histogram)
        w.histogram.clear_range()

        # the Operation tab: magnitude pruning on a glob (the panel says what it acts on), applied
        p = w.edit_panel
        p.tabs.setCurrentIndex(0)
        p.set_target_mode("glob", "*/kernel")
        p.select_op("prune_magnitude")
        p.form.set_values({"sparsity": 0.6})
        # At 1400x900 the evaluation panel's minimum height leaves this form squeezed (reported):
        # the panel is pictured in a taller window, at its own height.
        self.resize(TALL)
        self.right_sizes(None, 150)
        self.shot("edit-panel", p)
        self.resize(SIZE)
        p.apply_op()
        tour.wait_live("the pruning")
        if not w.apply_edit(Clip(target="conv2d/kernel", min=-0.3, max=0.3)):
            raise SystemExit("the clip was refused")
        tour.wait_live("the conv clip")
        w.set_step_enabled(2, False)  # the pruning (third step) switched off: replayed without it
        tour.wait_live("a step switched off")
        p.set_target_mode("tree")
        p.select_op("clip")

        w.tree.select("conv2d_1/kernel")
        self.wait(lambda: w.view_settled, "conv2d_1/kernel")
        w.histogram.set_range(-0.05, 0.05)
        self.wait(lambda: "values" in w.histogram.range_label.text(), "the brushed count")
        self.resize(TALL)  # room for every history row
        self.right_sizes(None, 150)
        self.shot("history", w.history)
        self.shot("evaluation", w.eval_panel)
        self.resize(SIZE)
        self.right_sizes(None, 110)  # as the window lays itself out when shown
        self.shot_tree("model-tree")
        self.shot("window")
        w.histogram.clear_range()
        self.shortcuts()

    def shot_tree(self, name: str) -> None:
        """The model tree down to its last row (the empty rest of the pane left out)."""
        from PySide6.QtCore import QPoint

        self.tour.settle()
        t = self.w.tree
        view = t.tree
        last = view.topLevelItem(view.topLevelItemCount() - 1)
        while last.childCount() and last.isExpanded():
            last = last.child(last.childCount() - 1)
        bottom = view.viewport().mapTo(t, QPoint(0, view.visualItemRect(last).bottom())).y()
        self.save(name, t.grab().copy(0, 0, t.width(), min(t.height(), bottom + 12)))

    def shortcuts(self) -> None:
        if not self.wanted("shortcuts"):
            return
        dialog = self.w.show_shortcuts()
        self.tour.settle()
        self.save("shortcuts", dialog.grab())
        dialog.close()

    def recipes(self) -> None:
        """Export the hand edits as a recipe (the File menu pictured), apply it to the fresh demo."""
        w, tour = self.w, self.tour
        recipe = self.tmp / "digits-edits.json"
        w._ask_save_path = lambda *_a: str(recipe)
        if not w.export_recipe():
            raise SystemExit("Export recipe failed")
        bar = w.menuBar()
        file_action = bar.actions()[0]
        menu = file_action.menu()
        bar.setActiveAction(file_action)
        tour.settle()
        if menu.isVisible():
            export = next(a for a in menu.actions() if a.text().replace("&", "").startswith("Export recipe"))
            menu.setActiveAction(export)
            tour.settle()
            at = bar.mapTo(w, bar.actionGeometry(file_action).bottomLeft())
            img = self.composite(w.grab(), [(menu.grab(), at)])
            self.save("recipe-menu", img.copy(0, 0, min(w.width(), at.x() + menu.width() + 260),
                                             min(w.height(), at.y() + menu.height() + 16)))
        else:
            print("recipe-menu: the File menu did not open; no picture", flush=True)
        menu.hide()
        bar.setActiveAction(None)
        w.set_session(None)  # the edits are in the recipe
        tour.open_demo()
        if not w.apply_recipe(recipe):
            raise SystemExit("Apply recipe failed")
        tour.wait_live("the recipe")
        self.right_sizes(None, 130)
        self.shot("recipe-applied", w.history, w.eval_panel)

    def sweeps(self) -> None:
        w, tour = self.w, self.tour
        ctl = w.sweeps
        panel = ctl.panel
        w.tree.select("dense/kernel")
        self.wait(lambda: w.view_settled, "dense/kernel")
        w.views.setCurrentWidget(panel)
        panel.op_combo.setCurrentIndex(panel.op_combo.findData("prune_magnitude"))
        panel.param_combo.setCurrentIndex(panel.param_combo.findData("sparsity"))
        panel.values_kind.setCurrentIndex(panel.values_kind.findData("range"))
        panel.values_edit.setText("0.1:0.9:0.1")
        panel.target_kind.setCurrentIndex(panel.target_kind.findData("glob"))
        panel.target_edit.setText("*/kernel")
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("each"))
        panel.budget_spin.setValue(1.0)
        if ctl.run() is None:
            raise SystemExit(f"the sweep did not start: {panel.message.text()}")
        self.wait(lambda: not ctl.running, "the sweep")
        ctl.make_plan()
        ctl.apply_plan()
        self.wait(lambda: not w.busy, "the plan")
        self.wait(lambda: "real drop <b>" in panel.plan_label.text(), "the plan's evaluation")
        w.views.setCurrentWidget(panel)
        self.shot("sweeps", w.views)
        self.wide_centre(False)
        w.tree.select("dense/bias")  # no swept row selected: each shows its colour
        self.wait(lambda: w.view_settled, "dense/bias")
        self.shot_tree("sensitivity-tree")
        self.wide_centre(True)
        # A fresh demo for the ranking: after going back to the unedited state (history row 0) the
        # engine worker keeps the plan's weights and a ranking would rank those (reported).
        w.set_session(None)
        tour.open_demo()
        self.wide_centre(True)

    def ranking(self) -> None:
        w = self.w
        ctl = w.ranking
        view = ctl.view
        w.show_tensor("dense/kernel")
        self.wait(lambda: w.view_settled, "dense/kernel")
        w.views.setCurrentWidget(view)
        view.choose_layer("dense")
        if ctl.rank() is None:
            raise SystemExit(f"the ranking did not start: {view.status.text()}")
        self.wait(lambda: ctl.job is None, "the ranking")
        view.top_k.setValue(3)
        view.select_top_button.click()
        self.shot("ranking", w.views)
        w.selection.clear()

    def training(self) -> None:
        """80 % pruned, then fine-tuned with the masks kept; the jobs list pictured while it trains."""
        w, tour = self.w, self.tour
        ctl = w.training
        tour.prune(0.8)
        tour.form(epochs=10)
        w.tree.select("dense/kernel")
        self.wait(lambda: w.view_settled, "dense/kernel")
        w.views.setCurrentWidget(ctl.panel)
        position = w.session.position
        if ctl.start() is None:
            raise SystemExit(f"training did not start: {ctl.panel.message.text()}")
        self.jobs(lambda: ctl.running)
        self.wait(lambda: not ctl.running, "the training job")
        if ctl.result is None:
            raise SystemExit(f"training gave no result: {ctl.panel.message.text()}")
        self.wait(lambda: ctl.step is not None and w.session.position == position + 1, "the training step")
        tour.wait_live("the training")
        self.wait(lambda: ctl.savings is not None, "what it bought")
        self.shot("training", w.views)

    def jobs(self, running: Callable[[], bool]) -> None:
        """While a job runs and shows its progress in the status bar: the bar with the list of all jobs opened."""
        from PySide6.QtCore import QPoint

        w = self.w
        status = w.jobs.status
        self.wait(lambda: not running() or (status.current is not None and (status.current.fraction or 0) > 0.2),
                  "the job's progress in the status bar")
        if not running():
            print("jobs: the job ended before its progress showed; no picture", flush=True)
            return
        status.toggle_popup()
        for _ in range(50):
            self.app.processEvents()
        pop = status.popup.grab()
        base = w.grab()
        status.popup.hide()
        corner = status.mapTo(w, QPoint(status.width(), 0))
        at = QPoint(max(0, corner.x() - pop.width()), corner.y() - pop.height() - 2)
        top = max(0, at.y() - 12)
        width = min(w.width(), pop.width() + 80)
        self.save("jobs", self.composite(base, [(pop, at)]).copy(w.width() - width, top, width, w.height() - top))

    def compare(self) -> None:
        """The pruned and fine-tuned demo saved by Save As, compared with the file as stored."""
        w, tour = self.w, self.tour
        other = self.tmp / "digits_cnn_finetuned.keras"
        w._ask_save_path = lambda *_a: str(other)
        if not w.save_as():
            raise SystemExit("Save As failed")
        if not w.compare_with(other):
            raise SystemExit("compare did not start")
        self.wait(lambda: w.compare_dialog is not None and w.compare_dialog.isVisible(), "the comparison")
        dialog = w.compare_dialog
        dialog.resize(1100, 720)
        dialog.table.selectRow(dialog.row_names().index("dense/kernel"))
        tour.settle()
        self.save("compare", dialog.grab())
        dialog.close()

    def close(self) -> None:
        self.tour.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def desktop_sized_offscreen(folder: Path) -> None:
    """Under Qt's offscreen platform, give it a 1920x1200 screen (its default is 800x800).

    Dialogs size themselves from the screen (the shortcuts list, popups placed
    inside it): on the default screen they come out smaller than on a desktop.
    The platform reads the screen from a JSON file named in ``QT_QPA_PLATFORM``.
    """
    import json

    if os.environ.get("QT_QPA_PLATFORM", "") != "offscreen":
        return
    config = folder / "offscreen.json"
    screen = {"name": "guide", "x": 0, "y": 0, "width": 1920, "height": 1200, "logicalDpi": 96, "dpr": 1}
    config.write_text(json.dumps({"screens": [screen]}), encoding="utf-8")
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=str(HERE / "guide" / "img"), help="folder for the pictures")
    ap.add_argument("--only", default=None, help="comma-separated picture names (default: all)")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - set(PICTURES)
    if unknown:
        raise SystemExit(f"unknown pictures {sorted(unknown)}: one of {', '.join(PICTURES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = {}
    for var, prefix in (("WEIGHTLAB_CONFIG_DIR", "weightlab-guide-config-"), ("WEIGHTLAB_STATE_DIR", "weightlab-guide-state-")):
        folders[var] = tempfile.mkdtemp(prefix=prefix)
        os.environ[var] = folders[var]
    desktop_sized_offscreen(Path(folders["WEIGHTLAB_CONFIG_DIR"]))
    t = time.monotonic()
    guide = Guide(out, only)
    try:
        guide.run()
    finally:
        guide.close()
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{len(guide.saved)} pictures in {time.monotonic() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()

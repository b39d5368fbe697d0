"""Make ``docs/training.png``: the Training tab on the demo, 80 % pruned, then fine-tuned with masks kept.

::

    QT_QPA_PLATFORM=offscreen python docs/screenshot_training.py [OUT.png]
    QT_QPA_PLATFORM=offscreen python docs/screenshot_training.py OUT_DIR --scenario all --sizes 1024x640,1920x1080 --themes light,dark

Opens the bundled demo with its held-out set, prunes 80 % of every kernel
(one ``prune_magnitude`` step over ``*/kernel``, through the window's own edit
path), waits for the live accuracy of the pruned model, then in the Training
tab trains on ``weightlab/resources/demo/digits_train.npz`` (validation: the last 10 %,
5 epochs, seed 0, masks kept, watching ``dense/kernel``) in the real engine,
waits until the result has landed as one history step and its live
evaluation is shown, drags the splitter above the tabs so that they get about
half the centre's height, and saves ``window.grab()`` (1920x1080 by default).

With ``--scenario`` it also walks the rest of issue 12's "Done when" (three
prune-and-retrain rounds, a gradual-pruning run, L1 then L2 on the unpruned
demo) and saves one picture per scenario, size and theme into ``OUT_DIR``.
There is no dark mode in the app: ``dark`` sets Qt's Fusion style with a dark
``QPalette`` and the platform's dark colour scheme hint; what does not follow
it shows in the pictures.

Waiting is on the window's own state (no fixed sleeps), with generous
timeouts: training on two shared CPU cores takes tens of seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SCENARIOS = ("finetune", "prune_retrain", "gradual", "l1l2")


def _dark_palette() -> Any:
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    for r, c in ((role.Window, "#2b2b2b"), (role.WindowText, "#e6e6e6"), (role.Base, "#1e1e1e"),
                 (role.AlternateBase, "#2f2f2f"), (role.ToolTipBase, "#3a3a3a"), (role.ToolTipText, "#e6e6e6"),
                 (role.Text, "#e6e6e6"), (role.Button, "#353535"), (role.ButtonText, "#e6e6e6"),
                 (role.BrightText, "#ff6b6b"), (role.Link, "#6cb4ff"), (role.Highlight, "#2f6fb0"),
                 (role.HighlightedText, "#ffffff"), (role.PlaceholderText, "#8c8c8c"), (role.Mid, "#444444"),
                 (role.Dark, "#1a1a1a"), (role.Light, "#4a4a4a"), (role.Midlight, "#3d3d3d"),
                 (role.Shadow, "#000000")):
        p.setColor(r, QColor(c))
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(group.Disabled, r, QColor("#7a7a7a"))
    return p


class Tour:
    """The real window, offscreen, driven as a user would; waits on the window's own state."""

    def __init__(self, size: tuple[int, int] = (1920, 1080)) -> None:
        import pyqtgraph as pg
        from PySide6.QtWidgets import QApplication

        from weightlab.gui.main_window import MainWindow

        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
        self.w = MainWindow()
        self.w.resize(*size)
        self.w.show()
        self.timings: dict[str, float] = {}

    # -- waiting ------------------------------------------------------------------------------
    def wait(self, done: Any, what: str, timeout: float = 600.0) -> None:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")
            self.app.processEvents()
            time.sleep(0.005)  # a poll interval, not a wait for anything: lets the engine's threads run

    def settle(self) -> None:
        """Let the last repaints land: process events until none are pending twice in a row."""
        for _ in range(50):
            self.app.processEvents()
        self.wait(lambda: not self.w.busy, "the window to be idle")
        for _ in range(50):
            self.app.processEvents()

    def wait_live(self, what: str) -> None:
        """The live evaluation of the current step is shown."""
        w = self.w
        self.wait(lambda: not w.busy, f"{what}: the edit")
        pos = w.session.position
        self.wait(lambda: pos in w.eval_panel._by_step and w.eval_panel.settled, f"{what}: its live evaluation")

    # -- steps --------------------------------------------------------------------------------
    def open_demo(self) -> None:
        from weightlab.demo import HELDOUT, MODEL_KERAS

        w = self.w
        t = time.monotonic()
        w.open_path(MODEL_KERAS, HELDOUT)
        self.wait(lambda: w.eval_panel.settled and w.eval_panel.baseline is not None, "the baseline")
        self.timings["open + baseline"] = time.monotonic() - t

    def prune(self, sparsity: float = 0.8) -> None:
        from weightlab.core.edits import PruneMagnitude

        if not self.w.apply_edit(PruneMagnitude(target="*/kernel", sparsity=sparsity)):
            raise SystemExit("the pruning step was refused")
        self.wait_live("the pruning")

    def form(self, *, epochs: int = 5, mode: str = "finetune", l1: str = "0", l2: str = "0") -> Any:
        from weightlab.demo import HELDOUT

        w = self.w
        p = w.training.panel
        w.views.setCurrentWidget(p)
        p.mode_combo.setCurrentIndex(p.mode_combo.findData(mode))
        p.train_edit.setText(str(Path(HELDOUT).with_name("digits_train.npz")))
        w.training._train_changed()
        p.val_kind.setCurrentIndex(p.val_kind.findData("split"))
        p.val_split.setValue(0.1)
        p.epochs_spin.setValue(epochs)
        p.seed_spin.setValue(0)
        p.keep_masks.setChecked(True)
        p.l1_edit.setText(l1)
        p.l2_edit.setText(l2)
        p.pruning_group.setChecked(False)
        return p

    def train(self, what: str) -> None:
        w, ctl = self.w, self.w.training
        w.tree.select("dense/kernel")
        self.wait(lambda: w.view_settled, "the tensor view")
        w.views.setCurrentWidget(ctl.panel)
        position = w.session.position  # after an undo the undone step is still in steps (redo)
        t = time.monotonic()
        if ctl.start() is None:
            raise SystemExit(f"{what} did not start: {ctl.panel.message.text()}")
        self.wait(lambda: not ctl.running, f"{what}: the job")
        self.timings[what] = time.monotonic() - t
        if ctl.result is None:
            raise SystemExit(f"{what} gave no result: {ctl.panel.message.text()}")
        self.wait(lambda: ctl.step is not None and w.session.position == position + 1, f"{what}: its history step")
        self.wait_live(what)
        self.wait(lambda: ctl.savings is not None, f"{what}: what it bought")
        self.settle()

    def grab(self, out: Path, size: tuple[int, int]) -> None:
        self.w.resize(*size)
        self.settle()
        img = self.w.grab()
        img.save(str(out))
        print(f"{out}: {img.width()}x{img.height()}")

    def set_theme(self, theme: str) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QStyleFactory

        app = self.app
        if theme == "dark":
            app.setStyle(QStyleFactory.create("Fusion"))
            app.setPalette(_dark_palette())
            try:
                app.styleHints().setColorScheme(Qt.ColorScheme.Dark)
            except AttributeError:  # Qt < 6.8
                pass
        else:
            app.setPalette(app.style().standardPalette())
        self.settle()

    def close(self) -> None:
        self.w.set_session(None)  # no unsaved-edits question
        self.w.close()


def scenario(tour: Tour, name: str, out_dir: Path | None = None) -> None:
    """Run one of :data:`SCENARIOS` in ``tour``'s window (the demo already open); ``l1l2`` saves its L1
    run into ``out_dir`` (when given) before undoing it."""
    w = tour.w
    if name == "finetune":
        tour.prune(0.8)
        tour.form(epochs=5)
        tour.train("fine-tune, masks kept")
    elif name == "prune_retrain":
        p = tour.form(epochs=2, mode="prune_retrain")
        p.pr_rounds.setValue(3)
        p.pr_by.setCurrentIndex(p.pr_by.findData("threshold"))
        p.pr_threshold.setText("0.05")
        p.pr_factor.setValue(0.8)
        tour.train("prune and retrain, 3 rounds")
    elif name == "gradual":
        p = tour.form(epochs=5)
        p.pruning_group.setChecked(True)
        p.gp_kind.setCurrentIndex(p.gp_kind.findData("polynomial_decay"))
        p.gp_initial.setValue(0.3)
        p.gp_final.setValue(0.7)
        p.gp_begin.setValue(0)
        p.gp_end.setValue(150)
        p.gp_frequency.setValue(10)
        tour.train("gradual pruning")
    elif name == "l1l2":
        tour.form(epochs=5, l1="0.001")
        tour.train("L1 0.001")
        print(f"L1: {w.training.panel.message.text()}")
        if out_dir is not None:
            size = (tour.w.width(), tour.w.height())
            tour.grab(out_dir / f"l1l2-L1-light-{size[0]}x{size[1]}.png", size)
        w.undo()
        tour.wait_live("undo")
        tour.form(epochs=5, l2="0.01")
        tour.train("L2 0.01")
    else:
        raise SystemExit(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=str(Path(__file__).with_name("training.png")),
                    help="the picture (one scenario, one size, one theme), else a folder")
    ap.add_argument("--scenario", default="finetune", help=f"{', '.join(SCENARIOS)} or all")
    ap.add_argument("--sizes", default="1920x1080", help="WxH[,WxH...]")
    ap.add_argument("--themes", default="light", help="light[,dark]")
    args = ap.parse_args(argv)
    names = SCENARIOS if args.scenario == "all" else tuple(args.scenario.split(","))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    themes = args.themes.split(",")
    single = len(names) == 1 and len(sizes) == 1 and len(themes) == 1 and args.out.endswith(".png")
    out = Path(args.out)
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    tour = Tour(sizes[-1])  # type: ignore[arg-type]
    try:
        for name in names:
            tour.set_theme("light")
            tour.w.set_session(None)  # the last scenario's edits: no unsaved-edits question
            tour.open_demo()
            scenario(tour, name, None if single else out)
            # widest first: a Training tab that went narrow and back shows nothing (its set-up and
            # plots stay hidden), so the pictures never make that trip
            for size in sorted(sizes, reverse=True):
                for theme in themes:
                    tour.set_theme(theme)
                    target = out if single else out / f"{name}-{theme}-{size[0]}x{size[1]}.png"
                    if single:  # the README picture: the tabs get the room, as a user drags the splitter
                        centre = tour.w.views.parentWidget()
                        h = sum(centre.sizes())
                        centre.setSizes([int(h * 0.32), int(h * 0.56), h - int(h * 0.32) - int(h * 0.56)])
                    tour.grab(target, size)  # type: ignore[arg-type]
                    panel = tour.w.training.panel
                    if not single and panel.narrow:  # the narrow tab shows its set-up: the curves too
                        panel.pages.setCurrentIndex(1)
                        tour.grab(target.with_name(target.stem + "-curves.png"), size)  # type: ignore[arg-type]
                        panel.pages.setCurrentIndex(0)
            tour.set_theme("light")
            w = tour.w
            print(f"{name}: {w.training.panel.message.text()}")
            print(f"  steps: {[s.edit.describe() for s in w.session.steps]}")
            print(f"  live accuracy: {w.eval_panel._by_step.get(w.session.position, (None, None))[1]}")
            kernels = [np.asarray(w.session.array(n)) for n in w.session.model.tensors if n.endswith("/kernel")]
            print(f"  kernel sparsity: {sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels):.4f}")
        print("timings (s):", {k: round(v, 1) for k, v in tour.timings.items()})
    finally:
        tour.close()


if __name__ == "__main__":
    main()

"""Rebuild the demo model, its training split and held-out set: ``python -m weightlab.demo [--out DIR]``.

The files are written to the folder named by ``--out`` (default: the current
folder), never into the installed package: the demo that ``weightlab --demo``
opens ships with WeightLab. Rebuilding needs scikit-learn (the digits data
set): ``pip install 'weightlab[demo]'``.

The training runs in :func:`weightlab._tf.demo.build` (TensorFlow lives behind
the wall of :mod:`weightlab._tf`).
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

from weightlab.core.errors import WeightLabError
from weightlab.demo import DEMO_DIR, SEED, load_digits_split, make_portable, write_split

MIN_ACCURACY = 0.95


def _installed_package_roots() -> list[Path]:
    """The folders pip installs packages into for this interpreter (site-packages)."""
    roots = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    return [Path(r).resolve() for r in roots]


def check_out_dir(out: Path) -> Path:
    """Return ``out`` resolved, or raise when it lies inside an installed package folder.

    Raises
    ------
    WeightLabError
        ``out`` is inside this interpreter's site-packages (an installed
        WeightLab's files must not be rewritten by a script).
    """
    resolved = out.expanduser().resolve()
    for root in _installed_package_roots():
        if resolved == root or root in resolved.parents:
            raise WeightLabError(
                f"will not write the demo into the installed packages ({root}); "
                "name another folder with --out",
                out,
            )
    return resolved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weightlab.demo",
        description="Rebuild the demo model, its training split and held-out set into a folder "
        "(needs scikit-learn: pip install 'weightlab[demo]').",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="folder to write digits_cnn.keras, digits_cnn.h5, digits_train.npz and "
        f"digits_heldout.npz to (created when missing; default: the current folder). "
        f"The shipped demo is {DEMO_DIR}",
    )
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        out = check_out_dir(args.out)
        split = load_digits_split()  # before TensorFlow loads: a missing scikit-learn is said at once
    except WeightLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from weightlab._tf.demo import build

    write_split(out, split)
    acc = build(out, split, seed=SEED, epochs=args.epochs)
    make_portable(out)  # readable by Keras 3.12 (Python 3.10) too
    if acc < MIN_ACCURACY:
        print(f"error: held-out accuracy {acc:.4f} is below {MIN_ACCURACY}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

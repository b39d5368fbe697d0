"""Rebuild the bundled demo model, its training split and held-out set: ``python -m weightlab.demo [--out DIR]``.

The training runs in :func:`weightlab._tf.demo.build` (TensorFlow lives behind
the wall of :mod:`weightlab._tf`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from weightlab.demo import DEMO_DIR, SEED, load_digits_split, write_split

MIN_ACCURACY = 0.95


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weightlab.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    from weightlab._tf.demo import build

    split = load_digits_split()
    write_split(args.out, split)
    acc = build(args.out, split, seed=SEED, epochs=args.epochs)
    if acc < MIN_ACCURACY:
        print(f"error: held-out accuracy {acc:.4f} is below {MIN_ACCURACY}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

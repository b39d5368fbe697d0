"""Rebuild the bundled demo model and held-out set: ``python -m weightlab.demo [--out DIR]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from weightlab.demo import DEMO_DIR, SEED, load_digits_split

MIN_ACCURACY = 0.95


def build(out: Path, epochs: int = 40) -> float:
    """Train the demo CNN and write it to ``out``; return held-out accuracy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    x_tr, y_tr, x_te, y_te = load_digits_split()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="digit"),
            keras.layers.Conv2D(16, 3, padding="same", name="conv2d"),
            keras.layers.BatchNormalization(name="batch_normalization"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_1"),
            keras.layers.MaxPooling2D(2, name="max_pooling2d"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="dense"),
            keras.layers.Dropout(0.3, name="dropout"),
            keras.layers.Dense(10, activation="softmax", name="dense_1"),
        ],
        name="digits_cnn",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_tr, y_tr, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    loss, acc = model.evaluate(x_te, y_te, batch_size=256, verbose=0)

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "digits_cnn.keras")
    model.save(out / "digits_cnn.h5")  # legacy full-model HDF5
    np.savez(out / "digits_heldout.npz", x=x_te, y=y_te)
    print(f"held-out accuracy {acc:.4f}, loss {loss:.4f} on {len(y_te)} images; wrote {out}")
    return float(acc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weightlab.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    acc = build(args.out, args.epochs)
    if acc < MIN_ACCURACY:
        print(f"error: held-out accuracy {acc:.4f} is below {MIN_ACCURACY}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training of the bundled demo model (:mod:`weightlab.demo`); ``python -m weightlab.demo`` calls :func:`build`."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

__all__ = ["build"]

#: ``(x_train, y_train, x_heldout, y_heldout)``.
Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def build(out: Path, split: Split, *, seed: int, epochs: int = 40) -> float:
    """Train the demo CNN on ``split`` and write the files to ``out``; return the held-out accuracy.

    Parameters
    ----------
    out : Path
        The folder written: ``digits_cnn.keras`` and ``digits_cnn.h5`` (the split's
        ``.npz`` files are written by :func:`weightlab.demo.write_split`).
    split : tuple of numpy.ndarray
        ``(x_train, y_train, x_heldout, y_heldout)`` of
        :func:`weightlab.demo.load_digits_split`: ``x`` float32 ``(N, 8, 8, 1)``,
        ``y`` int64 ``(N,)``.
    seed : int
        Keras' random seed (with TensorFlow's op determinism: the same files each time).
    epochs : int
        Training epochs.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    x_tr, y_tr, x_te, y_te = split
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
    print(f"held-out accuracy {acc:.4f}, loss {loss:.4f} on {len(y_te)} images; wrote {out}")
    return float(acc)

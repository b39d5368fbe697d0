"""Benchmark (j): training throughput of ``weightlab finetune``'s engine against ``model.fit`` (+ a mask callback).

Issue 12 asks for fine-tuning within 10 % of ``model.fit``'s throughput on
the same data. WeightLab: :func:`weightlab._tf.headless.finetune` (what
``weightlab finetune`` and ``weightlab.finetune`` run). The alternative, in
the same process and run, interleaved: ``keras.utils.set_random_seed``,
``keras.saving.load_model``, ``compile`` with the same optimizer, loss and
learning rate, ``model.fit`` with the same batch size, epochs, shuffling and
``validation_split``, Keras' seed and TensorFlow's op determinism set right before
``fit`` as the engine sets them (so the plain case trains to the same weights);
``model.fit`` with the seed alone (no op determinism) is timed too, to show
what determinism costs. In the masked case the alternative is what users
write today to keep pruned weights at zero with Keras 3 (TF-MOT does not
support it): the same ``model.fit`` with a callback that re-applies each
pruned kernel's mask after every batch (``on_train_batch_end``:
``w.assign(w * mask)``, the hand-written equivalent of TF-MOT's
``UpdatePruningStep``); its result's masked zeros are counted too.

Throughput is training samples per second in the steady state: the time
between the ends of consecutive epochs (epochs 2 to E, so the first epoch's
tracing is left out), median over the epochs of every repeat. On a shared
machine other people's work stretches wall-clock epochs at random, so the CPU
time this process spent per epoch (all its threads, ``time.process_time``)
is reported too, as ``cpu_ratio``: less sensitive to the load, it counts the
work each side does. On WeightLab's
side an epoch ends when its ``"epoch"`` progress partial arrives (after its
validation and everything the engine does per epoch: keeping the best
weights, the streamed tensors); on ``model.fit``'s side at its
``on_epoch_end``. The end-to-end time of each call (model load, data,
compile, every epoch) is reported too.

Cases: the bundled demo CNN on its training split repeated 4 times (5,748
images of 8x8, so that an epoch lasts about a second rather than a quarter
of one on the 2-core machine; batch 32) as stored with masks off (the comparison of issue 12: plain
training; against plain ``model.fit``), and with 80 % of every kernel pruned
and masks kept (against ``model.fit`` + the mask callback; plain
``model.fit`` on the same pruned weights, which lets the zeros grow back, is
timed as well: WeightLab masked against it is the price of the masks). The
target applies to each case against its alternative. The weights of the plain case are compared with ``model.fit``'s
(max |difference|; equal within 1e-5 on CPU is tested in tests/).

Run ``python benchmarks/bench_train.py`` (prints JSON rows) or call :func:`run`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO = ROOT / "weightlab" / "resources" / "demo"
MODEL = DEMO / "digits_cnn.keras"
TRAIN = DEMO / "digits_train.npz"
#: The training split is repeated this many times (longer epochs, steadier ratios).
TILE = 4
BATCH = 32
LR = 1e-3
VAL_SPLIT = 0.1
SEED = 0
#: Issue 12's target: WeightLab's throughput at least this fraction of model.fit's.
TARGET = 0.9


def _periods(ends: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (this process, all threads) between consecutive epoch ends (epoch 2 onwards)."""
    pairs = list(zip(ends, ends[1:]))
    return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _pruned(sparsity: float) -> dict[str, np.ndarray]:
    """Every kernel of the demo with its smallest ``sparsity`` fraction of entries zeroed (per tensor)."""
    import weightlab
    from weightlab.edits import PruneMagnitude

    s = weightlab.open(MODEL)
    try:
        s.apply(PruneMagnitude(target="*/kernel", sparsity=sparsity))
        return {k: np.array(v) for k, v in s.edited_arrays().items()}
    finally:
        s.model.close()


def _fit(
    train: Path,
    epochs: int,
    edited: dict[str, np.ndarray] | None,
    deterministic: bool = True,
    mask_callback: bool = False,
) -> tuple[tuple[list[float], list[float]], float, dict[str, np.ndarray]]:
    """``model.fit`` as a user writes it: (epoch periods, seconds of the whole call, trained kernels).

    ``deterministic``: Keras' seed and TensorFlow's op determinism set right
    before ``fit``, as the engine does (the same weights); else the seed alone.
    ``mask_callback``: every kernel of ``edited`` with zeros gets its mask
    (``edited != 0``) re-applied after every batch by a callback, as users
    keep pruned weights at zero with Keras 3 today.
    """
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    t0 = time.perf_counter()
    with np.load(train) as npz:
        x, y = npz["x"], npz["y"]
    keras.utils.set_random_seed(SEED)  # Dropout's seed generator draws its seed when the model is built
    model = keras.saving.load_model(MODEL, compile=False)
    variables = {v.path: v for v in model.weights}  # the demo's paths are its canonical names
    for name, value in (edited or {}).items():
        variables[name].assign(value)
    model.compile(optimizer=keras.optimizers.Adam(LR), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ends: list[tuple[float, float]] = []
    callbacks: list[keras.callbacks.Callback] = []

    class Ends(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(_now())

    if mask_callback:
        masks = [
            (variables[name], tf.constant(value != 0, dtype=variables[name].dtype))
            for name, value in (edited or {}).items()
            if name.endswith("/kernel") and np.any(value == 0)
        ]

        class KeepMasks(keras.callbacks.Callback):
            """Re-apply each pruned kernel's mask after every batch (TF-MOT's behaviour, by hand)."""

            def on_train_batch_end(self, batch, logs=None):
                for w, mask in masks:
                    w.assign(w * mask)

        callbacks.append(KeepMasks())
    callbacks.append(Ends())

    keras.utils.set_random_seed(SEED)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_split=VAL_SPLIT, shuffle=True, verbose=0,
                  callbacks=callbacks)  # fmt: skip
    finally:
        tf_config.disable_op_determinism()
    total = time.perf_counter() - t0
    kernels = {n: np.array(v.numpy()) for n, v in variables.items() if n.endswith("/kernel")}
    return _periods(ends), total, kernels


def _weightlab(train: Path, epochs: int, edited: dict[str, np.ndarray] | None, keep_masks: bool):
    """``headless.finetune``: (epoch periods, seconds of the whole call, the result)."""
    from weightlab import training
    from weightlab._tf import headless

    spec = training.finetune_spec(train, val_split=VAL_SPLIT, epochs=epochs, batch_size=BATCH, lr=LR,
                                  optimizer="adam", keep_masks=keep_masks, seed=SEED)  # fmt: skip
    ends: list[tuple[float, float]] = []

    def progress(fraction, message, partial):
        if partial.get("type") == "epoch":
            ends.append(_now())

    t0 = time.perf_counter()
    result = headless.finetune(MODEL, spec, edited, on_progress=progress)
    return _periods(ends), time.perf_counter() - t0, result


def run(repeats: int = 2, epochs: int = 6) -> list[dict]:
    """One row per case: ``benchmark``, ``alternative`` (what ``fit_*`` measures: plain
    ``model.fit``, or ``model.fit`` + the mask callback in the masked case), ``samples``, ``epochs``,
    ``weightlab_epoch_s`` and ``fit_epoch_s`` (median steady-state epoch periods), ``weightlab_samples_per_s``,
    ``fit_samples_per_s``, ``ratio`` (WeightLab / the alternative's throughput), ``target``, ``met``,
    ``weightlab_epoch_cpu_s``, ``fit_epoch_cpu_s``, ``cpu_ratio`` (the same in CPU seconds of this process),
    ``fit_without_determinism_epoch_s`` (the alternative without op determinism),
    ``weightlab_call_s`` and ``fit_call_s`` (median end-to-end seconds), ``max_abs_diff``
    (plain case: trained kernels against fit's, the largest over the repeats), masked case only (else None):
    ``masked_zeros`` (pruned entries), ``zeros_kept`` and ``fit_zeros_kept`` (how many of them are still
    exactly zero after WeightLab's and the alternative's training, the fewest over the repeats),
    ``plain_fit_epoch_s`` (plain ``model.fit`` on the pruned weights, no masks) and ``mask_price_ratio``
    (WeightLab masked / plain fit throughput); ``device``."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        train = Path(folder) / "train.npz"
        with np.load(TRAIN) as npz:
            np.savez(train, x=np.tile(npz["x"], (TILE, 1, 1, 1)), y=np.tile(npz["y"], TILE))
            n_train = math.ceil(len(npz["y"]) * TILE * (1 - VAL_SPLIT))  # Keras' validation_split
        return _run(train, n_train, repeats, epochs)


def _run(train: Path, n_train: int, repeats: int, epochs: int) -> list[dict]:
    pruned = _pruned(0.8)
    cases = [
        ("demo CNN as stored, masks off (plain training)", None, False),
        ("demo CNN, 80 % of every kernel pruned, masks kept", pruned, True),
    ]
    rows = []
    for label, edited, keep in cases:
        wl_periods, fit_periods, free_periods, plain_periods, wl_calls, fit_calls = [], [], [], [], [], []
        wl_cpu, fit_cpu = [], []
        diff, zeros_kept, fit_zeros_kept, device = None, None, None, "?"
        masked = {n: v == 0 for n, v in (edited or {}).items() if n.endswith("/kernel")} if keep else {}
        for _ in range(repeats):
            p, call, result = _weightlab(train, epochs, edited, keep)
            wl_periods += p[0]
            wl_cpu += p[1]
            wl_calls.append(call)
            device = result.device
            p, call, kernels = _fit(train, epochs, edited, mask_callback=keep)
            fit_periods += p[0]
            fit_cpu += p[1]
            fit_calls.append(call)
            free_periods += _fit(train, epochs, edited, deterministic=False, mask_callback=keep)[0][0]
            if keep:
                plain_periods += _fit(train, epochs, edited)[0][0]  # no masks: the zeros grow back
                wl_kept = sum(int(np.count_nonzero(result.arrays[n][m] == 0)) for n, m in masked.items())
                fit_kept = sum(int(np.count_nonzero(kernels[n][m] == 0)) for n, m in masked.items())
                zeros_kept = wl_kept if zeros_kept is None else min(zeros_kept, wl_kept)
                fit_zeros_kept = fit_kept if fit_zeros_kept is None else min(fit_zeros_kept, fit_kept)
            else:
                d = max(float(np.max(np.abs(result.arrays[n] - kernels[n]))) for n in kernels if n in result.arrays)
                diff = d if diff is None else max(diff, d)
        wl_s, fit_s = statistics.median(wl_periods), statistics.median(fit_periods)
        ratio = fit_s / wl_s  # = WeightLab's throughput / the alternative's
        plain_s = statistics.median(plain_periods) if plain_periods else None
        rows.append(
            {
                "benchmark": f"fine-tune throughput, {label}",
                "alternative": "model.fit + mask callback" if keep else "model.fit",
                "samples": n_train,
                "epochs": epochs,
                "batch_size": BATCH,
                "weightlab_epoch_s": round(wl_s, 4),
                "fit_epoch_s": round(fit_s, 4),
                "weightlab_samples_per_s": round(n_train / wl_s),
                "fit_samples_per_s": round(n_train / fit_s),
                "ratio": round(ratio, 3),
                "target": f">= {TARGET:g} (within 10 %)",
                "met": ratio >= TARGET,
                "weightlab_epoch_cpu_s": round(statistics.median(wl_cpu), 4),
                "fit_epoch_cpu_s": round(statistics.median(fit_cpu), 4),
                "cpu_ratio": round(statistics.median(fit_cpu) / statistics.median(wl_cpu), 3),
                "fit_without_determinism_epoch_s": round(statistics.median(free_periods), 4),
                "weightlab_call_s": round(statistics.median(wl_calls), 3),
                "fit_call_s": round(statistics.median(fit_calls), 3),
                "weightlab_epoch_runs_s": [round(v, 4) for v in wl_periods],
                "fit_epoch_runs_s": [round(v, 4) for v in fit_periods],
                "max_abs_diff": diff,
                "masked_zeros": sum(int(m.sum()) for m in masked.values()) if keep else None,
                "zeros_kept": zeros_kept,
                "fit_zeros_kept": fit_zeros_kept,
                "plain_fit_epoch_s": round(plain_s, 4) if plain_s is not None else None,
                "mask_price_ratio": round(plain_s / wl_s, 3) if plain_s is not None else None,
                "device": device,
            }
        )
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=6, help="at least 2 (epoch 1, with its tracing, is left out)")
    a = p.parse_args()
    print(json.dumps(run(a.repeats, a.epochs), indent=2))

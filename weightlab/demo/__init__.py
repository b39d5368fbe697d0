"""The bundled demo: a small CNN trained on the UCI handwritten digits.

The data are the 1,797 8x8 grey-level digit images that ship with scikit-learn
(``sklearn.datasets.load_digits``; UCI ML hand-written digits, Alpaydin &
Kaynak 1998), pixel values 0..16 scaled to [0, 1]. A fixed stratified split
(``train_test_split(test_size=0.2, random_state=0)``) gives 1,437 training and
360 held-out images.

The files ship inside the package (``weightlab/resources/demo/``, package data
of the wheel), so ``weightlab --demo`` works from an installed WeightLab.
``python -m weightlab.demo --out DIR`` rebuilds them, deterministically (fixed
seeds and TensorFlow op determinism), into a folder the user names (it needs
scikit-learn: ``pip install 'weightlab[demo]'``):

* ``digits_cnn.keras``: the model as a Keras 3 archive;
* ``digits_cnn.h5``: the same model as a legacy full-model HDF5 file;
* ``digits_heldout.npz``: the held-out set, ``x`` float32 ``(360, 8, 8, 1)``
  and ``y`` int64 ``(360,)`` class indices 0..9;
* ``digits_train.npz``: the training split the model was trained on, ``x``
  float32 ``(1437, 8, 8, 1)`` and ``y`` int64 ``(1437,)`` (fine-tuning and
  prune-and-retrain on the demo: ``weightlab finetune``, docs/training.md);

and prints the held-out accuracy (at least 95%).
"""

from __future__ import annotations

from pathlib import Path

from weightlab.core.errors import WeightLabError

#: Folder of the bundled demo files: package data, ``weightlab/resources/demo``
#: (in a source checkout and in an installed wheel alike).
DEMO_DIR = Path(__file__).resolve().parents[1] / "resources" / "demo"
MODEL_KERAS = DEMO_DIR / "digits_cnn.keras"
MODEL_H5 = DEMO_DIR / "digits_cnn.h5"
HELDOUT = DEMO_DIR / "digits_heldout.npz"
TRAIN = DEMO_DIR / "digits_train.npz"

SEED = 0
TEST_SIZE = 0.2

#: What to install when scikit-learn (the digits data set) is missing.
INSTALL_HINT = "pip install 'weightlab[demo]'"


#: Layer and initializer config keys that Keras 3.13+ writes and Keras 3.12 (the
#: last for Python 3.10) refuses ("Unrecognized keyword arguments"), with the
#: default value at which :func:`make_portable` leaves them out: Keras 3.15 reads
#: the files without them to the same model (same weights, same accuracy).
NEWER_KERAS_DEFAULTS: dict[str, object] = {
    "input_axes": None,  # VarianceScaling initializers
    "output_axes": None,
    "renorm": False,  # BatchNormalization
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
    "quantization_config": None,  # Dense, Conv
}


def _without_newer_defaults(obj):
    if isinstance(obj, dict):
        return {
            k: _without_newer_defaults(v)
            for k, v in obj.items()
            if not (k in NEWER_KERAS_DEFAULTS and type(v) is type(NEWER_KERAS_DEFAULTS[k])
                    and v == NEWER_KERAS_DEFAULTS[k])
        }
    if isinstance(obj, list):
        return [_without_newer_defaults(v) for v in obj]
    return obj


def make_portable(folder: Path) -> None:
    """Make the demo model files in ``folder`` loadable by Keras 3.12 as well as 3.15.

    Rewrites ``digits_cnn.keras``'s ``config.json`` (the other archive members
    byte for byte, in the same order) and ``digits_cnn.h5``'s ``model_config``
    attribute without the :data:`NEWER_KERAS_DEFAULTS` keys at their default
    values. Weights are untouched. Files absent from ``folder`` are skipped.
    """
    import json
    import os
    import zipfile

    import h5py

    keras_file = folder / MODEL_KERAS.name
    if keras_file.exists():
        tmp = keras_file.with_name(keras_file.name + ".portable-tmp")
        try:
            with zipfile.ZipFile(keras_file) as src, zipfile.ZipFile(tmp, "w") as out:
                for info in src.infolist():
                    data = src.read(info)
                    if info.filename == "config.json":
                        data = json.dumps(_without_newer_defaults(json.loads(data))).encode()
                    out.writestr(info, data)
            os.replace(tmp, keras_file)
        finally:
            tmp.unlink(missing_ok=True)
    h5_file = folder / MODEL_H5.name
    if h5_file.exists():
        with h5py.File(h5_file, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            f.attrs["model_config"] = json.dumps(_without_newer_defaults(config))


class MissingDependencyError(WeightLabError):
    """An optional dependency the demo's rebuild needs is not installed (the message says what to install)."""


def _sklearn():
    """Import scikit-learn's two functions the split needs, or say what to install."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"rebuilding the demo needs scikit-learn (the digits data set), which is not installed "
            f"({exc.name}): {INSTALL_HINT}"
        ) from exc
    return load_digits, train_test_split


def load_digits_split():
    """Return ``(x_train, y_train, x_heldout, y_heldout)`` of the fixed split.

    ``x`` arrays are float32 ``(N, 8, 8, 1)`` in [0, 1]; ``y`` arrays int64 ``(N,)``.

    Raises
    ------
    MissingDependencyError
        scikit-learn is not installed (the message names ``pip install 'weightlab[demo]'``).
    """
    import numpy as np

    load_digits, train_test_split = _sklearn()

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


def write_split(out: Path, split=None) -> tuple[Path, Path]:
    """Write the split's two ``.npz`` files to ``out``; return ``(train, heldout)`` paths.

    ``digits_train.npz`` and ``digits_heldout.npz`` hold ``x`` float32
    ``(N, 8, 8, 1)`` and ``y`` int64 ``(N,)``, written with :func:`numpy.savez`
    (uncompressed, no pickled objects): the same split gives the same bytes.

    Parameters
    ----------
    out : Path
        The folder written (created when missing).
    split : tuple of numpy.ndarray, optional
        ``(x_train, y_train, x_heldout, y_heldout)``; default :func:`load_digits_split`.
    """
    import numpy as np

    x_tr, y_tr, x_te, y_te = load_digits_split() if split is None else split
    out.mkdir(parents=True, exist_ok=True)
    train, heldout = out / TRAIN.name, out / HELDOUT.name
    np.savez(train, x=x_tr, y=y_tr)
    np.savez(heldout, x=x_te, y=y_te)
    return train, heldout

"""File names and dialog filters of the window's documents (open, save as, held-out sets, recipes)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from weightlab.core.errors import WeightLabError
from weightlab.formats import get_format

MODEL_FILTER = (
    "Models (*.keras *.h5 *.hdf5 *.weights.h5 *.pb *.index *.meta);;"
    "Keras models (*.keras *.h5 *.hdf5 *.weights.h5);;"
    "TensorFlow (SavedModel *.pb, checkpoint *.index *.meta, frozen graph *.pb) (*.pb *.index *.meta);;"
    "All files (*)"
)
ARCHITECTURE_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
DATA_FILTER = "Held-out sets (*.npz);;All files (*)"
RECIPE_FILTER = "Recipes (*.json);;All files (*)"
NO_DATA_REASON = "No held-out set: File › Open held-out set…"
_COMPOUND_SUFFIXES = (".weights.h5",)
#: Save As for an in-memory model (``weightlab.show(model)``): what Keras' own saving writes.
IN_MEMORY_SAVE_FILTER = "Keras model (*.keras);;Keras HDF5 model (*.h5);;Keras weights (*.weights.h5)"


def split_name(path: Path) -> tuple[str, str]:
    """``(stem, extension)`` keeping compound extensions (``m.weights.h5 -> ("m", ".weights.h5")``)."""
    for suffix in _COMPOUND_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)], suffix
    return path.stem, path.suffix


def _package_folder() -> Path:
    """The installed ``weightlab`` package's folder (its demo model lives inside it)."""
    return Path(__file__).resolve().parents[2]  # weightlab/gui/controllers/paths.py


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except (OSError, ValueError):
        return False
    return True


def save_folder_ok(folder: Path) -> bool:
    """Whether Save As may propose ``folder``: an existing, writable folder outside the weightlab package."""
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) and not _inside(folder, _package_folder())


def default_save_path(path: Path, last_folder: Path | None = None) -> Path:
    """Where Save As proposes to write the edits of the model at ``path``: ``<stem>-edited<ext>``.

    Beside the opened file when its folder is writable and not inside the
    installed weightlab package (the demo model in ``weightlab/resources``,
    in site-packages for a wheel); else in ``last_folder`` (``files/last_folder``)
    when that qualifies; else in ``~/Documents`` or the home folder.

    Parameters
    ----------
    path : pathlib.Path
        The opened model (a file, a checkpoint prefix or a SavedModel folder).
    last_folder : pathlib.Path or None
        The folder last opened from or saved to.

    Returns
    -------
    pathlib.Path
        The proposed file (not created).
    """
    stem, ext = split_name(path)
    name = f"{stem}-edited{ext}"
    home = Path.home()
    candidates = [path.parent, last_folder, home / "Documents", home]
    for folder in candidates:
        if folder is not None and save_folder_ok(folder):
            return folder / name
    return path.with_name(name)


def save_filter(fmt: str) -> str:
    """The Save As filter for a model of format ``fmt``: only the names that format is written under.

    A ``.keras`` archive gives ``"Keras 3 model archive (*.keras)"``, a legacy
    HDF5 model ``"Keras legacy HDF5 model or weights (*.h5 *.hdf5)"``, a
    SavedModel (a folder: any name) ``"TensorFlow SavedModel folder (*)"``.
    WeightLab saves in the opened model's format and converts nothing
    (:func:`weightlab.formats.check_destination`). An unknown format (an
    in-memory model) gives ``"All files (*)"``.
    """
    if fmt == "memory":  # saved by Keras, in the format the name's extension says
        return IN_MEMORY_SAVE_FILTER
    try:
        handler = get_format(fmt)
    except WeightLabError:
        return "All files (*)"
    label = re.sub(r"\s*\([^)]*\)", "", handler.description).strip()
    patterns = " ".join(f"*{ext}" for ext in handler.extensions) or "*"
    return f"{label} ({patterns})"


def with_default_extension(path: Path, fmt: str) -> Path:
    """``path`` with format ``fmt``'s extension added when its name has no extension at all.

    ``edited`` becomes ``edited.keras`` for a ``.keras`` model (what a file
    dialog's default suffix does); a name with any extension is kept as typed
    (the save refuses another format's extension with a clear error). A
    SavedModel folder and a checkpoint prefix keep the name as typed.
    """
    if fmt in ("savedmodel", "checkpoint") or path.suffix or not path.name:
        return path
    if fmt == "memory":
        return path.with_name(path.name + ".keras")
    try:
        extensions = get_format(fmt).extensions
    except WeightLabError:
        return path
    return path.with_name(path.name + extensions[0]) if extensions else path


def guess_heldout(model_path: Path) -> Path | None:
    """A held-out ``.npz`` beside the model named like it, if there is one.

    Tries ``<stem>.npz``, ``<stem>_heldout.npz``, ``<stem>-heldout.npz`` and
    ``<prefix>_heldout.npz`` (prefix = the stem up to its first ``_``, which
    finds ``digits_heldout.npz`` for ``digits_cnn.keras``).
    """
    stem, _ = split_name(model_path)
    names = [f"{stem}.npz", f"{stem}_heldout.npz", f"{stem}-heldout.npz", f"{stem.split('_')[0]}_heldout.npz"]
    for name in names:
        candidate = model_path.with_name(name)
        if candidate.is_file():
            return candidate
    return None


#: The private folders ``weightlab.show(model, data=(x, y))`` writes held-out arrays to (weightlab.viewer).
NOTEBOOK_DATA_PREFIX = "weightlab-show-"
#: How the window names held-out arrays given from Python (their private file is nobody's business).
NOTEBOOK_DATA_NAME = "(x, y) arrays from the notebook"


def data_display_name(path: Path | None) -> str | None:
    """The held-out set's name as the window shows it: the file's name, or :data:`NOTEBOOK_DATA_NAME`."""
    if path is None:
        return None
    if path.parent.name.startswith(NOTEBOOK_DATA_PREFIX):
        return NOTEBOOK_DATA_NAME
    return path.name


def without_private_data_path(message: str, path: Path | None) -> str:
    """``message`` with the private file of held-out arrays given from Python named "the data given to show()"."""
    if path is None or not path.parent.name.startswith(NOTEBOOK_DATA_PREFIX):
        return message
    for spelled in (str(path), path.as_posix(), path.name):
        message = message.replace(spelled, "the data given to show()")
    return message

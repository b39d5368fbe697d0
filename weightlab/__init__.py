"""WeightLab: look inside trained TensorFlow/Keras models and edit their weights by hand.

Python API (the same core objects the window and the ``weightlab`` command use)::

    import weightlab
    from weightlab.edits import Clip, ZeroNeurons

    s = weightlab.open("model.keras")          # reads tensors as data; runs no model code
    s.array("conv2d/kernel")                    # current values (numpy, read-only)
    s.apply(Clip(target="conv2d/kernel", min=-0.1, max=0.1))
    s.apply(ZeroNeurons(target="dense", neurons=[0, 3]))
    s.undo(); s.redo()
    recipe = s.to_recipe()                      # {"version": 1, "edits": [...]}
    s.save("model-edited.keras")                # same format, atomic, never over the original
    weightlab.evaluate(s, "heldout.npz")        # accuracy/loss (imports TensorFlow)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from weightlab.core.errors import (
    DataError,
    EngineError,
    FormatError,
    RecipeError,
    WeightLabError,
)

if TYPE_CHECKING:
    from weightlab.core.session import EditSession

__version__ = "0.1.0"
__all__ = [
    "DataError",
    "EngineError",
    "FormatError",
    "RecipeError",
    "WeightLabError",
    "evaluate",
    "open",
]


def open(path: str | os.PathLike[str]) -> EditSession:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a model file for inspection and editing.

    Reads the layer/tensor structure with the format's own reader (h5py for
    Keras files; for SavedModel folders, checkpoints and frozen GraphDefs,
    TensorFlow's readers in a child process); tensor values are read on first
    use. No model code runs and TensorFlow is not imported in this process.
    Close ``session.model`` when done (it ends a reader process, if any).

    Returns
    -------
    EditSession
        With ``.model`` (the :class:`~weightlab.core.model.ModelFile`),
        ``apply``/``undo``/``redo``/``save``/``to_recipe``.

    Raises
    ------
    FormatError
        When the file is missing, unreadable or not a supported model file.
    """
    from weightlab.formats import open_session

    return open_session(path)


def evaluate(
    session_or_path: EditSession | str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    trust: bool = False,
    batch_size: int = 256,
    **options: Any,
) -> Any:
    """Evaluate a model (with a session's current edits) on a held-out ``.npz`` set.

    Imports TensorFlow in this process (the GUI uses a worker process instead).
    ``options`` are ``architecture`` (for a checkpoint), ``signature``,
    ``output`` and ``input`` (see :func:`weightlab._tf.passes.open_session`).

    Returns
    -------
    Metrics
        ``accuracy``, ``loss``, ``per_class``, ``num_samples``, ``seconds``, ``device``.

    Raises
    ------
    EngineError
        When no executable model can be built safely (Lambda layers, custom
        objects, weights-only files) and ``trust`` is False.
    DataError
        When the held-out set is malformed or does not fit the model.
    """
    from weightlab._tf.headless import evaluate_file
    from weightlab.core.session import EditSession

    if isinstance(session_or_path, EditSession):
        return evaluate_file(
            session_or_path.model.path,
            data,
            session_or_path.edited_arrays(),
            trust=trust,
            batch_size=batch_size,
            **options,
        )
    return evaluate_file(session_or_path, data, None, trust=trust, batch_size=batch_size, **options)

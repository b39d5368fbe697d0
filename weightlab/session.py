"""The session :func:`weightlab.open` returns: an edit session that also evaluates and gives a Keras model back.

:class:`Session` is the core :class:`~weightlab.core.session.EditSession`
(current values, history, undo/redo, recipes, saving, ``tensors``,
``history``, ``diff()``) plus the steps that need TensorFlow:
:meth:`Session.to_keras` and :meth:`Session.evaluate` (and
:meth:`Session.apply_trained`, which records a fine-tune's result). The first two import
TensorFlow in this process when they are called, never before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from weightlab.core.session import EditSession

if TYPE_CHECKING:
    from weightlab.core.training import FinetuneResult, PruneRetrainResult
    from weightlab.engine.events import Metrics


class Session(EditSession):
    """An opened model (a file, or a live Keras model) with its edits.

    Made by :func:`weightlab.open`; everything of
    :class:`~weightlab.core.session.EditSession` applies: ``array(name)``
    (current values, a read-only NumPy array in the tensor's stored dtype and
    Keras axis order), ``original(name)``, ``apply(edit)``, ``undo()``,
    ``redo()``, ``tensors``, ``history``, ``diff()``, ``to_recipe()``,
    ``save(path)``. ``model`` is the :class:`~weightlab.core.model.ModelFile`:
    for a live model ``model.in_memory`` is True, ``model.source`` is the
    model object (never changed by the session) and ``model.path`` only a
    display name.

    A session is a context manager: leaving the ``with`` block calls
    :meth:`close`.
    """

    def __repr__(self) -> str:
        """``Session('digits_cnn.keras', format='keras', tensors=12, edits=2)``: the edits applied now."""
        return (
            f"{type(self).__name__}({self.model.path.name!r}, format={self.model.format!r}, "
            f"tensors={len(self.model.tensors)}, edits={self.position})"
        )

    def to_keras(self, *, trust: bool = False) -> Any:
        """A new Keras model with the current (edited) weights; the original is never changed.

        Imports TensorFlow. For a live model: a clone of it (the same library,
        ``keras`` or ``tf_keras``), compiled like it when it was compiled (same
        loss and metrics, a fresh optimizer of the same configuration), so
        ``model.evaluate(x, y)`` works at once. For a file: the model built
        from the file, with the edited arrays assigned.

        Parameters
        ----------
        trust:
            Allow code stored in the file (Lambda layers, custom objects) to
            run while the model is built: only for files you trust.

        Returns
        -------
        keras.Model or tf_keras.Model
            A new model; its weights equal :meth:`array` of every tensor.

        Raises
        ------
        EngineError
            When no Keras model can be built safely from the file (Lambda
            layers or custom objects without ``trust``, a weights-only file,
            a SavedModel or frozen graph).
        """
        from weightlab._tf import headless

        return headless.to_keras(self, trust=trust)

    def evaluate(
        self,
        data: str | os.PathLike[str] | Any,
        *,
        trust: bool = False,
        batch_size: int = 256,
        **options: Any,
    ) -> Metrics:
        """Evaluate the model with the current edits; see :func:`weightlab.evaluate`.

        Parameters
        ----------
        data:
            A held-out ``.npz`` file (``x``, and ``y`` integer class indices),
            an ``(x, y)`` pair of arrays, ``x`` alone (no labels: only the
            agreement with the unedited model is measured), or a
            ``tf.data.Dataset`` of ``(x, y)`` or ``x`` batches.
        trust:
            Allow code stored in the file to run (Lambda layers): only for
            files you trust.
        batch_size:
            Samples per forward pass.
        **options:
            For files: ``architecture`` (for a checkpoint), ``signature``,
            ``output``, ``input``, as for :func:`weightlab.evaluate`; for live
            models: ``output`` (which output of a model with several).

        Returns
        -------
        Metrics
            Accuracy and loss of the edited model; ``baseline`` holds the
            unedited model's metrics on the same data when the session has
            edits.

        Raises
        ------
        DataError
            When the data are malformed or do not fit the model.
        EngineError
            When no executable model can be built safely and ``trust`` is False.
        """
        from weightlab._tf import headless

        return headless.evaluate_session(self, data, trust=trust, batch_size=batch_size, **options)

    def apply_trained(self, result: FinetuneResult | PruneRetrainResult) -> set[str]:
        """Record a fine-tune's (or prune-and-retrain's) trained weights as one history step.

        :func:`weightlab.finetune` and :func:`weightlab.prune_retrain` never
        change the session they start from (with ``output=`` they record the
        step and write the file); this puts ``result.arrays`` into this
        session as one :class:`~weightlab.core.trained.Trained` step labelled
        ``result.label``, undoable like any edit, and in :meth:`to_recipe`
        (saved recipes keep the arrays in a sidecar ``.npz``, checked by
        SHA-256 when replayed).

        Parameters
        ----------
        result:
            A :class:`~weightlab.core.training.FinetuneResult` or
            :class:`~weightlab.core.training.PruneRetrainResult` of this
            model: ``arrays`` maps canonical names to arrays of the tensors'
            shapes.

        Returns
        -------
        set of str
            The canonical names of the tensors that changed; empty when the
            training changed nothing (every layer frozen, or no round of a
            prune-and-retrain within its budget): no step is added then.

        Raises
        ------
        WeightLabError
            When an array names a tensor this model does not have, or has
            another shape.
        """
        from weightlab.core.errors import WeightLabError
        from weightlab.core.trained import Trained

        arrays = result.arrays
        if not arrays:
            return set()
        for name, value in arrays.items():
            if name not in self.model.tensors:
                raise WeightLabError(f"the trained weights name {name!r}, which this model does not have",
                                     self.model.path)  # fmt: skip
            if tuple(value.shape) != tuple(self.model.tensors[name].shape):
                raise WeightLabError(
                    f"the trained {name!r} has shape {tuple(value.shape)}, the model's "
                    f"{tuple(self.model.tensors[name].shape)}", self.model.path,
                )  # fmt: skip
        return self.apply(Trained.from_arrays(arrays, result.label))

    def close(self) -> None:
        """Close the model (its file, a reader process, an in-memory model's private copy)."""
        self.model.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""WeightLab: look inside trained TensorFlow/Keras models and edit their weights by hand.

The public Python API, in one namespace (the same core objects the window and
the ``weightlab`` command use)::

    import weightlab
    from weightlab.edits import Clip, ZeroNeurons, PruneMagnitude

    s = weightlab.open("model.keras")           # or a live Keras model; runs no model code
    s.tensors["conv2d/kernel"].shape             # name -> shape, dtype, layer, trainable
    s.array("conv2d/kernel")                     # current values (numpy, read-only)
    s.apply(Clip(target="conv2d/kernel", min=-0.1, max=0.1))
    s.apply(ZeroNeurons(target="dense", neurons=[0, 3]))
    s.undo(); s.redo(); s.history               # the recorded steps
    s.diff()                                     # per-tensor change against the stored values
    s.to_recipe()                                # {"version": 1, "edits": [...]}
    s.save("model-edited.keras")                 # same format, atomic, never over the original
    weightlab.evaluate(s, "heldout.npz")         # or (x, y), x alone, a tf.data.Dataset
    model = s.to_keras()                         # a new Keras model with the edited weights
    weightlab.compare("a.keras", "b.keras")      # per-tensor change between two models

Sweeps, rankings and budget plans, fine-tuning and prune-and-retrain
(:func:`sweep`, :func:`rank`, :func:`plan`, :func:`finetune`,
:func:`prune_retrain`) take a file, a session or a live model. :func:`show`
opens the window from a notebook or a script (:func:`run` blocks until it is
closed).

Importing :mod:`weightlab` is light: NumPy, no TensorFlow, no Qt. The
functions that evaluate or train import TensorFlow when they are called.
"""

from weightlab._version import __version__
from weightlab.api import (
    compare,
    evaluate,
    finetune,
    is_keras_model,
    open,  # noqa: A004 - weightlab.open mirrors builtins.open on purpose
    plan,
    prune_retrain,
    rank,
    sweep,
    to_keras,
)
from weightlab.core.diff import ModelDiff, TensorDiff
from weightlab.core.errors import (
    DataError,
    EngineError,
    FormatError,
    RecipeError,
    UnsafeFileError,
    WeightLabError,
)
from weightlab.core.model import TensorInfo
from weightlab.core.plan import Plan, PlanChoice
from weightlab.core.session import EditSession, Step
from weightlab.core.sweeps import RankResult, SweepPoint, SweepResult, UnitAblation
from weightlab.core.training import EpochRecord, FinetuneResult, PruneRetrainResult, RoundRecord
from weightlab.edits import (
    Add,
    AddNoise,
    Clip,
    ClipPercentile,
    Edit,
    PruneMagnitude,
    PruneNeurons,
    Reinit,
    Revert,
    Scale,
    ScaleNeurons,
    SetValue,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
)
from weightlab.engine.events import Metrics
from weightlab.session import Session
from weightlab.viewer import NoDisplayError, Viewer, run, show  # Qt is imported by show(), not here

__all__ = [
    "Add",
    "AddNoise",
    "Clip",
    "ClipPercentile",
    "DataError",
    "Edit",
    "EditSession",
    "EngineError",
    "EpochRecord",
    "FinetuneResult",
    "FormatError",
    "Metrics",
    "ModelDiff",
    "NoDisplayError",
    "Plan",
    "PlanChoice",
    "PruneMagnitude",
    "PruneNeurons",
    "PruneRetrainResult",
    "RankResult",
    "RecipeError",
    "Reinit",
    "Revert",
    "RoundRecord",
    "Scale",
    "ScaleNeurons",
    "Session",
    "SetValue",
    "Step",
    "SweepPoint",
    "SweepResult",
    "TensorDiff",
    "TensorInfo",
    "UnitAblation",
    "UnsafeFileError",
    "Viewer",
    "WeightLabError",
    "ZeroNeurons",
    "ZeroOutside",
    "ZeroRange",
    "__version__",
    "compare",
    "evaluate",
    "finetune",
    "is_keras_model",
    "open",
    "plan",
    "prune_retrain",
    "rank",
    "run",
    "show",
    "sweep",
    "to_keras",
]

"""The wall around TensorFlow: the only package of WeightLab that imports TensorFlow or Keras.

Everything else (``core``, ``formats``, ``engine``, ``gui``) is TensorFlow-free,
which import-linter checks (``pyproject.toml``: no module outside this package
reaches ``tensorflow``, ``keras`` or ``tf_keras`` by any chain of imports).
The window's process reaches this package only through a process boundary:
the engine worker (:mod:`weightlab._tf.worker`) and the TensorFlow reader
(:mod:`weightlab._tf.reader`) are started by the TensorFlow-free clients in
:mod:`weightlab.engine` through :func:`weightlab.engine.spawn.child_main`,
which names them by string and imports them in the child only. Headless
callers (``weightlab eval``, :func:`weightlab.evaluate`) evaluate in their own
process through :mod:`weightlab._tf.headless`; ``python -m weightlab.demo``
trains through :mod:`weightlab._tf.demo`.

Modules
-------
worker
    The engine worker process: entry point, request loop, cancellation, progress.
reader
    The TensorFlow reader process: entry point answering :mod:`tfio` calls.
tfio
    SavedModel, checkpoint and frozen-GraphDef listing, reading and saving.
model
    Executable Keras models: building (refusing code), naming, mapping tensors to variables.
runtime
    The device, cancellation, and TensorFlow's run-time errors as one-line messages.
incremental
    Analysis of a model's functional graph into cuts (dominators).
session
    :class:`~weightlab._tf.session.EngineSession`: incremental evaluation of a one-output Keras model.
passes
    :func:`~weightlab._tf.passes.open_session` for every format; full-pass sessions.
points
    Many ``base + change`` points of one opened model, each run from its target's frontier.
sweep
    Sweeps (``"sweep"`` jobs and :func:`~weightlab._tf.headless.sweep`).
rank
    Neuron ablation rankings (``"rank"`` jobs and :func:`~weightlab._tf.headless.rank`).
parallel
    Sweeps in local worker processes (``workers=N``): shards, the worker side, the merge.
cluster
    Sweeps on Ray (``ray_address``); the only module that imports Ray.
train
    Fine-tuning and prune-and-retrain (``"finetune"``/``"prune_retrain"`` jobs and
    :func:`~weightlab._tf.headless.finetune`), on ``model.fit``.
headless
    One-shot, in-process evaluation, sweeps, rankings and training for headless callers.
demo
    Training of the bundled demo model.

TensorFlow's environment
------------------------
Importing this package (which Python does before any of its modules, hence
before the first TensorFlow import in any process) sets TensorFlow's
environment once: ``TF_CPP_MIN_LOG_LEVEL`` is 2 (warnings and errors of the
C++ runtime hidden) unless the user set it or verbose mode is on
(``WEIGHTLAB_DEBUG``, see :mod:`weightlab.engine.quiet`), where TensorFlow's
own default (0: everything) applies. ``TF_ENABLE_ONEDNN_OPTS`` and the other
variables that change numerics are left as they are.
"""

from __future__ import annotations

import os

from ..engine.quiet import is_verbose

#: TensorFlow's C++ log level when neither the user nor verbose mode chose one.
QUIET_LOG_LEVEL = "2"


def configure_environment() -> None:
    """Set TensorFlow's environment variables for this process (idempotent; before TensorFlow is imported).

    Runs when this package is imported. A value the user set is kept; in
    verbose mode nothing is set.
    """
    if not is_verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)


configure_environment()

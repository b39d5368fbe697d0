"""Sweeps, rankings and budget plans from plain arguments: the part of :func:`weightlab.sweep`,
:func:`weightlab.rank`, :func:`weightlab.plan` and the ``weightlab sweep|rank|plan`` commands that
runs before any evaluation (TensorFlow-free).

It turns arguments (numbers or the command line's text) into the job specs of
:mod:`weightlab.core.sweeps`, and checks them against the stored model (ops,
parameters, values, targets, the ranked layer) with the format readers only,
so a mistake is reported in a second, naming the file, before TensorFlow is
imported. The evaluation itself is :mod:`weightlab._tf.headless`'s, entered
from :mod:`weightlab` (the one door of the TensorFlow wall for the Python API).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from weightlab.core.catalogue import sweep_param
from weightlab.core.errors import DataError, RecipeError
from weightlab.core.sweeps import RankSpec, SpecError, SweepSpec, parse_range, parse_values, sweep_targets

if TYPE_CHECKING:
    from weightlab.core.model import ModelFile
    from weightlab.core.session import EditSession

__all__ = [
    "DEFAULT_TARGETS",
    "check_rank",
    "check_sweep",
    "is_keras_model",
    "model_source",
    "parse_bounds",
    "rank_spec",
    "sweep_spec",
]

#: Targets of a sweep that names none: every kernel (the whole model's weight matrices and filters).
DEFAULT_TARGETS: tuple[str, ...] = ("*/kernel",)


def is_keras_model(obj: Any) -> bool:
    """True when ``obj`` is a live Keras 3 or ``tf_keras`` model (checked without importing either)."""
    for name in ("keras", "tf_keras"):
        lib = sys.modules.get(name)
        model_class = getattr(lib, "Model", None) if lib is not None else None
        if isinstance(model_class, type) and isinstance(obj, model_class):
            return True
    return False


def model_source(model: Any) -> tuple[Path, dict[str, np.ndarray] | None]:
    """``(model file, edited tensors or None)`` of what a path-based job (sweep, ranking, plan) runs on.

    Parameters
    ----------
    model : str, os.PathLike, EditSession or keras.Model
        A model file (the file as stored); an open
        :class:`~weightlab.core.session.EditSession` (its edited tensors,
        canonical name -> current values, are the base the sweep's points are
        added to); an in-memory session
        (:func:`weightlab._tf.headless.session_from_model`), whose source
        model is written once to a private ``.keras`` file with its original
        values (:func:`weightlab._tf.headless.materialise`, removed when the
        session's model is closed); or a live Keras model, written as it is
        now (:func:`weightlab._tf.headless.materialise_model`). The last two
        import TensorFlow.

    Raises
    ------
    TypeError
        When ``model`` is none of these.
    EngineError
        When Keras cannot write an in-memory model.
    """
    from weightlab.core.session import EditSession

    if isinstance(model, EditSession):
        edited = model.edited_arrays() or None
        if model.model.in_memory:
            from weightlab._tf import headless

            return headless.materialise(model.model), edited
        return Path(model.model.path), edited
    if isinstance(model, (str, os.PathLike)):
        return Path(model), None
    if is_keras_model(model):
        from weightlab._tf import headless

        return headless.materialise_model(model), None
    raise TypeError(
        f"model: expected a file path, an EditSession or a Keras model; got {type(model).__name__}"
    )


def parse_bounds(text: str) -> tuple[float, float]:
    """``"0.01:0.5"`` -> ``(0.01, 0.5)`` (``--adaptive LOW:HIGH``).

    Raises
    ------
    SpecError
        When it is not two finite numbers separated by a colon.
    """
    parts = str(text).split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise SpecError(
            f"sweep spec: field 'adaptive': expected LOW:HIGH, e.g. 0.01:0.5; got {text!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SpecError(f"sweep spec: field 'adaptive': expected finite numbers; got {text!r}")
    return lo, hi


def sweep_spec(
    op: str,
    param: str,
    *,
    values: str | Iterable[float] | None = None,
    range: str | Sequence[float] | None = None,  # noqa: A002 - the public keyword, as --range
    adaptive: bool | str | Sequence[float] | None = None,
    targets: str | Iterable[str] | None = None,
    mode: str = "together",
    budget_pp: float | None = None,
    metric: str = "accuracy",
    fixed: Mapping[str, Any] | None = None,
    coupled: bool = False,
    **options: Any,
) -> SweepSpec:
    """A :class:`~weightlab.core.sweeps.SweepSpec` from API or command-line arguments.

    Parameters
    ----------
    op, param:
        A catalogue op and one of its sweepable parameters
        (:func:`weightlab.core.catalogue.sweepable_params`), e.g. ``"clip"``,
        ``"threshold"``.
    values:
        Explicit values (numbers, or the text ``"0.3,0.1,0.05"``).
    range:
        ``(start, stop, step)`` or ``"start:stop:step"``, stop included.
    adaptive:
        ``(low, high)``, ``"low:high"``, or True for the parameter's whole
        valid range (only when both ends are finite).
    targets:
        A glob, tensor, layer or ``group:`` id, or several; default
        :data:`DEFAULT_TARGETS` (every kernel).
    mode:
        ``"together"`` (one curve, every target edited at once) or ``"each"``
        (one curve per target, each edited alone).
    budget_pp:
        Early stop: a target's stronger values are skipped once its drop
        exceeds this many percentage points.
    metric:
        ``"accuracy"`` or ``"agreement"``.
    fixed:
        The op's other parameters (``{"scope": "global"}``).
    coupled:
        Each mode, neuron ops: sweep coupled layers as their group.
    options:
        Further :class:`~weightlab.core.sweeps.SweepSpec` fields
        (``max_points``, ``initial_points``, ``scale``, ``resolution_pp``).

    Raises
    ------
    SpecError
        (a :class:`~weightlab.core.errors.RecipeError`) for an unknown op or
        parameter, not exactly one of ``values``/``range``/``adaptive``, a value
        out of the parameter's range, or any other bad field; the message
        names the field.
    """
    given = [
        n for n, v in (("values", values), ("range", range), ("adaptive", adaptive)) if v not in (None, False)
    ]
    if len(given) != 1:
        raise SpecError(
            f"sweep spec: field 'values': give exactly one of values, range, adaptive; got {given or 'none'}"
        )
    if isinstance(values, str):
        values = parse_values(values)
    if isinstance(range, str):
        range = parse_range(range)  # noqa: A001
    if adaptive is True:
        sp = sweep_param(op, param)
        if not (math.isfinite(sp.lo) and math.isfinite(sp.hi)):
            raise SpecError(
                f"sweep spec: field 'adaptive': {op}.{param} has no finite range "
                f"([{sp.lo:g}, {sp.hi:g}]); give its bounds LOW:HIGH"
            )
        adaptive = (sp.lo, sp.hi)
    elif isinstance(adaptive, str):
        adaptive = parse_bounds(adaptive)
    if targets is None:
        targets = DEFAULT_TARGETS
    elif isinstance(targets, str):
        targets = (targets,)
    return SweepSpec(
        op=op,
        param=param,
        targets=tuple(targets),
        values=tuple(values) if values is not None else (),
        value_range=tuple(range) if range is not None else None,  # type: ignore[arg-type]
        adaptive=tuple(adaptive) if adaptive is not None else None,  # type: ignore[arg-type]
        mode=mode,
        budget_pp=budget_pp,
        metric=metric,
        fixed=dict(fixed or {}),
        coupled=coupled,
        **options,
    )


def rank_spec(
    layer: str, *, ablation: str = "zero", cumulative: bool = True, batchnorm: bool | None = None
) -> RankSpec:
    """A :class:`~weightlab.core.sweeps.RankSpec` (see there).

    Raises
    ------
    SpecError
        For a bad field (an empty layer name, an unknown ablation).
    """
    return RankSpec(layer=layer, ablation=ablation, cumulative=cumulative, batchnorm=batchnorm)


def _open_model(path: Path) -> EditSession:
    import weightlab

    return weightlab.open(path)


def _check_data(data: str | os.PathLike[str]) -> None:
    p = Path(data)
    if not p.is_file():
        raise DataError(f"{p}: no such held-out file" if not p.exists() else f"{p}: not a file")


def check_sweep(
    spec: SweepSpec, model_path: str | os.PathLike[str], data: str | os.PathLike[str]
) -> list[str]:
    """Check ``spec``'s targets on the stored model (no evaluation, no TensorFlow) and the held-out path.

    Returns
    -------
    list of str
        The targets' names (the curves a sweep gives), in model order.

    Raises
    ------
    FormatError
        When the model file is missing or not a model.
    DataError
        When the held-out file is missing.
    RecipeError
        When a target matches nothing or does not fit the op; the message
        starts with the model file.
    """
    session = _open_model(Path(model_path))
    try:
        _check_data(data)
        return [t.name for t in _named(model_path, lambda: sweep_targets(spec, session.model))]
    finally:
        session.model.close()


def check_rank(spec: RankSpec, model_path: str | os.PathLike[str], data: str | os.PathLike[str]) -> int:
    """Check that ``spec.layer`` has output units to rank (no TensorFlow).

    Returns
    -------
    int
        How many units the layer has.

    Raises
    ------
    FormatError, DataError
        As :func:`check_sweep`.
    RecipeError
        When the layer does not exist or has no kernel; the message starts
        with the model file.
    """
    from weightlab.core.edits import neuron_count, neuron_tensors

    session = _open_model(Path(model_path))
    try:
        _check_data(data)
        model: ModelFile = session.model
        return _named(
            model_path, lambda: (neuron_tensors(spec.layer, model), neuron_count(spec.layer, model))[1]
        )
    finally:
        session.model.close()


def _named(model_path: str | os.PathLike[str], check: Any) -> Any:
    """Run ``check()``; a :class:`RecipeError` it raises is raised again with the model file first."""
    try:
        return check()
    except SpecError:
        raise
    except RecipeError as e:
        raise RecipeError(f"{model_path}: {e}") from None

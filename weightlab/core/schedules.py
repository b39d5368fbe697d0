"""Learning-rate and sparsity schedules as data, with their formulas in NumPy (no TensorFlow).

Two families, each a small frozen, serialisable object:

:class:`LRSchedule`
    Keras' own learning-rate schedules (``keras.optimizers.schedules``):
    ``ExponentialDecay``, ``PiecewiseConstantDecay``, ``CosineDecay`` and
    ``PolynomialDecay``. :meth:`LRSchedule.keras_config` gives the
    ``{"class_name", "config"}`` dict that
    ``keras.optimizers.schedules.deserialize`` turns into Keras' object (the
    engine trains with that object, never with this module's formulas);
    :meth:`LRSchedule.values` is a NumPy mirror of the same formulas so the
    window can plot the rate against the step before training starts, without
    importing TensorFlow.

:class:`SparsitySchedule`
    TensorFlow Model Optimization's pruning schedules (``PolynomialDecay``
    and ``ConstantSparsity`` of ``tfmot.sparsity.keras``), which do not exist
    for Keras 3 (tensorflow/model-optimization issue #1119). Calling one with
    a training step gives ``(prune at this step?, sparsity)`` exactly as
    TF-MOT's schedule object does.

The formulas are transcribed from Keras 3.15's
``keras/src/optimizers/schedules/learning_rate_schedule.py`` and TF-MOT 0.8.1's
``tensorflow_model_optimization/python/core/sparsity/keras/pruning_schedule.py``;
``tests/test_schedules.py`` compares them with those libraries' objects. Keras
and TF-MOT compute in float32; these mirrors compute in float64, so they agree
within float32 rounding (about 1e-7 relative).

Text forms (the command line's ``--schedule``)::

    exponential_decay:decay_steps=10000,decay_rate=0.9
    piecewise_constant_decay:boundaries=100/200,values=0.1/0.01/0.001
    polynomial_decay:initial_sparsity=0.3,final_sparsity=0.7,begin_step=0,end_step=1000

Every validation failure is a :class:`ValueError` whose message says which
parameter is wrong, what was received and what is expected; callers that read
user files wrap it in their own :class:`~weightlab.core.errors.WeightLabError`
naming the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "LR_SCHEDULES",
    "SPARSITY_SCHEDULES",
    "LRSchedule",
    "SparsitySchedule",
]

#: Learning-rate schedule kinds, in the order the window lists them.
LR_SCHEDULES = ("exponential_decay", "piecewise_constant_decay", "cosine_decay", "polynomial_decay")

#: Pruning (sparsity) schedule kinds.
SPARSITY_SCHEDULES = ("polynomial_decay", "constant_sparsity")

#: Keras' class name of each learning-rate schedule kind.
_LR_CLASS = {
    "exponential_decay": "ExponentialDecay",
    "piecewise_constant_decay": "PiecewiseConstantDecay",
    "cosine_decay": "CosineDecay",
    "polynomial_decay": "PolynomialDecay",
}

#: TF-MOT's class name of each sparsity schedule kind.
_SPARSITY_CLASS = {"polynomial_decay": "PolynomialDecay", "constant_sparsity": "ConstantSparsity"}

_REQUIRED = object()


@dataclass(frozen=True)
class _Param:
    """One schedule parameter: its name, value kind and default (``_REQUIRED``: none)."""

    name: str
    kind: str  # "steps" (int > 0), "count" (int >= 0), "int_list", "float_list", "positive", "fraction", "float", "opt_float", "bool"
    default: Any = _REQUIRED


#: The parameters of each learning-rate schedule: Keras' constructor arguments
#: except ``initial_learning_rate`` and ``name``, with Keras' defaults.
_LR_PARAMS: dict[str, tuple[_Param, ...]] = {
    "exponential_decay": (
        _Param("decay_steps", "steps"),
        _Param("decay_rate", "positive"),
        _Param("staircase", "bool", False),
    ),
    "piecewise_constant_decay": (
        _Param("boundaries", "int_list"),
        _Param("values", "float_list"),
    ),
    "cosine_decay": (
        _Param("decay_steps", "steps"),
        _Param("alpha", "fraction", 0.0),
        _Param("warmup_target", "opt_float", None),
        _Param("warmup_steps", "count", 0),
    ),
    "polynomial_decay": (
        _Param("decay_steps", "steps"),
        _Param("end_learning_rate", "float", 0.0001),
        _Param("power", "positive", 1.0),
        _Param("cycle", "bool", False),
    ),
}

_EXPECTED = {
    "steps": "a positive integer",
    "count": "a non-negative integer",
    "int_list": "a list of non-negative integers",
    "float_list": "a list of finite numbers",
    "positive": "a finite number > 0",
    "fraction": "a number in [0, 1]",
    "float": "a finite number",
    "opt_float": "a finite number or none",
    "bool": "true or false",
}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False


def _as_int(value: Any) -> int | None:
    """``value`` as an int if it is an integral finite number (``1e4`` -> 10000), else None."""
    if not _is_number(value):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return int(value) if float(value).is_integer() else None


def _check_value(where: str, p: _Param, value: Any) -> Any:
    """Validate and normalise one parameter value; lists become tuples."""

    def bad(extra: str = "") -> ValueError:
        return ValueError(f"{where}: {p.name} must be {_EXPECTED[p.kind]}{extra}; got {_short(value)}")

    kind = p.kind
    if kind in ("steps", "count"):
        n = _as_int(value)
        if n is None or n < (1 if kind == "steps" else 0):
            raise bad()
        return n
    if kind in ("int_list", "float_list"):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise bad(" (at least one)")
        if kind == "int_list":
            ints = [_as_int(v) for v in items]
            if any(n is None or n < 0 for n in ints):
                raise bad()
            return tuple(ints)
        if not all(_is_number(v) for v in items):
            raise bad()
        return tuple(float(v) for v in items)
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise bad()
    if kind == "opt_float" and value is None:
        return None
    if not _is_number(value):
        raise bad()
    x = float(value)
    if kind == "positive" and not x > 0:
        raise bad()
    if kind == "fraction" and not 0.0 <= x <= 1.0:
        raise bad()
    return x


def _normalise_kind(kind: Any, known: tuple[str, ...], classes: Mapping[str, str], what: str) -> str:
    """A kind as its snake_case name; Keras/TF-MOT class names are accepted too."""
    if isinstance(kind, str):
        if kind in known:
            return kind
        by_class = {c.lower(): k for k, c in classes.items()}
        if kind.lower() in by_class:
            return by_class[kind.lower()]
    raise ValueError(f"unknown {what} {_short(kind)}; known: {', '.join(known)}")


def _steps_array(steps: Any, where: str, integral: bool) -> np.ndarray:
    """``steps`` as a float64 (or int64) array; negative, non-finite or non-integral steps are refused."""
    try:
        s = np.asarray(steps, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: steps must be numbers; got {_short(steps)}") from None
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{where}: steps must be finite; got {_short(steps)}")
    if integral:
        if not np.all(s == np.floor(s)):
            raise ValueError(f"{where}: steps must be integers; got {_short(steps)}")
        return np.asarray(steps).astype(np.int64)
    if np.any(s < 0):
        raise ValueError(f"{where}: steps must be >= 0; got {_short(steps)}")
    return s


def _format(value: Any) -> str:
    """A parameter as in a Python call: ``0.9``, ``10000``, ``True``, ``[100, 200]``."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return repr(value)


# -- text form -------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _parse_scalar(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"{_short(t)} is not a number, true/false or none") from None


def _parse_text(text: Any, what: str) -> tuple[str, dict[str, Any]]:
    """``"kind:key=value,key=v1/v2"`` -> ``(kind, {key: value, key: [v1, v2]})``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: expected 'kind:key=value,...'; got {_short(text)}")
    kind, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not _KEY.match(key) or not value.strip():
            raise ValueError(f"{what} {_short(text)}: expected key=value; got {_short(item)}")
        if key in params:
            raise ValueError(f"{what} {_short(text)}: {key} given twice")
        try:
            parts = [_parse_scalar(v) for v in value.split("/")]
        except ValueError as e:
            raise ValueError(f"{what} {_short(text)}: {key}: {e}") from None
        params[key] = parts if len(parts) > 1 else parts[0]
    return kind.strip(), params


# -- learning-rate schedules ----------------------------------------------------------


@dataclass(frozen=True)
class LRSchedule:
    """A Keras learning-rate schedule, without its initial learning rate.

    Parameters
    ----------
    kind:
        One of :data:`LR_SCHEDULES` (Keras' class names such as
        ``"ExponentialDecay"`` are accepted and stored as the snake_case kind).
    params:
        Keras' constructor arguments except ``initial_learning_rate`` and
        ``name``; missing optional ones take Keras' defaults, so ``params``
        always holds every argument of the kind (lists are stored as tuples;
        the mapping is read-only):

        - ``exponential_decay``: ``decay_steps`` (int > 0), ``decay_rate``
          (> 0), ``staircase=False``
        - ``piecewise_constant_decay``: ``boundaries`` (strictly increasing
          non-negative ints), ``values`` (floats, one more than boundaries);
          the initial learning rate is ignored, ``values[0]`` is the rate
          until the first boundary
        - ``cosine_decay``: ``decay_steps`` (int > 0), ``alpha=0.0`` (in
          [0, 1]), ``warmup_target=None``, ``warmup_steps=0``
        - ``polynomial_decay``: ``decay_steps`` (int > 0),
          ``end_learning_rate=0.0001``, ``power=1.0`` (> 0), ``cycle=False``

    Raises
    ------
    ValueError
        Unknown kind (the known ones are listed), a missing or unknown
        parameter, a value of the wrong type or range, boundaries that do not
        increase, ``len(values) != len(boundaries) + 1``.

    Examples
    --------
    >>> s = LRSchedule.parse("exponential_decay:decay_steps=10000,decay_rate=0.9")
    >>> s.describe(0.001)
    'ExponentialDecay(0.001, decay_steps=10000, decay_rate=0.9)'
    >>> float(s.values(10000, 0.001))
    0.0009000000000000001
    """

    kind: str
    params: Mapping[str, Any]

    def __post_init__(self) -> None:
        kind = _normalise_kind(self.kind, LR_SCHEDULES, _LR_CLASS, "learning-rate schedule")
        where = kind
        if not isinstance(self.params, Mapping):
            raise ValueError(f"{where}: params must be a mapping; got {_short(self.params)}")
        spec = _LR_PARAMS[kind]
        names = [p.name for p in spec]
        unknown = sorted(set(self.params) - set(names))
        if unknown:
            raise ValueError(
                f"{where}: unknown parameter(s) {', '.join(map(str, unknown))}; expected {', '.join(names)}"
            )
        missing = [p.name for p in spec if p.default is _REQUIRED and p.name not in self.params]
        if missing:
            raise ValueError(f"{where}: missing parameter(s) {', '.join(missing)}")
        params = {
            p.name: _check_value(where, p, self.params[p.name]) if p.name in self.params else p.default
            for p in spec
        }
        if kind == "piecewise_constant_decay":
            b, v = params["boundaries"], params["values"]
            if any(hi <= lo for lo, hi in zip(b, b[1:])):
                raise ValueError(f"{where}: boundaries must be strictly increasing; got {_format(b)}")
            if len(v) != len(b) + 1:
                raise ValueError(
                    f"{where}: values must have one more entry than boundaries "
                    f"({len(b)} boundaries, so {len(b) + 1} values); got {len(v)} values"
                )
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", MappingProxyType(params))

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.params.items())))

    def __reduce__(self) -> tuple[Any, ...]:  # a mappingproxy does not pickle
        return (LRSchedule, (self.kind, dict(self.params)))

    def __repr__(self) -> str:
        return f"LRSchedule({self.kind!r}, {dict(self.params)!r})"

    # -- serialisation --

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": kind, **params}`` with JSON values (tuples as lists, ``None`` for no warmup)."""
        return {
            "kind": self.kind,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "schedule") -> LRSchedule:
        """Build from :meth:`to_dict`'s form, validating everything.

        Parameters
        ----------
        data:
            ``{"kind": ..., **params}`` (a recipe's or spec's JSON object).
        source:
            How to name the schedule in an error (``"recipe.json: step 2"``).

        Raises
        ------
        ValueError
            ``data`` is not a mapping, has no ``kind``, or fails the
            validation of the constructor; the message starts with ``source``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected an object with a 'kind'; got {_short(data)}")
        if "kind" not in data:
            raise ValueError(f"{source}: missing 'kind' (one of {', '.join(LR_SCHEDULES)})")
        params = {k: v for k, v in data.items() if k != "kind"}
        try:
            return cls(data["kind"], params)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def parse(cls, text: str) -> LRSchedule:
        """Parse the command line's form, ``"kind:key=value,key=value"``.

        Numbers are ints or floats (``1e4`` is accepted where an int is
        expected), ``true``/``false`` booleans, ``none`` no value; lists are
        written with ``/``: ``"piecewise_constant_decay:boundaries=100/200,values=0.1/0.01/0.001"``.

        Raises
        ------
        ValueError
            Malformed text or an invalid schedule; the message quotes the text.
        """
        kind, params = _parse_text(text, "learning-rate schedule")
        return cls.from_dict({"kind": kind, **params}, source=f"learning-rate schedule {_short(text)}")

    # -- Keras --

    def keras_config(self, initial_lr: float) -> dict[str, Any]:
        """The serialised Keras schedule for ``keras.optimizers.schedules.deserialize``.

        Parameters
        ----------
        initial_lr:
            The optimizer's initial learning rate (ignored by
            ``piecewise_constant_decay``, whose ``values`` hold every rate).

        Returns
        -------
        dict
            ``{"class_name": "ExponentialDecay", "config": {"initial_learning_rate": ..., ...}}``
            with plain JSON values (floats as floats, so Keras computes in float32).
        """
        config: dict[str, Any] = {}
        if self.kind != "piecewise_constant_decay":
            config["initial_learning_rate"] = self._initial(initial_lr)
        for k, v in self.params.items():
            config[k] = list(v) if isinstance(v, tuple) else v
        return {"class_name": _LR_CLASS[self.kind], "config": config}

    def values(self, steps: Any, initial_lr: float) -> np.ndarray:
        """The learning rate at each optimizer step, in float64 (NumPy mirror of Keras' ``__call__``).

        Formulas from Keras' ``learning_rate_schedule.py`` (``s`` the step):

        - ExponentialDecay: ``lr0 * decay_rate ** (s / decay_steps)``
          (``floor(s / decay_steps)`` when ``staircase``)
        - PiecewiseConstantDecay: ``values[0]`` while ``s <= boundaries[0]``,
          ``values[i + 1]`` while ``boundaries[i] < s <= boundaries[i + 1]``,
          ``values[-1]`` after the last boundary
        - CosineDecay: with ``warmup_target``, linear from ``lr0`` to
          ``warmup_target`` over ``warmup_steps``, then, with ``s`` counted
          from the end of warmup and capped at ``decay_steps``,
          ``start * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``
          where ``start`` is ``warmup_target`` (or ``lr0`` without warmup)
        - PolynomialDecay: ``(lr0 - end) * (1 - s / d) ** power + end`` with
          ``s`` capped at ``d = decay_steps``; with ``cycle``,
          ``d = decay_steps * ceil(s / decay_steps)`` (``decay_steps`` at step 0)

        Parameters
        ----------
        steps:
            An int or an array of ints (any shape), each >= 0 (the optimizer's
            ``iterations`` before the update).
        initial_lr:
            The initial learning rate, a finite number.

        Returns
        -------
        numpy.ndarray
            float64, the shape of ``steps`` (0-d for a scalar).

        Raises
        ------
        ValueError
            Negative or non-finite steps, or a non-finite ``initial_lr``.
        """
        where = self.kind
        s = _steps_array(steps, where, integral=False)
        lr0 = self._initial(initial_lr)
        p = self.params
        if self.kind == "exponential_decay":
            e = s / p["decay_steps"]
            if p["staircase"]:
                e = np.floor(e)
            return lr0 * np.power(p["decay_rate"], e)
        if self.kind == "piecewise_constant_decay":
            index = np.searchsorted(np.asarray(p["boundaries"], dtype=np.float64), s, side="left")
            return np.asarray(p["values"], dtype=np.float64)[index]
        if self.kind == "cosine_decay":
            d = float(p["decay_steps"])

            def decay(t: np.ndarray, start: float) -> np.ndarray:
                cosine = 0.5 * (1.0 + np.cos(np.pi * (t / d)))
                return start * ((1.0 - p["alpha"]) * cosine + p["alpha"])

            if p["warmup_target"] is None:
                return decay(np.minimum(s, d), lr0)
            target, warm = p["warmup_target"], float(p["warmup_steps"])
            t = np.minimum(s, d + warm)
            warming = (target - lr0) * (t / warm) + lr0 if warm > 0 else np.zeros_like(t)
            return np.where(t < warm, warming, decay(t - warm, target))
        # polynomial_decay
        steps = float(p["decay_steps"])
        if p["cycle"]:
            span = steps * np.where(s == 0, 1.0, np.ceil(s / steps))
            t = s
        else:
            span = np.full_like(s, steps)
            t = np.minimum(s, steps)
        end = p["end_learning_rate"]
        return (lr0 - end) * np.power(1.0 - t / span, p["power"]) + end

    def describe(self, initial_lr: float) -> str:
        """Keras' constructor call: ``"ExponentialDecay(0.001, decay_steps=10000, decay_rate=0.9)"``.

        Required parameters are always shown, optional ones only when they
        differ from Keras' defaults.
        """
        spec = _LR_PARAMS[self.kind]
        parts = [] if self.kind == "piecewise_constant_decay" else [_format(self._initial(initial_lr))]
        parts += [
            f"{q.name}={_format(self.params[q.name])}"
            for q in spec
            if q.default is _REQUIRED or self.params[q.name] != q.default
        ]
        return f"{_LR_CLASS[self.kind]}({', '.join(parts)})"

    def _initial(self, initial_lr: Any) -> float:
        if not _is_number(initial_lr):
            raise ValueError(
                f"{self.kind}: initial learning rate must be a finite number; got {_short(initial_lr)}"
            )
        return float(initial_lr)


# -- sparsity schedules -------------------------------------------------------------------


@dataclass(frozen=True)
class SparsitySchedule:
    """TensorFlow Model Optimization's pruning schedules, for Keras 3 (no TF-MOT, no TensorFlow).

    Parameters
    ----------
    kind:
        ``"polynomial_decay"`` (TF-MOT's ``PolynomialDecay``) or
        ``"constant_sparsity"`` (``ConstantSparsity``).
    final_sparsity:
        The sparsity reached at ``end_step`` (polynomial_decay), or the
        constant ``target_sparsity`` (constant_sparsity); in [0, 1).
    initial_sparsity:
        Sparsity at ``begin_step``, in [0, 1); polynomial_decay only.
    begin_step:
        First step at which masks are updated, >= 0.
    end_step:
        Last step at which masks are updated; ``-1`` (constant_sparsity only)
        means no end. polynomial_decay needs ``end_step > begin_step``.
    power:
        Exponent of the polynomial (TF-MOT's default 3), > 0; polynomial_decay only.
    frequency:
        Masks are updated every ``frequency`` steps from ``begin_step``, >= 1.

    Raises
    ------
    ValueError
        Unknown kind, a sparsity outside [0, 1), ``begin_step < 0``,
        ``end_step`` neither -1 nor >= ``begin_step`` (> for
        polynomial_decay), ``frequency < 1``, ``power <= 0``, or
        ``initial_sparsity``/``power`` given to constant_sparsity.

    Examples
    --------
    >>> s = SparsitySchedule("polynomial_decay", 0.7, initial_sparsity=0.3, begin_step=0, end_step=1000)
    >>> s(0), s(100)  # TF-MOT: 0.7 + (0.3 - 0.7) * (1 - 100 / 1000) ** 3
    ((True, 0.3), (True, 0.4084))
    """

    kind: str
    final_sparsity: float
    initial_sparsity: float = 0.0
    begin_step: int = 0
    end_step: int = -1
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self) -> None:
        kind = _normalise_kind(self.kind, SPARSITY_SCHEDULES, _SPARSITY_CLASS, "sparsity schedule")
        where = kind
        final_name = "final_sparsity" if kind == "polynomial_decay" else "target_sparsity"
        for name, value in ((final_name, self.final_sparsity), ("initial_sparsity", self.initial_sparsity)):
            if not _is_number(value) or not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{where}: {name} must be a number in [0, 1); got {_short(value)}")
        begin, end, freq = (_as_int(v) for v in (self.begin_step, self.end_step, self.frequency))
        if begin is None or begin < 0:
            raise ValueError(f"{where}: begin_step must be an integer >= 0; got {_short(self.begin_step)}")
        if freq is None or freq < 1:
            raise ValueError(f"{where}: frequency must be an integer >= 1; got {_short(self.frequency)}")
        if not _is_number(self.power) or not float(self.power) > 0:
            raise ValueError(f"{where}: power must be a number > 0; got {_short(self.power)}")
        if kind == "polynomial_decay":
            if end is None or end <= begin:
                raise ValueError(
                    f"{where}: end_step must be an integer > begin_step ({begin}); got {_short(self.end_step)}"
                )
        else:
            if end is None or (end != -1 and end < begin):
                raise ValueError(
                    f"{where}: end_step must be -1 (no end) or an integer >= begin_step ({begin}); "
                    f"got {_short(self.end_step)}"
                )
            if float(self.initial_sparsity) != 0.0:
                raise ValueError(f"{where}: initial_sparsity applies to polynomial_decay only")
            if float(self.power) != 3.0:
                raise ValueError(f"{where}: power applies to polynomial_decay only")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "final_sparsity", float(self.final_sparsity))
        object.__setattr__(self, "initial_sparsity", float(self.initial_sparsity))
        object.__setattr__(self, "begin_step", begin)
        object.__setattr__(self, "end_step", end)
        object.__setattr__(self, "power", float(self.power))
        object.__setattr__(self, "frequency", freq)

    def __call__(self, step: Any) -> tuple[Any, Any]:
        """``(prune at this step?, sparsity)``, as TF-MOT's ``schedule(step)``.

        From TF-MOT's ``pruning_schedule.py``: masks are updated at ``step``
        when ``begin_step <= step`` and (``step <= end_step`` or
        ``end_step == -1``) and ``(step - begin_step) % frequency == 0``.
        The sparsity is ``target_sparsity`` (ConstantSparsity) or
        ``final + (initial - final) * (1 - p) ** power`` with
        ``p = clip((step - begin_step) / (end_step - begin_step), 0, 1)``
        (PolynomialDecay), at every step, pruning or not.

        Parameters
        ----------
        step:
            An int (any sign), or an array of ints.

        Returns
        -------
        tuple
            ``(bool, float)`` for an int; ``(bool array, float64 array)`` of
            the steps' shape for an array.

        Raises
        ------
        ValueError
            A step that is not an integer.
        """
        s = _steps_array(step, self.kind, integral=True)
        begin, end = self.begin_step, self.end_step
        prune = (s >= begin) & ((s <= end) | (end < 0)) & ((s - begin) % self.frequency == 0)
        if self.kind == "constant_sparsity":
            sparsity = np.full(s.shape, self.final_sparsity)
        else:
            p = np.clip((s - begin) / float(end - begin), 0.0, 1.0)
            sparsity = (self.initial_sparsity - self.final_sparsity) * np.power(
                1.0 - p, self.power
            ) + self.final_sparsity
        if s.ndim == 0:
            return bool(prune), float(sparsity)
        return prune, sparsity

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "final_sparsity", ...}`` with JSON values; constant_sparsity leaves out
        ``initial_sparsity`` and ``power``, which it does not take."""
        d: dict[str, Any] = {"kind": self.kind, "final_sparsity": self.final_sparsity}
        if self.kind == "polynomial_decay":
            d["initial_sparsity"] = self.initial_sparsity
        d.update(begin_step=self.begin_step, end_step=self.end_step)
        if self.kind == "polynomial_decay":
            d["power"] = self.power
        d["frequency"] = self.frequency
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "sparsity schedule") -> SparsitySchedule:
        """Build from :meth:`to_dict`'s form (``target_sparsity`` is accepted for ``final_sparsity``).

        Raises
        ------
        ValueError
            Not a mapping, no ``kind``, unknown or missing keys, or invalid
            values; the message starts with ``source``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected an object with a 'kind'; got {_short(data)}")
        if "kind" not in data:
            raise ValueError(f"{source}: missing 'kind' (one of {', '.join(SPARSITY_SCHEDULES)})")
        params = {k: v for k, v in data.items() if k != "kind"}
        if "target_sparsity" in params:
            if "final_sparsity" in params:
                raise ValueError(f"{source}: give final_sparsity or target_sparsity, not both")
            params["final_sparsity"] = params.pop("target_sparsity")
        allowed = ("final_sparsity", "initial_sparsity", "begin_step", "end_step", "power", "frequency")
        unknown = sorted(set(params) - set(allowed), key=str)
        if unknown:
            raise ValueError(
                f"{source}: unknown parameter(s) {', '.join(map(str, unknown))}; expected {', '.join(allowed)}"
            )
        if "final_sparsity" not in params:
            raise ValueError(f"{source}: missing final_sparsity (target_sparsity)")
        try:
            return cls(data["kind"], **params)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def parse(cls, text: str) -> SparsitySchedule:
        """Parse ``"polynomial_decay:initial_sparsity=0.3,final_sparsity=0.7,begin_step=0,end_step=1000"``
        or ``"constant_sparsity:target_sparsity=0.5,frequency=50"``.

        Raises
        ------
        ValueError
            Malformed text or an invalid schedule; the message quotes the text.
        """
        kind, params = _parse_text(text, "sparsity schedule")
        return cls.from_dict({"kind": kind, **params}, source=f"sparsity schedule {_short(text)}")

    def describe(self) -> str:
        """TF-MOT's constructor call, e.g.
        ``"PolynomialDecay(initial_sparsity=0.3, final_sparsity=0.7, begin_step=0, end_step=1000)"``;
        ``power`` and ``frequency`` are shown when they differ from TF-MOT's defaults (3, 100)."""
        if self.kind == "polynomial_decay":
            parts = [
                f"initial_sparsity={self.initial_sparsity!r}",
                f"final_sparsity={self.final_sparsity!r}",
                f"begin_step={self.begin_step}",
                f"end_step={self.end_step}",
            ]
            if self.power != 3.0:
                parts.append(f"power={self.power!r}")
        else:
            parts = [f"target_sparsity={self.final_sparsity!r}", f"begin_step={self.begin_step}"]
            if self.end_step != -1:
                parts.append(f"end_step={self.end_step}")
        if self.frequency != 100:
            parts.append(f"frequency={self.frequency}")
        return f"{_SPARSITY_CLASS[self.kind]}({', '.join(parts)})"

"""Explicit learned state: named numpy arrays and plain Python scalars.

Every posterior and every built-in agent lists its state by name (``state()`` /
``_state()``); nothing is found by looking through an object's attributes. A
state coming back in (from a file, say) is checked against the live one before
anything is overwritten: the same names, arrays of the same shape and dtype,
scalars of the same kind. Names compose with a prefix per part, ``"model.chol"``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

StateValue = np.ndarray | int | float
State = dict[str, StateValue]


def prefixed(prefix: str, state: Mapping[str, StateValue]) -> State:
    """``{"chol": ...}`` -> ``{"model.chol": ...}`` for ``prefix="model"``."""
    return {f"{prefix}.{name}": value for name, value in state.items()}


def unprefixed(prefix: str, state: Mapping[str, StateValue]) -> State:
    """The entries of ``state`` under ``prefix``, with the prefix taken off (inverse of :func:`prefixed`)."""
    head = f"{prefix}."
    return {name[len(head):]: value for name, value in state.items() if name.startswith(head)}


def check_state(owner: str, expected: Mapping[str, StateValue], given: Mapping[str, StateValue]) -> State:
    """Copies of the values in ``given`` after checking them against ``expected`` (the live state).

    Arrays must match in shape and dtype, ints must be ints, floats real numbers; scalars come back as
    plain Python ``int`` / ``float``. Errors name ``owner`` and the offending entry.

    Example:
        >>> check_state("agent", {"n": 0, "x": np.zeros(2)}, {"n": 3, "x": np.ones(2)})
        {'n': 3, 'x': array([1., 1.])}
    """
    if not isinstance(given, Mapping):
        raise TypeError(f"{owner}: expected a mapping name -> array or scalar, got {type(given).__name__}")
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{owner}: state names differ: missing {missing}, unexpected {unexpected}")
    out: State = {}
    for name, want in expected.items():
        value = given[name]
        if isinstance(want, np.ndarray):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{owner}: {name} must be an array of shape {want.shape}, got {type(value).__name__}")
            if value.shape != want.shape:
                raise ValueError(f"{owner}: {name} has shape {value.shape}, expected {want.shape}")
            if value.dtype != want.dtype:
                raise ValueError(f"{owner}: {name} has dtype {value.dtype}, expected {want.dtype}")
            out[name] = np.array(value, copy=True)
        elif isinstance(want, bool) or not isinstance(want, (int, float)):
            raise TypeError(f"{owner}: {name} is listed as state but is a {type(want).__name__}, "
                            "not an array, int or float")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
        elif isinstance(want, int):
            if not isinstance(value, numbers.Integral):
                raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
            out[name] = int(value)
        else:
            out[name] = float(value)
    return out


def snapshot(state: Mapping[str, StateValue]) -> State:
    """A copy of ``state`` whose arrays share no memory with the live ones."""
    return {name: value.copy() if isinstance(value, np.ndarray) else value for name, value in state.items()}

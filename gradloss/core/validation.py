"""Checks of parameters where they enter, in one message shape (after scikit-learn's):

"The 'epochs' parameter of TrainConfig must be an int in the range [1, 500]. Got 0 instead."

`check_int` and `check_float` return the value as a Python int or float: a NumPy scalar
(np.int64(1), np.float32(0.1)) is a number to check but not to keep, since JSON (the store, a
checkpoint, the queue) refuses it. Every config stores what they return.
"""
from __future__ import annotations

import math
from dataclasses import fields
from numbers import Integral, Real

from gradloss.core.errors import InvalidParameterError


def fail(owner: str, name: str, allowed: str, value, words: str | None = None) -> None:
    """Raise InvalidParameterError; `words` is the rule for people ("a whole number from 1 to
    500"), kept on the error with the parameter and the value so a form can name its own field."""
    error = InvalidParameterError(
        f"The {name!r} parameter of {owner} must be {allowed}. Got {value!r} instead.")
    error.parameter, error.value, error.words = name, value, words or allowed
    raise error


def plain(value):
    """`value` with NumPy (or other) number scalars as Python int or float, inside dicts, lists
    and tuples too; bools, strings and everything else as they are."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def check_int(owner: str, name: str, value, low: int, high: int | None = None) -> int:
    """`value` as a Python int if it is an int (NumPy's too) in [low, high]; else fail."""
    upper = "inf)" if high is None else f"{high}]"
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low or (
            high is not None and value > high):
        words = f"a whole number of at least {low}" if high is None else \
            f"a whole number from {low} to {high}"
        fail(owner, name, f"an int in the range [{low}, {upper}", value, words)
    return int(value)


def check_float(owner: str, name: str, value, low: float, high: float | None = None,
                low_open: bool = False) -> float:
    """`value` as a Python float if it is a finite number (NumPy's too) in range; else fail."""
    upper = "inf)" if high is None else f"{high}]"
    allowed = f"a float in the range {'(' if low_open else '['}{low}, {upper}"
    words = f"a number {'greater than' if low_open else 'of at least'} {low:g}" + (
        "" if high is None else f" and at most {high:g}")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        fail(owner, name, allowed, value, words)  # NaN and inf are never in range
    if value < low or (low_open and value == low) or (high is not None and value > high):
        fail(owner, name, allowed, value, words)
    return float(value)


def check_choice(owner: str, name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        among = "{" + ", ".join(repr(c) for c in choices) + "}"
        fail(owner, name, f"a str among {among}", value, "one of " + ", ".join(choices))


def as_config(owner: str, name: str, value, kind):
    """`value` as a `kind` (a config class with from_dict): itself, or built from a dict of its
    fields (a bad field fails with kind's own message); anything else fails."""
    if isinstance(value, dict):
        value = kind.from_dict(dict(value))
    if not isinstance(value, kind):
        fail(owner, name, f"a {kind.__name__} or a dict of its fields", value)
    return value


def build_from_dict(cls, data: dict):
    """cls(**data) for a config dataclass, refusing unknown keys by name."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidParameterError(
            f"Unknown {cls.__name__} parameter(s) {unknown}; allowed: {sorted(known)}.")
    return cls(**data)

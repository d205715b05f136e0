"""Checks of the options every public check takes, before anything runs.

Each returns the option's value or raises naming the argument, what was expected and what was
given: ``TypeError`` for the wrong kind of value, ``ValueError`` for the right kind out of range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["callable_arg", "choice", "finite_location", "flag", "float_array", "jax_mode",
           "positive_int", "seed_arg"]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1."""
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def seed_arg(value: object, name: str = "seed") -> int:
    """A seed: an int >= 0."""
    if not _is_int(value):
        raise TypeError(f"{name} must be a non-negative int, got {type(value).__name__}: "
                        f"{value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def flag(value: object, name: str) -> bool:
    """True or False (numpy bools too), nothing else: ``strict="no"`` would be truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}: {value!r}")
    return bool(value)


def choice(value: object, name: str, choices: Sequence[str]) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def jax_mode(value: object) -> bool | str:
    """``jax=``: True, False or "direct"."""
    if not (isinstance(value, bool) or value == "direct" and isinstance(value, str)):
        raise ValueError(f"jax must be True, False or 'direct', got {value!r}")
    return value


def callable_arg(value: object, name: str, *, optional: bool = False) -> Callable | None:
    """A callable (or, with ``optional``, None)."""
    if value is None and optional:
        return None
    if not callable(value):
        expected = "a callable or None" if optional else "a callable"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r:.60}")
    return value


def finite_location(arr: np.ndarray) -> str:
    """How many entries of ``arr`` are NaN/Inf and where the first is, in ``arr``'s own shape:
    ``"2 NaN/Inf entries (first at index (2, 1, 0): nan)"``; "" when every entry is finite."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return ""
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return (f"{int(bad.sum())} NaN/Inf entries (first at index {first}: "
            f"{arr[first]})")


def float_array(value: object, name: str) -> np.ndarray:
    """``value`` as a float array (float dtypes only, not converted) of finite entries."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a float array, could not convert it: {exc}") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, found {finite_location(arr)}")
    return arr

"""JAX, set up for the oracle: float64 switched on before any array exists, and checked.

Importing this module enables ``jax_enable_x64`` and then verifies that a fresh array really is
float64 (it is not if the setting was overridden): the oracle refuses to run in float32, where a
"right" gradient agrees with autodiff only to ~1e-7 and nothing finer could be judged.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after the x64 switch, on purpose)
import numpy as np  # noqa: E402

__all__ = ["UntraceableError", "assert_x64", "collector_paused", "jax", "jnp", "to_numpy",
           "traceable"]

P = ParamSpec("P")
R = TypeVar("R")


class UntraceableError(RuntimeError):
    """A user function could not be traced by JAX (e.g. it calls numpy on a JAX tracer)."""


def assert_x64() -> None:
    """Raise RuntimeError unless JAX makes float64 arrays by default."""
    dtype = jnp.asarray(1.0).dtype
    if dtype != jnp.float64:
        raise RuntimeError(
            f"JAX is not in float64 mode (a new array has dtype {dtype}); the oracle needs "
            "jax_enable_x64=True before any JAX array is created"
        )


assert_x64()


def to_numpy(a: object) -> np.ndarray:
    """A JAX (or numpy) array as a float64 numpy array."""
    return np.asarray(a, dtype=np.float64)


def traceable(fn, *args):
    """Call ``fn(*args)``; turn JAX's tracer-conversion failures into ``UntraceableError``.

    A function written with numpy calls (``np.tanh`` on a tracer) cannot be differentiated by
    JAX; the oracle then falls back to finite differences alone and says so.
    """
    try:
        return fn(*args)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError,
            jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError) as exc:
        raise UntraceableError(str(exc).splitlines()[0]) from None
    except TypeError as exc:
        if "Tracer" in str(exc) or "tracer" in str(exc) or "JAX" in str(exc):
            raise UntraceableError(str(exc).splitlines()[0]) from None
        raise



def collector_paused(check: Callable[P, R]) -> Callable[P, R]:
    """``check`` run with Python's cyclic garbage collector paused, and left as it was found.

    Tracing a user's code through JAX makes tens of thousands of short-lived objects (tracers,
    equations) that stay alive while the trace runs. With the collector running, its young
    collections find them alive and promote them, and every few checks the promoted objects
    trigger a full collection of the whole process (~50-100 ms with JAX loaded: more than most
    checks take). Paused, they are freed by reference counting when the trace ends, and no
    collection runs. A check of the layer zoo leaves no cyclic garbage behind (measured:
    ``gc.collect()`` after each finds 0-50 objects), so pausing costs no memory; cycles a
    user's own code makes during a check are collected after it. Nested checks leave the
    collector to the outermost.
    """

    @functools.wraps(check)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return check(*args, **kwargs)
        gc.disable()
        try:
            return check(*args, **kwargs)
        finally:
            gc.enable()

    return paused

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

__all__ = ["UntraceableError", "assert_x64", "collector_keeps_up", "collector_paused", "jax",
           "jnp", "to_numpy", "traceable"]

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



_PAUSED_BY_US = [False]
"""Whether the collector is off because a check paused it (not because the user turned it off)."""


def collector_paused(check: Callable[P, R]) -> Callable[P, R]:
    """``check`` run with Python's cyclic garbage collector paused, and left as it was found.

    Tracing a user's code through JAX makes tens of thousands of short-lived objects (tracers,
    equations) that stay alive while the trace runs. With the collector running, its young
    collections find them alive and promote them, and every few checks the promoted objects
    trigger a full collection of the whole process (~50-100 ms with JAX loaded: more than most
    checks take). Paused, they are freed by reference counting when the trace ends, and no
    collection runs. A check of the layer zoo leaves no cyclic garbage behind (measured:
    ``gc.collect()`` after each finds 0-50 objects). A forward that makes reference cycles at
    every call is kept in check by ``collector_keeps_up`` in the loops that call it. Nested
    checks leave the collector to the outermost; a collector the user turned off stays off.
    """

    @functools.wraps(check)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return check(*args, **kwargs)
        gc.disable()
        _PAUSED_BY_US[0] = True
        try:
            return check(*args, **kwargs)
        finally:
            _PAUSED_BY_US[0] = False
            gc.enable()

    return paused


def collector_keeps_up(every: int = 64) -> Callable[[], None]:
    """A tick for a loop that calls the user's code many times in a paused check (finite
    differences). Every ``every`` ticks, if the collector's young count grew by a quarter of
    an object per call or more (what the user's code leaves behind that reference counting
    cannot free: cycles), the young generation is collected, as the running collector would
    have done. Code that leaves nothing behind (numpy arrays are not even counted) costs one
    comparison per call."""
    state = {"calls": 0, "base": gc.get_count()[0]}

    def tick() -> None:
        if not _PAUSED_BY_US[0]:
            return
        state["calls"] += 1
        if state["calls"] % every:
            return
        now = gc.get_count()[0]
        if now - state["base"] >= every // 4:
            gc.collect(0)
            now = gc.get_count()[0]
        state["base"] = now

    return tick

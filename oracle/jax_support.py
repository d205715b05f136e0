"""JAX, set up for the oracle: float64 switched on before any array exists, and checked.

Importing this module enables ``jax_enable_x64`` and then verifies that a fresh array really is
float64 (it is not if the setting was overridden): the oracle refuses to run in float32, where a
"right" gradient agrees with autodiff only to ~1e-7 and nothing finer could be judged.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after the x64 switch, on purpose)
import numpy as np  # noqa: E402

__all__ = ["UntraceableError", "assert_x64", "jax", "jnp", "to_numpy", "traceable"]


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

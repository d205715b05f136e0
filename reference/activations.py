"""Activation functions, each defined once with its hand-derived derivative beside it.

An elementwise activation is a pair ``(f, df)``: ``Y = f(V)`` (eq 6) and ``act'(V) = df(V)``,
the factor ``dY/dV`` of eq 8-9, always evaluated at the pre-activation ``V`` (erratum 2 in
docs/derivation.md). It may carry its second derivative ``d2f = act''`` too, which the
Hessian-vector product of the network's loss needs (``second_order.py``); the built-ins do.
``f`` of the built-ins is written in array-API style (it works on numpy and JAX arrays alike),
so the oracle differentiates exactly this code; ``df`` and ``d2f`` are plain numpy.

Conventions at kinks: the derivative at a non-differentiable point is the *left* derivative,
``relu'(0) = 0`` and ``leaky_relu'(0) = 0.01``. The forward uses ``where(v > 0, ...)`` so that
JAX's autodiff applies the same convention (``maximum`` would give 0.5 at a tie).

Numerically stable forms: nothing here overflows or warns for inputs of +-1000.

Softmax is not elementwise: its backward is the vector-Jacobian product
``dE/dV = Y * (G - sum(G * Y, axis=-1))`` per sample (J is not diagonal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .array_namespace import namespace_of

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Softmax",
    "get_activation",
]

Array = np.ndarray
LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation: its function ``f`` and its derivative ``df``.

    Args:
        name: what reports and saved files call it.
        f: ``V -> Y``, elementwise, shape ``(B, m) -> (B, m)``.
        df: ``V -> act'(V)``, elementwise, shape ``(B, m) -> (B, m)``; a numpy function.
        kinks: points where ``f`` is not differentiable (a hint for checkers; kinks are also
            detected numerically).
        d2f: ``V -> act''(V)``, elementwise, a numpy function (optional: only the second-order
            passes need it). Where ``df`` jumps (relu at 0) it is the left derivative of ``df``.
        builtin: True for the activations shipped here (they can be saved by name).
    """

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array] | None
    kinks: tuple[float, ...] = ()
    d2f: Callable[[Array], Array] | None = None
    builtin: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Activation name must be a non-empty str, got {self.name!r}")
        if not callable(self.f):
            raise TypeError(f"Activation {self.name!r}: f must be callable, got {self.f!r}")
        for what in ("df", "d2f"):
            if getattr(self, what) is not None and not callable(getattr(self, what)):
                raise TypeError(f"Activation {self.name!r}: {what} must be callable, "
                                f"got {getattr(self, what)!r}")

    @property
    def elementwise(self) -> bool:
        """True when the Jacobian dY/dV is diagonal (backward is ``G * df(V)``)."""
        return True

    def __call__(self, v: Array) -> Array:
        """``Y = act(V)`` (eq 6)."""
        return self.f(v)

    def backward(self, v: Array, y: Array, g: Array) -> Array:
        """``dE/dV = dE/dY * act'(V)`` (eq 8-9); ``v, y, g`` and the result are ``(B, m)``.

        ``y`` is unused by elementwise activations; it is there for softmax's backward.
        """
        return g * self.df(v)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


class Softmax(Activation):
    """Softmax over the last axis; not elementwise, so ``df`` is None and backward is a VJP."""

    @property
    def elementwise(self) -> bool:
        return False

    def backward(self, v: Array, y: Array, g: Array) -> Array:
        """``dE/dV = Y * (G - sum(G * Y))`` per sample: ``G @ J`` with ``J = diag(Y) - Y Y^T``."""
        return y * (g - np.sum(g * y, axis=-1, keepdims=True))

    def __repr__(self) -> str:
        return "Softmax()"


# ---------------------------------------------------------------------------------------------
# The built-ins. Each: forward (array-API style), then its derivative and second derivative.
# ---------------------------------------------------------------------------------------------


def _identity(v: Array) -> Array:
    return v


def _identity_d(v: Array) -> Array:
    return np.ones_like(v)

def _identity_d2(v: Array) -> Array:
    return np.zeros_like(v)


def _sigmoid(v: Array) -> Array:
    # exp of -|v| only, so nothing overflows: with e = exp(-|v|) and r = 1 / (1 + e),
    # s(v) = r for v >= 0 and e r for v < 0. Written with where (not abs) so that autodiff
    # gives the right slope at exactly v = 0.
    xp = namespace_of(v)
    e = xp.exp(xp.where(v >= 0, -v, v))
    r = 1.0 / (1.0 + e)
    return xp.where(v >= 0, r, e * r)


def _sigmoid_d(v: Array) -> Array:
    # s (1 - s) = s(v) s(-v), free of the cancellation in 1 - s: with e and r as in _sigmoid,
    # one of s(v), s(-v) is r and the other e r, so the product is e r^2 for either sign.
    e = np.exp(-np.abs(v))
    r = 1.0 / (1.0 + e)
    return e * r * r

def _sigmoid_d2(v: Array) -> Array:
    return -_sigmoid_d(v) * np.tanh(v / 2)  # s' (1 - 2s), and 1 - 2s(v) = -tanh(v/2)


def _tanh(v: Array) -> Array:
    return namespace_of(v).tanh(v)


def _tanh_d(v: Array) -> Array:
    return 1.0 - np.tanh(v) ** 2

def _tanh_d2(v: Array) -> Array:
    t = np.tanh(v)
    return -2.0 * t * (1.0 - t**2)


def _relu(v: Array) -> Array:
    return namespace_of(v).where(v > 0, v, 0.0)


def _relu_d(v: Array) -> Array:
    return (v > 0).astype(v.dtype)  # relu'(0) = 0

def _relu_d2(v: Array) -> Array:
    return np.zeros_like(v)  # relu' jumps at 0: relu''(0) = 0 is its left derivative


def _leaky_relu(v: Array) -> Array:
    return namespace_of(v).where(v > 0, v, LEAKY_SLOPE * v)


def _leaky_relu_d(v: Array) -> Array:
    return np.where(v > 0, 1.0, LEAKY_SLOPE).astype(v.dtype)  # leaky_relu'(0) = 0.01


def _elu(v: Array) -> Array:
    xp = namespace_of(v)
    negative = xp.where(v > 0, 0.0, v)  # clamp before exp: no overflow for large v
    return xp.where(v > 0, v, ELU_ALPHA * xp.expm1(negative))


def _elu_d(v: Array) -> Array:
    return np.where(v > 0, 1.0, ELU_ALPHA * np.exp(np.where(v > 0, 0.0, v))).astype(v.dtype)

def _elu_d2(v: Array) -> Array:
    return np.where(v > 0, 0.0, ELU_ALPHA * np.exp(np.where(v > 0, 0.0, v))).astype(v.dtype)


def _softplus(v: Array) -> Array:
    # log(1 + e^v) = max(v, 0) + log1p(e^-|v|)
    xp = namespace_of(v)
    return xp.where(v > 0, v, 0.0) + xp.log1p(xp.exp(xp.where(v > 0, -v, v)))


def _softplus_d(v: Array) -> Array:
    return _sigmoid(v)

def _softplus_d2(v: Array) -> Array:
    return _sigmoid_d(v)


def _silu(v: Array) -> Array:
    return v * _sigmoid(v)


def _silu_d(v: Array) -> Array:
    return _sigmoid(v) * (1.0 + v * _sigmoid(-v))  # s (1 + v (1 - s))

def _silu_d2(v: Array) -> Array:
    return _sigmoid_d(v) * (2.0 - v * np.tanh(v / 2))  # 2 s' + v s


def _gelu(v: Array) -> Array:
    # The tanh approximation (Hendrycks & Gimpel), as jax.nn.gelu(approximate=True):
    # 0.5 v (1 + tanh(c (v + k v^3))), c = sqrt(2/pi), k = 0.044715.
    xp = namespace_of(v)
    return 0.5 * v * (1.0 + xp.tanh(_GELU_C * (v + _GELU_K * v**3)))


def _gelu_d(v: Array) -> Array:
    t = np.tanh(_GELU_C * (v + _GELU_K * v**3))
    return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t**2) * _GELU_C * (1.0 + 3.0 * _GELU_K * v**2)

def _gelu_d2(v: Array) -> Array:
    # With u = c (v + k v^3) and t = tanh(u): gelu' = (1 + t) / 2 + v (1 - t^2) u' / 2, so
    # gelu'' = (1 - t^2) (u' + v (u'' - 2 t u'^2) / 2), u' = c (1 + 3 k v^2), u'' = 6 c k v.
    t = np.tanh(_GELU_C * (v + _GELU_K * v**3))
    du = _GELU_C * (1.0 + 3.0 * _GELU_K * v**2)
    return (1.0 - t**2) * (du + 0.5 * v * (6.0 * _GELU_C * _GELU_K * v - 2.0 * t * du**2))


def _softmax(v: Array) -> Array:
    xp = namespace_of(v)
    e = xp.exp(v - xp.max(v, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", _identity, _identity_d, d2f=_identity_d2, builtin=True),
        Activation("sigmoid", _sigmoid, _sigmoid_d, d2f=_sigmoid_d2, builtin=True),
        Activation("tanh", _tanh, _tanh_d, d2f=_tanh_d2, builtin=True),
        Activation("relu", _relu, _relu_d, (0.0,), _relu_d2, builtin=True),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_d, (0.0,), _relu_d2, builtin=True),
        Activation("elu", _elu, _elu_d, d2f=_elu_d2, builtin=True),
        Activation("softplus", _softplus, _softplus_d, d2f=_softplus_d2, builtin=True),
        Activation("silu", _silu, _silu_d, d2f=_silu_d2, builtin=True),
        Activation("gelu", _gelu, _gelu_d, d2f=_gelu_d2, builtin=True),
        Softmax("softmax", _softmax, None, builtin=True),
    )
}
"""The built-in activations by name."""


def get_activation(spec: str | Activation) -> Activation:
    """Return the activation named ``spec`` (or ``spec`` itself if it is an Activation).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: neither a str nor an Activation.
    """
    if isinstance(spec, Activation):
        if spec.df is None and spec.elementwise:
            raise TypeError(f"Activation {spec.name!r} has no derivative df")
        return spec
    if isinstance(spec, str):
        try:
            return ACTIVATIONS[spec]
        except KeyError:
            valid = ", ".join(ACTIVATIONS)
            raise ValueError(f"unknown activation {spec!r}; expected one of: {valid}") from None
    raise TypeError(
        f"an activation must be a name (str) or an Activation, got {type(spec).__name__}: {spec!r}"
    )


def resolve_activations(specs: Sequence[str | Activation], count: int) -> list[Activation]:
    """Resolve ``count`` activation specs (one per layer), checking the count."""
    if isinstance(specs, (str, Activation)):
        raise TypeError(
            f"activations must be a list of {count} names or Activation objects, one per layer, "
            f"got a single {type(specs).__name__}: {specs!r}"
        )
    if not hasattr(specs, "__iter__"):  # None, a number
        raise TypeError(f"activations must be a list of {count} names or Activation objects, "
                        f"one per layer, got {type(specs).__name__}: {specs!r}")
    specs = list(specs)
    if len(specs) != count:
        raise ValueError(
            f"expected {count} activations (one per layer), got {len(specs)}: {specs!r}"
        )
    return [get_activation(s) for s in specs]

"""Loss functions, each defined once with its hand-derived derivative beside it.

Normalisation, stated once for the whole project: **the loss is the mean over the batch of a
per-sample loss E_b**, and every gradient carries the same ``1/B``::

    mse                   E_b = 1/2 * sum_j (y_bj - t_bj)^2          dE/dY = (Y - T) / B
    cross_entropy         E_b = -sum_j t_bj log y_bj  (y = softmax(v))  dE/dY = -T / (Y B)
    binary_cross_entropy  E_b = -sum_j [t log y + (1-t) log(1-y)]     dE/dY = (Y - T) / (Y (1-Y) B)
    E = (1/B) sum_b E_b

The two cross-entropies are tied to their output activation (softmax, sigmoid) and are computed
stably from the pre-activation V, never as the log of a rounded probability::

    cross_entropy:  E_b = logsumexp(v_b) sum_j t_bj - sum_j t_bj v_bj   dE/dV = (Y sum(T) - T) / B
    binary_c_e:     E_b = sum_j softplus(v_bj) - t_bj v_bj              dE/dV = (Y - T) / B

Second order (for the Hessian-vector product of the network's loss, ``second_order.py``): each
loss also carries ``d2E/dY2`` applied to a direction R of Y (``hvp``) and, when fused, ``d2E/dV2``
applied to a direction R of V (``hvp_v``)::

    mse            hvp = R / B
    cross_entropy  hvp_v = R{Y} sum(T) / B,   R{Y} = Y (R - sum(R Y))   (softmax's JVP along R)
    binary_c_e     hvp_v = Y (1 - Y) R / B                              (sigmoid's JVP along R)

The ``value`` functions are array-API style (numpy or JAX) and reduce over the last two axes
only, so a stack of batches ``(..., B, nL)`` gives a stack of losses ``(...)`` (the oracle
evaluates many perturbed copies of a network at once this way); ``grad`` functions are numpy.
Targets reach a loss already validated and as float rows of shape (B, nL); integer class labels
are turned into one-hot rows before (see ``validation.check_targets``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .activations import _softplus
from .array_namespace import namespace_of

__all__ = ["LOSSES", "Loss", "get_loss"]

Array = np.ndarray


@dataclass(frozen=True, eq=False)
class Loss:
    """A loss: its value and its hand-derived derivative with respect to the output Y.

    Args:
        name: what reports and saved files call it.
        value: ``(Y, T) -> E``, a scalar; Y, T of shape (B, nL).
        grad: ``(Y, T) -> dE/dY`` of shape (B, nL).
        output_activation: the last layer's activation this loss requires (None = any).
        value_from_v: ``(V, T) -> E`` computed stably from the pre-activation (optional).
        grad_v: ``(V, Y, T) -> dE/dV`` of the loss and output activation together (optional).
        hvp: ``(Y, T, R) -> (d2E/dY2) R``, shape (B, nL) (optional: second order only).
        hvp_v: ``(V, Y, T, R) -> (d2E/dV2) R`` of a fused loss, shape (B, nL) (optional).
        builtin: True for the losses shipped here (they can be saved by name).
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    output_activation: str | None = None
    value_from_v: Callable[[Array, Array], Array] | None = None
    grad_v: Callable[[Array, Array, Array], Array] | None = None
    hvp: Callable[[Array, Array, Array], Array] | None = None
    hvp_v: Callable[[Array, Array, Array, Array], Array] | None = None
    builtin: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Loss name must be a non-empty str, got {self.name!r}")
        for what in ("value", "grad"):
            if not callable(getattr(self, what)):
                raise TypeError(f"Loss {self.name!r}: {what} must be callable")

    @property
    def fused(self) -> bool:
        """True when value and gradient are computed from V together with the output activation."""
        return self.value_from_v is not None and self.grad_v is not None

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


_LAST_TWO = (-2, -1)


def _batch(y: Array) -> int:
    return y.shape[-2]


# --- mse ------------------------------------------------------------------------------------


def _mse(y: Array, t: Array) -> Array:
    xp = namespace_of(y, t)
    return 0.5 * xp.sum((y - t) ** 2, axis=_LAST_TWO) / _batch(y)


def _mse_grad(y: Array, t: Array) -> Array:
    return (y - t) / _batch(y)


def _mse_hvp(y: Array, t: Array, r: Array) -> Array:
    return r / _batch(y)


# --- cross_entropy (softmax output) ---------------------------------------------------------


def _ce(y: Array, t: Array) -> Array:
    xp = namespace_of(y, t)
    return -xp.sum(t * xp.log(y), axis=_LAST_TWO) / _batch(y)


def _ce_grad(y: Array, t: Array) -> Array:
    return -t / (y * _batch(y))


def _ce_from_v(v: Array, t: Array) -> Array:
    xp = namespace_of(v, t)
    vmax = xp.max(v, axis=-1, keepdims=True)
    lse = vmax + xp.log(xp.sum(xp.exp(v - vmax), axis=-1, keepdims=True))
    weighted = lse * xp.sum(t, axis=-1, keepdims=True)
    return (xp.sum(weighted, axis=_LAST_TWO) - xp.sum(t * v, axis=_LAST_TWO)) / _batch(v)


def _ce_grad_v(v: Array, y: Array, t: Array) -> Array:
    return (y * np.sum(t, axis=-1, keepdims=True) - t) / _batch(v)


def _ce_hvp(y: Array, t: Array, r: Array) -> Array:
    return t * r / (y * y * _batch(y))


def _ce_hvp_v(v: Array, y: Array, t: Array, r: Array) -> Array:
    ry = y * (r - np.sum(r * y, axis=-1, keepdims=True))  # R{Y}: softmax's JVP along r
    return ry * np.sum(t, axis=-1, keepdims=True) / _batch(v)


# --- binary_cross_entropy (sigmoid output) --------------------------------------------------


def _bce(y: Array, t: Array) -> Array:
    xp = namespace_of(y, t)
    return -xp.sum(t * xp.log(y) + (1.0 - t) * xp.log1p(-y), axis=_LAST_TWO) / _batch(y)


def _bce_grad(y: Array, t: Array) -> Array:
    return (y - t) / (y * (1.0 - y) * _batch(y))


def _bce_from_v(v: Array, t: Array) -> Array:
    xp = namespace_of(v, t)
    return xp.sum(_softplus(v) - t * v, axis=_LAST_TWO) / _batch(v)


def _bce_grad_v(v: Array, y: Array, t: Array) -> Array:
    return (y - t) / _batch(v)


def _bce_hvp(y: Array, t: Array, r: Array) -> Array:
    q = y * (1.0 - y)  # d/dY of (Y - T) / q is (q - (Y - T)(1 - 2Y)) / q^2
    return (q - (y - t) * (1.0 - 2.0 * y)) * r / (q * q * _batch(y))


def _bce_hvp_v(v: Array, y: Array, t: Array, r: Array) -> Array:
    return y * (1.0 - y) * r / _batch(v)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("mse", _mse, _mse_grad, hvp=_mse_hvp, builtin=True),
        Loss("cross_entropy", _ce, _ce_grad, "softmax", _ce_from_v, _ce_grad_v, _ce_hvp,
             _ce_hvp_v, builtin=True),
        Loss("binary_cross_entropy", _bce, _bce_grad, "sigmoid", _bce_from_v, _bce_grad_v,
             _bce_hvp, _bce_hvp_v, builtin=True),
    )
}
"""The built-in losses by name."""


def get_loss(spec: str | Loss) -> Loss:
    """Return the loss named ``spec`` (or ``spec`` itself if it is a Loss).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: neither a str nor a Loss.
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        try:
            return LOSSES[spec]
        except KeyError:
            valid = ", ".join(LOSSES)
            raise ValueError(f"unknown loss {spec!r}; expected one of: {valid}") from None
    raise TypeError(f"a loss must be a name (str) or a Loss, got {type(spec).__name__}: {spec!r}")

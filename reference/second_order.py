"""The Hessian-vector product of the network's loss, derived by hand (Pearlmutter's R-operator).

For a direction ``D = (D_0, ..., D_{L-1})`` in weight space (``D_k`` shaped like ``W_k``),
``H D`` is the derivative of the gradient along D: ``R{g} = d/dr g(W + r D)`` at r = 0. R is a
derivative, so it obeys the product and chain rules; applying it to every line of the forward
(eq 4-6) and of the backward (eq 7-11) gives a second forward and a second backward pass, each
the size of the first (docs/derivation.md, "Second order")::

    forward,  layer k:   R{V} = R{X~} W + X~ D           (eq 5; R{X_0} = 0: X is data)
                         R{Y} = act'(V) R{V}             (eq 6; softmax: Y (R{V} - sum(R{V} Y)))
    loss:                R{G} = (d2E/dY2) R{Y}           (eq 7; fused: R{dE/dV} = (d2E/dV2) R{V})
    backward, layer k:   R{dE/dV} = R{G} act'(V) + G act''(V) R{V}              (eq 8-9)
                         R{dE/dW} = R{X~}^T dE/dV + X~^T R{dE/dV}    = (H D)_k  (eq 8)
                         R{dE/dX} = R{dE/dV} W^T + dE/dV D^T  (no bias rows)    (eq 11)

The last two lines are the product rule on ``dE/dW = X~^T dE/dV`` and ``dE/dX = dE/dV W^T``:
each product gives two terms, and dropping either is the classic mistake. ``G act''(V) R{V}``
is the other one: with it missing, the product is right only where act'' = 0 (relu).

Everything here is numpy and reads the first-order terms from ``passes.backward_pass``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .activations import Activation
from .losses import Loss
from .passes import backward_pass, forward_pass

__all__ = ["hessian_vector_product", "r_activation", "r_activation_backward"]


def r_activation(act: Activation, v: np.ndarray, y: np.ndarray, rv: np.ndarray) -> np.ndarray:
    """``R{Y} (B, m)``: the activation's JVP along ``rv = R{V} (B, m)`` (eq 6 under R)."""
    if act.elementwise:
        return act.df(v) * rv
    return y * (rv - np.sum(rv * y, axis=-1, keepdims=True))  # softmax: J rv, J = diag(Y) - Y Y^T


def r_activation_backward(act: Activation, v: np.ndarray, y: np.ndarray, g: np.ndarray,
                          rv: np.ndarray, rg: np.ndarray) -> np.ndarray:
    """``R{dE/dV} (B, m)`` from ``g = dE/dY``, ``rv = R{V}``, ``rg = R{dE/dY}`` (eq 8-9 under R).

    Elementwise: R of ``G act'(V)`` is ``R{G} act'(V) + G act''(V) R{V}``. Softmax: R of
    ``Y (G - sum(G Y))`` is ``R{Y} (G - sum(G Y)) + Y (R{G} - sum(R{G} Y) - sum(G R{Y}))``.
    """
    if act.elementwise:
        if act.d2f is None:
            raise TypeError(f"activation {act.name!r} has no second derivative d2f: the "
                            "Hessian-vector product needs one")
        return rg * act.df(v) + g * act.d2f(v) * rv
    ry = r_activation(act, v, y, rv)
    inner = np.sum(g * y, axis=-1, keepdims=True)
    r_inner = np.sum(rg * y, axis=-1, keepdims=True) + np.sum(g * ry, axis=-1, keepdims=True)
    return ry * (g - inner) + y * (rg - r_inner)


def hessian_vector_product(
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    directions: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """``H D``: the Hessian of E (eq 7) with respect to all weights, times the direction D.

    Args:
        weights: ``W_k (n_k + 1, n_{k+1})`` for k = 0 .. L-1.
        x: ``(B, n0)``; t: ``(B, nL)`` float targets (one-hot rows for class labels).
        activations, loss: as for ``passes.forward_pass`` / ``backward_pass``.
        directions: ``D_k``, shaped like ``W_k``.

    Returns:
        ``(H D)_k = R{dE/dW_k}``, shaped like ``W_k``, for every layer.
    """
    trace = backward_pass(weights, forward_pass(weights, x, activations), t, activations, loss,
                          need_input_grad=False)
    last = len(weights) - 1
    # The R forward pass, first layer first. R{X~} = [R{X}, 0]: the bias column is constant.
    rxs: list[np.ndarray] = [np.zeros_like(x)]
    rvs: list[np.ndarray] = []
    for k, (w, d, act) in enumerate(zip(weights, directions, activations)):
        rv = rxs[k] @ w[:-1] + trace.xs[k] @ d[:-1] + d[-1]  # eq 5 under R: R{X~} W + X~ D
        rvs.append(rv)
        rxs.append(r_activation(act, trace.vs[k], trace.ys[k], rv))  # eq 6 under R
    # The R backward pass, last layer first.
    products: list = [None] * len(weights)
    rg = None
    for k in range(last, -1, -1):
        v, y, act, rv = trace.vs[k], trace.ys[k], activations[k], rvs[k]
        if k == last and loss.fused:
            if loss.hvp_v is None:
                raise TypeError(f"loss {loss.name!r} has no second derivative hvp_v")
            rdv = loss.hvp_v(v, y, t, rv)  # eq 7-9 under R, loss and output activation fused
        else:
            if k == last:
                if loss.hvp is None:
                    raise TypeError(f"loss {loss.name!r} has no second derivative hvp")
                rg = loss.hvp(y, t, rxs[k + 1])  # eq 7 under R: R{G} = E''(Y) R{Y}
            rdv = r_activation_backward(act, v, y, trace.gs[k], rv, rg)  # eq 8-9 under R
        dv, xk = trace.dvs[k], trace.xs[k]
        products[k] = np.concatenate([  # eq 8 under R: R{X~}^T dE/dV + X~^T R{dE/dV}
            rxs[k].T @ dv + xk.T @ rdv, np.sum(rdv, axis=0, keepdims=True)])
        # eq 11 under R (the bias row is not part of dE/dX): R{G} of the layer below
        rg = rdv @ weights[k][:-1].T + dv @ directions[k][:-1].T
    return products

"""How far apart two *correct* float64 computations of the same gradient may lie.

A relative tolerance alone fails wherever the true value is (nearly) zero by cancellation: a
uniform softmax's dE/dV = Y (G - sum(G Y)) is exactly 0 in exact arithmetic and ~1e-16 in
float64; so is dE/dX when the rows of W are equal and the softmax gradient sums to 0. Such a
result is right to the last bit *of its terms*, not of itself. The classic remedy is a running
error bound: propagate, next to each gradient, the magnitudes of the terms it is a sum of (the
same backward pass with every factor replaced by its absolute value). Two correct computations
then differ by at most (number of roundings) x eps x that magnitude, entry by entry.

``TERM_RTOL = 1e-12``: eps = 2.2e-16 times ~4500 roundings, far more than a depth-4, width-8
network performs per entry; a wrong derivative is off by a sizable fraction of its terms.

The magnitudes, per layer (B = batch, M_* the magnitude of *):

- loss: the terms of dE/dY (mse: (|Y| + |T|) / B), or of the fused dE/dV (cross-entropy:
  (Y sum(T) + T) / B; binary cross-entropy: (Y + T) / B);
- elementwise activation: M_dV = M_G (1 + |act'(V)| + M_V): act' itself is a sum of O(1) terms
  (gelu' in its tail is ~1e-13 made of terms ~1), and a V computed in another order moves
  act'(V) by ~act'' eps M_V, with M_V = |X~| |W| the magnitude of the pre-activation;
- softmax: M_dV = Y (M_G + sum(M_G Y));
- M_dW = |X~|^T M_dV, M_dX = M_dV |W[:-1]|^T, and M_dX is the next layer's M_G.
"""

from __future__ import annotations

import numpy as np

from reference import Activation, Loss, Network
from reference.passes import Trace

__all__ = [
    "TERM_RTOL",
    "TINY",
    "activation_magnitude",
    "loss_magnitude",
    "forward_magnitudes",
    "loss_value_magnitude",
    "network_magnitudes",
]

TERM_RTOL = 1e-12
TINY = float(np.finfo(np.float64).tiny)
"""Absolute floor: JAX on CPU flushes subnormal results to zero, numpy keeps them."""


def loss_magnitude(loss: Loss, v: np.ndarray, y: np.ndarray, t: np.ndarray, *,
                   fused: bool) -> np.ndarray:
    """Magnitudes of the terms of dE/dY (``fused``: of the fused dE/dV), shape ``(B, nL)``."""
    batch = y.shape[-2]
    if loss.builtin and loss.name == "mse":
        return (np.abs(y) + np.abs(t)) / batch
    if loss.builtin and loss.name == "cross_entropy":
        if fused:
            return (y * np.sum(t, axis=-1, keepdims=True) + t) / batch
        return t / (y * batch)
    if loss.builtin and loss.name == "binary_cross_entropy":
        if fused:
            return (y + t) / batch
        return (t / y + (1 - t) / (1 - y)) / batch
    return np.abs(loss.grad_v(v, y, t) if fused else loss.grad(y, t))


def forward_magnitudes(net: Network, trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Bounds, in units of eps, on the rounding error of the output layer's V and Y.

    V = X~ W rounds by ~eps |X~| |W| and inherits the error of X through |W|; Y = act(V) rounds
    by ~eps (|Y| + |V|) (an activation combines terms no larger than |V| and 1: gelu's
    0.5 v (1 + tanh z) keeps only an absolute accuracy of eps |v| in its tail) and inherits
    V's error through |act'|.
    """
    err_y = np.zeros_like(trace.xs[0])
    err_v = err_y
    for act, x, v, y, w in zip(net.activations, trace.xs, trace.vs, trace.ys, net.weights):
        x_tilde = np.abs(np.concatenate([x, np.ones((x.shape[0], 1))], axis=1))
        err_v = x_tilde @ np.abs(w) + err_y @ np.abs(w[:-1])
        slope = np.abs(act.df(v)) if act.elementwise else 1.0
        err_y = np.abs(y) + np.abs(v) + slope * err_v
    return err_v, err_y


def loss_value_magnitude(loss: Loss, net: Network, trace: Trace, t: np.ndarray) -> float:
    """Bound, in units of eps, on the rounding error of E: not eps |E|.

    Cross-entropy is logsumexp(v) - v_t per row (E = 1e-7 may come from terms of size 16);
    mse's (y - t)^2 inherits y's error; the forward's errors enter through V and Y.
    """
    v, y = trace.vs[-1], trace.ys[-1]
    err_v, err_y = forward_magnitudes(net, trace)
    batch = y.shape[-2]
    if loss.builtin and loss.name == "cross_entropy":
        lse = np.max(v, axis=-1) + np.log(np.sum(np.exp(v - np.max(v, axis=-1, keepdims=True)),
                                                 axis=-1))
        terms = np.abs(lse) * np.sum(t, axis=-1) + np.sum(t * (np.abs(v) + err_v), axis=-1)
        return float(np.sum(terms + np.sum(y * err_v, axis=-1))) / batch
    if loss.builtin and loss.name == "binary_cross_entropy":
        return float(np.sum((1.0 + t) * (np.abs(v) + err_v) + np.log(2.0))) / batch
    value = abs(float(loss.value(y, t)))
    return float(np.sum(np.abs(y - t) * (np.abs(y) + np.abs(t) + err_y))) / batch + value


def activation_magnitude(act: Activation, v: np.ndarray, y: np.ndarray, g_mag: np.ndarray,
                         v_mag: np.ndarray | float = 0.0) -> np.ndarray:
    """Magnitude of dE/dV's terms from that of dE/dY (``g_mag``) and of V (``v_mag``)."""
    if act.elementwise:
        return g_mag * (1.0 + np.abs(act.df(v)) + v_mag)
    y = np.abs(y)
    return y * (g_mag + np.sum(g_mag * y, axis=-1, keepdims=True))


def network_magnitudes(net: Network, trace: Trace, t: np.ndarray):
    """``(M_dW of every layer, M_dX of the input)`` for the trace of ``net`` on targets ``t``."""
    weights, acts, loss = net.weights, net.activations, net.loss_function
    last = len(weights) - 1
    m_dws: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    g_mag = None
    for k in range(last, -1, -1):
        x_tilde = np.abs(np.concatenate([trace.xs[k], np.ones((trace.xs[k].shape[0], 1))], 1))
        v_mag = x_tilde @ np.abs(weights[k])
        v, y = trace.vs[k], trace.ys[k]
        if k == last and loss.fused:
            dv_mag = loss_magnitude(loss, v, y, t, fused=True)
        else:
            if k == last:
                g_mag = loss_magnitude(loss, v, y, t, fused=False)
            dv_mag = activation_magnitude(acts[k], v, y, g_mag, v_mag)
        m_dws[k] = x_tilde.T @ dv_mag
        g_mag = dv_mag @ np.abs(weights[k][:-1]).T
    return m_dws, g_mag

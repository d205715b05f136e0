"""The forward pass through all layers and the hand-derived backward pass back through them.

These are plain functions of ``(weights, inputs, activations, loss)``, with no validation and
no state: ``Network`` validates and then calls them, and the oracle calls ``forward_pass`` and
``network_loss`` with JAX arrays, so JAX differentiates this very code (no second copy of the
forward that could drift). ``backward_pass`` is numpy only and returns every intermediate term
(a ``Trace``) so that a checker can test each link of the chain on its own.

Layer k (0-based) maps ``xs[k] (B, n_k)`` to ``ys[k] (B, n_{k+1})``; ``xs[k+1] is ys[k]``.
Shapes of the layer terms are in ``layer.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .activations import Activation
from .layer import dense_backward, dense_forward, weight_and_input_grads
from .losses import Loss

__all__ = ["Trace", "backward_pass", "forward_pass", "loss_from_trace", "network_loss"]


@dataclass
class Trace:
    """Every term of one forward and backward pass, per layer k = 0 .. L-1.

    Attributes:
        xs: input of each layer, ``(B, n_k)``.
        vs: pre-activation of each layer, ``(B, n_{k+1})``.
        ys: output of each layer, ``(B, n_{k+1})``.
        loss: the loss value E.
        gs: ``dE/dY`` each layer received, ``(B, n_{k+1})``; None for the output layer of a
            fused loss (softmax + cross-entropy, sigmoid + BCE), whose backward goes straight
            from the loss to ``dE/dV``.
        dvs: ``dE/dV`` of each layer, ``(B, n_{k+1})``.
        dws: ``dE/dW`` of each layer, ``(n_k + 1, n_{k+1})``.
        dxs: ``dE/dX`` each layer passes back, ``(B, n_k)``; ``dxs[0]`` is None when the
            input's gradient was not asked for.
    """

    xs: list[np.ndarray]
    vs: list[np.ndarray]
    ys: list[np.ndarray]
    loss: float = float("nan")
    gs: list[np.ndarray | None] = field(default_factory=list)
    dvs: list[np.ndarray] = field(default_factory=list)
    dws: list[np.ndarray] = field(default_factory=list)
    dxs: list[np.ndarray | None] = field(default_factory=list)


def forward_pass(
    weights: Sequence[np.ndarray], x: np.ndarray, activations: Sequence[Activation]
) -> Trace:
    """Run eq 4-6 through every layer; ``x`` is ``(B, n0)``. numpy or JAX arrays."""
    xs, vs, ys = [x], [], []
    for w, act in zip(weights, activations):
        v, y = dense_forward(xs[-1], w, act)
        vs.append(v)
        ys.append(y)
        xs.append(y)
    return Trace(xs=xs[:-1], vs=vs, ys=ys)


def loss_from_trace(trace: Trace, t: np.ndarray, loss: Loss):
    """E from a forward trace: from V when the loss is fused with its output activation."""
    if loss.fused:
        return loss.value_from_v(trace.vs[-1], t)
    return loss.value(trace.ys[-1], t)


def network_loss(
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
):
    """E(weights, x) of eq 7, as a scalar array (numpy or JAX): what the oracle differentiates."""
    return loss_from_trace(forward_pass(weights, x, activations), t, loss)


def backward_pass(
    weights: Sequence[np.ndarray],
    trace: Trace,
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    *,
    need_input_grad: bool = True,
) -> Trace:
    """Fill ``trace`` with dE/dY, dE/dV, dE/dW and dE/dX of every layer, last layer first.

    Uses ``weights`` as they were in the forward pass: no update happens here (erratum 3).
    """
    n_layers = len(weights)
    gs: list = [None] * n_layers
    dvs: list = [None] * n_layers
    dws: list = [None] * n_layers
    dxs: list = [None] * n_layers
    last = n_layers - 1
    g = None
    for k in range(last, -1, -1):
        need_dx = k > 0 or need_input_grad
        x, w, v, y, act = trace.xs[k], weights[k], trace.vs[k], trace.ys[k], activations[k]
        if k == last and loss.fused:
            dvs[k] = loss.grad_v(v, y, t)  # eq 7-9 for the loss and output activation together
            dws[k], dxs[k] = weight_and_input_grads(x, w, dvs[k], need_dx=need_dx)  # eq 8, 11
        else:
            if k == last:
                g = loss.grad(y, t)  # eq 7: dE/dY = error'(Y) at the output
            gs[k] = g
            dvs[k], dws[k], dxs[k] = dense_backward(x, w, v, y, g, act, need_dx=need_dx)
        g = dxs[k]  # eq 11: dE/dX of layer k is dE/dY of layer k-1
    trace.gs, trace.dvs, trace.dws, trace.dxs = gs, dvs, dws, dxs
    return trace


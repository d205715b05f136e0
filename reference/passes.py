"""The forward pass through all layers and the hand-derived backward pass back through them.

These are plain functions of ``(weights, inputs, activations, loss)``, with no validation and
no state: ``Network`` validates and then calls them, and the oracle calls ``forward_pass`` and
``network_loss`` with JAX arrays, so JAX differentiates this very code (no second copy of the
forward that could drift). ``backward_pass`` is numpy only and returns every intermediate term
(a ``Trace``) so that a checker can test each link of the chain on its own.

Layer k (0-based) maps ``xs[k] (B, n_k)`` to ``ys[k] (B, n_{k+1})``; ``xs[k+1] is ys[k]``.
Shapes of the layer terms are in ``layer.py``.

``Network.step`` and ``Network.gradients`` run the same two passes with reused numpy buffers
(``out`` arguments): the forward writes V into them, the backward dE/dX of the inner layers.
``backward_sweep`` is the backward without dE/dW, which the step computes into buffers of its
own and turns into the new weights (eq 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .activations import Activation
from .layer import dense_forward, input_grad, weight_grad
from .losses import Loss

__all__ = [
    "Trace",
    "backward_pass",
    "backward_sweep",
    "forward_pass",
    "loss_from_trace",
    "network_loss",
    "output_loss",
]


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
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    activations: Sequence[Activation],
    *,
    out: Sequence[np.ndarray] | None = None,
) -> Trace:
    """Run eq 4-6 through every layer; ``x`` is ``(B, n0)``. numpy or JAX arrays.

    ``out``: optional numpy buffers, ``out[k]`` of shape ``(B, n_{k+1})`` receives V of layer k
    (the values are the same as without them; see ``layer.dense_forward``).
    """
    xs, vs, ys = [x], [], []
    for k, (w, act) in enumerate(zip(weights, activations)):
        v, y = dense_forward(xs[-1], w, act, out=None if out is None else out[k])
        vs.append(v)
        ys.append(y)
        xs.append(y)
    return Trace(xs=xs[:-1], vs=vs, ys=ys)


def output_loss(v: np.ndarray, y: np.ndarray, t: np.ndarray, loss: Loss):
    """E from the output layer's ``V`` and ``Y`` (B, nL): from V when the loss is fused."""
    if loss.fused:
        return loss.value_from_v(v, t)
    return loss.value(y, t)


def loss_from_trace(trace: Trace, t: np.ndarray, loss: Loss):
    """E from a forward trace: from V when the loss is fused with its output activation."""
    return output_loss(trace.vs[-1], trace.ys[-1], t, loss)


def network_loss(
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
):
    """E(weights, x) of eq 7, as a scalar array (numpy or JAX): what the oracle differentiates."""
    return loss_from_trace(forward_pass(weights, x, activations), t, loss)


def backward_sweep(
    weights: Sequence[np.ndarray],
    vs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    *,
    need_input_grad: bool = True,
    dx_out: Sequence[np.ndarray | None] | None = None,
) -> tuple[list[np.ndarray | None], list[np.ndarray], list[np.ndarray | None]]:
    """The chain of eq 7-9 and 11, last layer first: ``(gs, dvs, dxs)`` as in ``Trace``.

    dE/dW (eq 8) is left out: it needs only ``xs[k]`` and ``dvs[k]``, so the caller computes it
    where it wants it (``backward_pass`` into fresh arrays, the training step into a buffer).
    ``dx_out[k]``: optional numpy buffer ``(B, n_k)`` for ``dxs[k]``.
    Uses ``weights`` as they were in the forward pass: no update happens here (erratum 3).
    """
    n_layers = len(weights)
    gs: list = [None] * n_layers
    dvs: list = [None] * n_layers
    dxs: list = [None] * n_layers
    last = n_layers - 1
    for k in range(last, -1, -1):
        v, y, act = vs[k], ys[k], activations[k]
        if k < last:
            gs[k] = g = dxs[k + 1]  # eq 11: dE/dX of layer k+1 is dE/dY of layer k
            dvs[k] = act.backward(v, y, g)  # eq 8-9: dE/dV = dE/dY * act'(V), act' at V
        elif loss.fused:
            dvs[k] = loss.grad_v(v, y, t)  # eq 7-9 for the loss and output activation together
        else:
            gs[k] = g = loss.grad(y, t)  # eq 7: dE/dY = error'(Y) at the output
            dvs[k] = act.backward(v, y, g)  # eq 8-9
        if k > 0 or need_input_grad:
            out = None if dx_out is None else dx_out[k]
            dxs[k] = input_grad(weights[k], dvs[k], out=out)  # eq 11 (weights before any update)
    return gs, dvs, dxs


def backward_pass(
    weights: Sequence[np.ndarray],
    trace: Trace,
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    *,
    need_input_grad: bool = True,
    dx_out: Sequence[np.ndarray | None] | None = None,
) -> Trace:
    """Fill ``trace`` with dE/dY, dE/dV, dE/dW and dE/dX of every layer, last layer first.

    Every array it adds is fresh (the caller may keep them), but for the optional numpy
    buffers ``dx_out[k] (B, n_k)`` that receive ``dxs[k]``. Uses ``weights`` as they were in
    the forward pass: no update happens here (erratum 3).
    """
    gs, dvs, dxs = backward_sweep(
        weights, trace.vs, trace.ys, t, activations, loss, need_input_grad=need_input_grad,
        dx_out=dx_out,
    )
    dws = [
        weight_grad(x, dv, out=np.empty_like(w))  # eq 8: dE/dW = X~^T dE/dV
        for x, w, dv in zip(trace.xs, weights, dvs)
    ]
    trace.gs, trace.dvs, trace.dws, trace.dxs = gs, dvs, dws, dxs
    return trace

"""One dense layer: its forward pass (eq 4-6) and, next to it, its hand-derived backward (eq 8-11).

Shapes, stated once (B = batch, n = inputs, m = outputs)::

    X   (B, n)      input, one flattened sample per row
    X~  (B, n+1)    [X, 1]: the input with a column of ones for the bias (eq 1, 4)
    W   (n+1, m)    weights; the LAST ROW IS THE BIAS (eq 2)
    V   (B, m)      pre-activation V = X~ W (eq 5)
    Y   (B, m)      output Y = act(V) (eq 3, 6)
    G   (B, m)      dE/dY, handed down from the layer above (or from the loss)

``X~ W`` is computed as ``X W[:-1] + W[-1]``, the same product without building X~.
The forward is array-API style, so JAX traces this very code; the backward is numpy.

Every function takes optional ``out`` buffers (numpy only). They change where a result is
written, never how it is computed: ``np.matmul(x, w, out=v)`` performs the same product as
``x @ w``, so a result is bit for bit the same with or without a buffer. The training step
reuses buffers so that it does not ask the allocator for fresh large arrays on every call.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation

__all__ = [
    "dense_backward",
    "dense_forward",
    "input_grad",
    "weight_and_input_grads",
    "weight_grad",
]


def dense_forward(
    x: np.ndarray, w: np.ndarray, act: Activation, *, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(V, Y)`` for input ``x (B, n)`` and weights ``w (n+1, m)``; both ``(B, m)``.

    ``out``: optional numpy buffer ``(B, m)`` that receives V (numpy inputs only; JAX traces
    the ``out is None`` branch, which is the same expression).
    """
    if out is None:
        v = x @ w[:-1] + w[-1]  # eq 4-5: V = X~ W, X~ = [X, 1]
    else:  # the same expression, written into a reused buffer
        v = np.add(np.matmul(x, w[:-1], out=out), w[-1], out=out)  # eq 4-5
    y = act(v)  # eq 6: Y = act(V)
    return v, y


def dense_backward(
    x: np.ndarray,
    w: np.ndarray,
    v: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    act: Activation,
    *,
    need_dx: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return ``(dE/dV (B, m), dE/dW (n+1, m), dE/dX (B, n) or None)`` given ``g = dE/dY``."""
    dv = act.backward(v, y, g)  # eq 8-9: dE/dV = dE/dY * act'(V), act' taken at V
    dw, dx = weight_and_input_grads(x, w, dv, need_dx=need_dx)  # eq 8, 11
    return dv, dw, dx


def weight_grad(x: np.ndarray, dv: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    """Write ``dE/dW (n+1, m)`` into ``out`` from ``x (B, n)`` and ``dv = dE/dV (B, m)``."""
    np.matmul(x.T, dv, out=out[:-1])  # eq 8: dV/dW = X~, so dE/dW = X~^T dE/dV ...
    np.add.reduce(dv, axis=0, out=out[-1])  # ... whose last (bias) row is the batch sum of dE/dV
    return out


def input_grad(
    w: np.ndarray, dv: np.ndarray, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``dE/dX (B, n)`` from ``dv = dE/dV (B, m)`` and the weights ``w (n+1, m)`` as they are.

    Call it before any update of ``w`` (erratum 3).
    """
    return np.matmul(dv, w[:-1].T, out=out)  # eq 11: dV/dX = W without its bias row (errata 1, 4)


def weight_and_input_grads(
    x: np.ndarray, w: np.ndarray, dv: np.ndarray, *, need_dx: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """From ``dv = dE/dV (B, m)``: ``dE/dW (n+1, m)`` and ``dE/dX (B, n)`` (None if not needed).

    Both are fresh arrays. ``dE/dX`` uses ``w`` as given: call this before any update of ``w``
    (erratum 3).
    """
    dw = weight_grad(x, dv, out=np.empty_like(w))  # eq 8
    dx = input_grad(w, dv) if need_dx else None  # eq 11
    return dw, dx

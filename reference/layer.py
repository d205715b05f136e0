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
"""

from __future__ import annotations

import numpy as np

from .activations import Activation

__all__ = ["dense_backward", "dense_forward", "weight_and_input_grads"]


def dense_forward(x: np.ndarray, w: np.ndarray, act: Activation) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(V, Y)`` for input ``x (B, n)`` and weights ``w (n+1, m)``; both ``(B, m)``."""
    v = x @ w[:-1] + w[-1]  # eq 4-5: V = X~ W, X~ = [X, 1]
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


def weight_and_input_grads(
    x: np.ndarray, w: np.ndarray, dv: np.ndarray, *, need_dx: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """From ``dv = dE/dV (B, m)``: ``dE/dW (n+1, m)`` and ``dE/dX (B, n)`` (None if not needed).

    ``dE/dX`` uses ``w`` as given: call this before any update of ``w`` (erratum 3).
    """
    dw = np.empty_like(w)
    np.matmul(x.T, dv, out=dw[:-1])  # eq 8: dV/dW = X~, so dE/dW = X~^T dE/dV ...
    np.sum(dv, axis=0, out=dw[-1])  # ... whose last (bias) row is the batch sum of dE/dV
    dx = dv @ w[:-1].T if need_dx else None  # eq 11: dV/dX = W without its bias row (erratum 1, 4)
    return dw, dx

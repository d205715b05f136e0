"""A user's own layers, in plain numpy, each forward beside its hand-derived backward.

Convention (that of ``oracle.check_vjp``): ``backward(dout, *inputs)`` returns the gradient of
``<dout, forward(*inputs)>`` with respect to each float input, in input order. Shapes: ``x``
``(B, n)``, ``w`` ``(n, m)``, ``b`` ``(m,)``, outputs ``(B, m)``; labels ``y`` ``(B,)`` ints.

``sigmoid_backward`` is broken on purpose (the classic: the derivative evaluated at the output
instead of the input); ``test_my_layers.py::test_sigmoid_backward`` shows what pytest prints.
"""

import numpy as np


def dense_forward(x, w, b):
    """(B, n), (n, m), (m,) -> (B, m)."""
    return x @ w + b


def dense_backward(dout, x, w, b):
    """dout (B, m) -> dx (B, n), dw (n, m), db (m,)."""
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    """(B, n) -> (B, n)."""
    return np.maximum(x, 0.0)


def relu_backward(dout, x):
    """dout (B, n) -> dx (B, n); the subgradient 0 at x = 0."""
    return dout * (x > 0)


def max_pairs_forward(x):
    """Max-pooling over neighbouring pairs of the last axis: (B, 2k) -> (B, k)."""
    return np.maximum(x[:, 0::2], x[:, 1::2])


def max_pairs_backward(dout, x):
    """dout (B, k) -> dx (B, 2k): each pair's gradient goes to one maximum (the first, on a tie).
    """
    first = x[:, 0::2] >= x[:, 1::2]
    dx = np.zeros_like(x)
    dx[:, 0::2] = dout * first
    dx[:, 1::2] = dout * ~first
    return dx


def softmax_loss(scores, y):
    """Mean cross-entropy of softmax(scores) (B, C) against integer labels y (B,): a float."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean()


def softmax_loss_backward(dout, scores, y):
    """dout (a float) -> dscores (B, C); y is a constant (no gradient)."""
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return dout * p / len(y)


def sigmoid_forward(x):
    """(B, n) -> (B, n)."""
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_backward(dout, x):
    """BROKEN ON PURPOSE: sigma'(x) = s (1 - s) with s = sigma(x); this takes s = sigma(sigma(x))
    (the derivative evaluated at the output y instead of at x)."""
    y = sigmoid_forward(x)
    s = sigmoid_forward(y)
    return dout * s * (1.0 - s)

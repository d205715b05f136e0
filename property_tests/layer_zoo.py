"""The layer zoo: layers written the way students write them, each with a right backward and a
buggy one that carries exactly one classic mistake.

Test data for a general vector-Jacobian-product checker (``check_vjp(forward, backward,
inputs)``): the checker must pass every ``backward`` and catch every ``buggy``, ideally naming
``bug_input``. The forwards are plain numpy in the CS231n manner (``np.exp``, ``np.maximum``,
in-place writes into ``np.zeros`` buffers, Python loops, fancy indexing, ``np.pad``); a few are
written with operators and methods only, so JAX can trace them as they are.

Conventions (those of ``check_vjp``):

- ``make_inputs(rng)`` gives a tuple of arrays (passed positionally) or a dict of named arrays
  (passed as keywords); float64 throughout, at most ~200 entries an input; integer and bool
  inputs (labels, ids, masks) are constants.
- ``forward(*inputs)`` returns an array, a tuple of arrays, or a float (a loss).
- ``backward(cotangent, *inputs)`` returns the gradient of ``<cotangent, forward(inputs)>``
  with respect to each floating input: a tuple in input order, one array (not a 1-tuple) when
  there is one floating input, a dict by name for dict inputs. It recomputes what it needs from
  the inputs (no cache) and modifies neither the inputs nor the cotangent.
- ``buggy`` has the same signature and returns the same shapes; only values differ.
- ``bug_input`` names the first input, in input order, whose gradient the bug changes (the
  gradients of the floating inputs before it are right).
- ``style`` says how the *forward* is written: ``"ufunc"`` calls a numpy ufunc (``np.exp``,
  ``np.maximum``, ``np.tanh``, ``np.sqrt``, ...); ``"inplace"`` assigns into a subscript or uses
  an augmented assignment; ``"loop"`` has a Python loop; ``"fancy"`` indexes with integer or
  bool arrays; ``"jnp_traceable"``: ``jax.vjp`` of the forward on ``jax.numpy`` arrays works.
- ``kinks``: the inputs put some entries exactly at a kink on purpose; the right backward takes
  a valid subgradient there (relu: ``x > 0``, i.e. 0 at 0). Elsewhere the inputs keep clear of
  kinks and ties (max-pool windows, hinge margins, the residual block's pre-activations).

``test_layer_zoo.py`` checks every right backward against JAX's autodiff of a hand-written
``jax.numpy`` re-write of the forward, and that every bug changes its input's gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:  # scipy is optional: without it the zoo has no gelu_erf
    from scipy.special import erf
except ImportError:  # pragma: no cover
    erf = None

__all__ = ["LAYERS", "ZooLayer"]


@dataclass(frozen=True)
class ZooLayer:
    """One layer of the zoo: a forward, its right backward and a backward with one bug."""

    name: str
    forward: Callable
    backward: Callable
    buggy: Callable
    bug: str
    bug_input: str
    make_inputs: Callable[[np.random.Generator], tuple | dict]
    style: frozenset[str]
    kinks: bool = False


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _well_spread(rng, shape, gap=0.05):
    """Normal entries at least ``gap`` apart from each other (no ties in a max, whatever the
    window): a shuffled ladder plus a little noise."""
    n = int(np.prod(shape))
    ladder = (np.arange(n) - n / 2) * (2 * gap)
    return (rng.permutation(ladder) + rng.uniform(-gap / 2, gap / 2, n)).reshape(shape)


# ---------------------------------------------------------------------------------------------
# affine
# ---------------------------------------------------------------------------------------------


def affine_forward(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_buggy(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)


def affine_inputs(rng):
    return rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)


# ---------------------------------------------------------------------------------------------
# convolutions
# ---------------------------------------------------------------------------------------------

CONV1D_PAD = 1


def conv1d_naive_forward(x, w, b):
    N, C, L = x.shape
    F, _, K = w.shape
    pad = CONV1D_PAD
    L_out = L + 2 * pad - K + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)), mode="constant")
    out = np.zeros((N, F, L_out))
    for n in range(N):
        for f in range(F):
            for i in range(L_out):
                out[n, f, i] = np.sum(xp[n, :, i:i + K] * w[f]) + b[f]
    return out


def _conv1d_naive_backward(dout, x, w, b, *, flip):
    N, C, L = x.shape
    F, _, K = w.shape
    pad = CONV1D_PAD
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)), mode="constant")
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2))
    for n in range(N):
        for f in range(F):
            for i in range(dout.shape[2]):
                dw[f] += xp[n, :, i:i + K] * dout[n, f, i]
                kernel = w[f, :, ::-1] if flip else w[f]
                dxp[n, :, i:i + K] += kernel * dout[n, f, i]
    return dxp[:, :, pad:pad + L], dw, db


def conv1d_naive_backward(dout, x, w, b):
    return _conv1d_naive_backward(dout, x, w, b, flip=False)


def conv1d_naive_buggy(dout, x, w, b):
    return _conv1d_naive_backward(dout, x, w, b, flip=True)


def conv1d_inputs(rng):
    return rng.normal(size=(2, 2, 8)), rng.normal(size=(3, 2, 3)), rng.normal(size=3)


def conv1d_windows_forward(x, w, b):
    """The convolution as one einsum over ``sliding_window_view``'s windows (no loop)."""
    pad = CONV1D_PAD
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)), mode="constant")
    windows = sliding_window_view(xp, w.shape[2], axis=2)          # (N, C, L_out, K)
    return np.einsum("nclk,fck->nfl", windows, w) + b[None, :, None]


def _conv1d_windows_backward(dout, x, w, b, *, accumulate):
    pad, K = CONV1D_PAD, w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)), mode="constant")
    windows = sliding_window_view(xp, K, axis=2)
    dw = np.einsum("nfl,nclk->fck", dout, windows)
    dwindows = np.einsum("nfl,fck->nclk", dout, w)
    dxp = np.zeros_like(xp)
    L_out = dout.shape[2]
    for k in range(K):   # window entry k of every window is xp[:, :, k:k + L_out]
        if accumulate:
            dxp[:, :, k:k + L_out] += dwindows[..., k]
        else:
            dxp[:, :, k:k + L_out] = dwindows[..., k]
    return dxp[:, :, pad:pad + x.shape[2]], dw, dout.sum(axis=(0, 2))


def conv1d_windows_backward(dout, x, w, b):
    return _conv1d_windows_backward(dout, x, w, b, accumulate=True)


def conv1d_windows_buggy(dout, x, w, b):
    return _conv1d_windows_backward(dout, x, w, b, accumulate=False)


CONV2D_STRIDE, CONV2D_PAD = 2, 1


def conv2d_naive_forward(x, w, b):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = CONV2D_STRIDE, CONV2D_PAD
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    window = xp[n, :, hs:hs + HH, ws:ws + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out


def _conv2d_naive_backward(dout, x, w, b, *, crop_at_pad):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = CONV2D_STRIDE, CONV2D_PAD
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    _, _, H_out, W_out = dout.shape
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    dw[f] += xp[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dxp[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
    if crop_at_pad:
        dx = dxp[:, :, pad:pad + H, pad:pad + W]
    else:
        dx = dxp[:, :, :H, :W]
    return dx, dw, db


def conv2d_naive_backward(dout, x, w, b):
    return _conv2d_naive_backward(dout, x, w, b, crop_at_pad=True)


def conv2d_naive_buggy(dout, x, w, b):
    return _conv2d_naive_backward(dout, x, w, b, crop_at_pad=False)


def conv2d_naive_inputs(rng):
    return rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)


IM2COL_STRIDE, IM2COL_PAD = 1, 1


def _im2col_indices(x_shape, HH, WW, pad, stride):
    N, C, H, W = x_shape
    H_out = (H + 2 * pad - HH) // stride + 1
    W_out = (W + 2 * pad - WW) // stride + 1
    i0 = np.tile(np.repeat(np.arange(HH), WW), C)
    i1 = stride * np.repeat(np.arange(H_out), W_out)
    j0 = np.tile(np.arange(WW), HH * C)
    j1 = stride * np.tile(np.arange(W_out), H_out)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), HH * WW).reshape(-1, 1)
    return k, i, j


def _im2col(x, HH, WW, pad, stride):
    C = x.shape[1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    k, i, j = _im2col_indices(x.shape, HH, WW, pad, stride)
    cols = xp[:, k, i, j]                        # (N, C*HH*WW, H_out*W_out)
    return cols.transpose(1, 2, 0).reshape(C * HH * WW, -1)


def _col2im(cols, x_shape, HH, WW, pad, stride):
    N, C, H, W = x_shape
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    k, i, j = _im2col_indices(x_shape, HH, WW, pad, stride)
    cols = cols.reshape(C * HH * WW, -1, N).transpose(2, 0, 1)
    np.add.at(xp, (slice(None), k, i, j), cols)
    return xp[:, :, pad:pad + H, pad:pad + W]


def conv2d_im2col_forward(x, w, b):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = IM2COL_STRIDE, IM2COL_PAD
    H_out = (H + 2 * pad - HH) // stride + 1
    W_out = (W + 2 * pad - WW) // stride + 1
    cols = _im2col(x, HH, WW, pad, stride)
    out = w.reshape(F, -1) @ cols + b.reshape(-1, 1)
    return out.reshape(F, H_out, W_out, N).transpose(3, 0, 1, 2)


def _conv2d_im2col_backward(dout, x, w, b, *, dw_order):
    F, _, HH, WW = w.shape
    stride, pad = IM2COL_STRIDE, IM2COL_PAD
    cols = _im2col(x, HH, WW, pad, stride)
    dout_r = dout.transpose(1, 2, 3, 0).reshape(F, -1)
    db = dout.sum(axis=(0, 2, 3))
    dw = (dout.transpose(*dw_order).reshape(F, -1) @ cols.T).reshape(w.shape)
    dcols = w.reshape(F, -1).T @ dout_r
    dx = _col2im(dcols, x.shape, HH, WW, pad, stride)
    return dx, dw, db


def conv2d_im2col_backward(dout, x, w, b):
    return _conv2d_im2col_backward(dout, x, w, b, dw_order=(1, 2, 3, 0))


def conv2d_im2col_buggy(dout, x, w, b):
    return _conv2d_im2col_backward(dout, x, w, b, dw_order=(1, 0, 2, 3))


def conv2d_im2col_inputs(rng):
    return (rng.normal(size=(2, 3, 4, 4)), 0.5 * rng.normal(size=(4, 3, 3, 3)),
            rng.normal(size=4))


# ---------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------

MAXPOOL_SIZE, MAXPOOL_STRIDE = 2, 2


def max_pool_naive_forward(x):
    N, C, H, W = x.shape
    ph = pw = MAXPOOL_SIZE
    s = MAXPOOL_STRIDE
    H_out, W_out = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = np.max(x[n, c, i * s:i * s + ph, j * s:j * s + pw])
    return out


def _max_pool_naive_backward(dout, x, *, only_the_max):
    N, C, H, W = x.shape
    ph = pw = MAXPOOL_SIZE
    s = MAXPOOL_STRIDE
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    if only_the_max:
                        mask = window == np.max(window)
                    else:
                        mask = np.ones_like(window)
                    dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += mask * dout[n, c, i, j]
    return dx


def max_pool_naive_backward(dout, x):
    return _max_pool_naive_backward(dout, x, only_the_max=True)


def max_pool_naive_buggy(dout, x):
    return _max_pool_naive_backward(dout, x, only_the_max=False)


def max_pool_inputs(rng):
    return (_well_spread(rng, (2, 2, 6, 6)),)


AVGPOOL_SIZE, AVGPOOL_STRIDE = 3, 2


def avg_pool_forward(x):
    N, C, H, W = x.shape
    p, s = AVGPOOL_SIZE, AVGPOOL_STRIDE
    H_out, W_out = 1 + (H - p) // s, 1 + (W - p) // s
    out = np.zeros((N, C, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = x[:, :, i * s:i * s + p, j * s:j * s + p].mean(axis=(2, 3))
    return out


def avg_pool_backward(dout, x):
    p, s = AVGPOOL_SIZE, AVGPOOL_STRIDE
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s:i * s + p, j * s:j * s + p] += dout[:, :, i, j, None, None] / (p * p)
    return dx


def avg_pool_buggy(dout, x):
    p, s = AVGPOOL_SIZE, AVGPOOL_STRIDE
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s:i * s + p, j * s:j * s + p] = dout[:, :, i, j, None, None] / (p * p)
    return dx


def avg_pool_inputs(rng):
    return (rng.normal(size=(2, 2, 7, 7)),)


# ---------------------------------------------------------------------------------------------
# normalisations
# ---------------------------------------------------------------------------------------------

BN_EPS = 1e-5


def batchnorm_forward(x, gamma, beta):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc ** 2).mean(axis=0)
    std = (var + BN_EPS) ** 0.5
    xhat = xc / std
    return gamma * xhat + beta


def _batchnorm_backward(dout, x, gamma, beta, *, mean_path):
    N = x.shape[0]
    mu = np.mean(x, axis=0)
    xc = x - mu
    var = np.mean(xc ** 2, axis=0)
    std = np.sqrt(var + BN_EPS)
    xhat = xc / std
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dvar = np.sum(dxhat * xc, axis=0) * -0.5 * std ** -3
    dmu = np.sum(-dxhat / std, axis=0) + dvar * np.mean(-2.0 * xc, axis=0)
    dx = dxhat / std + dvar * 2.0 * xc / N
    if mean_path:
        dx = dx + dmu / N
    return dx, dgamma, dbeta


def batchnorm_backward(dout, x, gamma, beta):
    return _batchnorm_backward(dout, x, gamma, beta, mean_path=True)


def batchnorm_buggy(dout, x, gamma, beta):
    return _batchnorm_backward(dout, x, gamma, beta, mean_path=False)


def batchnorm_inputs(rng):
    D = 4
    x = 3.0 + 2.0 * rng.normal(size=(8, D))
    return x, 1.0 + 0.3 * rng.normal(size=D), rng.normal(size=D)


def batchnorm_no_eps_forward(x, gamma, beta):
    mu = np.mean(x, axis=0, keepdims=True)
    var = np.var(x, axis=0, keepdims=True)
    xhat = (x - mu) / np.sqrt(var)
    return gamma * xhat + beta


def batchnorm_no_eps_backward(dout, x, gamma, beta):
    N = x.shape[0]
    std = np.sqrt(np.var(x, axis=0))
    xhat = (x - x.mean(axis=0)) / std
    dgamma = np.sum(dout * xhat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx = gamma / (N * std) * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def batchnorm_no_eps_buggy(dout, x, gamma, beta):
    std = np.sqrt(np.var(x, axis=0))
    xhat = (x - x.mean(axis=0)) / std
    dgamma = np.sum(dout * xhat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx = gamma * dout / std
    return dx, dgamma, dbeta


def batchnorm_no_eps_inputs(rng):
    D = 3
    x = -1.0 + 1.5 * rng.normal(size=(6, D))
    return x, 1.0 + 0.3 * rng.normal(size=D), rng.normal(size=D)


def spatial_batchnorm_forward(x, gamma, beta):
    N, C, H, W = x.shape
    x2 = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out2 = batchnorm_forward(x2, gamma, beta)
    return out2.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def _spatial_batchnorm_backward(dout, x, gamma, beta, *, eps):
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    g = gamma.reshape(1, -1, 1, 1)
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = (x - mu) / std
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dx = g / (m * std) * (m * dout - dbeta.reshape(1, -1, 1, 1)
                          - xhat * dgamma.reshape(1, -1, 1, 1))
    return dx, dgamma, dbeta


def spatial_batchnorm_backward(dout, x, gamma, beta):
    return _spatial_batchnorm_backward(dout, x, gamma, beta, eps=BN_EPS)


def spatial_batchnorm_buggy(dout, x, gamma, beta):
    return _spatial_batchnorm_backward(dout, x, gamma, beta, eps=0.0)


def spatial_batchnorm_inputs(rng):
    C = 3
    x = rng.normal(size=(2, C, 4, 4)) + rng.normal(size=(1, C, 1, 1))
    return x, 1.0 + 0.3 * rng.normal(size=C), rng.normal(size=C)


LN_EPS = 1e-5


def layernorm_forward(x, gamma, beta):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    xhat = (x - mu) / (var + LN_EPS) ** 0.5
    return xhat * gamma + beta


def _layernorm_backward(dout, x, gamma, beta, *, axis):
    mu = x.mean(axis=1, keepdims=True)
    std = np.sqrt(x.var(axis=1, keepdims=True) + LN_EPS)
    xhat = (x - mu) / std
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=axis, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)) / std
    return dx, dgamma, dbeta


def layernorm_backward(dout, x, gamma, beta):
    return _layernorm_backward(dout, x, gamma, beta, axis=1)


def layernorm_buggy(dout, x, gamma, beta):
    return _layernorm_backward(dout, x, gamma, beta, axis=0)


def layernorm_inputs(rng):
    D = 6
    return rng.normal(size=(4, D)) * 2.0, 1.0 + 0.3 * rng.normal(size=D), rng.normal(size=D)


GN_GROUPS, GN_EPS = 2, 1e-5


def group_norm_forward(x, gamma, beta):
    N, C, H, W = x.shape
    xg = x.reshape(N, GN_GROUPS, C // GN_GROUPS, H, W)
    mu = np.mean(xg, axis=(2, 3, 4), keepdims=True)
    var = np.var(xg, axis=(2, 3, 4), keepdims=True)
    xhat = ((xg - mu) / np.sqrt(var + GN_EPS)).reshape(N, C, H, W)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None]


def _group_norm_backward(dout, x, gamma, beta, *, times_gamma):
    N, C, H, W = x.shape
    axes = (2, 3, 4)
    xg = x.reshape(N, GN_GROUPS, C // GN_GROUPS, H, W)
    std = np.sqrt(xg.var(axis=axes, keepdims=True) + GN_EPS)
    xhat_g = (xg - xg.mean(axis=axes, keepdims=True)) / std
    xhat = xhat_g.reshape(N, C, H, W)
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    dxhat = dout * gamma[None, :, None, None] if times_gamma else dout
    dxhat_g = dxhat.reshape(xg.shape)
    dxg = (dxhat_g - dxhat_g.mean(axis=axes, keepdims=True)
           - xhat_g * (dxhat_g * xhat_g).mean(axis=axes, keepdims=True)) / std
    return dxg.reshape(N, C, H, W), dgamma, dbeta


def group_norm_backward(dout, x, gamma, beta):
    return _group_norm_backward(dout, x, gamma, beta, times_gamma=True)


def group_norm_buggy(dout, x, gamma, beta):
    return _group_norm_backward(dout, x, gamma, beta, times_gamma=False)


def group_norm_inputs(rng):
    C = 4
    return rng.normal(size=(2, C, 3, 3)), 1.0 + 0.3 * rng.normal(size=C), rng.normal(size=C)


def l2_normalize_forward(x):
    norm = (x * x).sum(axis=1, keepdims=True) ** 0.5
    return x / norm


def l2_normalize_backward(dout, x):
    norm = np.sqrt(np.sum(x ** 2, axis=1, keepdims=True))
    y = x / norm
    return (dout - y * np.sum(dout * y, axis=1, keepdims=True)) / norm


def l2_normalize_buggy(dout, x):
    norm = np.sqrt(np.sum(x ** 2, axis=1, keepdims=True))
    return dout / norm


def l2_normalize_inputs(rng):
    return (rng.normal(size=(4, 5)),)


# ---------------------------------------------------------------------------------------------
# dropout, embedding
# ---------------------------------------------------------------------------------------------

DROPOUT_P = 0.6
"""Keep probability; inverted dropout: ``out = x * mask / p``."""


def dropout_forward(x, mask):
    return x * mask / DROPOUT_P


def dropout_bool_mask_backward(dout, x, mask):
    return dout * mask / DROPOUT_P


def dropout_bool_mask_buggy(dout, x, mask):
    return dout * mask


def dropout_bool_mask_inputs(rng):
    return rng.normal(size=(4, 6)), rng.random((4, 6)) < DROPOUT_P


def dropout_float_mask_backward(dout, x, mask):
    return dout * mask / DROPOUT_P, dout * x / DROPOUT_P


def dropout_float_mask_buggy(dout, x, mask):
    return dout / DROPOUT_P, dout * x / DROPOUT_P


def dropout_float_mask_inputs(rng):
    return rng.normal(size=(4, 6)), (rng.random((4, 6)) < DROPOUT_P).astype(np.float64)


def embedding_forward(ids, W):
    return W[ids]


def embedding_backward(dout, ids, W):
    dW = np.zeros_like(W)
    np.add.at(dW, ids, dout)
    return dW


def embedding_buggy(dout, ids, W):
    dW = np.zeros_like(W)
    dW[ids] += dout
    return dW


def embedding_inputs(rng):
    ids = np.array([[0, 3, 3, 1], [4, 0, 3, 2], [1, 1, 0, 3]])
    return ids, rng.normal(size=(5, 3))


# ---------------------------------------------------------------------------------------------
# softmax, attention
# ---------------------------------------------------------------------------------------------


def _softmax_layer(axis: int, wrong_axis: int):
    def forward(x):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(shifted)
        return e / np.sum(e, axis=axis, keepdims=True)

    def backward(dout, x):
        y = forward(x)
        return y * (dout - np.sum(dout * y, axis=axis, keepdims=True))

    def buggy(dout, x):
        y = forward(x)
        return y * (dout - np.sum(dout * y, axis=wrong_axis, keepdims=True))

    return forward, backward, buggy


def softmax_inputs(rng):
    return (rng.normal(size=(4, 5)),)


def attention_forward(q, k, v):
    d = q.shape[-1]
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ v


def _attention_backward(dout, q, k, v, *, scaled):
    d = q.shape[-1]
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = weights / weights.sum(axis=-1, keepdims=True)
    dv = weights.transpose(0, 2, 1) @ dout
    dweights = dout @ v.transpose(0, 2, 1)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
    if scaled:
        dscores = dscores / np.sqrt(d)
    dq = dscores @ k
    dk = dscores.transpose(0, 2, 1) @ q
    return {"q": dq, "k": dk, "v": dv}


def attention_backward(dout, q, k, v):
    return _attention_backward(dout, q, k, v, scaled=True)


def attention_buggy(dout, q, k, v):
    return _attention_backward(dout, q, k, v, scaled=False)


def attention_inputs(rng):
    return {"q": rng.normal(size=(2, 3, 4)), "k": rng.normal(size=(2, 5, 4)),
            "v": rng.normal(size=(2, 5, 3))}


# ---------------------------------------------------------------------------------------------
# recurrent steps
# ---------------------------------------------------------------------------------------------


def rnn_step_forward(x, h, Wx, Wh, b):
    return np.tanh(x @ Wx + h @ Wh + b)


def _rnn_step_backward(dout, x, h, Wx, Wh, b, *, transpose_wh):
    h_next = np.tanh(x @ Wx + h @ Wh + b)
    da = dout * (1 - h_next ** 2)
    dx = da @ Wx.T
    dh = da @ Wh.T if transpose_wh else da @ Wh
    return dx, dh, x.T @ da, h.T @ da, da.sum(axis=0)


def rnn_step_backward(dout, x, h, Wx, Wh, b):
    return _rnn_step_backward(dout, x, h, Wx, Wh, b, transpose_wh=True)


def rnn_step_buggy(dout, x, h, Wx, Wh, b):
    return _rnn_step_backward(dout, x, h, Wx, Wh, b, transpose_wh=False)


def rnn_step_inputs(rng):
    N, D, H = 3, 4, 5
    return (rng.normal(size=(N, D)), rng.normal(size=(N, H)), 0.4 * rng.normal(size=(D, H)),
            0.4 * rng.normal(size=(H, H)), 0.2 * rng.normal(size=H))


def lstm_step_forward(x, h, c, Wx, Wh, b):
    H = h.shape[1]
    a = x @ Wx + h @ Wh + b
    i = _sigmoid(a[:, :H])
    f = _sigmoid(a[:, H:2 * H])
    o = _sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    c_next = f * c + i * g
    h_next = o * np.tanh(c_next)
    return h_next, c_next


def _lstm_step_backward(dout, x, h, c, Wx, Wh, b, *, through_f):
    dh_next, dc_next = dout
    H = h.shape[1]
    a = x @ Wx + h @ Wh + b
    i = _sigmoid(a[:, :H])
    f = _sigmoid(a[:, H:2 * H])
    o = _sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    tc = np.tanh(f * c + i * g)
    dc = dc_next + dh_next * o * (1 - tc ** 2)
    do = dh_next * tc
    di, df, dg = dc * g, dc * c, dc * i
    dc_prev = dc * f if through_f else dc.copy()
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    return {"x": da @ Wx.T, "h": da @ Wh.T, "c": dc_prev, "Wx": x.T @ da, "Wh": h.T @ da,
            "b": da.sum(axis=0)}


def lstm_step_backward(dout, x, h, c, Wx, Wh, b):
    return _lstm_step_backward(dout, x, h, c, Wx, Wh, b, through_f=True)


def lstm_step_buggy(dout, x, h, c, Wx, Wh, b):
    return _lstm_step_backward(dout, x, h, c, Wx, Wh, b, through_f=False)


def lstm_step_inputs(rng):
    N, D, H = 2, 3, 3
    return {"x": rng.normal(size=(N, D)), "h": rng.normal(size=(N, H)),
            "c": rng.normal(size=(N, H)), "Wx": 0.5 * rng.normal(size=(D, 4 * H)),
            "Wh": 0.5 * rng.normal(size=(H, 4 * H)), "b": 0.2 * rng.normal(size=4 * H)}


def gru_step_forward(x, h, Wx, Wh, b):
    H = h.shape[1]
    a = x @ Wx + b
    hh = h @ Wh
    z = _sigmoid(a[:, :H] + hh[:, :H])
    r = _sigmoid(a[:, H:2 * H] + hh[:, H:2 * H])
    n = np.tanh(a[:, 2 * H:] + r * hh[:, 2 * H:])
    return (1 - z) * n + z * h


def _gru_step_backward(dout, x, h, Wx, Wh, b, *, direct_path):
    H = h.shape[1]
    a = x @ Wx + b
    hh = h @ Wh
    z = _sigmoid(a[:, :H] + hh[:, :H])
    r = _sigmoid(a[:, H:2 * H] + hh[:, H:2 * H])
    n = np.tanh(a[:, 2 * H:] + r * hh[:, 2 * H:])
    dn = dout * (1 - z)
    dz = dout * (h - n)
    dan = dn * (1 - n ** 2)
    dr = dan * hh[:, 2 * H:]
    daz = dz * z * (1 - z)
    dar = dr * r * (1 - r)
    da = np.concatenate([daz, dar, dan], axis=1)
    dhh = np.concatenate([daz, dar, dan * r], axis=1)
    dh = dhh @ Wh.T
    if direct_path:
        dh = dh + dout * z
    return da @ Wx.T, dh, x.T @ da, h.T @ dhh, da.sum(axis=0)


def gru_step_backward(dout, x, h, Wx, Wh, b):
    return _gru_step_backward(dout, x, h, Wx, Wh, b, direct_path=True)


def gru_step_buggy(dout, x, h, Wx, Wh, b):
    return _gru_step_backward(dout, x, h, Wx, Wh, b, direct_path=False)


def gru_step_inputs(rng):
    N, D, H = 2, 3, 4
    return (rng.normal(size=(N, D)), rng.normal(size=(N, H)), 0.5 * rng.normal(size=(D, 3 * H)),
            0.5 * rng.normal(size=(H, 3 * H)), 0.2 * rng.normal(size=3 * H))


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------


def softmax_cross_entropy_forward(scores, y):
    N = scores.shape[0]
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.sum(log_probs[np.arange(N), y]) / N


def _softmax_cross_entropy_backward(dout, scores, y, *, mean):
    N = scores.shape[0]
    probs = np.exp(scores - np.max(scores, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    probs[np.arange(N), y] -= 1
    dscores = probs * dout
    return {"scores": dscores / N if mean else dscores}


def softmax_cross_entropy_backward(dout, scores, y):
    return _softmax_cross_entropy_backward(dout, scores, y, mean=True)


def softmax_cross_entropy_buggy(dout, scores, y):
    return _softmax_cross_entropy_backward(dout, scores, y, mean=False)


def softmax_cross_entropy_inputs(rng):
    return {"scores": rng.normal(size=(5, 4)), "y": np.array([0, 3, 1, 3, 2])}


SVM_DELTA = 1.0


def svm_hinge_forward(scores, y):
    N = scores.shape[0]
    correct = scores[np.arange(N), y]
    margins = np.maximum(0, scores - correct[:, np.newaxis] + SVM_DELTA)
    margins[np.arange(N), y] = 0
    return np.sum(margins) / N


def _svm_hinge_backward(dout, scores, y, *, credit_correct):
    N = scores.shape[0]
    correct = scores[np.arange(N), y]
    margins = scores - correct[:, np.newaxis] + SVM_DELTA
    binary = (margins > 0).astype(np.float64)
    binary[np.arange(N), y] = 0
    if credit_correct:
        binary[np.arange(N), y] = -np.sum(binary, axis=1)
    return binary / N * dout


def svm_hinge_backward(dout, scores, y):
    return _svm_hinge_backward(dout, scores, y, credit_correct=True)


def svm_hinge_buggy(dout, scores, y):
    return _svm_hinge_backward(dout, scores, y, credit_correct=False)


def svm_hinge_inputs(rng):
    """Scores whose margins are all at least 0.02 away from the hinge."""
    N, C = 5, 4
    y = np.array([1, 0, 3, 3, 2])
    while True:
        scores = rng.normal(size=(N, C))
        margins = scores - scores[np.arange(N), y][:, None] + SVM_DELTA
        margins[np.arange(N), y] = 1.0
        if np.abs(margins).min() >= 0.02:
            return scores, y


def mse_forward(pred, target):
    return ((pred - target) ** 2).mean()


def mse_backward(dout, pred, target):
    dpred = 2.0 * (pred - target) / pred.size * dout
    return dpred, -dpred


def mse_buggy(dout, pred, target):
    dpred = 2.0 * (pred - target) / pred.size * dout
    return dpred, dpred


def mse_inputs(rng):
    return rng.normal(size=(4, 3)), rng.normal(size=(4, 3))


# ---------------------------------------------------------------------------------------------
# activations, residual block
# ---------------------------------------------------------------------------------------------


def relu_forward(x):
    return np.maximum(0, x)


def relu_backward(dout, x):
    return dout * (x > 0)


def relu_buggy(dout, x):
    return np.maximum(0, dout)


def relu_inputs(rng):
    """Every fourth entry exactly 0: the kink (the right backward takes the subgradient 0)."""
    x = rng.normal(size=(4, 6))
    x.flat[::4] = 0.0
    return (x,)


def sigmoid_forward(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_backward(dout, x):
    out = sigmoid_forward(x)
    return dout * out * (1 - out)


def sigmoid_buggy(dout, x):
    out = sigmoid_forward(x)
    return dout * sigmoid_forward(out) * (1 - sigmoid_forward(out))


def sigmoid_inputs(rng):
    return (2.0 * rng.normal(size=(4, 5)),)


def tanh_forward(x):
    return np.tanh(x)


def tanh_backward(dout, x):
    return dout * (1 - np.tanh(x) ** 2)


def tanh_buggy(dout, x):
    return dout * (1 - x ** 2)


def tanh_inputs(rng):
    return (rng.normal(size=(4, 5)),)


def relu_mask_write_forward(x):
    out = x.copy()
    out[out < 0] = 0
    return out


def relu_mask_write_backward(dout, x):
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx


def relu_mask_write_buggy(dout, x):
    dx = dout.copy()
    dx[dout < 0] = 0
    return dx


LEAKY_ALPHA = 0.1


def leaky_relu_forward(x):
    out = x.copy()
    out[out < 0] *= LEAKY_ALPHA
    return out


def leaky_relu_backward(dout, x):
    dx = dout.copy()
    dx[x < 0] *= LEAKY_ALPHA
    return dx


def leaky_relu_buggy(dout, x):
    dx = dout.copy()
    dx[x < 0] = LEAKY_ALPHA
    return dx


def leaky_relu_inputs(rng):
    """At least 0.05 away from the kink at 0."""
    x = rng.normal(size=(4, 6))
    return (x + 0.05 * np.sign(x),)


ELU_ALPHA = 1.0


def elu_vectorize_forward(x):
    return np.vectorize(lambda t: t if t > 0 else ELU_ALPHA * (np.exp(t) - 1))(x)


def elu_vectorize_backward(dout, x):
    return dout * np.where(x > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(x, 0)))


def elu_vectorize_buggy(dout, x):
    out = elu_vectorize_forward(x)
    return dout * np.where(x > 0, 1.0, out)


def elu_inputs(rng):
    """At least 0.05 away from 0, where the forward's branch changes."""
    x = rng.normal(size=(3, 5))
    return (x + 0.05 * np.sign(x),)


def gelu_erf_forward(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def gelu_erf_backward(dout, x):
    cdf = 0.5 * (1.0 + erf(x / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * x ** 2) / np.sqrt(2.0 * np.pi)
    return dout * (cdf + x * pdf)


def gelu_erf_buggy(dout, x):
    return dout * 0.5 * (1.0 + erf(x / np.sqrt(2.0)))


def gelu_inputs(rng):
    return (1.5 * rng.normal(size=(4, 5)),)


PWL_KNOTS = [-2.0, -0.5, 0.5, 2.0]


def piecewise_linear_forward(x, values):
    """A learned piecewise-linear activation: ``values`` at fixed knots, flat outside them."""
    return np.interp(x, PWL_KNOTS, values)


def _piecewise_linear_backward(dout, x, values, *, swap):
    knots = np.asarray(PWL_KNOTS)
    i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    width = knots[i + 1] - knots[i]
    t = np.clip((x - knots[i]) / width, 0.0, 1.0)
    inside = (x > knots[0]) & (x < knots[-1])
    dx = dout * inside * (values[i + 1] - values[i]) / width
    left, right = (t, 1 - t) if swap else (1 - t, t)
    dvalues = np.zeros_like(values)
    np.add.at(dvalues, i, dout * left)
    np.add.at(dvalues, i + 1, dout * right)
    return dx, dvalues


def piecewise_linear_backward(dout, x, values):
    return _piecewise_linear_backward(dout, x, values, swap=False)


def piecewise_linear_buggy(dout, x, values):
    return _piecewise_linear_backward(dout, x, values, swap=True)


def piecewise_linear_inputs(rng):
    """Inputs inside, left and right of the knots, at least 0.05 away from every knot."""
    while True:
        x = 1.5 * rng.normal(size=(4, 5))
        if np.min(np.abs(x[..., None] - np.asarray(PWL_KNOTS))) >= 0.05 and (
                np.any(x < PWL_KNOTS[0]) and np.any(x > PWL_KNOTS[-1])):
            return x, rng.normal(size=len(PWL_KNOTS))


def residual_block_forward(x, W1, b1, W2, b2):
    h = x @ W1 + b1
    h = h * (h > 0)
    return x + h @ W2 + b2


def _residual_block_backward(dout, x, W1, b1, W2, b2, *, skip):
    a = x @ W1 + b1
    h = np.maximum(a, 0)
    dW2 = h.T @ dout
    db2 = dout.sum(axis=0)
    da = (dout @ W2.T) * (a > 0)
    dx = da @ W1.T
    if skip:
        dx = dx + dout
    return dx, x.T @ da, da.sum(axis=0), dW2, db2


def residual_block_backward(dout, x, W1, b1, W2, b2):
    return _residual_block_backward(dout, x, W1, b1, W2, b2, skip=True)


def residual_block_buggy(dout, x, W1, b1, W2, b2):
    return _residual_block_backward(dout, x, W1, b1, W2, b2, skip=False)


def residual_block_inputs(rng):
    """Pre-activations at least 0.01 away from relu's kink."""
    N, D = 4, 5
    while True:
        x, W1, b1 = rng.normal(size=(N, D)), rng.normal(size=(D, D)), rng.normal(size=D)
        if np.abs(x @ W1 + b1).min() >= 0.01:
            return x, W1, b1, rng.normal(size=(D, D)), rng.normal(size=D)


# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------

_UFUNC, _INPLACE, _LOOP, _FANCY, _JNP = "ufunc", "inplace", "loop", "fancy", "jnp_traceable"
_softmax_last = _softmax_layer(axis=-1, wrong_axis=0)
_softmax_first = _softmax_layer(axis=0, wrong_axis=-1)


def _layer(name, forward, backward, buggy, bug, bug_input, make_inputs, style, kinks=False):
    return ZooLayer(name, forward, backward, buggy, bug, bug_input, make_inputs,
                    frozenset(style), kinks)


_CATALOGUE = [
    _layer("affine", affine_forward, affine_backward, affine_buggy,
           "db = dout.mean(axis=0) instead of dout.sum(axis=0) (mean vs sum)", "b",
           affine_inputs, {_JNP}),
    _layer("conv1d_naive", conv1d_naive_forward, conv1d_naive_backward, conv1d_naive_buggy,
           "dx accumulates the flipped kernel w[f, :, ::-1] (convolution vs cross-correlation)",
           "x", conv1d_inputs, {_LOOP, _INPLACE}),
    _layer("conv2d_naive", conv2d_naive_forward, conv2d_naive_backward, conv2d_naive_buggy,
           "dx cropped from the padded gradient at [:H, :W] instead of [pad:pad+H, pad:pad+W]",
           "x", conv2d_naive_inputs, {_LOOP, _INPLACE}),
    _layer("conv2d_im2col", conv2d_im2col_forward, conv2d_im2col_backward, conv2d_im2col_buggy,
           "dw reshapes dout in (F, N, H', W') order while the columns are in (H', W', N) order",
           "w", conv2d_im2col_inputs, {_FANCY}),
    _layer("max_pool_naive", max_pool_naive_forward, max_pool_naive_backward,
           max_pool_naive_buggy, "dx routes dout to every entry of the window, not to its max",
           "x", max_pool_inputs, {_LOOP, _INPLACE}),
    _layer("avg_pool", avg_pool_forward, avg_pool_backward, avg_pool_buggy,
           "dx[window] = ... instead of += (overlapping windows keep only the last share)",
           "x", avg_pool_inputs, {_LOOP, _INPLACE}),
    _layer("batchnorm", batchnorm_forward, batchnorm_backward, batchnorm_buggy,
           "dx drops the dmean/N term (the path through the batch mean)", "x",
           batchnorm_inputs, {_JNP}),
    _layer("batchnorm_no_eps", batchnorm_no_eps_forward, batchnorm_no_eps_backward,
           batchnorm_no_eps_buggy,
           "dx = gamma * dout / std: mean and variance treated as constants (test-mode backward)",
           "x", batchnorm_no_eps_inputs, {_UFUNC}),
    _layer("spatial_batchnorm", spatial_batchnorm_forward, spatial_batchnorm_backward,
           spatial_batchnorm_buggy,
           "eps dropped from std in the backward (a small bug: ~5e-6 relative)", "x",
           spatial_batchnorm_inputs, {_JNP}),
    _layer("layernorm", layernorm_forward, layernorm_backward, layernorm_buggy,
           "dx's mean terms taken over axis 0 (batchnorm's backward pasted) instead of axis 1",
           "x", layernorm_inputs, {_JNP}),
    _layer("group_norm", group_norm_forward, group_norm_backward, group_norm_buggy,
           "dxhat = dout: the multiplication by gamma forgotten in the chain rule", "x",
           group_norm_inputs, {_UFUNC}),
    _layer("l2_normalize", l2_normalize_forward, l2_normalize_backward, l2_normalize_buggy,
           "dx = dout / norm: the norm treated as a constant (product rule term missing)", "x",
           l2_normalize_inputs, {_JNP}),
    _layer("dropout_bool_mask", dropout_forward, dropout_bool_mask_backward,
           dropout_bool_mask_buggy, "dx = dout * mask: the 1/p scaling forgotten", "x",
           dropout_bool_mask_inputs, {_JNP}),
    _layer("dropout_float_mask", dropout_forward, dropout_float_mask_backward,
           dropout_float_mask_buggy, "dx = dout / p: the mask not applied", "x",
           dropout_float_mask_inputs, {_JNP}),
    _layer("embedding", embedding_forward, embedding_backward, embedding_buggy,
           "dW[ids] += dout instead of np.add.at (repeated ids keep one contribution)", "W",
           embedding_inputs, {_FANCY, _JNP}),
    _layer("softmax_last_axis", *_softmax_last,
           "the backward's sum over axis 0 instead of the softmax axis -1", "x",
           softmax_inputs, {_UFUNC}),
    _layer("softmax_axis0", *_softmax_first,
           "the backward's sum over axis -1 instead of the softmax axis 0", "x",
           softmax_inputs, {_UFUNC}),
    _layer("attention", attention_forward, attention_backward, attention_buggy,
           "dscores not scaled by 1/sqrt(d) (dq and dk too large)", "q", attention_inputs,
           {_UFUNC, _INPLACE}),
    _layer("rnn_step", rnn_step_forward, rnn_step_backward, rnn_step_buggy,
           "dh = da @ Wh instead of da @ Wh.T", "h", rnn_step_inputs, {_UFUNC}),
    _layer("lstm_step", lstm_step_forward, lstm_step_backward, lstm_step_buggy,
           "dc_prev = dc instead of dc * f (the forget gate's factor dropped)", "c",
           lstm_step_inputs, {_UFUNC}),
    _layer("gru_step", gru_step_forward, gru_step_backward, gru_step_buggy,
           "dh misses the direct path dout * z (only the gates' paths kept)", "h",
           gru_step_inputs, {_UFUNC}),
    _layer("softmax_cross_entropy", softmax_cross_entropy_forward,
           softmax_cross_entropy_backward, softmax_cross_entropy_buggy,
           "dscores not divided by N (sum vs mean)", "scores", softmax_cross_entropy_inputs,
           {_UFUNC, _FANCY}),
    _layer("svm_hinge", svm_hinge_forward, svm_hinge_backward, svm_hinge_buggy,
           "the correct class's column never gets -(number of positive margins)", "scores",
           svm_hinge_inputs, {_UFUNC, _FANCY, _INPLACE}),
    _layer("mse", mse_forward, mse_backward, mse_buggy,
           "dtarget = +dpred (sign error)", "target", mse_inputs, {_JNP}),
    _layer("relu", relu_forward, relu_backward, relu_buggy,
           "dx = np.maximum(0, dout): relu applied to the upstream gradient, not masked by x",
           "x", relu_inputs, {_UFUNC}, kinks=True),
    _layer("sigmoid", sigmoid_forward, sigmoid_backward, sigmoid_buggy,
           "sigmoid' evaluated at the output: s(out) * (1 - s(out)) instead of out * (1 - out)",
           "x", sigmoid_inputs, {_UFUNC}),
    _layer("tanh", tanh_forward, tanh_backward, tanh_buggy,
           "dx = dout * (1 - x**2): tanh' written with the input instead of the output", "x",
           tanh_inputs, {_UFUNC}),
    _layer("residual_block", residual_block_forward, residual_block_backward,
           residual_block_buggy, "dx misses the skip connection's + dout", "x",
           residual_block_inputs, {_JNP}),
    _layer("conv1d_windows", conv1d_windows_forward, conv1d_windows_backward,
           conv1d_windows_buggy,
           "dx's window entries assigned (=) instead of accumulated (+=): overlaps keep one",
           "x", conv1d_inputs, set()),
    _layer("relu_mask_write", relu_mask_write_forward, relu_mask_write_backward,
           relu_mask_write_buggy,
           "dx[dout < 0] = 0: masked by the upstream gradient's sign instead of the input's",
           "x", relu_inputs, {_INPLACE, _FANCY}, kinks=True),
    _layer("leaky_relu", leaky_relu_forward, leaky_relu_backward, leaky_relu_buggy,
           "dx[x < 0] = alpha: the slope written over dout instead of scaling it", "x",
           leaky_relu_inputs, {_INPLACE, _FANCY}),
    _layer("elu_vectorize", elu_vectorize_forward, elu_vectorize_backward, elu_vectorize_buggy,
           "elu' for x <= 0 taken as the output, without the + alpha", "x", elu_inputs,
           {_UFUNC}),
    _layer("piecewise_linear", piecewise_linear_forward, piecewise_linear_backward,
           piecewise_linear_buggy,
           "dvalues gets the interpolation weights swapped (t at the left knot, 1 - t right)",
           "values", piecewise_linear_inputs, set()),
]
if erf is not None:
    _CATALOGUE.append(
        _layer("gelu_erf", gelu_erf_forward, gelu_erf_backward, gelu_erf_buggy,
               "dx = dout * Phi(x): the product rule's x * phi(x) term dropped", "x",
               gelu_inputs, {_UFUNC}))

LAYERS: dict[str, ZooLayer] = {layer.name: layer for layer in _CATALOGUE}

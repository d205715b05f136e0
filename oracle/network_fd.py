"""Finite differences of a network's loss, batched so that checking every parameter is cheap.

A perturbation of ``W_k[i, j]`` by ``d`` changes only column j of that layer's pre-activation:
``V_k[:, j] += d * X~_k[:, i]``. So instead of 2P separate forward passes, all perturbations of a
layer are pushed through the rest of the network together as one stacked computation (chunked
to bound memory). When layer k's activation is elementwise, only column j of ``Y_k`` changes
too, and the next pre-activation is a rank-1 update ``V_{k+1} + dY_j (x) W_{k+1}[j]``.

A layer's input ``X_k[b, i]`` only affects sample b, and the built-in losses are a mean of
per-sample losses, so input perturbations are run one sample at a time (batch of one).

Everything evaluates the reference's own ``dense_forward``, ``Activation.f`` and ``Loss.value``
on stacks of shape ``(C, B, width)``; those functions broadcast over the leading axis.
Each stencil holds f at ``x + k h``, k = -2..2 (see ``finite_differences``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reference.activations import Activation
from reference.layer import dense_forward
from reference.losses import Loss

from .finite_differences import OFFSETS, FDEstimate, choose_steps, estimate
from .magnitudes import loss_terms_magnitude

__all__ = [
    "activation_fd",
    "directional_fd",
    "input_fd",
    "loss_fd",
    "weight_fd",
]

MAX_STACK_ELEMENTS = 100_000
"""Chunk stacked evaluations to about this many float64 values per array (800 kB: the
working set of a chunk stays in cache, which measured 2-3x faster than 16 MB chunks)."""

SPARSE_BELOW = 0.6
"""Push only the moved samples through when fewer than 60 % of (perturbation, sample) pairs
move (gathering them costs more than it saves above that)."""

WORKERS = min(4, os.cpu_count() or 1)
"""Threads for chunked finite differences (numpy's array operations release the GIL)."""

_K = np.array(OFFSETS, dtype=np.float64)
_MOVED = np.array([k for k in OFFSETS if k != 0], dtype=np.float64)
"""The four offsets that move x; the stencil's centre is the unperturbed loss, shared by all."""


def _finish(
    v: np.ndarray,
    k: int,
    weights: Sequence[np.ndarray],
    activations: Sequence[Activation],
    loss: Loss,
    t: np.ndarray,
) -> np.ndarray:
    """Loss of stacked pre-activations ``v (C, B, m_k)`` of layer k through the rest: ``(C,)``."""
    y = activations[k](v)
    for j in range(k + 1, len(weights)):
        v, y = dense_forward(y, weights[j], activations[j])
    return loss.value_from_v(v, t) if loss.fused else loss.value(y, t)


def _chunk_size(per_item: int) -> int:
    return max(1, MAX_STACK_ELEMENTS // max(1, per_item * len(OFFSETS)))


def _run_chunks(
    work: Callable[[np.ndarray], int], n: int, size: int, progress: Callable[[int], None] | None
) -> None:
    """Run ``work(indices)`` over ``range(n)`` in chunks, on a few threads.

    numpy releases the GIL inside its array operations, so chunks run in parallel on the
    machine's cores; each chunk writes disjoint rows of the result.
    """
    chunks = [np.arange(a, min(n, a + size)) for a in range(0, n, size)]
    done = 0
    if len(chunks) < 4 or WORKERS < 2:
        for idx in chunks:
            done += work(idx)
            if progress is not None:
                progress(done)
        return
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for count in pool.map(work, chunks):
            done += count
            if progress is not None:
                progress(done)


def weight_fd(
    weights: Sequence[np.ndarray],
    xs: Sequence[np.ndarray],
    vs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    k: int,
    *,
    progress: Callable[[int], None] | None = None,
    noise_floor: float = 0.0,
) -> FDEstimate:
    """FD estimate of ``dE/dW_k`` for every entry of ``W_k`` (shape ``(n_k + 1, n_{k+1})``).

    Args:
        xs, vs, ys: the forward pass's per-layer inputs, pre-activations and outputs.
        progress: called with the number of entries done after each chunk.
        noise_floor: the magnitude of E's terms (``magnitudes.loss_value_magnitude``).
    """
    w = weights[k]
    n_in, m = w.shape
    x_tilde = np.concatenate([xs[k], np.ones((xs[k].shape[0], 1))], axis=1)  # (B, n+1)
    h = choose_steps(w)  # (n+1, m)
    batch = xs[k].shape[0]
    last = k == len(weights) - 1
    rank_one = activations[k].elementwise and not last
    widest = max(v.shape[1] for v in vs[k:])
    n_moved = len(_MOVED)
    values = np.empty((n_in * m, len(OFFSETS)))
    # The centre: the same computation with a zero perturbation, done once.
    start_layer, start_v = (k + 1, vs[k + 1]) if rank_one else (k, vs[k])
    base = _finish(start_v[None], start_layer, weights, activations, loss, t)[0]
    values[:, 2] = base
    separable = loss.builtin  # a mean of per-sample losses
    per_sample = (
        _finish(vs[k + 1][:, None, :], k + 1, weights, activations, loss, t[:, None, :])
        if rank_one and separable else None
    )
    moved_cols = [c for c, off in enumerate(OFFSETS) if off != 0]

    def chunk(idx: np.ndarray) -> int:
        i, j = np.divmod(idx, m)
        deltas = h[i, j][:, None] * _MOVED[None, :]  # (C, 4)
        # column j of V_k, perturbed: (C, 4, B)
        col = vs[k][:, j].T[:, None, :] + deltas[:, :, None] * x_tilde[:, i].T[:, None, :]
        c = idx.size * n_moved
        if rank_one:
            dy = activations[k](col) - ys[k][:, j].T[:, None, :]  # (C, 4, B)
            moved = np.any(dy != 0, axis=1)  # (C, B): samples whose unit j changes at all
            if separable and moved.mean() < SPARSE_BELOW:
                values[idx[:, None], moved_cols] = _sparse_rank_one(
                    dy, moved, j, k, weights, vs, activations, loss, t, per_sample, base)
                return idx.size
            nxt = vs[k + 1][None, None] + dy[..., None] * weights[k + 1][j][:, None, None, :]
            e = _finish(nxt.reshape(c, batch, -1), k + 1, weights, activations, loss, t)
        else:
            stack = np.broadcast_to(vs[k], (idx.size, n_moved, batch, m)).copy()
            stack[np.arange(idx.size), :, :, j] = col
            e = _finish(stack.reshape(c, batch, m), k, weights, activations, loss, t)
        values[idx[:, None], moved_cols] = np.reshape(e, (idx.size, n_moved))
        return idx.size

    _run_chunks(chunk, n_in * m, _chunk_size(batch * widest), progress)
    return estimate(values, h.reshape(-1), noise_floor=noise_floor).reshape(w.shape)


def _sparse_rank_one(dy, moved, j, k, weights, vs, activations, loss, t, per_sample, base):
    """Stencil values from the samples that move only: ``E + sum_b (E_b(d) - E_b(0)) / B``.

    For a loss that is a mean of per-sample losses, a sample whose unit j does not change
    (an inactive relu, a zero input) contributes nothing to the difference, so only the moved
    (perturbation, sample) pairs are pushed through the rest of the network, one sample each.
    Summing per-sample differences also avoids the cancellation of differencing two totals.

    Returns:
        ``(C, 4)`` stencil values for the moved offsets.
    """
    batch = vs[k].shape[0]
    ci, bi = np.nonzero(moved)
    rows = vs[k + 1][bi][:, None, :] + dy[ci, :, bi][..., None] * weights[k + 1][j[ci]][:, None, :]
    n_moved = dy.shape[1]
    targets = np.repeat(t[bi], n_moved, axis=0)[:, None, :]
    e = _finish(rows.reshape(-1, 1, rows.shape[-1]), k + 1, weights, activations, loss, targets)
    diff = (np.reshape(e, (-1, n_moved)) - per_sample[bi][:, None]) / batch  # (P, 4)
    out = np.zeros((dy.shape[0], n_moved))
    for col in range(n_moved):
        out[:, col] = np.bincount(ci, weights=diff[:, col], minlength=dy.shape[0])
    return base + out


def input_fd(
    weights: Sequence[np.ndarray],
    xs: Sequence[np.ndarray],
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    k: int,
    *,
    noise_floor: float = 0.0,
) -> FDEstimate:
    """FD estimate of ``dE/dX_k`` (the gradient w.r.t. layer k's input), shape ``(B, n_k)``.

    Built-in losses are a mean of per-sample losses, so each sample is perturbed alone (batch
    of one, scaled by 1/B); a custom loss is evaluated on the whole perturbed batch.
    """
    x = xs[k]
    batch, n = x.shape
    w = weights[k]
    h = choose_steps(x)
    v0 = dense_forward(x, w, activations[k])[0]  # (B, m)
    separable = loss.builtin
    values = np.empty((batch, n, len(OFFSETS)))
    widest = max(ww.shape[1] for ww in weights[k:])
    for b in range(batch):
        tb = t[b : b + 1] if separable else t
        rows = 1 if separable else batch
        size = _chunk_size(rows * widest)
        for start in range(0, n, size):
            i = np.arange(start, min(n, start + size))
            deltas = h[b, i][:, None] * _K[None, :]  # (C, 5)
            row = v0[b][None, None, :] + deltas[:, :, None] * w[i][:, None, :]  # (C, 5, m)
            c = i.size * len(OFFSETS)
            if separable:
                stack = row.reshape(c, 1, -1)
            else:
                stack = np.broadcast_to(v0, (c, batch, v0.shape[1])).copy()
                stack[:, b, :] = row.reshape(c, -1)
            e = _finish(stack, k, weights, activations, loss, tb)
            e = np.reshape(e, (i.size, len(OFFSETS)))
            values[b, i] = e / batch if separable else e
    return estimate(values, h, noise_floor=noise_floor)


def directional_fd(
    weights: Sequence[np.ndarray],
    xs: Sequence[np.ndarray],
    vs: Sequence[np.ndarray],
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    k: int,
    directions: np.ndarray,
    *,
    wrt: str = "W",
    noise_floor: float = 0.0,
) -> FDEstimate:
    """FD estimates of directional derivatives ``dE/dW_k . u`` (or ``dE/dX_k . u``).

    Args:
        directions: ``(K, *shape)`` unit vectors shaped like ``W_k`` (``wrt="W"``) or like
            ``X_k`` (``wrt="X"``).

    The step is ``cbrt(eps) * max(1, max|W_k|)`` along each unit direction, snapped to a power
    of two: a unit direction spreads it over all entries, so no entry moves more than h.
    """
    base = weights[k] if wrt == "W" else xs[k]
    h = float(choose_steps(np.array(np.max(np.abs(base), initial=0.0))))
    count = directions.shape[0]
    if wrt == "W":  # change of V_k per unit step along u: X~ u, all directions at once
        dv = xs[k] @ directions[:, :-1] + directions[:, -1][:, None, :]  # (K, B, m)
    else:
        dv = directions @ weights[k][:-1]  # (K, B, m)
    values = np.empty((count, len(OFFSETS)))
    values[:, 2] = _finish(vs[k][None], k, weights, activations, loss, t)[0]
    moved_cols = [c for c, off in enumerate(OFFSETS) if off != 0]
    stack = vs[k][None, None] + (h * _MOVED)[None, :, None, None] * dv[:, None]  # (K, 4, B, m)
    e = _finish(stack.reshape(-1, *vs[k].shape), k, weights, activations, loss, t)
    values[:, moved_cols] = np.reshape(e, (count, len(_MOVED)))
    return estimate(values, np.full(directions.shape[0], h), noise_floor=noise_floor)


def loss_fd(loss: Loss, y: np.ndarray, t: np.ndarray, *, from_v: bool = False) -> FDEstimate:
    """FD estimate of ``dE/dY`` (or ``dE/dV`` of the fused form) for every entry, ``(B, nL)``."""
    fn = loss.value_from_v if from_v else loss.value
    h = choose_steps(y)
    batch, m = y.shape
    values = np.empty((batch * m, len(OFFSETS)))
    flat = np.arange(batch * m)
    size = _chunk_size(batch * m)
    for start in range(0, flat.size, size):
        idx = flat[start : start + size]
        stack = np.broadcast_to(y, (idx.size, len(OFFSETS), batch, m)).copy()
        b, j = np.divmod(idx, m)
        stack[np.arange(idx.size), :, b, j] += h[b, j][:, None] * _K[None, :]
        values[idx] = np.reshape(fn(stack.reshape(-1, batch, m), t), (idx.size, len(OFFSETS)))
    # From V (fused) or for mse, E's rounding is bounded by its terms; -sum t log y has none
    # that cancel.
    floor = loss_terms_magnitude(loss, y, y, t) if from_v or loss.name == "mse" else 0.0
    return estimate(values, h.reshape(-1), noise_floor=floor).reshape(y.shape)


def activation_fd(
    act: Activation, v: np.ndarray, g: np.ndarray
) -> tuple[FDEstimate, FDEstimate | None]:
    """FD estimates for an activation at ``v (B, m)`` with upstream ``g = dE/dY (B, m)``.

    Returns:
        ``(vjp, derivative)``: the estimate of ``dE/dV = g^T dY/dV`` for every entry, and for an
        elementwise activation the estimate of ``act'(v)`` itself (None for softmax).
    """
    h = choose_steps(v)
    if act.elementwise:
        values = np.stack([act(v + k * h) for k in OFFSETS], axis=-1)  # (B, m, 5)
        deriv = estimate(values, h, noise_floor=np.abs(v) + np.abs(act(v)))
        vjp = FDEstimate(
            deriv.value * g, deriv.error * np.abs(g), deriv.kink,
            np.minimum(deriv.lo * g, deriv.hi * g), np.maximum(deriv.lo * g, deriv.hi * g),
            deriv.central * g, deriv.step,
        )
        return vjp, deriv
    batch, m = v.shape
    stack = np.broadcast_to(v, (m, len(OFFSETS), batch, m)).copy()  # perturb coordinate j
    for j in range(m):
        stack[j, :, :, j] += _K[:, None] * h[:, j][None, :]
    out = act(stack)  # (m, 5, B, m)
    values = np.einsum("jkbi,bi->bjk", out, g)  # (B, m, 5): g . f(v + k h e_j)
    floor = np.sum(np.abs(g) * out[0, 2], axis=-1, keepdims=True)  # |g| . softmax(v)
    return estimate(values, h, noise_floor=floor), None

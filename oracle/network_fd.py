"""Finite differences of a network's loss, batched so that checking every parameter is cheap.

A perturbation of ``W_k[i, j]`` by ``d`` changes only column j of that layer's pre-activation:
``V_k[:, j] += d * X~_k[:, i]``. So instead of 2P separate forward passes, all perturbations of a
layer are pushed through the rest of the network together as one stacked computation (chunked
to bound memory). When layer k's activation is elementwise, only column j of ``Y_k`` changes
too, and the next pre-activation is a rank-1 update ``V_{k+1} + dY_j (x) W_{k+1}[j]``. In the
output layer under mse or binary cross-entropy (a sum of one term per output unit), only
column j's terms of E move, and only they are evaluated.

The built-in losses are a mean of per-sample losses, so a perturbation that moves only some
samples (an input ``X_k[b, i]`` moves sample b alone; an inactive relu or a zero input moves
none) is pushed through for those samples only, one sample each, and the stencil value is
``E + sum_b (E_b(d) - E_b(0)) / B``: cheaper, and free of the cancellation of two totals.

Adaptive stencil: when JAX's gradient is at hand, every entry (or, in a directional check,
every direction) first gets ``f(x +- h)`` only.
An entry whose central difference agrees with JAX to within the *round-off* of the two
evaluations (eps |terms of E| / h, a bound known before looking; truncation cannot hide below
it) is settled (``finite_differences.settled_estimate``): finite differences confirm JAX there.
The others get ``f(x +- 2h)`` too and the full analysis of ``finite_differences.estimate``:
Richardson extrapolation, truncation and round-off estimates, kink detection. This module
only *evaluates* stencils; reading them is ``finite_differences``' alone.

Everything evaluates the reference's own ``dense_forward``, ``Activation.f`` and ``Loss.value``
on stacks of shape ``(C, B, width)``; those functions broadcast over the leading axis.
Each stencil holds f at ``x + k h``, k = -2..2 (see ``finite_differences``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reference.activations import Activation
from reference.layer import dense_forward
from reference.losses import Loss

from .finite_differences import (
    OFFSETS,
    FDEstimate,
    choose_steps,
    estimate,
    settled_estimate,
)
from .magnitudes import Product, loss_terms_magnitude

__all__ = [
    "Directions",
    "activation_fd",
    "directional_fd",
    "input_fd",
    "loss_fd",
    "loss_of",
    "weight_fd",
]

MAX_STACK_ELEMENTS = 32_768
"""Chunk stacked evaluations to about this many float64 values per array (256 kB: the few
arrays of a chunk's working set stay in cache; measured on the small config, 25k-50k values ran
1.5x faster than 100k-200k, and 16 MB chunks 2-3x slower)."""

SPARSE_BELOW = 0.6
"""Push only the moved samples through when fewer than 60 % of (perturbation, sample) pairs
move (gathering them costs more than it saves above that)."""

_SUM_OVER_UNITS = ("mse", "binary_cross_entropy")
"""Built-in losses that are a sum of one term per output unit (and sample), divided by B."""

_K = np.array(OFFSETS, dtype=np.float64)
_INNER = np.array([-1.0, 1.0])
_OUTER = np.array([-2.0, 2.0])
_MOVED = np.array([k for k in OFFSETS if k != 0], dtype=np.float64)
"""The four offsets that move x; the stencil's centre is the unperturbed loss, shared by all."""

Evaluate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(flat indices (C,), offsets (n,)) -> f at x + offset h for each: (C, n)``."""


def _finish(
    v: np.ndarray,
    k: int,
    weights: Sequence[np.ndarray],
    activations: Sequence[Activation],
    loss: Loss,
    t: np.ndarray,
) -> np.ndarray:
    """Loss of stacked pre-activations ``v (C, B, m_k)`` of layer k through the rest: ``(C,)``.

    Every layer acts on each row (sample) alone, so the layers after k run on the stack's rows
    as one ``(C B, m)`` matrix: one product per layer, where numpy would loop over C for a
    stacked one (30x slower per row when B = 1, as in the per-sample paths).
    """
    y = activations[k](v)
    if k + 1 < len(weights):
        lead = v.shape[:-1]
        y = y.reshape(-1, y.shape[-1])
        for j in range(k + 1, len(weights)):
            v, y = dense_forward(y, weights[j], activations[j])
        v, y = v.reshape(*lead, v.shape[-1]), y.reshape(*lead, y.shape[-1])  # C may be 0
    return loss.value_from_v(v, t) if loss.fused else loss.value(y, t)


def _stencil(
    evaluate: Evaluate,
    h: np.ndarray,
    base: float,
    per_item: int,
    *,
    reference: np.ndarray | None,
    noise_floor: float,
    progress: Callable[[int], None] | None,
    max_elements: int | None = None,
) -> FDEstimate:
    """Drive ``evaluate`` over every entry (chunked to about ``max_elements`` stacked values,
    default ``MAX_STACK_ELEMENTS``), adaptively when ``reference`` is given."""
    n = h.size
    h = h.reshape(-1)
    values = np.full((n, len(OFFSETS)), np.nan)
    values[:, 2] = base
    def sweep(indices: np.ndarray, offsets: np.ndarray, columns: list[int]) -> None:
        size = _chunk_size(per_item, offsets.size, max_elements)
        for start in range(0, indices.size, size):
            idx = indices[start : start + size]
            values[idx[:, None], columns] = evaluate(idx, offsets)
            if progress is not None and indices.size == n:  # the first sweep covers all
                progress(min(n, start + size))

    everything = np.arange(n)
    if reference is None:
        sweep(everything, _MOVED, [0, 1, 3, 4])
        return estimate(values, h, noise_floor=noise_floor)
    sweep(everything, _INNER, [1, 3])
    out, settled = settled_estimate(values, h, reference, noise_floor)
    rest = np.flatnonzero(~settled)
    if rest.size:  # the others: the full stencil and its analysis
        sweep(rest, _OUTER, [0, 4])
        full = estimate(values[rest], h[rest], noise_floor=noise_floor)
        for name in ("value", "error", "kink", "lo", "hi", "central"):
            getattr(out, name)[rest] = getattr(full, name)
    return out


def _chunk_size(
    per_item: int, offsets: int = len(OFFSETS), max_elements: int | None = None
) -> int:
    """Entries per chunk: ``per_item`` values per entry and offset, ``offsets`` offsets, at
    most ``max_elements`` values in all (default ``MAX_STACK_ELEMENTS``)."""
    limit = MAX_STACK_ELEMENTS if max_elements is None else max_elements
    return max(1, limit // max(1, per_item * offsets))


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
    reference: np.ndarray | None = None,
) -> FDEstimate:
    """FD estimate of ``dE/dW_k`` for every entry of ``W_k`` (shape ``(n_k + 1, n_{k+1})``).

    Args:
        xs, vs, ys: the forward pass's per-layer inputs, pre-activations and outputs.
        progress: called with the number of entries done after each chunk.
        noise_floor: the magnitude of E's terms (``magnitudes.loss_value_magnitude``).
        reference: JAX's dE/dW_k, for the adaptive stencil (None: full stencil everywhere).
    """
    w = weights[k]
    m = w.shape[1]
    x_tilde = np.concatenate([xs[k], np.ones((xs[k].shape[0], 1))], axis=1)  # (B, n+1)
    h = choose_steps(w)  # (n+1, m)
    batch = xs[k].shape[0]
    last = len(weights) - 1
    rank_one = activations[k].elementwise and k < last
    # The output layer, elementwise, under a loss that is a sum over output units: W_k[i, j]
    # moves only column j's terms of E, so only they are evaluated.
    by_column = (k == last and activations[k].elementwise and loss.builtin
                 and loss.name in _SUM_OVER_UNITS)
    # The centre: the same computation with a zero perturbation, done once.
    start_layer, start_v = (k + 1, vs[k + 1]) if rank_one else (k, vs[k])
    base = float(_finish(start_v[None], start_layer, weights, activations, loss, t)[0])
    if by_column:
        t_cols = t.T[:, None, :, None]  # (m, 1, B, 1): column j's targets
        column_terms = _column_loss(vs[k].T[:, None, :], k, activations, loss, t_cols)[:, 0]
    separable = loss.builtin  # a mean of per-sample losses
    per_sample = (
        _finish(vs[k + 1][:, None, :], k + 1, weights, activations, loss, t[:, None, :])
        if rank_one and separable else None
    )

    def evaluate(idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        i, j = np.divmod(idx, m)
        deltas = h[i, j][:, None] * offsets[None, :]  # (C, n)
        # column j of V_k, perturbed: (C, n, B)
        col = vs[k][:, j].T[:, None, :] + deltas[:, :, None] * x_tilde[:, i].T[:, None, :]
        c = idx.size * offsets.size
        if by_column:  # E + (column j's terms moved - as they were)
            moved = _column_loss(col, k, activations, loss, t_cols[j])
            return base + (moved - column_terms[j][:, None])
        if rank_one:
            dy = activations[k](col) - ys[k][:, j].T[:, None, :]  # (C, n, B)
            moved = np.any(dy != 0, axis=1)  # (C, B): samples whose unit j changes at all
            if separable and moved.mean() < SPARSE_BELOW:
                rows = np.nonzero(moved)
                nxt = vs[k + 1][rows[1]][:, None, :] + (
                    dy[rows[0], :, rows[1]][..., None] * weights[k + 1][j[rows[0]]][:, None, :])
                return _per_sample(nxt, rows, k + 1, weights, activations, loss, t, per_sample,
                                   base, idx.size)
            # (C, n, B, m_{k+1}): the products dY_j W_{k+1}[j] (einsum: the broadcast product's
            # values, without its inner loops of length m_{k+1}), then V_{k+1} added in place
            nxt = np.einsum("cob,cq->cobq", dy, weights[k + 1][j])
            nxt += vs[k + 1]
            e = _finish(nxt.reshape(c, batch, -1), k + 1, weights, activations, loss, t)
        else:
            stack = np.broadcast_to(vs[k], (idx.size, offsets.size, batch, m)).copy()
            stack[np.arange(idx.size), :, :, j] = col
            e = _finish(stack.reshape(c, batch, m), k, weights, activations, loss, t)
        return np.reshape(e, (idx.size, offsets.size))

    # The widest stacked array per entry and offset: from layer k+1 on for a rank-1 update.
    widest = 1 if by_column else max(v.shape[1] for v in vs[k + 1 if rank_one else k:])
    return _stencil(evaluate, h, base, batch * widest, reference=reference,
                    noise_floor=noise_floor, progress=progress).reshape(w.shape)


def _column_loss(col: np.ndarray, k: int, activations: Sequence[Activation], loss: Loss,
                 t_col: np.ndarray) -> np.ndarray:
    """The terms of E from one output unit: ``col (C, n, B)`` its pre-activations (C entries,
    n offsets), ``t_col (C, 1, B, 1)`` its targets; returns ``(C, n)``. For losses in
    ``_SUM_OVER_UNITS``, evaluated as a batch of B samples with one output each."""
    v = col[..., None]  # (C, n, B, 1)
    if loss.fused:
        return loss.value_from_v(v, t_col)
    return loss.value(activations[k](v), t_col)


def _per_sample(rows, where, k, weights, activations, loss, t, per_sample, base, count):
    """Stencil values from single samples: ``E + sum_b (E_b(d) - E_b(0)) / B``.

    Args:
        rows: ``(P, n, m_k)`` perturbed pre-activations of layer k, one sample each.
        where: ``(entry, sample)`` index arrays of the P rows.
        per_sample: ``(B,)`` the unperturbed per-sample losses E_b(0).
        count: how many entries the chunk has.

    Returns:
        ``(count, n)`` stencil values.
    """
    entry, sample = where
    n = rows.shape[1]
    targets = np.repeat(t[sample], n, axis=0)[:, None, :]
    e = _finish(rows.reshape(-1, 1, rows.shape[-1]), k, weights, activations, loss, targets)
    diff = (np.reshape(e, (-1, n)) - per_sample[sample][:, None]) / t.shape[0]
    out = np.zeros((count, n))
    for col in range(n):
        out[:, col] = np.bincount(entry, weights=diff[:, col], minlength=count)
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
    reference: np.ndarray | None = None,
) -> FDEstimate:
    """FD estimate of ``dE/dX_k`` (the gradient w.r.t. layer k's input), shape ``(B, n_k)``.

    ``X_k[b, i]`` moves only sample b: with a built-in loss each perturbation runs on that
    sample alone; a custom loss is evaluated on the whole perturbed batch.
    """
    x = xs[k]
    batch, n = x.shape
    w = weights[k]
    h = choose_steps(x)
    v0 = dense_forward(x, w, activations[k])[0]  # (B, m)
    separable = loss.builtin
    per_sample = _finish(v0[:, None, :], k, weights, activations, loss, t[:, None, :]) \
        if separable else None
    base = float(_finish(v0[None], k, weights, activations, loss, t)[0])

    def evaluate(idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        b, i = np.divmod(idx, n)
        deltas = h[b, i][:, None] * offsets[None, :]  # (C, n_off)
        rows = v0[b][:, None, :] + deltas[:, :, None] * w[i][:, None, :]  # (C, n_off, m)
        if separable:
            return _per_sample(rows, (np.arange(idx.size), b), k, weights, activations, loss,
                               t, per_sample, base, idx.size)
        stack = np.broadcast_to(v0, (idx.size, offsets.size) + v0.shape).copy()
        stack[np.arange(idx.size), :, b, :] = rows
        e = _finish(stack.reshape(-1, *v0.shape), k, weights, activations, loss, t)
        return np.reshape(e, (idx.size, offsets.size))

    widest = max(ww.shape[1] for ww in weights[k:])
    per_item = widest if separable else batch * widest
    return _stencil(evaluate, h, base, per_item, reference=reference, noise_floor=noise_floor,
                    progress=None).reshape(x.shape)


def loss_of(
    weights: Sequence[np.ndarray],
    xs: Sequence[np.ndarray],
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    k: int,
    wrt: str,
) -> Callable[[np.ndarray], float]:
    """E as a function of one layer's weights (``wrt="W"``: ``W_k`` of shape
    ``(n_k + 1, n_{k+1})``) or of its input (``wrt="X"``: ``X_k`` of shape ``(B, n_k)``), the
    rest of the network as it is: the scalar whose gradient a total is, for the engine's closer
    look at single entries (``engine.judge_entries``)."""
    def value(z: np.ndarray) -> float:
        x, w = (xs[k], z) if wrt == "W" else (z, weights[k])
        v = dense_forward(x, w, activations[k])[0]
        return float(_finish(v[None], k, weights, activations, loss, t)[0])

    return value


@dataclass(frozen=True)
class Directions:
    """``K`` rank-one directions ``u_c = a[c] b[c]^T`` of a 2-D shape ``(r, c)``.

    Attributes:
        a: ``(K, r)``; b: ``(K, c)``. ``|u_c|`` is ``|a[c]| |b[c]|`` (1 for unit a and b).
    """

    a: np.ndarray
    b: np.ndarray

    def project(self, g: np.ndarray | Product) -> np.ndarray:
        """``u_c . g = a[c]^T g b[c]`` for every c, ``(K,)``, for ``g`` of shape ``(r, c)``
        (a ``magnitudes.Product`` is projected through its factors)."""
        if isinstance(g, Product):
            return g.project(self.a, self.b)
        return np.sum((self.a @ np.reshape(g, (self.a.shape[1], -1))) * self.b, axis=1)

    def abs(self) -> Directions:
        """The directions ``|u_c| = |a[c]| |b[c]|^T`` (to project magnitudes)."""
        return Directions(np.abs(self.a), np.abs(self.b))

    def dense(self) -> np.ndarray:
        """``(K, r, c)``: every ``u_c`` written out (for tests and small shapes)."""
        return self.a[:, :, None] * self.b[:, None, :]


def directional_fd(
    weights: Sequence[np.ndarray],
    xs: Sequence[np.ndarray],
    vs: Sequence[np.ndarray],
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    k: int,
    directions: Directions,
    *,
    wrt: str = "W",
    noise_floor: float = 0.0,
    reference: np.ndarray | None = None,
) -> FDEstimate:
    """FD estimates of directional derivatives ``dE/dW_k . u`` (or ``dE/dX_k . u``), ``(K,)``.

    Args:
        directions: ``K`` rank-one unit directions ``a b^T`` shaped like ``W_k``
            (``wrt="W"``: ``a (K, n_k + 1)``, ``b (K, m)``) or like ``X_k`` (``wrt="X"``:
            ``a (K, B)``, ``b (K, n_k)``).
        reference: JAX's directional derivatives ``(K,)``, for the adaptive stencil (None:
            the full stencil along every direction).

    The step is ``cbrt(eps) * max(1, max|W_k|)`` along each unit direction, snapped to a power
    of two: a unit direction spreads it over all entries, so no entry moves more than h.
    V_k moves along ``X~ u = (X~ a) b^T`` (wrt W) or ``u W = a (b W)^T`` (wrt X, W without its
    bias row): rank-one changes, so no product of V's size is needed.
    """
    base_array = weights[k] if wrt == "W" else xs[k]
    h = float(choose_steps(np.array(np.max(np.abs(base_array), initial=0.0))))
    a, b = directions.a, directions.b
    count = a.shape[0]
    if wrt == "W":  # change of V_k per unit step along u: (X~ a) b^T, all directions at once
        left, right = a[:, :-1] @ xs[k].T + a[:, -1:], b  # (K, B), (K, m)
    else:  # (a (b W)^T), W without its bias row
        left, right = a, b @ weights[k][:-1]  # (K, B), (K, m)
    base = float(_finish(vs[k][None], k, weights, activations, loss, t)[0])

    def evaluate(idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        # (C, n, B, m): V_k + (offset h) (left right^T) for each direction and offset
        scaled = (h * offsets)[None, :, None] * left[idx][:, None, :]  # (C, n, B)
        stack = scaled[..., None] * right[idx][:, None, None, :]
        stack += vs[k]
        e = _finish(stack.reshape(-1, *vs[k].shape), k, weights, activations, loss, t)
        return np.reshape(e, (idx.size, offsets.size))

    # Per direction and offset the stack holds B x m_k values; the layers after k are no wider
    # than what one direction's whole stencil needs, so a direction is never split.
    per_item = max(v.size for v in vs[k:])
    return _stencil(evaluate, np.full(count, h), base, per_item, reference=reference,
                    noise_floor=noise_floor, progress=None, max_elements=count * per_item * 2)


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

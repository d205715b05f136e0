"""How far apart two *correct* float64 computations of the same gradient may lie.

A relative tolerance alone fails wherever the true value is (nearly) zero by cancellation: a
uniform softmax's dE/dV = Y (G - sum(G Y)) is exactly 0 in exact arithmetic and ~1e-16 in
float64. Such a result is right to the last bit *of its terms*, not of itself. The remedy is a
running error bound: next to each gradient, propagate the magnitudes of the terms it is a sum
of (the same backward pass with every factor replaced by its absolute value). Two correct
computations then differ by at most (number of roundings) x eps x that magnitude, per entry.

``TERM_RTOL = 1e-12`` = eps x ~4500 roundings: far more than a network of a few layers of a few
hundred units performs per entry; a wrong derivative is off by a sizable fraction of its terms.

Magnitudes, per layer (B = batch, M_* the magnitude of *'s terms):

- loss: mse (|Y| + |T|) / B; the fused cross-entropy (Y sum(T) + T) / B; the fused binary
  cross-entropy (Y + T) / B; unfused cross-entropies T / (Y B) and (T/Y + (1-T)/(1-Y)) / B;
- elementwise activation: M_dV = M_G (1 + |act'(V)| + M_V): act' itself is a sum of O(1) terms
  (gelu' in its tail is ~1e-13 made of terms ~1), and V computed in another order moves
  act'(V) by ~act'' eps M_V, with M_V = |X~| |W|;
- softmax: M_dV = Y (M_G + sum(M_G Y));
- M_dW = |X~|^T M_dV, M_dX = M_dV |W[:-1]|^T, and M_dX is the next layer's M_G.

A directional check needs only projections |a|^T M |b| of M_dW and of the input's M_dX, which
the two factors of each product give without forming it (``Product``): at the mnist size that
saves two products the size of the first layer's weights.

``loss_value_magnitude`` bounds the rounding of E itself (in units of eps), which finite
differences use as their round-off floor: cross-entropy's E = 1e-7 may come from terms ~16.

``rounding_sensitivity`` measures the other half of a gradient's rounding, for user code whose
structure the oracle does not know: how far the gradient moves when its inputs move by their
own rounding. A value computed from an intermediate of the inputs' size carries that
intermediate's rounding (2 (x - mean x) at x ~ 1e4 + 1e-3 is off by eps 1e4 in every entry,
far more than eps times its terms ~1e-3); that is the gradient at inputs moved by ~eps |x|, so
two right computations may differ by ~eps |H| |x| (H: the gradient's Jacobian, the Hessian of a
scalar f).

(First written for the property suite, which found the cases; the oracle owns it now.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reference.activations import Activation
from reference.losses import Loss
from reference.passes import Trace

__all__ = [
    "TERM_RTOL",
    "Product",
    "activation_magnitude",
    "first_layer_v_magnitude",
    "forward_error",
    "loss_magnitude",
    "loss_terms_magnitude",
    "loss_value_magnitude",
    "network_magnitudes",
    "rounding_sensitivity",
]

TERM_RTOL = 1e-12

ROUNDING_UNITS = 32.0
"""A right float64 gradient is (to first order) the exact one at inputs moved by at most ~32
eps relative: each intermediate of the inputs' size that it is computed from (a mean, a sum, a
difference) rounds once by eps/2 of its size, and a handful of them lie on any path; 32 leaves
a margin of 4 over 8 such roundings. ``rounding_sensitivity`` is in units of that eps."""

SENSITIVITY_STEP = 2.0**-20
"""``rounding_sensitivity`` moves the inputs by 2^-20 (~1e-6) relative: the gradients' own
rounding (~eps / 1e-6 = 2e-10 of their terms) and their curvature (~1e-6) stay far below the
change it measures, and a kink crossed on the way adds at most its jump x 1e-10 to a tolerance
(``ROUNDING_UNITS`` eps / 2^-20 = 7e-9 of the jump)."""

SENSITIVITY_PROBES = 3
"""Random sign patterns per measurement (a pattern of all equal signs sees H x, which cancels
for a shift-invariant f; with three the chance that all three cancel is 1/2^(3 (n - 1)))."""


@dataclass(frozen=True)
class Product:
    """A magnitude ``left @ right``, ``(r, p) @ (p, c)``, kept as its two factors."""

    left: np.ndarray
    right: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.left.shape[0], self.right.shape[1])

    def dense(self) -> np.ndarray:
        """``(r, c)``: the product itself."""
        return self.left @ self.right

    def project(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a[c]^T (left @ right) b[c]`` for ``a (K, r)``, ``b (K, c)``: ``(K,)``."""
        return np.sum((a @ self.left) * (self.right @ b.T).T, axis=1)


def dense(magnitude: np.ndarray | Product) -> np.ndarray:
    """A magnitude as an array, formed if it is a ``Product``."""
    return magnitude.dense() if isinstance(magnitude, Product) else magnitude


def _abs_tilde(x: np.ndarray, plus: np.ndarray | None = None) -> np.ndarray:
    """``|X~| = |[X, 1]|`` (B, n+1); with ``plus (B, n)``, ``|X~| + [plus, 0]``."""
    out = np.abs(np.concatenate([x, np.ones((x.shape[0], 1))], axis=1))
    if plus is not None:
        out[:, :-1] += plus
    return out


def loss_magnitude(loss: Loss, v: np.ndarray, y: np.ndarray, t: np.ndarray, *,
                   fused: bool) -> np.ndarray:
    """Magnitudes of the terms of dE/dY (``fused``: of the fused dE/dV), shape ``(B, nL)``."""
    batch = y.shape[-2]
    with np.errstate(divide="ignore", invalid="ignore"):
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


def activation_magnitude(act: Activation, v: np.ndarray, y: np.ndarray, g_mag: np.ndarray,
                         v_mag: np.ndarray | float = 0.0) -> np.ndarray:
    """Magnitude of dE/dV's terms from that of dE/dY (``g_mag``) and of V (``v_mag``)."""
    if act.elementwise:
        with np.errstate(all="ignore"):
            slope = np.abs(act.df(v))
        return g_mag * (1.0 + np.where(np.isfinite(slope), slope, 0.0) + v_mag)
    y = np.abs(y)
    return y * (g_mag + np.sum(g_mag * y, axis=-1, keepdims=True))


def network_magnitudes(
    weights: Sequence[np.ndarray], trace: Trace, t: np.ndarray,
    activations: Sequence[Activation], loss: Loss, *, factored: bool = False,
    first_v_mag: np.ndarray | None = None,
) -> tuple[list[np.ndarray | Product], list[np.ndarray | Product]]:
    """``(M_dW of every layer, M_dX of every layer's input)`` along a forward trace.

    With ``factored``, every M_dW and the network input's M_dX come as a ``Product`` (the
    others are needed as arrays on the way: each is the next layer's M_G).
    ``first_v_mag``: ``first_layer_v_magnitude``, if the caller has it already.
    """
    last = len(weights) - 1
    m_dws: list = [None] * len(weights)
    m_dxs: list = [None] * len(weights)
    g_mag = None
    for k in range(last, -1, -1):
        x_tilde = _abs_tilde(trace.xs[k])
        v_mag = first_v_mag if k == 0 and first_v_mag is not None else (
            x_tilde @ np.abs(weights[k]))
        v, y = trace.vs[k], trace.ys[k]
        if k == last and loss.fused:
            dv_mag = loss_magnitude(loss, v, y, t, fused=True)
        else:
            if k == last:
                g_mag = loss_magnitude(loss, v, y, t, fused=False)
            dv_mag = activation_magnitude(activations[k], v, y, g_mag, v_mag)
        m_dws[k] = Product(x_tilde.T, dv_mag)
        m_dxs[k] = Product(dv_mag, np.abs(weights[k][:-1]).T)
        if k > 0 or not factored:
            g_mag = m_dxs[k] = m_dxs[k].dense()
        if not factored:
            m_dws[k] = m_dws[k].dense()
    return m_dws, m_dxs


def first_layer_v_magnitude(weights: Sequence[np.ndarray], trace: Trace) -> np.ndarray:
    """``|X~_0| |W_0|`` (B, n_1): the magnitude of the first layer's V, which both
    ``network_magnitudes`` and ``forward_error`` need (pass it to both to form it once)."""
    return _abs_tilde(trace.xs[0]) @ np.abs(weights[0])


def forward_error(
    weights: Sequence[np.ndarray], trace: Trace, activations: Sequence[Activation], *,
    first_v_mag: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds, in units of eps, on the rounding error of the output layer's V and Y.

    V = X~ W rounds by ~eps |X~| |W| and inherits X's error through |W|; Y = act(V) rounds by
    ~eps (|Y| + |V|) and inherits V's error through |act'|. The network's input carries no
    error, so the first layer's bound is ``first_layer_v_magnitude`` (``first_v_mag``).
    """
    err_y = None  # the network's input carries no error
    for k, (act, x, v, y, w) in enumerate(
            zip(activations, trace.xs, trace.vs, trace.ys, weights)):
        if k == 0 and first_v_mag is not None:
            err_v = first_v_mag
        else:
            err_v = _abs_tilde(x, plus=err_y) @ np.abs(w)  # (|X~| + [err_y, 0]) |W|: one product
        with np.errstate(all="ignore"):
            slope = np.abs(act.df(v)) if act.elementwise else 1.0
        err_y = np.abs(y) + np.abs(v) + np.nan_to_num(slope) * err_v
    return err_v, err_y


def loss_value_magnitude(
    weights: Sequence[np.ndarray], trace: Trace, t: np.ndarray,
    activations: Sequence[Activation], loss: Loss, *, first_v_mag: np.ndarray | None = None,
) -> float:
    """Bound, in units of eps, on the rounding error of E (not eps |E|) from the network."""
    err_v, err_y = forward_error(weights, trace, activations, first_v_mag=first_v_mag)
    return loss_terms_magnitude(loss, trace.vs[-1], trace.ys[-1], t, err_v, err_y)


def loss_terms_magnitude(
    loss: Loss, v: np.ndarray, y: np.ndarray, t: np.ndarray,
    err_v: np.ndarray | float = 0.0, err_y: np.ndarray | float = 0.0,
) -> float:
    """Bound, in units of eps, on the rounding error of E computed from the output layer's
    ``v`` and ``y`` (which carry rounding bounds ``err_v``, ``err_y`` of their own)."""
    batch = y.shape[-2]
    if loss.builtin and loss.name == "cross_entropy":
        vmax = np.max(v, axis=-1, keepdims=True)
        lse = vmax[:, 0] + np.log(np.sum(np.exp(v - vmax), axis=-1))
        terms = np.abs(lse) * np.sum(t, axis=-1) + np.sum(t * (np.abs(v) + err_v), axis=-1)
        return float(np.sum(terms + np.sum(y * err_v, axis=-1))) / batch
    if loss.builtin and loss.name == "binary_cross_entropy":
        return float(np.sum((1.0 + t) * (np.abs(v) + err_v) + np.log(2.0))) / batch
    with np.errstate(all="ignore"):
        value = abs(float(loss.value(y, t)))
    bound = float(np.sum(np.abs(y - t) * (np.abs(y) + np.abs(t) + err_y))) / batch + value
    return bound if np.isfinite(bound) else value


def rounding_sensitivity(
    gradient_at, values: dict[int, np.ndarray], base: dict[int, np.ndarray], *,
    seed: int = 0x5E45,
) -> dict[int, np.ndarray]:
    """How far each entry of a gradient moves per eps of relative rounding of all its inputs:
    ``max_r |g(x (1 + d r)) - g(x)| / d`` over ``SENSITIVITY_PROBES`` random sign patterns r
    (d = ``SENSITIVITY_STEP``), which estimates ``|H| |x|`` (every input's share, its
    terms' signs scrambled so that they do not cancel).

    Args:
        gradient_at: ``{input position: array} -> {input position: gradient}``, the same
            gradient (JAX's VJP, same cotangent) at other input values.
        values: the inputs, by position (float arrays of any shape).
        base: the gradient at ``values``, by position (shaped like the inputs).

    Returns:
        Per position present in ``base``, an array shaped like that input (0 where nothing
        could be measured: non-finite values, or ``gradient_at`` raising).
    """
    rng = np.random.default_rng(seed)
    out = {i: np.zeros(np.shape(base[i])) for i in base}
    for _ in range(SENSITIVITY_PROBES):
        moved = {i: np.asarray(x, dtype=np.float64) * (1.0 + SENSITIVITY_STEP * rng.choice(
            [-1.0, 1.0], size=np.shape(x))) for i, x in values.items()}
        try:
            with np.errstate(all="ignore"):
                again = gradient_at(moved)
        except Exception:  # the program does not run there: nothing measured
            continue
        for i in out:
            with np.errstate(all="ignore"):
                change = np.abs(np.asarray(again[i], dtype=np.float64) - base[i])
            out[i] = np.maximum(out[i], np.where(np.isfinite(change), change, 0.0)
                                / SENSITIVITY_STEP)
    return out

"""How the error of a finite difference depends on its step: the data of the step-size picture.

For one entry w of a network's weights, the loss is a function of w alone, ``f(w)``. The central
difference ``D(h) = (f(w+h) - f(w-h)) / 2h`` misses the exact derivative by two errors:

- truncation, ``h^2 f'''(w) / 6``: slope +2 on a log-log plot, the right-hand side;
- round-off, about ``eps |f| / h`` (f's rounding error divided by the step): slope -1, the
  left-hand side, a noisy line because rounding is.

Their sum is smallest near ``h ~ cbrt(eps)``, which is where the oracle puts its step
(``finite_differences.choose_steps``). The oracle then uses the Richardson extrapolation
``(4 D(h) - D(2h)) / 3``, whose truncation is ``O(h^4)``; it is swept too.

The exact derivative is JAX's (``reference="jax"``) or the hand-derived one (``"hand"``). With a
wrong hand-derived gradient as the reference, the curve cannot go below the gradient's error:
its bottom is flat, and the report's verdict says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .finite_differences import choose_steps

__all__ = ["StepSweep", "fit_slope", "sweep_function", "sweep_network_entry"]

STEPS = np.logspace(-15, -1, 8 * 14 + 1)
"""The steps swept: 1e-15 .. 1e-1, eight per decade."""

AGREEMENT = 1e-8
"""The verdict: at its best step the central difference must come within 1e-8 of the reference,
relative to the gradient's scale. A right derivative gets to ~cbrt(eps)^2 ~ 4e-11 relative;
a wrong one stays at its own error."""

SIDE_MARGIN = 8.0
"""A side's fit starts a factor of 8 in h away from the best step, where one error dominates."""


def _plain(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def fit_slope(h: np.ndarray, err: np.ndarray) -> float:
    """The least-squares slope of ``log err`` against ``log h`` (zero errors left out); NaN when
    fewer than three points remain."""
    keep = err > 0
    if np.count_nonzero(keep) < 3:
        return float("nan")
    slope, _ = np.polyfit(np.log10(h[keep]), np.log10(err[keep]), 1)
    return float(slope)


@dataclass
class StepSweep:
    """The error of finite differences against their step for one entry.

    Attributes:
        entry: what was differentiated, e.g. ``"layer 0 dW[3, 4]"``.
        value: the entry's value w.
        exact: the reference derivative; ``reference``: "jax" or "hand".
        scale: the gradient's scale (largest |entry| of its term), for relative errors.
        steps: the steps h, ``(S,)``; central_error, richardson_error: ``|estimate - exact|``.
        chosen_step: the oracle's step for this entry (``choose_steps``).
        best_step, best_error: where the central difference came closest, and how close.
        truncation_slope, roundoff_slope: fitted log-log slopes right and left of the best
            step (expected 2 and -1); NaN when a side has too few points.
        truncation_range, roundoff_range: the ``(h_lo, h_hi)`` each fit used.
    """

    entry: str
    value: float
    exact: float
    reference: str
    scale: float
    steps: np.ndarray
    central_error: np.ndarray
    richardson_error: np.ndarray
    chosen_step: float
    best_step: float
    best_error: float
    truncation_slope: float
    roundoff_slope: float
    truncation_range: tuple[float, float]
    roundoff_range: tuple[float, float]

    @property
    def ok(self) -> bool:
        """True when the central difference at its best step agrees with the reference."""
        return self.best_error <= AGREEMENT * max(self.scale, abs(self.exact))

    def error_at(self, h: float, which: str = "central") -> float:
        """The swept error nearest to step ``h``."""
        errors = self.central_error if which == "central" else self.richardson_error
        return float(errors[np.argmin(np.abs(np.log(self.steps / h)))])

    @property
    def headline(self) -> str:
        verdict = "OK" if self.ok else "FAIL"
        agree = ("agrees with" if self.ok else "never comes near")
        truncation = (f"truncation {self.truncation_slope:.2f} (expect 2)"
                      if np.isfinite(self.truncation_slope) else
                      "no truncation side up to h=0.1 (f''' is ~0 at this entry)")
        roundoff = (f"round-off {self.roundoff_slope:.2f} (expect -1)"
                    if np.isfinite(self.roundoff_slope) else "no round-off side")
        return (
            f"{verdict}: {self.entry}: the central difference {agree} the {self.reference} "
            f"derivative {self.exact:.6g} "
            f"(best error {self.best_error:.1e} at h={self.best_step:.1e}); "
            f"slopes: {truncation}, {roundoff}; the oracle's step h={self.chosen_step:.2e}"
        )

    def __str__(self) -> str:
        lines = [self.headline, f"step sweep of {self.entry} (w = {self.value:.6g}):",
                 "  h          central err  richardson err"]
        for h, c, r in zip(self.steps[::8], self.central_error[::8],
                           self.richardson_error[::8]):
            lines.append(f"  {h:<9.1e}  {c:<11.2e}  {r:.2e}")
        lines.append(f"  chosen step {self.chosen_step:.2e}: central err "
                     f"{self.error_at(self.chosen_step):.2e}, richardson err "
                     f"{self.error_at(self.chosen_step, 'richardson'):.2e}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain JSON-able values: arrays and tuples as lists, NaN and Inf as None."""
        data = asdict(self)
        data.update(ok=self.ok, headline=self.headline)
        return {k: _plain(v) for k, v in data.items()}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


def sweep_function(
    f: Callable[[float], float],
    value: float,
    exact: float,
    *,
    entry: str = "f'",
    reference: str = "given",
    scale: float | None = None,
    steps: np.ndarray = STEPS,
) -> StepSweep:
    """Sweep central and Richardson differences of ``f`` at ``value`` against ``exact``.

    ``f`` maps the entry's value to the loss; it is called at ``value +- h`` and ``+- 2h``.
    """
    steps = np.asarray(steps, dtype=np.float64)
    fp1, fm1, fp2, fm2 = (np.array([f(value + k * h) for h in steps]) for k in (1, -1, 2, -2))
    central = (fp1 - fm1) / (2 * steps)
    wide = (fp2 - fm2) / (4 * steps)
    richardson = (4 * central - wide) / 3
    central_error = np.abs(central - exact)
    richardson_error = np.abs(richardson - exact)

    # The best step, from the errors smoothed over five neighbours (round-off is noisy).
    smooth = np.array([np.median(central_error[max(i - 2, 0): i + 3])
                       for i in range(len(steps))])
    best = int(np.argmin(smooth))
    right = steps >= steps[best] * SIDE_MARGIN
    left = steps <= steps[best] / SIDE_MARGIN

    def span(mask: np.ndarray) -> tuple[float, float]:
        return (float(steps[mask].min()), float(steps[mask].max())) if mask.any() else (
            float("nan"), float("nan"))

    return StepSweep(
        entry=entry, value=float(value), exact=float(exact), reference=reference,
        scale=float(abs(exact) if scale is None else scale),
        steps=steps, central_error=central_error, richardson_error=richardson_error,
        chosen_step=float(choose_steps(np.array([value]))[0]),
        best_step=float(steps[best]), best_error=float(central_error[best]),
        truncation_slope=fit_slope(steps[right], central_error[right]),
        roundoff_slope=fit_slope(steps[left], central_error[left]),
        truncation_range=span(right), roundoff_range=span(left),
    )


def sweep_network_entry(
    net,
    X: np.ndarray,
    T: np.ndarray,
    *,
    layer: int = 0,
    index: tuple[int, int] | None = None,
    reference: str = "jax",
    steps: np.ndarray = STEPS,
) -> StepSweep:
    """Sweep the finite differences of ``dE/dW_layer[index]`` of ``net`` at ``(X, T)``.

    Args:
        net: a ``reference.Network``; its weights are not changed.
        X, T: a batch and its targets, as ``net.gradients`` takes them.
        layer: which weight matrix (0-based; negative counts from the last).
        index: the entry ``(i, j)`` of ``W_layer`` (shape ``(n_k + 1, n_{k+1})``, bias row
            last); default the entry with the largest hand-derived ``|dE/dW|``.
        reference: "jax" (autodiff of the reference's forward) or "hand" (``net.gradients``).

    Raises:
        ValueError: a bad layer, index or reference.
    """
    from reference.passes import network_loss

    from . import autodiff

    if reference not in ("jax", "hand"):
        raise ValueError(f"reference must be 'jax' or 'hand', got {reference!r}")
    n_layers = len(net.weights)
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers}) for a {n_layers}-layer network, "
                         f"got {layer}")
    layer %= n_layers
    x = net._inputs(X)
    t = net._targets(T, x.shape[0])
    weights = [w.copy() for w in net.weights]
    _, hand, _ = net.gradients(x, t)
    grad = hand[layer]
    if reference == "jax":
        grad = autodiff.network_grads(weights, x, t, net.activations, net.loss_function)[0][layer]
    if index is None:
        index = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(hand[layer])),
                                                       grad.shape))
    index = tuple(index)
    shape = weights[layer].shape
    if len(index) != 2 or not all(-n <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"index must be two ints within weights[{layer}].shape = {shape}, "
                         f"got {index}")
    index = tuple(i % n for i, n in zip(index, shape))
    w = weights[layer]
    start = float(w[index])

    def f(value: float) -> float:
        w[index] = value
        try:
            return float(network_loss(weights, x, t, net.activations, net.loss_function))
        finally:
            w[index] = start

    bias = " (bias row)" if index[0] == shape[0] - 1 else ""
    return sweep_function(
        f, start, float(grad[index]), entry=f"layer {layer} dW[{index[0]}, {index[1]}]{bias}",
        reference=reference, scale=float(np.max(np.abs(grad))), steps=steps,
    )

"""Finite differences with an error estimate per entry, and kink detection.

Every derivative is estimated from a five-point stencil ``f(x + k h)``, k = -2..2:

- central differences ``D(h) = (f(x+h) - f(x-h)) / 2h`` and ``D(2h)``; truncation ~ h^2;
- Richardson extrapolation ``R = (4 D(h) - D(2h)) / 3`` removes the h^2 term; the estimate's
  truncation error is bounded by ``|D(h) - D(2h)| / 3`` (the error of D(h), which R improves on);
- the round-off level ``sigma`` of f is *measured*: the fourth difference
  ``f(-2) - 4 f(-1) + 6 f(0) - 4 f(1) + f(2)`` is h^4 f'''' (negligible) plus noise of standard
  deviation sqrt(70) sigma; floored at eps |f|. R's round-off is about ``sigma / h``, taken as
  the larger of the entry's own and the median over all entries of the call (one sample of the
  noise can be small by chance);
- the step is ``h = cbrt(eps) * max(1, |x|)`` snapped to a power of two, so that ``x +- h`` and
  ``x +- 2h`` are exact in floating point (cbrt(eps) balances truncation h^2 against round-off
  eps/h for the central difference);
- kinks: on a smooth function the four one-sided slopes of the stencil change linearly
  (consecutive differences all ~ h f''); a non-differentiable point inside the stencil breaks
  that pattern by a jump. Such an entry is flagged, and the bracket ``[lo, hi]`` of the one-sided
  slopes is kept: any subgradient there lies in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EPS",
    "OFFSETS",
    "FDEstimate",
    "choose_steps",
    "estimate",
    "settled_estimate",
    "stencil_loop",
]

EPS = float(np.finfo(np.float64).eps)
OFFSETS = (-2, -1, 0, 1, 2)
"""The stencil's offsets in units of h; ``values[..., i]`` is f at ``x + OFFSETS[i] * h``."""

NOISE_SIGMAS = 3.0
"""Round-off is counted at 3 standard deviations of the measured noise."""

KINK_FACTOR = 20.0
"""A slope pattern must break by 20x its expected smooth size (noise and h^2 f''') to be a kink."""

NOISY_SHARE = 0.25
"""f is taken for noisy when at least a quarter of the smooth stencils measure round-off beyond
``ROUNDOFF_BOUND``."""

ROUNDOFF_BOUND = 1000.0
"""Honest round-off in evaluating f is taken to be at most 1000 eps |f| (a deep sum of a few
hundred rounded terms stays well inside it)."""


def choose_steps(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Per-entry steps ``h = 2^round(log2(scale * cbrt(eps) * max(1, |x|)))`` (same shape as x)."""
    raw = scale * np.cbrt(EPS) * np.maximum(1.0, np.abs(np.asarray(x, dtype=np.float64)))
    return np.exp2(np.round(np.log2(raw)))


@dataclass
class FDEstimate:
    """Finite-difference derivatives of many entries at once (every array has the same shape).

    Attributes:
        value: the Richardson-extrapolated estimate.
        error: its estimated error: truncation bound plus 3 sigma of round-off.
        kink: True where the stencil straddles a non-differentiable point.
        lo, hi: the bracket of the one-sided slopes (meaningful where ``kink``).
        central: the plain central difference D(h), for reports.
        step: the step h used.
        noisy: True where f's measured round-off exceeds what honest float64 arithmetic makes
            (``ROUNDOFF_BOUND`` eps |f|): f is noisy (a solver's tolerance, float32 inside), and
            its finite differences may not confirm anything (None: not measured).
        flat: True where all five values are the same number: f is flat *to round-off* there,
            and the estimate 0 only says the slope is below what f's rounding can show: it can
            show a hand value wrong (far above that), never confirm one.
        blank: flat at exactly 0: not even f's rounding is known (a confident softmax's
            f = 40 - 40 reads 0 whatever its slope), so nothing is shown at all.
    """

    value: np.ndarray
    error: np.ndarray
    kink: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    central: np.ndarray
    step: np.ndarray
    noisy: np.ndarray | None = None
    flat: np.ndarray | None = None
    blank: np.ndarray | None = None

    def reshape(self, shape: tuple[int, ...]) -> FDEstimate:
        return FDEstimate(*(np.reshape(a, shape) for a in (
            self.value, self.error, self.kink, self.lo, self.hi, self.central, self.step)),
            noisy=None if self.noisy is None else np.reshape(self.noisy, shape),
            flat=None if self.flat is None else np.reshape(self.flat, shape),
            blank=None if self.blank is None else np.reshape(self.blank, shape))


def estimate(
    values: np.ndarray, h: np.ndarray, *, noise_floor: np.ndarray | float = 0.0
) -> FDEstimate:
    """Derivative estimates from stencil values.

    Args:
        values: ``(..., 5)``: f at ``x + k h`` for k in OFFSETS.
        h: the steps, broadcastable to ``values[..., 0]``.
        noise_floor: the magnitude of the terms f is computed from (broadcastable to the
            entries): f's round-off is at least eps times it, even where |f| itself is small
            (cross-entropy's E = 1e-7 may be a difference of terms ~16).
    """
    values = np.asarray(values, dtype=np.float64)
    fm2, fm1, f0, fp1, fp2 = (values[..., i] for i in range(5))
    h = np.broadcast_to(np.asarray(h, dtype=np.float64), f0.shape)
    d1 = (fp1 - fm1) / (2 * h)
    d2 = (fp2 - fm2) / (4 * h)
    richardson = (4 * d1 - d2) / 3
    truncation = np.abs(d1 - d2) / 3

    magnitude = np.maximum(np.max(np.abs(values), axis=-1), noise_floor)
    fourth = np.abs(fm2 - 4 * fm1 + 6 * f0 - 4 * fp1 + fp2)
    sigma = np.maximum(fourth / np.sqrt(70.0), EPS * magnitude)
    # One fourth difference is a single sample of the noise and can be near zero by chance;
    # the entries of one term share their rounding behaviour, so the round-off of the
    # derivative (sigma / h) is also pooled: the median over the call's entries (robust to
    # an outlier such as an undetected kink), kinks left out.

    # One-sided slopes left to right; their consecutive differences are ~h f'' on smooth f.
    slopes = np.stack([(fm1 - fm2) / h, (f0 - fm1) / h, (fp1 - f0) / h, (fp2 - fp1) / h], -1)
    steps = np.diff(slopes, axis=-1)  # three differences
    bends = np.abs(np.diff(steps, axis=-1))  # two second differences: ~h^2 f''' when smooth
    # The measured sigma is no use here: a kink inflates the fourth difference. Kink detection
    # uses a bound on honest round-off instead, ROUNDOFF_BOUND * eps * |f|, so a noisier f can
    # at worst be reported as a kink (never as a pass or a failure). Each slope carries
    # ~sqrt(2) sigma / h of noise; a bend combines four slopes (1, -2, 1): sqrt(20) sigma / h.
    noise = np.sqrt(20.0) * ROUNDOFF_BOUND * EPS * magnitude / h
    smooth_bend = np.minimum(bends[..., 0], bends[..., 1])
    kink = np.max(bends, axis=-1) > KINK_FACTOR * (noise + smooth_bend)
    # Two equal bends also come from a kink at x itself (slopes a, a, b, b): then the middle
    # step jumps while the outer ones stay flat.
    outer = np.maximum(np.abs(steps[..., 0]), np.abs(steps[..., 2]))
    kink |= np.abs(steps[..., 1]) > KINK_FACTOR * (noise + outer)
    slack = np.sqrt(2.0) * ROUNDOFF_BOUND * EPS * magnitude / h
    # Curvature pulls each one-sided slope inward by ~h f''/2: the slope over [x-h, x] is the
    # derivative at x - h/2. Extrapolated linearly to x from the two slopes on each side, the
    # one-sided derivatives at a kink at x are exact for a quadratic piece; they join the
    # bracket (with 3x the slopes' round-off, as (3 s1 - s0) / 2 carries).
    left = slopes[..., 1] + (slopes[..., 1] - slopes[..., 0]) / 2
    right = slopes[..., 2] - (slopes[..., 3] - slopes[..., 2]) / 2
    ends = np.stack([left, right], axis=-1)
    lo = np.minimum(np.min(slopes, axis=-1) - slack, np.min(ends, axis=-1) - 3 * slack)
    hi = np.maximum(np.max(slopes, axis=-1) + slack, np.max(ends, axis=-1) + 3 * slack)

    # Noise, not truncation: a smooth f's slope steps change steadily (its two second
    # differences share a sign, ~h^2 f'''), where noise flips them at random.
    second = np.diff(steps, axis=-1)
    flips = second[..., 0] * second[..., 1] < 0
    noisy = ~kink & flips & (fourth / np.sqrt(70.0) > ROUNDOFF_BOUND * EPS * magnitude)
    per_entry = sigma / h
    smooth = per_entry[~kink]
    pooled = float(np.median(smooth)) if smooth.size else 0.0
    if smooth.size and np.sum(noisy) >= NOISY_SHARE * smooth.size:
        # Noise is f's, not an entry's: where many stencils show it, a quiet-looking one was
        # lucky (a float32 staircase can fall on a line). Every entry gets the worst level.
        # (One or two loud stencils among many are more likely an unflagged kink nearby.)
        pooled = float(np.max(smooth))
        noisy = np.ones_like(noisy)
    else:
        noisy = np.zeros_like(noisy)
    roundoff = NOISE_SIGMAS * np.maximum(per_entry, pooled)
    error = truncation + roundoff
    flat = np.all(values == values[..., :1], axis=-1)
    return FDEstimate(richardson, error, kink, lo, hi, d1, h.copy(), noisy, flat,
                      flat & (values[..., 0] == 0))


SETTLE = 8.0
"""An entry is settled when its central difference is within 8 times the round-off bound of
``(f(x+h) - f(x-h)) / 2h`` of the reference (JAX's value), plus 1e-10 of it."""


def settled_estimate(values: np.ndarray, h: np.ndarray, reference: np.ndarray,
                     noise_floor: float | np.ndarray = 0.0) -> tuple[FDEstimate, np.ndarray]:
    """The inner stencil's verdict on a reference, before the outer points are paid for.

    ``values``: ``(n, 5)`` stencil values with the inner three (offsets -1, 0, 1) filled; ``h``:
    ``(n,)`` steps; ``reference``: ``(n,)`` values to confirm (JAX's). An entry whose central
    difference is within ``SETTLE`` round-off bounds of its reference is *settled*: its estimate
    is the central difference, its error the round-off plus the gap (no kink, the bracket the
    two one-sided slopes). The others need the outer points and ``estimate``.

    Returns:
        ``(estimate, settled)``: an estimate of every entry (valid where settled) and the mask.
    """
    h = np.reshape(h, -1)
    central = (values[:, 3] - values[:, 1]) / (2 * h)
    magnitude = np.maximum(np.max(np.abs(values[:, 1:4]), axis=1), noise_floor)
    noise = EPS * magnitude / h
    ref = np.reshape(reference, -1)
    settled = np.abs(central - ref) <= SETTLE * noise + 1e-10 * np.abs(ref)
    left, right = (values[:, 2] - values[:, 1]) / h, (values[:, 3] - values[:, 2]) / h
    out = FDEstimate(central.copy(), NOISE_SIGMAS * noise + np.abs(central - ref),
                     np.zeros(h.size, bool), np.minimum(left, right) - noise,
                     np.maximum(left, right) + noise, central, h.copy())
    return out, settled


def stencil_loop(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    h: np.ndarray,
    *,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Evaluate the stencil of a scalar function one coordinate at a time.

    Args:
        f: maps an array shaped like ``x`` to a float.
        x: the point, any shape, float64.
        h: per-entry steps, shaped like ``x``.

    Returns:
        ``(x.size, 5)`` values; ``f(x)`` is evaluated once and shared by every entry.
    """
    flat = x.reshape(-1).copy()
    steps = h.reshape(-1)
    f0 = float(f(flat.reshape(x.shape)))
    out = np.empty((flat.size, 5))
    out[:, 2] = f0
    for i in range(flat.size):
        original = flat[i]
        for col, k in ((0, -2), (1, -1), (3, 1), (4, 2)):
            flat[i] = original + k * steps[i]
            value = float(f(flat.reshape(x.shape)))
            if not np.isfinite(value):
                raise ValueError(
                    f"f is {value} at x + {k} h e_{i} (entry {i} moved from {original!r} to "
                    f"{flat[i]!r}, h = {steps[i]:.3g}): finite differences need f finite "
                    "around x"
                )
            out[i, col] = value
        flat[i] = original
        if progress is not None:
            progress(i)
    return out


def directional_stencil(
    f: Callable[[np.ndarray], float], x: np.ndarray, direction: np.ndarray, h: float
) -> np.ndarray:
    """``(5,)`` values of ``f(x + k h u)`` along a unit direction ``u`` shaped like ``x``."""
    return np.array([float(f(x + k * h * direction)) for k in OFFSETS])


__all__ += ["directional_stencil"]


SHRINK = 16.0
SHRINKS = 4
"""A stencil that leaves f's domain (a NaN, an Inf or an exception) is retried with its step
divided by 16, four times at most (down to ~1e-10 from cbrt(eps)): ``log(x)`` at x = 1e-6
needs h well below 1e-6, not cbrt(eps) ~ 6e-6."""
REFINES = 4
"""Beside a domain's edge f bends on the scale of the edge's distance d, not of max(1, |x|):
the step balancing truncation (~(h/d)^2 of the derivative for the bound ``estimate`` gives)
against round-off (~eps |f| / h) is ~cbrt(eps) d, below the first step that fits (~d/16 or
more). After that step, up to four more shrinks by 16 are tried and the stencil with the
smallest estimated error is kept (log at x = 1e-6: the first fit's bound is 3e-4 relative,
the best 1e-8)."""


def _guarded(f: Callable[[np.ndarray], float], shape: tuple[int, ...]
             ) -> Callable[[np.ndarray], float]:
    """``f`` that returns NaN where it raises (a stencil leaving f's domain, however f says so)."""
    def value(z: np.ndarray) -> float:
        try:
            with np.errstate(all="ignore"):
                return float(f(z.reshape(shape)))
        except Exception:
            return float("nan")
    return value


def _shrinking(value: Callable[[int, float], float], count: int, steps: np.ndarray,
               f0: float) -> np.ndarray:
    """``(count, 5)`` stencil values ``value(row, k h)``; a row that meets a non-finite value
    is retried with its step shrunk (``SHRINK``), and left NaN when that fails too."""
    out = np.full((count, 5), np.nan)
    out[:, 2] = f0
    first = steps.copy()
    for row in range(count):
        for attempt in range(SHRINKS + 1):
            vals = [value(row, k * steps[row]) for k in (-2, -1, 1, 2)]
            if all(np.isfinite(vals)):
                if attempt:
                    # The first step that fits may still reach across most of the way to the
                    # domain's edge, where f bends fastest: smaller ones are tried (REFINES).
                    vals, steps[row] = _refined(value, row, vals, float(steps[row]), f0)
                out[row, [0, 1, 3, 4]] = vals
                break
            steps[row] /= SHRINK
        else:
            steps[row] = first[row]  # report the step first tried
    return out


def _refined(value: Callable[[int, float], float], row: int, vals: list, step: float,
             f0: float) -> tuple[list, float]:
    """Of the stencils at ``step`` (values ``vals``) and up to ``REFINES`` steps 16x smaller
    each, the one whose estimate has the smallest error (its own round-off measured, not
    pooled): ``(values at -2, -1, 1, 2 steps, step)``. Stops at the first that is worse or
    not finite."""
    def error(v: list, h: float) -> float:
        row_values = np.array([[v[0], v[1], f0, v[2], v[3]]])
        return float(estimate(row_values, np.array([h])).error[0])

    best, best_step, best_error = vals, step, error(vals, step)
    for _ in range(REFINES):
        step /= SHRINK
        inner = [value(row, k * step) for k in (-2, -1, 1, 2)]
        if not all(np.isfinite(inner)):
            break
        err = error(inner, step)
        if not err < best_error:
            break
        best, best_step, best_error = inner, step, err
    return best, best_step


def entry_stencils(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    h: np.ndarray,
    entries: np.ndarray | None = None,
    *,
    f0: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Stencils of ``f`` along single entries, robust to points where f is not defined.

    Args:
        f: maps an array shaped like ``x`` to a float (it may raise, or return NaN/Inf).
        x: the point (float64, any shape); never modified.
        h: per-entry steps shaped like ``x``.
        entries: flat indices of the entries to move (default: all).
        f0: ``f(x)``, shared by every stencil.

    Returns:
        ``(values (n, 5), steps (n,))``: a row of NaN where no step up to two shrinks keeps f
        finite at all four moved points (that entry then has no finite-difference estimate).
    """
    flat = x.reshape(-1).copy()
    idx = np.arange(flat.size) if entries is None else np.asarray(entries, dtype=np.intp)
    steps = h.reshape(-1)[idx].astype(np.float64).copy()
    f_safe = _guarded(f, x.shape)

    def value(row: int, offset: float) -> float:
        i = idx[row]
        original = flat[i]
        flat[i] = original + offset
        try:
            return f_safe(flat)
        finally:
            flat[i] = original

    return _shrinking(value, idx.size, steps, f0), steps


def direction_stencils(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    directions: np.ndarray,
    h: float,
    *,
    f0: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Stencils of ``f`` along unit ``directions (k, *x.shape)``, as ``entry_stencils``."""
    steps = np.full(directions.shape[0], float(h))
    f_safe = _guarded(f, x.shape)
    return _shrinking(lambda row, offset: f_safe(x + offset * directions[row]),
                      directions.shape[0], steps, f0), steps


def estimate_where_finite(values: np.ndarray, h: np.ndarray, *, noise_floor: float = 0.0
                          ) -> FDEstimate:
    """``estimate`` over the rows of ``values`` that are finite; NaN estimates elsewhere (a
    NaN source takes no part in a verdict)."""
    ok = np.all(np.isfinite(values), axis=-1)
    n = values.shape[0]
    full = FDEstimate(*(np.full(n, np.nan) for _ in range(2)), np.zeros(n, bool),
                      *(np.full(n, np.nan) for _ in range(3)), np.asarray(h, float).copy(),
                      np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool))
    if np.any(ok):
        part = estimate(values[ok], np.asarray(h)[ok], noise_floor=noise_floor)
        for name in ("value", "error", "kink", "lo", "hi", "central", "noisy", "flat",
                     "blank"):
            getattr(full, name)[ok] = getattr(part, name)
    return full


__all__ += ["direction_stencils", "entry_stencils", "estimate_where_finite"]


PROBE_SCALES = (1.0, 1.0 / 16.0, 1.0 / 256.0, 1.0 / 4096.0)
"""``kink_probe`` looks at an entry with steps h down to h/4096 (~2e-9 max(1, |x|))."""
RESOLVED = 3.0
"""A smooth look overrides an earlier jump only if its error is a third of the jump or less."""
PROBE_CLEAN = 1e-8
"""A first look whose two sides agree to 1e-8 relative needs no closer one."""


def kink_probe(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    entries: np.ndarray,
    h: np.ndarray,
    *,
    f0: float,
    noise_floor: float = 0.0,
) -> FDEstimate:
    """A closer look at a few entries: is there a kink *at* x, or only near it?

    ``estimate`` decides kinks with a bound on honest round-off (``ROUNDOFF_BOUND`` eps |f|),
    so a slope jump small next to |f| (an L1 penalty 1e-6 on a loss of order 1) passes for
    noise, and a kink just beside x spoils the central estimate. Here each entry gets nine
    points ``x + k h`` (k = -4..4) per scale, and each side is read on its own:

    - one-sided derivatives from the left points and from the right points (second order,
      Richardson-extrapolated over h and 2h), each with its truncation (the two orders'
      difference) and its round-off, *measured* by that side's fourth difference;
    - the sides agree within their errors: f is smooth at x at this scale; their mean is the
      estimate (a kink beside x is left behind by a smaller step);
    - they differ by more than ``KINK_FACTOR`` times their errors at two scales at least, and
      no finer scale finds f smooth: a kink at x, with the bracket of the two one-sided
      derivatives (the finest);
    - the finest scale that decides has the last word (a jump that a smaller step makes smooth
      was a kink beside x); nothing decided: no estimate (NaN), so the entry's verdict falls to
      the other sources or to doubt.

    Args:
        f: maps an array shaped like x to a float (it may raise or return NaN: that scale is
            skipped).
        x: the point; entries: flat indices to probe; h: the steps (shaped like x); f0: f(x).
        noise_floor: the magnitude of the terms f is computed from, where it exceeds |f| (a
            network's E = 1e-7 from terms ~16 moves in steps of eps 16): each side's round-off
            is at least eps times it, as in ``estimate``.

    Returns:
        An ``FDEstimate`` over ``entries`` (1-D).
    """
    n = len(entries)
    out = FDEstimate(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool),
                     np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan),
                     h.reshape(-1)[entries].astype(np.float64), flat=np.zeros(n, bool))
    flat = x.reshape(-1).copy()
    value = _guarded(f, x.shape)
    for row, i in enumerate(np.asarray(entries, dtype=np.intp)):
        original = flat[i]
        seen = []  # (scale index, dl, el, dr, er), finite scales only
        for at, scale in enumerate(PROBE_SCALES):
            step = float(out.step[row]) * scale
            vals = np.empty(9)
            for k in range(-4, 5):
                flat[i] = original + k * step
                vals[k + 4] = f0 if k == 0 else value(flat)
            flat[i] = original
            if not np.all(np.isfinite(vals)) or np.all(vals == 0):
                continue  # outside f's domain, or blank (exactly 0): nothing to see here
            (dl, el), (dr, er) = _one_sided(vals, step, noise_floor)
            seen.append((at, dl, el, dr, er, bool(np.all(vals == vals[0]))))
            if abs(dr - dl) <= el + er and el + er <= PROBE_CLEAN * (abs(dl) + abs(dr)):
                break  # cleanly smooth: no need to look closer
        decided = []  # per scale, coarse to fine: ("smooth", value, error) | ("jump", lo, hi)
        flat_at = {}
        for _, dl, el, dr, er, level in seen:
            jump = abs(dr - dl)
            if jump <= el + er:
                decided.append(("smooth", (dl + dr) / 2, el + er + jump / 2))
                flat_at[len(decided) - 1] = level
            elif jump > KINK_FACTOR * (el + er):
                decided.append(("jump", min(dl, dr) - 2 * (el + er),
                                max(dl, dr) + 2 * (el + er)))
        # The finest scale that decides has the last word: a jump that a smaller step makes
        # smooth was a kink beside x; a jump that persists (two scales at least) is at x.
        # A side muddled at every scale (steep curvature, or a kink hair-close) decides nothing.
        # (A smooth look counts only if it could have seen the jumps before it: a fine step's
        # round-off can hide a small jump that coarser steps resolved.)
        last = None
        for j, d in enumerate(decided):
            if last is None or d[0] == "jump":
                last, chosen = d, j
            elif last[0] == "smooth":  # two smooth looks: the more precise one
                if d[2] < last[2]:
                    last, chosen = d, j
            elif (last[2] - last[1]) / 2 > RESOLVED * d[2]:  # a smooth look resolving a jump
                last, chosen = d, j
        jumps = sum(d[0] == "jump" for d in decided)
        if last is not None and last[0] == "smooth":
            _, out.value[row], out.error[row] = last
            out.central[row] = out.value[row]
            out.flat[row] = flat_at.get(chosen, False)  # (read flat: it cannot confirm)
        elif last is not None and jumps >= 2:
            _, out.lo[row], out.hi[row] = last
            out.kink[row] = True
            out.value[row] = out.central[row] = (out.lo[row] + out.hi[row]) / 2
            out.error[row] = out.hi[row] - out.lo[row]
    return out


def _one_sided(vals: np.ndarray, h: float, noise_floor: float = 0.0
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Left and right derivatives at the middle of nine points ``f(x + k h)``, k = -4..4, each
    with an error bound (truncation + 3 sigma of its side's measured round-off, at least eps
    times ``noise_floor``)."""
    out = []
    for sign, side in ((-1, vals[4::-1]), (1, vals[4:])):  # side[j] = f(x + sign j h)
        d1 = sign * (-3 * side[0] + 4 * side[1] - side[2]) / (2 * h)
        d2 = sign * (-3 * side[0] + 4 * side[2] - side[4]) / (4 * h)
        fourth = abs(side[0] - 4 * side[1] + 6 * side[2] - 4 * side[3] + side[4])
        sigma = max(fourth / np.sqrt(70.0), EPS * max(float(np.max(np.abs(side))),
                                                      noise_floor))
        roundoff = NOISE_SIGMAS * 4.0 * sigma / h
        out.append(((4 * d1 - d2) / 3, abs(d1 - d2) / 3 + roundoff))
    return out[0], out[1]


__all__ += ["kink_probe"]

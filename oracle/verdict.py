"""Three-way verdicts: hand-derived vs autodiff (JAX) vs finite differences, entry by entry.

Tolerances (each is printed with the verdict it produced):

- **hand vs JAX**: ``|g - a| <= tau * (|a| + rho * S)``, S = the largest |a| of the term.
  In float64 a right hand-derived gradient and JAX's compute the same sums in a different
  order: they differ by a few ulps times the depth and the fan-in (observed ~1e-15 .. 1e-13
  relative). ``tau = 1e-9`` leaves a margin of 1e4 over that and still catches an entry wrong by
  1e-6 relative with a margin of 1e3. The floor ``rho = 1e-3`` keeps entries that are tiny
  compared with their tensor (where cancellation makes relative error meaningless) from false
  alarms: they are judged to an absolute 1e-12 S.
- **anything vs finite differences**: ``|g - d| <= SAFETY * err + tau * (|d| + rho * S)`` where
  ``err`` is the finite difference's own error estimate (truncation + 3 sigma round-off, see
  ``finite_differences``); ``SAFETY = 4`` covers estimates that are themselves off by a
  small factor.
- float32 hand-derived values are judged with ``tau = 1e-4`` (a float32 gradient carries
  ~1e-7 relative rounding per operation, growing with depth) and the report warns about it.

Entry statuses: ``pass``; ``FAIL``; ``kink`` (the stencil straddles a non-differentiable point
and the hand value is a valid subgradient -- inside the bracket of one-sided slopes -- or agrees
with JAX, which applies the same convention); ``doubt`` (the sources of truth disagree with each
other, so the oracle cannot decide).

Decision table, with JAX available (ha: hand~JAX, af: JAX~FD, hf: hand~FD)::

    ha  af (FD accurate) -> pass
    ha  otherwise        -> kink if the stencil straddles a kink, else doubt (FD unreliable)
    !ha af !hf           -> FAIL   (hand != JAX ~ FD, and FD separates hand from JAX)
    !ha af hf            -> doubt  (FD cannot tell hand from JAX)
    !ha !af, kink        -> kink if hand is in the bracket of one-sided slopes, else FAIL
    !ha !af, hf          -> doubt  (JAX disagrees with both hand and FD)
    !ha !af, !hf         -> FAIL

Without JAX (untraceable user code): hf -> pass; kink -> doubt (finite differences cannot tell
a kink at x from one a hair beside it); FD too inaccurate to judge -> doubt; else FAIL.

A noisy stencil (f's measured round-off beyond float64 arithmetic) confirms nothing and
brackets no kink: its broken slope pattern is noise, so its entries end in doubt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .finite_differences import FDEstimate
from .magnitudes import TERM_RTOL

__all__ = ["RHO", "SAFETY", "TAU", "TAU_FLOAT32", "EntryVerdicts", "judge"]

TAU = 1e-9
TAU_FLOAT32 = 1e-4
RHO = 1e-3
SAFETY = 4.0
TINY = float(np.finfo(np.float64).tiny)
"""Absolute floor: JAX on CPU flushes subnormal results to zero, numpy keeps them."""
PROBLEM_FLOOR = 1e-6
"""A term's scale is at least 1e-6 of its problem's scale: below that, 1e-6-relative errors
of a term could not change any result that matters."""
FD_USELESS = 1e-2
"""An FD estimate whose error exceeds 1% of the term's scale (plus the entry's own size)
cannot confirm anything: the entry is in doubt unless another rule settles it."""

FD_ALONE_NOTE = "checked by finite differences alone (JAX could not trace this code)"
"""A row's note when JAX took no part (the general checks say it once, in the headline)."""

PASS, FAIL, KINK, DOUBT = "pass", "FAIL", "kink", "doubt"
STATUS_DTYPE = "<U5"
"""Entry statuses are short fixed-width strings: compared in vectorised numpy operations."""


@dataclass
class EntryVerdicts:
    """Per-entry outcome of one term (all arrays shaped like the term).

    Attributes:
        status: array of "pass" / "FAIL" / "kink" / "doubt".
        expected: the value each entry was judged against (JAX if available, else FD).
        got: the hand-derived values.
        error: ``|got - expected|``.
        tolerance: the tolerance of that comparison.
        err_ad, err_fd, err_ad_fd: max abs disagreement hand-JAX, hand-FD, JAX-FD (None if
            that source was not used).
        tol_ad, tol_fd: the largest tolerances used against JAX and FD.
        scale: S, the largest |expected| of the term.
        sources: which sources took part ("jax", "fd").
    """

    status: np.ndarray
    expected: np.ndarray
    got: np.ndarray
    error: np.ndarray
    tolerance: np.ndarray
    scale: float
    sources: tuple[str, ...]
    err_ad: float | None = None
    err_fd: float | None = None
    err_ad_fd: float | None = None
    tol_ad: float | None = None
    tol_fd: float | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return int(np.sum(self.status == status))

    @property
    def overall(self) -> str:
        """The worst status present: FAIL > doubt > kink > pass."""
        for status in (FAIL, DOUBT, KINK):
            if np.any(self.status == status):
                return status
        return PASS

    def worst_index(self) -> tuple[int, ...]:
        """Index of the entry that decides the overall status (largest error/tolerance)."""
        if self.status.size == 0:
            return ()
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            ratio = self.error / np.maximum(self.tolerance, np.finfo(float).tiny)
        ratio = np.where(np.isnan(ratio), np.inf, ratio)
        mask = self.status == self.overall
        ratio = np.where(mask, ratio, -np.inf)
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), self.status.shape))


def _tau_for(got: np.ndarray) -> float:
    return TAU_FLOAT32 if got.dtype == np.float32 else TAU


def judge(
    got: np.ndarray,
    ad: np.ndarray | None = None,
    fd: FDEstimate | None = None,
    *,
    scale: float | None = None,
    problem_scale: float = 0.0,
    magnitude: np.ndarray | float | None = None,
) -> EntryVerdicts:
    """Classify every entry of a hand-derived term against JAX and/or finite differences.

    Args:
        got: hand-derived values, any shape.
        ad: JAX's values, same shape, or None when JAX could not trace the code.
        fd: finite-difference estimates, same shape, or None when not computed.
        scale: S, the term's scale; default the largest |JAX| (or |FD|) value.
        problem_scale: the scale of the whole problem (e.g. the loss gradient of a network);
            without a ``magnitude``, S is raised to at least ``PROBLEM_FLOOR`` times it, so an
            all-zero (or vanishing) term is judged against something rather than nothing.
        magnitude: per entry, the magnitude of the terms the value is a sum of (see
            ``magnitudes``); ``TERM_RTOL`` of it is added to every tolerance, so a result that
            cancels to ~0 is judged by the accuracy of its terms, not of itself. Given, it is
            the *only* allowance for rounding: no floor from the term's or the problem's scale
            (``RHO``, ``PROBLEM_FLOOR``), so a vanishing term (layer 0 of a saturated deep
            network, 1e-20 of the loss gradient) and an entry 1e-12 of its term are judged at
            their own precision. None: the floors stand in for it.
    """
    if ad is None and fd is None:
        raise ValueError("judge needs at least one source of truth (JAX or finite differences)")
    tau = _tau_for(np.asarray(got))
    got = np.asarray(got, dtype=np.float64)
    shape = got.shape
    ad_given = ad is not None
    # A source that is NaN/Inf at an entry (an unstable form under autodiff, a stencil
    # leaving f's domain) does not take part in that entry's verdict.
    ad_ok = np.isfinite(ad) if ad is not None else np.zeros(shape, bool)
    fd_ok = np.isfinite(fd.value) & np.isfinite(fd.error) if fd is not None else np.zeros(
        shape, bool)
    ad = np.where(ad_ok, ad, 0.0) if ad is not None else np.zeros(shape)
    fdv = np.where(fd_ok, fd.value, 0.0) if fd is not None else np.zeros(shape)
    ref = np.where(ad_ok, ad, fdv)
    if scale is None:
        scale = float(np.max(np.abs(ref), initial=0.0))
    if magnitude is None:
        scale = max(scale, PROBLEM_FLOOR * problem_scale)
    floor = RHO * scale if magnitude is None else 0.0
    sources = tuple(s for s, v in (("jax", ad_ok), ("fd", fd_ok)) if np.any(v))
    out = EntryVerdicts(np.full(shape, FAIL, dtype=STATUS_DTYPE), ref, got, np.abs(got - ref),
                        np.zeros(shape), scale, sources)

    rounding = TERM_RTOL * np.asarray(0.0 if magnitude is None else magnitude,
                                      dtype=np.float64) + TINY
    if tau == TAU_FLOAT32:
        rounding = rounding * (TAU_FLOAT32 / TAU)
    tol_ad = tau * (np.abs(ad) + floor) + rounding
    ha = np.abs(got - ad) <= tol_ad
    base = np.where(ad_ok, np.abs(ad), np.abs(fdv))
    if fd is not None:
        err = np.where(fd_ok, fd.error, np.inf)
        tol_fd = SAFETY * err + TAU * (base + floor) + rounding
        hf = np.abs(got - fdv) <= tol_fd
        af = np.abs(ad - fdv) <= tol_fd
        # A noisy f's stencil breaks its slope pattern by noise, not by a kink: its kink flags
        # bracket nothing (and a "kink" would count as a pass).
        noisy = np.zeros(shape, bool) if fd.noisy is None else np.asarray(fd.noisy, bool)
        kinked = fd.kink & fd_ok & ~noisy
        # fd.lo/hi already carry the round-off slack; add only the relative tolerance.
        in_bracket = (got >= fd.lo - tau * (np.abs(fd.lo) + floor) - rounding) & (
            got <= fd.hi + tau * (np.abs(fd.hi) + floor) + rounding)
        # (With every value exactly 0 the scale is 0 and FD only has to confirm zero within
        # its own error, which the comparisons do.)
        useless = (err > FD_USELESS * (base + scale)) & (scale > 0)
        # A noisy f (measured round-off beyond honest float64 arithmetic) cannot confirm: its
        # differences may only separate (FAIL) or leave in doubt.
        useless = useless | (noisy & fd_ok)
        # A stencil flat to round-off confirms nothing: the slope is below what f's rounding
        # shows (where hand and JAX agree, it is consistent with them: JAX is exact). It can
        # still show a value far above that wrong; a blank one (all exactly 0) shows nothing.
        unconfirmed = np.zeros(shape, bool)
        agree = ad_ok & (np.abs(got - ad) <= tau * np.abs(ad) + rounding)
        if fd.flat is not None:
            unconfirmed = np.asarray(fd.flat, bool) & fd_ok & ~agree
        if fd.blank is not None:
            useless = useless | (np.asarray(fd.blank, bool) & fd_ok & ~agree)
    else:
        tol_fd = np.full(shape, np.inf)
        hf = af = kinked = in_bracket = useless = unconfirmed = np.zeros(shape, bool)

    status = out.status
    both, ad_only, fd_only = ad_ok & fd_ok, ad_ok & ~fd_ok, fd_ok & ~ad_ok
    # JAX and FD both present.
    # FD confirms JAX -- but not across a kink: there its error bar comes from the jump, and
    # "0 within a wide bar" confirms nothing (an all-zero term at relu's kink).
    settled = ha & af & ~useless & ~kinked & ~unconfirmed
    kink = kinked & ~settled
    status[both & settled] = PASS
    status[both & ha & ~settled] = DOUBT
    status[both & ~ha & ~af & hf] = DOUBT
    # hand != JAX ~ FD is a FAIL only where finite differences separate hand from JAX: if hand
    # is inside FD's error too, FD cannot tell which of the two is right (JAX may be the less
    # accurate one: p - 1 for a confident softmax).
    status[both & ~ha & af & hf] = DOUBT
    status[both & ~ha & useless] = DOUBT  # (flat, noisy or imprecise: it separates nothing)
    status[both & kink & (ha | in_bracket)] = KINK  # JAX agrees (same convention) or subgradient
    status[both & kink & ~ha & ~in_bracket] = FAIL
    # JAX alone.
    status[ad_only & ha] = PASS
    # Finite differences alone.
    status[fd_only & hf & ~useless & ~unconfirmed] = PASS
    status[fd_only & hf & unconfirmed] = DOUBT
    status[fd_only & useless] = DOUBT
    # Without JAX a kink stays in doubt: finite differences cannot tell a kink at x from one a
    # hair beside it (within their smallest step), where only one side's slope is right.
    status[fd_only & kinked & in_bracket] = DOUBT
    status[fd_only & kinked & ~in_bracket] = DOUBT
    # Neither source usable at this entry.
    status[~ad_ok & ~fd_ok] = DOUBT

    out.tolerance = np.where(ad_ok, tol_ad, np.where(fd_ok, tol_fd, 0.0))
    if np.any(ad_ok):
        out.err_ad = float(np.max(np.abs(got - ad)[ad_ok]))
        out.tol_ad = float(np.max(tol_ad[ad_ok]))
    if np.any(fd_ok):
        out.err_fd = float(np.max(np.abs(got - fdv)[fd_ok]))
        out.tol_fd = float(np.max(tol_fd[fd_ok]))
    if np.any(both):
        out.err_ad_fd = float(np.max(np.abs(ad - fdv)[both]))
    if ad_given and not np.all(ad_ok):
        out.notes.append(f"JAX's value is NaN/Inf at {int(np.sum(~ad_ok))} entries (autodiff of "
                         "an unstable form); finite differences judged them")
    if not ad_given:
        out.notes.append(FD_ALONE_NOTE)
    if np.any(~ad_ok & ~fd_ok):
        out.notes.append(f"{int(np.sum(~ad_ok & ~fd_ok))} entries have no finite source of truth")
    if tau == TAU_FLOAT32:
        out.notes.append("float32 values: judged to 1e-4 relative; float32 gradients are only "
                         "good to ~1e-4")
    return out

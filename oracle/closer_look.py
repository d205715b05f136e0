"""The closer look: what the engine does with the entries its first judgement left doubtful,
at a kink, or failed by little.

``verdict.judge`` decides each entry from its stencil and JAX's value. A stencil sees a kink
anywhere within its reach (~1e-5) and cannot tell one at x from one beside it; it judges a tie of
several entries (a max, a sort, a median) one coordinate at a time, where the subdifferential is
not a box; and a step that aliases with f, or noise in f, fools it. Here such entries are
re-judged, in place:

- ``_second_step``: finite differences alone, repeated on a few entries with another step; where
  they move, f aliases with the step or is noisy (``_noisy``), and they confirm nothing;
- ``_look_closer``: kink probes (``finite_differences.kink_probe``) at the entries in doubt, at
  a kink, or failing by little;
- ``_one_sided_autodiff``: JAX's exact one-sided derivatives at kinks;
- ``_tie_groups`` / ``_joint_kinks``: tied entries checked jointly, along their sum;
  ``_joint_across`` does it across all of a function's inputs at once (``_Pending``: an input's
  verdicts waiting for it);
- ``_rounding_doubt``: a FAIL within what the inputs' own rounding moves the gradient by is doubt.

The engine calls these after ``verdict.judge``: ``engine.judge_entries`` for one term,
``engine.judge_vjp`` across a function's inputs. This module does not import the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import magnitudes
from .finite_differences import (
    EPS,
    FDEstimate,
    choose_steps,
    entry_stencils,
    estimate_where_finite,
    kink_probe,
)
from .magnitudes import TERM_RTOL
from .verdict import DOUBT, FAIL, KINK, PASS, SAFETY, TAU, TINY, EntryVerdicts, judge

PROBED = 64
"""Entries per input that ``_look_closer`` re-examines, worst first."""
PROBE_RELATIVE = 1e-3
"""A FAIL this close to finite differences (relative to the entry and its term) could be an
unseen kink (a slope jump small next to |f|): such entries get a closer look. A larger error
would have shown as a kink already."""


STEP_RATIO = 0.7
"""Finite differences alone are repeated on a few entries with steps 0.7 h: a step that aliases
with a periodic part of f (period h) reads a smooth slope that a step of another length does
not."""
STEP_CHECKED = 8


def _second_step(phi, phi0, x: np.ndarray, est: FDEstimate, floor: float) -> str:
    """Repeat a few entries' stencils with another step; where the two estimates disagree beyond
    their errors, mark every estimate noisy (it cannot confirm) and say why."""
    finite = np.flatnonzero(np.isfinite(est.value.reshape(-1)) & ~est.kink.reshape(-1))
    if not finite.size or _noisy(est):
        return ""
    chosen = finite[np.unique(np.linspace(0, finite.size - 1, STEP_CHECKED).astype(int))]
    steps = est.step.reshape(-1).copy()
    steps[chosen] *= STEP_RATIO
    values, used = entry_stencils(phi, x, steps.reshape(x.shape), chosen, f0=phi0)
    other = estimate_where_finite(values, used, noise_floor=floor)
    first = FDEstimate(*(np.reshape(getattr(est, n), -1)[chosen] for n in (
        "value", "error", "kink", "lo", "hi", "central", "step")))
    gap = np.abs(other.value - first.value)
    off = gap > SAFETY * (first.error + other.error) + 1e-300
    if other.noisy is not None:  # the other step sees noise (or a period) the first did not
        off |= other.noisy
    # ... or cannot estimate at all where the first looked precise (a smooth f's errors at h and
    # 0.7 h differ by a small factor: truncation ~h^2, round-off ~1/h).
    off |= (other.error > 100 * first.error) & (other.error > 1e-6 * np.abs(first.value))
    if not np.any(off):
        return ""
    est.noisy = np.ones(x.shape, bool)
    return (f"finite differences depend on their step (with 0.7 h, {int(np.sum(off))} of "
            f"{chosen.size} entries moved by up to {float(np.max(gap)):.2e}): f aliases with the "
            "step or is noisy, so they confirm nothing")


def _noisy(est: FDEstimate) -> bool:
    """Whether finite differences found f noisier than float64 arithmetic makes it."""
    return est.noisy is not None and bool(np.any(est.noisy))


def _embed(x: np.ndarray, chosen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """x with the entries ``chosen`` (flat indices) set to ``values``."""
    out = x.reshape(-1).copy()
    out[chosen] = values
    return out.reshape(x.shape)


def _look_closer(phi, phi0, x, got, ref, magnitude, verdicts: EntryVerdicts, at=None,
                 est: FDEstimate | None = None, most: int = 64, noise_floor: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Re-judge, in place, the entries where the first stencil could not decide (doubt), saw a
    kink, or failed by little, with ``finite_differences.kink_probe``: one-sided derivatives with
    measured round-off at shrinking steps, which tell a kink at x (and its exact bracket, even
    where f is curved on both sides) from a kink beside x (left behind by a smaller step).

    ``at`` maps the (flat) entries' values to a full argument of ``phi`` when ``x`` holds only
    some entries of the input (directional mode's targeted entries).

    Returns ``(which, kink)``: the flat indices of the entries re-judged, and for each whether
    the closer look found a kink *at* x there (False: smooth at x, the stencil's kink was
    beside it)."""
    none = (np.zeros(0, np.intp), np.zeros(0, bool))
    status = verdicts.status.reshape(-1)
    expected = verdicts.expected.reshape(-1)
    gap = np.abs(np.asarray(got, dtype=np.float64).reshape(-1) - expected)
    near = gap <= PROBE_RELATIVE * (np.abs(expected) + verdicts.scale)
    # ... or lies between 0 and twice the estimate: a one-sided slope of a kink whose central
    # difference is the mean of its two sides (JAX's tie rule for maximum gives that mean too).
    hand = np.asarray(got, dtype=np.float64).reshape(-1)
    near |= (hand * expected >= 0) & (np.abs(hand) <= 2 * np.abs(expected) * (1 + 1e-9))
    # Kinks too: the first stencil calls a kink anything inside its reach, and a value that is
    # only a one-sided slope of a kink *beside* x is no subgradient at x.
    suspects = np.flatnonzero((status == DOUBT) | (status == KINK) | ((status == FAIL) & near))
    if not suspects.size:
        return none
    with np.errstate(over="ignore"):  # (an error far beyond a tolerance of ~0: inf, first)
        ratio = (verdicts.error / np.maximum(verdicts.tolerance, 1e-300)).reshape(-1)
    suspects = suspects[np.argsort(-ratio[suspects], kind="stable")][:most]
    flat_x = np.asarray(x, dtype=np.float64).reshape(-1)
    shape = np.shape(x)
    f = (lambda z: phi(np.reshape(z, shape))) if at is None else (lambda z: phi(at(z)))
    probe = kink_probe(f, flat_x, suspects, choose_steps(flat_x), f0=phi0,
                       noise_floor=noise_floor)
    looked = np.isfinite(probe.value)
    if est is not None:
        # A closer look replaces a stencil with something less precise only where the two
        # disagree (the stencil was misled: a kink it did not see), never where they agree.
        before = np.asarray(est.error, dtype=np.float64).reshape(-1)[suspects]
        value = np.asarray(est.value, dtype=np.float64).reshape(-1)[suspects]
        agree = np.abs(probe.value - value) <= SAFETY * (before + probe.error)
        looked &= probe.kink | ~np.isfinite(before) | (probe.error <= before) | ~agree
    if not np.any(looked):
        return none
    which = suspects[looked]

    def pick(a):
        return None if a is None else np.asarray(a, dtype=np.float64).reshape(-1)[which]

    sub = FDEstimate(*(getattr(probe, n)[looked] for n in (
        "value", "error", "kink", "lo", "hi", "central", "step")), flat=probe.flat[looked])
    again = judge(pick(got), pick(ref), sub, scale=verdicts.scale,
                  magnitude=np.broadcast_to(np.asarray(magnitude, dtype=np.float64),
                                            np.shape(got)).reshape(-1)[which])
    status[which] = again.status
    verdicts.tolerance.reshape(-1)[which] = again.tolerance
    return which, np.asarray(sub.kink, bool)


TIE_GROUP = 12
"""At most this many entries of one value are examined for a tie (pairs cost 4 evaluations)."""


def _tie_groups(phi, phi0, x: np.ndarray, candidates: np.ndarray, scale: float) -> list:
    """The groups of ``candidates`` that are *tied*: equal in value and interacting.

    Kinks of a separable f (relu at several zeros, hardtanh at -1 and +1) are independent: each
    entry's bracket is the whole story, and its subdifferential is a box. At a tie of a max, a
    sort or a median they are not: moving two tied entries together changes f at first order
    differently from moving each alone. Two entries a, b of equal value interact when the mixed
    difference f(x + s e_a + t e_b) - f(x + s e_a) - f(x + t e_b) + f(x) is first order in the
    step (about step |g|) for some signs of s, t; for a smooth or separable f it is second order
    (step^2 f_ab) or 0.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    parent = {int(i): int(i) for i in candidates}

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for value in np.unique(flat[candidates]):
        same = [int(i) for i in candidates if flat[i] == value][:TIE_GROUP]
        step = 2.0 ** -20 * max(1.0, abs(float(value)))
        threshold = 1e-3 * step * scale + 1e3 * EPS * (abs(phi0) + 1.0)

        def at(moves: dict) -> float:
            z = flat.copy()
            for i, m in moves.items():
                z[i] += m
            try:
                return float(phi(z.reshape(x.shape)))
            except Exception:
                return float("nan")

        for k, a in enumerate(same):
            for b in same[k + 1:]:
                for s_a, s_b in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    mixed = (at({a: s_a * step, b: s_b * step}) - at({a: s_a * step})
                             - at({b: s_b * step}) + phi0)
                    if not abs(mixed) <= threshold:  # (NaN: cannot tell, treat as tied)
                        parent[find(a)] = find(b)
                        break
    groups: dict[int, list[int]] = {}
    for i in parent:
        groups.setdefault(find(i), []).append(i)
    return [sorted(g) for g in groups.values() if len(g) >= 2]


def _joint_kinks(phi, phi0, x, got, verdicts: EntryVerdicts, flagged=None,
                 noise_floor: float = 0.0) -> str:
    """Check tied entries *jointly*, in place; return a note when it decided something.

    Each entry alone only has to lie in its own bracket of one-sided slopes, but at a tie (of a
    max, a sort, a median, a max-pooling window) the subdifferential is not a box: a backward
    that routes the whole gradient to *every* tied entry (a max-pool mask ``x == max``) passes
    each entry's bracket and is still wrong, and a right one (the whole gradient to one tied
    entry of a median) can fail a coordinate's partial derivative. For each group of tied
    entries (``_tie_groups``: entries at a kink, failed or in doubt, with every entry of equal
    value), along d = the group's sum every subgradient g has <g, d> within the one-sided
    derivatives of t -> f(x + t d) (exactly the derivative where f is smooth along d, as moving
    every tied entry together is). Outside: FAIL where f is smooth along d, doubt where d crosses
    a kink itself. Inside: the group's failures become doubt (a coordinate alone cannot judge a
    tie).
    """
    status = verdicts.status.reshape(-1)
    suspect = (status == KINK) | (status == FAIL) | (status == DOUBT)
    if flagged is not None:
        suspect |= np.asarray(flagged, bool).reshape(-1)
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.any(suspect):
        return ""
    values = np.unique(flat[suspect])
    candidates = np.flatnonzero(np.isin(flat, values))
    if candidates.size < 2 or candidates.size == flat.size and values.size == flat.size:
        return ""
    scale = float(np.max(np.abs(verdicts.expected), initial=0.0)) or 1.0
    notes = []
    hand = np.asarray(got, dtype=np.float64).reshape(-1)
    for group in _tie_groups(phi, phi0, x, candidates, scale):
        d = np.zeros(flat.size)
        d[group] = 1.0
        d = d.reshape(np.shape(x))
        h = choose_steps(np.array([np.max(np.abs(flat[group]), initial=0.0)]))
        along = kink_probe(lambda s, d=d: phi(x + s[0] * d), np.zeros(1), np.array([0]), h,
                           f0=phi0, noise_floor=noise_floor)
        if not np.isfinite(along.value[0]):
            continue
        total = float(np.sum(hand[group]))
        size = float(np.sum(np.abs(verdicts.expected.reshape(-1)[group])))
        slack = TAU * (abs(total) + size) + TINY
        if along.kink[0]:
            inside = along.lo[0] - slack <= total <= along.hi[0] + slack
        else:
            inside = abs(total - along.value[0]) <= SAFETY * along.error[0] + slack
        if inside:
            mine = status[group]
            mine[mine == FAIL] = DOUBT
            status[group] = mine
            continue
        status[group] = DOUBT if along.kink[0] else FAIL
        what = ("its one-sided derivatives are " f"[{along.lo[0]:.6g}, {along.hi[0]:.6g}]"
                if along.kink[0] else f"the derivative along it is {along.value[0]:.6g}")
        notes.append(f"{len(group)} tied entries checked jointly (ties are not boxes): along "
                     f"their sum {what}, the hand-derived gradient sums to {total:.6g}")
    return "; ".join(notes)


ONE_SIDED_STEP = 2.0 ** -44
"""``_one_sided_autodiff`` moves an entry by 2^-44 max(1, |x|) (~6e-14) to either side: a kink
farther from x than that is beside it, not at it."""


def _one_sided_autodiff(one_sided, x: np.ndarray, got, magnitude, verdicts: EntryVerdicts,
                        entries: np.ndarray | None = None, flagged=None, with_kinks: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Decide, in place, each entry judged a kink, or seen as one by a stencil (``flagged``),
    with JAX's exact one-sided derivatives.

    Finite differences see a kink anywhere within their stencil (~1e-5) and cannot tell one at
    x from one a hair beside it. JAX's gradient just right and just left of x (``one_sided``:
    x -> the same VJP at other values) can: equal sides mean f is smooth at x, and the hand
    value must be JAX's own; different sides bracket every subgradient exactly.

    ``entries``: the flat indices in x that the (flat) verdicts stand for (default: all);
    ``got`` and ``magnitude`` are aligned with the verdicts. ``with_kinks=False``: only the
    ``flagged`` entries, not every entry judged a kink.

    Returns ``(decided, kink)``: the (flat) verdict indices JAX decided, and for each whether
    its sides differ (a kink at x) or not (smooth at x).
    """
    status = verdicts.status.reshape(-1)
    at_kink = (status == KINK) if with_kinks else np.zeros(status.size, bool)
    if flagged is not None:  # a kink some stencil saw, whatever was concluded from it
        at_kink |= np.asarray(flagged, bool).reshape(-1)
    kinks = np.flatnonzero(at_kink)[:PROBED]
    decided: list[int] = []
    found: list[bool] = []
    if not kinks.size:
        return np.zeros(0, np.intp), np.zeros(0, bool)
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    where = np.arange(flat.size) if entries is None else np.asarray(entries)
    hand = np.asarray(got, dtype=np.float64).reshape(-1)
    sizes = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), np.shape(got)).reshape(-1)
    for k in kinks:
        e = where[k]
        step = ONE_SIDED_STEP * max(1.0, abs(flat[e]))
        values = {}
        for offset in (1.0, 2.0, -1.0, -2.0):
            moved = flat.copy()
            moved[e] += offset * step
            try:
                values[offset] = float(np.asarray(one_sided(moved.reshape(x.shape))
                                                  ).reshape(-1)[e])
            except Exception:  # the program does not run there: leave the entry as it is
                break
        if len(values) < 4 or not np.all(np.isfinite(list(values.values()))):
            continue
        # Each side's derivative drifts with its distance from x (by ~step f''): extrapolated
        # linearly from step and 2 step to x itself, what is left of the drift is ~step^2 f'''.
        sides = [2 * values[1.0] - values[2.0], 2 * values[-1.0] - values[-2.0]]
        drift = abs(values[1.0] - values[2.0]) + abs(values[-1.0] - values[-2.0])
        lo, hi = min(sides), max(sides)
        tol = TAU * (abs(lo) + abs(hi) + abs(hand[k]) + drift) + TERM_RTOL * sizes[k] + TINY
        decided.append(int(k))
        found.append(bool(hi - lo > tol))
        if hi - lo <= tol:  # smooth at x: the derivative is JAX's
            status[k] = PASS if abs(hand[k] - (lo + hi) / 2) <= tol else FAIL
        else:
            status[k] = KINK if lo - tol <= hand[k] <= hi + tol else FAIL
    return np.array(decided, dtype=np.intp), np.array(found, dtype=bool)


NOISY_DOUBT = ("f is noisy (its finite differences measure round-off beyond float64 "
               "arithmetic: float32 inside, a solver's tolerance), so they cannot separate "
               "hand from JAX, whose derivative of that arithmetic is no more exact")
ROUNDING_DOUBT = ("hand and JAX differ by less than the gradient moves when the inputs move "
                  "by their own rounding (magnitudes.rounding_sensitivity): either may be the "
                  "right one, rounded")


@dataclass
class _Pending:
    """One input's verdicts before the ties across inputs are checked and its row is built.

    Attributes:
        verdicts: the entries (shaped like the input).
        notes: the row's notes so far.
        flagged: entries a stencil saw as kinks (None: no stencil per entry).
        joint: whether its kinks may be checked jointly (a usable, quiet stencil).
        directions: directional mode: JAX against the random directions' finite differences
            (what they said of JAX carries over to the entries JAX settled).
        doubt: why entries are in doubt, for the headline (empty: the row says it).
        noisy: entries whose hand-JAX gap is within a noisy f's precision (directional mode,
            ``engine._located``): a FAIL there that rounding does not explain becomes doubt.
    """

    verdicts: EntryVerdicts
    notes: list[str]
    flagged: np.ndarray | None = None
    joint: bool = True
    noisy: np.ndarray | None = None
    directions: EntryVerdicts | None = None
    doubt: str = ""


def _joint_across(pending: dict[int, _Pending], values: dict[int, np.ndarray],
                  got: dict[int, np.ndarray], phi_of: Callable[[dict], float],
                  phi0: float) -> None:
    """Check tied entries jointly over *all* inputs together, in place (``_joint_kinks`` on
    the inputs flattened and joined): a tie of ``maximum(x, y)`` is between an entry of x and
    one of y, and routing the cotangent to both passes each one's bracket."""
    if not pending:
        return
    order = sorted(pending)
    shapes = [np.shape(values[i]) for i in order]
    cuts = np.cumsum([int(np.prod(sh)) for sh in shapes])[:-1]

    def join(arrays) -> np.ndarray:
        return np.concatenate([np.asarray(a).reshape(-1) for a in arrays])

    flat_x = join([np.asarray(values[i], dtype=np.float64) for i in order])
    flat_got = join([np.asarray(got[i], dtype=np.float64) for i in order])
    flagged = join([np.zeros(sh, bool) if pending[i].flagged is None else pending[i].flagged
                    for i, sh in zip(order, shapes)])
    combined = EntryVerdicts(join([pending[i].verdicts.status for i in order]),
                             join([pending[i].verdicts.expected for i in order]), flat_got,
                             np.zeros(flat_x.size), np.zeros(flat_x.size), 0.0, ())

    def phi(z: np.ndarray) -> float:
        return phi_of({i: part.reshape(sh) for i, part, sh in zip(order, np.split(z, cuts),
                                                                 shapes)})

    note = _joint_kinks(phi, phi0, flat_x, flat_got, combined, flagged=flagged)
    for i, part in zip(order, np.split(combined.status, cuts)):
        mine = pending[i].verdicts.status
        if note and np.any(part != mine.reshape(-1)):
            pending[i].notes.append(note)
        mine[...] = part.reshape(mine.shape)


def _rounding_doubt(pending: dict[int, _Pending], at: Callable, values: dict[int, np.ndarray],
                    ad: dict[int, np.ndarray]) -> None:
    """Turn into doubt, in place, each FAIL whose hand-JAX gap is within what rounding the
    inputs moves the gradient by (``magnitudes.rounding_sensitivity``, ``ROUNDING_UNITS``
    eps of it): two right float64 computations can be that far apart (2 (x - mean x) carries
    the mean's rounding, eps |x|, where JAX's 2 d - mean(2 d) does not), and no source can
    tell which is nearer the truth. Paid for only where some entry FAILs."""
    if not any(p.verdicts.count(FAIL) for p in pending.values()):
        return
    moved = magnitudes.rounding_sensitivity(at, values, ad)
    for i, p in pending.items():
        v = p.verdicts
        if i not in moved:
            continue
        band = v.tolerance + magnitudes.ROUNDING_UNITS * EPS * moved[i]
        within = (v.status == FAIL) & (v.error <= band)
        if np.any(within):
            v.status[within] = DOUBT
            v.tolerance[within] = band[within]
            p.doubt = ROUNDING_DOUBT
            p.notes.append(f"{int(np.sum(within))} entries: {ROUNDING_DOUBT}")

"""The engine of the general checks: a hand-derived VJP judged against JAX and finite differences.

Every single-function check (``check_vjp``, ``check_gradient``, ``check_loss``) is one call of
``judge_vjp``: a user's ``forward``, its arguments, a cotangent ``c`` and the hand-derived
gradients of the scalar ``phi(x) = <c, forward(x)>``, one per checked input. The engine

1. asks the **sources of truth**: JAX's VJP (``autodiff.vjp``: the code traced as it is, or its
   numpy run on JAX arrays) and finite differences of ``phi`` (``finite_differences``: a
   five-point stencil per entry with its own error estimate and kink bracket; steps shrink where
   a stencil leaves forward's domain);
2. **judges** every entry three-way (``verdict.judge``): the same tolerances, kink rules and
   doubt everywhere; then takes a **closer look** (``closer_look``) at the entries that judgement
   left in doubt, at a kink, or failed by little: kink probes, JAX's one-sided derivatives, ties
   checked jointly, a second step where finite differences stand alone;
3. **reports** one ``Row`` per input, its entries indexed in the input's own shape, with the
   count and mask of the wrong ones.

Where JAX could differentiate forward (``fd="auto"``), every entry is judged against JAX, a few
random unit directions check that JAX and finite differences agree (JAX differentiated the
function that numpy computes), and the entries where hand and JAX disagree get stencils of
their own, worst first (up to ``TARGETED``): there the three-way rules decide (a kink, a doubt, or
a FAIL that finite differences confirm). A wrong entry is always located, never reported as a
direction's number, and a right gradient costs ``4 x directions`` evaluations of forward per
input instead of 4 per entry. Without JAX, every entry gets its own stencil up to
``max_exhaustive`` entries; beyond that a directional failure is reported as such ("along random
direction d, entries not located"). ``fd="exhaustive"`` gives every entry a stencil anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import autodiff
from .arguments import Arguments, Output
from .closer_look import (
    NOISY_DOUBT,
    PROBED,
    _embed,
    _joint_across,
    _joint_kinks,
    _look_closer,
    _noisy,
    _one_sided_autodiff,
    _Pending,
    _rounding_doubt,
    _second_step,
)
from .finite_differences import (
    EPS,
    ROUNDOFF_BOUND,
    FDEstimate,
    choose_steps,
    direction_stencils,
    entry_stencils,
    estimate_where_finite,
)
from .jax_support import collector_keeps_up
from .report import Row
from .verdict import (
    DOUBT,
    FAIL,
    FD_ALONE_NOTE,
    KINK,
    PASS,
    SAFETY,
    TAU,
    TINY,
    EntryVerdicts,
    judge,
)

__all__ = ["MAX_EXHAUSTIVE", "TARGETED", "judge_entries", "judge_suspects", "judge_vjp",
           "validate_gradient"]

MAX_EXHAUSTIVE = 2_000
"""Default: an input with at most this many entries gets a stencil per entry."""

TARGETED = 256
"""Directional mode: entries where hand and JAX disagree get stencils of their own, worst first,
up to this many."""

JAX_MODES = (True, False, "direct")


def validate_gradient(value: object, shape: tuple[int, ...], name: str) -> np.ndarray | str:
    """The hand-derived gradient of input ``name`` as float64, or why it cannot be compared."""
    if value is None:
        return f"backward returned None for input {name!r}"
    try:
        arr = np.asarray(value)
    except Exception as exc:  # an object numpy cannot read
        return f"backward's gradient of {name!r} is not an array ({type(exc).__name__}: {exc})"
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.floating)
                                    or np.issubdtype(arr.dtype, np.integer)):
        return f"backward's gradient of {name!r} has dtype {arr.dtype}, expected a float array"
    if arr.shape != shape:
        return (f"wrong shape: backward gave {arr.shape} for input {name!r}, which has shape "
                f"{shape}")
    return arr if arr.dtype == np.float32 else arr.astype(np.float64)


def _no_source(shape: tuple[int, ...]) -> FDEstimate:
    nan = np.full(shape, np.nan)
    return FDEstimate(nan, nan, np.zeros(shape, bool), nan, nan, nan, nan)


def _unit_directions(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> np.ndarray:
    u = rng.normal(size=(count, *shape))
    norms = np.sqrt(np.sum(u.reshape(count, -1) ** 2, axis=1))
    return u / norms.reshape(count, *([1] * len(shape)))


def judge_vjp(
    forward: Callable,
    args: Arguments,
    output: Output,
    cotangent: tuple[np.ndarray | None, ...],
    hand: dict[int, np.ndarray],
    *,
    fd: str = "auto",
    jax: bool | str = True,
    max_exhaustive: int = MAX_EXHAUSTIVE,
    directions: int = 8,
    rng: np.random.Generator,
    term: Callable[[str], str] = lambda name: f"d{name}",
    noise_floor: float = 0.0,
) -> tuple[list[Row], list[str], str]:
    """Judge the hand-derived gradients ``hand`` (input position -> float array shaped like
    that input) of ``phi(x) = <cotangent, forward(x)>``.

    Args:
        forward, args: the user's function and its arguments (``arguments.Arguments``).
        output: ``forward``'s output at ``args`` (flattened, ``arguments.Output``).
        cotangent: one float64 array per output (None for non-float outputs).
        hand: the gradients under test, validated (``validate_gradient``).
        fd: "auto" (per entry up to ``max_exhaustive`` entries, else directions),
            "exhaustive", "directional" or "none".
        jax: True (trace forward as it is, else its numpy code on JAX arrays), "direct" (as it
            is only) or False (leave JAX out).
        directions: random unit directions per input in directional mode (seeded by ``rng``).
        term: the row's term name from the input's name.
        noise_floor: the size of the terms forward's value is computed from, where it is known
            to exceed ``<|cotangent|, |output|>`` (finite differences' round-off floor).

    Returns:
        ``(rows, notes, judged_by)``: one row per input of ``hand`` in input order, the report's
        notes, and a short statement of which sources judged.
    """
    wrt = sorted(hand)
    notes: list[str] = []
    ad: dict[int, np.ndarray] | None = None
    at = None
    sizes: dict[int, np.ndarray] = {}
    if jax is False:
        jax_why = "JAX left out (jax=False)"
    else:
        again: list = []
        measure: list = []
        ad, jax_why = autodiff.vjp(forward, args, cotangent, wrt, output,
                                   lifted=jax != "direct", again=again, sizes=measure)
        at = again[0] if again else None
        if measure and any(np.any(np.abs(hand[i] - ad[i]) > TAU * np.abs(ad[i])) for i in wrt):
            # Only where hand and JAX differ beyond 1e-9 relative does rounding matter: then
            # (and only then) the pullbacks that measure the terms' magnitudes are paid for.
            sizes.update(measure[0]())
        measure.clear()  # the pullback's residuals (eager JAX) are not kept through the rest
    if ad is None and fd == "none":
        jax_why = jax_why.replace(": finite differences alone judge",
                                  "; finite differences are off (fd='none'): nothing judges")
    notes.append(jax_why)
    floor = max(output.pair_magnitude(cotangent), noise_floor)
    phi0 = output.pair(cotangent)

    changes: list[str] = []
    keep_up = collector_keeps_up()

    def phi_of(values: dict[int, np.ndarray]) -> float:
        keep_up()
        moved = Output.of(args.call(forward, replace=values), copy=False)
        changed = output.differs(moved)
        if changed:  # no value of phi there: the stencil treats it as outside f's domain
            changes.append(changed)
            return float("nan")
        return moved.pair(cotangent)

    judged: dict[int, Row | _Pending] = {}
    for i in wrt:
        name = args.names[i]
        x = args.values[i]

        def phi(z: np.ndarray, i: int = i) -> float:
            return phi_of({i: z})

        got, ref = hand[i], (None if ad is None else ad[i])
        mode = fd
        if fd == "auto":
            mode = ("directional" if ref is not None or x.size > max_exhaustive
                    else "exhaustive")
        one_sided = None if at is None else (lambda values, i=i: at({i: values})[i])
        if mode == "directional":
            judged[i] = _directional_row(phi, phi0, floor, x, got, ref, sizes.get(i, 0.0),
                                         directions, rng, term(name), name, one_sided)
            continue
        magnitude = sizes.get(i, 0.0)
        step_note = ""
        if mode == "exhaustive":
            values, steps = entry_stencils(phi, x, choose_steps(x), f0=phi0)
            est = estimate_where_finite(values, steps, noise_floor=floor).reshape(x.shape)
            if ref is None:  # finite differences alone: do they depend on the step?
                step_note = _second_step(phi, phi0, x, est, floor)
        else:
            est = None if ref is not None else _no_source(x.shape)
        verdicts, note = judge_entries(got, ref, est, magnitude=magnitude, phi=phi, x=x,
                                       f0=phi0, one_sided=one_sided, joint=False)
        usable = est is not None and not np.all(np.isnan(est.value))
        judged[i] = _Pending(verdicts, [step_note, note], None if est is None else est.kink,
                             joint=usable and not _noisy(est),
                             doubt=NOISY_DOUBT if usable and _noisy(est) else "")

    pending = {i: p for i, p in judged.items() if isinstance(p, _Pending)}
    _joint_across({i: p for i, p in pending.items() if p.joint}, args.values, hand, phi_of,
                  phi0)
    for p in pending.values():
        _carry_directions(p)
    if at is not None and ad is not None:
        _rounding_doubt(pending, at, {i: args.values[i] for i in pending}, ad)
    _noise_doubt(pending)
    rows = []
    for i in wrt:
        p, name = judged[i], args.names[i]
        rows.append(p if isinstance(p, Row) else Row.from_verdicts(
            None, term(name), "total", p.verdicts, input=name,
            note="; ".join(filter(None, p.notes))))

    if changes:
        notes.append(f"forward's output changed its structure at {len(changes)} points beside "
                     f"the inputs (e.g. {changes[0]}): finite differences there were left out")
    if any(r.sources == ("jax", "fd") and fd != "exhaustive" for r in rows):
        notes.append(f"finite differences: {directions} random unit directions per input "
                     "confirm JAX; entries where hand and JAX disagree get stencils of their "
                     "own")
    for r in rows:  # said once, in the headline
        r.note = "; ".join(p for p in r.note.split("; ") if p and p != FD_ALONE_NOTE)
    used = set().union(*(r.sources for r in rows))
    if used == {"jax", "fd"}:
        judged_by = "judged by JAX and finite differences"
    elif used == {"fd"}:
        judged_by = "judged by finite differences alone: " + (
            "JAX left out" if jax is False else "JAX could not trace forward")
    elif used == {"jax"}:
        judged_by = "judged by JAX alone: finite differences " + (
            "off" if fd == "none" else "had no finite value")
    else:
        judged_by = "no source of truth could judge"
    why = [p.doubt for p in pending.values() if p.doubt and p.verdicts.count(DOUBT)]
    if why:  # a doubt with a cause the engine knows: the headline says it
        judged_by += "; in doubt: " + "; ".join(dict.fromkeys(why))
    return rows, notes, judged_by


def _directional_row(phi, phi0, floor, x, got, ref, magnitude, count, rng, term, name,
                     one_sided=None) -> Row | _Pending:
    """One input in directional mode (see the module docstring): with JAX, its entries'
    verdicts (``_located``); without, the row of the directions' projections."""
    u = _unit_directions(rng, count, x.shape)
    h = float(choose_steps(np.array(np.max(np.abs(x), initial=0.0))))
    values, steps = direction_stencils(phi, x, u, h, f0=phi0)
    est = estimate_where_finite(values, steps, noise_floor=floor)
    flat_u = u.reshape(count, -1)

    def project(a: np.ndarray) -> np.ndarray:
        return flat_u @ np.asarray(a, dtype=np.float64).reshape(-1)

    if ref is not None:
        scale = float(np.sqrt(np.vdot(ref, ref)))
        jax_vs_fd = judge(project(ref), None, est, scale=scale)
        # (Finite differences alone leave kinks in doubt; along a direction, JAX inside the
        # kink's bracket is as confirmed as it can be.)
        jax_vs_fd.status[(jax_vs_fd.status == DOUBT) & est.kink] = KINK
        # ... and a flat reading is consistent with JAX's exact projection inside its error.
        consistent = est.flat & (np.abs(project(ref) - est.value) <= SAFETY * est.error + TINY)
        jax_vs_fd.status[(jax_vs_fd.status == DOUBT) & consistent] = PASS
        # A noisy f (float32 inside): its relative precision, from the directions' round-off,
        # where f is seen to stand still on a grid coarser than float64's (not merely bent or
        # kinked, which also trips the noise test of a stencil as wide as h).
        noise = 0.0
        if _noisy(est) and _quantized(phi, phi0, floor, x, ref):
            noise = (float(np.max(est.error[np.isfinite(est.error)], initial=0.0)) * h
                     / max(abs(phi0), floor, TINY))
        return _located(phi, phi0, floor, x, got, ref, magnitude, jax_vs_fd, one_sided,
                        noise=noise)
    note = f"finite differences along {count} random unit directions"
    scale = float(np.sqrt(np.vdot(got, got)))
    verdicts = judge(project(got), None, est, scale=scale)
    # Projections cannot confirm single entries: one wrong entry of n shows as 1/sqrt(n) of
    # its error, below finite differences' resolution. They may find a failure, never a pass.
    verdicts.status[verdicts.status == PASS] = DOUBT
    note += " (they can show a gradient wrong, not every entry right: fd='exhaustive' can)"
    row = Row.from_verdicts(None, term, "total", verdicts, input=name, note=note)
    row.size = int(x.size)
    return row.along_directions(count)


QUANTUM_STEP = 2.0 ** -30
"""``_quantized`` moves one entry of x by 2^-30 max(1, |x_i|) (~1e-9 of it): float64
arithmetic resolves the change in f that makes, float32 (a grid of ~1e-7 of x_i) does not."""


def _quantized(phi, phi0, floor, x, ref, entries: int = 3) -> bool:
    """Whether f moves on a grid coarser than float64's: for each of the ``entries`` entries
    with the largest JAX gradient whose move by ``QUANTUM_STEP`` should change f by 100 times
    float64's round-off bound on it, f at x + k d e_i (k = 1, 2 and k = -1, -2) moves on
    neither side as a float64 f does: it stands still over the first step, or moves as far over
    one step as over two (a float32 rounding boundary crossed once). Then its stencils'
    exact-looking slopes are the rounded arithmetic's. A float64 f, however bent, moves there;
    at a kink at x_i, JAX's slope is one side's, and that side moves. This tells noise from
    curvature and kinks, which also trip the noise test of stencils as wide as h."""
    bound = ROUNDOFF_BOUND * EPS * max(abs(phi0), floor)
    flat_x, flat_ref = x.reshape(-1), np.reshape(ref, -1)
    checked = 0
    for i in np.argsort(-np.abs(flat_ref), kind="stable")[:entries]:
        d = QUANTUM_STEP * max(1.0, abs(float(flat_x[i])))
        slope = float(flat_ref[i])
        if d * abs(slope) <= 100 * bound:
            break
        moved = flat_x.copy()
        change = {}
        for k in (-2, -1, 1, 2):
            moved[i] = flat_x[i] + k * d
            change[k] = phi(moved.reshape(x.shape)) - phi0

        # Each side on a coarse grid: f stood still over the first step (0 exactly), or moved
        # by the same amount over one step as over two (one float32 step crossed). A float64
        # f moves about twice as far over two steps, however bent (x ~ 1e12 moved by ~1e3).
        coarse = [change[side[0]] == 0.0 or change[side[0]] == change[side[1]]
                  for side in ((1, 2), (-1, -2))]
        if not all(coarse):
            return False  # float64's grid (an entry lost in a cancelling sum, 1 beside 1e12,
            # stands still, but the larger ones checked first move)
        checked += 1  # stood still, or jumped by a coarse grid's step: not float64's
    return checked > 0


def _located(phi, phi0, floor, x, got, ref, magnitude, jax_vs_fd: EntryVerdicts,
             one_sided=None, noise: float = 0.0) -> _Pending:
    """Directional mode with JAX: judge every entry against JAX, and give the entries where
    hand and JAX disagree stencils of their own. Where the directions' finite differences
    contradict JAX (aliasing, a kink JAX resolves otherwise, cancellation in JAX's own sums),
    JAX settles nothing alone: the entries it alone passed are in doubt
    (``_carry_directions``, after the ties are checked).

    ``noise``: f's relative precision where the directions found f noisy (float32 inside),
    else 0. A gap between hand and JAX within it is doubt even where an entry's own stencils
    look exact: steps that are powers of two move a float32 value exactly, so those stencils
    measure the derivative of the rounded arithmetic (``2 fl32(x)`` for ``fl32(x)**2``), which
    is no more *the* derivative than the hand's ``2 x``."""
    notes = []
    contradicted = jax_vs_fd.count(FAIL) > 0
    if contradicted:
        notes.append("JAX disagrees with finite differences along random direction "
                     f"{jax_vs_fd.worst_index()[0]}: it settles no entry alone")
    magnitude = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), x.shape)
    verdicts = judge(got, ref, None, magnitude=magnitude)
    status = verdicts.status
    suspects = np.flatnonzero(status.reshape(-1) == FAIL)
    doubt, within = "", None
    if suspects.size:
        with np.errstate(over="ignore"):
            ratio = (verdicts.error / np.maximum(verdicts.tolerance, 1e-300)).reshape(-1)
        order = suspects[np.argsort(-ratio[suspects], kind="stable")]
        chosen, rest = order[:TARGETED], order[TARGETED:]
        values, steps = entry_stencils(phi, x, choose_steps(x), chosen, f0=phi0)
        est = estimate_where_finite(values, steps, noise_floor=floor)
        idx = np.unravel_index(chosen, x.shape)
        three = judge(got[idx], ref[idx], est, scale=verdicts.scale, magnitude=magnitude[idx])
        if _noisy(est):
            # A noisy f's stencils see kinks in their noise: neither a closer look nor JAX's
            # one-sided derivatives (JAX may differentiate the same low-precision arithmetic)
            # can separate hand from JAX there.
            doubt = NOISY_DOUBT
        elif noise:  # decided after the rounding doubt (_noise_doubt): the likelier reason
            gap = np.abs(got[idx] - ref[idx])
            within = np.zeros(x.shape, bool)
            within[idx] = gap <= SAFETY * noise * np.maximum(np.abs(ref[idx]), magnitude[idx])
        else:
            _look_closer(phi, phi0, x.reshape(-1)[chosen], got[idx], ref[idx], magnitude[idx],
                         three, at=lambda z, c=chosen: _embed(x, c, z), est=est)
            if one_sided is not None:
                _one_sided_autodiff(one_sided, x, got[idx], magnitude[idx], three,
                                    entries=chosen, flagged=est.kink)
        status[idx] = three.status
        verdicts.tolerance[idx] = three.tolerance
        notes.append(f"{chosen.size} entries where hand and JAX disagree got stencils of "
                     "their own")
        if rest.size:
            # Beyond the cap, JAX alone: wrong only if finite differences already separated
            # hand from JAX at some entry of this input.
            rest_idx = np.unravel_index(rest, x.shape)
            status[rest_idx] = FAIL if np.any(three.status == FAIL) and not contradicted \
                else DOUBT
            notes.append(f"{rest.size} more entries judged against JAX alone")
    verdicts.sources = ("jax", "fd")
    return _Pending(verdicts, notes, directions=jax_vs_fd, doubt=doubt,
                    noisy=within)


def _noise_doubt(pending: dict[int, _Pending]) -> None:
    """A FAIL within a noisy f's precision (``_located``'s ``noise``) is doubt (in place)."""
    for p in pending.values():
        if p.noisy is None:
            continue
        within = (p.verdicts.status == FAIL) & p.noisy
        if np.any(within):
            p.verdicts.status[within] = DOUBT
            p.doubt = p.doubt or NOISY_DOUBT
            p.notes.append(f"{int(np.sum(within))} entries: {NOISY_DOUBT}")


def _carry_directions(pending: _Pending) -> None:
    """What the directions said of JAX carries over to the entries JAX settled (in place)."""
    jax_vs_fd = pending.directions
    if jax_vs_fd is None:
        return
    status = pending.verdicts.status
    if jax_vs_fd.count(FAIL):
        status[status == PASS] = DOUBT
    elif jax_vs_fd.count(DOUBT):
        status[status == PASS] = DOUBT
        pending.notes.append("finite differences could not confirm JAX along some random "
                             "direction")
    elif jax_vs_fd.count(KINK):
        pending.notes.append("a random direction crosses a kink (entries judged against JAX)")


def judge_entries(
    got: np.ndarray,
    ad: np.ndarray | None,
    est: FDEstimate | None,
    *,
    magnitude: np.ndarray | float | None = None,
    phi: Callable[[np.ndarray], float] | None = None,
    x: np.ndarray | None = None,
    f0: float | None = None,
    problem_scale: float = 0.0,
    one_sided: Callable[[np.ndarray], np.ndarray] | None = None,
    probed: int = 64,
    joint: bool = True,
    composite: bool = False,
    noise_floor: float = 0.0,
) -> tuple[EntryVerdicts, str]:
    """Every entry of one term judged: ``verdict.judge``, then, where ``phi`` (the scalar whose
    gradient the term is, as a function of ``x``, the point the term's entries belong to) is
    given, the closer look (``closer_look``): at undecided entries (``_look_closer``), JAX's
    one-sided derivatives at every kink where JAX can give them (``one_sided``: the gradient at
    other values of x, see ``_one_sided_autodiff``), and the kinks checked jointly
    (``_joint_kinks``). The one judging step of every check: the general checks and the local
    terms of ``check_network`` alike.

    Args:
        got, ad, est: the term (any shape), JAX's values (or None), finite differences (or
            None), all shaped like ``x``.
        noise_floor: the magnitude of the terms ``phi`` is computed from, where it exceeds
            ``|phi|`` (the closer look's round-off floor, as the stencils' in ``est``).
        joint: check tied entries jointly here (False: the caller checks ties itself, across
            several inputs: ``judge_vjp``).
        composite: the term is a chain rule's total through kinks that its local terms judge
            (a network's dE/dW and dE/dX, ``check_network``): at a kink of ``phi`` along an
            entry, a value outside the bracket of one-sided derivatives is doubt, not FAIL.
            The chain rule with a valid local subgradient at each kink (relu'(0) = 0 where a
            relu's input is 0 for every sample) is an element of the chain rule's set, which
            need not lie in one entry's bracket (relu(v) - relu(-v) = v has derivative 1, the
            chain rule with relu'(0) = 0 gives 0): only the local term can say it is wrong.

    Returns:
        The verdicts and a note (empty unless the joint check of kinks, or ``composite``,
        decided something).
    """
    verdicts = judge(got, ad, est, problem_scale=problem_scale, magnitude=magnitude)
    if phi is None or est is None or np.all(np.isnan(est.value)) or _noisy(est):
        return verdicts, ""  # (a noisy f's closer look would only find a confident staircase)
    which, kinks = _look_closer(phi, f0, x, got, ad, 0.0 if magnitude is None else magnitude,
                                verdicts, est=est, most=probed, noise_floor=noise_floor)
    at_kink = np.asarray(est.kink, bool).reshape(-1).copy()
    at_kink[which] = kinks  # the closer look knows better where a kink is
    if one_sided is not None:
        # A total's stencil can read a kink's two sides as their mean, as JAX's tie rule does
        # (relu written with maximum): there JAX's own sides look at every failing entry.
        # (A total's kinks themselves, judged above, are left as they are: JAX's sides cost a
        # gradient of the whole network each.)
        flagged = (verdicts.status.reshape(-1) == FAIL) if composite else (
            np.asarray(est.kink, bool).reshape(-1) | at_kink)
        decided, sides_differ = _one_sided_autodiff(
            one_sided, x, got, 0.0 if magnitude is None else magnitude, verdicts,
            flagged=flagged, with_kinks=not composite)
        at_kink[decided] = sides_differ  # ... and JAX's exact sides best
    note = _joint_kinks(phi, f0, x, got, verdicts, flagged=est.kink,
                        noise_floor=noise_floor) if joint else ""
    if composite:
        status = verdicts.status.reshape(-1)
        through = at_kink & (status == FAIL)
        if np.any(through):
            status[through] = DOUBT
            note = "; ".join(filter(None, [note, (
                f"{int(np.sum(through))} entries at a kink lie outside its one-sided "
                "derivatives: a chain rule through kinks may (the local terms judge each "
                "kink's derivative)")]))
            # The closer look examines at most PROBED entries (each costs JAX gradients).
            # Where the examined ones show this total running through kinks, a failing entry
            # it did not reach whose stencil saw a kink may be one more: doubt, not FAIL (a
            # failing entry whose stencil is smooth, or that was examined and found smooth,
            # stays FAIL: that is a bug's evidence).
            unexamined = (status == FAIL) & np.asarray(est.kink, bool).reshape(-1)
            unexamined[which] = False
            if one_sided is not None:
                unexamined[decided] = False
            if np.any(unexamined):
                status[unexamined] = DOUBT
                note += (f"; {int(np.sum(unexamined))} more failing entries, beyond the closer "
                         f"look's {PROBED}, in doubt for the same reason")
    return verdicts, note


def judge_suspects(
    got: np.ndarray,
    ad: np.ndarray,
    *,
    phi: Callable[[np.ndarray], float],
    x: np.ndarray,
    magnitude: np.ndarray | float = 0.0,
    problem_scale: float = 0.0,
    one_sided: Callable[[np.ndarray], np.ndarray] | None = None,
    composite: bool = False,
    noise_floor: float = 0.0,
) -> tuple[EntryVerdicts, str]:
    """A term too large for stencils at every entry, with JAX: every entry judged against JAX,
    then the entries where hand and JAX disagree (the worst ``TARGETED``) get stencils of their
    own and ``judge_entries``' closer look, as an exhaustive check would give them (a kink's
    bracket, JAX's one-sided derivatives, ``composite``); beyond the cap, FAIL where a stencil
    already separated hand from JAX, else doubt. Arguments as for ``judge_entries``, all shaped
    like ``x``.
    """
    magnitude = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), x.shape)
    verdicts = judge(got, ad, None, problem_scale=problem_scale, magnitude=magnitude)
    status, tolerance = verdicts.status.reshape(-1), verdicts.tolerance.reshape(-1)
    suspects = np.flatnonzero(status == FAIL)
    if not suspects.size:
        return verdicts, ""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = (verdicts.error / np.maximum(verdicts.tolerance, 1e-300)).reshape(-1)
    order = suspects[np.argsort(-ratio[suspects], kind="stable")]
    chosen, rest = order[:TARGETED], order[TARGETED:]
    f0 = phi(x)
    values, steps = entry_stencils(phi, x, choose_steps(x), chosen, f0=f0)
    est = estimate_where_finite(values, steps, noise_floor=noise_floor)

    def pick(a: np.ndarray) -> np.ndarray:
        return np.reshape(a, -1)[chosen]

    sides = None if one_sided is None else (lambda z: pick(one_sided(_embed(x, chosen, z))))
    three, note = judge_entries(
        pick(got), pick(ad), est, magnitude=pick(magnitude),
        phi=lambda z: phi(_embed(x, chosen, z)), x=pick(x), f0=f0,
        problem_scale=problem_scale, one_sided=sides, joint=False, composite=composite,
        noise_floor=noise_floor)
    status[chosen], tolerance[chosen] = three.status, three.tolerance
    if rest.size:
        status[rest] = FAIL if np.any(three.status == FAIL) else DOUBT
    verdicts.sources = ("jax", "fd")
    said = f"{chosen.size} entries where hand and JAX disagree got stencils of their own"
    if rest.size:
        said += f"; {rest.size} more judged against JAX alone"
    return verdicts, "; ".join(filter(None, [said, note]))

"""The engine of the general checks: a hand-derived VJP judged against JAX and finite differences.

Every single-function check (``check_vjp``, ``check_gradient``, ``check_loss``) is one call of
``judge_vjp``: a user's ``forward``, its arguments, a cotangent ``c`` and the hand-derived
gradients of the scalar ``phi(x) = <c, forward(x)>``, one per checked input. The engine

1. asks the **sources of truth**: JAX's VJP (``autodiff.vjp``: the code traced as it is, or its
   numpy run on JAX arrays) and finite differences of ``phi`` (``finite_differences``: a
   five-point stencil per entry with its own error estimate and kink bracket; steps shrink where
   a stencil leaves forward's domain);
2. **judges** every entry three-way (``verdict.judge``): the same tolerances, kink rules and
   doubt everywhere;
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
from dataclasses import dataclass

import numpy as np

from . import autodiff, magnitudes
from .arguments import Arguments, Output
from .finite_differences import (
    EPS,
    FDEstimate,
    choose_steps,
    direction_stencils,
    entry_stencils,
    estimate_where_finite,
    kink_probe,
)
from .magnitudes import TERM_RTOL
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

__all__ = ["MAX_EXHAUSTIVE", "TARGETED", "judge_entries", "judge_vjp", "validate_gradient"]

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
        ad, jax_why = autodiff.vjp(forward, args, cotangent, wrt, output,
                                   lifted=jax != "direct", again=again)
        at = again[0] if again else None
        if ad is not None and any(np.any(np.abs(hand[i] - ad[i]) > TAU * np.abs(ad[i]))
                                  for i in wrt):
            # Only where hand and JAX differ beyond 1e-9 relative does rounding matter: then
            # (and only then) the pullbacks that measure the terms' magnitudes are paid for.
            autodiff.vjp(forward, args, cotangent, wrt, output, lifted=jax != "direct",
                         magnitudes=sizes)
    notes.append(jax_why)
    floor = max(output.pair_magnitude(cotangent), noise_floor)
    phi0 = output.pair(cotangent)

    def phi_of(values: dict[int, np.ndarray]) -> float:
        return Output.of(args.call(forward, replace=values)).pair(cotangent)

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
    rows = []
    for i in wrt:
        p, name = judged[i], args.names[i]
        rows.append(p if isinstance(p, Row) else Row.from_verdicts(
            None, term(name), "total", p.verdicts, input=name,
            note="; ".join(filter(None, p.notes))))

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
    """

    verdicts: EntryVerdicts
    notes: list[str]
    flagged: np.ndarray | None = None
    joint: bool = True
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
        return _located(phi, phi0, floor, x, got, ref, magnitude, jax_vs_fd, one_sided)
    note = f"finite differences along {count} random unit directions"
    scale = float(np.sqrt(np.vdot(got, got)))
    verdicts = judge(project(got), None, est, scale=scale)
    # Projections cannot confirm single entries: one wrong entry of n shows as 1/sqrt(n) of
    # its error, below finite differences' resolution. They may find a failure, never a pass.
    verdicts.status[verdicts.status == PASS] = DOUBT
    note += " (they can show a gradient wrong, not every entry right: fd='exhaustive' can)"
    row = Row.from_verdicts(None, term, "total", verdicts, input=name, note=note)
    row.direction = row.index[0] if row.index else None
    row.index, row.mask, row.size = (), None, int(x.size)
    row.wrong = 0
    return row


def _located(phi, phi0, floor, x, got, ref, magnitude, jax_vs_fd: EntryVerdicts,
             one_sided=None) -> _Pending:
    """Directional mode with JAX: judge every entry against JAX, and give the entries where
    hand and JAX disagree stencils of their own. Where the directions' finite differences
    contradict JAX (aliasing, a kink JAX resolves otherwise, cancellation in JAX's own sums),
    JAX settles nothing alone: the entries it alone passed are in doubt
    (``_carry_directions``, after the ties are checked)."""
    notes = []
    contradicted = jax_vs_fd.count(FAIL) > 0
    if contradicted:
        notes.append("JAX disagrees with finite differences along random direction "
                     f"{jax_vs_fd.worst_index()[0]}: it settles no entry alone")
    magnitude = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), x.shape)
    verdicts = judge(got, ref, None, magnitude=magnitude)
    status = verdicts.status
    suspects = np.flatnonzero(status.reshape(-1) == FAIL)
    doubt = ""
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
    return _Pending(verdicts, notes, directions=jax_vs_fd, doubt=doubt)


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
    given, a closer look at undecided entries (``_look_closer``), JAX's one-sided derivatives at
    every kink where JAX can give them (``one_sided``: the gradient at other values of x, see
    ``_one_sided_autodiff``), and the kinks checked jointly (``_joint_kinks``). The one judging
    step of every check: the general checks and the local terms of ``check_network`` alike.

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
    return verdicts, note


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

"""``check_network``: every link of a network's hand-derived chain rule, checked and located.

Two scopes of check, both three-way (hand vs JAX vs finite differences):

- **local**: each term on its own, given the hand-derived value it receives from above, so an
  error shows up only where it is made: the loss derivative dE/dY (or dE/dV for a fused
  softmax/sigmoid loss), each layer's activation backward ``dE/dV = G act'(V)`` (softmax: its
  VJP), each layer's ``dE/dW = X~^T dE/dV`` and the ``dE/dX = dE/dV W^T`` it passes back.
  These come from ``net.trace(X, T)``.
- **total**: the end-to-end gradients, as ``net.gradients(X, T)`` returns them (dE/dW of every
  layer, dE/dX of the input), and dE/dX passed back by every hidden layer.

Rows come in backward order (loss, then layer L-1 down to 0, local before total), and the
report's headline names the first failing local term: a wrong derivative in one place is
reported there, and the totals it spoils downstream say they follow from it.

With ``check_step=True`` one SGD step on a copy of the network is checked against
``W - lr dE/dW`` with the network's own dE/dW, which catches update bugs (sign errors, weights
updated before dE/dX is computed) separately from gradient bugs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from reference import Network
from reference.activations import ACTIVATIONS
from reference.passes import Trace, forward_pass, loss_from_trace

from . import autodiff, magnitudes, network_fd
from .closer_look import ONE_SIDED_STEP
from .engine import judge_entries, judge_suspects
from .finite_differences import EPS
from .jax_support import UntraceableError, collector_paused
from .network_fd import Directions
from .options import callable_arg, flag, positive_int, seed_arg
from .report import Report, Row, annotate_symptoms, sources_statement
from .verdict import DOUBT, FAIL, PASS, EntryVerdicts, judge

__all__ = ["check_network"]

MAX_EXHAUSTIVE = 50_000
"""Default: check every entry by finite differences when a term has at most this many."""


def _try_jax(fn, *args, notes: list[str], what: str, **kwargs):
    try:
        return fn(*args, **kwargs)
    except UntraceableError as exc:
        note = f"JAX could not trace {what} ({exc}); checked by finite differences alone"
        if note not in notes:
            notes.append(note)
        return None


def _abs_tilde(x: np.ndarray) -> np.ndarray:
    return np.abs(np.concatenate([x, np.ones((x.shape[0], 1))], axis=1))


def _shape_row(layer: int | None, term: str, scope: str, got: object, shape: tuple) -> Row | None:
    got_shape = None if got is None else np.shape(got)
    if got_shape == shape:
        return None
    return Row.broken(layer, term, scope,
                   f"wrong shape: the hand-derived backward gave {got_shape}, expected {shape}")


def _hand(call: Callable, what: str):
    """Run the hand-derived code; an exception it raises becomes a FAIL row, not a crash."""
    try:
        with np.errstate(all="ignore"):
            return call()
    except Exception as exc:
        return Row.broken(None, "backward", "total", f"{what} raised {type(exc).__name__}: {exc}")


def _directions(shape: tuple, count: int, rng: np.random.Generator) -> Directions:
    """``count`` random unit directions of a 2-D ``shape (r, c)``, each a rank-one sign matrix
    ``u = a b^T`` with ``a (r,)``, ``b (c,)`` of random signs over ``sqrt(r)``, ``sqrt(c)``.

    Every entry of ``u`` is ``+-1/sqrt(r c)``, as for independent random signs (Rademacher):
    a single wrong entry E_ij shows in the projection as exactly ``|E_ij| / sqrt(r c)``, and
    any error E projects to mean 0, variance ``|E|_F^2 / (r c)``. Rank one makes the
    directional check cheap: the change of V along ``u`` is a rank-one product (no matrix
    product of V's size), and a projection ``a^T G b`` costs one pass over G.
    """
    rows, cols = shape

    def signs(n: int) -> np.ndarray:
        return (rng.integers(0, 2, size=(count, n)) * 2.0 - 1.0) / np.sqrt(n)

    return Directions(signs(rows), signs(cols))


def _directional(got, ad, ad_proj, fd, directions: Directions, problem_scale,
                 magnitude) -> EntryVerdicts:
    """Judge the projections of ``got`` and JAX's ``ad`` (projected: ``ad_proj``) along
    ``directions`` against the FD estimate ``fd``; ``scale`` is the whole term's norm."""
    ref = np.ravel(ad if ad is not None else got)
    scale = float(np.sqrt(np.vdot(ref, ref)))
    return judge(directions.project(got), ad_proj, fd, scale=scale,
                 problem_scale=problem_scale, magnitude=directions.abs().project(magnitude))


@collector_paused
def check_network(
    net: Network,
    X: np.ndarray,
    T: np.ndarray,
    *,
    strict: bool = False,
    fd: str = "auto",
    directions: int = 8,
    max_exhaustive: int = MAX_EXHAUSTIVE,
    check_step: bool = True,
    local: bool = True,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """Check every term of ``net``'s hand-derived backward pass at ``(X, T)``.

    Args:
        net: the network; its ``trace`` supplies every hand-derived term and its
            ``gradients`` the end-to-end result under test.
        X: inputs ``(B, *in_shape)``; T: targets valid for the network's loss.
        strict: count "doubt" rows as failures.
        fd: "auto" (every entry when a term has at most ``max_exhaustive`` of them, else
            random unit directions), "exhaustive", "directional" or "none".
        directions: how many random unit directions a directional check uses per term
            (seeded): rank-one sign matrices, every entry +-1/sqrt(size) (see ``_directions``).
        check_step: also check one SGD step (eq 10) on a copy of the network.
        local: also check each term of the chain on its own (localisation). With False only
            the end-to-end gradients are checked: faster on large networks, but a wrong term
            is then reported only through the totals it spoils.
        seed: seeds the random directions.
        progress: called as ``progress(what, done, total)`` during exhaustive checks.

    Returns:
        A ``Report``; ``report.ok`` is False exactly when some term FAILs.

    Raises:
        ValueError, TypeError: bad X or T (the reference's own validation), or a forward pass
            that produces NaN/Inf.
    """
    if fd not in ("auto", "exhaustive", "directional", "none"):
        raise ValueError(f"fd must be 'auto', 'exhaustive', 'directional' or 'none', got {fd!r}")
    if not isinstance(net, Network):
        raise TypeError(f"net must be a reference.Network, got {type(net).__name__}")
    strict, check_step, local = (flag(strict, "strict"), flag(check_step, "check_step"),
                                 flag(local, "local"))
    directions = positive_int(directions, "directions")
    max_exhaustive = positive_int(max_exhaustive, "max_exhaustive")
    seed = seed_arg(seed)
    callable_arg(progress, "progress", optional=True)
    x = net._inputs(X)
    t = net._targets(T, x.shape[0])
    weights = [w.copy() for w in net._checked_weights()]
    acts, loss = net.activations, net.loss_function
    notes: list[str] = []
    rng = np.random.default_rng(seed)

    with np.errstate(all="ignore"):  # a NaN here is reported below, not warned about
        forward = forward_pass(weights, x, acts)
        energy = loss_from_trace(forward, t, loss)
    for k, y in enumerate(forward.ys):
        if not np.all(np.isfinite(y)):
            raise ValueError(f"the network's forward pass produces NaN/Inf at layer {k}'s output")
    if not np.isfinite(energy):
        raise ValueError(f"the network's loss is not finite ({float(energy)}) at these inputs")

    trace = _hand(lambda: net.trace(X, T), "net.trace")
    grads = _hand(lambda: net.gradients(X, T), "net.gradients")
    broken = [r for r in (trace, grads) if isinstance(r, Row)]
    if broken:
        return Report(broken, strict=strict, title="network check", notes=notes)
    _, hand_dw, hand_dx = grads

    # The problem's own scale: the loss gradient at the output. A term whose values are all
    # (nearly) zero is judged against 1e-6 of it rather than against nothing.
    last = len(weights) - 1
    problem_scale = float(np.max(np.abs(loss.grad(forward.ys[last], t)), initial=0.0)) \
        if not loss.fused else float(np.max(np.abs(trace.dvs[last]), initial=0.0))
    if not np.isfinite(problem_scale):
        problem_scale = 0.0

    def verdict(got, ad=None, est=None, magnitude=0.0):
        return judge(got, ad, est, problem_scale=problem_scale, magnitude=magnitude)

    # Magnitudes of the terms of every total (the rounding two right computations may differ
    # by), and of E's terms (the finite differences' round-off floor).
    first = magnitudes.first_layer_v_magnitude(weights, forward)
    m_dws, m_dxs = magnitudes.network_magnitudes(weights, forward, t, acts, loss,
                                                 factored=True, first_v_mag=first)
    e_floor = magnitudes.loss_value_magnitude(weights, forward, t, acts, loss,
                                              first_v_mag=first)

    def use_fd(size: int) -> str:
        if fd == "auto":
            return "exhaustive" if size <= max_exhaustive else "directional"
        return fd

    rows = _local_rows(trace, weights, t, acts, loss, fd, rng, notes, verdict,
                       problem_scale) if local else []

    # ---- totals -----------------------------------------------------------------------------
    slopes = _accepted_subgradients(trace, acts, loss, notes)
    totals = _try_jax(autodiff.network_grads, weights, x, t, acts, loss, slopes, notes=notes,
                      what="the network's forward")
    ad_dw, ad_dx = totals if totals is not None else (None, None)
    for k in range(last, -1, -1):
        for term in ("dW", "dX"):
            if term == "dW":
                got, shape = hand_dw[k] if k < len(hand_dw) else None, weights[k].shape
            else:
                shape = trace.xs[k].shape
                got = np.reshape(hand_dx, shape) if k == 0 and np.size(hand_dx) == np.prod(
                    shape) else _passed_back(trace, k)
            bad = _shape_row(k, term, "total", got, shape)
            if bad:
                rows.append(bad)
                continue
            ad = None if totals is None else (ad_dw[k] if term == "dW" else ad_dx[k])
            magnitude = m_dws[k] if term == "dW" else m_dxs[k]
            mode = use_fd(int(np.prod(shape)))
            if ad is None and mode == "none":
                continue
            note = ""
            if mode == "directional":
                u = _directions(shape, directions, rng)
                ad_proj = None if ad is None else u.project(ad)
                est = network_fd.directional_fd(
                    weights, forward.xs, forward.vs, t, acts, loss, k, u, wrt=term[1],
                    noise_floor=e_floor, reference=ad_proj)
                verdicts = _directional(got, ad, ad_proj, est, u, problem_scale, magnitude)
                note = f"finite differences along {directions} random unit directions"
                row = Row.from_verdicts(k, term, "total", verdicts, note=note)
                if row.status == FAIL and ad is not None:
                    # The entries hand and JAX disagree on get stencils and the closer look
                    # an exhaustive check gives (a kink the directions' central differences
                    # read as JAX's tie rule, relu written with maximum, is no bug).
                    point = weights[k] if term == "dW" else forward.xs[k]
                    with np.errstate(all="ignore"):
                        entries, more = judge_suspects(
                            got, ad, phi=network_fd.loss_of(weights, forward.xs, t, acts, loss,
                                                            k, term[1]),
                            x=point, magnitude=magnitudes.dense(magnitude),
                            problem_scale=problem_scale, composite=True, noise_floor=e_floor,
                            one_sided=_one_sided(weights, forward.xs, t, acts, loss, k, term))
                    if entries.count(FAIL) + entries.count(DOUBT):
                        row = Row.from_verdicts(k, term, "total", entries,
                                                note="; ".join([note, more]))
                        rows.append(row)
                        continue
                rows.append(_locate(row, got, ad, problem_scale, magnitude))
                continue
            else:
                est = None
                if mode == "exhaustive" and term == "dW":
                    total = int(np.prod(shape))
                    cb = (lambda done, k=k, n=total: progress(f"layer {k} dW", done, n)
                          ) if progress else None
                    est = network_fd.weight_fd(weights, forward.xs, forward.vs, forward.ys, t,
                                               acts, loss, k, progress=cb, noise_floor=e_floor,
                                               reference=ad)
                elif mode == "exhaustive":
                    est = network_fd.input_fd(weights, forward.xs, t, acts, loss, k,
                                              noise_floor=e_floor, reference=ad)
                # The same closer look as every judged term (kinks probed, JAX's one-sided
                # derivatives), with E as a function of W_k (or X_k). A total is a chain rule's
                # result through kinks, which the local rows judge one by one: outside a
                # kink's bracket it is doubt, and entries tied through shared kinks are not
                # checked jointly (the chain rule's sum along them need not lie in their
                # bracket either: hand = JAX would be put in doubt).
                phi = network_fd.loss_of(weights, forward.xs, t, acts, loss, k, term[1])
                point = weights[k] if term == "dW" else forward.xs[k]
                sides = None if totals is None else _one_sided(weights, forward.xs, t, acts,
                                                               loss, k, term)
                with np.errstate(all="ignore"):
                    verdicts, note = judge_entries(
                        got, ad, est, magnitude=magnitudes.dense(magnitude), phi=phi,
                        x=point, f0=phi(point), problem_scale=problem_scale,
                        one_sided=sides, composite=True, joint=False, noise_floor=e_floor)
            rows.append(Row.from_verdicts(k, term, "total", verdicts, note=note))

    if check_step:
        rows.extend(_step_rows(net, X, T, weights, hand_dw, problem_scale))

    annotate_symptoms(rows)
    return Report(rows, strict=strict, title="network check", notes=notes,
                  judged_by=sources_statement(rows))


def _accepted_subgradients(trace: Trace, acts, loss, notes: list[str]
                           ) -> list[np.ndarray | None] | None:
    """Where a layer's hand-derived act' differs from JAX's derivative at a kink of the
    activation (JAX's one-sided derivatives just left and right of V differ) and lies between
    them (a valid subgradient: relu'(0) = 0 against the 1/2 of relu written with ``maximum``),
    the difference, per entry of V; None elsewhere. The totals are then judged against JAX's
    chain rule taken through the hand's choice (``autodiff.network_grads``' ``slopes``): a total
    is the chain rule with the local terms the hand computed, each judged in its own row. A
    hand act' off JAX's anywhere else is left to those rows (and to the totals as they are)."""
    last = len(acts) - 1
    slopes: list[np.ndarray | None] = [None] * len(acts)
    count = 0
    for k, act in enumerate(acts):
        if not act.elementwise or (k == last and loss.fused) or ACTIVATIONS.get(act.name) is act:
            continue  # (a built-in's act' is JAX's derivative of its f, kinks included:
            #            property_tests/test_local_terms.py)
        v = trace.vs[k]
        try:
            with np.errstate(all="ignore"):
                hand = np.asarray(act.df(v), dtype=np.float64)
                ad = autodiff.activation_derivative(act, v)
                # Beyond both values' rounding (a few ulp of terms of size 1 + |act'|).
                differ = np.flatnonzero(np.abs(hand - ad) > 1e-8 * (1.0 + np.abs(hand)
                                                                    + np.abs(ad)))
                if not differ.size:
                    continue
                at = v.reshape(-1)[differ]
                step = ONE_SIDED_STEP * np.maximum(1.0, np.abs(at))
                left, right = (autodiff.activation_derivative(act, z) for z in (at - step,
                                                                               at + step))
        except Exception:  # JAX cannot trace it: no totals by JAX anyway
            continue
        mine = hand.reshape(-1)[differ]
        tol = 1e-8 * (1.0 + np.abs(mine) + np.abs(left) + np.abs(right))
        valid = (np.abs(right - left) > tol) & (np.minimum(left, right) - tol <= mine) & (
            mine <= np.maximum(left, right) + tol)  # a kink, and a subgradient of it
        if np.any(valid):
            slope = np.zeros(v.size)
            slope[differ[valid]] = (mine - ad.reshape(-1)[differ])[valid]
            slopes[k] = slope.reshape(v.shape)
            count += int(np.sum(valid))
    if not count:
        return None
    notes.append(f"JAX's totals taken through the hand's act' at {count} kinks of V where it "
                 "is another valid subgradient than JAX's derivative there (its tie rule)")
    return slopes


def _one_sided(weights, xs, t, acts, loss, k: int, term: str) -> Callable:
    """JAX's dE/dW_k (``term`` "dW") or dE/dX_k ("dX") at other values of W_k (of X_k): the
    network from layer k on, as a function of that array (for the engine's one-sided
    derivatives at kinks)."""
    def at(z: np.ndarray) -> np.ndarray:
        ws = list(weights[k:])
        if term == "dW":
            ws[0] = z
        dws, dxs = autodiff.network_grads(ws, z if term == "dX" else xs[k], t, acts[k:], loss)
        return dws[0] if term == "dW" else dxs[0]

    return at


def _locate(row: Row, got, ad, problem_scale, magnitude) -> Row:
    """A directional row's worst value is a direction's projection, not an entry. Where JAX is
    at hand, a failing row is located entry by entry against JAX (the directions' finite
    differences having confirmed JAX); otherwise the row says which direction, not an entry."""
    if row.status == FAIL and ad is not None:
        entries = judge(got, ad, problem_scale=problem_scale,
                        magnitude=magnitudes.dense(magnitude))
        if entries.count(FAIL):
            idx = entries.worst_index()
            row.index, row.got, row.expected = idx, float(got[idx]), float(ad[idx])
            row.tolerance = float(entries.tolerance[idx])
            row.mask, row.wrong = entries.status == FAIL, entries.count(FAIL)
            return row
    return row.along_directions(row.size)


def _local_rows(trace: Trace, weights, t, acts, loss, fd, rng, notes, verdict,
                problem_scale) -> list[Row]:
    """Rows for the loss term, then each layer's activation, dW and dX, last layer first."""
    rows: list[Row] = []
    last = len(weights) - 1
    v_last, y_last = trace.vs[last], trace.ys[last]
    if loss.fused:
        got = trace.dvs[last]
        bad = _shape_row(last, "loss", "local", got, v_last.shape)
        if bad:
            rows.append(bad)
        else:
            ad = _try_jax(autodiff.loss_grad, loss, v_last, t, from_v=True, notes=notes,
                          what=f"loss {loss.name!r}")
            est = network_fd.loss_fd(loss, v_last, t, from_v=True) if fd != "none" else None
            magnitude = magnitudes.loss_magnitude(loss, v_last, y_last, t, fused=True)
            rows.append(Row.from_verdicts(
                last, "loss", "local", _loss_verdicts(loss, t, v_last, got, ad, est, magnitude,
                                                      problem_scale, fused=True),
                name=f"{loss.name}+{acts[last].name}",
                note="dE/dV of the loss and its output activation together"))
    else:
        got = trace.gs[last]
        bad = _shape_row(last, "loss", "local", got, y_last.shape)
        if bad:
            rows.append(bad)
        else:
            ad = _try_jax(autodiff.loss_grad, loss, y_last, t, notes=notes,
                          what=f"loss {loss.name!r}")
            est = network_fd.loss_fd(loss, y_last, t) if fd != "none" else None
            magnitude = magnitudes.loss_magnitude(loss, v_last, y_last, t, fused=False)
            rows.append(Row.from_verdicts(last, "loss", "local", _loss_verdicts(
                loss, t, y_last, got, ad, est, magnitude, problem_scale, fused=False),
                name=loss.name))

    for k in range(last, -1, -1):
        act, v, y = acts[k], trace.vs[k], trace.ys[k]
        if not (k == last and loss.fused):
            g = trace.gs[k]
            bad = _shape_row(k, "activation", "local", g, v.shape) or _shape_row(
                k, "activation", "local", trace.dvs[k], v.shape)
            if bad:
                rows.append(bad)
            else:
                rows.append(_activation_row(k, act, v, g, trace.dvs[k], fd, notes,
                                            problem_scale))
        else:  # the fused output layer: check the activation alone with a random upstream
            g = rng.normal(size=v.shape)
            with np.errstate(all="ignore"):
                got = act.backward(v, y, g)
            rows.append(_activation_row(
                k, act, v, g, got, fd, notes, problem_scale,
                note="fused with the loss; checked alone with a random upstream dE/dY"))
        dv = trace.dvs[k]
        if np.shape(dv) != v.shape:
            continue  # reported above
        ref_dx, ref_dw = autodiff.dense_vjp(trace.xs[k], weights[k], dv)
        passed = _passed_back(trace, k)
        for term, got, ref in (("dW", trace.dws[k], ref_dw), ("dX", passed, ref_dx)):
            bad = _shape_row(k, term, "local", got, ref.shape)
            if bad:
                rows.append(bad)
                continue
            note = "what layer k-1 received as dE/dY" if term == "dX" and k > 0 else ""
            magnitude = (_abs_tilde(trace.xs[k]).T @ np.abs(dv) if term == "dW"
                         else np.abs(dv) @ np.abs(weights[k][:-1]).T)
            rows.append(Row.from_verdicts(k, term, "local", verdict(got, ref, None, magnitude),
                                          note=note))
    return rows


def _loss_verdicts(loss, t, at, got, ad, est, magnitude, problem_scale, *, fused: bool):
    """The loss's local term judged by the engine, with E itself (of V when fused, else of Y)
    as the scalar its closer look differentiates."""
    value = loss.value_from_v if fused else loss.value

    def phi(z: np.ndarray) -> float:
        return float(value(z, t))

    with np.errstate(all="ignore"):
        verdicts, _ = judge_entries(got, ad, est, magnitude=magnitude, phi=phi, x=at,
                                    f0=phi(at), problem_scale=problem_scale)
    return verdicts


def _passed_back(trace: Trace, k: int) -> np.ndarray | None:
    """dE/dX of layer k as it was actually passed on: what layer k-1 received, if any."""
    if k > 0 and trace.gs[k - 1] is not None:
        return trace.gs[k - 1]
    return trace.dxs[k]


def _activation_row(k, act, v, g, got, fd, notes, problem_scale, note: str = "") -> Row:
    ad = _try_jax(autodiff.activation_vjp, act, v, g, notes=notes,
                  what=f"activation {act.name!r}")
    est, deriv = (None, None)
    if fd != "none" or ad is None:
        with np.errstate(all="ignore"):
            est, deriv = network_fd.activation_fd(act, v, g)
    y = act(v) if not act.elementwise else None
    magnitude = magnitudes.activation_magnitude(act, v, y, np.abs(g))

    def phi(z: np.ndarray) -> float:  # the scalar whose gradient dE/dV = g^T act'(V) is
        return float(np.vdot(g, act(z)))

    with np.errstate(all="ignore"):
        verdicts, joint = judge_entries(got, ad, est, magnitude=magnitude, phi=phi, x=v,
                                        f0=phi(v), problem_scale=problem_scale)
    row = Row.from_verdicts(k, "activation", "local", verdicts, name=act.name,
                            note="; ".join(filter(None, [note, joint])))
    if row.index and act.elementwise:
        row.at = float(v[row.index])
        # Report the derivative itself at the worst entry (got/expected of act'(v)).
        gi = g[row.index]
        if gi != 0:
            row.got = float(got[row.index] / gi)
            if ad is not None:
                row.expected = float(ad[row.index] / gi)
            elif deriv is not None:
                row.expected = float(deriv.value[row.index])
    return row


def _step_rows(net, X, T, weights, hand_dw, problem_scale) -> list[Row]:
    """One SGD step on a copy: each W_k must move by exactly -lr dE/dW_k (eq 10), with the
    network's own dE/dW (its correctness is judged by the dW rows)."""
    scale = max(float(np.max(np.abs(d), initial=0)) for d in hand_dw)
    size = max(float(np.max(np.abs(w), initial=0)) for w in weights)
    lr = 1e-2 * max(size, 1.0) / scale if scale > 0 else 1e-2
    clone = copy.deepcopy(net)
    try:
        with np.errstate(all="ignore"):
            clone.step(X, T, lr)
    except Exception as exc:
        return [Row.broken(None, "step", "total", f"step raised {type(exc).__name__}: {exc}")]
    rows = []
    for k, (w_old, w_new, g) in enumerate(zip(weights, clone.weights, hand_dw)):
        moved = w_new - w_old
        verdicts = judge(moved, -lr * g, problem_scale=problem_scale * lr)
        # Subtracting two weights of size |W| loses up to eps |W| per entry: add it.
        verdicts.tolerance = verdicts.tolerance + 4 * EPS * (np.abs(w_old) + np.abs(w_new))
        verdicts.status = np.where(verdicts.error <= verdicts.tolerance, PASS, FAIL)
        rows.append(Row.from_verdicts(k, "step", "total", verdicts,
                                      note=f"W_new - W_old vs -lr dE/dW with lr={lr:.3g}"))
    return rows[::-1]

"""The properties of a correct backward pass, as plain functions of one case.

Each ``prop(case, build=default_build, data=None)`` builds the network under test with
``build(case)`` (the reference by default; a bug-zoo mutant in ``test_bug_zoo.py``), checks one
property and raises ``PropertyFailure`` (a reproducer, see ``reproduce.py``) when it does not
hold. ``data`` is Hypothesis's ``st.data()`` for properties that draw something more (a
permutation, a learning rate); without it they use a fixed choice. The ``test_*.py`` files wrap
these with ``@given``; the bug zoo runs the same functions against every mutant.

Tolerances, each with its reason:

- ``AUTODIFF_RTOL = 1e-10`` (norm-wise, relative, float64): the reference and JAX compute the
  same sums in different orders; measured disagreement on right code is ~1e-15; a wrong term
  is off by far more than 1e-10. Plus ``TERM_RTOL = 1e-12`` of the magnitude of the terms
  (``rounding.py``), which only matters where a gradient cancels to (nearly) zero and a
  relative error is meaningless.
- the oracle's own verdicts (``oracle.verdict.judge``) for finite differences: each entry
  within 4x the stencil's estimated truncation + round-off error (its stated tolerance), or
  within the stencil's round-off floor ``FD_ROUNDING_EPS x eps x F / h``: the oracle measures
  round-off from the stencil with a floor of eps |E|, but where E is a difference of larger
  terms (cross-entropy: logsumexp(v) - v_t, E = 1e-7 from terms of 16; gelu's tail, whose
  value keeps only an absolute accuracy) the five stencil values can be exactly equal, the
  measured noise 0, and the real noise eps F / h, F the rounding bound of E
  (``rounding.loss_value_magnitude``). 64 eps covers the roundings on the way.
- ``SAME_SUM_RTOL = 1e-10`` (norm-wise) for identities that only regroup a sum (batch mean,
  permutation), plus ``TERM_RTOL`` of the terms: regrouping B <= 8 terms changes a result by a
  few ulps of the terms, and a wrong normalisation changes it by >= 1/B.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import numpy as np
from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st

from oracle.network_fd import input_fd, weight_fd
from oracle.strategies import Case
from oracle.verdict import FAIL, judge
from reference import Network
from reference.layer import dense_backward, weight_and_input_grads
from reference.passes import backward_pass, backward_sweep, forward_pass

from .padded_autodiff import activation_vjp, loss_gradient, network_gradients
from .reproduce import Build, PropertyFailure, default_build
from .rounding import (
    TERM_RTOL,
    TINY,
    activation_magnitude,
    loss_magnitude,
    loss_value_magnitude,
    network_magnitudes,
)

__all__ = [
    "AUTODIFF_RTOL",
    "NETWORK_PROPERTIES",
    "autodiff_matches_finite_differences",
    "backward_matches_autodiff",
    "backward_matches_finite_differences",
    "batch_gradient_is_the_mean_of_sample_gradients",
    "bias_gradient_is_the_batch_sum_of_dE_dV",
    "layer_backward_matches_the_trace",
    "local_terms_match_autodiff",
    "permuting_the_batch_changes_nothing",
    "repeated_calls_give_identical_results",
    "reshaping_the_input_changes_nothing",
    "save_load_round_trip_is_exact",
    "small_step_lowers_the_loss",
    "step_moves_weights_by_minus_lr_times_gradient",
    "trace_without_input_gradient_changes_nothing_else",
]

EPS = float(np.finfo(np.float64).eps)
AUTODIFF_RTOL = 1e-10
SAME_SUM_RTOL = 1e-10
FD_ROUNDING_EPS = 64


def _event(what: str) -> None:
    """Count ``what`` in Hypothesis's statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(what)


def _flat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays])


def _rel(got: np.ndarray, expected: np.ndarray, scale: float | None = None) -> float:
    """``|got - expected| / scale`` in the 2-norm; scale defaults to ``|expected|``."""
    err = float(np.linalg.norm(got - expected))
    scale = float(np.linalg.norm(expected)) if scale is None else scale
    if err == 0.0:
        return 0.0
    return err / scale if scale > 0 else float("inf")


def _close(got: np.ndarray, expected: np.ndarray, magnitude: np.ndarray,
           rtol: float = AUTODIFF_RTOL) -> bool:
    """Norm-wise: ``|got - expected| <= rtol |expected| + TERM_RTOL |magnitude|`` (+ tiny)."""
    err = float(np.linalg.norm(got - expected))
    tol = (rtol * float(np.linalg.norm(expected)) + TERM_RTOL * float(np.linalg.norm(magnitude))
           + TINY * np.sqrt(np.size(got)))
    return err <= tol


def _worst(got: np.ndarray, expected: np.ndarray) -> str:
    i = np.unravel_index(int(np.argmax(np.abs(got - expected))), np.shape(got))
    return f"worst entry {tuple(int(j) for j in i)}: got {got[i]!r}, expected {expected[i]!r}"


# ---------------------------------------------------------------------------------------------
# The reference against JAX and against finite differences
# ---------------------------------------------------------------------------------------------


def backward_matches_autodiff(case: Case, build: Build = default_build, data=None) -> None:
    """dE/dW of every layer and dE/dX equal JAX's gradient of the same forward (rel <= 1e-10)."""
    net = build(case)
    _, dws, dx = net.gradients(case.X, case.T)
    if np.shape(dx) != case.X.shape:
        raise PropertyFailure(f"dE/dX has shape {np.shape(dx)}, X has {case.X.shape}", case, build)
    ad_dws, ad_dx = network_gradients(net, case.x, case.t)
    m_dws, m_dx = network_magnitudes(net, net.trace(case.X, case.T), case.t)
    got = _flat([*dws, dx])
    expected = _flat([*ad_dws, ad_dx])
    rel = _rel(got, expected)
    if not _close(got, expected, _flat([*m_dws, m_dx])):
        parts = [f"layer {k} dW: rel {_rel(d, a):.2e}" for k, (d, a) in enumerate(zip(dws, ad_dws))]
        parts.append(f"dX: rel {_rel(dx.reshape(case.batch, -1), ad_dx):.2e}")
        raise PropertyFailure(
            f"hand-derived gradients differ from JAX's: norm-wise relative error {rel:.3e} > "
            f"{AUTODIFF_RTOL:g} (+ {TERM_RTOL:g} of the terms) ({'; '.join(parts)})", case, build)


def _fd_estimates(net: Network, case: Case):
    """(name, hand value, FD estimate, JAX value, FD round-off floor, term magnitude) for every
    dE/dW and dE/dX. The floor: ``FD_ROUNDING_EPS eps F / h``, F the magnitude of the terms E
    is computed from."""
    trace = net.trace(case.X, case.T)
    w, acts, loss, t = net.weights, net.activations, net.loss_function, case.t
    ad_dws, ad_dx = network_gradients(net, case.x, case.t)
    m_dws, m_dx = network_magnitudes(net, trace, t)
    f_mag = loss_value_magnitude(loss, net, trace, t)

    def floor(est):
        return FD_ROUNDING_EPS * EPS * f_mag / est.step

    for k in range(len(w)):
        est = weight_fd(w, trace.xs, trace.vs, trace.ys, t, acts, loss, k)
        yield f"layer {k} dW", trace.dws[k], est, ad_dws[k], floor(est), m_dws[k]
    est = input_fd(w, trace.xs, t, acts, loss, 0)
    # input_fd perturbs one sample at a time and divides by B: so is its noise
    yield "dX", trace.dxs[0], est, ad_dx, floor(est) * case.batch, m_dx


KINK_REACH = 1e-2
"""A pre-activation within 1e-2 (1 + max|V|) of a kink is "near" it: a stencil of step
~6e-6 (1 + |w|) on any weight or input moves every V by well under that."""


def _near_a_kink(net: Network, case: Case) -> bool:
    """True when some pre-activation sits on, or within a stencil's reach of, a kink.

    There a finite difference cannot confirm the hand-derived value, and the oracle says so
    ("kink" or "doubt") instead of judging. Two ways it happens:

    - exactly on a kink the chain rule (hand-derived and JAX alike) multiplies one-sided
      derivatives, and the product need not be the derivative of the composite function, which
      can be smooth: with leaky_relu twice and a negative weight between, both sides of b = 0
      have slope 0.01 w, while the chain rule at 0 gives 0.01 * 0.01 w;
    - a kink inside the stencil whose effect on E is below E's rounding (relu(1e-12) next to a
      loss of 0.5) bends nothing the stencil can see, so it looks smooth with the wrong slope.
    """
    trace = net.trace(case.X, case.T)
    reach = KINK_REACH * (1.0 + max(float(np.max(np.abs(v))) for v in trace.vs))
    near = any(
        act.kinks and np.any(np.abs(v[..., None] - np.asarray(act.kinks)) <= reach)
        for act, v in zip(net.activations, trace.vs))
    _event("a pre-activation within reach of a kink" if near else "no kink within reach")
    return near


def _fd_failures(name: str, got: np.ndarray, est, floor: np.ndarray, magnitude: np.ndarray,
                 ad: np.ndarray | None = None) -> str | None:
    """Entries the oracle's FD-only verdict FAILs, beyond the stencil's round-off ``floor``.

    ``ad`` (near a kink only): an entry also passes when it equals JAX's (the oracle's
    three-way verdict would call it "kink" or "doubt").
    """
    verdicts = judge(got, None, est)
    bad = (verdicts.status == FAIL) & ~(np.abs(got - est.value) <= floor)
    if ad is not None:
        bad &= ~(np.abs(got - ad) <= AUTODIFF_RTOL * np.abs(ad) + TERM_RTOL * magnitude + TINY)
    if not np.any(bad):
        return None
    i = np.unravel_index(int(np.argmax(np.where(bad, np.abs(got - est.value), -1.0))), bad.shape)
    return (f"{name}: {int(np.sum(bad))} of {bad.size} entries FAIL; worst {tuple(map(int, i))}: "
            f"got {got[i]!r}, finite differences {est.value[i]!r} +- {est.error[i]:.2e} "
            f"(tolerance {verdicts.tolerance[i]:.2e})")


def backward_matches_finite_differences(case: Case, build: Build = default_build,
                                        data=None) -> None:
    """Every entry of dE/dW and dE/dX is within the oracle's FD tolerance (or at a kink).

    Judged by the oracle's verdict with finite differences alone; near a kink
    (``_near_a_kink``) an entry that equals JAX's passes too (the oracle's three-way verdict).
    """
    net = build(case)
    kink = _near_a_kink(net, case)
    problems = [p for name, got, est, ad, floor, mag in _fd_estimates(net, case)
                if (p := _fd_failures(name, got, est, floor, mag, ad if kink else None))]
    if problems:
        raise PropertyFailure("hand-derived gradients disagree with finite differences:\n  "
                              + "\n  ".join(problems), case, build)


def autodiff_matches_finite_differences(case: Case, build: Build = default_build,
                                        data=None) -> None:
    """JAX's gradients are within the oracle's FD tolerance too: the oracle checks itself.

    Not judged near a kink, where no finite difference can confirm a derivative (see
    ``_near_a_kink``).
    """
    net = build(case)
    if _near_a_kink(net, case):
        return
    problems = [p for name, _, est, ad, floor, mag in _fd_estimates(net, case)
                if (p := _fd_failures(name, ad, est, floor, mag))]
    if problems:
        raise PropertyFailure("JAX's gradients disagree with finite differences (the oracle's two "
                              "sources of truth disagree):\n  " + "\n  ".join(problems),
                              case, build)


# ---------------------------------------------------------------------------------------------
# Local terms, at the network's own pre-activations
# ---------------------------------------------------------------------------------------------


def _upstream(shape: tuple[int, ...]) -> np.ndarray:
    """A fixed, generic upstream gradient (no zeros, no symmetry) for a term checked alone."""
    return np.random.default_rng(1234).normal(size=shape)


def local_terms_match_autodiff(case: Case, build: Build = default_build, data=None) -> None:
    """Each link of the chain, given the upstream value it received, equals its exact value.

    The loss derivative (dE/dY, or dE/dV of a fused softmax/sigmoid loss) and every activation's
    backward equal JAX's derivative of the same function; every dE/dW equals ``[X, 1]^T dE/dV``
    and every dE/dX passed back equals ``dE/dV W[:-1]^T`` (eq 8, 11), recomputed here with
    numpy. Each within ``AUTODIFF_RTOL`` (norm-wise) + ``TERM_RTOL`` of its terms.
    """
    net = build(case)
    tr = net.trace(case.X, case.T)
    acts, loss, t, last = net.activations, net.loss_function, case.t, net.n_layers - 1
    # (name, hand value, exact value, magnitude of its terms), all thunks but the first two
    checks: list[tuple[str, np.ndarray, Callable[[], np.ndarray], Callable[[], np.ndarray]]] = []
    v_out, y_out = tr.vs[last], tr.ys[last]
    if loss.fused:
        checks.append((f"layer {last} loss dE/dV", tr.dvs[last],
                       lambda: loss_gradient(loss, v_out, t, from_v=True),
                       lambda: loss_magnitude(loss, v_out, y_out, t, fused=True)))
    else:
        checks.append((f"layer {last} loss dE/dY", tr.gs[last],
                       lambda: loss_gradient(loss, y_out, t),
                       lambda: loss_magnitude(loss, v_out, y_out, t, fused=False)))
    for k in range(last, -1, -1):
        act, v, y = acts[k], tr.vs[k], tr.ys[k]
        if k == last and loss.fused:  # the output activation alone, with a generic upstream
            g = _upstream(v.shape)
            name, got = f"layer {k} activation {act.name!r} (alone)", act.backward(v, y, g)
        else:
            g = tr.gs[k]
            name, got = f"layer {k} activation {act.name!r}", tr.dvs[k]
        checks.append((name, got, lambda act=act, v=v, g=g: activation_vjp(act, v, g),
                       lambda act=act, v=v, y=y, g=g: activation_magnitude(act, v, y, np.abs(g))))
        x_tilde = np.concatenate([tr.xs[k], np.ones((case.batch, 1))], axis=1)
        dv = tr.dvs[k]
        checks.append((f"layer {k} dW", tr.dws[k], lambda x=x_tilde, dv=dv: x.T @ dv,
                       lambda x=x_tilde, dv=dv: np.abs(x).T @ np.abs(dv)))
        passed = tr.gs[k - 1] if k > 0 and tr.gs[k - 1] is not None else tr.dxs[k]
        w = net.weights[k]
        checks.append((f"layer {k} dX", passed, lambda w=w, dv=dv: dv @ w[:-1].T,
                       lambda w=w, dv=dv: np.abs(dv) @ np.abs(w[:-1]).T))
    for name, got, exact, magnitude in checks:
        expected = exact()
        if np.shape(got) != np.shape(expected):
            raise PropertyFailure(f"{name}: shape {np.shape(got)}, expected "
                                  f"{np.shape(expected)}", case, build)
        got = np.asarray(got)
        if not _close(got, expected, magnitude()):
            raise PropertyFailure(
                f"{name} is wrong: norm-wise relative error {_rel(got, expected):.3e} > "
                f"{AUTODIFF_RTOL:g} (+ {TERM_RTOL:g} of its terms); {_worst(got, expected)}",
                case, build)


# ---------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------


def bias_gradient_is_the_batch_sum_of_dE_dV(case: Case, build: Build = default_build,
                                            data=None) -> None:
    """The bias row of every dE/dW is the sum over the batch of that layer's dE/dV (eq 8)."""
    net = build(case)
    tr = net.trace(case.X, case.T)
    for k, (dw, dv) in enumerate(zip(tr.dws, tr.dvs)):
        # A sum of B terms in any order: within B eps of the sum of their magnitudes.
        tol = 2 * case.batch * EPS * np.sum(np.abs(dv), axis=0)
        err = np.abs(dw[-1] - dv.sum(axis=0))
        if np.any(err > tol):
            raise PropertyFailure(
                f"layer {k}: the bias row of dE/dW is not the batch sum of dE/dV; "
                f"{_worst(dw[-1], dv.sum(axis=0))}", case, build)


def _loss_floor(build: Build, case: Case) -> float:
    """Rounding floor of E: a cross-entropy row is logsumexp(v) - v_t, each of size ~max|V|."""
    net = build(case)
    return 16 * EPS * (1.0 + float(np.max(np.abs(net.trace(case.X, case.T).vs[-1]))))


def _magnitude(build: Build, case: Case) -> np.ndarray:
    """The term magnitudes of all of ``case``'s gradients, flattened like ``_flat([*dW, dX])``."""
    net = build(case)
    m_dws, m_dx = network_magnitudes(net, net.trace(case.X, case.T), case.t)
    return _flat([*m_dws, m_dx])


def batch_gradient_is_the_mean_of_sample_gradients(case: Case, build: Build = default_build,
                                                   data=None) -> None:
    """E and dE/dW of a batch are the means over its samples; dE/dX row b is sample b's / B."""
    B = case.batch
    e, dws, dx = build(case).gradients(case.X, case.T)
    per = [build(case).gradients(case.X[b : b + 1], case.T[b : b + 1]) for b in range(B)]
    mean_e = sum(p[0] for p in per) / B
    e_scale = sum(abs(p[0]) for p in per) / B
    if abs(e - mean_e) > SAME_SUM_RTOL * e_scale + _loss_floor(build, case):
        raise PropertyFailure(f"the batch loss {e!r} is not the mean of the per-sample losses "
                              f"{mean_e!r}", case, build)
    got = _flat([*dws, dx])
    expected = _flat([*(sum(p[1][k] for p in per) / B for k in range(len(dws))),
                      np.concatenate([p[2] for p in per]) / B])
    if not _close(got, expected, _magnitude(build, case), SAME_SUM_RTOL):
        raise PropertyFailure(
            f"the batch gradient is not the mean of the per-sample gradients: error "
            f"{_rel(got, expected):.3e} relative; {_worst(got, expected)}", case, build)


def permuting_the_batch_changes_nothing(case: Case, build: Build = default_build,
                                        data=None) -> None:
    """Permuting the samples permutes dE/dX's rows and leaves E and every dE/dW as they were."""
    B = case.batch
    if data is None:
        perm = np.roll(np.arange(B)[::-1], 1)
    else:
        perm = np.array(data.draw(st.permutations(range(B)), label="permutation"), dtype=int)
    e, dws, dx = build(case).gradients(case.X, case.T)
    e2, dws2, dx2 = build(case).gradients(case.X[perm], case.T[perm])
    got = _flat([*dws2, dx2])
    expected = _flat([*dws, dx[perm]])
    rel = _rel(got, expected)
    if not _close(got, expected, _magnitude(build, case), SAME_SUM_RTOL) \
            or abs(e2 - e) > SAME_SUM_RTOL * abs(e) + _loss_floor(build, case):
        raise PropertyFailure(
            f"permuting the batch by {perm.tolist()} changed the result: E {e!r} -> {e2!r}, "
            f"gradients by {rel:.3e} relative; {_worst(got, expected)}", case, build)


def reshaping_the_input_changes_nothing(case: Case, build: Build = default_build,
                                        data=None) -> None:
    """X of shape (B, *in_shape) and X flattened to (B, n0) give bit-identical E, dE/dW, dE/dX.

    Exact: the reference flattens each sample first (a view of the same memory), so the same
    numbers go through the same operations.
    """
    e, dws, dx = build(case).gradients(case.X, case.T)
    e2, dws2, dx2 = build(case).gradients(case.x, case.T)
    same = e == e2 and all(np.array_equal(a, b) for a, b in zip(dws, dws2))
    if not (same and dx.shape == case.X.shape and np.array_equal(dx.reshape(dx2.shape), dx2)):
        raise PropertyFailure(f"input shape {case.in_shape} and its flattened form give "
                              f"different results (E {e!r} vs {e2!r})", case, build)


def step_moves_weights_by_minus_lr_times_gradient(case: Case, build: Build = default_build,
                                                  data=None) -> None:
    """``net.step(X, T, lr)`` returns E and leaves ``W - lr dE/dW`` in every layer (eq 10)."""
    lr = 0.1 if data is None else data.draw(
        st.floats(1e-3, 1.0, allow_subnormal=False), label="lr")
    net = build(case)
    e, dws, _ = net.gradients(case.X, case.T)  # the same network: no state may carry over
    before = [w.copy() for w in net.weights]
    e_step = net.step(case.X, case.T, lr)
    if not abs(e_step - e) <= 4 * EPS * abs(e):  # the same forward pass: a few ulps at most
        raise PropertyFailure(f"step returned E = {e_step!r}, the loss before it is {e!r}",
                              case, build)
    for k in range(len(before) - 1, -1, -1):
        expected = before[k] - lr * dws[k]
        # lr * dW and the subtraction round once each: 1 ulp of each operand, 2x margin.
        tol = 2 * EPS * (np.abs(before[k]) + np.abs(lr * dws[k]))
        if np.any(np.abs(net.weights[k] - expected) > tol):
            raise PropertyFailure(
                f"layer {k}: step(lr={lr!r}) did not move W by -lr dE/dW; "
                f"{_worst(net.weights[k], expected)}", case, build)


def repeated_calls_give_identical_results(case: Case, build: Build = default_build,
                                          data=None) -> None:
    """The gradients depend on (W, X, T) only: a second call, even after a call on another
    batch, returns bit-identical E, dE/dW and dE/dX (nothing accumulates between calls)."""
    net = build(case)
    first = net.gradients(case.X, case.T)
    net.gradients(case.X[::-1] * 0.5, case.T[::-1])
    second = net.gradients(case.X, case.T)
    same = (first[0] == second[0] and np.array_equal(first[2], second[2])
            and all(np.array_equal(a, b) for a, b in zip(first[1], second[1])))
    if not same:
        raise PropertyFailure("a repeated call to gradients() returned something else",
                              case, build)


def trace_without_input_gradient_changes_nothing_else(case: Case, build: Build = default_build,
                                                      data=None) -> None:
    """``trace(X, T, need_input_grad=False)`` leaves dE/dX of the input out (None) and gives
    bit-identical everything else: the input's gradient is not needed for an update. The
    passes' own defaults compute it (``backward_pass``, ``backward_sweep``)."""
    net = build(case)
    full = net.trace(case.X, case.T)
    lean = net.trace(case.X, case.T, need_input_grad=False)
    w, acts, loss, x, t = net.weights, net.activations, net.loss_function, case.x, case.t
    by_default = backward_pass(w, forward_pass(w, x, acts), t, acts, loss)
    swept = backward_sweep(w, by_default.vs, by_default.ys, t, acts, loss)[2]
    if not (np.array_equal(by_default.dxs[0], full.dxs[0])
            and np.array_equal(swept[0], full.dxs[0])):
        raise PropertyFailure("backward_pass/backward_sweep skip the input's gradient by default",
                              case, build)
    same = (lean.dxs[0] is None and lean.loss == full.loss
            and all(np.array_equal(a, b) for a, b in zip(lean.dws, full.dws))
            and all(np.array_equal(a, b) for a, b in zip(lean.dvs, full.dvs))
            and all(np.array_equal(a, b) for a, b in zip(lean.dxs[1:], full.dxs[1:])))
    if not same:
        raise PropertyFailure("a trace without the input's gradient differs from a full one "
                              f"(dxs[0] is {type(lean.dxs[0]).__name__})", case, build)


def layer_backward_matches_the_trace(case: Case, build: Build = default_build,
                                     data=None) -> None:
    """``reference.layer.dense_backward``, the one-layer backward a user composes by hand, gives
    each layer's (dE/dV, dE/dW, dE/dX) of the network's trace from the dE/dY that layer
    received, bit for bit (the same operations); with ``need_dx=False`` dE/dX is None."""
    net = build(case)
    tr = net.trace(case.X, case.T)
    last = net.n_layers - 1
    for k, (act, w) in enumerate(zip(net.activations, net.weights)):
        if k == last and net.loss_function.fused:
            continue  # dE/dV comes from the fused loss, not from a dE/dY
        dv, dw, dx = dense_backward(tr.xs[k], w, tr.vs[k], tr.ys[k], tr.gs[k], act)
        _, dw2, none = dense_backward(tr.xs[k], w, tr.vs[k], tr.ys[k], tr.gs[k], act,
                                      need_dx=False)
        dw3, dx3 = weight_and_input_grads(tr.xs[k], w, tr.dvs[k])  # need_dx by default
        same = (np.array_equal(dv, tr.dvs[k]) and np.array_equal(dw, tr.dws[k])
                and np.array_equal(dw2, dw) and none is None
                and np.array_equal(dx, tr.dxs[k])
                and np.array_equal(dw3, dw) and np.array_equal(dx3, dx))
        if not same:
            raise PropertyFailure(f"layer {k}: dense_backward differs from the network's trace",
                                  case, build)


def small_step_lowers_the_loss(case: Case, build: Build = default_build, data=None) -> None:
    """On a smooth network with a nonzero gradient, a small enough SGD step lowers the loss.

    Along the step, E(W - s u) ~ E - s |g| + s^2 c / 2 (u = g / |g|, c the curvature along u,
    estimated from the gradient at W - 1e-4 u). A decrease is visible once s |g| exceeds E's
    rounding (taken as 1e-12 |E|: E is computed to ~1e-15 relative), and certain while s is
    below |g| / c. The property is decided only when that window exists (with a 10x margin);
    steps from s = min(0.1, |g| / c) down to the bottom of the window are tried, and one must
    lower E. Not applicable to networks with a kinked activation (only piecewise smooth).
    """
    if not case.spec.smooth:
        return
    net = build(case)
    e0, dws, _ = net.gradients(case.X, case.T)
    g2 = float(sum(np.vdot(d, d) for d in dws))
    if not g2 > 0:
        return
    norm = np.sqrt(g2)
    delta = 1e-4 * max(1.0, max(float(np.max(np.abs(w))) for w in net.weights))
    probe = build(case)
    probe.weights = [w - delta * d / norm for w, d in zip(net.weights, dws)]
    _, dws2, _ = probe.gradients(case.X, case.T)
    curvature = (norm - sum(float(np.vdot(d2, d)) for d2, d in zip(dws2, dws)) / norm) / delta
    resolution = 1e-12 * abs(e0)
    if not 10 * resolution * max(curvature, 0.0) < g2:
        _event("step: no visible decrease possible (gradient below rounding)")
        return
    s_top = 0.1 if curvature <= 0 else min(0.1, norm / curvature)
    lr = s_top / norm
    tried = []
    while lr * g2 > resolution:
        net = build(case)
        before = [w.copy() for w in net.weights]
        net.step(case.X, case.T, lr)
        if all(np.array_equal(a, b) for a, b in zip(before, net.weights)):
            break  # the step is below the weights' resolution: nothing more to learn
        e1 = net.loss(case.X, case.T)
        if e1 < e0:
            return
        tried.append((lr, e1))
        lr /= 4
    if tried:
        raise PropertyFailure(
            f"no SGD step lowered the loss E = {e0!r} (|dE/dW|^2 = {g2:.3e}, curvature "
            f"{curvature:.3e}); tried lr -> E: "
            + ", ".join(f"{a:.2e} -> {b!r}" for a, b in tried[:3] + tried[3:][-3:]), case, build)


def save_load_round_trip_is_exact(case: Case, build: Build = default_build, data=None) -> None:
    """A saved and reloaded network gives bit-identical forward, loss and gradients.

    A network with a user-supplied activation cannot be saved (no pickle): ``save`` must refuse
    it with a ValueError.
    """
    net = build(case)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.npz")
        if not all(a.builtin for a in net.activations):
            try:
                net.save(path)
            except ValueError:
                return
            raise PropertyFailure("save accepted a network with a custom activation", case, build)
        net.save(path)
        loaded = Network.load(path)
    y, y2 = net.forward(case.X), loaded.forward(case.X)
    e, dws, dx = net.gradients(case.X, case.T)
    e2, dws2, dx2 = loaded.gradients(case.X, case.T)
    same = (np.array_equal(y, y2) and e == e2 and np.array_equal(dx, dx2)
            and all(np.array_equal(a, b) for a, b in zip(dws, dws2))
            and net.loss(case.X, case.T) == loaded.loss(case.X, case.T))
    if not same:
        raise PropertyFailure("the reloaded network differs from the saved one", case, build)


NETWORK_PROPERTIES: dict[str, Callable[..., None]] = {
    f.__name__: f
    for f in (
        backward_matches_autodiff,
        local_terms_match_autodiff,
        step_moves_weights_by_minus_lr_times_gradient,
        backward_matches_finite_differences,
        bias_gradient_is_the_batch_sum_of_dE_dV,
        batch_gradient_is_the_mean_of_sample_gradients,
        permuting_the_batch_changes_nothing,
        reshaping_the_input_changes_nothing,
        repeated_calls_give_identical_results,
        trace_without_input_gradient_changes_nothing_else,
        small_step_lowers_the_loss,
    )
}
"""The properties that any network with a hand-derived backward pass must have, in the order
the bug zoo tries them (the cheapest and most telling first)."""

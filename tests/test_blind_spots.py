"""Blind spots of issue #12, closed at their causes: truth by construction, never by the oracle.

- a network total through a kink that JAX's tie rule hides (relu written with ``maximum``):
  relu'(0) = 0 or 1 is no FAIL of the totals, a wrong total entry still is, and located;
- ties across two inputs (``maximum(x, y)``) are checked jointly: routing the cotangent to both
  fails, to one or split passes;
- a float32 computation inside f: its stencils' noise is no kink, and JAX alone does not fail a
  float64 gradient there (doubt, and the headline says why);
- a gradient carrying its inputs' rounding (``2 (x - mean x)`` at x ~ 1e4) is doubt, not FAIL
  (``magnitudes.rounding_sensitivity``); a wrong one still FAILs;
- finite differences alone beside a domain's edge: the step is refined until the estimate can
  tell a 1e-3 bug from the right value.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from oracle import check_gradient, check_network, check_vjp  # noqa: E402
from oracle.engine import judge_entries  # noqa: E402
from oracle.finite_differences import (  # noqa: E402
    FDEstimate,
    choose_steps,
    entry_stencils,
    estimate_where_finite,
)
from oracle.magnitudes import rounding_sensitivity  # noqa: E402
from oracle.verdict import judge  # noqa: E402
from reference import Activation, Network, get_activation  # noqa: E402
from reference.array_namespace import namespace_of  # noqa: E402

# --- a network's relu written with maximum ----------------------------------------------------

RELU_DF = {
    "gt": lambda v: (v > 0).astype(np.float64),
    "ge": lambda v: (v >= 0).astype(np.float64),
    "minus_one": lambda v: np.where(v == 0, -1.0, (v > 0).astype(np.float64)),
}


def _maximum_relu_net(choice: str, cls=Network):
    """[3, 4, 2], relu as maximum(v, 0) hidden; unit 0's weights and bias are 0, so its V is 0
    for every sample: E has a kink along each W_0[i, 0] whose sides are sums over the samples on
    either side, and the chain rule with relu'(0) = 0 or 1 lies outside their bracket."""
    act = Activation("relu_max", lambda v: namespace_of(v).maximum(v, 0.0), RELU_DF[choice])
    net = cls([3, 4, 2], [act, "identity"], "mse", seed=3)
    net.weights[0][:, 0] = 0.0
    rng = np.random.default_rng(3)
    return net, rng.normal(size=(5, 3)), rng.normal(size=(5, 2))


def _row(report, layer, term, scope):
    return next(r for r in report.rows if (r.layer, r.term, r.scope) == (layer, term, scope))


@pytest.mark.parametrize("choice", ["gt", "ge"])
def test_a_valid_relu_subgradient_is_no_failure_of_a_network_total(choice):
    net, x, t = _maximum_relu_net(choice)
    report = check_network(net, x, t)
    assert report.ok, str(report)
    # JAX's totals are taken through the hand's relu'(0), which the local row accepted: the
    # total then agrees with JAX's chain rule at every entry, the kinks' as kinks.
    total = _row(report, 0, "dW", "total")
    assert total.status == "kink" and total.wrong == 0, str(report)
    assert any("taken through the hand's act'" in n for n in report.notes), report.notes


def _wide_maximum_relu_net(choice: str):
    """[60, 50, 40, 3] with relu as maximum(v, 0) in both hidden layers and units at V = 0 on
    every sample: the adversarial catalogue's ``relu-maximum-wide`` case (its terms of 3,050 and
    2,040 entries are beyond MAX_EXHAUSTIVE, so ``auto`` judges them along random directions)."""
    from property_tests.adversarial import relu_maximum_wide_case

    return relu_maximum_wide_case(choice).build()


@pytest.mark.parametrize("fd", ["auto", "directional"])
@pytest.mark.parametrize("choice", ["gt", "ge"])
def test_a_valid_relu_subgradient_is_no_failure_of_a_wide_networks_totals(choice, fd):
    # Random directions read relu's kink as JAX's tie rule (their central differences average
    # the two sides): only JAX taken through the hand's relu'(0) keeps the totals from FAILing.
    net, x, t = _wide_maximum_relu_net(choice)
    report = check_network(net, x, t, fd=fd)
    assert report.count("FAIL") == 0, str(report)


def test_a_wrong_relu_derivative_at_its_kink_fails_locally_in_a_wide_network():
    net, x, t = _wide_maximum_relu_net("minus_one_at_0")
    report = check_network(net, x, t, fd="directional")
    assert (report.first_failure.term, report.first_failure.scope) == ("activation", "local")


@pytest.mark.parametrize("composite, status", [(False, "FAIL"), (True, "doubt")])
def test_a_chain_rule_value_outside_a_kinks_bracket_is_doubt_only_in_a_composite_total(
        composite, status):
    # phi(w) = relu(w) - 0.5 relu(-w): one-sided derivatives 0.5 (left) and 1 (right); the
    # chain rule with relu'(0) = 0 gives 0, outside them; JAX's tie rule gives 0.75.
    def phi(z):
        return float(np.maximum(z[0], 0.0) - 0.5 * np.maximum(-z[0], 0.0) + z[1] ** 2)

    x = np.array([0.0, 0.5])
    values, steps = entry_stencils(phi, x, choose_steps(x), f0=phi(x))
    est = estimate_where_finite(values, steps)
    verdicts, note = judge_entries(np.array([0.0, 1.0]), np.array([0.75, 1.0]), est, phi=phi,
                                   x=x, f0=phi(x), magnitude=0.0, composite=composite)
    assert verdicts.status.tolist() == [status, "pass"]
    assert ("chain rule through kinks" in note) == composite


def test_a_wrong_relu_derivative_at_its_kink_still_fails_in_its_local_term():
    net, x, t = _maximum_relu_net("minus_one")
    report = check_network(net, x, t)
    assert not report.ok
    assert (report.first_failure.layer, report.first_failure.term) == (0, "activation")


def test_a_wrong_entry_of_a_network_total_beside_the_kinks_still_fails_and_is_located():
    class OneWrongEntry(Network):
        def gradients(self, X, T):
            e, dws, dx = super().gradients(X, T)
            dws = [d.copy() for d in dws]
            dws[0][1, 2] *= 1.0 + 1e-6  # unit 2 is nowhere near a kink
            return e, dws, dx

    net, x, t = _maximum_relu_net("gt", OneWrongEntry)
    report = check_network(net, x, t)
    assert not report.ok, str(report)
    total = _row(report, 0, "dW", "total")
    assert total.status == "FAIL" and total.wrong_entries() == [(1, 2)], str(report)


# --- ties across inputs -----------------------------------------------------------------------

X = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
Y = np.array([[0.5, 0.0, 2.0], [0.0, 1.0, -0.5]])  # tied with X at [0, 0], [0, 2], [1, 0]
C = np.array([[0.8, -0.6, 1.1], [-1.4, 0.5, 0.9]])
TIES = [(0, 0), (0, 2), (1, 0)]


def _maximum(x, y):
    return namespace_of(x, y).maximum(x, y)


def _routed(rule):
    def backward(c, x, y):
        tie = (x == y).astype(np.float64)
        gx = {"to_x": x >= y, "split": (x > y) + 0.5 * tie, "both": x >= y}[rule]
        gy = {"to_x": y > x, "split": (y > x) + 0.5 * tie, "both": y >= x}[rule]
        return c * gx, c * gy
    return backward


@pytest.mark.parametrize("jax", [True, False])
def test_routing_a_tie_between_two_inputs_to_both_fails_at_the_tied_entries(jax):
    report = check_vjp(_maximum, _routed("both"), (X, Y), cotangent=C, jax=jax)
    assert not report.ok, str(report)
    assert sorted(report.wrong_entries("x")) == TIES, str(report)
    assert sorted(report.wrong_entries("y")) == TIES, str(report)
    assert "checked jointly" in str(report)


@pytest.mark.parametrize("rule", ["to_x", "split"])
@pytest.mark.parametrize("jax", [True, False])
def test_routing_a_tie_between_two_inputs_to_one_or_splitting_it_is_not_failed(rule, jax):
    report = check_vjp(_maximum, _routed(rule), (X, Y), cotangent=C, jax=jax)
    assert report.ok, str(report)


# --- float32 inside f ---------------------------------------------------------------------------


def _lse32(z):
    xp = namespace_of(z)
    y = z.astype(xp.float32)
    return xp.log(xp.exp(y).sum()).astype(xp.float64)


def _softmax64(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_jax_alone_does_not_fail_a_float64_gradient_of_a_float32_computation():
    x = np.array([0.3, -0.8, 1.1])  # JAX's float32 gradient is 2e-8 off the float64 one
    report = check_gradient(_lse32, _softmax64, x)
    assert report.ok and report.count("doubt"), str(report)
    assert "f is noisy" in report.headline


def _square_through_float32(x):
    return x.astype(np.float32).astype(np.float64) ** 2


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("bug", "fails"), [(0.0, False), (1e-5, True), (1e-1, True)])
def test_an_entrys_exact_looking_stencil_of_a_float32_computation_fails_no_right_gradient(
        bug, fails, seed):
    """(fl32(x))**2: JAX says 2 fl32(x), the hand 2 x (6e-8 apart, float32's rounding), and an
    entry's stencil with a power-of-two step measures 2 fl32(x) *exactly*. The random
    directions found f noisy: a gap within its precision is doubt, a bug far above it FAILs.
    Several draws: a float32 rounding boundary falls inside the quantum probe's move often."""
    x = np.random.default_rng(seed).normal(size=(4, 3))
    report = check_vjp(_square_through_float32, lambda c, x: 2 * c * x * (1 + bug), (x,))
    assert (report.count("FAIL") > 0) is fails, str(report)
    if not fails:
        assert report.count("doubt") and "f is noisy" in report.headline, str(report)


def test_the_quantum_probe_tells_float32_inside_from_curvature_cancellation_and_kinks():
    """``engine._quantized``: True only where f moves on a grid coarser than float64's."""
    from oracle.engine import _quantized

    def probe(f, grad, x):
        return _quantized(lambda z: float(f(z)), float(f(x)), abs(float(f(x))), x, grad(x))

    rng = np.random.default_rng(3)
    for _ in range(10):  # float32 inside, wherever its rounding boundaries fall
        x = rng.normal(size=5)
        assert probe(lambda z: np.sum(z.astype(np.float32).astype(np.float64) ** 2),
                     lambda z: 2 * z, x)
    x = np.array([1e12, 1.0, -1e12, 0.25])  # a cancelling sum, moved by ~1e3 at 1e12: bent
    assert not probe(lambda z: 0.5 * np.sum(z) ** 2, lambda z: np.full(4, np.sum(z)), x)
    x = np.array([0.0, 0.5, -0.25])  # relu's kink at x_0: JAX's slope is the right side's
    assert not probe(lambda z: np.sum(np.maximum(z, 0.0) * 3.0),
                     lambda z: 3.0 * (z >= 0), x)
    assert not probe(lambda z: np.sum(np.exp(z)), np.exp, rng.normal(size=5))


def test_a_noisy_stencil_brackets_no_kink():
    # A stencil that measured noise and broke its slope pattern: no "kink" (a pass) comes of it.
    one = np.ones(1)
    est = FDEstimate(one * 0.6, one * 0.05, np.array([True]), one * 0.4, one * 0.8, one * 0.6,
                     one * 2.0**-17, noisy=np.array([True]))
    assert judge(one * 0.7, one * 0.6, est).status.tolist() == ["doubt"]


# --- a gradient carrying its inputs' rounding -------------------------------------------------


def _variance(z):
    d = z - z.mean()
    return (d * d).sum()


VALUES = 1e4 + np.array([0.1, -0.3, 0.25, -0.05]) * 1e-3


def test_the_textbook_gradient_of_a_variance_is_doubt_not_fail_and_a_wrong_one_fails():
    naive = check_gradient(_variance, lambda z: 2.0 * (z - z.mean()), VALUES)
    assert naive.ok and naive.count("doubt"), str(naive)
    assert "their own rounding" in naive.headline
    wrong = check_gradient(_variance, lambda z: 2.0 * (z - z.mean()) * 0.75, VALUES)
    assert not wrong.ok, str(wrong)


def test_rounding_sensitivity_estimates_the_size_of_the_hessian_times_x():
    # f = sum((x - mean x)^2): H = 2 (I - 1/n), so |H| |x| = 2 (1 - 1/n) |x_i| + 2/n sum_j!=i
    # |x_j| = 3 10^4 for x ~ 1e4, n = 4; random signs see its 2-norm part: between 1/2 and 1 x.
    n = VALUES.size

    def grad(values):
        return {0: 2.0 * (values[0] - values[0].mean())}

    size = rounding_sensitivity(grad, {0: VALUES}, grad({0: VALUES}))[0]
    exact = 2 * (1 - 1 / n) * VALUES + 2 / n * (VALUES.sum() - VALUES)
    assert np.all(size <= 1.01 * exact) and np.all(size >= 0.3 * exact), (size, exact)


# --- a domain's edge, finite differences alone -----------------------------------------------


def test_a_stencil_beside_a_domains_edge_refines_its_step_until_it_resolves_the_derivative():
    x = np.array([1e-6, 0.5, 2.0])
    values, steps = entry_stencils(lambda z: float(np.sum(np.log(z))), x, choose_steps(x),
                                   f0=float(np.sum(np.log(x))))
    est = estimate_where_finite(values, steps)
    assert est.error[0] < 1e-8 * 1e6 and abs(est.value[0] - 1e6) <= 4 * est.error[0]


@pytest.mark.parametrize("bug, ok", [(0.0, True), (1e-3, False), (1e-6, False)])
def test_log_beside_its_domains_edge_by_finite_differences_alone(bug, ok):
    def grad(z):
        g = 1.0 / z
        g[0] *= 1.0 + bug
        return g

    report = check_gradient(lambda z: jnp.sum(jnp.log(z)), grad, np.array([1e-6, 0.5, 2.0]),
                            jax=False)
    assert report.ok == ok and report.count("doubt") == 0, str(report)


def test_a_hand_act_prime_off_jax_away_from_any_kink_is_not_taken_into_the_totals():
    # Only a valid subgradient at a kink may stand in for JAX's derivative: tanh' off by 1e-4
    # everywhere is a bug, and the totals must show it as one.
    tanh = get_activation("tanh")
    off = Activation("tanh_off", tanh.f, lambda v: (1 + 1e-4) * tanh.df(v))
    net = Network([3, 4, 2], [off, "identity"], "mse", seed=3)
    rng = np.random.default_rng(3)
    report = check_network(net, rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))
    assert _row(report, 0, "dW", "total").status == "FAIL", str(report)
    assert not any("taken through the hand's act'" in n for n in report.notes), report.notes

"""``check_network``: right networks pass, wrong derivations are caught and located.

Each wrong derivation is a classic mistake, planted in one known place (a layer and a term of
the chain rule): the test asserts the oracle's verdict, the first failing row's layer and term,
and that the totals spoiled downstream say they follow from it. Kinks are placed exactly
(V == 0) and must be reported as kinks, never as failures.
"""

import math
import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from oracle import check_network  # noqa: E402
from oracle.finite_differences import EPS  # noqa: E402
from reference import ACTIVATIONS, Activation, Loss, Network, Softmax, get_loss  # noqa: E402
from reference.activations import _softmax  # noqa: E402
from reference.array_namespace import namespace_of  # noqa: E402
from reference.passes import forward_pass, loss_from_trace  # noqa: E402


def data(sizes, loss="mse", batch=4, seed=0):
    """Seeded inputs and targets valid for ``loss``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, sizes[0]))
    if loss == "cross_entropy":
        t = rng.integers(0, sizes[-1], size=batch)
    elif loss == "binary_cross_entropy":
        t = rng.uniform(size=(batch, sizes[-1]))
    else:
        t = rng.normal(size=(batch, sizes[-1]))
    return x, t


def where(row):
    return (row.layer, row.term, row.scope)


def assert_all_pass(report):
    assert report.ok, str(report)
    bad = [where(r) + (r.status,) for r in report.rows if r.status != "pass"]
    assert bad == [], str(report)


# --- zero false alarms --------------------------------------------------------------------------

HIDDEN = list(ACTIVATIONS)


@pytest.mark.parametrize("act", HIDDEN)
def test_every_activation_in_a_hidden_layer_passes(act):
    sizes = [3, 4, 5, 2]
    net = Network(sizes, ["tanh", act, "identity"], "mse", seed=1)
    assert_all_pass(check_network(net, *data(sizes)))


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_every_activation_in_the_output_layer_passes(act):
    sizes = [3, 4, 3]
    net = Network(sizes, ["tanh", act], "mse", seed=2)
    assert_all_pass(check_network(net, *data(sizes)))


@pytest.mark.parametrize(
    ("loss", "acts"),
    [
        ("mse", ["sigmoid", "identity"]),
        ("cross_entropy", ["relu", "softmax"]),
        ("binary_cross_entropy", ["gelu", "sigmoid"]),
    ],
)
def test_every_loss_passes(loss, acts):
    sizes = [3, 5, 3]
    net = Network(sizes, acts, loss, seed=3)
    report = check_network(net, *data(sizes, loss))
    assert_all_pass(report)
    assert report.rows[0].term == "loss"


def test_directional_and_jax_only_modes_pass_a_right_network_too():
    sizes = [4, 6, 3]
    net = Network(sizes, ["silu", "softmax"], "cross_entropy", seed=4)
    x, t = data(sizes, "cross_entropy", batch=3)
    for fd in ("directional", "none", "exhaustive"):
        assert_all_pass(check_network(net, x, t, fd=fd))


def test_the_headline_says_which_sources_judged():
    sizes = [4, 6, 3]
    net = Network(sizes, ["tanh", "sigmoid"], seed=4)
    x, t = data(sizes, "mse", batch=3)
    assert check_network(net, x, t).headline.endswith("[judged by JAX and finite differences]")
    assert check_network(net, x, t, fd="none").headline.endswith("[judged by JAX alone]")


def test_a_row_judged_by_fewer_sources_than_the_rest_is_named_unless_it_passed():
    from oracle.report import Row, sources_statement

    def row(term, sources, status):
        return Row(0, term, "total", sources, status, 0.0, 0.0, 1e-9, (0,), 1.0, 1.0)

    both = [row("dW", ("jax", "fd"), "pass"), row("dX", ("jax", "fd"), "pass")]
    assert sources_statement(both) == "judged by JAX and finite differences"
    assert sources_statement([*both, row("step", ("jax",), "pass")]) == \
        "judged by JAX and finite differences"
    assert sources_statement([*both, row("dV", ("fd",), "doubt")]) == \
        "judged by JAX and finite differences; finite differences alone for layer 0 dV"
    assert sources_statement([row("dX", ("fd",), "FAIL")]) == \
        "judged by finite differences alone"
    assert sources_statement([]) == ""
    # a tie between kinds is broken the same way in every process (not by set order)
    assert sources_statement([row("dW", ("jax",), "FAIL"), row("dX", ("fd",), "doubt")]) == \
        "judged by finite differences alone; JAX alone for layer 0 dW"


def test_directional_directions_are_unit_sign_matrices_and_project_as_dense_dot_products():
    from oracle.network_check import _directions

    u = _directions((7, 5), 3, np.random.default_rng(0))
    dense = u.dense()
    assert dense.shape == (3, 7, 5)
    # every entry +-1/sqrt(35): a single wrong entry always shows as |error| / sqrt(35)
    np.testing.assert_allclose(np.abs(dense), 1 / np.sqrt(35), rtol=1e-15)
    np.testing.assert_allclose(np.sum(dense**2, axis=(1, 2)), 1.0, rtol=1e-14)
    g = np.random.default_rng(1).normal(size=(7, 5))
    # a^T g b is u . g; summation order differs, hence a few ulps of sum |u||g|
    expected = np.einsum("cij,ij->c", dense, g)
    assert np.all(np.abs(u.project(g) - expected) <= 8 * EPS * np.abs(dense).reshape(3, -1)
                  @ np.abs(g).ravel())
    np.testing.assert_array_equal(u.abs().dense(), np.abs(dense))


@pytest.mark.parametrize("wrt", ["W", "X"])
def test_directional_fd_along_rank_one_directions_matches_jax(wrt):
    from oracle.autodiff import network_grads
    from oracle.network_check import _directions
    from oracle.network_fd import directional_fd

    sizes = [5, 4, 3]
    net = Network(sizes, ["tanh", "softmax"], "cross_entropy", seed=2)
    x, labels = data(sizes, "cross_entropy", batch=4)
    t = net._targets(labels, 4)  # as one-hot rows
    trace = net.trace(x, t)
    dws, dxs = network_grads(net.weights, x, t, net.activations, net.loss_function)
    for k in range(2):
        exact = dws[k] if wrt == "W" else dxs[k]
        u = _directions(exact.shape, 4, np.random.default_rng(k))
        est = directional_fd(net.weights, trace.xs, trace.vs, t, net.activations,
                             net.loss_function, k, u, wrt=wrt)
        want = np.einsum("cij,ij->c", u.dense(), exact)
        # the estimate's own error bound (truncation + round-off), which a smooth network meets
        assert np.all(np.abs(est.value - want) <= est.error + 1e-12), (k, est.value, want)
        assert np.all(est.error < 1e-7)



@pytest.mark.parametrize(("loss", "out"), [("mse", "tanh"), ("binary_cross_entropy", "sigmoid")])
def test_output_layer_fd_under_a_loss_summed_over_units_evaluates_one_column(
        monkeypatch, loss, out):
    # W_L[i, j] moves only output unit j's terms of E: for mse and binary cross-entropy only
    # they are evaluated. The same loss as a custom Loss (no such promise) is evaluated whole;
    # both estimates must agree with each other and with JAX to within their error bounds.
    import oracle.network_fd as network_fd
    from oracle.autodiff import network_grads

    sizes = [4, 5, 3]
    net = Network(sizes, ["relu", out], loss, seed=6)
    x, t = data(sizes, loss, batch=6, seed=6)
    builtin = net.loss_function
    custom = Loss("custom", builtin.value, builtin.grad, builtin.output_activation,
                  builtin.value_from_v, builtin.grad_v)
    trace = net.trace(x, t)
    exact = network_grads(net.weights, x, t, net.activations, builtin)[0][1]
    stacks = []
    finish = network_fd._finish
    monkeypatch.setattr(network_fd, "_finish", lambda v, *rest: (
        stacks.append(v.shape[0]), finish(v, *rest))[1])
    args = (net.weights, trace.xs, trace.vs, trace.ys, t, net.activations)
    by_column = network_fd.weight_fd(*args, builtin, 1)
    assert stacks == [1]  # only the centre went through the whole output layer
    whole = network_fd.weight_fd(*args, custom, 1)
    assert len(stacks) > 2
    assert np.all(np.abs(by_column.value - exact) <= by_column.error)
    assert np.all(np.abs(whole.value - exact) <= whole.error)
    assert np.all(np.abs(by_column.value - whole.value) <= by_column.error + whole.error)


def test_directional_fd_settles_where_jax_agrees_and_runs_the_full_stencil_elsewhere(monkeypatch):
    # The adaptive stencil: f(x +- h) along every direction first; a direction whose central
    # difference agrees with JAX's projection to within round-off is settled, the others get
    # f(x +- 2h) too and the full analysis (the same result as without a reference).
    import oracle.network_fd as network_fd
    from oracle.autodiff import network_grads
    from oracle.network_check import _directions

    sizes = [5, 4, 3]
    net = Network(sizes, ["tanh", "softmax"], "cross_entropy", seed=2)
    x, labels = data(sizes, "cross_entropy", batch=4)
    t = net._targets(labels, 4)
    trace = net.trace(x, t)
    dws, _ = network_grads(net.weights, x, t, net.activations, net.loss_function)
    u = _directions(dws[0].shape, 4, np.random.default_rng(0))
    exact = u.project(dws[0])
    args = (net.weights, trace.xs, trace.vs, t, net.activations, net.loss_function, 0, u)
    full = network_fd.directional_fd(*args)

    evaluated = []  # stacked pre-activations per call of the rest of the network
    finish = network_fd._finish
    monkeypatch.setattr(network_fd, "_finish", lambda v, *rest: (
        evaluated.append(v.shape[0]), finish(v, *rest))[1])
    wrong = exact.copy()
    wrong[1] += 1e-3 * np.max(np.abs(exact))  # JAX "disagrees" along direction 1 only
    est = network_fd.directional_fd(*args, reference=wrong)

    assert evaluated == [1, 4 * 2, 1 * 2]  # the centre, +-h along all 4, +-2h along 1
    settled = [0, 2, 3]
    np.testing.assert_array_equal(est.value[settled], est.central[settled])
    assert not np.any(est.kink)
    assert np.all(np.abs(est.value - exact) <= est.error)
    # (the error differs in its last bits: its round-off part pools the median over the
    # entries analysed together, which here is direction 1 alone)
    for name in ("value", "kink", "lo", "hi", "central"):
        np.testing.assert_array_equal(getattr(est, name)[1], getattr(full, name)[1])

def test_a_per_sample_image_input_is_flattened_and_passes():
    net = Network([4, 3, 2], ["elu", "identity"], "mse", seed=5)
    x = np.random.default_rng(5).normal(size=(3, 2, 2))
    assert_all_pass(check_network(net, x, np.zeros((3, 2))))


def test_factored_magnitudes_are_the_same_products_and_project_through_their_factors():
    from oracle import magnitudes
    from oracle.network_check import _directions

    sizes = [6, 5, 4, 3]
    net = Network(sizes, ["relu", "tanh", "softmax"], "cross_entropy", seed=4)
    x, labels = data(sizes, "cross_entropy", batch=7)
    t = net._targets(labels, 7)
    w, acts, loss = net.weights, net.activations, net.loss_function
    fwd = forward_pass(w, x, acts)
    m_dws, m_dxs = magnitudes.network_magnitudes(w, fwd, t, acts, loss)
    first = magnitudes.first_layer_v_magnitude(w, fwd)
    f_dws, f_dxs = magnitudes.network_magnitudes(w, fwd, t, acts, loss, factored=True,
                                                 first_v_mag=first)
    # Every M_dW and the input's M_dX come factored; the same product when formed.
    assert all(isinstance(m, magnitudes.Product) for m in [*f_dws, f_dxs[0]])
    for got, want in zip([*f_dws, *f_dxs], [*m_dws, *m_dxs]):
        np.testing.assert_array_equal(magnitudes.dense(got), want)
    # The shared first-layer product changes nothing in E's rounding bound either.
    assert magnitudes.loss_value_magnitude(w, fwd, t, acts, loss, first_v_mag=first) == \
        magnitudes.loss_value_magnitude(w, fwd, t, acts, loss)
    # Projections through the factors: sums of non-negative terms (magnitudes and |u|), so the
    # two orders agree to (number of terms) eps relative.
    for m in (f_dws[0], f_dxs[0]):
        u = _directions(m.shape, 3, np.random.default_rng(0)).abs()
        got, want = u.project(m), u.project(m.dense())
        terms = m.left.shape[0] + m.left.shape[1] + m.right.shape[1]
        assert np.all(want > 0)
        assert np.all(np.abs(got - want) <= terms * EPS * want)


# --- a wrong activation derivative, located ---------------------------------------------------


def swish(v):
    return v / (1.0 + namespace_of(v).exp(-v))


def swish_d_wrong(v):
    return 1.0 / (1.0 + np.exp(-v))  # forgot the v s (1 - s) term of swish' = s + v s (1 - s)


MY_SWISH = Activation("my_swish", swish, swish_d_wrong)


def test_a_wrong_custom_activation_in_layer_1_is_named_in_the_headline():
    sizes = [3, 4, 5, 2]
    net = Network(sizes, ["tanh", MY_SWISH, "identity"], "mse", seed=0)
    report = check_network(net, *data(sizes))
    assert not report.ok
    first = report.first_failure
    assert (first.layer, first.term, first.name) == (1, "activation", "my_swish")
    headline = str(report).splitlines()[0]
    assert re.match(r"FAIL: layer 1 activation 'my_swish'( \(local\))?: derivative wrong at "
                    r"v=-?\d", headline), headline
    # The worst entry's values are swish's: got s(v), expected s + v s (1 - s).
    s = 1.0 / (1.0 + math.exp(-first.at))
    assert math.isclose(first.got, s, rel_tol=1e-12)  # division by g: a few ulps
    assert math.isclose(first.expected, s + first.at * s * (1 - s), rel_tol=1e-9)  # same
    # Upstream terms are right; every failing total is downstream of it and says so.
    assert all(r.status == "pass" for r in report.rows if r.layer == 2)
    totals = [r for r in report.failures if r.scope == "total"]
    assert {(r.layer, r.term) for r in totals} >= {(1, "dW"), (0, "dW"), (0, "dX")}
    for r in totals:
        assert "follows from layer 1 activation 'my_swish'" in r.note, r
    locals_failing = [where(r) for r in report.failures if r.scope == "local"]
    assert locals_failing == [(1, "activation", "local")]


@pytest.mark.parametrize("fd", ["directional", "none"])
def test_the_wrong_activation_is_located_the_same_without_exhaustive_fd(fd):
    sizes = [3, 4, 5, 2]
    net = Network(sizes, ["tanh", MY_SWISH, "identity"], "mse", seed=0)
    report = check_network(net, *data(sizes), fd=fd)
    assert where(report.first_failure) == (1, "activation", "local")
    assert {(r.layer, r.term) for r in report.failures if r.scope == "total"} >= {(0, "dW")}


def test_an_activation_derivative_off_by_1e_6_relative_is_caught_in_a_network():
    tanh = ACTIVATIONS["tanh"]
    off = Activation("tanh_1e-6", tanh.f, lambda v: (1 + 1e-6) * (1.0 - np.tanh(v) ** 2))
    sizes = [3, 4, 5, 2]
    report = check_network(Network(sizes, ["tanh", off, "identity"], seed=0), *data(sizes))
    first = report.first_failure
    assert (first.layer, first.term, first.name) == (1, "activation", "tanh_1e-6")
    assert math.isclose(first.got / first.expected, 1 + 1e-6, rel_tol=1e-9)  # the planted factor


def test_the_derivative_taken_at_y_instead_of_v_is_caught_erratum_2():
    tanh = ACTIVATIONS["tanh"]
    at_y = Activation("tanh_at_y", tanh.f, lambda v: 1.0 - np.tanh(np.tanh(v)) ** 2)
    sizes = [3, 4, 2]
    report = check_network(Network(sizes, [at_y, "identity"], seed=0), *data(sizes))
    first = report.first_failure
    assert (first.layer, first.term) == (0, "activation")
    assert math.isclose(first.got, 1 - math.tanh(math.tanh(first.at)) ** 2, rel_tol=1e-12)
    assert math.isclose(first.expected, 1 - math.tanh(first.at) ** 2, rel_tol=1e-12)


def test_a_softmax_backward_without_its_off_diagonal_is_caught_in_its_layer():
    class DiagonalSoftmax(Softmax):
        def backward(self, v, y, g):
            return g * y * (1.0 - y)

    diag = DiagonalSoftmax("softmax_diagonal", _softmax, None)
    sizes = [3, 4, 3]
    report = check_network(Network(sizes, ["tanh", diag], "mse"), *data(sizes))
    assert where(report.first_failure) == (1, "activation", "local")


# --- wrong loss gradient ------------------------------------------------------------------------


def test_a_loss_gradient_missing_the_1_over_B_is_caught_as_the_loss_erratum_5():
    mse = get_loss("mse")
    summed = Loss("mse_without_1/B", mse.value, lambda y, t: y - t)
    sizes = [3, 4, 2]
    x, t = data(sizes, batch=4)
    report = check_network(Network(sizes, ["tanh", "identity"], summed), x, t)
    first = report.first_failure
    assert (first.layer, first.term, first.name) == (1, "loss", "mse_without_1/B")
    assert math.isclose(first.got, 4 * first.expected, rel_tol=1e-12)  # off by B = 4
    assert [where(r) for r in report.failures if r.scope == "local"] == [(1, "loss", "local")]


def test_a_wrong_fused_cross_entropy_gradient_is_caught_as_the_loss():
    ce = get_loss("cross_entropy")
    wrong = Loss("ce_sign", ce.value, ce.grad, "softmax", ce.value_from_v,
                 lambda v, y, t: (t - y) / v.shape[0])
    sizes = [3, 4, 3]
    x, labels = data(sizes, "cross_entropy")
    report = check_network(Network(sizes, ["tanh", "softmax"], wrong), x, np.eye(3)[labels])
    assert where(report.first_failure) == (1, "loss", "local")


# --- wrong dW, dX: a hand-written backward with one planted bug --------------------------------


class HandBackward(Network):
    """A user's own backward pass (what ``check_network`` reads via the network's trace), with
    one optional bug: ``bug = (what, layer)``."""

    bug: tuple[str, int] | None = None

    def _trace(self, x, t, *, need_input_grad):
        weights, acts, loss = self.weights, self.activations, self.loss_function
        trace = forward_pass(weights, x, acts)
        trace.loss = float(loss_from_trace(trace, t, loss))
        n = len(weights)
        gs, dvs, dws, dxs = [None] * n, [None] * n, [None] * n, [None] * n
        g = loss.grad(trace.ys[-1], t)
        for k in range(n - 1, -1, -1):
            gs[k] = g
            dv = acts[k].backward(trace.vs[k], trace.ys[k], g)
            x_tilde = np.concatenate([trace.xs[k], np.ones((x.shape[0], 1))], axis=1)
            dw = x_tilde.T @ dv
            dx = dv @ weights[k][:-1].T
            if self.bug == ("dW scaled", k):
                dw = 2.0 * dw
            elif self.bug == ("dW transposed", k):
                dw = dv.T @ x_tilde
            elif self.bug == ("dW bias row zero", k):
                dw[-1] = 0.0
            elif self.bug == ("dX not transposed", k):
                dx = dv @ weights[k][:-1]
            elif self.bug == ("dX keeps the bias row", k):
                dx = dv @ weights[k].T
            dvs[k], dws[k], dxs[k] = dv, dw, dx
            g = dx
        trace.gs, trace.dvs, trace.dws, trace.dxs = gs, dvs, dws, dxs
        return trace


def hand_network(sizes, bug=None):
    net = HandBackward(sizes, ["tanh", "sigmoid", "identity"], "mse", seed=0)
    net.bug = bug
    return net


def test_the_hand_backward_helper_is_right_without_a_bug():
    sizes = [3, 4, 5, 2]  # proves the bugs below are the only reason for their failures
    assert_all_pass(check_network(hand_network(sizes), *data(sizes)))


@pytest.mark.parametrize(
    ("bug", "sizes", "term"),
    [
        (("dW scaled", 1), [3, 4, 5, 2], "dW"),
        (("dW bias row zero", 0), [3, 4, 5, 2], "dW"),
        (("dW transposed", 1), [3, 4, 5, 2], "dW"),  # W1 is 5x5: same shape, wrong values
        (("dX not transposed", 1), [3, 4, 4, 2], "dX"),  # W1[:-1] is 4x4
        (("dX not transposed", 2), [3, 4, 2, 2], "dX"),
    ],
)
def test_a_wrong_dw_or_dx_is_caught_in_its_layer_and_term(bug, sizes, term):
    report = check_network(hand_network(sizes, bug), *data(sizes))
    assert not report.ok
    assert where(report.first_failure) == (bug[1], term, "local"), str(report)
    assert [where(r) for r in report.failures if r.scope == "local"] == [(bug[1], term, "local")]
    assert report.headline.startswith(f"FAIL: layer {bug[1]} {term}")


@pytest.mark.parametrize(
    ("bug", "sizes", "term", "shapes"),
    [
        (("dW transposed", 1), [3, 5, 4, 2], "dW", ("(4, 6)", "(6, 4)")),
        (("dX keeps the bias row", 0), [3, 4, 5, 2], "dX", ("(4, 4)", "(4, 3)")),
    ],
)
def test_a_wrong_shape_is_a_failure_of_its_term_with_the_shapes_in_a_note(bug, sizes, term,
                                                                          shapes):
    report = check_network(hand_network(sizes, bug), *data(sizes))
    first = report.first_failure
    assert where(first) == (bug[1], term, "local")
    assert "wrong shape" in first.note and all(s in first.note for s in shapes), first.note


def test_a_wrong_shape_is_named_in_the_headline():
    report = check_network(hand_network([3, 5, 4, 2], ("dW transposed", 1)),
                           *data([3, 5, 4, 2]))
    assert "shape" in report.headline and "(4, 6)" in report.headline, report.headline


def test_a_backward_that_raises_is_named_in_the_headline():
    sizes = [3, 4, 5, 2]  # dv @ W[:-1] (4x5) then meets a (4, 4) layer: matmul raises
    report = check_network(hand_network(sizes, ("dX not transposed", 1)), *data(sizes))
    assert not report.ok
    assert "raised" in report.headline, report.headline


def test_the_json_of_a_wrong_shape_report_is_strict_json():
    import json

    report = check_network(hand_network([3, 5, 4, 2], ("dW transposed", 1)),
                           *data([3, 5, 4, 2]))

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    json.loads(report.to_json(), parse_constant=refuse)


def test_a_network_overriding_the_public_gradients_is_checked_through_them():
    class DoubledGradients(Network):
        def trace(self, X, T, *, need_input_grad=True):
            trace = super().trace(X, T, need_input_grad=need_input_grad)
            trace.dws = [2.0 * d for d in trace.dws]
            return trace

        def gradients(self, X, T):
            e, dws, dx = super().gradients(X, T)
            return e, [2.0 * d for d in dws], dx

    sizes = [3, 4, 2]
    net = DoubledGradients(sizes, ["tanh", "identity"], seed=0)
    x, t = data(sizes)
    plain = Network(sizes, ["tanh", "identity"], seed=0)
    assert np.allclose(net.gradients(x, t)[1][0], 2 * plain.gradients(x, t)[1][0])  # wrong dW
    assert not check_network(net, x, t).ok


# --- a wrong step ------------------------------------------------------------------------------


class SignErrorStep(Network):
    def step(self, X, T, lr):
        e, dws, _ = self.gradients(X, T)
        for w, dw in zip(self.weights, dws):
            w += lr * dw  # eq 10 says W - lr dE/dW
        return e


class EarlyUpdateStep(Network):
    """Updates each layer before computing the dE/dX it passes back (erratum 3)."""

    def step(self, X, T, lr):
        weights, acts = self.weights, self.activations
        trace = forward_pass(weights, X, acts)
        g = self.loss_function.grad(trace.ys[-1], T)
        for k in range(len(weights) - 1, -1, -1):
            dv = acts[k].backward(trace.vs[k], trace.ys[k], g)
            x_tilde = np.concatenate([trace.xs[k], np.ones((len(X), 1))], axis=1)
            weights[k] -= lr * (x_tilde.T @ dv)
            g = dv @ weights[k][:-1].T  # with the weights already updated
        return trace.loss


def test_a_sign_error_in_the_step_is_caught_as_the_step_in_every_layer():
    sizes = [3, 4, 2]
    report = check_network(SignErrorStep(sizes, ["tanh", "identity"]), *data(sizes))
    assert not report.ok
    assert where(report.first_failure) == (1, "step", "total")
    assert [where(r) for r in report.failures] == [(1, "step", "total"), (0, "step", "total")]
    # W moved by +lr dE/dW instead of -lr dE/dW: got is -expected (a few ulps of rounding).
    assert math.isclose(report.first_failure.got, -report.first_failure.expected, rel_tol=1e-9)


def test_updating_the_weights_before_passing_dx_back_is_caught_below_the_top_layer():
    sizes = [3, 4, 5, 2]
    net = EarlyUpdateStep(sizes, ["tanh", "tanh", "identity"])
    report = check_network(net, *data(sizes))
    assert [where(r) for r in report.failures] == [(1, "step", "total"), (0, "step", "total")]


# --- kinks placed exactly ------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_a_column_of_pre_activations_exactly_at_the_kink_is_a_kink_not_a_failure(act):
    sizes = [3, 4, 2]
    net = Network(sizes, [act, "identity"], seed=0)
    net.weights[0][:, 1] = 0.0  # weights and bias of unit 1 are 0: V[:, 1] == 0 exactly
    x, t = data(sizes, batch=5)
    report = check_network(net, x, t)
    assert report.ok and report.count("FAIL") == 0, str(report)
    assert sum(r.kinks for r in report.rows) > 0 and report.count("kink") > 0, str(report)
    act_row = next(r for r in report.rows if where(r) == (0, "activation", "local"))
    assert act_row.status == "kink" and act_row.kinks == 5  # one per sample of column 1


@pytest.mark.parametrize("acts", [["relu", "identity"],
                                  ["relu", "relu"],
                                  ["leaky_relu", "tanh"]])
def test_zero_inputs_with_zero_biases_put_every_unit_on_its_kink_and_never_fail(acts):
    sizes = [3, 4, 2]
    net = Network(sizes, acts, seed=0)
    for w in net.weights:
        w[-1] = 0.0
    report = check_network(net, np.zeros((5, 3)), data(sizes, batch=5)[1])
    assert report.ok and report.count("FAIL") == 0, str(report)
    assert sum(r.kinks for r in report.rows) > 0, str(report)


# --- JAX-untraceable code: finite differences alone -------------------------------------------


NP_TANH = Activation("np_tanh", np.tanh, lambda v: 1.0 - np.tanh(v) ** 2)


def test_a_numpy_only_activation_is_checked_by_finite_differences_and_says_so():
    sizes = [3, 4, 2]
    report = check_network(Network(sizes, [NP_TANH, "identity"]), *data(sizes))
    assert_all_pass(report)
    act_row = next(r for r in report.rows if where(r) == (0, "activation", "local"))
    assert act_row.sources == ("fd",)
    assert all(r.sources == ("fd",) for r in report.rows if r.scope == "total" and r.term != "step")
    assert any("np_tanh" in n and "finite differences alone" in n for n in report.notes)
    assert "finite differences alone" in str(report)


def test_a_wrong_numpy_only_activation_is_caught_by_finite_differences_alone():
    wrong = Activation("np_tanh", np.tanh, lambda v: 1.0 - 1.001 * np.tanh(v) ** 2)
    sizes = [3, 4, 2]
    report = check_network(Network(sizes, [wrong, "identity"]), *data(sizes))
    first = report.first_failure
    assert (first.layer, first.term, first.sources) == (0, "activation", ("fd",))


# --- doubt: JAX's derivative of the user's code is not its true derivative ---------------------


def tanh_with_wrong_autodiff(v):
    xp = namespace_of(v)
    if xp is np:
        return np.tanh(v)
    return v + jax.lax.stop_gradient(xp.tanh(v) - v)  # JAX's derivative: 1


STE_TANH = Activation("ste_tanh", tanh_with_wrong_autodiff, ACTIVATIONS["tanh"].df)


def test_an_activation_whose_autodiff_is_wrong_puts_its_terms_in_doubt():
    sizes = [3, 4, 2]
    report = check_network(Network(sizes, [STE_TANH, "identity"]), *data(sizes))
    act_row = next(r for r in report.rows if where(r) == (0, "activation", "local"))
    assert act_row.status == "doubt" and act_row.doubts > 0, str(report)
    gradient_rows = [r for r in report.rows if r.term != "step"]
    assert all(r.status in ("pass", "doubt") for r in gradient_rows), str(report)


def test_a_right_step_is_not_failed_when_autodiff_is_in_doubt():
    sizes = [3, 4, 2]
    report = check_network(Network(sizes, [STE_TANH, "identity"]), *data(sizes))
    assert report.ok, report.headline


def test_a_step_applying_the_hand_gradient_at_a_kink_is_not_failed():
    relu = ACTIVATIONS["relu"]
    relu_1 = Activation("relu_d0_is_1", relu.f, lambda v: (v >= 0).astype(v.dtype), kinks=(0.0,))
    sizes = [3, 4, 2]
    net = Network(sizes, [relu_1, "identity"], seed=0)
    net.weights[0][:, 1] = 0.0
    report = check_network(net, *data(sizes, batch=5))
    assert all(r.status != "FAIL" for r in report.rows if r.term == "step"), str(report)


# --- bad input: clear errors ---------------------------------------------------------------------


NAN_ABOVE_HALF = Activation("nan_above_half", lambda v: namespace_of(v).where(v > 0.5, np.nan, v),
                            lambda v: np.ones_like(v))


def test_a_forward_pass_producing_nan_is_refused_with_the_layer():
    sizes = [3, 4, 2]
    with pytest.raises(ValueError, match="forward pass produces NaN/Inf at layer 0"):
        check_network(Network(sizes, [NAN_ABOVE_HALF, "identity"]), *data(sizes))


def log_activation(v):
    return namespace_of(v).log(v)


LOG = Activation("log", log_activation, lambda v: 1.0 / v)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # as a user runs it: warnings printed
def test_a_forward_pass_producing_nan_with_numpy_warnings_is_refused():
    sizes = [3, 4, 2]
    with pytest.raises(ValueError, match="NaN/Inf at layer 0"):
        check_network(Network(sizes, [LOG, "identity"]), *data(sizes))


def test_a_nan_forward_under_warnings_as_errors_is_bad_input_not_a_wrong_gradient():
    sizes = [3, 4, 2]
    with pytest.raises(ValueError, match="NaN/Inf"):
        check_network(Network(sizes, [LOG, "identity"]), *data(sizes))


@pytest.mark.parametrize(
    ("x", "t", "match"),
    [
        (np.full((4, 3), np.nan), np.zeros((4, 2)), "X must be finite"),
        (np.ones((4, 5)), np.zeros((4, 2)), "X has 5 values per sample"),
        (np.ones((4, 3)), np.zeros((4, 3)), r"T must have shape \(4, 2\)"),
    ],
)
def test_bad_data_is_refused_with_the_reference_s_own_message(x, t, match):
    with pytest.raises(ValueError, match=match):
        check_network(Network([3, 4, 2], ["tanh", "identity"]), x, t)


def test_bad_class_labels_are_refused():
    net = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy")
    with pytest.raises(ValueError, match="class labels must lie in"):
        check_network(net, np.ones((4, 3)), np.array([0, 1, 2, 1]))


def test_an_unknown_fd_mode_is_refused():
    with pytest.raises(ValueError, match="fd must be"):
        check_network(Network([3, 4, 2], ["tanh", "identity"]), *data([3, 4, 2]), fd="central")


def test_a_dead_relu_layer_moves_no_sample_and_its_zero_gradient_passes():
    # Every unit of the first layer is off (V = -5) for every sample and stays off within the
    # steps: no perturbation of W_0 moves any sample, so the per-sample path pushes an empty
    # stack through the two layers after it.
    net = Network([2, 2, 2, 1], ["relu", "tanh", "identity"], seed=0)
    net.weights = [np.array([[1.0, -1.0], [0.5, 0.5], [-5.0, -5.0]]), *net.weights[1:]]
    x, t = data([2, 2, 2, 1], batch=3)
    report = check_network(net, x, t, fd="exhaustive")
    assert_all_pass(report)
    _, dws, _ = net.gradients(x, t)
    assert not np.any(dws[0])


def test_a_directional_failure_is_located_to_its_entry_not_named_by_its_direction():
    sizes = [3, 4, 2]
    net = Network(sizes, ["tanh", "identity"], "mse", seed=0)
    right = net.gradients

    def one_entry_wrong(X, T):
        E, dW, dX = right(X, T)
        dW[0] = dW[0].copy()
        dW[0][1, 2] += 1e-3 * np.max(np.abs(dW[0]))
        return E, dW, dX

    net.gradients = one_entry_wrong
    report = check_network(net, *data(sizes), fd="directional", local=False, check_step=False)
    row = next(r for r in report.rows if (r.layer, r.term) == (0, "dW"))
    assert row.status == "FAIL" and row.index == (1, 2) and row.wrong == 1, str(report)
    assert row.direction is None

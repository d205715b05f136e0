"""Known values of every loss and of its derivative, by hand.

Most checks go through ``Network.loss`` / ``Network.gradients`` on a one-layer network whose
input is the identity matrix and whose weights are ``[V; 0]``: then the pre-activation is
exactly ``V``, ``dE/dW[:-1]`` is exactly ``dE/dV``, the bias row of ``dE/dW`` is its batch sum,
and ``dE/dX = dE/dV V^T`` -- all numbers small enough to work out on paper.
"""

import math

import numpy as np
import pytest

from reference import LOSSES, Network, get_loss

LOG2, LOG3 = math.log(2.0), math.log(3.0)
STRICT = {"over": "raise", "divide": "raise", "invalid": "raise", "under": "ignore"}
# Hand values are exact in real arithmetic; the code rounds a few times (exp, log, sums):
# a few ulp, so rtol 1e-14 (~50 ulp) and atol 1e-15 for entries that are exactly zero.
RTOL, ATOL = 1e-14, 1e-15


def one_layer(loss, act, v):
    """A network and input X = I whose pre-activation is exactly ``v`` (B, m)."""
    v = np.asarray(v, dtype=float)
    b, m = v.shape
    net = Network([b, m], [act], loss, seed=0)
    net.weights = [np.vstack([v, np.zeros((1, m))])]
    return net, np.eye(b)


def check_gradients(net, x, t, e_expected, dv_expected):
    """E, dW and dX of ``net`` against the hand values E and dE/dV (X = I, W = [V; 0])."""
    v = net.weights[0][:-1]
    e, dw, dx = net.gradients(x, t)
    assert isinstance(e, float)
    assert e == pytest.approx(e_expected, rel=RTOL, abs=ATOL)
    np.testing.assert_allclose(dw[0][:-1], dv_expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw[0][-1], np.sum(dv_expected, axis=0), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dx, np.asarray(dv_expected) @ v.T, rtol=RTOL, atol=ATOL)
    assert net.loss(x, t) == e


# --- mse ---------------------------------------------------------------------------------------


def test_mse_is_half_the_squared_error_summed_per_sample_and_averaged_over_the_batch():
    net, x = one_layer("mse", "identity", [[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[0.0, 0.0], [3.0, 3.0]])
    # sample 0: (1 + 4)/2 = 2.5; sample 1: (0 + 1)/2 = 0.5; mean 1.5. dE/dY = (Y - T)/2.
    check_gradients(net, x, t, 1.5, [[0.5, 1.0], [0.0, 0.5]])


def test_mse_gradient_through_a_tanh_output_uses_the_derivative_at_v():
    net, x = one_layer("mse", "tanh", [[LOG2]])
    t = np.array([[0.0]])
    # y = tanh(log 2) = 3/5; E = (3/5)^2 / 2 = 9/50; dE/dV = (y - t) * (1 - y^2) = 3/5 * 16/25.
    check_gradients(net, x, t, 9 / 50, [[48 / 125]])


def test_mse_loss_and_gradient_objects_take_their_hand_values():
    mse = get_loss("mse")
    y, t = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 3.0]])
    assert mse.value(y, t) == pytest.approx(1.5, rel=RTOL)
    np.testing.assert_allclose(mse.grad(y, t), [[0.5, 1.0], [0.0, 0.5]], rtol=RTOL, atol=ATOL)
    assert mse.output_activation is None
    assert not mse.fused


# --- cross_entropy -----------------------------------------------------------------------------

CE_V = [[0.0, LOG2], [LOG2, 0.0]]  # softmax rows [1/3, 2/3] and [2/3, 1/3]


def test_cross_entropy_with_integer_labels_takes_its_hand_value():
    net, x = one_layer("cross_entropy", "softmax", CE_V)
    labels = np.array([1, 1])
    # -log(2/3) and -log(1/3), averaged; dE/dV = (Y - onehot)/2.
    e = (math.log(1.5) + LOG3) / 2
    check_gradients(net, x, labels, e, [[1 / 6, -1 / 6], [1 / 3, -1 / 3]])


def test_cross_entropy_with_one_hot_rows_equals_the_same_labels():
    net, x = one_layer("cross_entropy", "softmax", CE_V)
    e = (math.log(1.5) + LOG3) / 2
    check_gradients(net, x, np.array([[0.0, 1.0], [0.0, 1.0]]), e,
                    [[1 / 6, -1 / 6], [1 / 3, -1 / 3]])


def test_cross_entropy_with_probability_rows_takes_its_hand_value():
    net, x = one_layer("cross_entropy", "softmax", CE_V)
    t = np.array([[0.5, 0.5], [0.25, 0.75]])
    e0 = -(0.5 * math.log(1 / 3) + 0.5 * math.log(2 / 3))
    e1 = -(0.25 * math.log(2 / 3) + 0.75 * math.log(1 / 3))
    # (Y - T)/2: [1/3 - 1/2, 2/3 - 1/2]/2 and [2/3 - 1/4, 1/3 - 3/4]/2
    check_gradients(net, x, t, (e0 + e1) / 2, [[-1 / 12, 1 / 12], [5 / 24, -5 / 24]])


def test_cross_entropy_fused_gradient_is_y_times_row_sum_of_t_minus_t_over_b():
    ce = get_loss("cross_entropy")
    assert ce.fused and ce.output_activation == "softmax"
    v = np.array([[0.0, LOG2]])
    y = np.array([[1 / 3, 2 / 3]])
    t = np.array([[2.0, 0.0]])  # a row summing to 2 shows the sum(T) factor
    # (Y * 2 - T)/1 = [2/3 - 2, 4/3]
    np.testing.assert_allclose(ce.grad_v(v, y, t), [[-4 / 3, 4 / 3]], rtol=RTOL)
    # logsumexp(v) * 2 - sum(t v) = 2 log 3 - 0
    assert ce.value_from_v(v, t) == pytest.approx(2 * LOG3, rel=RTOL)


def test_cross_entropy_unfused_value_and_gradient_with_respect_to_y_take_their_hand_values():
    ce = get_loss("cross_entropy")
    y = np.array([[1 / 3, 2 / 3], [2 / 3, 1 / 3]])
    t = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert ce.value(y, t) == pytest.approx((math.log(1.5) + LOG3) / 2, rel=RTOL)
    # -T / (Y B): [0, -1/(2/3 * 2)] and [0, -1/(1/3 * 2)]
    np.testing.assert_allclose(ce.grad(y, t), [[0.0, -0.75], [0.0, -1.5]], rtol=RTOL, atol=ATOL)


def test_cross_entropy_is_computed_stably_from_the_logits():
    # Logits [1000, 0] with label 1: E = logsumexp - v_1 = 1000 + log(1 + e^-1000) = 1000,
    # where log(softmax) would be log(0) = -inf. Batch: X = [1], [-1] -> V = [1000, 0], [-1000, 0].
    net = Network([1, 2], ["softmax"], "cross_entropy", seed=0)
    net.weights = [np.array([[1000.0, 0.0], [0.0, 0.0]])]
    x = np.array([[1.0], [-1.0]])
    with np.errstate(**STRICT):
        e, dw, dx = net.gradients(x, np.array([1, 0]))
        e_right = net.loss(x, np.array([0, 1]))
        e_single = net.loss(x[:1], np.array([1]))
    assert e_single == 1000.0  # exact: e^-1000 underflows to 0 and log(1 + 0) = 0
    assert e == 1000.0  # both samples wrong by a margin of 1000
    assert e_right == 0.0  # both right by a margin of 1000
    # dE/dV = (Y - T)/2 = [[1, 0] - [0, 1], [0, 1] - [1, 0]] / 2, then X^T dV, sum dV, dV W^T.
    np.testing.assert_array_equal(dw[0], [[1.0, -1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(dx, [[500.0], [-500.0]])


# --- binary_cross_entropy ----------------------------------------------------------------------


def test_binary_cross_entropy_takes_its_hand_value():
    net, x = one_layer("binary_cross_entropy", "sigmoid", [[0.0], [LOG3]])
    t = np.array([[1.0], [0.25]])
    # y = 1/2 and 3/4: -log(1/2) and -(1/4 log 3/4 + 3/4 log 1/4); dE/dV = (Y - T)/2.
    e = (LOG2 - (0.25 * math.log(0.75) + 0.75 * math.log(0.25))) / 2
    check_gradients(net, x, t, e, [[-0.25], [0.25]])


def test_binary_cross_entropy_sums_over_outputs_within_a_sample():
    net, x = one_layer("binary_cross_entropy", "sigmoid", [[0.0, LOG3]])
    t = np.array([[0.0, 1.0]])
    # -log(1 - 1/2) - log(3/4) = log 2 + log 4/3 = log 8/3; dE/dV = [1/2 - 0, 3/4 - 1]
    check_gradients(net, x, t, math.log(8 / 3), [[0.5, -0.25]])


def test_binary_cross_entropy_loss_objects_take_their_hand_values():
    bce = get_loss("binary_cross_entropy")
    assert bce.fused and bce.output_activation == "sigmoid"
    v, y, t = np.array([[LOG3]]), np.array([[0.75]]), np.array([[0.25]])
    e = -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))
    assert bce.value(y, t) == pytest.approx(e, rel=RTOL)
    assert bce.value_from_v(v, t) == pytest.approx(e, rel=RTOL)
    np.testing.assert_allclose(bce.grad_v(v, y, t), [[0.5]], rtol=RTOL)
    np.testing.assert_allclose(bce.grad(y, t), [[0.5 / (0.75 * 0.25)]], rtol=RTOL)  # (y-t)/(y(1-y))


def test_binary_cross_entropy_is_computed_stably_from_the_logits():
    # V = +-1000 against the wrong targets: E = softplus(1000) - 0 = 1000 and
    # softplus(-1000) + 1000 = 1000; log(sigmoid) would give log(0) = -inf.
    net = Network([1, 1], ["sigmoid"], "binary_cross_entropy", seed=0)
    net.weights = [np.array([[1000.0], [0.0]])]
    x = np.array([[1.0], [-1.0]])
    with np.errstate(**STRICT):
        e, dw, dx = net.gradients(x, np.array([[0.0], [1.0]]))
        e_right = net.loss(x, np.array([[1.0], [0.0]]))
    assert e == 1000.0
    assert e_right == 0.0
    # dE/dV = (Y - T)/2 = [[1/2], [-1/2]]; dW = [1 * 1/2 + (-1)(-1/2), 1/2 - 1/2]; dX = dV * 1000
    np.testing.assert_array_equal(dw[0], [[1.0], [0.0]])
    np.testing.assert_array_equal(dx, [[500.0], [-500.0]])


def test_mse_at_plus_minus_1000_is_finite_and_exact():
    net = Network([1, 1], ["identity"], "mse", seed=0)
    net.weights = [np.array([[1000.0], [0.0]])]
    x = np.array([[1.0], [-1.0]])
    with np.errstate(**STRICT):
        e, dw, dx = net.gradients(x, np.zeros((2, 1)))
    assert e == 500000.0  # (1000^2/2 + 1000^2/2)/2
    np.testing.assert_array_equal(dw[0], [[1000.0], [0.0]])  # dV = [500, -500]
    np.testing.assert_array_equal(dx, [[500000.0], [-500000.0]])


@pytest.mark.parametrize(
    ("loss", "act", "t"),
    [
        ("mse", "tanh", np.array([[0.3, -0.2], [0.1, 0.9], [-0.5, 0.0]])),
        ("cross_entropy", "softmax", np.array([0, 1, 1])),
        ("binary_cross_entropy", "sigmoid", np.array([[0.3, 1.0], [0.0, 0.9], [0.5, 0.5]])),
    ],
)
def test_every_loss_is_a_mean_so_repeating_the_batch_changes_neither_loss_nor_gradient(
    loss, act, t, rng
):
    # Erratum 5: the loss value and its gradient must share one normalisation. With a mean,
    # the batch repeated twice has the same E and the same dW; a sum would double both.
    net = Network([4, 2], [act], loss, seed=0)
    x = rng.normal(size=(3, 4))
    e1, dw1, _ = net.gradients(x, t)
    e2, dw2, _ = net.gradients(np.concatenate([x, x]), np.concatenate([t, t]))
    assert e2 == pytest.approx(e1, rel=1e-14)  # the same sums, twice as long: a few ulp
    np.testing.assert_allclose(dw2[0], dw1[0], rtol=1e-13, atol=1e-16)


def test_the_built_in_loss_names_are_exactly_the_documented_three():
    assert list(LOSSES) == ["mse", "cross_entropy", "binary_cross_entropy"]


def test_get_loss_lists_the_valid_names_for_an_unknown_one():
    with pytest.raises(ValueError, match="unknown loss 'hinge'; expected one of: mse, "
                                         "cross_entropy, binary_cross_entropy"):
        get_loss("hinge")


def test_get_loss_refuses_something_that_is_neither_a_name_nor_a_loss():
    with pytest.raises(TypeError, match="a loss must be a name \\(str\\) or a Loss, got float"):
        get_loss(1.0)


# --- second derivatives: d2E/dY2 R and d2E/dV2 R against explicit Hessian matrices ----------------

# Each Hessian is written out as a matrix from the per-sample loss, by hand, and applied to R by
# a matrix product; the reference applies it without building it. Both are a few roundings of
# O(1) numbers: rtol 1e-13.


def _rows(seed, b=3, m=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, m)), rng.normal(size=(b, m))


def test_mse_second_derivative_is_the_direction_over_the_batch():
    y, r = _rows(0)
    t = np.zeros_like(y)
    np.testing.assert_array_equal(LOSSES["mse"].hvp(y, t, r), r / 3)  # E_b'' = I, E = mean


def test_cross_entropy_fused_second_derivative_is_the_softmax_jacobian_times_row_sum_of_t():
    v, r = _rows(1)
    t = np.abs(_rows(2)[0])  # probability-like rows that need not sum to 1
    y = np.exp(v) / np.sum(np.exp(v), axis=1, keepdims=True)
    expected = np.stack([  # d2/dv2 of sum(t) lse(v) - t.v is sum(t) (diag(p) - p p^T)
        np.sum(t[b]) * (np.diag(y[b]) - np.outer(y[b], y[b])) @ r[b] for b in range(3)]) / 3
    got = LOSSES["cross_entropy"].hvp_v(v, y, t, r)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-16)


def test_binary_cross_entropy_fused_second_derivative_is_sigmoid_prime_times_r_over_b():
    v, r = _rows(3)
    t = (_rows(4)[0] > 0).astype(float)
    s = 1.0 / (1.0 + np.exp(-v))
    expected = s * (1.0 - s) * r / 3  # d2/dv2 of softplus(v) - t v
    got = LOSSES["binary_cross_entropy"].hvp_v(v, s, t, r)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-16)


def test_the_unfused_cross_entropies_second_derivatives_in_y_take_their_textbook_values():
    y = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    t = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    r = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]])
    # -t log y: t / y^2; -[t log y + (1 - t) log(1 - y)]: t / y^2 + (1 - t) / (1 - y)^2.
    np.testing.assert_allclose(LOSSES["cross_entropy"].hvp(y, t, r), t / y**2 * r / 2,
                               rtol=1e-14)
    np.testing.assert_allclose(LOSSES["binary_cross_entropy"].hvp(y, t, r),
                               (t / y**2 + (1 - t) / (1 - y) ** 2) * r / 2, rtol=1e-13)

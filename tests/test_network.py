"""Network construction, hand-computed passes, shapes of everything returned, initialisation."""

import numpy as np
import pytest

from reference import Activation, Network


def targets_for(loss, batch, n_out, rng):
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=batch)
    if loss == "binary_cross_entropy":
        return rng.uniform(0.0, 1.0, size=(batch, n_out))
    return rng.normal(size=(batch, n_out))


# --- a two-layer network worked out on paper -----------------------------------------------------


def hand_network():
    # layer 0: relu, W0 = [[1, -1], [2, 0]] with bias row [0.5, 0]; layer 1: identity,
    # W1 = [[1], [3]] with bias row [-1].
    net = Network([2, 2, 1], ["relu", "identity"], "mse", seed=0)
    net.weights = [
        np.array([[1.0, -1.0], [2.0, 0.0], [0.5, 0.0]]),
        np.array([[1.0], [3.0], [-1.0]]),
    ]
    return net


def test_forward_of_a_hand_built_network_uses_the_last_row_as_the_bias():
    net = hand_network()
    # x = [1, 1]:  V0 = [1 + 2 + 0.5, -1 + 0 + 0] = [3.5, -1] -> relu [3.5, 0] -> 3.5 - 1 = 2.5
    # x = [0, -1]: V0 = [-2 + 0.5, 0] = [-1.5, 0] -> relu [0, 0] -> -1
    y = net.forward(np.array([[1.0, 1.0], [0.0, -1.0]]))
    np.testing.assert_array_equal(y, [[2.5], [-1.0]])  # small dyadic numbers: exact


def test_gradients_of_a_hand_built_network_take_their_hand_values():
    net = hand_network()
    x, t = np.array([[1.0, 1.0]]), np.array([[0.0]])
    e, dw, dx = net.gradients(x, t)
    # Y = 2.5, E = 2.5^2 / 2; dE/dY = dE/dV1 = 2.5; dW1 = [3.5, 0, 1] * 2.5 (eq 8, X~ = [y0, 1]);
    # dE/dY0 = 2.5 * W1[:-1]^T = [2.5, 7.5] (eq 11, no bias); dV0 = [2.5, 7.5] * relu'([3.5, -1])
    # = [2.5, 0]; dW0 = [1, 1, 1]^T [2.5, 0]; dX = dV0 W0[:-1]^T = [2.5, 5].
    assert e == 3.125
    np.testing.assert_array_equal(dw[1], [[8.75], [0.0], [2.5]])
    np.testing.assert_array_equal(dw[0], [[2.5, 0.0], [2.5, 0.0], [2.5, 0.0]])
    np.testing.assert_array_equal(dx, [[2.5, 5.0]])


def test_a_step_returns_the_loss_before_it_and_moves_every_weight_by_minus_lr_times_its_gradient():
    net = hand_network()
    e = net.step(np.array([[1.0, 1.0]]), np.array([[0.0]]), lr=0.1)
    assert e == 3.125
    # W - 0.1 dW with dW from the previous test; 0.1 * 8.75 etc. round once: 1 ulp.
    np.testing.assert_allclose(net.weights[1], [[0.125], [3.0], [-1.25]], rtol=1e-15)
    np.testing.assert_allclose(net.weights[0], [[0.75, -1.0], [1.75, 0.0], [0.25, 0.0]],
                               rtol=1e-15)


def test_a_step_lowers_the_loss_of_its_batch_for_a_small_learning_rate():
    net = hand_network()
    x, t = np.array([[1.0, 1.0]]), np.array([[0.0]])
    before = net.step(x, t, lr=0.01)
    assert net.loss(x, t) < before


# --- shapes ------------------------------------------------------------------------------------

CONFIGS = [
    pytest.param([4, 3, 2], ["tanh", "identity"], "mse", (5, 4), id="mse-flat"),
    pytest.param([9, 5, 3], ["relu", "softmax"], "cross_entropy", (6, 3, 3), id="ce-3x3"),
    pytest.param([6, 2], ["sigmoid"], "binary_cross_entropy", (1, 2, 3), id="bce-single"),
    pytest.param([2, 4, 4, 1], ["elu", "gelu", "identity"], "mse", (1, 2), id="mse-deep"),
]


@pytest.mark.parametrize(("sizes", "acts", "loss", "x_shape"), CONFIGS)
def test_forward_returns_one_float64_row_per_sample(sizes, acts, loss, x_shape, rng):
    net = Network(sizes, acts, loss, seed=1)
    y = net.forward(rng.normal(size=x_shape))
    assert y.shape == (x_shape[0], sizes[-1])
    assert y.dtype == np.float64


@pytest.mark.parametrize(("sizes", "acts", "loss", "x_shape"), CONFIGS)
def test_gradients_return_a_float_and_arrays_shaped_like_the_weights_and_the_input(
    sizes, acts, loss, x_shape, rng
):
    net = Network(sizes, acts, loss, seed=1)
    x = rng.normal(size=x_shape)
    e, dw, dx = net.gradients(x, targets_for(loss, x_shape[0], sizes[-1], rng))
    assert type(e) is float and np.isfinite(e)
    assert len(dw) == len(net.weights) == len(sizes) - 1
    for k, (g, w) in enumerate(zip(dw, net.weights)):
        assert g.shape == w.shape == (sizes[k] + 1, sizes[k + 1])
        assert g.dtype == np.float64
    assert dx.shape == x_shape
    assert dx.dtype == np.float64


@pytest.mark.parametrize(("sizes", "acts", "loss", "x_shape"), CONFIGS)
def test_the_trace_holds_every_term_of_every_layer_with_its_documented_shape(
    sizes, acts, loss, x_shape, rng
):
    net = Network(sizes, acts, loss, seed=1)
    x = rng.normal(size=x_shape)
    t = targets_for(loss, x_shape[0], sizes[-1], rng)
    tr = net.trace(x, t)
    b, n_layers = x_shape[0], len(sizes) - 1
    for field in ("xs", "vs", "ys", "gs", "dvs", "dws", "dxs"):
        assert len(getattr(tr, field)) == n_layers, field
    for k in range(n_layers):
        out = (b, sizes[k + 1])
        assert tr.xs[k].shape == (b, sizes[k])
        assert tr.vs[k].shape == tr.ys[k].shape == tr.dvs[k].shape == out
        assert tr.dws[k].shape == (sizes[k] + 1, sizes[k + 1])
        assert tr.dxs[k].shape == (b, sizes[k])
        if k + 1 < n_layers:
            np.testing.assert_array_equal(tr.xs[k + 1], tr.ys[k])  # layer k feeds layer k+1
    fused = loss != "mse"
    for k in range(n_layers):
        if fused and k == n_layers - 1:
            assert tr.gs[k] is None  # the fused output goes from the loss straight to dE/dV
        else:
            assert tr.gs[k].shape == (b, sizes[k + 1])
    np.testing.assert_array_equal(tr.ys[-1], net.forward(x))
    assert tr.loss == net.loss(x, t)


def test_the_trace_skips_the_input_gradient_when_it_is_not_needed(rng):
    net = Network([3, 4, 2], ["tanh", "identity"], "mse", seed=0)
    tr = net.trace(rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), need_input_grad=False)
    assert tr.dxs[0] is None
    assert tr.dxs[1].shape == (5, 4)


def test_gradients_of_a_per_sample_shaped_input_equal_those_of_its_flattened_form(rng):
    net = Network([9, 4, 2], ["tanh", "identity"], "mse", seed=0)
    x, t = rng.normal(size=(3, 3, 3)), rng.normal(size=(3, 2))
    e1, dw1, dx1 = net.gradients(x, t)
    e2, dw2, dx2 = net.gradients(x.reshape(3, 9), t)
    assert dx1.shape == (3, 3, 3)
    assert e1 == e2
    np.testing.assert_array_equal(dx1.reshape(3, 9), dx2)  # same numbers, only reshaped
    for a, b in zip(dw1, dw2):
        np.testing.assert_array_equal(a, b)


# --- weights -----------------------------------------------------------------------------------


def test_weights_have_the_documented_shapes_and_dtype():
    net = Network([4, 7, 3, 2], ["tanh", "relu", "identity"], "mse", seed=0)
    assert [w.shape for w in net.weights] == [(5, 7), (8, 3), (4, 2)]
    assert all(w.dtype == np.float64 for w in net.weights)


def test_assigned_weights_are_copied_and_converted_to_float64():
    net = Network([2, 1], ["identity"], "mse", seed=0)
    mine = [np.array([[1.0], [2.0], [3.0]], dtype=np.float32)]
    net.weights = mine
    mine[0][0, 0] = 99.0
    assert net.weights[0].dtype == np.float64
    np.testing.assert_array_equal(net.weights[0], [[1.0], [2.0], [3.0]])


def test_a_weight_edited_in_place_is_used_by_the_next_forward():
    net = Network([1, 1], ["identity"], "mse", seed=0)
    net.weights[0][...] = [[2.0], [1.0]]
    np.testing.assert_array_equal(net.forward(np.array([[3.0]])), [[7.0]])  # 2 * 3 + 1


# --- initialisation ------------------------------------------------------------------------------

INITS = ["glorot", "he", "uniform"]


@pytest.mark.parametrize("init", INITS)
def test_the_same_seed_gives_bit_identical_weights(init):
    a = Network([5, 8, 3], ["tanh", "identity"], seed=7, init=init)
    b = Network([5, 8, 3], ["tanh", "identity"], seed=7, init=init)
    for wa, wb in zip(a.weights, b.weights):
        assert wa.tobytes() == wb.tobytes()


@pytest.mark.parametrize("init", INITS)
def test_different_seeds_give_different_weights(init):
    a = Network([5, 8, 3], ["tanh", "identity"], seed=7, init=init)
    b = Network([5, 8, 3], ["tanh", "identity"], seed=8, init=init)
    for wa, wb in zip(a.weights, b.weights):
        assert not np.array_equal(wa[:-1], wb[:-1])


def test_the_default_init_is_glorot():
    a = Network([5, 3], ["tanh"], seed=3)
    b = Network([5, 3], ["tanh"], seed=3, init="glorot")
    c = Network([5, 3], ["tanh"], seed=3, init="uniform")
    assert a.weights[0].tobytes() == b.weights[0].tobytes()
    assert a.weights[0].tobytes() != c.weights[0].tobytes()


N_IN, N_OUT = 300, 200  # 60000 entries: sample moments accurate to ~1/sqrt(60000) = 0.4 %


def test_glorot_weights_fill_plus_minus_sqrt_6_over_fan_sum_and_the_bias_row_is_zero():
    w = Network([N_IN, N_OUT], ["tanh"], seed=0, init="glorot").weights[0]
    a = np.sqrt(6.0 / (N_IN + N_OUT))
    np.testing.assert_array_equal(w[-1], 0.0)
    assert np.all(np.abs(w[:-1]) <= a)
    # The max of 60000 uniform draws is within a * 1e-3 of the bound with probability
    # 1 - (1 - 5e-4)^60000 ~ 1 - 1e-13, so a bound that is too small is caught.
    assert w[:-1].max() > 0.999 * a and w[:-1].min() < -0.999 * a
    # U(-a, a) has std a/sqrt(3); the sample std is within 2 % (about 7 standard errors).
    assert np.std(w[:-1]) == pytest.approx(a / np.sqrt(3.0), rel=0.02)


def test_he_weights_have_std_sqrt_2_over_fan_in_and_the_bias_row_is_zero():
    w = Network([N_IN, N_OUT], ["relu"], seed=0, init="he").weights[0]
    np.testing.assert_array_equal(w[-1], 0.0)
    std = np.sqrt(2.0 / N_IN)
    # Sample std of 60000 normal draws: standard error 1/sqrt(2N) = 0.3 %; 2 % is ~7 of them.
    assert np.std(w[:-1]) == pytest.approx(std, rel=0.02)
    # Sample mean: standard error std/sqrt(N); 7 of them.
    assert abs(np.mean(w[:-1])) < 7 * std / np.sqrt(w[:-1].size)
    # A normal's tails: some draws beyond 3 std (expected 162 of 60000), none beyond 7 std.
    assert np.any(np.abs(w[:-1]) > 3 * std)
    assert np.all(np.abs(w[:-1]) < 7 * std)


def test_uniform_weights_and_biases_lie_in_minus_half_to_half():
    w = Network([N_IN, N_OUT], ["tanh"], seed=0, init="uniform").weights[0]
    assert np.all(w >= -0.5) and np.all(w < 0.5)
    assert np.any(w[-1] != 0.0)  # the bias row is drawn too, as in the original program
    assert w.max() > 0.499 and w.min() < -0.499  # as for glorot: 60000 draws reach the ends


def test_an_unknown_init_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown init 'xavier'; expected one of: glorot, he, "
                                         "uniform"):
        Network([2, 1], ["tanh"], init="xavier")


# --- custom activations anywhere a name goes ----------------------------------------------------


def cube():
    return Activation("cube", lambda v: v**3, lambda v: 3.0 * v**2)


def test_a_custom_activation_works_as_the_output_layer():
    net = Network([1, 1], [cube()], "mse", seed=0)
    net.weights = [np.array([[2.0], [1.0]])]
    x, t = np.array([[1.0]]), np.array([[0.0]])
    assert net.forward(x)[0, 0] == 27.0  # (2 * 1 + 1)^3
    e, dw, dx = net.gradients(x, t)
    # E = 27^2/2; dE/dV = 27 * 3 * 3^2 = 729; dW = [1, 1] * 729; dX = 729 * 2
    assert e == 364.5
    np.testing.assert_array_equal(dw[0], [[729.0], [729.0]])
    np.testing.assert_array_equal(dx, [[1458.0]])


def test_a_custom_activation_mixes_with_named_ones_in_hidden_layers_and_trains(rng):
    act = Activation("soft_sign", lambda v: v / (1 + abs(v)), lambda v: 1 / (1 + abs(v)) ** 2)
    net = Network([3, 6, 6, 2], [act, "tanh", "softmax"], "cross_entropy", seed=0)
    assert net.activations[0] is act
    x, labels = rng.normal(size=(20, 3)), rng.integers(0, 2, size=20)
    history = net.fit(x, labels, epochs=30, lr=0.5, seed=0)
    assert history[-1] < history[0]


def test_a_custom_activation_cannot_stand_in_for_softmax_under_cross_entropy():
    fake = Activation("softmax", lambda v: v, lambda v: np.ones_like(v))
    with pytest.raises(ValueError, match="needs the last activation to be 'softmax'"):
        Network([2, 2], [fake], "cross_entropy")


# --- defaults, and the training step near overflow and divergence ---------------------------------


def test_the_default_seed_is_0_and_seed_none_draws_fresh_weights():
    same = Network([3, 2], ["tanh"], seed=0)
    default = Network([3, 2], ["tanh"])
    np.testing.assert_array_equal(default.weights[0], same.weights[0])
    assert default.seed == 0
    fresh = Network([3, 2], ["tanh"], seed=None)
    assert fresh.seed is None and fresh.weights[0].shape == (4, 2)


def test_the_repr_names_sizes_activations_and_loss():
    net = Network([2, 3, 1], ["tanh", "identity"], "mse")
    assert repr(net) == "Network([2, 3, 1], activations=['tanh', 'identity'], loss='mse')"


def test_fit_defaults_are_one_epoch_lr_0_1_with_shuffling(rng):
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    a, b = Network([3, 2], ["tanh"], seed=1), Network([3, 2], ["tanh"], seed=1)
    history = a.fit(x, t, batch_size=2, seed=5)
    assert b.fit(x, t, epochs=1, lr=0.1, batch_size=2, seed=5, shuffle=True) == history
    assert len(history) == 1
    np.testing.assert_array_equal(a.weights[0], b.weights[0])


def test_a_zero_learning_rate_is_refused(unchanged):
    net = Network([2, 1], ["identity"])
    with unchanged(net), pytest.raises(ValueError, match="lr must be a finite positive"):
        net.step(np.ones((1, 2)), np.zeros((1, 1)), 0.0)


@pytest.mark.parametrize("sizes", [[2, 1], [2, 2, 1]])
def test_a_nan_written_into_the_weights_in_place_is_refused_naming_the_array(sizes):
    net = Network(sizes, ["tanh"] * (len(sizes) - 2) + ["identity"])
    last = len(sizes) - 2
    net.weights[last][0, 0] = np.nan
    for call in (lambda: net.step(np.ones((1, 2)), np.zeros((1, 1)), 0.1),
                 lambda: net.forward(np.ones((1, 2)))):
        with pytest.raises(ValueError, match=rf"weights\[{last}\]"):
            call()


def test_a_step_near_overflow_still_moves_every_weight_by_minus_lr_times_its_gradient():
    # An input of 1e160 (its square, 1e320, overflows): the step computes every update before
    # committing any, and must apply the same eq 10 as W - lr dE/dW from gradients().
    net = Network([2, 2, 1], ["tanh", "identity"], seed=3)
    x, t = np.array([[1e160, -1.0], [1.0, 2.0]]), np.array([[0.3], [-0.2]])  # tanh saturates
    with np.errstate(over="ignore"):  # X near overflow: warnings are not what this is about
        _, dws, _ = net.gradients(x, t)
    before = [w.copy() for w in net.weights]
    net.step(x, t, 0.25)
    for w, b, dw in zip(net.weights, before, dws):
        np.testing.assert_array_equal(w, b - 0.25 * dw)  # the same two roundings


@pytest.mark.parametrize("call", ["gradients", "step"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_bad_weight_is_refused_without_a_numpy_warning_first(call, bad):
    # Under numpy's default warning filters (not this suite's "error"): the refusal must be the
    # only thing the user sees, not an "invalid value in matmul" warning before it.
    import warnings

    net = Network([3, 2, 1], ["tanh", "identity"], seed=1)
    net.weights[0][1, 0] = bad
    x, t = np.array([[1.0, 0.0, -1.0], [0.5, 0.0, 2.0]]), np.zeros((2, 1))  # 0 * inf: invalid
    run = net.gradients if call == "gradients" else (lambda a, b: net.step(a, b, 0.1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"weights\[0\] must be finite"):
            run(x, t)
    assert [str(w.message) for w in seen] == []


def test_gradients_warn_of_an_output_activation_going_nan_as_trace_does():
    # A NaN made by the output activation from a finite V must be warned about (gradients()
    # holds back no warning of its forward).
    from reference import Activation

    log = Activation("log", np.log, lambda v: 1.0 / v)
    net = Network([1, 1], [log])
    net.weights = [np.array([[1.0], [0.0]])]
    x, t = np.array([[-1.0]]), np.array([[0.0]])
    for call in (net.trace, net.gradients):
        with pytest.warns(RuntimeWarning, match="invalid value"):
            call(x, t)


def test_the_callers_floating_point_settings_apply_to_gradients_forward():
    net = Network([1, 1], ["identity"])
    net.weights = [np.array([[1e200], [0.0]])]
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        net.gradients(np.array([[1e200]]), np.array([[0.0]]))


@pytest.mark.parametrize("call", ["gradients", "step"])
def test_a_nan_input_is_named_even_when_an_activation_raises_on_it_first(call, unchanged):
    import math

    from reference import Activation

    floor = Activation("floor", np.vectorize(lambda v: float(math.floor(v))), np.zeros_like)
    net = Network([2, 1], [floor])
    x, t = np.array([[np.nan, 1.0]]), np.array([[0.0]])
    run = net.gradients if call == "gradients" else (lambda a, b: net.step(a, b, 0.1))
    with unchanged(net), pytest.raises(ValueError, match="X must be finite"):
        run(x, t)


def test_gradients_of_an_overflowing_forward_warn_as_numpy_does():
    # X and W are finite and V overflows anyway: numpy's warning must be seen.
    net = Network([1, 1], ["identity"])
    net.weights = [np.array([[1e200], [0.0]])]
    with pytest.warns(RuntimeWarning, match="overflow"):
        with np.errstate(invalid="ignore"):
            net.gradients(np.array([[1e200]]), np.array([[0.0]]))


def test_an_update_that_overflows_raises_divergence_and_leaves_the_weights(unchanged):
    # dE/dW ~ 1e10 (finite loss ~ 1e10) times lr = 1e300 overflows: refused, nothing changed.
    from reference import DivergenceError

    net = Network([1, 1], ["identity"])
    net.weights = [np.array([[1.0], [0.0]])]
    with unchanged(net), pytest.raises(DivergenceError, match=r"update of weights\[0\]"):
        net.step(np.array([[1e5]]), np.array([[0.0]]), 1e300)


def test_an_overflowing_bias_update_with_all_zero_inputs_raises_divergence(unchanged):
    # X = 0: dE/dW is zero but for its bias row, sum_b dE/dV ~ -2e10, times lr = 1e300.
    from reference import DivergenceError

    net = Network([3, 1], ["identity"])
    net.weights = [np.array([[1.0], [1.0], [1.0], [0.0]])]
    with unchanged(net), pytest.raises(DivergenceError, match=r"update of weights\[0\]"):
        net.step(np.zeros((2, 3)), np.full((2, 1), 1e10), 1e300)


def test_a_forward_that_overflows_to_inf_minus_inf_is_a_divergence_not_a_warning(unchanged):
    # V = [1e400, 1e400] overflows to [inf, inf]; softmax's V - max V is inf - inf = NaN. numpy's
    # overflow and invalid warnings (errors under this suite's filterwarnings) must become one
    # DivergenceError.
    from reference import DivergenceError

    net = Network([1, 2], ["softmax"], "cross_entropy")
    net.weights = [np.array([[1e200, 1e200], [0.0, 0.0]])]
    with unchanged(net), pytest.raises(DivergenceError, match="the loss is nan"):
        net.step(np.array([[1e200]]), np.array([0]), 0.1)


def test_gradients_report_a_non_finite_loss_as_it_is():
    # Divergence is a training notion: gradients() is a plain function and returns inf.
    net = Network([1, 1], ["identity"])
    net.weights = [np.array([[1e200], [0.0]])]
    with np.errstate(over="ignore", invalid="ignore"):
        e, _, _ = net.gradients(np.array([[1e200]]), np.array([[0.0]]))
    assert e == np.inf


def test_probability_rows_must_each_sum_to_1_not_only_all_together():
    net = Network([2, 2], ["softmax"], "cross_entropy")
    t = np.array([[0.5, 0.0], [0.5, 0.0]])  # the rows sum to 0.5 each, 1 together
    with pytest.raises(ValueError, match="sum to 1"):
        net.gradients(np.ones((2, 2)), t)


def test_the_trace_holds_the_callers_float64_input_itself_flattened_not_a_copy(rng):
    # Documented in workspace.py: trace's xs[0] is the caller's X (a view), saving a copy of
    # the largest input; every other array of the trace is the network's own.
    net = Network([4, 3, 2], ["tanh", "identity"])
    x = rng.normal(size=(5, 2, 2))  # per-sample 2x2 inputs: flattened by the full input check
    trace = net.trace(x, rng.normal(size=(5, 2)))
    assert trace.xs[0].shape == (5, 4) and np.shares_memory(trace.xs[0], x)
    assert not any(np.shares_memory(a, x) for a in trace.vs + trace.ys + trace.dws)


# --- the Hessian-vector product's arguments ------------------------------------------------------


@pytest.mark.parametrize(("directions", "error", "match"), [
    (3, TypeError, "directions must be a list of 2 float arrays"),
    ([np.ones((4, 4))], ValueError, "expected 2 direction arrays, got 1"),
    ([np.ones((4, 4)), np.ones((5, 3))], ValueError,
     r"directions\[1\] must have shape \(5, 2\) \(n_in \+ 1 bias row, n_out\), got \(5, 3\)"),
    ([np.ones((4, 4)), np.full((5, 2), np.inf)], ValueError, r"directions\[1\] must be finite"),
    ([np.ones((4, 4), dtype=int), np.ones((5, 2))], TypeError,
     r"directions\[0\] must be a float array, got dtype int"),
])
def test_hessian_vector_product_refuses_bad_directions_naming_them(directions, error, match):
    net = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", seed=1)
    before = [w.copy() for w in net.weights]
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(error, match=match):
        net.hessian_vector_product(x, np.array([0, 1, 1, 0, 1]), directions)
    for w, b in zip(net.weights, before):
        np.testing.assert_array_equal(w, b)


def test_hessian_vector_product_of_a_linear_mse_network_is_x_tilde_gram_times_d():
    # One identity layer, mse: E = |X~ W - T|^2 / (2B), so H D = X~^T X~ D / B exactly.
    rng = np.random.default_rng(3)
    x, t, d = rng.normal(size=(4, 2)), rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    net = Network([2, 3], ["identity"], "mse", seed=0)
    xt = np.hstack([x, np.ones((4, 1))])
    np.testing.assert_allclose(net.hessian_vector_product(x, t, [d])[0], xt.T @ xt @ d / 4,
                               rtol=1e-13)  # the same 12 products summed in another order


def test_a_fused_loss_refuses_a_user_activation_named_like_its_built_in_saying_so():
    own = Activation("sigmoid", lambda v: 1 / (1 + np.exp(-v)), lambda v: np.exp(-v))
    with pytest.raises(ValueError, match="needs the last activation to be 'sigmoid', got your "
                                         "own 'sigmoid'"):
        Network([2, 1], [own], "binary_cross_entropy")

"""Every bad input is refused with a message naming what was expected and what was given,
and a refused call changes nothing: the weights stay bit-identical."""

import re

import numpy as np
import pytest

from reference import ACTIVATIONS, Network

B = 5  # batch size of the valid inputs below


@pytest.fixture
def mse_net():
    return Network([4, 3, 2], ["tanh", "identity"], "mse", seed=0)


@pytest.fixture
def ce_net():
    return Network([4, 3], ["softmax"], "cross_entropy", seed=0)


@pytest.fixture
def bce_net():
    return Network([4, 2], ["sigmoid"], "binary_cross_entropy", seed=0)


def good_x():
    return np.linspace(-1.0, 1.0, B * 4).reshape(B, 4)


def with_entry(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


# Every public entry point that takes X (and T): each must validate before touching anything.
CALLS = {
    "forward": lambda net, x, t: net.forward(x),
    "loss": lambda net, x, t: net.loss(x, t),
    "gradients": lambda net, x, t: net.gradients(x, t),
    "trace": lambda net, x, t: net.trace(x, t),
    "step": lambda net, x, t: net.step(x, t, 0.1),
    "fit": lambda net, x, t: net.fit(x, t, epochs=2, lr=0.1, batch_size=2, seed=0),
}
CALLS_WITH_T = {k: v for k, v in CALLS.items() if k != "forward"}

BAD_X = [
    pytest.param(np.ones((B, 3)), ValueError,
                 r"X has 3 values per sample \(shape \(5, 3\)\), but the network's first layer "
                 r"expects 4", id="too-few-per-sample"),
    pytest.param(np.ones((B, 3, 3)), ValueError,
                 r"X has 9 values per sample \(shape \(5, 3, 3\)\).*expects 4",
                 id="per-sample-shape-of-wrong-size"),
    pytest.param(np.ones(4), ValueError,
                 r"X must have a batch axis first: expected shape \(B, \.\.\.\) with 4 values "
                 r"per sample, got shape \(4,\); for one sample use X\[None\]", id="1-d"),
    pytest.param(np.float64(1.0), ValueError, r"expected shape \(B, \.\.\.\).*got shape \(\)",
                 id="0-d"),
    pytest.param(np.ones((0, 4)), ValueError,
                 r"X is an empty batch: expected B >= 1 samples, got shape \(0, 4\)", id="empty"),
    pytest.param(with_entry(good_x(), (1, 2), np.nan), ValueError,
                 r"X must be finite, found 1 NaN/Inf entries \(first at index \(1, 2\): nan\)",
                 id="nan"),
    pytest.param(with_entry(good_x(), (3, 0), -np.inf), ValueError,
                 r"X must be finite, found 1 NaN/Inf entries \(first at index \(3, 0\): -inf\)",
                 id="inf"),
    pytest.param(np.full((B, 4), "a"), TypeError,
                 r"X must hold real numbers \(float or int\), got dtype <U1", id="strings"),
    pytest.param(np.ones((B, 4), dtype=object), TypeError,
                 r"X must hold real numbers \(float or int\), got dtype object", id="object"),
    pytest.param(np.ones((B, 4), dtype=complex), TypeError,
                 r"X must hold real numbers \(float or int\), got dtype complex128",
                 id="complex"),
    pytest.param([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], TypeError,
                 r"X must be a numeric array, could not convert it", id="ragged"),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("x", "error", "match"), BAD_X)
def test_a_bad_input_is_refused_by_every_entry_point_and_changes_nothing(
    mse_net, unchanged, call, x, error, match
):
    with unchanged(mse_net), pytest.raises(error, match=match):
        CALLS[call](mse_net, x, np.zeros((B, 2)))


BAD_MSE_T = [
    pytest.param(np.zeros((B, 3)), ValueError,
                 r"T must have shape \(5, 2\) for loss 'mse', got shape \(5, 3\)", id="columns"),
    pytest.param(np.zeros(B), ValueError,
                 r"T must have shape \(5, 2\) for loss 'mse', got shape \(5,\)", id="1-d"),
    pytest.param(np.zeros((B - 1, 2)), ValueError,
                 r"T must have shape \(5, 2\) for loss 'mse', got shape \(4, 2\)", id="batch"),
    pytest.param(with_entry(np.zeros((B, 2)), (4, 1), np.nan), ValueError,
                 r"T must be finite, found 1 NaN/Inf entries \(first at index \(4, 1\): nan\)",
                 id="nan"),
    pytest.param(with_entry(np.zeros((B, 2)), (0, 0), np.inf), ValueError,
                 r"T must be finite.*\(first at index \(0, 0\): inf\)", id="inf"),
    pytest.param(np.full((B, 2), "x"), TypeError, r"T must hold real numbers.*got dtype <U1",
                 id="strings"),
    pytest.param(np.zeros((B, 2), dtype=complex), TypeError,
                 r"T must hold real numbers.*got dtype complex128", id="complex"),
]


@pytest.mark.parametrize("call", CALLS_WITH_T)
@pytest.mark.parametrize(("t", "error", "match"), BAD_MSE_T)
def test_a_bad_mse_target_is_refused_and_changes_nothing(
    mse_net, unchanged, call, t, error, match
):
    with unchanged(mse_net), pytest.raises(error, match=match):
        CALLS_WITH_T[call](mse_net, good_x(), t)


BAD_CE_T = [
    pytest.param(np.array([0, 1, 2, 3, 0]), ValueError,
                 r"class labels must lie in \[0, 3\) for 3 outputs, got 3 at index 3",
                 id="label-too-large"),
    pytest.param(np.array([0, -1, 2, 1, 0]), ValueError,
                 r"class labels must lie in \[0, 3\) for 3 outputs, got -1 at index 1",
                 id="label-negative"),
    pytest.param(np.array([0.0, 1.0, 2.0, 1.0, 0.0]), TypeError,
                 r"1-D targets for cross_entropy must be integer class labels, got dtype "
                 r"float64; pass one-hot or probability rows of shape \(5, 3\)",
                 id="float-labels"),
    pytest.param(np.array([True, False, True, False, True]), TypeError,
                 r"must be integer class labels, got dtype bool", id="bool-labels"),
    pytest.param(np.array([0, 1, 2, 1]), ValueError,
                 r"expected 5 class labels \(one per sample\), got 4", id="label-count"),
    pytest.param(with_entry(np.eye(3)[[0, 1, 2, 0, 1]], (0, slice(None)), [1.5, -0.5, 0.0]),
                 ValueError,
                 r"targets for cross_entropy must be probabilities in \[0, 1\], got 1\.5 at "
                 r"index \(0, 0\)", id="outside-0-1"),
    pytest.param(with_entry(np.eye(3)[[0, 1, 2, 0, 1]], (2, 2), 0.9), ValueError,
                 r"cross_entropy target rows must sum to 1 \(one-hot or probabilities\), row 2 "
                 r"sums to .*0\.9", id="row-sum"),
    pytest.param(np.zeros((B, 2)), ValueError,
                 r"T must have shape \(5, 3\) for loss 'cross_entropy' or integer labels of "
                 r"shape \(B,\), got shape \(5, 2\)", id="shape"),
]


@pytest.mark.parametrize("call", CALLS_WITH_T)
@pytest.mark.parametrize(("t", "error", "match"), BAD_CE_T)
def test_a_bad_cross_entropy_target_is_refused_and_changes_nothing(
    ce_net, unchanged, call, t, error, match
):
    with unchanged(ce_net), pytest.raises(error, match=match):
        CALLS_WITH_T[call](ce_net, good_x(), t)


@pytest.mark.parametrize("bad", [1.5, -0.1])
@pytest.mark.parametrize("call", CALLS_WITH_T)
def test_a_binary_cross_entropy_target_outside_0_1_is_refused_and_changes_nothing(
    bce_net, unchanged, call, bad
):
    t = with_entry(np.full((B, 2), 0.5), (3, 1), bad)
    match = (r"targets for binary_cross_entropy must be probabilities in \[0, 1\], got "
             + re.escape(str(bad)) + r" at index \(3, 1\)")
    with unchanged(bce_net), pytest.raises(ValueError, match=match):
        CALLS_WITH_T[call](bce_net, good_x(), t)


def test_the_row_sum_message_shows_a_plain_number_not_a_numpy_repr(ce_net):
    t = with_entry(np.eye(3)[[0, 1, 2, 0, 1]], (2, 2), 0.9)
    with pytest.raises(ValueError, match=r"row 2 sums to 0\.9$"):
        ce_net.loss(good_x(), t)


def test_binary_cross_entropy_accepts_multi_label_rows_that_do_not_sum_to_one(bce_net):
    assert np.isfinite(bce_net.loss(good_x(), np.ones((B, 2))))


def test_cross_entropy_accepts_rows_summing_to_one_within_rounding(ce_net):
    t = np.full((B, 3), 0.1)
    t[:, 0] = 0.8  # 0.8 + 0.1 + 0.1 rounds to 1 - 1.1e-16
    assert np.isfinite(ce_net.loss(good_x(), t))


def test_integer_boolean_and_list_inputs_are_accepted_as_numbers(mse_net):
    x = np.arange(B * 4).reshape(B, 4)
    np.testing.assert_array_equal(mse_net.forward(x), mse_net.forward(x.astype(float)))
    np.testing.assert_array_equal(mse_net.forward(x > 3), mse_net.forward((x > 3) * 1.0))
    np.testing.assert_array_equal(mse_net.forward(x.tolist()), mse_net.forward(x))


# --- weights -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("call", CALLS)
def test_a_non_finite_weight_set_in_place_is_refused_by_every_entry_point(
    mse_net, unchanged, call, bad
):
    mse_net.weights[1][0, 1] = bad
    match = (r"weights\[1\] must be finite, found 1 NaN/Inf entries \(first at index \(0, 1\): "
             + re.escape(str(bad)) + r"\)")
    with unchanged(mse_net), pytest.raises(ValueError, match=match):
        CALLS[call](mse_net, good_x(), np.zeros((B, 2)))


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("edit", ["append", "pop"])
def test_a_weight_array_appended_or_removed_in_place_is_refused_by_every_entry_point(
    mse_net, unchanged, call, edit
):
    if edit == "append":
        mse_net.weights.append(np.zeros((3, 2)))
    else:
        mse_net.weights.pop()
    match = f"expected 2 weight arrays, got {3 if edit == 'append' else 1}"
    with unchanged(mse_net), pytest.raises(ValueError, match=match):
        CALLS[call](mse_net, good_x(), np.zeros((B, 2)))


@pytest.mark.parametrize("call", ["gradients", "step"])
def test_an_inf_weight_that_meets_only_zero_inputs_is_still_refused(mse_net, unchanged, call):
    # An Inf weight that the inputs multiply by 0 only is refused like any other: the weights
    # are checked themselves, not through what they make of V (a BLAS may skip zero factors).
    x = good_x()
    x[:, 2] = 0.0
    mse_net.weights[0][2, 1] = np.inf
    with unchanged(mse_net), pytest.raises(ValueError, match=r"weights\[0\] must be finite"):
        CALLS[call](mse_net, x, np.zeros((B, 2)))


@pytest.mark.parametrize("call", ["gradients", "step"])
def test_a_large_network_refuses_a_nan_weight(unchanged, call):
    net = Network([130, 128, 2], ["relu", "identity"], seed=0)  # 17,026 weights
    net.weights[1][5, 1] = np.nan
    x = np.linspace(-1.0, 1.0, 3 * 130).reshape(3, 130)
    with unchanged(net), pytest.raises(ValueError, match=r"weights\[1\] must be finite"):
        CALLS[call](net, x, np.zeros((3, 2)))


def test_a_read_only_weight_swapped_in_is_refused_by_step_before_any_update(mse_net, unchanged):
    frozen = mse_net.weights[1].copy()
    frozen.setflags(write=False)
    mse_net.weights[1] = frozen
    message = (r"weights\[1\] is read-only, but a step updates the weights in place; assign "
               r"net.weights = \[\.\.\.\] to give the network copies of its own")
    with unchanged(mse_net), pytest.raises(ValueError, match=message):
        mse_net.step(good_x(), np.zeros((B, 2)), 0.1)
    mse_net.gradients(good_x(), np.zeros((B, 2)))  # reading it is fine


@pytest.mark.parametrize("call", CALLS_WITH_T)
def test_when_x_and_t_are_both_bad_x_is_named(mse_net, unchanged, call):
    x, t = with_entry(good_x(), (0, 0), np.nan), with_entry(np.zeros((B, 2)), (0, 0), np.nan)
    with unchanged(mse_net), pytest.raises(ValueError, match="X must be finite"):
        CALLS_WITH_T[call](mse_net, x, t)


def test_a_weight_array_of_the_wrong_shape_swapped_in_place_is_refused(mse_net):
    mse_net.weights[0] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape \(5, 3\) \(n_in \+ 1 "
                                         r"bias row, n_out\), got \(4, 3\)"):
        mse_net.forward(good_x())


BAD_WEIGHTS = [
    pytest.param(lambda ws: [ws[0]], ValueError, r"expected 2 weight arrays, got 1", id="count"),
    pytest.param(lambda ws: [ws[0], ws[1][:-1]], ValueError,
                 r"weights\[1\] must have shape \(4, 2\) \(n_in \+ 1 bias row, n_out\), "
                 r"got \(3, 2\)", id="shape"),
    pytest.param(lambda ws: [ws[0].astype(int), ws[1]], TypeError,
                 r"weights\[0\] must be a float array, got dtype int64", id="int"),
    pytest.param(lambda ws: [ws[0], ws[1].astype(complex)], TypeError,
                 r"weights\[1\] must be a float array, got dtype complex128", id="complex"),
    pytest.param(lambda ws: [ws[0], with_entry(ws[1], (2, 0), np.nan)], ValueError,
                 r"weights\[1\] must be finite.*\(first at index \(2, 0\): nan\)", id="nan"),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD_WEIGHTS)
def test_bad_weights_are_refused_by_the_setter_and_change_nothing(
    mse_net, unchanged, make, error, match
):
    new = make([w.copy() for w in mse_net.weights])
    with unchanged(mse_net), pytest.raises(error, match=match):
        mse_net.weights = new


# --- construction ------------------------------------------------------------------------------


def test_an_unknown_activation_name_is_refused_with_every_valid_name():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; expected one of: ") as info:
        Network([2, 3, 1], ["swish", "identity"])
    for name in ACTIVATIONS:
        assert name in str(info.value)


def test_an_unknown_loss_name_is_refused_with_every_valid_name():
    with pytest.raises(ValueError, match=r"unknown loss 'l1'; expected one of: mse, "
                                         r"cross_entropy, binary_cross_entropy"):
        Network([2, 1], ["identity"], "l1")


@pytest.mark.parametrize(
    ("acts", "error", "match"),
    [
        (["tanh"], ValueError, r"expected 2 activations \(one per layer\), got 1: \['tanh'\]"),
        (["tanh"] * 3, ValueError, r"expected 2 activations \(one per layer\), got 3"),
        ("tanh", TypeError, r"activations must be a list of 2 names or Activation objects, one "
                            r"per layer, got a single str: 'tanh'"),
        (["tanh", 7], TypeError, r"a name \(str\) or an Activation, got int: 7"),
    ],
)
def test_a_wrong_activation_list_is_refused(acts, error, match):
    with pytest.raises(error, match=match):
        Network([2, 3, 1], acts)


@pytest.mark.parametrize(
    ("sizes", "error", "match"),
    [
        ([4, 0], ValueError, r"layer_sizes\[1\] must be a positive int, got 0"),
        ([4, -3], ValueError, r"layer_sizes\[1\] must be a positive int, got -3"),
        ([4, True], TypeError, r"layer_sizes\[1\] must be an int, got bool: True"),
        ([4, 2.0], TypeError, r"layer_sizes\[1\] must be an int, got float: 2\.0"),
        ([4.0, 2], TypeError, r"layer_sizes\[0\] must be an int, got float: 4\.0"),
        ([4], ValueError, r"layer_sizes needs at least 2 entries \(inputs and outputs\), "
                          r"got \[4\]"),
        ([], ValueError, r"layer_sizes needs at least 2 entries.*got \[\]"),
        ("42", TypeError, r"layer_sizes must be a list of ints like \[4, 8, 3\], got '42'"),
        (42, TypeError, r"layer_sizes must be a list of ints like \[4, 8, 3\], got 42"),
    ],
)
def test_bad_layer_sizes_are_refused(sizes, error, match):
    n_layers = len(sizes) - 1 if isinstance(sizes, list) and len(sizes) >= 2 else 1
    with pytest.raises(error, match=match):
        Network(sizes, ["tanh"] * n_layers)


@pytest.mark.parametrize(
    ("acts", "loss", "match"),
    [
        (["tanh", "tanh"], "cross_entropy",
         r"loss 'cross_entropy' needs the last activation to be 'softmax', got 'tanh'"),
        (["softmax", "identity"], "cross_entropy",
         r"needs the last activation to be 'softmax', got 'identity'"),
        (["tanh", "softmax"], "binary_cross_entropy",
         r"loss 'binary_cross_entropy' needs the last activation to be 'sigmoid', got 'softmax'"),
    ],
)
def test_a_cross_entropy_without_its_output_activation_is_refused(acts, loss, match):
    with pytest.raises(ValueError, match=match):
        Network([3, 4, 2], acts, loss)


@pytest.mark.parametrize("seed", [-1, True, 1.5, "0"])
def test_a_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match=r"seed must be a non-negative int or None, got "
                                         + re.escape(repr(seed))):
        Network([2, 1], ["tanh"], seed=seed)


# --- learning rate, epochs, batch size -----------------------------------------------------------

BAD_LR = [
    pytest.param(0, ValueError, r"lr must be a finite positive number, got 0\.0", id="zero"),
    pytest.param(-0.1, ValueError, r"lr must be a finite positive number, got -0\.1",
                 id="negative"),
    pytest.param(float("nan"), ValueError, r"lr must be a finite positive number, got nan",
                 id="nan"),
    pytest.param(float("inf"), ValueError, r"lr must be a finite positive number, got inf",
                 id="inf"),
    pytest.param("0.1", TypeError, r"lr must be a number, got str: '0\.1'", id="str"),
    pytest.param(True, TypeError, r"lr must be a number, got bool: True", id="bool"),
    pytest.param(None, TypeError, r"lr must be a number, got NoneType: None", id="none"),
]


@pytest.mark.parametrize(("lr", "error", "match"), BAD_LR)
def test_a_bad_learning_rate_is_refused_by_step_and_changes_nothing(
    mse_net, unchanged, lr, error, match
):
    with unchanged(mse_net), pytest.raises(error, match=match):
        mse_net.step(good_x(), np.zeros((B, 2)), lr)


@pytest.mark.parametrize(("lr", "error", "match"), BAD_LR)
def test_a_bad_learning_rate_is_refused_by_fit_and_changes_nothing(
    mse_net, unchanged, lr, error, match
):
    with unchanged(mse_net), pytest.raises(error, match=match):
        mse_net.fit(good_x(), np.zeros((B, 2)), epochs=1, lr=lr)


@pytest.mark.parametrize("what", ["epochs", "batch_size"])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_bad_epochs_or_batch_size_are_refused_by_fit_and_change_nothing(
    mse_net, unchanged, what, bad
):
    kwargs = {"epochs": 2, "lr": 0.1, "batch_size": 2, what: bad}
    match = rf"{what} must be a positive int, got {re.escape(repr(bad))}"
    with unchanged(mse_net), pytest.raises(ValueError, match=match):
        mse_net.fit(good_x(), np.zeros((B, 2)), **kwargs)


def test_no_call_modifies_the_inputs_or_targets_it_was_given(mse_net, rng):
    x, t = rng.normal(size=(B, 2, 2)), rng.normal(size=(B, 2))
    x0, t0 = x.copy(), t.copy()
    mse_net.forward(x)
    mse_net.gradients(x, t)
    mse_net.step(x, t, 0.1)
    mse_net.fit(x, t, epochs=2, lr=0.1, batch_size=2, seed=0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)


# --- what each check passes on, and the exact messages -------------------------------------------


def test_every_float_dtype_is_accepted_as_its_float64_value(mse_net):
    x = good_x()
    for dtype in (np.float16, np.float32, np.longdouble):
        np.testing.assert_array_equal(mse_net.forward(x.astype(dtype)),
                                      mse_net.forward(x.astype(dtype).astype(np.float64)))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.float64(1.0), "X must have a batch axis first: expected shape (B, ...) with 4 values "
                          "per sample, got shape ()"),
        (np.full((B, 4), "a"), "X must hold real numbers (float or int), got dtype <U1"),
        (with_entry(good_x(), (1, 2), np.nan),
         "X must be finite, found 1 NaN/Inf entries (first at index (1, 2): nan)"),
    ],
)
def test_the_message_about_x_is_exactly_this(mse_net, x, message):
    with pytest.raises((TypeError, ValueError)) as info:
        mse_net.forward(x)
    assert str(info.value) == message


def test_the_message_about_float_class_labels_is_exactly_this(ce_net):
    with pytest.raises(TypeError) as info:
        ce_net.loss(good_x(), np.array([0.0, 1.0, 2.0, 1.0, 0.0]))
    assert str(info.value) == ("1-D targets for cross_entropy must be integer class labels, got "
                               "dtype float64; pass one-hot or probability rows of shape (5, 3) "
                               "for soft targets")


def test_integer_class_labels_are_the_one_hot_rows_they_stand_for(ce_net):
    labels = np.array([2, 0, 1, 1, 0])
    onehot = np.eye(3)[labels]
    assert ce_net.loss(good_x(), labels) == ce_net.loss(good_x(), onehot)
    e1, dw1, dx1 = ce_net.gradients(good_x(), labels)
    e2, dw2, dx2 = ce_net.gradients(good_x(), onehot)
    assert e1 == e2 and dx1.tobytes() == dx2.tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(dw1, dw2))


def test_mse_and_binary_cross_entropy_accept_integer_and_list_targets_as_given(mse_net, bce_net):
    # Not float64 arrays, so each goes through the full target check: mse targets may lie
    # anywhere and bce rows need not sum to 1 (multi-label).
    t = np.array([[3, -2], [0, 7], [1, 1], [-5, 0], [2, 2]])
    assert mse_net.loss(good_x(), t) == mse_net.loss(good_x(), t.astype(float))
    assert mse_net.loss(good_x(), t.tolist()) == mse_net.loss(good_x(), t.astype(float))
    multi_label = np.array([[1, 1], [0, 0], [1, 0], [1, 1], [0, 1]])
    assert bce_net.loss(good_x(), multi_label) == bce_net.loss(good_x(), multi_label * 1.0)


@pytest.mark.parametrize("bad", [1.5, -0.5])
def test_a_target_outside_0_1_is_named_at_its_own_index_after_zeros_and_ones(bce_net, bad):
    t = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, bad], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"got " + re.escape(str(bad)) + r" at index \(3, 1\)$"):
        bce_net.loss(good_x(), t)

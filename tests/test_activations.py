"""Known values of every activation and of its derivative.

Every expected value comes from a closed form worked out by hand or from Python's ``math``
module evaluating the textbook formula, never from ``reference`` itself.
"""

import math

import numpy as np
import pytest

from reference import ACTIVATIONS, Activation, Softmax, get_activation

LOG2, LOG3 = math.log(2.0), math.log(3.0)
GELU_C, GELU_K = math.sqrt(2.0 / math.pi), 0.044715

# Independent scalar formulas, written from the textbook definitions with the math module.
# Derivatives are differentiated by hand and written in a different form from the reference's
# (e.g. tanh' = sech^2 via cosh rather than 1 - tanh^2).


def _gelu_u(x):
    return GELU_C * (x + GELU_K * x**3)


FORMULAS = {
    "identity": (lambda x: x, lambda x: 1.0),
    "sigmoid": (
        lambda x: 1.0 / (1.0 + math.exp(-x)),
        lambda x: math.exp(-x) / (1.0 + math.exp(-x)) ** 2,
    ),
    "tanh": (math.tanh, lambda x: 1.0 / math.cosh(x) ** 2),
    "relu": (lambda x: x if x > 0 else 0.0, lambda x: 1.0 if x > 0 else 0.0),
    "leaky_relu": (lambda x: x if x > 0 else 0.01 * x, lambda x: 1.0 if x > 0 else 0.01),
    "elu": (lambda x: x if x > 0 else math.expm1(x), lambda x: 1.0 if x > 0 else math.exp(x)),
    "softplus": (lambda x: math.log1p(math.exp(x)), lambda x: 1.0 / (1.0 + math.exp(-x))),
    "silu": (
        lambda x: x / (1.0 + math.exp(-x)),
        lambda x: (1.0 + math.exp(-x) + x * math.exp(-x)) / (1.0 + math.exp(-x)) ** 2,
    ),
    "gelu": (
        lambda x: 0.5 * x * (1.0 + math.tanh(_gelu_u(x))),
        lambda x: 0.5 * (1.0 + math.tanh(_gelu_u(x)))
        + 0.5 * x * GELU_C * (1.0 + 3.0 * GELU_K * x**2) / math.cosh(_gelu_u(x)) ** 2,
    ),
}
ELEMENTWISE = sorted(FORMULAS)
POINTS = np.array([[-3.0, -1.0, -0.5, -1e-3, 0.0], [1e-3, 0.5, 1.0, 2.5, 3.0]])

# Two float64 evaluations of one function by different formulas differ by a few ulp times the
# condition number; gelu' loses ~2 digits to cancellation near x = -3 (measured 2e-14 there,
# <5e-16 elsewhere). rtol 1e-12 leaves a 50x margin; atol 1e-15 covers exact zeros.
RTOL, ATOL = 1e-12, 1e-15

# Inputs of +-1000 must not overflow, divide by zero or produce NaN. Underflow is allowed:
# sigmoid(-1000) = e^-1000 ~ 5e-435 is below the smallest float64, so rounding it to 0 is the
# correct result and cannot be avoided (numpy ignores underflow by default, too).
STRICT = {"over": "raise", "divide": "raise", "invalid": "raise", "under": "ignore"}


def test_the_built_in_activation_names_are_exactly_the_documented_ten():
    assert set(ACTIVATIONS) == set(ELEMENTWISE) | {"softmax"}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_elementwise_activation_matches_its_textbook_formula(name):
    f, _ = FORMULAS[name]
    expected = np.vectorize(f)(POINTS)
    got = ACTIVATIONS[name](POINTS)
    assert got.shape == POINTS.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_derivative_matches_its_hand_derived_formula(name):
    _, df = FORMULAS[name]
    expected = np.vectorize(df, otypes=[float])(POINTS)
    got = ACTIVATIONS[name].df(POINTS)
    assert got.shape == POINTS.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


# (name, v, f(v), f'(v)), each worked out on paper. Exact in real arithmetic; the comparison
# allows a few ulp of float64 rounding (rtol 1e-14 ~ 50 ulp).
HAND_VALUES = [
    ("identity", -2.5, -2.5, 1.0),
    ("sigmoid", 0.0, 0.5, 0.25),
    ("sigmoid", LOG3, 3 / 4, 3 / 16),  # e^-v = 1/3: 1/(1+1/3) = 3/4; s(1-s) = 3/16
    ("sigmoid", -LOG3, 1 / 4, 3 / 16),
    ("tanh", 0.0, 0.0, 1.0),
    ("tanh", LOG2, 3 / 5, 16 / 25),  # (4-1)/(4+1); 1 - 9/25
    ("relu", -2.0, 0.0, 0.0),
    ("relu", 3.0, 3.0, 1.0),
    ("relu", 0.0, 0.0, 0.0),  # kink convention: relu'(0) = 0
    ("leaky_relu", -2.0, -0.02, 0.01),
    ("leaky_relu", 3.0, 3.0, 1.0),
    ("leaky_relu", 0.0, 0.0, 0.01),  # kink convention: leaky_relu'(0) = 0.01
    ("elu", -LOG2, -1 / 2, 1 / 2),  # e^-log2 - 1 = -1/2; derivative e^v = 1/2
    ("elu", 2.0, 2.0, 1.0),
    ("elu", 0.0, 0.0, 1.0),  # alpha = 1: both one-sided slopes are 1
    ("softplus", 0.0, LOG2, 0.5),
    ("softplus", LOG3, math.log(4.0), 3 / 4),  # log(1 + 3); sigmoid(log 3)
    ("silu", 0.0, 0.0, 0.5),
    ("silu", LOG3, LOG3 * 3 / 4, 3 / 4 + LOG3 * 3 / 16),  # v s(v); s + v s (1-s)
    ("gelu", 0.0, 0.0, 0.5),
]


@pytest.mark.parametrize(("name", "v", "y", "dy"), HAND_VALUES)
def test_activations_and_derivatives_take_their_hand_computed_values(name, v, y, dy):
    act = ACTIVATIONS[name]
    x = np.array([[v]])
    np.testing.assert_allclose(act(x), [[y]], rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(act.df(x), [[dy]], rtol=1e-14, atol=1e-300)


def test_gelu_is_the_tanh_approximation_not_the_erf_form():
    # At v = 1: tanh form 0.5 (1 + tanh(c (1 + k))) = 0.841192, erf form 0.841345; they
    # differ by 1.5e-4, far above the ~1e-16 rounding of either.
    tanh_form = 0.5 * (1.0 + math.tanh(GELU_C * (1.0 + GELU_K)))
    erf_form = 0.5 * (1.0 + math.erf(1.0 / math.sqrt(2.0)))
    got = ACTIVATIONS["gelu"](np.array([[1.0]]))[0, 0]
    assert got == pytest.approx(tanh_form, rel=1e-14)  # same formula: a few ulp
    assert abs(got - erf_form) > 1e-4


def test_elementwise_backward_multiplies_the_upstream_gradient_by_the_derivative_at_v():
    # dE/dV = G * act'(V), act' taken at V (not at Y = tanh(V)): erratum 2.
    v = np.array([[0.3, -1.2], [2.0, 0.0]])
    g = np.array([[1.0, -2.0], [0.5, 3.0]])
    y = np.tanh(v)
    expected = g / np.cosh(v) ** 2
    got = ACTIVATIONS["tanh"].backward(v, y, g)
    np.testing.assert_allclose(got, expected, rtol=1e-14)  # a few ulp per entry


# --- softmax ----------------------------------------------------------------------------------


def _same_bits(a, b):
    """Equal bit for bit, except that any NaN equals any NaN (payloads may differ)."""
    both_nan = np.isnan(a) & np.isnan(b)
    return a.shape == b.shape and np.array_equal(
        np.where(both_nan, 0.0, a).view(np.int64), np.where(both_nan, 0.0, b).view(np.int64))


# Signed zeros, the kink, subnormals, overflow territory, infinities, NaN, and a random spread.
SPECIAL = np.concatenate([
    [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1.0, -1.0, 36.0, -36.0, 709.0, -745.0,
     1000.0, -1000.0, np.inf, -np.inf, np.nan],
    np.random.default_rng(7).standard_normal(2000) * 20.0,
])


def test_sigmoid_and_relu_are_quiet_at_special_values_and_sigmoid_d_is_s_v_times_s_minus_v():
    # No warning at +-1000, inf or NaN; sigmoid' is s(v) s(-v) in every bit (the identity its
    # comment states, free of the cancellation in 1 - s); relu(-0.0) is +0.0, as where gives it.
    sigmoid, relu = ACTIVATIONS["sigmoid"], ACTIVATIONS["relu"]
    v = SPECIAL.reshape(1, -1)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s, ds, r = sigmoid(v), sigmoid.df(v), relu(v)
        product = s * sigmoid(-v)
    assert _same_bits(ds, product)
    assert not np.signbit(r).any()


@pytest.mark.parametrize("name", ["sigmoid", "relu"])
@pytest.mark.parametrize("v", [np.float64(-2.0), np.array(-1.5), np.array([-2, 0, 3]),
                               np.array([[-1.0, 2.0]], dtype=np.float32)])
def test_activations_with_fast_paths_take_numpy_scalars_0d_int_and_float32_arrays(name, v):
    act = ACTIVATIONS[name]
    f, df = FORMULAS[name]
    y, dy = act(v), act.df(v)
    flat = np.ravel(np.asarray(v, dtype=np.float64))
    # float32 rounds to ~6e-8; the float64 cases agree with the formulas to a few ulps
    rtol = 1e-6 if np.asarray(v).dtype == np.float32 else 1e-14
    np.testing.assert_allclose(np.ravel(y), [f(x) for x in flat], rtol=rtol)
    np.testing.assert_allclose(np.ravel(dy), [df(x) for x in flat], rtol=rtol)
    assert np.shape(y) == np.shape(v) and np.shape(dy) == np.shape(v)
    if np.asarray(v).dtype == np.float32:
        assert y.dtype == dy.dtype == np.float32  # the dtype asked for is kept


def test_softmax_of_zero_and_log_two_is_one_third_and_two_thirds():
    v = np.array([[0.0, LOG2], [LOG2, 0.0]])
    # e^0 : e^log2 = 1 : 2; a few ulp of rounding in exp, sum and division.
    np.testing.assert_allclose(ACTIVATIONS["softmax"](v), [[1 / 3, 2 / 3], [2 / 3, 1 / 3]],
                               rtol=1e-14)


def test_softmax_is_unchanged_by_adding_a_constant_and_stable_at_1000():
    v = np.array([[1000.0, 1000.0 + LOG2, 1000.0]])
    with np.errstate(**STRICT):
        y = ACTIVATIONS["softmax"](v)
    # Shifting by 1000 loses log2's bits below 1000's ulp (1.1e-13): relative ~1e-13 in y.
    np.testing.assert_allclose(y, [[1 / 4, 1 / 2, 1 / 4]], rtol=1e-12)


def test_softmax_rows_are_normalised_independently():
    v = np.array([[0.0, 0.0], [0.0, LOG3]])
    y = ACTIVATIONS["softmax"](v)
    np.testing.assert_allclose(y, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-14)  # a few ulp


def test_softmax_is_not_elementwise_and_has_no_elementwise_derivative():
    act = get_activation("softmax")
    assert isinstance(act, Softmax)
    assert act.elementwise is False
    assert act.df is None


def test_softmax_backward_is_the_vector_jacobian_product_with_diag_y_minus_y_y_transposed(rng):
    v = rng.normal(size=(4, 5))
    g = rng.normal(size=(4, 5))
    e = np.exp(v)
    y = e / e.sum(axis=1, keepdims=True)
    expected = np.empty_like(g)
    for b in range(v.shape[0]):
        jacobian = np.diag(y[b]) - np.outer(y[b], y[b])  # J_ij = dy_i/dv_j
        expected[b] = g[b] @ jacobian
    got = ACTIVATIONS["softmax"].backward(v, y, g)
    # Two summation orders of 5 products of O(1) numbers: ~1e-16 absolute each.
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


# --- +-1000: no warnings, the right limits ------------------------------------------------------

BIG = np.array([[-1000.0, 1000.0]])
LIMITS = {  # (f(-1000), f(1000)), (f'(-1000), f'(1000)), by hand
    "identity": ((-1000.0, 1000.0), (1.0, 1.0)),
    "sigmoid": ((0.0, 1.0), (0.0, 0.0)),
    "tanh": ((-1.0, 1.0), (0.0, 0.0)),
    "relu": ((0.0, 1000.0), (0.0, 1.0)),
    "leaky_relu": ((-10.0, 1000.0), (0.01, 1.0)),
    "elu": ((-1.0, 1000.0), (0.0, 1.0)),
    "softplus": ((0.0, 1000.0), (0.0, 1.0)),
    "silu": ((0.0, 1000.0), (0.0, 1.0)),
    "gelu": ((0.0, 1000.0), (0.0, 1.0)),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_activation_and_derivative_is_finite_and_at_its_limit_at_plus_minus_1000(name):
    act = ACTIVATIONS[name]
    with np.errstate(**STRICT):
        y = act(BIG)
        dy = act.df(BIG)
        dv = act.backward(BIG, y, np.ones_like(BIG))
    (y_lo, y_hi), (d_lo, d_hi) = LIMITS[name]
    # The true values differ from the limits by ~e^-1000 (far below one ulp) or are exact.
    np.testing.assert_array_equal(y, [[y_lo, y_hi]])
    np.testing.assert_array_equal(dy, [[d_lo, d_hi]])
    np.testing.assert_array_equal(dv, [[d_lo, d_hi]])


def test_softmax_and_its_backward_are_finite_and_at_their_limit_at_plus_minus_1000():
    v = np.array([[-1000.0, 1000.0], [1000.0, 1000.0]])
    with np.errstate(**STRICT):
        y = ACTIVATIONS["softmax"](v)
        dv = ACTIVATIONS["softmax"].backward(v, y, np.array([[1.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_array_equal(y, [[0.0, 1.0], [0.5, 0.5]])  # e^-2000 underflows to 0
    # y (g - g.y): row 0 = [0, 1] * ([1, 0] - 0) = [0, 0]; row 1 = 0.5 ([1, 0] - 0.5).
    np.testing.assert_array_equal(dv, [[0.0, 0.0], [0.25, -0.25]])


# --- custom activations ------------------------------------------------------------------------


def test_a_custom_activation_is_returned_as_is_by_get_activation():
    cube = Activation("cube", lambda v: v**3, lambda v: 3 * v**2)
    assert get_activation(cube) is cube
    np.testing.assert_array_equal(cube(np.array([[2.0]])), [[8.0]])
    np.testing.assert_array_equal(cube.backward(np.array([[2.0]]), None, np.array([[0.5]])),
                                  [[6.0]])  # 0.5 * 3 * 2^2


def test_a_custom_activation_without_a_derivative_is_refused():
    with pytest.raises(TypeError, match="'nodf' has no derivative"):
        get_activation(Activation("nodf", np.tanh, None))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "", "f": np.tanh, "df": np.tanh}, "name must be a non-empty str, got ''"),
        ({"name": 3, "f": np.tanh, "df": np.tanh}, "name must be a non-empty str, got 3"),
        ({"name": "x", "f": 1.0, "df": np.tanh}, "f must be callable, got 1.0"),
        ({"name": "x", "f": np.tanh, "df": "d"}, "df must be callable, got 'd'"),
    ],
)
def test_a_malformed_custom_activation_is_refused_with_a_message(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Activation(**kwargs)


def test_get_activation_lists_the_valid_names_for_an_unknown_one():
    with pytest.raises(ValueError, match="unknown activation 'swish'") as info:
        get_activation("swish")
    for name in ACTIVATIONS:
        assert name in str(info.value)


def test_get_activation_refuses_something_that_is_neither_a_name_nor_an_activation():
    with pytest.raises(TypeError, match="name \\(str\\) or an Activation, got int: 3"):
        get_activation(3)


# --- second derivatives ------------------------------------------------------------------------

# act'' from the textbook definitions, differentiated by hand once more and written in other
# forms than the reference's (sigmoid'' = s(1-s)(1-2s) with s = 1/(1+e^-x), tanh'' via cosh,
# gelu'' expanded from 0.5 x (1 + tanh u)).


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _gelu_d2(x):
    u, du, d2u = _gelu_u(x), GELU_C * (1.0 + 3.0 * GELU_K * x**2), 6.0 * GELU_C * GELU_K * x
    sech2 = 1.0 / math.cosh(u) ** 2
    # d/dx [0.5 (1 + tanh u) + 0.5 x sech^2(u) u'] = sech^2 u' + 0.5 x (sech^2)' u' + 0.5 x
    # sech^2 u'', with (sech^2 u)' = -2 tanh(u) sech^2(u) u'.
    return sech2 * du + 0.5 * x * (-2.0 * math.tanh(u) * sech2 * du * du + sech2 * d2u)


SECOND = {
    "identity": lambda x: 0.0,
    "sigmoid": lambda x: _sig(x) * (1.0 - _sig(x)) * (1.0 - 2.0 * _sig(x)),
    "tanh": lambda x: -2.0 * math.sinh(x) / math.cosh(x) ** 3,
    "relu": lambda x: 0.0,
    "leaky_relu": lambda x: 0.0,
    "elu": lambda x: 0.0 if x > 0 else math.exp(x),
    "softplus": lambda x: math.exp(-x) / (1.0 + math.exp(-x)) ** 2,
    "silu": lambda x: _sig(x) * (1 - _sig(x)) * (2.0 + x * (1.0 - 2.0 * _sig(x))),
    "gelu": _gelu_d2,
}


def test_every_built_in_elementwise_activation_carries_a_second_derivative():
    assert all(ACTIVATIONS[name].d2f is not None for name in ELEMENTWISE)
    assert ACTIVATIONS["softmax"].d2f is None  # not elementwise: second_order.py has its R-op


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_second_derivative_matches_its_hand_derived_formula(name):
    expected = np.vectorize(SECOND[name], otypes=[float])(POINTS)
    got = ACTIVATIONS[name].d2f(POINTS)
    assert got.shape == POINTS.shape
    # sigmoid'' near 0 is s(1-s)(1-2s): 1 - 2s cancels to ~5e-4 at x = 1e-3, so the textbook
    # form is off by 1.3e-13 there (measured against 40-digit mpmath; the reference's tanh(x/2)
    # form by 2e-16): rtol 1e-12 leaves 8x.
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


# (name, v, f''(v)) worked out on paper.
HAND_SECOND = [
    ("sigmoid", 0.0, 0.0),  # 1 - 2s(0) = 0
    ("sigmoid", LOG3, -3 / 32),  # s = 3/4: (3/16)(1 - 3/2)
    ("sigmoid", -LOG3, 3 / 32),
    ("tanh", 0.0, 0.0),
    ("tanh", LOG2, -2 * (3 / 5) * (16 / 25)),  # -2 t (1 - t^2), t = 3/5
    ("elu", -LOG2, 1 / 2),  # e^v
    ("elu", 0.0, 1.0),  # the left derivative of elu' at its kink (elu'' jumps from 1 to 0)
    ("relu", 0.0, 0.0),
    ("softplus", LOG3, 3 / 16),  # sigmoid'
    ("silu", 0.0, 0.5),  # s'(0) (2 + 0) = 1/4 * 2
    ("gelu", 0.0, 2 * GELU_C * 0.5),  # sech^2(0) u'(0) = c; the other terms vanish at 0
]


@pytest.mark.parametrize(("name", "v", "d2y"), HAND_SECOND)
def test_second_derivatives_take_their_hand_computed_values(name, v, d2y):
    np.testing.assert_allclose(ACTIVATIONS[name].d2f(np.array([[v]])), [[d2y]], rtol=1e-14,
                               atol=1e-300)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_second_derivative_is_quiet_and_at_its_limit_at_plus_minus_1000(name):
    with np.errstate(**STRICT):
        d2y = ACTIVATIONS[name].d2f(BIG)
    # Every built-in is linear (or flat) for |v| >> 1 but elu on the left, whose e^-1000 is 0.
    np.testing.assert_array_equal(np.abs(d2y), [[0.0, 0.0]])


def test_a_second_derivative_that_is_not_callable_is_refused_naming_it():
    with pytest.raises(TypeError, match="'x': d2f must be callable, got 2"):
        Activation("x", np.tanh, np.tanh, d2f=2)

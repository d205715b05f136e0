"""``check_hvp`` and ``check_double_backward``: second derivatives in closed form, bugs planted."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from oracle import check_double_backward, check_hvp  # noqa: E402

A = np.random.default_rng(1).normal(size=(4, 4))
A = A + A.T
X = np.random.default_rng(2).normal(size=4)


def f_jax(z):
    return 0.5 * z @ jnp.asarray(A) @ z + jnp.sum(jnp.tanh(z))


def f_numpy(z):
    return float(0.5 * z @ A @ z + np.sum(np.tanh(z)))


def hvp(z, v):  # tanh'' = -2 tanh (1 - tanh^2)
    t = np.tanh(z)
    return A @ v - 2 * t * (1 - t**2) * v


def hvp_act_prime_for_second(z, v):  # tanh' where tanh'' belongs
    return A @ v + (1 - np.tanh(z) ** 2) * v


@pytest.mark.parametrize("f, jax", [(f_jax, True), (f_numpy, True), (f_numpy, False)])
def test_a_right_hvp_passes_and_a_wrong_one_fails(f, jax):
    right = check_hvp(f, hvp, X, jax=jax)
    assert right.ok and right.count("doubt") == 0, str(right)
    wrong = check_hvp(f, hvp_act_prime_for_second, X, jax=jax)
    assert not wrong.ok and wrong.rows[0].wrong == 4, str(wrong)
    if jax is False:
        assert "second differences alone" in right.headline


def test_the_second_derivative_of_relu_squared_jumps_at_zero_and_is_judged_as_a_kink():
    def f(z):
        return jnp.sum(jnp.maximum(z, 0) ** 2)

    x = np.array([0.0, 0.5, -0.3])
    for hand in (lambda z, v: 2 * (z > 0) * v, lambda z, v: 2 * (z >= 0) * v):
        report = check_hvp(f, hand, x)
        assert report.ok and report.rows[0].kinks == 1, str(report)
    report = check_hvp(f, lambda z, v: 3 * (z >= 0) * v, x)
    assert not report.ok and sorted(report.wrong_entries("x")) == [(0,), (1,)], str(report)


def _dense_forward(x, w):
    return np.tanh(x @ w)


def _dense_backward(d, x, w):
    y = np.tanh(x @ w)
    dv = d * (1 - y**2)
    return dv @ w.T, x.T @ dv


def _double_backward(dd, d, x, w, drop_second_derivative=False):
    """VJP of (dout, x, w) -> (dv w^T, x^T dv), dv = dout * tanh'(x w)."""
    ddx, ddw = dd
    y = np.tanh(x @ w)
    s = 1 - y**2
    g_dv = ddx @ w + x @ ddw  # <dd, outputs> differentiated with respect to dv
    d_v = 0 * g_dv if drop_second_derivative else g_dv * d * (-2 * y * s)  # through tanh'
    return g_dv * s, d_v @ w.T + (d * s) @ ddw.T, x.T @ d_v + ddx.T @ (d * s)


def test_a_dense_tanh_double_backward_is_checked_against_jax_second_derivative():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))

    def forward(x, w):
        return jnp.tanh(x @ w)

    right = check_double_backward(forward, _dense_backward, _double_backward, (x, w))
    assert right.ok and [r.input for r in right.rows] == ["dout", "x", "w"], str(right)
    dropped = check_double_backward(
        forward, _dense_backward,
        lambda *a: _double_backward(*a, drop_second_derivative=True), (x, w))
    assert not dropped.ok and {r.input for r in dropped.failures} == {"x", "w"}, str(dropped)


def test_an_f_that_returns_a_python_float_is_judged_by_second_differences_and_says_why():
    # float() of a JAX tracer cannot be taken: JAX is dropped, the headline and a note say so.
    report = check_hvp(f_numpy, hvp, X)
    assert report.ok and "second differences alone" in report.headline, str(report)
    assert any("JAX could not differentiate f" in n for n in report.notes), report.notes


def _quadratic(z):
    return jnp.sum(z**2)


def _two_v(z, v):
    return 2 * v


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"f": 3}, TypeError, "f must be a callable, got int: 3"),
    ({"hvp": None}, TypeError, "hvp must be a callable, got NoneType"),
    ({"x": np.array([1, 2])}, TypeError, "x must be a float array, got dtype int64"),
    ({"x": np.array([1.0, np.nan])}, ValueError, r"x must be finite, found 1 NaN/Inf entries "
                                                 r"\(first at index \(1,\): nan\)"),
    ({"v": np.ones(3)}, ValueError, r"v must have x's shape \(2,\), got shape \(3,\)"),
    ({"v": np.array([np.inf, 1.0])}, ValueError, "v must be finite"),
    ({"jax": "yes"}, TypeError, "jax must be True or False, got str: 'yes'"),
    ({"directions": 0}, ValueError, "directions must be a positive int, got 0"),
    ({"directions": 2.5}, TypeError, "directions must be a positive int, got float: 2.5"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
    ({"strict": "no"}, TypeError, "strict must be True or False, got str: 'no'"),
    ({"f": lambda z: 1 / 0}, ValueError, "f raised ZeroDivisionError at x"),
    ({"hvp": lambda z, v: v[7]}, ValueError, "hvp raised IndexError at"),
    ({"hvp": lambda z, v: np.ones(5)}, ValueError, r"hvp\(x, v\) must have x's shape \(2,\), "
                                                    r"got \(5,\)"),
])
def test_bad_arguments_of_check_hvp_are_refused_naming_the_argument(kwargs, error, match):
    x = np.array([0.5, -1.0])
    call = {"f": _quadratic, "hvp": _two_v, "x": x, **kwargs}
    before = call["x"].copy()
    with pytest.raises(error, match=match):
        check_hvp(call.pop("f"), call.pop("hvp"), call.pop("x"), **call)
    np.testing.assert_array_equal(x, np.array([0.5, -1.0]))  # a refused call changes nothing
    assert before.shape == call.get("x", before).shape


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((None, _dense_backward, _double_backward), {}, TypeError, "forward must be a callable"),
    ((np.tanh, 1, _double_backward), {}, TypeError, "backward must be a callable, got int"),
    ((np.tanh, _dense_backward, "x"), {}, TypeError, "double_backward must be a callable"),
    ((np.tanh, _dense_backward, _double_backward), {"inputs": {"x": np.ones(2)}}, TypeError,
     "inputs must be a tuple of arrays for check_double_backward"),
    ((np.tanh, _dense_backward, _double_backward), {"inputs": np.ones(2)}, TypeError,
     "inputs must be a tuple of arrays, got ndarray"),
    ((_dense_forward, _dense_backward, _double_backward), {"seed": -2}, ValueError,
     "seed must be a non-negative int, got -2"),
    ((_dense_forward, _dense_backward, _double_backward), {"jax": "sometimes"}, ValueError,
     "jax must be True, False or 'direct', got 'sometimes'"),
])
def test_bad_arguments_of_check_double_backward_are_refused_naming_the_argument(
        args, kwargs, error, match):
    kwargs = {"inputs": (np.ones((2, 3)), np.ones((3, 2))), **kwargs}
    with pytest.raises(error, match=match):
        check_double_backward(*args, kwargs.pop("inputs"), **kwargs)

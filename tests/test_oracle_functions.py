"""The oracle on single functions: ``check_gradient``, ``check_activation``, ``check_loss``.

Right derivatives must pass with no false alarm; wrong ones (down to one entry off by 1e-6
relative) must fail at the right index; kinks are reported as kinks; an unreliable source of
truth is reported as doubt, never blamed on the user; bad input gets a clear error.
Every expected value here is computed from a closed form in this file, never by the oracle.
"""

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from oracle import check_activation, check_gradient, check_loss  # noqa: E402
from oracle.function_check import activation_points  # noqa: E402
from reference import ACTIVATIONS, LOSSES, Activation, Loss, Softmax  # noqa: E402
from reference.activations import _sigmoid, _softmax  # noqa: E402
from reference.array_namespace import namespace_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# A smooth test function with a known gradient: f(x) = 1/2 x.A x + sum(sin x) on a (2, 3) x.
_A = np.random.default_rng(7).normal(size=(6, 6))
_A = _A + _A.T
X0 = np.random.default_rng(8).normal(size=(2, 3))


def f_smooth(x):
    z = x.reshape(-1)
    return 0.5 * z @ jnp.asarray(_A) @ z + jnp.sum(jnp.sin(z))


def grad_smooth(x):
    z = np.asarray(x, dtype=np.float64).reshape(-1)
    return (_A @ z + np.cos(z)).reshape(np.shape(x))


def f_numpy_only(x):
    """The same function written with numpy calls JAX cannot trace (np.asarray of a tracer)."""
    z = np.asarray(x, dtype=np.float64).reshape(-1)
    return float(0.5 * z @ _A @ z + np.sum(np.sin(z)))


def statuses(report):
    return [r.status for r in report.rows]


# --- right gradients pass ---------------------------------------------------------------------


def test_a_right_gradient_passes_with_every_fd_mode():
    for fd in ("auto", "exhaustive", "directional"):
        report = check_gradient(f_smooth, grad_smooth, X0, fd=fd)
        assert report.ok, (fd, str(report))
        assert statuses(report) == ["pass"], (fd, str(report))
        assert report.rows[0].sources == ("jax", "fd")


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_builtin_activation_passes_check_activation(name):
    report = check_activation(name)
    assert report.ok, str(report)
    assert report.count("FAIL") == 0 and report.count("doubt") == 0, str(report)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_kinked_builtins_report_their_kink_at_zero_as_a_kink(name):
    report = check_activation(name)
    derivative = report.rows[0]
    assert derivative.status == "kink" and derivative.kinks >= 1, str(report)
    assert report.ok


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_builtin_loss_passes_check_loss(name):
    report = check_loss(name)
    assert report.ok, str(report)
    assert set(statuses(report)) == {"pass"}, str(report)
    # The fused losses also check dE/dV of loss + output activation: two rows, else one.
    assert len(report.rows) == (2 if LOSSES[name].fused else 1)


# --- wrong gradients fail, at the right place ---------------------------------------------------


def test_one_entry_wrong_by_1e_6_relative_is_caught_at_its_index():
    index = (1, 2)
    right = grad_smooth(X0)
    assert abs(right[index]) > 0.1 * np.max(np.abs(right))  # a typical entry, not a tiny one

    def grad_wrong(x):
        g = grad_smooth(x)
        g[index] *= 1 + 1e-6
        return g

    assert check_gradient(f_smooth, grad_smooth, X0).ok  # the same check passes when right
    report = check_gradient(f_smooth, grad_wrong, X0)
    assert not report.ok
    row = report.rows[0]
    assert row.status == "FAIL" and row.index == index
    assert row.got == grad_wrong(X0)[index]
    # expected is JAX's value of the closed form: equal to a few ulps (1e-12 leaves 1e3 spare).
    assert math.isclose(row.expected, right[index], rel_tol=1e-12)
    assert report.headline.startswith("FAIL: gradient")


def test_one_entry_wrong_by_1e_6_is_caught_by_finite_differences_alone():
    def grad_wrong(x):
        g = grad_smooth(x)
        g[0, 1] *= 1 + 1e-6
        return g

    report = check_gradient(f_numpy_only, grad_wrong, X0)
    assert not report.ok and report.rows[0].index == (0, 1)
    assert report.rows[0].sources == ("fd",)
    assert any("finite differences alone" in n for n in report.notes)


def test_a_numpy_only_function_is_checked_by_finite_differences_and_says_so():
    report = check_gradient(f_numpy_only, grad_smooth, X0)
    assert report.ok, str(report)
    assert report.rows[0].sources == ("fd",)
    assert any("JAX could not trace f" in n for n in report.notes), report.notes
    assert "finite differences alone" in str(report)


def test_an_activation_derivative_off_by_1e_6_relative_at_one_point_is_caught_there():
    tanh = ACTIVATIONS["tanh"]
    point = 0.5  # one of check_activation's grid points (-6 .. 6 in steps of 0.25)

    def df(v):
        return (1.0 - np.tanh(v) ** 2) * np.where(v == point, 1 + 1e-6, 1.0)

    report = check_activation(Activation("tanh_off", tanh.f, df))
    assert not report.ok
    row = report.rows[0]
    assert (row.term, row.status, row.at) == ("derivative", "FAIL", point)
    true = 1.0 - math.tanh(point) ** 2
    assert math.isclose(row.expected, true, rel_tol=1e-12)  # JAX vs closed form: a few ulps
    assert math.isclose(row.got, true * (1 + 1e-6), rel_tol=1e-12)  # the value df returned
    assert re.search(r"derivative 'tanh_off'.*wrong at v=0\.5\b", report.headline)


def swish(v):
    return v * _sigmoid(v)  # the reference's overflow-free sigmoid (check points reach -1000)


def swish_d_wrong(v):
    return _sigmoid(v)  # forgot the v s(1 - s) term of swish' = s + v s (1 - s)


def naive_swish(v):
    return v / (1.0 + namespace_of(v).exp(-v))  # exp overflows at v = -1000; the value is -0.0


def naive_swish_d(v):
    s = 1.0 / (1.0 + np.exp(-v))
    return s + v * s * (1.0 - s)


def test_check_activation_fails_a_wrong_custom_derivative_and_reports_the_point():
    report = check_activation(Activation("my_swish", swish, swish_d_wrong))
    row = report.rows[0]
    assert not report.ok and row.status == "FAIL"
    s = 1.0 / (1.0 + math.exp(-row.at))
    assert math.isclose(row.got, s, rel_tol=1e-12)  # what swish_d_wrong gives there
    assert math.isclose(row.expected, s + row.at * s * (1 - s), rel_tol=1e-9)  # true swish'


def test_a_naive_activation_overflowing_inside_is_judged_or_refused_clearly():
    act = Activation("naive_swish", naive_swish, naive_swish_d)
    try:
        report = check_activation(act)
    except ValueError as exc:  # acceptable: a clear refusal that names the activation
        assert "naive_swish" in str(exc)
    else:
        assert report.count("FAIL") == 0, str(report)


def test_check_activation_fails_a_softmax_backward_that_ignores_the_off_diagonal():
    class DiagonalSoftmax(Softmax):
        def backward(self, v, y, g):
            return g * y * (1.0 - y)  # only the diagonal of J = diag(y) - y y^T

    report = check_activation(DiagonalSoftmax("softmax_diagonal", _softmax, None))
    assert not report.ok
    assert report.rows[0].term == "activation" and report.rows[0].status == "FAIL"


def test_a_subgradient_at_a_kink_is_accepted_and_one_outside_the_bracket_is_not():
    relu = ACTIVATIONS["relu"]
    one = Activation("relu_d0_is_1", relu.f, lambda v: (v >= 0).astype(v.dtype), kinks=(0.0,))
    two = Activation("relu_d0_is_2", relu.f,
                     lambda v: np.where(v > 0, 1.0, np.where(v == 0, 2.0, 0.0)), kinks=(0.0,))
    accepted = check_activation(one)
    assert accepted.ok and accepted.rows[0].status == "kink", str(accepted)
    rejected = check_activation(two)  # 2 is outside relu's subdifferential [0, 1] at 0
    assert not rejected.ok and rejected.rows[0].at == 0.0, str(rejected)


@pytest.mark.parametrize("name", ["mse", "binary_cross_entropy"])
def test_check_loss_fails_a_gradient_missing_the_1_over_B(name):
    loss = LOSSES[name]
    wrong = Loss(name + "_sum", loss.value, lambda y, t: loss.grad(y, t) * y.shape[0],
                 loss.output_activation, loss.value_from_v, loss.grad_v)
    report = check_loss(wrong, batch=4)
    assert not report.ok
    row = report.failures[0]
    assert row.term == "loss" and row.name == name + "_sum"
    # The worst entry is off by the factor B = 4: 1e-12 is a few ulps of the closed forms.
    assert math.isclose(row.got, 4 * row.expected, rel_tol=1e-12)


def test_check_loss_fails_a_wrong_fused_cross_entropy_gradient():
    ce = LOSSES["cross_entropy"]
    wrong = Loss("ce_sign", ce.value, ce.grad, "softmax", ce.value_from_v,
                 lambda v, y, t: (t - y) / v.shape[0])  # sign error in dE/dV
    report = check_loss(wrong)
    assert [r.status for r in report.rows] == ["pass", "FAIL"]  # dE/dY right, dE/dV wrong
    assert "dE/dV" in report.rows[1].note


# --- doubt: the sources of truth disagree with each other -------------------------------------


def test_injected_evaluation_noise_makes_the_check_doubtful_not_failed():
    noise = np.random.default_rng(1)

    def f_noisy(x):
        # JAX sees a constant offset; finite differences see noise of 1e-5, which makes their
        # error (~sigma / h ~ 1) far above the 1 % of the gradient FD needs to confirm anything.
        return f_smooth(x) + 1e-5 * noise.normal()

    report = check_gradient(f_noisy, grad_smooth, X0)
    assert report.ok and report.count("FAIL") == 0
    assert report.rows[0].status == "doubt" and report.rows[0].doubts >= 1, str(report)
    assert report.headline.startswith("OK, but the check itself is in doubt")
    strict = check_gradient(f_noisy, grad_smooth, X0, strict=True)
    assert not strict.ok and strict.headline.startswith("FAIL (strict)")


def tanh_with_wrong_autodiff(v):
    """tanh, but JAX's derivative of it is 1 (a straight-through estimator)."""
    xp = namespace_of(v)
    if xp is np:
        return np.tanh(v)
    return v + jax.lax.stop_gradient(xp.tanh(v) - v)


def test_a_function_whose_autodiff_is_wrong_makes_a_right_gradient_doubtful_not_failed():
    def f(x):
        return jnp.sum(tanh_with_wrong_autodiff(x))

    def grad(x):
        return 1.0 - np.tanh(x) ** 2  # the true derivative; JAX says 1

    report = check_gradient(f, grad, X0)
    assert report.ok and report.rows[0].status == "doubt", str(report)


def test_an_activation_whose_autodiff_is_wrong_is_in_doubt_not_failed():
    act = Activation("ste_tanh", tanh_with_wrong_autodiff, ACTIVATIONS["tanh"].df)
    report = check_activation(act)
    assert report.ok and report.rows[0].status == "doubt", str(report)
    assert not check_activation(act, strict=True).ok


# --- float32 and JAX's precision -----------------------------------------------------------------


def test_float32_x_warns_and_is_judged_to_about_1e_4():
    x32 = X0.astype(np.float32)

    def grad32(x):
        return grad_smooth(x).astype(np.float32)

    with pytest.warns(UserWarning, match="float32"):
        report = check_gradient(f_smooth, grad32, x32)
    assert report.ok, str(report)
    row = report.rows[0]
    # TAU_FLOAT32 = 1e-4 relative, plus a floor of 1e-3 of the term's scale: 0.9e-4 .. 1.1e-3.
    assert 0.9e-4 <= row.tolerance / abs(row.expected) <= 1.1e-3, row.tolerance

    def grad32_wrong(x):
        g = grad_smooth(x)
        g[0, 0] *= 1 + 1e-3  # ten times the float32 tolerance
        return g.astype(np.float32)

    with pytest.warns(UserWarning, match="float32"):
        wrong = check_gradient(f_smooth, grad32_wrong, x32)
    assert not wrong.ok and wrong.rows[0].index == (0, 0)


def test_a_float32_gradient_of_a_float64_point_is_not_silently_judged_loosely():
    def grad32_wrong(x):
        g = grad_smooth(x)
        g[0, 0] *= 1 + 1e-5  # ~80 float32 ulps: well within what float32 can represent
        return g.astype(np.float32)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_gradient(f_smooth, grad32_wrong, X0)
    assert not report.ok or caught, "neither failed nor warned"


@pytest.mark.parametrize("order", ["import oracle", "import jax.numpy; import oracle"])
def test_importing_oracle_leaves_jax_in_float64(order):
    code = f"{order}; import jax.numpy as jnp; print(jnp.asarray(1.0).dtype)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "float64"


def test_the_float64_check_can_fail_jax_alone_defaults_to_float32():
    code = "import jax.numpy as jnp; print(jnp.asarray(1.0).dtype)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PATH": "", "JAX_ENABLE_X64": "0"})
    assert out.stdout.strip() == "float32", out.stderr


# --- clear errors on bad input, never a crash inside JAX ---------------------------------------


def f_sq(x):
    return jnp.sum(x**2)


def g_sq(x):
    return 2.0 * x


@pytest.mark.parametrize(
    ("f", "grad", "x", "error", "match"),
    [
        (f_sq, g_sq, np.array([1.0, np.nan]), ValueError, r"x must be finite"),
        (f_sq, g_sq, np.array([np.inf, 1.0]), ValueError, r"x must be finite"),
        (f_sq, g_sq, np.ones(0), ValueError, r"x must not be empty"),
        (f_sq, g_sq, np.array(["a", "b"]), TypeError, r"x must be a real numeric array"),
        (f_sq, g_sq, np.ones(2) + 0j, TypeError, r"x must be a real numeric array.*complex"),
        (lambda x: jnp.sum(x) * np.nan, g_sq, np.ones(2), ValueError, r"f\(x\) is not finite"),
        (lambda x: jnp.sum(x) + np.inf, g_sq, np.ones(2), ValueError, r"f\(x\) is not finite"),
        (lambda x: x**2, g_sq, np.ones(3), ValueError, r"f\(x\) must return a scalar.*\(3,\)"),
        (lambda x: None, g_sq, np.ones(2), ValueError, r"f\(x\) must return a scalar"),
        (f_sq, lambda x: np.ones(3), np.ones(2), ValueError, r"grad\(x\) must have x's shape"),
        (f_sq, lambda x: g_sq(x).ravel(), np.ones((2, 3)), ValueError,
         r"shape \(2, 3\), got \(6,\)"),
        (f_sq, lambda x: np.array([2, 2]), np.ones(2), TypeError,
         r"grad\(x\) must return a float array.*int"),
        (f_sq, lambda x: g_sq(x) + 0j, np.ones(2), TypeError, r"float array.*complex"),
        (f_sq, lambda x: g_sq(x) * np.nan, np.ones(2), ValueError,
         r"grad\(x\) returned 2 NaN/Inf entries \(first at index \(0,\): nan\)"),
    ],
)
def test_bad_input_to_check_gradient_gets_a_clear_error(f, grad, x, error, match):
    with pytest.raises(error, match=match):
        check_gradient(f, grad, x)


def test_an_unknown_fd_mode_is_refused():
    with pytest.raises(ValueError, match="fd must be"):
        check_gradient(f_sq, g_sq, np.ones(2), fd="central")


def test_points_where_the_activation_itself_is_not_finite_are_left_out_and_named():
    act = Activation("nan_above_7", lambda v: namespace_of(v).where(v > 7, np.nan, v),
                     lambda v: np.ones_like(v))
    report = check_activation(act)
    assert report.ok and report.count("FAIL") == 0, str(report)
    assert any("'nan_above_7' is not finite at v = [7." in n and "left out" in n
               for n in report.notes), report.notes
    with pytest.raises(ValueError, match="nan_everywhere.*every check point"):
        check_activation(Activation("nan_everywhere", lambda v: v * np.nan, np.ones_like))


def test_exp_overflowing_at_the_largest_probe_is_checked_at_the_others():
    report = check_activation(Activation("exp", np.exp, np.exp))
    assert report.ok and report.count("doubt") == 0, str(report)
    wrong = check_activation(Activation("exp_off", np.exp, lambda v: np.exp(v) * (
        1 + 1e-6 * (np.abs(v - 1.0) < 1e-12))))
    assert not wrong.ok and wrong.rows[0].at == 1.0, str(wrong)


def test_an_unknown_activation_or_loss_name_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        check_activation("swish")
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*mse"):
        check_loss("hinge")


def test_a_scalar_x_is_checked():
    report = check_gradient(lambda x: jnp.sin(x), np.cos, np.float64(0.3))
    assert report.ok


def test_an_exactly_zero_gradient_passes_even_when_strict():
    # Was 'doubt' (FD judged useless against a scale of 0), failing strict mode on a right
    # gradient; fixed in verdict.judge.
    report = check_gradient(lambda x: jnp.sum(x**2), lambda x: 2.0 * x, np.zeros(3), strict=True)
    assert report.ok, report.headline


def test_a_stencil_leaving_the_domain_shrinks_its_step_and_still_judges():
    # sqrt at x[1] = 1e-7: the first step h = 2^-17 ~ 7.6e-6 puts x - 2h below 0; divided by
    # 16 twice (h ~ 3e-8) the stencil stays inside the domain and finite differences judge.
    x = np.array([1.0, 1e-7])

    def f(z):
        return np.sum(np.sqrt(z))

    right = check_gradient(f, lambda z: 0.5 / np.sqrt(z), x, jax=False)
    assert right.ok and right.rows[0].sources == ("fd",), str(right)
    assert right.count("doubt") == 0, str(right)

    def wrong(z):
        g = 0.5 / np.sqrt(z)
        g[1] *= 1 + 1e-2  # the shrunk stencil's error bound there is ~2e-4 relative
        return g

    report = check_gradient(f, wrong, x, jax=False)
    assert not report.ok and report.rows[0].index == (1,), str(report)


# --- second derivatives (act'' carried by an activation) ------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, a in ACTIVATIONS.items() if a.d2f is not None))
def test_every_builtin_second_derivative_passes_against_jax_and_finite_differences(name):
    report = check_activation(name)
    second = [r for r in report.rows if r.term == "second derivative"]
    assert len(second) == 1 and second[0].status in ("pass", "kink"), str(report)
    assert second[0].sources == ("jax", "fd"), str(report)


def _tanh_d2(v):
    t = np.tanh(v)
    return -2.0 * t * (1.0 - t**2)


def _gelu_d2_without_curvature_of_u(v):
    # gelu'' with the u'' = 6 c k v term dropped: a product-rule term forgotten.
    c, k = math.sqrt(2 / math.pi), 0.044715
    t = np.tanh(c * (v + k * v**3))
    du = c * (1 + 3 * k * v**2)
    return (1 - t**2) * (du - v * t * du**2)


VISIBLE_D2, ROUND_OFF_D2 = 1e-6, 1e-12
"""A wrong act'' must be flagged at every point it moves by more than 1e-6 of the scale of the
terms it is made of (1 + |act''| + |v|: 1e3 x the oracle's resolution against JAX there, ~1e-9),
and nowhere it moves by less than 1e-12 (two float64 formulas of one value differ by ~1e-15)."""


@pytest.mark.parametrize(("base", "d2f"), [
    ("tanh", lambda v: -_tanh_d2(v)),  # the sign
    ("tanh", lambda v: _tanh_d2(np.tanh(v))),  # act'' taken at Y instead of V
    ("tanh", lambda v: 2 * _tanh_d2(v)),  # a factor 2
    ("gelu", _gelu_d2_without_curvature_of_u),  # a product-rule term dropped
])
def test_a_wrong_second_derivative_fails_at_the_points_it_gets_wrong(base, d2f):
    act = ACTIVATIONS[base]
    wrong = Activation(f"{base}_wrong_d2", act.f, act.df, d2f=d2f)
    report = check_activation(wrong)
    first, second = report.rows[0], report.rows[-1]
    assert first.status == "pass" and second.status == "FAIL", str(report)
    # How far the bug moves each point, from the two formulas (never from the oracle).
    v = activation_points(wrong).reshape(1, -1)
    moved = np.abs(d2f(v) - act.d2f(v)) / (1 + np.abs(act.d2f(v)) + np.abs(v))
    flagged = np.zeros(v.shape, dtype=bool)
    flagged[tuple(np.array(second.wrong_entries()).T)] = True
    assert np.all(flagged[moved > VISIBLE_D2]), v[(moved > VISIBLE_D2) & ~flagged]
    assert np.all(moved[flagged] > ROUND_OFF_D2), v[flagged & (moved <= ROUND_OFF_D2)]


def _relu_squared(v):
    return namespace_of(v).where(v > 0, v * v, 0.0)


@pytest.mark.parametrize(("at_zero", "verdict"), [(0.0, "kink"), (2.0, "kink"), (1.0, "kink"),
                                                  (3.0, "FAIL"), (-0.5, "FAIL")])
def test_relu_squared_second_derivative_at_its_jump_is_judged_against_both_sides(at_zero,
                                                                               verdict):
    # relu(v)^2 has f'' = 0 on the left, 2 on the right: any value in [0, 2] at v = 0 is a valid
    # one-sided choice or convex combination; outside it is wrong.
    act = Activation("relu_squared", _relu_squared, lambda v: np.where(v > 0, 2 * v, 0.0),
                     (0.0,), lambda v: np.where(v > 0, 2.0, np.where(v == 0, at_zero, 0.0)))
    second = check_activation(act).rows[-1]
    assert second.term == "second derivative" and second.status == verdict, str(second)


def test_a_second_derivative_of_untraceable_numpy_code_is_judged_against_its_own_df():
    def looped_tanh(v):
        return np.array([math.tanh(a) for a in np.ravel(v)]).reshape(np.shape(v))

    act = Activation("looped_tanh", looped_tanh, lambda v: 1 - np.tanh(v) ** 2, d2f=_tanh_d2)
    report = check_activation(act)
    assert report.ok, str(report)
    assert any("judged against the derivative of its own df" in n for n in report.notes)


def test_check_loss_refuses_a_batch_too_large_to_check_before_allocating_it():
    with pytest.raises(ValueError, match=r"batch \* n_out must be at most 100,000.*"
                                         r"4 \* 1000000000"):
        check_loss("mse", n_out=10**9)

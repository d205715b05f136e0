"""Kinks and ties, decided where finite differences alone mislead: truth by construction.

- ``kink_probe`` tells a kink *at* x (exact one-sided derivatives, even where f is curved on
  both sides, even for a slope jump 1e-6 next to |f| ~ 1) from a kink *beside* x (left behind by
  a smaller step, so x is judged as the smooth point it is);
- tied entries are checked jointly: routing the gradient to every tied entry of a max fails,
  routing it to one passes.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from oracle import check_gradient, check_vjp  # noqa: E402
from oracle.finite_differences import choose_steps, kink_probe  # noqa: E402


def _probe(f, x, i):
    return kink_probe(f, x, np.array([i]), choose_steps(x), f0=f(x))


def test_a_slope_jump_small_next_to_f_is_found_with_its_exact_bracket():
    # f = 1 + sin + 1e-6 |x| at x = 0: one-sided derivatives 1 -+ 1e-6.
    est = _probe(lambda z: 1.0 + np.sum(np.sin(z)) + 1e-6 * np.sum(np.abs(z)), np.zeros(2), 0)
    assert est.kink[0]
    assert est.lo[0] <= 1 - 1e-6 and est.hi[0] >= 1 + 1e-6
    assert est.hi[0] - est.lo[0] < 2.1e-6  # the bracket is the jump, not the noise


def test_curvature_does_not_pull_the_bracket_inside_the_one_sided_derivatives():
    # f = 50 x^2 + |x| at 0: one-sided derivatives exactly -1 and +1, curvature 100.
    est = _probe(lambda z: np.sum(50 * z**2 + np.abs(z)), np.zeros(1), 0)
    assert est.kink[0] and est.lo[0] <= -1.0 <= 1.0 <= est.hi[0]
    for g in (-1.0, 1.0, 0.0):
        with_jax = check_gradient(lambda z: jnp.sum(50 * z**2 + jnp.abs(z)),
                                  lambda z, g=g: np.array([g]), np.zeros(1))
        # (kink, or pass where the hand value is JAX's own choice at the kink)
        assert with_jax.ok and with_jax.rows[0].status in ("kink", "pass"), (g, str(with_jax))
        # Without JAX a kink stays in doubt (it could sit a hair beside x), never a FAIL.
        alone = check_gradient(lambda z: np.sum(50 * z**2 + np.abs(z)),
                               lambda z, g=g: np.array([g]), np.zeros(1), jax=False)
        assert alone.ok and alone.rows[0].status == "doubt", (g, str(alone))
    beyond = check_gradient(lambda z: jnp.sum(50 * z**2 + jnp.abs(z)),
                            lambda z: np.array([1.2]), np.zeros(1))
    assert not beyond.ok, str(beyond)


def test_a_kink_beside_x_is_left_behind_and_x_judged_smooth():
    # A SELU-like kink at 1e-7, beside the point x = 0; the derivative at 0 is 1.7 e^{-1e-7}.
    def f(z):
        return np.sum(np.where(z > 1e-7, z, 1.7 * (np.exp(z - 1e-7) - 1)))

    est = _probe(f, np.zeros(1), 0)
    assert not est.kink[0] and abs(est.value[0] - 1.7 * np.exp(-1e-7)) <= est.error[0] < 1e-5
    right = check_gradient(f, lambda z: 1.7 * np.exp(z - 1e-7), np.zeros(1), jax=False)
    assert right.ok and right.count("doubt") == 0, str(right)
    wrong = check_gradient(f, lambda z: np.ones(1), np.zeros(1), jax=False)
    assert not wrong.ok, str(wrong)


def test_a_valid_subgradient_at_a_small_kink_is_not_a_failure():
    # L1 penalty 1e-6 on a loss of order 1; sign(0) = +1 is as valid a subgradient as 0.
    def f(z):
        return np.sum(np.cos(z)) + 1e-6 * np.sum(np.abs(z))

    x = np.array([0.0, 0.7])
    for sub in (0.0, 1.0, -1.0):
        report = check_gradient(f, lambda z, s=sub: -np.sin(z) + 1e-6 * np.where(
            z == 0, s, np.sign(z)), x)
        assert report.count("FAIL") == 0, (sub, str(report))
    outside = check_gradient(f, lambda z: -np.sin(z) + 1e-6 * np.where(z == 0, 3.0, 1.0), x)
    assert outside.count("pass") == 0 or not outside.ok, str(outside)


def _pool(x):
    return x.reshape(x.shape[0], -1, 2).max(axis=2)


def _to_argmax(dout, x):
    w = x.reshape(x.shape[0], -1, 2)
    g = np.zeros_like(w)
    np.put_along_axis(g, w.argmax(axis=2)[..., None], dout[..., None], axis=2)
    return g.reshape(x.shape)


def _to_every_tie(dout, x):
    w = x.reshape(x.shape[0], -1, 2)
    return ((w == w.max(axis=2, keepdims=True)) * dout[..., None]).reshape(x.shape)


@pytest.mark.parametrize("jax", [True, False])
def test_ties_of_a_max_are_checked_jointly(jax):
    x = np.array([[1.0, 1.0, 0.5, -0.3], [2.0, 2.0, 0.1, 0.4]])  # a tie in each row's window 0
    right = check_vjp(_pool, _to_argmax, (x,), jax=jax)
    assert right.ok and right.rows[0].status == ("kink" if jax else "doubt"), str(right)
    doubled = check_vjp(_pool, _to_every_tie, (x,), jax=jax)
    assert not doubled.ok, str(doubled)
    assert sorted(doubled.wrong_entries("x")) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert "checked jointly" in str(doubled)

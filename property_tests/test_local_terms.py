"""Local terms: every activation's derivative and every loss's derivative equal JAX's.

On any input for the activations (kinks and large magnitudes included); on valid outputs and
targets for the losses; and each link of the chain at a network's own pre-activations.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from oracle.strategies import USER_ACTIVATIONS, cases, targets
from reference import ACTIVATIONS, LOSSES

from . import properties as P
from . import regressions as R
from .padded_autodiff import activation_derivative, activation_vjp, loss_gradient
from .profiles import budget
from .rounding import TINY

ELEMENTWISE = [a for a in (*ACTIVATIONS.values(), *USER_ACTIVATIONS.values()) if a.elementwise]

# Derivative values: relative 1e-10 of JAX's (the same formula rounded in another order agrees
# to ~1e-15), with an absolute floor of 1e-13 (the O(1) terms of act' cancel near its zeros,
# e.g. gelu' at v ~ -0.75, where only an absolute error of a few eps is meaningful).
DERIV_RTOL, DERIV_ATOL = 1e-10, 1e-13


def _inputs(max_abs: float):
    """Arrays of 1-3 dimensions, up to 8 entries per axis; kinks (0, +-1) are drawable."""
    values = st.one_of(
        st.sampled_from([0.0, 1.0, -1.0]),
        st.floats(-max_abs, max_abs, allow_nan=False, allow_subnormal=False),
    )
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=8),
                      elements=values)


EXTREMES = np.array([-1000.0, -700.0, -30.0, -1.0, -1e-7, 0.0, 1e-7, 1.0, 30.0, 700.0, 1000.0])
"""Large magnitudes (exp overflows past 709) and both sides of the usual kinks."""


@pytest.mark.parametrize("act", ELEMENTWISE, ids=[a.name for a in ELEMENTWISE])
@settings(max_examples=budget(0.15))
@given(v=_inputs(1000.0))
@example(v=EXTREMES)
def test_each_activation_derivative_equals_autodiff_on_any_input(act, v):
    got = act.df(v)
    expected = activation_derivative(act, v)
    assert got.shape == v.shape
    bad = ~(np.abs(got - expected) <= DERIV_RTOL * np.abs(expected) + DERIV_ATOL)
    assert not np.any(bad), (
        f"{act.name}'(v) != JAX's at v = {v[bad][:5]}: got {got[bad][:5]}, "
        f"JAX {expected[bad][:5]}")


@st.composite
def _softmax_inputs(draw):
    rows, width = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    v = draw(hnp.arrays(np.float64, (rows, width),
                        elements=st.floats(-1000, 1000, allow_subnormal=False)))
    g = draw(hnp.arrays(np.float64, (rows, width),
                        elements=st.floats(-3, 3, allow_subnormal=False)))
    return v, g


@settings(max_examples=budget(1))
@given(vg=_softmax_inputs())
def test_softmax_backward_equals_the_autodiff_vector_jacobian_product(vg):
    v, g = vg
    softmax = ACTIVATIONS["softmax"]
    got = softmax.backward(v, softmax(v), g)
    expected = activation_vjp(softmax, v, g)
    # Per row: Y * (G - sum(G Y)); G Y sums <= 8 terms of |G| <= 3: rounding ~1e-15 absolute.
    np.testing.assert_allclose(got, expected, rtol=DERIV_RTOL, atol=DERIV_ATOL)


@st.composite
def _loss_inputs(draw):
    name = draw(st.sampled_from(sorted(LOSSES)))
    loss = LOSSES[name]
    batch, n = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    # Logits within +-20 keep softmax/sigmoid outputs >= 1e-9 away from 0 and 1, where
    # dE/dY = -T / (Y B) and (Y - T) / (Y (1 - Y) B) are finite.
    v = draw(hnp.arrays(np.float64, (batch, n), elements=st.floats(-20, 20,
                                                                  allow_subnormal=False)))
    t = draw(targets(name, batch, n))
    if t.ndim == 1:
        t = np.eye(n)[t]
    return loss, v, t


def _y_of(loss, v):
    return v if loss.output_activation is None else ACTIVATIONS[loss.output_activation](v)


def _term_scale(loss, a, y, t, fused):
    """The magnitude of the terms each entry of the derivative is a sum of (see losses.py)."""
    batch = a.shape[0]
    if loss.name == "mse":
        return (np.abs(y) + np.abs(t)) / batch
    if fused:
        return (y * np.sum(t, axis=-1, keepdims=True) + t) / batch
    if loss.name == "cross_entropy":
        return t / (y * batch)
    return (t / y + (1 - t) / (1 - y)) / batch


# Cross-entropy targets may sum to 1 within the reference's 1e-9 (validation.ROW_SUM_TOLERANCE):
# the fused dE/dV = (Y sum(T) - T) / B must use the sum, not assume it is 1.
ROWS_SUMMING_TO_NEARLY_ONE = np.array([[0.25, 0.75 + 9e-10], [1.0 - 9e-10, 0.0]])


@settings(max_examples=budget(1.5))
@given(args=_loss_inputs())
@example(args=(LOSSES["cross_entropy"], np.array([[0.5, -1.0], [2.0, 0.0]]),
               ROWS_SUMMING_TO_NEARLY_ONE))
def test_each_loss_derivative_equals_autodiff(args):
    loss, v, t = args
    y = _y_of(loss, v)
    checks = [("dE/dY", y, loss.grad(y, t), loss_gradient(loss, y, t), False)]
    if loss.fused:
        checks.append(("dE/dV (fused)", v, loss.grad_v(v, y, t),
                       loss_gradient(loss, v, t, from_v=True), True))
    for what, at, got, expected, fused in checks:
        # Relative 1e-10 as above, plus 1e-13 of the terms' magnitude: the terms of one entry
        # may cancel (BCE: t/y - (1-t)/(1-y) with t ~ y), leaving only an absolute accuracy of
        # a few eps times the terms.
        # (+ the smallest normal float: JAX on CPU flushes subnormal results to zero)
        tol = (DERIV_RTOL * np.abs(expected) + 1e-13 * _term_scale(loss, at, y, t, fused)
               + np.finfo(np.float64).tiny)
        bad = ~(np.abs(got - expected) <= tol)
        assert not np.any(bad), (
            f"{loss.name} {what} differs from JAX's at {np.argwhere(bad)[:3].tolist()}: "
            f"got {got[bad][:3]}, JAX {expected[bad][:3]}")


@settings(max_examples=budget(2))
@given(case=cases())
@example(case=R.UNIFORM_SOFTMAX)
@example(case=R.GELU_LEFT_TAIL)
def test_each_link_of_the_chain_matches_its_exact_value_in_any_network(case):
    P.local_terms_match_autodiff(case)


@st.composite
def _loss_stacks(draw):
    """A loss, a stack of S batches of logits/outputs (S, B, n) and matching targets."""
    name = draw(st.sampled_from(sorted(LOSSES)))
    stack, batch, n = draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    v = draw(hnp.arrays(np.float64, (stack, batch, n),
                        elements=st.floats(-20, 20, allow_subnormal=False)))
    rows = [draw(targets(name, batch, n)) for _ in range(stack)]
    t = np.stack([np.eye(n)[r] if r.ndim == 1 else r for r in rows])  # labels as one-hot rows
    return LOSSES[name], v, t


@settings(max_examples=budget(1))
@given(args=_loss_stacks())
def test_each_loss_is_the_batch_mean_of_per_sample_losses_and_maps_over_stacks(args):
    # The convention every gradient relies on (losses.py): E is the mean over the batch of a
    # per-sample loss, and the value functions reduce over the last two axes only, so a stack
    # of batches gives a stack of losses (the oracle's finite differences rely on it).
    loss, v, t = args
    y = _y_of(loss, v)
    forms = [("value", loss.value, y)]
    if loss.fused:
        forms.append(("value_from_v", loss.value_from_v, v))
    for what, fn, a in forms:
        stacked = np.asarray(fn(a, t))
        assert stacked.shape == (a.shape[0],), f"{loss.name}.{what}: shape {stacked.shape}"
        for s in range(a.shape[0]):
            alone = float(fn(a[s], t[s]))
            per_sample = [float(fn(a[s, b : b + 1], t[s, b : b + 1])) for b in range(a.shape[1])]
            mean = sum(per_sample) / len(per_sample)
            # the same per-row sums, added in another order: a few ulps of the terms
            scale = sum(abs(p) for p in per_sample) / len(per_sample) + 20.0
            assert abs(alone - stacked[s]) <= 1e-14 * scale, f"{loss.name}.{what}: stack"
            assert abs(alone - mean) <= 1e-13 * scale, (
                f"{loss.name}.{what} of a batch is {alone!r}, the mean of its samples' is {mean!r}")


def test_each_loss_is_differentiable_by_jax_with_constant_numpy_targets():
    # Array-API style means a loss picks JAX's namespace when Y is JAX and T is numpy (a user's
    # jax.grad(lambda y: loss.value(y, t))): not only when both are JAX.
    from oracle.jax_support import jax, jnp

    rng = np.random.default_rng(3)
    v = rng.normal(size=(3, 4))
    t = np.eye(4)[[0, 2, 3]]
    for loss in LOSSES.values():
        y = _y_of(loss, v)
        forms = [(loss.value, y, loss.grad(y, t))]
        if loss.fused:
            forms.append((loss.value_from_v, v, loss.grad_v(v, y, t)))
        for fn, a, hand in forms:
            ad = np.asarray(jax.grad(lambda z, fn=fn: fn(z, t))(jnp.asarray(a)))
            np.testing.assert_allclose(ad, hand, rtol=DERIV_RTOL, atol=TINY)

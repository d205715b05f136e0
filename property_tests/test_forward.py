"""Forward values: each built-in activation and loss equals an independent implementation.

The gradient properties check that the backward pass is the derivative of the forward pass,
whatever the forward computes: a relu that returned 1 below zero, with the derivative of that,
would pass them all. Here each forward is compared with JAX's own ``jax.nn`` implementation (and
the losses with their textbook formulas written on top of it), on any input.
"""

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from oracle.jax_support import jax, jnp
from oracle.strategies import targets
from reference import ACTIVATIONS, LOSSES

from .profiles import budget

nn = jax.nn
INDEPENDENT = {
    "identity": lambda v: v,
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "leaky_relu": lambda v: nn.leaky_relu(v, negative_slope=0.01),
    "elu": lambda v: nn.elu(v, alpha=1.0),
    "softplus": nn.softplus,
    "silu": nn.silu,
    "gelu": lambda v: nn.gelu(v, approximate=True),
    "softmax": lambda v: nn.softmax(v, axis=-1),
}

# Values: both compute the same function with different formulas (e.g. softplus as
# max(v, 0) + log1p(e^-|v|) vs logaddexp): a few ulps of the result, or of 1 where the result
# passes through 0 (gelu, silu in their tails). 1e-13 relative + 1e-15 absolute.
RTOL, ATOL = 1e-13, 1e-15


def _logits(max_abs: float, max_dims: int = 2):
    """1-D or 2-D arrays of up to 8 x 8 entries."""
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=max_dims, max_side=8),
                      elements=st.floats(-max_abs, max_abs, allow_subnormal=False))


# JAX is called on one padded shape (8 x 8), compiled once per function: a new shape per
# example would compile anew each time (see padded_autodiff.py). Padded entries are 0, or
# -1e300 for softmax and the cross-entropies (exp gives them exactly 0, so rows are unchanged).
PAD = 8
HUGE_NEGATIVE = -1e300


def _padded(a: np.ndarray, fill: float) -> np.ndarray:
    a = np.atleast_2d(a)
    out = np.full((PAD, PAD), fill)
    out[: a.shape[0], : a.shape[1]] = a
    return out


_jitted = {name: jax.jit(fn) for name, fn in INDEPENDENT.items()}


@settings(max_examples=budget(1))
@given(name=st.sampled_from(sorted(INDEPENDENT)), v=_logits(800.0))
@example(name="relu", v=np.array([-2.0, -0.0, 0.0, 3.0]))
@example(name="softplus", v=np.array([-800.0, -1.0, 0.0, 1.0, 800.0]))
def test_each_builtin_activation_equals_jax_nn(name, v):
    got = np.asarray(ACTIVATIONS[name](v))
    fill = HUGE_NEGATIVE if name == "softmax" else 0.0
    rows = np.atleast_2d(v).shape
    expected = np.asarray(_jitted[name](_padded(v, fill)))[: rows[0], : rows[1]].reshape(v.shape)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=name)


def _rows(name: str, v, t):
    """Each sample's loss by the textbook formula, in JAX (one value per row)."""
    if name == "mse":
        return 0.5 * jnp.sum((v - t) ** 2, axis=-1)
    if name == "cross_entropy":
        return -jnp.sum(t * nn.log_softmax(v, axis=-1), axis=-1)
    return jnp.sum(nn.softplus(v) - t * v, axis=-1)  # binary cross-entropy from logits


def _textbook(name: str, v, t):
    """E by the textbook formula: the mean over the batch of the per-sample losses."""
    return jnp.sum(_rows(name, v, t), axis=-1) / v.shape[-2]


_jitted_rows = {name: jax.jit(lambda v, t, name=name: _rows(name, v, t)) for name in LOSSES}


@st.composite
def _loss_args(draw):
    name = draw(st.sampled_from(sorted(LOSSES)))
    batch, n = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    v = draw(hnp.arrays(np.float64, (batch, n), elements=st.floats(-30, 30,
                                                                  allow_subnormal=False)))
    t = draw(targets(name, batch, n))
    return name, v, (np.eye(n)[t] if t.ndim == 1 else t)


@settings(max_examples=budget(1))
@given(args=_loss_args())
@example(args=("cross_entropy", np.array([[-800.0, -800.0], [800.0, 799.0]]),
               np.array([[1.0, 0.0], [0.0, 1.0]])))  # rows 1600 apart: a shared max underflows
def test_each_builtin_loss_equals_its_textbook_formula(args):
    name, v, t = args
    loss = LOSSES[name]
    y = v if loss.output_activation is None else ACTIVATIONS[loss.output_activation](v)
    fill = 0.0 if name == "mse" else HUGE_NEGATIVE  # padded outputs add exactly 0
    per_row = np.asarray(_jitted_rows[name](_padded(v, fill), _padded(t, 0.0)))
    expected = float(np.sum(per_row[: v.shape[0]]) / v.shape[0])
    got = float(loss.value_from_v(v, t) if loss.fused else loss.value(y, t))
    # logsumexp / softplus by other formulas: a few ulps of the terms (|v| <= 800)
    assert abs(got - expected) <= 1e-13 * (abs(expected) + 1.0) + 1e-15 * np.max(np.abs(v)), (
        f"{name}: {got!r} vs textbook {expected!r}")
    if loss.fused and np.all(np.abs(v) <= 10):
        # From probabilities: log(1 - y) with 1 - y >= 4.5e-5 computed to eps, so E to
        # eps / 4.5e-5 ~ 5e-12 relative (why the network uses the fused form from V).
        assert abs(float(loss.value(y, t)) - expected) <= 1e-9 * (abs(expected) + 1.0)


def test_each_loss_is_differentiable_with_respect_to_its_targets_too():
    # Array-API style in both arguments: a loss whose targets are JAX (a teacher network's
    # outputs, say) must pick JAX's namespace from T as well as from Y.
    rng = np.random.default_rng(5)
    v = rng.normal(size=(3, 4))
    t = np.eye(4)[[1, 0, 3]] * 0.5 + 0.125
    for name, loss in LOSSES.items():
        y = v if loss.output_activation is None else ACTIVATIONS[loss.output_activation](v)
        forms = [(loss.value, y)] + ([(loss.value_from_v, v)] if loss.fused else [])
        for fn, a in forms:
            got = np.asarray(jax.grad(lambda tt, fn=fn, a=a: fn(a, tt))(jnp.asarray(t)))
            expected = np.asarray(jax.grad(
                lambda tt, name=name, fn=fn, a=a: _by_formula(name, fn, a, tt))(jnp.asarray(t)))
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15, err_msg=name)


def _by_formula(name, fn, a, t):
    loss = LOSSES[name]
    if loss.fused and fn is loss.value_from_v:
        return _textbook(name, a, t)
    batch = a.shape[-2]
    if name == "mse":
        return 0.5 * jnp.sum((a - t) ** 2) / batch
    if name == "cross_entropy":
        return -jnp.sum(t * jnp.log(a)) / batch
    return -jnp.sum(t * jnp.log(a) + (1 - t) * jnp.log1p(-a)) / batch

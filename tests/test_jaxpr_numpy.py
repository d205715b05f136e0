"""``oracle.jaxpr_numpy``: JAX programs run in numpy give JAX's values.

Truth is JAX itself: every program below (typical layers, written in jax.numpy) is run by
``numpy_call`` and by XLA (``jax.jit``, one compile per program to keep the file fast), both
the forward values and the VJP ``jax.vjp(f, *xs)[1](ct)`` with a seeded random cotangent.
Inputs include integer labels and boolean masks (their cotangents are ``float0``), tuple
outputs and 0-d outputs. Each program also states which primitives may fall back to JAX:
anything else falling back fails the test, so the numpy table really is exercised.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from jax.extend.core import Primitive

from oracle import jaxpr_numpy
from oracle.jax_support import jax, jnp
from oracle.jaxpr_numpy import evaluate, fallback_counts, fallback_reasons, numpy_call

lax = jax.lax
FLOAT0 = jax.dtypes.float0

# Both sides compute in float64 the same programs of < 1000 primitive operations; they differ
# only where numpy and XLA associate a sum (or a transcendental's last ulp) differently. Each
# such difference is ~1e-16 of the largest term and they add up over at most a few hundred
# operations: 1e-12 of an output's largest entry is loose for round-off, far below any wrong
# derivative (a wrong term changes an output by O(1) of its scale).
RTOL = 1e-12


@pytest.fixture(autouse=True)
def _no_recorded_fallbacks():
    jaxpr_numpy.reset_fallbacks()
    yield
    jaxpr_numpy.reset_fallbacks()


def assert_same(actual, expected) -> None:
    """Same pytree, shapes and dtypes; floats to RTOL of each output's largest entry."""
    a_leaves, a_tree = jax.tree_util.tree_flatten(actual)
    e_leaves, e_tree = jax.tree_util.tree_flatten(expected)
    assert a_tree == e_tree
    for k, (a, e) in enumerate(zip(a_leaves, e_leaves)):
        e = np.asarray(e)
        assert type(a) is np.ndarray, f"leaf {k}: {type(a)}"
        assert (a.shape, a.dtype) == (e.shape, e.dtype), f"leaf {k}"
        if e.dtype == FLOAT0:
            continue
        if np.issubdtype(e.dtype, np.inexact):
            finite = np.abs(e[np.isfinite(e)])
            scale = float(finite.max()) if finite.size else 0.0
            np.testing.assert_allclose(a, e, rtol=0, atol=RTOL * scale, equal_nan=True,
                                       err_msg=f"leaf {k}")
        else:
            np.testing.assert_array_equal(a, e, err_msg=f"leaf {k}")


def vjp_program(f):
    """(xs, cts) -> (f(*xs), cotangents of every x): what the oracle runs."""
    def program(xs, cts):
        out, pullback = jax.vjp(f, *xs)
        return out, pullback(cts)
    return program


def random_cotangent(f, xs, rng):
    def one(shape):
        if jnp.issubdtype(shape.dtype, jnp.inexact):
            return rng.normal(size=shape.shape)
        return np.zeros(shape.shape, dtype=FLOAT0)
    return jax.tree_util.tree_map(one, jax.eval_shape(f, *xs))


# --------------------------------------------------------------------------------------------
# the programs


def affine(x, w, b):
    return x @ w + b


def batchnorm(x, g, b):
    m, v = x.mean(0), x.var(0)
    return g * (x - m) / jnp.sqrt(v + 1e-5) + b


def layernorm(x, g, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return g * (x - m) * lax.rsqrt(v + 1e-5) + b


def softmaxes(x):
    return jax.nn.softmax(x, axis=0), jax.nn.softmax(x, axis=1), jax.nn.logsumexp(x, axis=1)


def cross_entropy(z, y):
    p = jax.nn.softmax(z, axis=1)
    return -jnp.mean(jnp.log(p[jnp.arange(z.shape[0]), y]))


def log_softmax_cross_entropy(z, y):
    return -jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], axis=1).mean()


def conv_nchw(x, w):
    return lax.conv_general_dilated(x, w, window_strides=(2, 1), padding="SAME",
                                    rhs_dilation=(1, 2))


def conv_depthwise_nhwc(x, w):  # its VJP needs batch_group_count
    return lax.conv_general_dilated(x, w, (1, 2), ((1, 0), (2, -1)), lhs_dilation=(2, 1),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=x.shape[-1])


def conv1d_grouped(x, w):
    return lax.conv_general_dilated(x, w, (1,), "VALID", feature_group_count=2)


def conv3d_dilated(x, w):
    return lax.conv_general_dilated(x, w, (1, 2, 1), ((0, 1), (2, 0), (1, 1)),
                                    lhs_dilation=(1, 1, 2), rhs_dilation=(2, 1, 1))


def maxpool_reshape(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def window_pools(x):  # max-pool's VJP (select_and_scatter_add) falls back
    avg = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2), (1, 1, 2), ((0, 0), (1, 0), (0, 1)))
    big = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2), (1, 2, 2), "VALID")
    return avg / 4, big


def attention(q, k, v):
    s = jnp.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.shape[-1])
    return jnp.einsum("bqk,bkd->bqd", jax.nn.softmax(s, axis=-1), v)


def lstm_step(x, h, c, wx, wh, b):
    i, f, g, o = jnp.split(x @ wx + h @ wh + b, 4, axis=1)
    c2 = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c2), c2


def gru_step(x, h, wx, wh, b):
    gx, gh = x @ wx + b, h @ wh
    n = h.shape[1]
    r = jax.nn.sigmoid(gx[:, :n] + gh[:, :n])
    z = jax.nn.sigmoid(gx[:, n:2 * n] + gh[:, n:2 * n])
    cand = jnp.tanh(gx[:, 2 * n:] + r * gh[:, 2 * n:])
    return (1 - z) * cand + z * h


def rnn_scan(h0, xs, w):
    def step(h, x):
        h = jnp.tanh(h @ w + x)
        return h, h.sum()
    return lax.scan(step, h0, xs)


def embedding(w, ids):
    return w[ids]


def activations(x):
    return (jnp.maximum(x, 0), jnp.where(x > 0, x, 0), jax.nn.relu(x),
            jax.nn.gelu(x, approximate=False), jax.nn.gelu(x), jax.nn.softplus(x),
            jax.nn.elu(x), jax.nn.silu(x), jax.nn.leaky_relu(x), jnp.abs(x), jnp.sign(x) * x)


def dropout(x, mask):
    return x * mask / 0.7


def pads(x):
    return (jnp.pad(x, ((1, 2), (0, 3))), jnp.pad(x, 2, mode="reflect"),
            jnp.pad(x, ((1, 1), (2, 2)), mode="edge"),
            lax.pad(x, 0.5, ((-1, 2, 1), (1, -2, 2))))


def indexing(x, idx):
    return (x[idx], x[:, idx], x[idx, 1:3], x.at[idx].add(x[idx] * 2), x[1], x[-1, ::2],
            x.at[:, idx].multiply(3.0), jnp.take_along_axis(x, jnp.argsort(x, axis=1), axis=1),
            x.at[2].set(x[0]), x[::-1, 1:])


def gather_scatter_modes(x, idx):  # idx has out-of-bounds entries
    return (jnp.take(x, idx, axis=1, mode="clip"), x.at[:, idx].get(mode="fill", fill_value=-9.0),
            x.at[idx].add(1.0, mode="drop"), x.at[idx, 1:3].add(x[:, :2], mode="clip"),
            jax.vmap(lambda row, j: row[j])(x, idx), jnp.median(x, axis=1))


def squared_loss(y, t):  # 0-d output
    return 0.5 * jnp.sum((y - t) ** 2)


def elementwise(x, p):
    u = 0.9 * jnp.tanh(x)  # XLA's erf_inv is accurate to ~1e-15 only away from +-1
    return (jnp.exp2(x), jnp.log1p(p), jnp.expm1(x), jnp.sin(x) * jnp.cos(x), lax.rsqrt(p),
            x ** -3, x ** 4, p ** x, jnp.sqrt(p), jnp.cbrt(x), lax.erf(x), lax.erf_inv(u),
            jnp.arctan2(x, p), jnp.arctanh(u), jnp.clip(x, -0.5, 0.8), jnp.floor(x * 3),
            jnp.round(x * 3), lax.round(x * 3, lax.RoundingMethod.AWAY_FROM_ZERO),
            jnp.fmod(x, 0.3), jnp.where(jnp.isfinite(1 / x), x, 0.0),
            jnp.nextafter(lax.stop_gradient(x), lax.stop_gradient(p)), jnp.square(x),
            jnp.cosh(x), jnp.arcsinh(x), jax.nn.sigmoid(x), lax.lgamma(p), lax.digamma(p))


def nan_semantics(x):  # x holds NaN, -0.0 and ties
    return (jnp.maximum(x, 0.0), jnp.minimum(x, 0.0), jnp.max(x), jnp.argmax(x), jnp.argmin(x),
            jnp.sort(x), jnp.argsort(x), (x * 100).astype(jnp.uint8), x.astype(jnp.int32))


def scans_and_slices(x, i):
    return (jnp.cumsum(x, axis=0), lax.cumsum(x, axis=1, reverse=True), jnp.cumprod(x, axis=1),
            lax.cummax(x, axis=0), lax.cumlogsumexp(x, axis=1), jnp.sort(x, axis=0),
            lax.argmax(x, 1, jnp.int32), jnp.argmin(x, axis=0), *jnp.split(x, [1, 3], axis=1),
            lax.dynamic_slice(x, (i, i + 1), (2, 2)), jnp.flip(x, 0),
            lax.dynamic_update_slice(x, x[:2, :2] * 5, (i, 7)), jnp.concatenate([x, x * 2], 0),
            jnp.tile(x, (2, 1)), x.T @ x, jnp.prod(x, axis=0), jnp.min(x, axis=1),
            jnp.stack([x[:, 0], x[:, 2]], axis=1), *lax.unstack(x, axis=1))


def integers(a, b):
    return (a // b, a % b, lax.div(a, b), lax.rem(a, b), (a * 3).astype(jnp.int32) - 7,
            jnp.maximum(a, b), a & b, a | b, ~a, a ^ b, a < b, jnp.sign(a), a ** 3,
            jnp.sum(a.astype(jnp.int32), axis=0), jnp.abs(a), lax.clamp(-2, a, 3),
            lax.shift_left(a, b), lax.shift_right_logical(a, b), lax.shift_right_arithmetic(a, b),
            lax.population_count(a))


def select_n_int(which, a, b, c):
    return lax.select_n(which, a, b, c), lax.select_n(which > 0, a, b)


def int8_dot(a, b):
    return lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))), preferred_element_type=jnp.int32)


def batched_dot(a, b):
    return lax.dot_general(a, b, (((1, 3), (2, 0)), ((0,), (1,))))


def empty_reductions(x):
    return lax.reduce_max(x, (0,)), lax.reduce_min(x, (0,)), jnp.sum(x, axis=0)


def control_flow(x, n):
    y = lax.cond(x.sum() > 0, jnp.sin, jnp.cos, x)
    y = lax.fori_loop(0, 3, lambda i, c: c * 0.5 + i, y)
    k = lax.while_loop(lambda k: k < n, lambda k: k * 2, 1)
    return y * k


@jax.custom_vjp
def clipped_identity(x):
    return x


clipped_identity.defvjp(lambda x: (x, x), lambda x, g: (jnp.clip(g, -0.1, 0.1) * x,))


def custom_rules(x):
    return clipped_identity(x) * 2 + jax.checkpoint(lambda x: jnp.sin(x) ** 2)(x)


def top_k(x):  # top_k has no numpy implementation
    return lax.top_k(x, 2)[0]


R = np.random.default_rng(20240601)
_x34 = R.normal(size=(3, 4))
_nan = np.array([1.0, np.nan, -0.0, 0.0, 3.0, 3.0, -np.inf, 2.0])

CASES = {  # name: (function, inputs, primitives allowed to fall back)
    "affine": (affine, (R.normal(size=(5, 3)), R.normal(size=(3, 4)), R.normal(size=4)), ()),
    "batchnorm": (batchnorm, (R.normal(size=(8, 4)), R.normal(size=4), R.normal(size=4)), ()),
    "layernorm": (layernorm, (R.normal(size=(6, 5)), R.normal(size=5), R.normal(size=5)), ()),
    "softmax": (softmaxes, (R.normal(size=(4, 3)),), ()),
    "cross_entropy": (cross_entropy, (R.normal(size=(4, 3)), np.array([0, 2, 1, 1])), ()),
    "log_softmax_ce": (log_softmax_cross_entropy,
                       (R.normal(size=(5, 3)), np.array([2, 0, 2, 1, 0])), ()),
    "conv_nchw": (conv_nchw, (R.normal(size=(2, 3, 6, 5)), R.normal(size=(4, 3, 3, 2))), ()),
    "conv_depthwise": (conv_depthwise_nhwc, (R.normal(size=(2, 4, 5, 3)),
                                             R.normal(size=(2, 3, 1, 3))), ()),
    "conv1d_grouped": (conv1d_grouped, (R.normal(size=(2, 4, 7)), R.normal(size=(6, 2, 3))), ()),
    "conv3d_dilated": (conv3d_dilated, (R.normal(size=(1, 2, 5, 6, 4)),
                                        R.normal(size=(3, 2, 2, 3, 2))), ()),
    "maxpool_reshape": (maxpool_reshape, (R.normal(size=(2, 3, 4, 6)),), ()),
    "window_pools": (window_pools, (R.normal(size=(2, 4, 6)),), ("select_and_scatter_add",)),
    "attention": (attention, tuple(R.normal(size=(2, 5, 4)) for _ in range(3)), ()),
    "lstm_step": (lstm_step, (R.normal(size=(3, 4)), R.normal(size=(3, 5)), R.normal(size=(3, 5)),
                              R.normal(size=(4, 20)), R.normal(size=(5, 20)), R.normal(size=20)),
                  ()),
    "gru_step": (gru_step, (R.normal(size=(3, 4)), R.normal(size=(3, 5)), R.normal(size=(4, 15)),
                            R.normal(size=(5, 15)), R.normal(size=15)), ()),
    "rnn_scan": (rnn_scan, (R.normal(size=3), R.normal(size=(4, 3)), R.normal(size=(3, 3))), ()),
    "embedding": (embedding, (R.normal(size=(6, 3)), np.array([[1, 4, 1], [0, 1, 5]])), ()),
    "activations": (activations, (R.normal(size=(4, 5)),), ()),
    "dropout": (dropout, (R.normal(size=(4, 5)), R.uniform(size=(4, 5)) < 0.7), ()),
    "pads": (pads, (R.normal(size=(3, 4)),), ()),
    "indexing": (indexing, (R.normal(size=(4, 5)), np.array([0, 2, -1, 0])), ()),
    "gather_scatter_modes": (gather_scatter_modes, (R.normal(size=(5, 4)),
                                                    np.array([3, -1, 7, 0, 2])), ()),
    "squared_loss": (squared_loss, (R.normal(size=(4, 2)), R.normal(size=(4, 2))), ()),
    "elementwise": (elementwise, (R.normal(size=(3, 4)), R.uniform(0.1, 3.0, size=(3, 4))), ()),
    "nan_semantics": (nan_semantics, (_nan,), ()),
    "scans_and_slices": (scans_and_slices, (_x34, np.int64(1)), ()),
    "integers": (integers, (np.array([7, -7, 5, -5, 0, 9]), np.array([2, 2, -3, -3, 70, 63])),
                 ()),
    "select_n_int": (select_n_int, (np.array([0, 1, 2, 1], dtype=np.int32),
                                    *(R.normal(size=4) for _ in range(3))), ()),
    "int8_dot": (int8_dot, (R.integers(-100, 100, size=(2, 3, 4), dtype=np.int8),
                            R.integers(-100, 100, size=(2, 4, 3), dtype=np.int8)), ()),
    "batched_dot": (batched_dot, (R.normal(size=(2, 3, 4, 5)), R.normal(size=(5, 2, 3, 6))), ()),
    "empty_reductions": (empty_reductions, (np.zeros((0, 3)),), ()),
    "control_flow": (control_flow, (R.normal(size=3), np.int64(5)), ()),
    "custom_rules": (custom_rules, (R.normal(size=5),), ()),
    "top_k": (top_k, (R.normal(size=(3, 5)),), ("top_k",)),
}


# The reference is one jit-compiled program per case (eager JAX would compile every primitive
# separately: a minute), compiled with LLVM's optimisations off (XLA's compile time is nearly all
# of this file's; the HLO semantics do not change). Where IEEE special values matter the
# reference is eager JAX, what the oracle runs: XLA's whole-program simplifier turns e.g. the
# NaN/0 of max's VJP with a NaN input into 0, which eager JAX (and numpy) keep.
EAGER_REFERENCE = {"nan_semantics"}
_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def jax_reference(name, program, xs, cts):
    if name in EAGER_REFERENCE:
        return program(xs, cts)
    return jax.jit(program).lower(xs, cts).compile(_QUICK_COMPILE)(xs, cts)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_and_vjp_match_jax(name):
    f, xs, may_fall_back = CASES[name]
    cts = random_cotangent(f, xs, np.random.default_rng(7))
    program = vjp_program(f)
    expected = jax_reference(name, program, xs, cts)
    assert_same(numpy_call(f, *xs), expected[0])
    assert_same(numpy_call(program, xs, cts), expected)
    assert set(fallback_counts) <= set(may_fall_back), dict(fallback_reasons)
    assert set(may_fall_back) <= set(fallback_counts)  # the case does exercise the fallback


def test_no_compilation_for_a_new_layer():
    """The point of the module: a never-seen shape is differentiated without XLA compiling."""
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    x, g, b = R.normal(size=(11, 7)), R.normal(size=7), R.normal(size=7)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        out, (dx, dg, db) = numpy_call(vjp_program(batchnorm), (x, g, b), x)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == [] and not fallback_counts
    np.testing.assert_allclose(db, x.sum(0), rtol=1e-13)


_twice_p = Primitive("test_only_twice")
_twice_p.def_impl(lambda x: 2 * x)
_twice_p.def_abstract_eval(lambda aval: aval)


def test_unknown_primitive_falls_back_to_jax_and_is_recorded():
    x = R.normal(size=(2, 3))
    out = numpy_call(lambda x: jnp.sin(_twice_p.bind(x)) + 1, x)
    np.testing.assert_allclose(out, np.sin(2 * x) + 1, rtol=1e-15)
    assert type(out) is np.ndarray
    assert fallback_counts == {"test_only_twice": 1}
    assert fallback_reasons["test_only_twice"] == "no numpy implementation"


def test_parameters_numpy_cannot_handle_fall_back():
    x = R.normal(size=5)
    out = numpy_call(lambda x: lax.reduce_precision(x, exponent_bits=5, mantissa_bits=10), x)
    np.testing.assert_array_equal(out, np.asarray(x, dtype=np.float16).astype(np.float64))
    assert fallback_counts == {"reduce_precision": 1}
    assert "narrower" in fallback_reasons["reduce_precision"]


def test_evaluate_runs_a_closed_jaxpr_with_constants_and_literals():
    table = np.arange(3.0) * 10

    def f(x, k):
        return jnp.tanh(x) * table + 2.0, (k * 3) // 2

    x, k = R.normal(size=3), np.int32(5)
    closed = jax.make_jaxpr(f)(x, k)
    assert closed.consts  # ``table`` is a constant of the jaxpr, not an argument
    out = evaluate(closed, x, k)
    assert isinstance(out, list) and len(out) == 2
    assert_same(tuple(out), f(x, k))
    with pytest.raises(ValueError, match="shape"):
        evaluate(closed, R.normal(size=4), k)


def test_outputs_are_fresh_arrays_and_python_scalars_work():
    x = np.ones(3)
    out = numpy_call(lambda x, s: (x, s * 2, jnp.zeros(())), x, 1.5)
    assert out[0] is not x and not np.shares_memory(out[0], x) and out[0].flags.writeable
    assert_same(out, (x, np.float64(3.0), np.zeros(())))


def test_kwargs_are_traced_too():
    out = numpy_call(lambda x, *, scale: x * scale, np.arange(3.0), scale=np.float64(2.0))
    np.testing.assert_array_equal(out, [0.0, 2.0, 4.0])


def test_untraceable_function_raises_make_jaxprs_error():
    with pytest.raises(jax.errors.TracerBoolConversionError):
        numpy_call(lambda x: x if x.sum() > 0 else -x, np.ones(3))

"""The layer zoo is sound test data: every right backward is right, every bug is a bug.

The judge is outside the code under test (and outside the oracle): each layer's forward is
written again by hand in ``jax.numpy`` (``REFERENCES`` below; convolutions through
``jax.lax.conv_general_dilated``), and ``jax.vjp`` of that re-write with a seeded random
cotangent must equal the layer's ``backward``. The buggy backward must differ from the right one
for ``bug_input`` (and only from it on, in input order), with the same shapes. Nothing may
modify its inputs. ``style``'s claims are checked too: ``jnp_traceable`` by really tracing the
forward, ``loop``/``inplace``/``ufunc`` by reading its source.
"""

from __future__ import annotations

import ast
import copy
import inspect
import math
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle.jax_support import UntraceableError, jax, jnp, traceable  # noqa: E402  (x64 first)

from . import layer_zoo  # noqa: E402
from .layer_zoo import LAYERS, ZooLayer  # noqa: E402

REQUIRED = ("affine", "conv1d_naive", "conv2d_naive", "conv2d_im2col", "max_pool_naive",
            "avg_pool", "batchnorm", "layernorm", "dropout_bool_mask", "embedding",
            "softmax_last_axis", "softmax_axis0", "attention", "rnn_step", "lstm_step",
            "gru_step", "softmax_cross_entropy", "svm_hinge")
STYLES = {"ufunc", "inplace", "loop", "fancy", "jnp_traceable"}

RTOL_VJP = 1e-10
"""Norm-wise relative (max |diff| / max |JAX|, per input): both sides are float64 with a few
hundred operations each, so they differ by round-off, ~1e-14; 1e-10 leaves room for the
cancellations of the normalisations (dx of batchnorm sums terms ~1/std that cancel)."""
RTOL_FORWARD = 1e-12
"""Norm-wise relative: the same computation in two libraries, a few dozen operations."""
MIN_BUG = 1e-6
"""A bug must change at least one entry of its input's gradient by this much, relative to the
entry (floored at 1e-8 of the gradient's largest entry, so round-off noise on a zero cannot)."""
SEEDS = (0, 1)


# ---------------------------------------------------------------------------------------------
# The forwards again, by hand in jax.numpy
# ---------------------------------------------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + jnp.exp(-z))


def _conv(x, w, b, stride, pad, dims):
    spatial = len(dims[0]) - 2
    out = jax.lax.conv_general_dilated(
        x, w, window_strides=(stride,) * spatial, padding=[(pad, pad)] * spatial,
        dimension_numbers=dims, precision=jax.lax.Precision.HIGHEST)
    return out + b.reshape((1, -1) + (1,) * spatial)


def _norm(x, axes, eps):
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps)


def _softmax(x, axis):
    e = jnp.exp(x - jnp.max(x, axis=axis, keepdims=True))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def _log_softmax(x):
    return x - jax.scipy.special.logsumexp(x, axis=1, keepdims=True)


def _pool_windows(x, size, stride):
    """The (size*size) strided slices of x whose stack is every pooling window."""
    H_out = (x.shape[2] - size) // stride + 1
    W_out = (x.shape[3] - size) // stride + 1
    return jnp.stack([x[:, :, di:di + stride * (H_out - 1) + 1:stride,
                        dj:dj + stride * (W_out - 1) + 1:stride]
                      for di in range(size) for dj in range(size)])


def _attention(q, k, v):
    scores = jnp.einsum("btd,bsd->bts", q, k) / math.sqrt(q.shape[-1])
    return jnp.einsum("bts,bsv->btv", _softmax(scores, -1), v)


def _lstm(x, h, c, Wx, Wh, b):
    i, f, o, g = jnp.split(x @ Wx + h @ Wh + b, 4, axis=1)
    c_next = _sigmoid(f) * c + _sigmoid(i) * jnp.tanh(g)
    return _sigmoid(o) * jnp.tanh(c_next), c_next


def _gru(x, h, Wx, Wh, b):
    ax_z, ax_r, ax_n = jnp.split(x @ Wx + b, 3, axis=1)
    ah_z, ah_r, ah_n = jnp.split(h @ Wh, 3, axis=1)
    z = _sigmoid(ax_z + ah_z)
    n = jnp.tanh(ax_n + _sigmoid(ax_r + ah_r) * ah_n)
    return (1 - z) * n + z * h


def _svm(scores, y):
    onehot = jax.nn.one_hot(y, scores.shape[1], dtype=bool)
    correct = jnp.sum(jnp.where(onehot, scores, 0.0), axis=1, keepdims=True)
    margins = jnp.where(onehot, 0.0, jnp.maximum(scores - correct + layer_zoo.SVM_DELTA, 0.0))
    return jnp.mean(jnp.sum(margins, axis=1))


def _group_norm(x, gamma, beta):
    N, C, H, W = x.shape
    xg = x.reshape(N, layer_zoo.GN_GROUPS, -1)
    xhat = _norm(xg, 2, layer_zoo.GN_EPS).reshape(x.shape)
    return xhat * gamma[:, None, None] + beta[:, None, None]


_P = layer_zoo.DROPOUT_P
REFERENCES = {
    "affine": lambda x, w, b: jnp.dot(x, w) + b,
    "conv1d_naive": lambda x, w, b: _conv(x, w, b, 1, layer_zoo.CONV1D_PAD,
                                          ("NCH", "OIH", "NCH")),
    "conv2d_naive": lambda x, w, b: _conv(x, w, b, layer_zoo.CONV2D_STRIDE,
                                          layer_zoo.CONV2D_PAD, ("NCHW", "OIHW", "NCHW")),
    "conv2d_im2col": lambda x, w, b: _conv(x, w, b, layer_zoo.IM2COL_STRIDE,
                                           layer_zoo.IM2COL_PAD, ("NCHW", "OIHW", "NCHW")),
    "max_pool_naive": lambda x: jnp.max(
        _pool_windows(x, layer_zoo.MAXPOOL_SIZE, layer_zoo.MAXPOOL_STRIDE), axis=0),
    "avg_pool": lambda x: jnp.mean(
        _pool_windows(x, layer_zoo.AVGPOOL_SIZE, layer_zoo.AVGPOOL_STRIDE), axis=0),
    "batchnorm": lambda x, gamma, beta: _norm(x, 0, layer_zoo.BN_EPS) * gamma + beta,
    "batchnorm_no_eps": lambda x, gamma, beta: _norm(x, 0, 0.0) * gamma + beta,
    "spatial_batchnorm": lambda x, gamma, beta: (
        _norm(x, (0, 2, 3), layer_zoo.BN_EPS) * gamma[:, None, None] + beta[:, None, None]),
    "layernorm": lambda x, gamma, beta: _norm(x, 1, layer_zoo.LN_EPS) * gamma + beta,
    "group_norm": _group_norm,
    "l2_normalize": lambda x: x / jnp.linalg.norm(x, axis=1, keepdims=True),
    "dropout_bool_mask": lambda x, mask: jnp.where(mask, x / _P, 0.0),
    "dropout_float_mask": lambda x, mask: jnp.multiply(x, mask) / _P,
    "embedding": lambda ids, W: jnp.take(W, ids, axis=0),
    "softmax_last_axis": lambda x: _softmax(x, -1),
    "softmax_axis0": lambda x: _softmax(x, 0),
    "attention": _attention,
    "rnn_step": lambda x, h, Wx, Wh, b: jnp.tanh(x @ Wx + h @ Wh + b),
    "lstm_step": _lstm,
    "gru_step": _gru,
    "softmax_cross_entropy": lambda scores, y: -jnp.mean(
        jnp.take_along_axis(_log_softmax(scores), y[:, None], axis=1)),
    "svm_hinge": _svm,
    "mse": lambda pred, target: jnp.mean(jnp.square(pred - target)),
    "relu": lambda x: jnp.where(x > 0, x, 0.0),   # the subgradient 0 at 0, as the zoo's
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "residual_block": lambda x, W1, b1, W2, b2: x + jax.nn.relu(x @ W1 + b1) @ W2 + b2,
    "conv1d_windows": lambda x, w, b: _conv(x, w, b, 1, layer_zoo.CONV1D_PAD,
                                            ("NCH", "OIH", "NCH")),
    "relu_mask_write": lambda x: jnp.where(x > 0, x, 0.0),   # the zoo's subgradient 0 at 0
    "leaky_relu": lambda x: jnp.where(x < 0, layer_zoo.LEAKY_ALPHA * x, x),
    "elu_vectorize": lambda x: jnp.where(x > 0, x,
                                         layer_zoo.ELU_ALPHA * jnp.expm1(jnp.minimum(x, 0.0))),
    "piecewise_linear": lambda x, values: jnp.interp(x, jnp.asarray(layer_zoo.PWL_KNOTS),
                                                     values),
    "gelu_erf": lambda x: jax.nn.gelu(x, approximate=False),
}
OPTIONAL = {"gelu_erf"} if layer_zoo.erf is None else set()
"""Layers the zoo leaves out when an optional library is missing (gelu_erf: scipy)."""


# ---------------------------------------------------------------------------------------------
# Helpers: inputs, cotangents, gradients by name
# ---------------------------------------------------------------------------------------------


def _is_floating(a) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.floating)


def _named(layer: ZooLayer, inputs) -> dict:
    """The inputs by name (a tuple's names are the forward's parameter names)."""
    if isinstance(inputs, dict):
        return dict(inputs)
    names = list(inspect.signature(layer.forward).parameters)[:len(inputs)]
    return dict(zip(names, inputs))


def _call(fn, inputs, *lead):
    if isinstance(inputs, dict):
        return fn(*lead, **inputs)
    return fn(*lead, *inputs)


def _grads_by_name(layer: ZooLayer, inputs, grads) -> dict:
    """A backward's result by floating input name, after checking its structure."""
    floating = [k for k, v in _named(layer, inputs).items() if _is_floating(v)]
    if isinstance(inputs, dict):
        assert isinstance(grads, dict) and list(grads) == floating, (list(grads), floating)
        return grads
    if len(floating) == 1:
        assert isinstance(grads, np.ndarray), type(grads)
        return {floating[0]: grads}
    assert isinstance(grads, tuple) and len(grads) == len(floating), type(grads)
    return dict(zip(floating, grads))


def _cotangent(out, rng):
    if isinstance(out, tuple):
        return tuple(rng.normal(size=np.shape(o)) for o in out)
    if np.ndim(out) == 0:
        return float(rng.normal())
    return rng.normal(size=np.shape(out))


def _setup(name: str, seed: int):
    layer = LAYERS[name]
    rng = np.random.default_rng(seed)
    inputs = layer.make_inputs(rng)
    out = _call(layer.forward, inputs)
    return layer, inputs, out, _cotangent(out, rng)


def _jax_vjp(fn, layer: ZooLayer, inputs, cotangent) -> tuple[object, dict]:
    """``fn``'s output and JAX's gradients of <cotangent, fn(inputs)> by floating input name;
    constants are passed as they are (numpy)."""
    named = _named(layer, inputs)
    floating = [k for k, v in named.items() if _is_floating(v)]

    def f(*values):
        args = dict(named, **dict(zip(floating, values)))
        return _call(fn, args if isinstance(inputs, dict) else tuple(args.values()))

    out, pullback = jax.vjp(f, *(jnp.asarray(named[k]) for k in floating))
    cot = (tuple(jnp.asarray(c) for c in cotangent) if isinstance(cotangent, tuple)
           else jnp.asarray(cotangent))
    return out, {k: np.asarray(g) for k, g in zip(floating, pullback(cot))}


def _rel(a, b) -> float:
    """max |a - b| / max |b| (0 when both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b), initial=0.0)
    diff = np.max(np.abs(a - b), initial=0.0)
    return diff / scale if scale else diff


def _entrywise_rel(a, b) -> float:
    """The largest change of one entry relative to that entry (floored, see MIN_BUG)."""
    floor = 1e-8 * np.max(np.abs(b), initial=0.0) or 1e-300
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor), initial=0.0))


def _leaves(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------


def test_the_zoo_has_every_required_layer_and_at_least_twenty():
    assert len(LAYERS) >= 20
    assert not set(REQUIRED) - set(LAYERS)
    assert set(REFERENCES) == set(LAYERS) | OPTIONAL


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_layer_is_well_formed(name):
    layer = LAYERS[name]
    assert layer.name == name
    assert layer.style <= STYLES and layer.bug and "\n" not in layer.bug
    for seed in SEEDS:
        inputs = layer.make_inputs(np.random.default_rng(seed))
        named = _named(layer, inputs)
        assert layer.bug_input in named and _is_floating(named[layer.bug_input])
        for value in named.values():
            assert isinstance(value, np.ndarray) and value.size <= 200
            assert value.dtype in (np.float64, np.bool_) or np.issubdtype(value.dtype,
                                                                         np.integer)
    again = layer.make_inputs(np.random.default_rng(SEEDS[0]))
    first = layer.make_inputs(np.random.default_rng(SEEDS[0]))
    for a, b in zip(_named(layer, again).values(), _named(layer, first).values()):
        np.testing.assert_array_equal(a, b)   # seeded


# ---------------------------------------------------------------------------------------------
# Right and buggy backward against JAX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_the_forward_equals_the_jax_rewrite(name, seed):
    layer, inputs, out, cotangent = _setup(name, seed)
    ref_out, _ = _jax_vjp(REFERENCES[name], layer, inputs, cotangent)
    assert isinstance(ref_out, tuple) == isinstance(out, tuple)
    assert len(_leaves(out)) == len(_leaves(ref_out))
    for o, r in zip(_leaves(out), _leaves(ref_out)):
        assert np.shape(o) == np.shape(r) and np.asarray(o).dtype == np.float64
        assert _rel(o, r) <= RTOL_FORWARD, _rel(o, r)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_the_right_backward_equals_jax_vjp(name, seed):
    layer, inputs, _, cotangent = _setup(name, seed)
    _, expected = _jax_vjp(REFERENCES[name], layer, inputs, cotangent)
    got = _grads_by_name(layer, inputs, _call(layer.backward, inputs, cotangent))
    assert list(got) == list(expected)
    for k in expected:
        assert got[k].shape == expected[k].shape and got[k].dtype == np.float64, k
        assert _rel(got[k], expected[k]) <= RTOL_VJP, (k, _rel(got[k], expected[k]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_the_bug_changes_its_inputs_gradient_and_no_earlier_one(name, seed):
    layer, inputs, _, cotangent = _setup(name, seed)
    right = _grads_by_name(layer, inputs, _call(layer.backward, inputs, cotangent))
    wrong = _grads_by_name(layer, inputs, _call(layer.buggy, inputs, cotangent))
    assert list(wrong) == list(right)
    for k in right:
        assert np.shape(wrong[k]) == np.shape(right[k]), k
    assert _entrywise_rel(wrong[layer.bug_input], right[layer.bug_input]) >= MIN_BUG
    for k in list(right)[:list(right).index(layer.bug_input)]:
        assert _rel(wrong[k], right[k]) <= 1e-12, k


@pytest.mark.parametrize("name", list(LAYERS))
def test_nothing_modifies_its_inputs_or_the_cotangent(name):
    layer, inputs, _, cotangent = _setup(name, SEEDS[0])
    before, cot_before = copy.deepcopy(inputs), copy.deepcopy(cotangent)
    _call(layer.forward, inputs)
    _call(layer.backward, inputs, cotangent)
    _call(layer.buggy, inputs, cotangent)
    for a, b in zip(_named(layer, inputs).values(), _named(layer, before).values()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(cotangent), _leaves(cot_before)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [n for n, layer in LAYERS.items() if layer.kinks])
def test_kinked_layers_really_sit_on_their_kinks(name):
    layer, inputs, _, _ = _setup(name, SEEDS[0])
    assert any(np.any(v == 0.0) for v in _named(layer, inputs).values() if _is_floating(v))


# ---------------------------------------------------------------------------------------------
# The style tags are honest
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LAYERS))
def test_jnp_traceable_is_exactly_the_forwards_jax_can_differentiate(name):
    layer, inputs, _, cotangent = _setup(name, SEEDS[0])
    try:
        _, grads = traceable(_jax_vjp, layer.forward, layer, inputs, cotangent)
    except (UntraceableError, ValueError):
        # ValueError: a tracer written into a numpy buffer (max_pool_naive's
        # ``out[n, c, i, j] = np.max(window)``: np.max of a tracer is a tracer) is "setting an
        # array element with a sequence", caused by JAX's ConcretizationTypeError.
        assert "jnp_traceable" not in layer.style
        return
    assert "jnp_traceable" in layer.style
    right = _grads_by_name(layer, inputs, _call(layer.backward, inputs, cotangent))
    for k in grads:
        assert _rel(right[k], grads[k]) <= RTOL_VJP, k


def _source_trees(fn, seen=None):
    """The AST of ``fn`` and of every layer_zoo function it calls by name, recursively."""
    seen = set() if seen is None else seen
    if fn in seen:
        return []
    seen.add(fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    trees = [tree]
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            helper = getattr(layer_zoo, node.id, None)
            if inspect.isfunction(helper) and helper.__module__ == layer_zoo.__name__:
                trees += _source_trees(helper, seen)
    return trees


def _written_styles(fn) -> set[str]:
    styles = set()
    for tree in _source_trees(fn):
        for node in ast.walk(tree):
            if isinstance(node, ast.For | ast.While | ast.comprehension):
                styles.add("loop")
            if isinstance(node, ast.AugAssign) or (
                    isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Subscript) for t in node.targets)):
                styles.add("inplace")
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "np"
                    and isinstance(getattr(np, node.attr, None), np.ufunc)):
                styles.add("ufunc")
    return styles


@pytest.mark.parametrize("name", list(LAYERS))
def test_loop_inplace_ufunc_tags_match_the_forwards_source(name):
    layer = LAYERS[name]
    assert _written_styles(layer.forward) == layer.style & {"loop", "inplace", "ufunc"}

"""The second-order zoo (``second_order_zoo.py``): its truth, and the oracle's verdicts on it.

Truth is outside the oracle. Each scalar function is written again in ``jax.numpy``
(``HVP_REFERENCES``), and its Hessian-vector product is JAX's forward-over-reverse
``jvp(grad f)`` (the oracle differentiates reverse over reverse); each layer's forward is
written again too (``LAYER_REFERENCES``) and its double backward is JAX's VJP of JAX's VJP.
Every right derivation must equal JAX's; every bug must move its entries by at least
``MIN_BUG`` and leave the others alone (to round-off), exactly where the zoo says it acts;
``dense_relu``'s dropped term must change nothing at all.

Then the oracle: ``check_hvp`` and ``check_double_backward`` must pass every right derivation
without doubt and fail every visible bug, naming exactly the inputs and entries the bug moves
(computed here from the two derivations, never from the oracle). Without JAX (``jax=False``
for a few numpy functions; a numpy forward JAX cannot trace for a few layers) the same verdicts
hold. ``test_without_jax_every_bug_is_caught`` is an expected failure: see its docstring.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle import check_double_backward, check_hvp  # noqa: E402
from oracle.jax_support import jax, jnp  # noqa: E402

from . import second_order_zoo as zoo  # noqa: E402
from .second_order_zoo import BUG_CLASSES, DOUBLE_BACKWARDS, HVPS  # noqa: E402

RTOL_TRUTH = 1e-10
"""Norm-wise relative (max |diff| / max |JAX|): hand and JAX compute the same float64 value by a
few dozen operations in different orders, ~1e-15 apart; 1e-10 leaves room for layernorm's
cancelling sums (terms ~1/sd) and still catches any wrong term (those are >= 1e-2 here)."""
MIN_BUG = 1e-6
"""Every entry a bug moves, it moves by at least this, relative to the entry (floored at 1e-3
of the largest entry, so an entry near 0 needs a change 1e-9 of the scale). The oracle's
tolerance against JAX is 1e-9 (|a| + 1e-3 S): a planted entry is >= 500 tolerances off, so the
oracle must name every one of them."""
PLANTED = 1e-12
"""An entry whose buggy value departs from the right one by more than this (relative to the
largest entry) is planted; two formulas of one value differ by ~1e-16, so the planted entries
are exactly those the bug touches, and the soundness tests require each of them to move by
MIN_BUG."""
NO_JAX_HVPS = ("rosenbrock", "ridge", "quartic", "mlp_relu2")
"""Entries checked by second differences alone (``jax=False``) too."""
NOISY_NO_JAX_HVPS = ("logistic", "log_sum_exp", "gauss_newton")
"""Entries whose difference quotient along v carries f's round-off over the inner step: their
bugs must be caught by second differences alone all the same."""
NUMPY_FORWARD_LAYERS = ("dense_tanh", "dense_relu", "layernorm")


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b), initial=0.0)
    diff = np.max(np.abs(a - b), initial=0.0)
    return float(diff / scale if scale else diff)


def _planted(buggy, right) -> np.ndarray:
    """The entries the bug touches (see PLANTED)."""
    buggy, right = np.asarray(buggy, dtype=np.float64), np.asarray(right, dtype=np.float64)
    return np.abs(buggy - right) > PLANTED * max(float(np.max(np.abs(right))), 1e-300)


def _moved_enough(buggy, right, planted) -> bool:
    """Every planted entry moved by MIN_BUG relative (floored, see MIN_BUG)."""
    buggy, right = np.asarray(buggy, dtype=np.float64), np.asarray(right, dtype=np.float64)
    floor = 1e-3 * float(np.max(np.abs(right)))
    moved = np.abs(buggy - right) >= MIN_BUG * np.maximum(np.abs(right), floor)
    return bool(np.all(moved[planted]))


# ---------------------------------------------------------------------------------------------
# The functions and layers again, by hand in jax.numpy
# ---------------------------------------------------------------------------------------------


def _xent(z, labels):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z, axis=1), labels[:, None], 1))


def _mlp_reference(act, loss, n_out):
    def f(x):
        i, h = zoo.MLP_IN, zoo.MLP_HIDDEN
        w1 = jnp.reshape(x[:i * h], (i, h))
        b1 = x[i * h:i * h + h]
        w2 = jnp.reshape(x[i * h + h:i * h + h + h * n_out], (h, n_out))
        b2 = x[i * h + h + h * n_out:]
        z = act(zoo.MLP_X @ w1 + b1) @ w2 + b2
        if loss == "mse":
            return 0.5 * jnp.mean(jnp.sum((z - zoo.MLP_T) ** 2, axis=1))
        return _xent(z, zoo.MLP_LABELS)

    return f


def _ridge(x):
    w, b = x[:-1], x[-1]
    return 0.5 * jnp.mean((zoo.RIDGE_X @ w + b - zoo.RIDGE_Y) ** 2) + zoo.RIDGE_LAMBDA * w @ w


HVP_REFERENCES = {
    "softmax_xent": lambda z: _xent(z, zoo.XENT_LABELS),
    "logistic": lambda w: jnp.mean(jax.nn.softplus(-zoo.LOGISTIC_Y * (zoo.LOGISTIC_X @ w))),
    "log_sum_exp": jax.scipy.special.logsumexp,
    "rosenbrock": lambda x: jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
    "ridge": _ridge,
    "gauss_newton": lambda w: 0.5 * jnp.sum((jnp.tanh(zoo.GN_X @ w) - zoo.GN_Y) ** 2),
    "quartic": lambda x: 0.25 * (x @ x) ** 2,
    "mlp_tanh": _mlp_reference(jnp.tanh, "mse", 2),
    "mlp_sigmoid": _mlp_reference(jax.nn.sigmoid, "mse", 2),
    "mlp_softplus_xent": _mlp_reference(jax.nn.softplus, "xent", 3),
    "mlp_relu2": _mlp_reference(lambda a: jax.nn.relu(a) ** 2, "mse", 2),
}


def _dense_reference(act):
    return lambda x, w, b: act(x @ w + b)


def _norm_reference(axis):
    def forward(x, gamma, beta):
        mu = jnp.mean(x, axis=axis, keepdims=True)
        return (x - mu) / jnp.sqrt(jnp.var(x, axis=axis, keepdims=True) + zoo.NORM_EPS) \
            * gamma + beta

    return forward


LAYER_REFERENCES = {
    "dense_tanh": _dense_reference(jnp.tanh),
    "dense_sigmoid": _dense_reference(jax.nn.sigmoid),
    "dense_relu": _dense_reference(jax.nn.relu),
    "dense_softplus": _dense_reference(jax.nn.softplus),
    "layernorm": _norm_reference(1),
    "batchnorm": _norm_reference(0),
}


# ---------------------------------------------------------------------------------------------
# Points, directions, cotangents (seeded), and JAX's answers
# ---------------------------------------------------------------------------------------------


def _hvp_point(entry, seed=0):
    rng = np.random.default_rng(seed)
    x = entry.make_x(rng)
    return x, rng.normal(size=x.shape)


def _layer_point(entry, seed=0):
    """Inputs, the first backward's cotangent dout, and the double backward's dd."""
    rng = np.random.default_rng(seed)
    inputs = entry.make_inputs(rng)
    dout = rng.normal(size=np.shape(entry.forward(*inputs)))
    dd = tuple(rng.normal(size=np.shape(g)) for g in entry.backward(dout, *inputs))
    return inputs, dout, dd


def _jax_hvp(name, x, v):
    grad = jax.grad(HVP_REFERENCES[name])
    return np.asarray(jax.jvp(grad, (jnp.asarray(x),), (jnp.asarray(v),))[1])


def _jax_backward(name, dout, *inputs):
    _, pull = jax.vjp(LAYER_REFERENCES[name], *(jnp.asarray(a) for a in inputs))
    return pull(jnp.asarray(dout))


def _jax_double_backward(name, dd, dout, *inputs):
    _, pull = jax.vjp(lambda d, *xs: _jax_backward(name, d, *xs),
                      *(jnp.asarray(a) for a in (dout, *inputs)))
    return tuple(np.asarray(g) for g in pull(tuple(jnp.asarray(c) for c in dd)))


def _names(entry):
    """The rows of a double-backward report: dout, then forward's parameters."""
    return ("dout", *inspect.signature(entry.forward).parameters)


# ---------------------------------------------------------------------------------------------
# The zoo is sound
# ---------------------------------------------------------------------------------------------


def test_the_zoo_has_twelve_visible_bugs_of_every_class_and_the_relu_blind_spot():
    entries = [*HVPS.values(), *DOUBLE_BACKWARDS.values()]
    visible = [e for e in entries if not isinstance(e, zoo.DoubleBackwardEntry) or e.bug_inputs]
    assert len(visible) >= 12
    assert {e.bug_class for e in visible} == set(BUG_CLASSES)
    assert [e.name for e in entries if e not in visible] == ["dense_relu"]
    assert set(HVP_REFERENCES) == set(HVPS) and set(LAYER_REFERENCES) == set(DOUBLE_BACKWARDS)


@pytest.mark.parametrize("name", list(HVPS))
@pytest.mark.parametrize("seed", [0, 1])
def test_each_hvp_is_right_and_each_bug_moves_exactly_its_entries(name, seed):
    entry = HVPS[name]
    x, v = _hvp_point(entry, seed)
    x0, v0 = x.copy(), v.copy()
    assert abs(entry.f(x) - float(HVP_REFERENCES[name](jnp.asarray(x)))) <= 1e-12 * max(
        1.0, abs(entry.f(x)))
    assert _rel(entry.grad(x), jax.grad(HVP_REFERENCES[name])(jnp.asarray(x))) <= RTOL_TRUTH
    truth = _jax_hvp(name, x, v)
    right, buggy = entry.hvp(x, v), entry.buggy(x, v)
    assert _rel(right, truth) <= RTOL_TRUTH, name
    assert buggy.shape == right.shape == x.shape
    planted = _planted(buggy, right)
    declared = np.zeros(x.size, bool)
    declared[entry.bug_entries or slice(None)] = True
    assert np.any(planted) and not np.any(planted.reshape(-1) & ~declared), (name, planted)
    if seed == 0:  # the oracle's point: the bug shows at every entry it may act on
        assert np.array_equal(planted.reshape(-1), declared), (name, planted)
    assert _moved_enough(buggy, right, planted), name
    assert np.array_equal(x, x0) and np.array_equal(v, v0)  # nothing modifies its inputs


@pytest.mark.parametrize("name", list(DOUBLE_BACKWARDS))
@pytest.mark.parametrize("seed", [0, 1])
def test_each_double_backward_is_right_and_each_bug_moves_exactly_its_inputs(name, seed):
    entry = DOUBLE_BACKWARDS[name]
    inputs, dout, dd = _layer_point(entry, seed)
    copies = [a.copy() for a in (*inputs, dout, *dd)]
    reference = LAYER_REFERENCES[name](*(jnp.asarray(a) for a in inputs))
    assert _rel(entry.forward(*inputs), reference) <= 1e-12
    assert np.array_equal(entry.numpy_forward(*inputs), entry.forward(*inputs))
    for got, want in zip(entry.backward(dout, *inputs), _jax_backward(name, dout, *inputs)):
        assert _rel(got, want) <= RTOL_TRUTH, name
    truth = _jax_double_backward(name, dd, dout, *inputs)
    right, buggy = entry.double_backward(dd, dout, *inputs), entry.buggy(dd, dout, *inputs)
    moved = []
    for input_name, r, b, t in zip(_names(entry), right, buggy, truth):
        assert _rel(r, t) <= RTOL_TRUTH, (name, input_name)
        assert np.shape(b) == np.shape(r) == np.shape(t)
        planted = _planted(b, r)
        assert _moved_enough(b, r, planted), (name, input_name)
        if np.any(planted):
            moved.append(input_name)
    assert tuple(moved) == entry.bug_inputs, (name, moved)
    assert all(np.array_equal(a, c) for a, c in zip((*inputs, dout, *dd), copies))


def test_relu_hides_the_dropped_term_and_tanh_shows_it():
    # The issue's dense-layer double backward drops d/dv act'(v): right for relu only.
    relu, tanh = DOUBLE_BACKWARDS["dense_relu"], DOUBLE_BACKWARDS["dense_tanh"]
    inputs, dout, dd = _layer_point(relu)
    assert np.min(np.abs(inputs[0] @ inputs[1] + inputs[2])) >= zoo.KINK_MARGIN
    truth = _jax_double_backward("dense_relu", dd, dout, *inputs)
    for got, want in zip(relu.buggy(dd, dout, *inputs), truth):
        assert _rel(got, want) <= RTOL_TRUTH  # JAX's own second derivative agrees
    inputs, dout, dd = _layer_point(tanh)
    truth = _jax_double_backward("dense_tanh", dd, dout, *inputs)
    assert all(_rel(g, t) > 0.1 for g, t in zip(tanh.buggy(dd, dout, *inputs)[1:], truth[1:]))


# ---------------------------------------------------------------------------------------------
# The oracle: right derivations pass, bugs are caught where they are
# ---------------------------------------------------------------------------------------------


def _assert_caught_exactly(report, planted: dict[str, np.ndarray]):
    """FAIL rows exactly at the inputs with planted entries, each naming exactly those."""
    assert not report.ok, str(report)
    assert {r.input for r in report.failures} == {k for k, m in planted.items() if np.any(m)}, \
        str(report)
    for row in report.rows:
        mask = row.mask if row.mask is not None else np.zeros(planted[row.input].shape, bool)
        assert np.array_equal(mask, planted[row.input]), (row.input, str(report))


@pytest.mark.parametrize("name", list(HVPS))
def test_check_hvp_passes_the_right_hvp_and_locates_the_bug(name):
    entry = HVPS[name]
    x, v = _hvp_point(entry)
    right = check_hvp(entry.f, entry.hvp, x, v=v)
    assert right.ok and right.count("doubt") == 0, str(right)
    assert right.rows[0].sources == ("jax", "fd") and right.rows[0].input == "x", str(right)
    wrong = check_hvp(entry.f, entry.buggy, x, v=v)
    _assert_caught_exactly(wrong, {"x": _planted(entry.buggy(x, v), entry.hvp(x, v))})


@pytest.mark.parametrize("name", list(DOUBLE_BACKWARDS))
def test_check_double_backward_passes_the_right_one_and_locates_the_bug(name):
    entry = DOUBLE_BACKWARDS[name]
    inputs, dout, dd = _layer_point(entry)

    def check(double_backward):
        return check_double_backward(entry.forward, entry.backward, double_backward, inputs,
                                     cotangent=dout, ddx=dd)

    right = check(entry.double_backward)
    assert right.ok and right.count("doubt") == 0, str(right)
    assert [r.input for r in right.rows] == list(_names(entry)), str(right)
    assert any("JAX's VJP of forward" in n for n in right.notes), right.notes
    wrong = check(entry.buggy)
    planted = {k: _planted(b, r) for k, b, r in zip(
        _names(entry), entry.buggy(dd, dout, *inputs), entry.double_backward(dd, dout, *inputs))}
    if not entry.bug_inputs:  # dense_relu: the dropped term is no bug for relu
        assert wrong.ok and wrong.count("doubt") == 0, str(wrong)
        assert not any(np.any(m) for m in planted.values())
    else:
        _assert_caught_exactly(wrong, planted)


@pytest.mark.parametrize("name", NO_JAX_HVPS)
def test_without_jax_second_differences_give_the_same_verdicts(name):
    entry = HVPS[name]
    x, v = _hvp_point(entry)
    right = check_hvp(entry.f, entry.hvp, x, v=v, jax=False)
    assert right.ok and right.count("doubt") == 0, str(right)
    assert "second differences alone" in right.headline and right.rows[0].sources == ("fd",)
    wrong = check_hvp(entry.f, entry.buggy, x, v=v, jax=False)
    _assert_caught_exactly(wrong, {"x": _planted(entry.buggy(x, v), entry.hvp(x, v))})


@pytest.mark.parametrize("name", NUMPY_FORWARD_LAYERS)
def test_a_numpy_forward_is_run_on_jax_arrays_with_the_same_verdicts(name):
    entry = DOUBLE_BACKWARDS[name]
    inputs, dout, dd = _layer_point(entry)

    def check(double_backward):
        return check_double_backward(entry.numpy_forward, entry.backward, double_backward,
                                     inputs, cotangent=dout, ddx=dd)

    right = check(entry.double_backward)
    assert right.ok and right.count("doubt") == 0, str(right)
    assert any("numpy code run on JAX arrays" in n for n in right.notes), right.notes
    wrong = check(entry.buggy)
    planted = {k: _planted(b, r) for k, b, r in zip(
        _names(entry), entry.buggy(dd, dout, *inputs), entry.double_backward(dd, dout, *inputs))}
    if entry.bug_inputs:
        _assert_caught_exactly(wrong, planted)
    else:
        assert wrong.ok, str(wrong)


@pytest.mark.parametrize("name", NOISY_NO_JAX_HVPS)
def test_without_jax_every_bug_is_caught(name):
    entry = HVPS[name]
    x, v = _hvp_point(entry)
    wrong = check_hvp(entry.f, entry.buggy, x, v=v, jax=False)
    assert not wrong.ok, str(wrong)

"""``check_vjp``, its adapters and ``check_layers``: the contract, checked on small layers whose
right gradients are written out in closed form here and whose bugs are planted here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle import check_gradient, check_layers, check_vjp  # noqa: E402
from oracle.adapters import cached, layer  # noqa: E402

RNG = np.random.default_rng(11)
X = RNG.normal(size=(4, 3))
W = RNG.normal(size=(3, 5))
B = RNG.normal(size=5)


def dense(x, w, b):
    return np.tanh(x @ w + b)


def dense_backward(dout, x, w, b):
    dv = dout * (1 - np.tanh(x @ w + b) ** 2)
    return dv @ w.T, x.T @ dv, dv.sum(axis=0)


def _frozen(*arrays):
    return [(a.shape, a.dtype, a.tobytes()) for a in arrays]


# --- inputs, names and the gradients' forms ---------------------------------------------------


def test_tuple_inputs_are_named_by_forwards_parameters_and_pass():
    report = check_vjp(dense, dense_backward, (X, W, B))
    assert report.ok and [r.input for r in report.rows] == ["x", "w", "b"], str(report)
    assert [r.term for r in report.rows] == ["dx", "dw", "db"]
    assert report.count("doubt") == 0


def test_dict_inputs_are_passed_as_keywords_and_named_by_key():
    def forward(*, a, weights):
        return a @ weights

    def backward(dout, *, a, weights):
        return {"a": dout @ weights.T, "weights": a.T @ dout}

    report = check_vjp(forward, backward, {"a": X, "weights": W})
    assert report.ok and [r.input for r in report.rows] == ["a", "weights"], str(report)


def test_inputs_without_names_are_named_by_position():
    report = check_vjp(lambda *a: a[0] * a[1], lambda d, *a: (d * a[1], d * a[0]), (X, X + 1))
    assert [r.input for r in report.rows] == ["inputs[0]", "inputs[1]"], str(report)


def test_a_planted_wrong_entry_is_located_in_the_inputs_own_shape_and_counted():
    def backward(dout, x, w, b):
        dx, dw, db = dense_backward(dout, x, w, b)
        dw[2, 1] += 1e-6 * abs(dw[2, 1])  # 1e-6 relative in one entry
        dw[0, 4] *= -1
        dw[1, 3] = 0.0
        return dx, dw, db

    report = check_vjp(dense, backward, (X, W, B))
    assert not report.ok
    row = report.row("w")
    assert row.wrong == 3 and sorted(report.wrong_entries("w")) == [(0, 4), (1, 3), (2, 1)]
    assert report.row("x").wrong == 0 and report.row("b").wrong == 0
    assert report.headline.startswith("FAIL: dw"), report.headline
    data = json.loads(report.to_json())
    assert sorted(map(tuple, data["rows"][1]["wrong_entries"])) == [(0, 4), (1, 3), (2, 1)]


def test_integer_inputs_are_constants_and_backward_may_list_them_or_not():
    labels = np.array([0, 2, 1, 1])

    def loss(s, y):
        z = s - s.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return -np.mean(np.log(p[np.arange(len(y)), y]))

    def grad(dout, s, y):
        z = s - s.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        return dout * p / len(y)

    one = check_vjp(loss, grad, (X, labels))
    both = check_vjp(loss, lambda d, s, y: (grad(d, s, y), None), (X, labels))
    assert one.ok and both.ok and [r.input for r in one.rows] == ["s"], str(one)
    assert labels.tolist() == [0, 2, 1, 1]


def test_the_callers_arrays_and_containers_never_change():
    running = np.ones(5)
    config = {"calls": 0, "running_mean": running}

    def forward(x, w, b, conf):
        conf["calls"] += 1
        conf["running_mean"] *= 0.5  # a bn_param's array updated in place
        x += 0.0  # code that writes into its inputs
        return dense(x, w, b)

    def backward(dout, x, w, b, conf):
        grads = dense_backward(dout, x, w, b)
        w[...] = 0.0
        dout[...] = 0.0
        return grads

    before = _frozen(X, W, B)
    cot = RNG.normal(size=(4, 5))
    cot_before = cot.copy()
    report = check_vjp(forward, backward, (X, W, B, config), cotangent=cot)
    assert report.ok, str(report)
    assert _frozen(X, W, B) == before and config["calls"] == 0
    assert config["running_mean"] is running and np.array_equal(running, np.ones(5))
    assert np.array_equal(cot, cot_before)


# --- cotangents and wrt ----------------------------------------------------------------------


def test_tuple_outputs_take_a_tuple_cotangent_and_a_wrong_shape_is_refused():
    def forward(x, w):
        return x @ w, np.sin(x)

    def backward(douts, x, w):
        d0, d1 = douts
        return d0 @ w.T + d1 * np.cos(x), x.T @ d0

    cot = (RNG.normal(size=(4, 5)), RNG.normal(size=(4, 3)))
    assert check_vjp(forward, backward, (X, W), cotangent=cot).ok
    assert check_vjp(forward, backward, (X, W)).ok
    with pytest.raises(ValueError, match=r"cotangent\[1\] must have the output's shape"):
        check_vjp(forward, backward, (X, W), cotangent=(cot[0], cot[0]))


def test_a_scalar_output_gets_the_cotangent_one():
    seen = []

    def backward(dout, x):
        seen.append(dout)
        return 2 * x

    assert check_vjp(lambda x: np.sum(x**2), backward, (X,)).ok
    assert seen == [1.0]


def test_wrt_picks_inputs_and_refuses_constants_and_unknown_names():
    report = check_vjp(dense, dense_backward, (X, W, B), wrt=["b", 0])
    assert [r.input for r in report.rows] == ["x", "b"]
    with pytest.raises(ValueError, match="wrt names 'v'"):
        check_vjp(dense, dense_backward, (X, W, B), wrt="v")
    with pytest.raises(ValueError, match="constant"):
        check_vjp(lambda x, y: x[y], lambda d, x, y: d, (X, np.array([1, 2])), wrt="y")


# --- what the user's code does wrong is a verdict, never a crash --------------------------------


def test_a_backward_that_raises_or_returns_the_wrong_form_is_a_fail_row():
    def raises(dout, x, w, b):
        raise RuntimeError("boom")

    report = check_vjp(dense, raises, (X, W, B))
    assert not report.ok and "RuntimeError: boom" in report.headline
    report = check_vjp(dense, lambda d, x, w, b: (d, d), (X, W, B))
    assert not report.ok and "2 gradients" in report.headline, report.headline
    report = check_vjp(dense, lambda d, x, w, b: (*dense_backward(d, x, w, b)[:2], B[:3]),
                       (X, W, B))
    assert not report.ok and "wrong shape" in report.headline and "'b'" in report.headline


def test_code_jax_can_only_partly_trace_never_crashes():
    def grad(x):
        g = np.zeros_like(x)
        g[[0, 1]] = 2 * x[[0, 1]]
        return g

    x = RNG.normal(size=(3, 2))
    for jax in (True, "direct"):
        report = check_gradient(lambda z: np.sum(z[[0, 1]] ** 2), grad, x, jax=jax)
        assert report.ok, str(report)


def test_a_forward_jax_computes_differently_is_not_trusted():
    def forward(x):  # numpy gives 2x, JAX's trace 3x: JAX differentiates another function
        return x * (2.0 if isinstance(x, np.ndarray) else 3.0)

    report = check_vjp(forward, lambda d, x: 2.0 * d, (X,), jax="direct")
    assert report.ok and report.rows[0].sources == ("fd",), str(report)
    assert any("other values than numpy's" in n for n in report.notes), report.notes


def test_the_jax_switch_leaves_jax_out_and_the_headline_says_which_sources_judged():
    left_out = check_vjp(dense, dense_backward, (X, W, B), jax=False)
    assert left_out.ok and all(r.sources == ("fd",) for r in left_out.rows)
    assert "finite differences alone: JAX left out" in left_out.headline
    both = check_vjp(dense, dense_backward, (X, W, B))
    assert "judged by JAX and finite differences" in both.headline


def test_a_forward_that_is_not_deterministic_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="not deterministic"):
        check_vjp(lambda x: x * rng.uniform(size=x.shape), lambda d, x: d, (X,))


@pytest.mark.parametrize("kwargs, match", [
    ({"fd": "sometimes"}, "fd must be one of"),
    ({"directions": 0}, "directions must be a positive integer"),
    ({"max_exhaustive": -1}, "max_exhaustive must be a positive integer"),
    ({"jax": "maybe"}, "jax must be True, False or 'direct'"),
    ({"jax": False, "fd": "none"}, "no source of truth"),
])
def test_bad_options_are_refused_naming_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_vjp(dense, dense_backward, (X, W, B), **kwargs)


def test_bad_inputs_are_refused_naming_them():
    with pytest.raises(TypeError, match="pass \\(x,\\) for a single input"):
        check_vjp(dense, dense_backward, X)
    with pytest.raises(ValueError, match="input 'w' must be finite"):
        check_vjp(dense, dense_backward, (X, np.full_like(W, np.nan), B))
    with pytest.raises(ValueError, match="no differentiable input"):
        check_vjp(lambda y: y, lambda d, y: d, (np.arange(3),))


def test_an_object_array_input_is_refused_naming_it():
    with pytest.raises(TypeError, match="input 'w' is an object array"):
        check_vjp(dense, dense_backward, (X, W.astype(object), B))


@pytest.mark.parametrize(("error", "kind"), [(RuntimeError, ValueError), (KeyError, ValueError),
                                             (TypeError, TypeError), (ValueError, ValueError)])
def test_an_exception_in_forward_is_said_to_come_from_forward(error, kind):
    def forward(x, w, b):
        raise error("inside the user's code")

    with pytest.raises(kind, match=f"forward raised {error.__name__} at the given inputs: "
                                   ".*inside the user's code"):
        check_vjp(forward, dense_backward, (X, W, B))


def test_a_forward_returning_out_and_cache_is_pointed_to_the_adapter():
    with pytest.raises(TypeError, match=r"adapters\.cached\(forward, backward\)"):
        check_vjp(lambda x: (x * 2.0, (x,)), lambda d, x: 2.0 * d, (X,))


@pytest.mark.parametrize("jax", [True, False])
def test_a_forward_whose_output_changes_structure_beside_the_inputs_is_said(jax):
    """At x its output is one array; a hair away, a tuple (a branch on an exact value): the
    pairing <c, f> has no value there, so finite differences there are left out and said."""
    a = np.ones(3)

    def forward(x):
        return x * 2.0 if x[0] == 1.0 else (x * 2.0, x)

    report = check_vjp(forward, lambda d, x: 2.0 * d, (a,), jax=jax)
    changed = [n for n in report.notes if "changed its structure" in n]
    assert changed and "a tuple of 2 instead of an array" in changed[0], report.notes
    assert report.count("FAIL") == 0, str(report)


# --- a check never reuses an earlier check's program -------------------------------------------


SCALE = {"a": np.array([1.0, 1.0, 1.0, 1.0])}


def _scaled(x):
    return x * SCALE["a"]


def test_a_forward_whose_global_changed_is_judged_by_its_new_derivative(monkeypatch):
    """The global's change leaves forward's output at this x unchanged (x_0 = 0), but not its
    derivative: a program kept from the first check would pass the old derivative."""
    x = np.array([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setitem(SCALE, "a", np.array([1.0, 1.0, 1.0, 1.0]))
    assert check_vjp(_scaled, lambda d, x: d * np.ones(4), (x,)).ok
    monkeypatch.setitem(SCALE, "a", np.array([5.0, 1.0, 1.0, 1.0]))
    stale = check_vjp(_scaled, lambda d, x: d * np.ones(4), (x,))
    assert stale.wrong_entries("x") == [(0,)], str(stale)
    assert check_vjp(_scaled, lambda d, x: d * SCALE["a"], (x,)).ok


# --- large inputs: directions screen, entries are still named ----------------------------------


def _big():
    x = np.random.default_rng(5).normal(size=(60, 50))  # 3,000 entries > max_exhaustive

    def grad(z):
        return np.cos(z)

    def wrong(z):
        g = np.cos(z)
        g[17, 23] *= -1
        return g

    return x, grad, wrong


def test_a_large_input_with_jax_is_located_to_its_entry_not_to_a_direction():
    x, grad, wrong = _big()
    assert check_gradient(lambda z: np.sum(np.sin(z)), grad, x).ok
    report = check_gradient(lambda z: np.sum(np.sin(z)), wrong, x)
    row = report.rows[0]
    assert not report.ok and row.index == (17, 23) and row.wrong == 1, str(report)
    assert row.direction is None


def test_a_large_input_without_jax_says_it_failed_along_a_direction_not_at_an_entry():
    x, grad, wrong = _big()
    assert check_gradient(lambda z: np.sum(np.sin(z)), grad, x, jax=False).ok
    report = check_gradient(lambda z: np.sum(np.sin(z)), wrong, x, jax=False)
    row = report.rows[0]
    assert not report.ok and row.index == () and row.direction is not None, str(report)
    assert "along random direction" in report.headline and "not located" in report.headline
    assert row.mask is None and row.wrong_entries() == []
    # its counts count directions, and say so: never "0 wrong" on a FAIL, never a direction
    # taken for an entry
    assert row.directions == 8 and 1 <= row.wrong <= 8, str(report)
    assert "of 8 directions wrong" in report.headline, report.headline
    assert "doubtful entries" not in report.headline and "kink entries" not in report.headline
    data = json.loads(report.to_json())["rows"][0]
    assert data["directions"] == 8 and data["wrong"] >= 1 and data["wrong_entries"] == []
    assert f"direction {row.direction} got" in str(report) and "[] got" not in str(report)


def test_with_no_source_of_truth_nothing_is_made_up():
    """JAX cannot differentiate a forward (data-dependent boolean indexing is refused with
    jax="direct" as written) and finite differences are off: no expected value, no error."""
    x = np.linspace(-1.0, 1.0, 6)

    def forward(x):
        return x[x > 0.0] ** 2

    report = check_vjp(forward, lambda c, x: np.zeros_like(x), (x,), fd="none", jax="direct",
                       cotangent=np.ones(3))
    row = report.rows[0]
    assert row.status == "doubt" and row.sources == (), str(report)
    assert "expected" not in report.headline and "no source of truth" in report.headline
    assert np.isnan(row.expected) and np.isnan(row.max_abs_err)
    assert any("finite differences are off" in n for n in report.notes), report.notes
    assert not any("finite differences alone judge" in n for n in report.notes), report.notes


# --- adapters ----------------------------------------------------------------------------------


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    return dx, x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


def test_cached_adapts_out_cache_functions_in_one_line_and_keeps_the_names():
    x = RNG.normal(size=(2, 3, 1))
    report = check_vjp(*cached(affine_forward, affine_backward), (x, W, B))
    assert report.ok and [r.input for r in report.rows] == ["x", "w", "b"], str(report)

    def wrong_backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw, dout.mean(axis=0)

    bad = check_vjp(*cached(affine_forward, wrong_backward), (x, W, B))
    assert not bad.ok and bad.first_failure.input == "b"


class Dense:
    """A layer object as students write it: parameters and their gradients on the object."""

    def __init__(self, n, m, rng):
        self.W = rng.normal(size=(n, m))
        self.b = np.zeros(m)

    def forward(self, x):
        self.x = x
        self.y = np.tanh(x @ self.W + self.b)
        return self.y

    def backward(self, dy):
        dv = dy * (1 - self.y**2)
        self.dW = self.x.T @ dv
        self.db = dv.sum(axis=0)
        return dv @ self.W.T


class OriginalDense(Dense):
    """The write-up's original program: act' taken at Y, weights updated before dE/dX."""

    lr = 0.1

    def backward(self, dy):
        dv = dy * (1 - np.tanh(self.y) ** 2)
        self.dW = self.x.T @ dv
        self.db = dv.sum(axis=0)
        self.W = self.W - self.lr * self.dW
        return dv @ self.W.T


class DictLayer:
    """Parameters in a params dict, gradients in a grads dict."""

    def __init__(self, rng):
        self.params = {"W": rng.normal(size=(3, 2))}
        self.grads = {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"]

    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy
        return dy @ self.params["W"].T


def test_layer_adapts_a_layer_object_in_one_line_and_never_changes_it():
    dense_layer = Dense(3, 4, np.random.default_rng(1))
    before = _frozen(dense_layer.W, dense_layer.b)
    report = check_vjp(*layer(dense_layer, X))
    assert report.ok and [r.input for r in report.rows] == ["x", "W", "b"], str(report)
    assert _frozen(dense_layer.W, dense_layer.b) == before and not hasattr(dense_layer, "dW")
    dict_layer = DictLayer(np.random.default_rng(2))
    report = check_vjp(*layer(dict_layer, X))
    assert report.ok and [r.input for r in report.rows] == ["x", "W"], str(report)
    bad = check_vjp(*layer(OriginalDense(3, 4, np.random.default_rng(1)), X))
    assert not bad.ok


# --- a network of the user's own layers ---------------------------------------------------------


def mse(y, t):
    return 0.5 * float(np.sum((y - t) ** 2)), y - t


def test_check_layers_passes_a_right_network_and_leaves_its_layers_alone():
    rng = np.random.default_rng(3)
    layers = [Dense(3, 6, rng), Dense(6, 2, rng)]
    before = [_frozen(lay.W, lay.b) for lay in layers]
    t = rng.normal(size=(4, 2))
    report = check_layers(layers, mse, X, t)
    assert report.ok and report.count("doubt") == 0, str(report)
    assert [_frozen(lay.W, lay.b) for lay in layers] == before
    assert {(r.layer, r.term, r.scope) for r in report.rows} >= {
        (None, "loss", "local"), (1, "dW", "local"), (0, "dx", "local"), (0, "dW", "total")}


def test_check_layers_names_the_first_wrong_layer_and_the_update_inside_backward():
    rng = np.random.default_rng(3)
    layers = [Dense(3, 6, rng), OriginalDense(6, 6, rng), Dense(6, 2, rng)]
    t = rng.normal(size=(4, 2))
    report = check_layers(layers, mse, X, t)
    first = report.first_failure
    assert not report.ok and (first.layer, first.name) == (1, "OriginalDense"), str(report)
    assert report.headline.startswith("FAIL: layer 1 (OriginalDense)"), report.headline
    assert all(r.status == "pass" for r in report.rows if r.layer == 2), str(report)
    assert any("changed ['W'] in place" in r.note for r in report.rows if r.layer == 1)
    spoiled = [r for r in report.rows if r.scope == "total" and r.status == "FAIL"]
    assert spoiled and all("follows from layer 1 (OriginalDense)" in r.note for r in spoiled)


# --- value-dependent forwards: traced once with concrete shadows, never reused ----------------


def _successful_traces(monkeypatch) -> list:
    """Count VJP programs traced abstractly (``autodiff.numpy_program`` calls that succeed)."""
    from oracle import autodiff

    calls: list = []
    real = autodiff.numpy_program

    def counting(*a, **k):
        run = real(*a, **k)
        calls.append(1)
        return run

    monkeypatch.setattr(autodiff, "numpy_program", counting)
    return calls


def _branchy(x):
    if np.sum(x) > 0:
        return x ** 2
    return 3.0 * x


def _branchy_backward(dout, x):
    return dout * (2 * x if np.sum(x) > 0 else 2.0)  # planted bug: the negative branch only


def test_a_program_specialized_to_one_branch_is_not_reused_at_the_other(monkeypatch):
    traces = _successful_traces(monkeypatch)
    x = np.abs(RNG.normal(size=(3, 4))) + 0.1
    good = check_vjp(_branchy, _branchy_backward, (x,))
    assert good.ok and "jax" in good.rows[0].sources, str(good)
    assert len(traces) == 1  # traced abstractly (shadows), not run under eager JAX
    bad = check_vjp(_branchy, _branchy_backward, (-x,))  # same shapes, the other branch
    assert not bad.ok and "jax" in bad.rows[0].sources, str(bad)
    assert len(bad.wrong_entries("x")) == x.size, str(bad)
    before = len(traces)
    again = check_vjp(_branchy, _branchy_backward, (x + 0.5,))  # the first check's key
    assert again.ok, str(again)
    assert len(traces) == before + 1  # traced anew: a program is never reused


def test_a_specialized_program_offers_no_reevaluation_at_other_points(monkeypatch):
    from oracle import autodiff
    from oracle.arguments import Arguments, Output

    traces = _successful_traces(monkeypatch)
    x = np.abs(RNG.normal(size=5)) + 0.1
    for forward, general in [(_branchy, False), (lambda x: x ** 2, True)]:
        args = Arguments.of(forward, (x,))
        expected = Output.of(forward(x.copy()))
        again: list = []
        grads, how = autodiff.vjp(forward, args, (np.ones_like(x),), [0], expected,
                                  again=again)
        np.testing.assert_allclose(grads[0], 2 * x, rtol=1e-12)
        assert len(again) == (1 if general else 0), how
        if general:
            np.testing.assert_allclose(again[0]({0: -x})[0], -2 * x, rtol=1e-12)
    assert len(traces) == 2  # both traced abstractly; only the general one is offered again


def test_np_interp_with_fixed_knots_is_traced_by_its_segments_not_jnp_interp(monkeypatch):
    """Fixed knots: the segments come from x's numpy value, only the linear pieces are traced
    (``jnp.interp``'s search costs ~0.1 s to trace and compiles). Truth: the closed form of a
    piecewise-linear function, beyond both ends too (left/right given and not)."""
    import oracle.numpy_on_jax as noj

    def no_jnp_interp(*a, **k):
        raise AssertionError("jnp.interp was traced")

    monkeypatch.setattr(noj.jnp, "interp", no_jnp_interp)
    knots = [-1.0, 0.0, 0.5, 2.0]
    x = np.array([-2.0, -0.5, 0.25, 0.75, 1.9, 3.0])
    v = np.array([0.3, -1.0, 2.0, 0.5])

    def backward(dout, x, v, *, left=None, right=None):
        k = np.asarray(knots)
        i = np.clip(np.searchsorted(k, x, side="right"), 1, len(k) - 1)
        t = (x - k[i - 1]) / (k[i] - k[i - 1])
        inside = (x >= k[0]) & (x <= k[-1])
        dx = np.where(inside, dout * (v[i] - v[i - 1]) / (k[i] - k[i - 1]), 0.0)
        dv = np.zeros_like(v)
        np.add.at(dv, i - 1, np.where(inside, dout * (1 - t), 0.0))
        np.add.at(dv, i, np.where(inside, dout * t, 0.0))
        if left is None:
            dv[0] += np.sum(dout[x < k[0]])
        if right is None:
            dv[-1] += np.sum(dout[x > k[-1]])
        return dx, dv

    for ends in ({}, {"left": 7.0, "right": -3.0}):
        def forward(x, v, ends=ends):
            return np.interp(x, knots, v, **ends)

        report = check_vjp(forward, lambda d, x, v, ends=ends: backward(d, x, v, **ends), (x, v))
        assert report.ok and report.count("pass") == 2, str(report)
        assert all("jax" in r.sources for r in report.rows), str(report)
        swapped = check_vjp(forward, lambda d, x, v, ends=ends: (
            backward(d, x, v, **ends)[0], backward(d, x, v, **ends)[1][::-1]), (x, v))
        assert not swapped.ok and swapped.first_failure.input == "v", str(swapped)


# --- what a check costs ----------------------------------------------------------------------


def test_a_wrong_backward_traces_forward_once():
    """The rounding magnitudes a failing check needs are pulled back through the program traced
    for the verdict (evaluated again by numpy), not through a second trace of forward."""
    traced = []

    def forward(x):
        traced.append(not isinstance(x, np.ndarray))   # JAX's trace sees a lifted value
        return np.sin(x) * x

    def backward(dout, x):                 # the product rule's sin(x) term dropped
        return dout * np.cos(x) * x

    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    report = check_vjp(forward, backward, (x,))
    assert not report.ok and report.rows[0].wrong == 12
    assert sum(traced) == 1


def test_the_collector_is_paused_during_a_check_and_left_as_found():
    import gc

    seen = []

    def forward(x):
        seen.append(gc.isenabled())
        return np.tanh(x)

    def backward(dout, x):
        return dout * (1 - np.tanh(x) ** 2)

    x = np.linspace(-1.0, 1.0, 6)
    was = gc.isenabled()
    try:
        gc.enable()
        assert check_vjp(forward, backward, (x,)).ok
        assert seen and not any(seen) and gc.isenabled()
        with pytest.raises((TypeError, ValueError), match="wrt"):
            check_vjp(forward, backward, (x,), wrt=["no such input"])
        assert gc.isenabled()              # restored after a failed call too
        gc.disable()
        assert check_vjp(forward, backward, (x,)).ok
        assert not gc.isenabled()          # a collector the user paused stays paused
    finally:
        (gc.enable if was else gc.disable)()


def _im2col_rows(x):
    return np.stack([x[:, i:i + 2].ravel() for i in range(x.shape[1] - 1)])


def test_numpy_style_forwards_are_run_on_jax_arrays_first_without_a_failed_trace():
    """A forward that reads as numpy code is lifted at once: the direct trace would fail
    (5-10 ms spent for nothing). Told from its bytecode: the numpy module named by it or by a
    helper it calls, or writes into subscripts in code that names no JAX module."""
    import jax.numpy as jnp

    from oracle.autodiff import _calls_numpy

    def relu_mask_write(x):                 # no module named at all: a mask write
        out = x.copy()
        out[out < 0] = 0
        return out

    def conv_by_helper(x, w):               # numpy only inside the helper
        return _im2col_rows(x) @ w

    def jnp_with_a_cache(x, cache):         # JAX code writing a dict: traced as it is
        cache["x"] = x
        return jnp.tanh(x)

    def plain(x, w):
        return x @ w

    assert _calls_numpy(relu_mask_write) and _calls_numpy(conv_by_helper)
    assert not _calls_numpy(jnp_with_a_cache) and not _calls_numpy(plain)
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    report = check_vjp(relu_mask_write, lambda dout, x: dout * (x > 0), (x + 0.05,))
    assert report.ok and "numpy code run on JAX arrays" in str(report)


def test_a_forward_leaving_reference_cycles_does_not_pile_them_up_during_a_check():
    """With the collector paused, cycles a forward makes at every call would live until the
    check ends: 400 stencil evaluations x 80 kB here. The finite-difference loop collects the
    young generation once the calls leave objects behind (``collector_keeps_up``)."""
    import gc
    import tracemalloc

    def forward(x):
        junk = [np.ones(10_000)]           # 80 kB held by a reference cycle
        junk.append(junk)
        return np.tanh(x)

    def backward(dout, x):
        return dout * (1 - np.tanh(x) ** 2)

    x = np.linspace(-1.0, 1.0, 100)
    was = gc.isenabled()
    gc.enable()
    gc.collect()
    tracemalloc.start()
    try:
        report = check_vjp(forward, backward, (x,), jax=False, fd="exhaustive")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        (gc.enable if was else gc.disable)()
    assert report.ok
    # ~64 calls' cycles at most (5 MB) plus the check's own arrays; 400 calls' would be 32 MB.
    assert peak < 16e6, f"peak {peak / 1e6:.1f} MB"


def test_dict_subclass_parameters_reach_forward_as_they_were_given():
    from collections import defaultdict

    class AttrDict(dict):
        def __getattr__(self, key):
            try:
                return self[key]
            except KeyError:
                raise AttributeError(key) from None

    x = np.linspace(-1.0, 1.0, 6)

    def by_attribute(x, p):
        return x * p.eps + p["scale"]

    def by_default(x, p):
        return x * p["scale"] + p["shift"]          # "shift" is missing: the default 0.0

    shared = np.ones(6)
    aliased = {"a": shared, "b": shared}

    def through_alias(x, p):
        p["a"] += 1.0                               # numpy: p["b"] is the same array
        return x * p["b"]

    assert check_vjp(by_attribute, lambda dout, x, p: dout * 2.0,
                     (x, AttrDict(eps=2.0, scale=1.0))).ok
    assert check_vjp(by_default, lambda dout, x, p: dout * 3.0,
                     (x, defaultdict(float, scale=3.0))).ok
    assert check_vjp(through_alias, lambda dout, x, p: dout * 2.0, (x, aliased)).ok
    assert np.array_equal(shared, np.ones(6))


def test_a_pullback_failing_when_rounding_is_measured_leaves_the_verdict_standing(monkeypatch):
    """The rounding magnitudes are pulled back after the verdict's own pullback; if that second
    use of JAX's program fails, the check still reports (the gradient's own size stands)."""
    import oracle.autodiff as autodiff

    traced = autodiff.numpy_program

    def fails_after_first_run(*args, **kwargs):
        run = traced(*args, **kwargs)
        calls = []

        def once(*a):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("the program broke")
            return run(*a)

        return once

    monkeypatch.setattr(autodiff, "numpy_program", fails_after_first_run)
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    report = check_vjp(lambda x: np.sin(x) * x, lambda dout, x: dout * np.cos(x) * x, (x,))
    assert not report.ok and report.rows[0].wrong == 12 and "JAX" in str(report)


def test_np_vectorize_of_a_reduction_on_equal_entries_still_catches_a_wrong_backward():
    """``np.max(t)`` of one entry is the entry; run on several equal entries at once it would
    give the same values but another derivative (review finding against running np.vectorize
    on groups of entries): the wrong backward must FAIL and the right one pass."""
    def forward(x):
        return np.vectorize(lambda t: np.max(t) ** 2 if t > 0 else t)(x)

    def right(dout, x):
        return dout * np.where(x > 0, 2 * x, 1.0)

    def wrong(dout, x):                    # the cotangent averaged over the positive entries
        return np.where(x > 0, np.mean(dout[x > 0]) * 2 * x, dout)

    x = np.array([0.5, 0.5, 0.5, -0.5])
    cot = np.array([1.0, 2.0, 3.0, 4.0])
    assert check_vjp(forward, right, (x,), cotangent=cot).ok
    report = check_vjp(forward, wrong, (x,), cotangent=cot)
    assert not report.ok and report.rows[0].wrong == 2

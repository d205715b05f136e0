"""``adapters.layer``/``cached`` and ``check_layers`` on layer objects as users write them.

Every verdict expected here comes from construction: the right layers are written out in closed
form, and each bug is planted here, at an entry we know (a repeated token id, one scaled entry).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle import check_layers, check_vjp  # noqa: E402
from oracle.adapters import cached, layer  # noqa: E402

X = np.random.default_rng(21).normal(size=(4, 3))
IDS = np.array([0, 2, 2, 4])  # id 2 repeats: its gradient row sums two rows of dout
NOISE = np.random.default_rng()  # unseeded: a forward that draws from it is not deterministic


def mse(y, t):
    return 0.5 * float(np.sum((y - t) ** 2)), y - t


def mse_doubled(y, t):
    return 0.5 * float(np.sum((y - t) ** 2)), 2 * (y - t)


def _state(obj) -> dict:
    """A layer object's attributes, deep-copied, to prove a call left them alone."""
    return copy.deepcopy(vars(obj))


def _same_state(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        u, v = a[k], b[k]
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if not (isinstance(u, np.ndarray) and isinstance(v, np.ndarray)
                    and u.dtype == v.dtype and np.array_equal(u, v)):
                return False
        elif isinstance(u, dict):
            if not isinstance(v, dict) or not _same_state(u, v):
                return False
        elif u != v:
            return False
    return True


class CachingDense:
    """Stores everything it sees: x and out in forward, dout and dx in backward."""

    def __init__(self, n, m, seed):
        rng = np.random.default_rng(seed)
        self.W, self.b = rng.normal(size=(n, m)), rng.normal(size=m)

    def forward(self, x):
        self.x = x
        self.out = np.tanh(x @ self.W + self.b)
        return self.out

    def backward(self, dout):
        self.dout = dout
        dv = dout * (1 - self.out**2)
        self.dW, self.db = self.x.T @ dv, dv.sum(axis=0)
        self.dx = dv @ self.W.T
        return self.dx


class CachingDenseBadEntry(CachingDense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW[1, 2] *= 1.5  # planted: one entry of dW
        return dx


class Embedding:
    """Token ids in, rows of W out; ``backward`` returns None (ids have no gradient)."""

    def __init__(self, seed=1):
        self.W = np.random.default_rng(seed).normal(size=(5, 3))

    def forward(self, ids):
        self.ids = ids
        return self.W[ids]

    def backward(self, dout):
        self.dW = np.zeros_like(self.W)
        np.add.at(self.dW, self.ids, dout)
        return None


class EmbeddingOverwrites(Embedding):
    def backward(self, dout):
        self.dW = np.zeros_like(self.W)
        self.dW[self.ids] = dout  # planted: a repeated id keeps one row of dout, not the sum
        return None


# --- 1. what forward and backward store is never a parameter -----------------------------------


def test_caches_set_by_forward_and_backward_are_not_parameters_fresh_or_after_a_step():
    fresh = CachingDense(3, 5, seed=0)
    before = _state(fresh)
    report = check_vjp(*layer(fresh, X))
    assert report.ok and [r.input for r in report.rows] == ["x", "W", "b"], str(report)
    assert _same_state(before, _state(fresh))
    stepped = CachingDense(3, 5, seed=0)
    stepped.forward(X)
    stepped.backward(np.ones((4, 5)))  # now holds x, out, dout, dx, dW, db
    report = check_vjp(*layer(stepped, X))
    assert report.ok and [r.input for r in report.rows] == ["x", "W", "b"], str(report)


def test_a_planted_entry_of_dw_is_located_on_a_caching_layer():
    report = check_vjp(*layer(CachingDenseBadEntry(3, 5, seed=0), X))
    assert report.row("x").status == "pass" and report.row("b").status == "pass", str(report)
    assert report.wrong_entries("W") == [(1, 2)], str(report)


def test_state_that_forward_updates_is_not_a_parameter():
    class Leaky:  # forward reads and updates its state h: a state, not a parameter
        def __init__(self):
            self.W, self.h = np.random.default_rng(2).normal(size=(3, 2)), np.ones((4, 2))

        def forward(self, x):
            self.x = x
            self.h = 0.5 * self.h + x @ self.W
            return self.h

        def backward(self, dy):
            self.dW = self.x.T @ dy
            return dy @ self.W.T

    report = check_vjp(*layer(Leaky(), X))
    assert report.ok and [r.input for r in report.rows] == ["x", "W"], str(report)


# --- 2. gradients are found where users keep them, or the parameter is refused -----------------


def _linear(keep):
    """A linear layer whose backward keeps dW by ``keep(self, dW)``."""

    class Linear:
        def __init__(self):
            self.W = np.random.default_rng(3).normal(size=(3, 2))

        def forward(self, x):
            self.x = x
            return x @ self.W

        def backward(self, dy):
            keep(self, self.x.T @ dy)
            return dy @ self.W.T

    return Linear()


CONVENTIONS = {
    "dW": lambda s, g: setattr(s, "dW", g),
    "dw": lambda s, g: setattr(s, "dw", g),
    "grad_W": lambda s, g: setattr(s, "grad_W", g),
    "W_grad": lambda s, g: setattr(s, "W_grad", g),
    "grads[W]": lambda s, g: setattr(s, "grads", {"W": g}),
    "grad[W]": lambda s, g: setattr(s, "grad", {"W": g}),
    "gradients[dW]": lambda s, g: setattr(s, "gradients", {"dW": g}),
}


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_each_gradient_convention_is_found_and_a_wrong_gradient_there_fails(convention):
    keep = CONVENTIONS[convention]
    report = check_vjp(*layer(_linear(keep), X))
    assert report.ok and [r.input for r in report.rows] == ["x", "W"], str(report)
    wrong = check_vjp(*layer(_linear(lambda s, g: keep(s, 0.5 * g)), X))
    assert wrong.row("x").status == "pass", str(wrong)
    assert wrong.row("W").status == "FAIL" and wrong.row("W").wrong == 6, str(wrong)


def test_a_parameter_whose_gradient_is_nowhere_known_is_refused_and_can_be_named():
    hidden = _linear(lambda s, g: setattr(s, "gw", g))
    before = _state(hidden)
    with pytest.raises(ValueError) as info:
        layer(hidden, X)
    message = str(info.value)
    for part in ("W", "(3, 2)", "dW", "grads['W']", "params="):
        assert part in message, message
    assert _same_state(before, _state(hidden))
    report = check_vjp(*layer(hidden, X, params={"W": "gw"}))
    assert report.ok and [r.input for r in report.rows] == ["x", "W"], str(report)
    wrong = check_vjp(*layer(_linear(lambda s, g: setattr(s, "gw", 0 * g)), X,
                             params={"W": "gw"}))
    assert wrong.row("W").wrong == 6, str(wrong)


def test_a_gradient_that_backward_adds_to_is_zeroed_before_each_backward():
    def add(s, g):
        s.dW = s.dW + g if hasattr(s, "dW") else g

    stale = _linear(add)
    stale.forward(X)
    stale.backward(np.ones((4, 2)))  # dW now holds a gradient from an earlier step
    assert check_vjp(*layer(stale, X)).ok
    twice = _linear(lambda s, g: add(s, 2 * g))  # planted: adds twice the gradient
    assert check_vjp(*layer(twice, X)).row("W").wrong == 6


class DictLayer:
    def __init__(self):
        self.params, self.grads = {"W": np.random.default_rng(4).normal(size=(3, 2))}, {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"]

    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy
        return dy @ self.params["W"].T


@pytest.mark.parametrize("params", [None, ["W"], {"W": "W"}])
def test_parameters_in_a_params_dict_are_found_or_named(params):
    report = check_vjp(*layer(DictLayer(), X, params=params))
    assert report.ok and [r.input for r in report.rows] == ["x", "W"], str(report)


@pytest.mark.parametrize(("params", "error", "fragment"), [
    ("W", TypeError, "params must be a list of parameter names"),
    ([1], TypeError, "params must be a list of parameter names"),
    ({"W": 2}, TypeError, "params must be a list of parameter names"),
    (["V"], ValueError, "params names 'V', but DictLayer holds no float array 'V'"),
    ({"W": "nowhere"}, ValueError, "looked for nowhere, grads['nowhere']"),
])
def test_bad_params_are_refused_naming_them_and_change_nothing(params, error, fragment):
    obj = DictLayer()
    before = _state(obj)
    with pytest.raises(error, match=None) as info:
        layer(obj, X, params=params)
    assert fragment in str(info.value), str(info.value)
    assert _same_state(before, _state(obj))


def test_layer_refuses_missing_methods_and_random_forwards():
    with pytest.raises(TypeError, match="object has no method 'forward'"):
        layer(object(), X)

    class Dropout:
        def forward(self, x):
            self.mask = NOISE.random(x.shape) > 0.5
            return x * self.mask

        def backward(self, dy):
            return dy * self.mask

    with pytest.raises(ValueError, match="not deterministic"):
        layer(Dropout(), X)


# --- 3. integer inputs are constants -----------------------------------------------------------


def test_an_integer_input_layer_checks_its_parameters_only():
    report = check_vjp(*layer(Embedding(), IDS))
    assert report.ok and [r.input for r in report.rows] == ["W"], str(report)
    wrong = check_vjp(*layer(EmbeddingOverwrites(), IDS))
    assert wrong.wrong_entries("W") == [(2, 0), (2, 1), (2, 2)], str(wrong)


# --- cached --------------------------------------------------------------------------------------


def test_cached_refuses_what_is_not_a_forward_with_a_cache():
    with pytest.raises(TypeError, match="cached: backward must be a callable"):
        cached(lambda x: (x, None), "backward")
    forward, backward = cached(lambda x: x * 2, lambda dout, cache: dout)
    with pytest.raises(TypeError, match=r"forward must return a pair \(out, cache\)"):
        check_vjp(forward, backward, (X,))


# --- check_layers -------------------------------------------------------------------------------


def test_check_layers_takes_layers_that_cache_everything():
    layers = [CachingDense(3, 5, 0), CachingDense(5, 2, 1)]
    before = [_state(lay) for lay in layers]
    report = check_layers(layers, mse, X, np.zeros((4, 2)))
    assert report.ok and report.count("FAIL") == 0, str(report)
    assert all(_same_state(b, _state(lay)) for b, lay in zip(before, layers))
    bad = check_layers([CachingDense(3, 5, 0), CachingDenseBadEntry(5, 3, 1)], mse, X,
                       np.zeros((4, 3)))
    first = bad.first_failure
    assert (first.layer, first.term, first.wrong_entries()) == (1, "dW", [(1, 2)]), str(bad)


def test_check_layers_refuses_a_parameter_without_a_gradient_and_takes_params():
    hidden = _linear(lambda s, g: setattr(s, "gw", g))
    layers = [CachingDense(3, 3, 0), hidden]
    before = [_state(lay) for lay in layers]
    with pytest.raises(ValueError, match=r"layers\[1\] \(Linear\): Linear.W"):
        check_layers(layers, mse, X, np.zeros((4, 2)))
    assert all(_same_state(b, _state(lay)) for b, lay in zip(before, layers))
    report = check_layers(layers, mse, X, np.zeros((4, 2)), params=[None, {"W": "gw"}])
    assert report.ok and any(r.layer == 1 and r.term == "dW" for r in report.rows), str(report)
    with pytest.raises(ValueError, match=r"params must have one entry per layer \(2\), got 1"):
        check_layers(layers, mse, X, np.zeros((4, 2)), params=[None])
    with pytest.raises(TypeError, match=r"params\[1\]: params must be a list"):
        check_layers(layers, mse, X, np.zeros((4, 2)), params=[None, "W"])


def test_check_layers_fails_a_zeroed_gradient_kept_in_a_grad_dict():
    wrong = _linear(lambda s, g: setattr(s, "grad", {"W": 0 * g}))
    report = check_layers([wrong], mse, X, np.ones((4, 2)))
    assert report.first_failure is not None and report.first_failure.term == "dW", str(report)


class NpTanh:
    """np.tanh, which JAX cannot trace as written (jax="direct" does not lift numpy code)."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y**2)


class Affine:
    def __init__(self, n, m, seed):
        self.W = np.random.default_rng(seed).normal(size=(n, m))

    def forward(self, x):
        self.x = x
        return x @ self.W

    def backward(self, dy):
        self.dW = self.x.T @ dy
        return dy @ self.W.T


def squared(y, t):
    """mse written so that JAX traces it as it is (``float()`` of a tracer would not)."""
    d = y - t
    return 0.5 * (d * d).sum(), d


def test_the_headline_says_which_sources_judged_which_layers():
    layers = [Affine(3, 4, 0), NpTanh(), Affine(4, 2, 1)]
    report = check_layers(layers, squared, X, np.zeros((4, 2)), jax="direct")
    assert report.ok, str(report)
    assert {r.sources for r in report.rows if r.layer == 1} == {("fd",)}, str(report)
    assert all("jax" in r.sources for r in report.rows
               if r.scope == "local" and r.layer in (0, 2)), str(report)
    assert report.headline.endswith(
        "[judged by JAX and finite differences; finite differences alone for layer 1 (NpTanh) "
        "and the totals (JAX could not trace them)]"), report.headline
    plain = check_layers(layers, squared, X, np.zeros((4, 2)), jax=False)
    assert plain.headline.endswith("[judged by finite differences alone: JAX left out]")


class FirstNoDx(Affine):
    def backward(self, dy):
        super().backward(dy)
        return None


class FirstNoDxBadEntry(Affine):
    def backward(self, dy):
        super().backward(dy)
        self.dW[2, 1] *= 1.5  # planted
        return None


def test_the_first_layer_may_return_no_dx_and_its_parameters_are_still_checked():
    t = np.zeros((4, 2))
    report = check_layers([FirstNoDx(3, 4, 0), NpTanh(), Affine(4, 2, 1)], mse, X, t)
    assert report.ok and not any(r.layer == 0 and r.term == "dx" for r in report.rows)
    assert any(r.layer == 0 and r.term == "dW" and r.scope == "local" for r in report.rows)
    assert any("returned None for dx" in n for n in report.notes), report.notes
    bad = check_layers([FirstNoDxBadEntry(3, 4, 0), NpTanh(), Affine(4, 2, 1)], mse, X, t)
    first = bad.first_failure
    assert (first.layer, first.term, first.wrong_entries()) == (0, "dW", [(2, 1)]), str(bad)


def test_a_later_layer_without_dx_breaks_the_chain_and_says_so():
    layers = [Affine(3, 4, 0), FirstNoDx(4, 4, 2), Affine(4, 2, 1)]
    report = check_layers(layers, mse, X, np.zeros((4, 2)))
    first = report.first_failure
    assert (first.layer, first.term, first.name) == (1, "dx", "FirstNoDx"), str(report)
    assert "returned None for dx" in first.note and "layer 0 (Affine) needs it" in first.note
    assert [r.status for r in report.rows if r.layer == 2] == ["pass", "pass"], str(report)
    assert any(r.layer == 1 and r.term == "dW" and r.status == "pass" for r in report.rows)
    assert not any(r.layer == 0 or r.scope == "total" for r in report.rows), str(report)
    assert any("not checked: layer 0 and the totals" in n for n in report.notes), report.notes


def test_the_loss_row_is_labelled_as_the_loss():
    report = check_layers([Affine(3, 2, 0)], mse_doubled, X, np.zeros((4, 2)))
    first = report.first_failure
    assert (first.layer, first.term, first.name) == (None, "loss", "mse_doubled"), str(report)
    assert report.headline.startswith("FAIL: loss 'mse_doubled' (local)"), report.headline


def test_an_integer_network_input_is_a_constant():
    t = np.zeros((4, 2))
    report = check_layers([Embedding(), Affine(3, 2, 0)], mse, IDS, t)
    assert report.ok, str(report)
    assert not any(r.layer == 0 and r.term in ("dx", "dids") for r in report.rows)
    assert any(r.layer == 0 and r.term == "dW" and r.scope == "total" for r in report.rows)
    assert any("integer array" in n for n in report.notes), report.notes
    bad = check_layers([EmbeddingOverwrites(), Affine(3, 2, 0)], mse, IDS, t)
    first = bad.first_failure
    assert (first.layer, first.term) == (0, "dW"), str(bad)
    assert first.wrong_entries() == [(2, 0), (2, 1), (2, 2)], str(bad)

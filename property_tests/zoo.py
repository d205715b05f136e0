"""The bug zoo: classic backpropagation mistakes, each a small mutant of the reference.

A mutant changes one thing and leaves the reference's files alone. Three kinds:

- **a wrong derivative** (of an activation or a loss): the network's ``Activation`` or ``Loss``
  object is swapped for one with the same forward and a wrong backward;
- **a wrong line in the backward pass or the SGD step**: a subclass of ``TextbookNetwork``,
  which is the reference's backward pass and step rewritten with one small method per line
  (eq 7-11), overrides one of those methods;
- **a wrong forward** (the loss computed from probabilities that were already a softmax): the
  ``Loss`` gets a different value with the gradient left as it was.

``MUTANTS[name].mutate(net)`` turns a reference network into the mutant (in place: the
network's class and functions are swapped, its weights kept). ``expected_location`` says, for a
case, which layer and term the oracle must name: the first term, in backward order, whose value
departs from what the reference's own functions compute from the same upstream value.

``python -m property_tests.zoo_docs`` writes docs/bug_zoo.md from the oracle's real reports.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from oracle.strategies import Case
from oracle.verdict import RHO, TAU
from reference import ACTIVATIONS, Activation, Loss, Network, Softmax
from reference.activations import _sigmoid, _softmax
from reference.passes import Trace, forward_pass, loss_from_trace

__all__ = ["MUTANTS", "Mutant", "TextbookNetwork", "expected_location"]


# ---------------------------------------------------------------------------------------------
# The reference's backward pass and step, one method per line
# ---------------------------------------------------------------------------------------------


class TextbookNetwork(Network):
    """The reference network with its backward pass and step written as one method per line.

    Bit for bit the reference's results (``test_bug_zoo.py`` checks it passes every property
    and the oracle), so that a mutant overriding one method differs from it in that line only.
    """

    def gradients(self, X: np.ndarray, T: np.ndarray):
        """``(E, dE/dW, dE/dX)`` through ``_trace`` (the reference has a faster path of its own,
        which a mutant of ``_trace`` must not bypass)."""
        trace = self.trace(X, T, need_input_grad=True)
        return trace.loss, trace.dws, trace.dxs[0].reshape(np.shape(X))

    def _trace(self, x: np.ndarray, t: np.ndarray, *, need_input_grad: bool) -> Trace:
        trace = forward_pass(self._checked_weights(), x, self.activations)
        trace.loss = float(loss_from_trace(trace, t, self.loss_function))
        return self._backward(trace, t, need_input_grad=need_input_grad)

    def _step(self, x: np.ndarray, t: np.ndarray, lr: float) -> float:
        trace = forward_pass(self._checked_weights(), x, self.activations)
        loss = float(loss_from_trace(trace, t, self.loss_function))
        self._backward(trace, t, need_input_grad=False, lr=lr)
        return loss

    def _backward(self, tr: Trace, t: np.ndarray, *, need_input_grad: bool,
                  lr: float | None = None) -> Trace:
        n = len(self._weights)
        tr.gs, tr.dvs, tr.dws, tr.dxs = [None] * n, [None] * n, [None] * n, [None] * n
        for k in range(n - 1, -1, -1):
            tr.gs[k], tr.dvs[k] = self.dE_dV(k, tr, t)
            tr.dws[k] = self.weight_grad(k, tr.xs[k], tr.dvs[k])  # eq 8
            self.finish_layer(k, tr, need_input_grad, lr)
        return tr

    def dE_dV(self, k: int, tr: Trace, t: np.ndarray):
        """``(dE/dY or None, dE/dV)`` of layer k."""
        v, y, loss = tr.vs[k], tr.ys[k], self.loss_function
        if k < len(self._weights) - 1:
            g = tr.dxs[k + 1]  # eq 11: dE/dX of layer k+1 is dE/dY of layer k
        elif loss.fused:
            return None, self.loss_grad_v(v, y, t)  # eq 7-9 with the output activation
        else:
            g = self.loss_grad(y, t)  # eq 7
        return g, self.act_backward(k, v, y, g)  # eq 8-9

    def finish_layer(self, k: int, tr: Trace, need_input_grad: bool, lr: float | None) -> None:
        if k > 0 or need_input_grad:
            tr.dxs[k] = self.input_grad(k, self._weights[k], tr.dvs[k], tr.gs[k])  # eq 11 ...
        if lr is not None:
            self.update(k, self._weights[k], tr.dws[k], lr)  # ... then eq 10

    # --- one line each -------------------------------------------------------------------

    def loss_grad(self, y, t):
        return self.loss_function.grad(y, t)

    def loss_grad_v(self, v, y, t):
        return self.loss_function.grad_v(v, y, t)

    def act_backward(self, k, v, y, g):
        return self.activations[k].backward(v, y, g)  # G * act'(V)

    def weight_grad(self, k, x, dv):
        return np.concatenate([x.T @ dv, dv.sum(axis=0, keepdims=True)])  # X~^T dV

    def input_grad(self, k, w, dv, g):
        return dv @ w[:-1].T  # dV W^T without the bias row

    def update(self, k, w, dw, lr):
        w -= lr * dw


# --- the backward-pass and step mutants ------------------------------------------------------


class ActPrimeAtY(TextbookNetwork):
    def act_backward(self, k, v, y, g):
        return self.activations[k].backward(y, y, g)  # act'(Y) instead of act'(V)


class UpdateBeforeDX(TextbookNetwork):
    def finish_layer(self, k, tr, need_input_grad, lr):
        if lr is not None:
            self.update(k, self._weights[k], tr.dws[k], lr)  # eq 10 first ...
        if k > 0 or need_input_grad:
            tr.dxs[k] = self.input_grad(k, self._weights[k], tr.dvs[k], tr.gs[k])  # ... then 11


class BiasRowPassedBack(TextbookNetwork):
    def input_grad(self, k, w, dv, g):
        return dv @ w[1:].T  # drops the first row and passes the bias row back


class MissingTranspose(TextbookNetwork):
    def input_grad(self, k, w, dv, g):
        return dv @ w[:-1]  # W instead of W^T (runs only when the layer is square)


class ActPrimeDroppedOnLastLayer(TextbookNetwork):
    def act_backward(self, k, v, y, g):
        if k == len(self._weights) - 1:
            return g  # the output layer's act' forgotten
        return super().act_backward(k, v, y, g)


class OffByOneLayerIndex(TextbookNetwork):
    def act_backward(self, k, v, y, g):
        return self.activations[k - 1].backward(v, y, g)  # the layer below's activation


class BiasGradientAveraged(TextbookNetwork):
    def weight_grad(self, k, x, dv):
        return np.concatenate([x.T @ dv, dv.mean(axis=0, keepdims=True)])  # mean, not sum


class DXSkipsActPrime(TextbookNetwork):
    def input_grad(self, k, w, dv, g):
        return (dv if g is None else g) @ w[:-1].T  # dE/dY passed back instead of dE/dV


class UpdateSignError(TextbookNetwork):
    def update(self, k, w, dw, lr):
        w += lr * dw  # gradient ascent


class GradientsNeverZeroed(TextbookNetwork):
    def weight_grad(self, k, x, dv):
        sums = self.__dict__.setdefault("_grad_sums", {})
        sums[k] = sums.get(k, 0.0) + super().weight_grad(k, x, dv)  # += across calls
        return sums[k].copy()


# --- wrong derivatives: activations and losses with the right forward ------------------------


def _swap_activation(name: str, df: Callable | None = None, backward: Callable | None = None):
    """Replace every layer's activation ``name`` with one of the same forward, wrong backward."""
    original = ACTIVATIONS[name]
    if backward is not None:
        class Wrong(Softmax):
            def backward(self, v, y, g):
                return backward(v, y, g)

        wrong = Wrong(name, original.f, None, builtin=True)
    else:
        wrong = Activation(name, original.f, df, kinks=original.kinks, builtin=True)

    def swap(net: Network) -> None:
        net.activations = [wrong if a is original else a for a in net.activations]

    return swap


def _swap_loss(*, grad: Callable | None = None, grad_v: Callable | None = None,
               value_from_v: Callable | None = None):
    """Replace the network's loss with one whose grad / grad_v / value_from_v is changed."""

    def swap(net: Network) -> None:
        old = net.loss_function
        net.loss_function = Loss(
            old.name, old.value,
            (lambda y, t: grad(old, y, t)) if grad else old.grad,
            old.output_activation,
            (lambda v, t: value_from_v(old, v, t)) if value_from_v else old.value_from_v,
            (lambda v, y, t: grad_v(old, v, y, t)) if grad_v and old.fused else old.grad_v,
            builtin=True,
        )

    return swap


_GELU_ERF = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_exact_d(v):
    # d/dv of the exact GELU v Phi(v): Phi(v) + v phi(v); the forward is the tanh approximation
    return 0.5 * (1.0 + _GELU_ERF(v / math.sqrt(2.0))) + v * np.exp(-0.5 * v * v) / math.sqrt(
        2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------

_ANY_BUT_IDENTITY = ("tanh", "sigmoid", "elu", "softplus", "silu", "gelu", "sine", "square")


@dataclass(frozen=True)
class Mutant:
    """One classic mistake.

    Attributes:
        name: a short identifier.
        bug: the mistake, in one sentence.
        term: the term the oracle must name ("loss", "activation", "dW", "dX", "step").
        cls: the network class (a ``TextbookNetwork`` subclass), or None to keep the class.
        swap: a function that swaps an activation or the loss of a network, or None.
        habitat: ``network_specs`` arguments under which the mistake shows (e.g. it needs a
            sigmoid layer, a batch of two, two layers); the zoo test draws from there.
        min_batch: the smallest batch under which it shows.
        loss_value_changed: the mutant changes a loss *value* (its gradient is right for the
            original value): the oracle names the loss even though grad_v is the reference's.
        pinned: the case docs/bug_zoo.md shows.
    """

    name: str
    bug: str
    term: str
    pinned: Case
    cls: type[TextbookNetwork] | None = None
    swap: Callable[[Network], None] | None = None
    habitat: dict = field(default_factory=dict)
    min_batch: int = 1
    loss_value_changed: bool = False

    def mutate(self, net: Network) -> Network:
        """Turn ``net`` (a fresh reference network) into this mutant, in place; return it."""
        if self.cls is not None:
            net.__class__ = self.cls
        if self.swap is not None:
            self.swap(net)
        return net

    def build(self, case: Case) -> Network:
        return self.mutate(case.network())

    def builder(self) -> Callable[[Case], Network]:
        """``build`` with a ``source`` attribute: what a reproducer script adds (see reproduce)."""

        def build(case: Case) -> Network:
            return self.build(case)

        build.source = ([f"net = MUTANTS[{self.name!r}].mutate(net)  # the bug zoo's mutant"],
                        ["from property_tests.zoo import MUTANTS"])
        return build


def _pin(sizes, acts, loss, *, batch=3, seed=1) -> Case:
    """A small case with round numbers: seed-``seed`` initial weights, inputs to 2 decimals."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-2, 2, size=(batch, sizes[0])), 2)
    if loss == "cross_entropy":
        t = rng.integers(0, sizes[-1], size=batch)
    elif loss == "binary_cross_entropy":
        t = rng.integers(0, 2, size=(batch, sizes[-1])).astype(np.float64)
    else:
        t = np.round(rng.uniform(-1, 1, size=(batch, sizes[-1])), 2)
    return Case.of(sizes, acts, loss, X=x.tolist(), T=t.tolist(), seed=seed)


_MSE = _pin([3, 4, 2], ["tanh", "tanh"], "mse")
_CE = _pin([3, 4, 3], ["tanh", "softmax"], "cross_entropy")


def _each(mutants: list[Mutant]) -> dict[str, Mutant]:
    return {m.name: m for m in mutants}


MUTANTS: dict[str, Mutant] = _each([
    Mutant("act_prime_at_y",
           "act' evaluated at the output Y instead of the pre-activation V (tanh'(tanh(v))): "
           "the original program's bug", "activation", _MSE, cls=ActPrimeAtY,
           habitat={"activations": _ANY_BUT_IDENTITY}),
    Mutant("update_before_dx",
           "each layer's weights updated before its dE/dX is computed, so the layer below "
           "receives a gradient taken with the new weights", "step",
           _pin([3, 4, 2], ["tanh", "identity"], "mse"), cls=UpdateBeforeDX,
           habitat={"min_depth": 2}),
    Mutant("bias_row_passed_back",
           "dE/dX taken with W[1:] instead of W[:-1]: the bias row is passed back and the "
           "first input's row dropped", "dX", _MSE, cls=BiasRowPassedBack),
    Mutant("missing_transpose",
           "dE/dX = dE/dV W instead of dE/dV W^T (it runs without error when the layer is "
           "square)", "dX", _pin([3, 3, 3], ["tanh", "tanh"], "mse"), cls=MissingTranspose,
           habitat={"square": True, "min_width": 2}),
    Mutant("loss_mean_grad_sum",
           "the loss is the batch mean but its gradient the batch sum (the 1/B forgotten)",
           "loss", _MSE, swap=_swap_loss(grad=lambda old, y, t: old.grad(y, t) * y.shape[-2],
                                          grad_v=lambda old, v, y, t: old.grad_v(v, y, t)
                                          * v.shape[-2]),
           min_batch=2),
    Mutant("softmax_jacobian_diagonal",
           "softmax's Jacobian taken as diagonal: dE/dV = G * Y (1 - Y), the cross terms "
           "-y_i y_j forgotten", "activation", _pin([3, 4, 3], ["tanh", "softmax"], "mse"),
           swap=_swap_activation("softmax", backward=lambda v, y, g: g * y * (1.0 - y)),
           habitat={"activations": ("tanh", "softmax"), "losses": ("mse", "cross_entropy")}),
    Mutant("softmax_applied_twice",
           "cross-entropy computed from logits that are already softmax probabilities (softmax "
           "applied twice), with the gradient of a single softmax", "loss", _CE,
           swap=_swap_loss(value_from_v=lambda old, v, t: old.value_from_v(_softmax(v), t)),
           habitat={"losses": ("cross_entropy",), "min_width": 2}, loss_value_changed=True),
    Mutant("update_sign_error",
           "the SGD step adds the gradient: W <- W + lr dE/dW", "step", _MSE,
           cls=UpdateSignError),
    Mutant("act_prime_dropped_on_last_layer",
           "the output layer's act' forgotten: dE/dV = dE/dY there", "activation", _MSE,
           cls=ActPrimeDroppedOnLastLayer,
           habitat={"activations": _ANY_BUT_IDENTITY, "losses": ("mse",)}),
    Mutant("off_by_one_layer_index",
           "the backward loop applies the activation of layer k-1 to layer k",
           "activation", _pin([3, 4, 2], ["tanh", "sigmoid"], "mse"), cls=OffByOneLayerIndex,
           habitat={"min_depth": 2}),
    Mutant("sigmoid_prime_is_s",
           "sigmoid'(v) = s instead of s (1 - s)", "activation",
           _pin([3, 4, 2], ["sigmoid", "sigmoid"], "mse"),
           swap=_swap_activation("sigmoid", df=_sigmoid),
           habitat={"activations": ("sigmoid", "identity")}),
    Mutant("leaky_relu_slope_missing",
           "leaky_relu' = 0 on the negative side (the slope 0.01 forgotten)", "activation",
           _pin([3, 4, 2], ["leaky_relu", "identity"], "mse"),
           swap=_swap_activation("leaky_relu", df=lambda v: (v > 0).astype(v.dtype)),
           habitat={"activations": ("leaky_relu", "identity")}),
    Mutant("tanh_prime_missing_square",
           "tanh'(v) = 1 - tanh(v) instead of 1 - tanh(v)^2", "activation", _MSE,
           swap=_swap_activation("tanh", df=lambda v: 1.0 - np.tanh(v)),
           habitat={"activations": ("tanh", "identity")}),
    Mutant("bias_gradient_averaged",
           "the bias row of dE/dW is the batch mean of dE/dV instead of its sum", "dW", _MSE,
           cls=BiasGradientAveraged, min_batch=2),
    Mutant("mse_gradient_missing_half",
           "E = 1/2 sum (y - t)^2 / B but dE/dY = 2 (Y - T) / B (the 1/2 forgotten)", "loss",
           _MSE, swap=_swap_loss(grad=lambda old, y, t: 2.0 * old.grad(y, t)),
           habitat={"losses": ("mse",)}),
    Mutant("loss_gradient_sign_flipped",
           "dE/dY = (T - Y) / B: the loss gradient's sign flipped", "loss", _MSE,
           swap=_swap_loss(grad=lambda old, y, t: -old.grad(y, t),
                           grad_v=lambda old, v, y, t: -old.grad_v(v, y, t))),
    Mutant("bce_sigmoid_prime_twice",
           "binary cross-entropy fused with its sigmoid, but sigmoid' applied once more: "
           "dE/dV = (Y - T) Y (1 - Y) / B", "loss",
           _pin([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy"),
           swap=_swap_loss(grad_v=lambda old, v, y, t: old.grad_v(v, y, t) * y * (1.0 - y)),
           habitat={"losses": ("binary_cross_entropy",)}),
    Mutant("dx_skips_act_prime",
           "dE/dX passed back from dE/dY instead of dE/dV (act' skipped in the chain)", "dX",
           _MSE, cls=DXSkipsActPrime, habitat={"activations": _ANY_BUT_IDENTITY}),
    Mutant("gelu_derivative_of_exact_form",
           "gelu's forward is the tanh approximation but its derivative is the exact erf "
           "form's (off by ~1e-3)", "activation", _pin([3, 4, 2], ["gelu", "gelu"], "mse"),
           swap=_swap_activation("gelu", df=_gelu_exact_d),
           habitat={"activations": ("gelu", "identity")}),
    Mutant("gradients_never_zeroed",
           "gradients accumulated across calls and never reset: the second call returns the "
           "sum of both", "dW", _MSE, cls=GradientsNeverZeroed),
])
"""The catalogue, by name."""


# ---------------------------------------------------------------------------------------------
# Where the oracle must point
# ---------------------------------------------------------------------------------------------


def _differs(got, want) -> bool:
    """The oracle's own threshold against an exact value (``oracle.verdict``: tau, rho)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return True
    scale = float(np.max(np.abs(want), initial=0.0))
    return bool(np.any(~(np.abs(got - want) <= TAU * (np.abs(want) + RHO * scale))))


def expected_location(mutant: Mutant, case: Case) -> tuple[int, str] | None:
    """The (layer, term) the oracle must name for ``mutant`` on ``case``; None: no visible bug.

    Replays what ``check_network`` asks of the network (``trace``, then ``gradients``, then a
    ``step`` on a copy) and walks the terms in the oracle's order: the loss; each layer from the
    last, its activation, dW and dX (local); each layer's dW and dX (total); the step, last
    layer first. Returns the first whose mutant value departs from what the reference's own
    functions give from the same upstream value. The reference is the judge here, not JAX: a
    second opinion, independent of the oracle.
    """
    good = case.network()
    bad = mutant.build(case)
    t = case.t
    tr = bad.trace(case.X, case.T)
    _, hand_dws, hand_dx = bad.gradients(case.X, case.T)
    last = len(good.weights) - 1
    loss = good.loss_function
    if mutant.loss_value_changed:
        return last, "loss"
    if loss.fused:
        if _differs(tr.dvs[last], loss.grad_v(tr.vs[last], tr.ys[last], t)):
            return last, "loss"
    elif _differs(tr.gs[last], loss.grad(tr.ys[last], t)):
        return last, "loss"
    ref = TextbookNetwork.__new__(TextbookNetwork)
    for k in range(last, -1, -1):
        act, v, y = good.activations[k], tr.vs[k], tr.ys[k]
        if k == last and loss.fused:
            g = np.random.default_rng(0).normal(size=v.shape)
            got = bad.activations[k].backward(v, y, g)
        else:
            g, got = tr.gs[k], tr.dvs[k]
        if _differs(got, act.backward(v, y, g)):
            return k, "activation"
        if _differs(tr.dws[k], ref.weight_grad(k, tr.xs[k], tr.dvs[k])):
            return k, "dW"
        if _differs(_passed_back(tr, k), ref.input_grad(k, good.weights[k], tr.dvs[k], None)):
            return k, "dX"
    good_tr = good.trace(case.X, case.T)
    _, good_dws, good_dx = good.gradients(case.X, case.T)
    for k in range(last, -1, -1):
        if _differs(hand_dws[k], good_dws[k]):
            return k, "dW"
        got, want = (hand_dx, good_dx) if k == 0 else (_passed_back(tr, k),
                                                        _passed_back(good_tr, k))
        if _differs(got, want):
            return k, "dX"
    # The step, as the oracle checks it: a copy of the network steps, with lr from its own dW.
    scale = max(float(np.max(np.abs(d), initial=0)) for d in hand_dws)
    size = max(float(np.max(np.abs(w), initial=0)) for w in good.weights)
    lr = 1e-2 * max(size, 1.0) / scale if scale > 0 else 1e-2
    before = [w.copy() for w in bad.weights]
    stepped = copy.deepcopy(bad)
    stepped.step(case.X, case.T, lr)
    for k in range(last, -1, -1):
        moved = stepped.weights[k] - before[k]
        expected = -lr * hand_dws[k]
        rounding = 4 * np.finfo(float).eps * (np.abs(before[k]) + np.abs(stepped.weights[k]))
        if np.any(np.abs(moved - expected) > TAU * (np.abs(expected) + RHO * np.max(
                np.abs(expected), initial=0)) + rounding):
            return k, "step"
    return None


def _passed_back(tr: Trace, k: int):
    """dE/dX of layer k as it was passed on: what layer k-1 received (as the oracle reads it)."""
    return tr.gs[k - 1] if k > 0 and tr.gs[k - 1] is not None else tr.dxs[k]

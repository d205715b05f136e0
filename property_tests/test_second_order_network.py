"""The reference network's Hessian-vector product (``Network.hessian_vector_product``, the
R-operator of ``reference/second_order.py``): right for any drawn network, and checked by
``check_hvp``.

Truth is outside the code under test: JAX's forward-over-reverse ``jvp(grad E)`` of the
reference's own loss (``passes.network_loss``, which JAX traces), and planted bugs whose effect
is known by construction (an activation's second derivative dropped, taken at Y instead of V, or
of the wrong sign; a loss's second derivative without its 1/B).

``check_hvp`` then judges the network's loss as a function of all weights (flattened): every
right product must pass (kinks of relu-like activations may end in doubt, never in FAIL), and
every planted bug that moves H D visibly must FAIL.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("jax")

from oracle import check_hvp  # noqa: E402
from oracle.jax_support import jax  # noqa: E402
from oracle.jaxpr_numpy import numpy_call  # noqa: E402
from oracle.strategies import cases, network_specs  # noqa: E402
from reference import ACTIVATIONS, LOSSES, Activation, Loss, Network  # noqa: E402
from reference.passes import network_loss  # noqa: E402

from .profiles import budget  # noqa: E402
from .reproduce import PropertyFailure  # noqa: E402

SECOND_ORDER = tuple(n for n, a in ACTIVATIONS.items() if a.d2f is not None)
"""The built-ins with a second derivative (every elementwise one); softmax comes in through the
cross-entropy output and through mse networks that draw it."""

RTOL = 1e-9
"""Norm-wise: max |hand - JAX| <= RTOL (max |JAX| + FLOOR). Both compute one float64 value by
the same products in different orders: a few ulp of the largest terms, which exceed the result
where terms cancel (measured: at most 1.6e-12 over 2,000 drawn networks, ``python -m
property_tests.test_second_order_network 2000``); 1e-9 leaves 600x and still flags any missing
term (each moves H D by >= 1e-3 relative here)."""
FLOOR = 1e-12
"""Where H D itself is ~0 (a saturated network), the absolute allowance: ~1e4 ulp of terms O(1)."""
VISIBLE = 1e-6
"""A planted bug counts as visible when it moves H D by more than this (norm-wise relative):
1e3 x check_hvp's tolerance against JAX (1e-9), so the oracle must FAIL it."""

specs = network_specs(max_depth=3, max_width=4, activations=SECOND_ORDER)
curved = network_specs(max_depth=3, max_width=4,
                       activations=[n for n in SECOND_ORDER if n not in
                                    ("identity", "relu", "leaky_relu")])
"""Networks whose hidden activations all have act'' != 0 somewhere, so that a planted bug in
act'' is visible (few draws rejected)."""


def _flat(arrays) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays])


def _shaped(flat, like) -> list:
    """``flat`` cut into arrays shaped like ``like`` (works on numpy and JAX arrays)."""
    out, start = [], 0
    for w in like:
        out.append(flat[start:start + w.size].reshape(w.shape))
        start += w.size
    return out


def _jax_hvp(net: Network, x, t, directions) -> list[np.ndarray]:
    """JAX's H D of the reference's own loss, forward over reverse (JAX's program, run by
    ``jaxpr_numpy`` to spare an XLA compilation per drawn shape; it agrees with JAX to
    round-off, tests/test_jaxpr_numpy.py)."""
    def loss(ws):
        return network_loss(ws, x, t, net.activations, net.loss_function)

    def hd(ws, ds):
        return jax.jvp(jax.grad(loss), (ws,), (ds,))[1]

    return [np.asarray(h) for h in numpy_call(hd, list(net.weights), list(directions))]


def _directions(net: Network, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=w.shape) for w in net.weights]


def _off(got, truth) -> float:
    got, truth = _flat(got), _flat(truth)
    return float(np.max(np.abs(got - truth)) / (np.max(np.abs(truth)) + FLOOR))


@settings(max_examples=budget(0.5))
@given(case=cases(specs, max_batch=4), seed=st.integers(0, 2**16))
def test_the_hand_derived_hessian_vector_product_equals_jax_for_any_network(case, seed):
    net = case.network()
    directions = _directions(net, seed)
    got = net.hessian_vector_product(case.X, case.T, directions)
    truth = _jax_hvp(net, case.x, case.t, directions)
    assert [g.shape for g in got] == [w.shape for w in net.weights]
    if not _off(got, truth) <= RTOL:
        raise PropertyFailure(f"H D differs from JAX's by {_off(got, truth):.2e} (norm-wise)",
                              case)


def _checked(net: Network, case, directions, hvp_net: Network | None = None):
    """``check_hvp`` of E(all weights) along D with ``hvp_net``'s (default: ``net``'s) H D."""
    like = net.weights
    hvp_net = hvp_net or net

    def f(z):
        return network_loss(_shaped(z, like), case.x, case.t, net.activations,
                            net.loss_function)

    def hvp(z, v):
        hvp_net.weights = _shaped(z, like)
        return _flat(hvp_net.hessian_vector_product(case.x, case.t, _shaped(v, like)))

    return check_hvp(f, hvp, _flat(like), v=_flat(directions))


@settings(max_examples=budget(0.1))
@given(case=cases(specs, max_batch=3))
def test_check_hvp_passes_the_reference_networks_hessian_vector_product(case):
    net = case.network()
    report = _checked(net, case, _directions(net, 1))
    if report.failures or (case.spec.smooth and report.count("doubt")):
        raise PropertyFailure(f"check_hvp on the reference's H D: {report.headline}", case)


def _wrong_activation(act: Activation, bug: str) -> Activation:
    d2f = {"dropped": lambda v: np.zeros_like(v),
           "at_y": lambda v: act.d2f(act.f(v)),
           "sign": lambda v: -act.d2f(v)}[bug]
    return Activation(act.name, act.f, act.df, act.kinks, d2f)


def _without_batch_mean(loss: Loss) -> Loss:
    b = {"hvp": None if loss.hvp is None else (lambda y, t, r: loss.hvp(y, t, r) * len(y)),
         "hvp_v": None if loss.hvp_v is None else (
             lambda v, y, t, r: loss.hvp_v(v, y, t, r) * len(v))}
    return Loss(loss.name, loss.value, loss.grad, loss.output_activation, loss.value_from_v,
                loss.grad_v, **b)


@settings(max_examples=budget(0.1))
@given(case=cases(curved, min_batch=2, max_batch=3), bug=st.sampled_from(
    ["dropped", "at_y", "sign", "batch_mean"]), layer=st.integers(0, 2))
def test_check_hvp_fails_a_planted_second_order_bug(case, bug, layer):
    net = case.network()
    acts = list(net.activations)
    loss = net.loss_function
    if bug == "batch_mean":
        loss = _without_batch_mean(LOSSES[net.loss_function.name])
    else:
        k = layer % len(acts)
        # (a fused loss computes the output layer's second derivative itself: hvp_v)
        assume(acts[k].elementwise and not (k == len(acts) - 1 and loss.fused))
        acts[k] = _wrong_activation(acts[k], bug)
    wrong = Network(list(net.layer_sizes), acts, loss)
    wrong.weights = net.weights
    directions = _directions(net, 0)
    moved = _off(wrong.hessian_vector_product(case.x, case.t, directions),
                 _jax_hvp(net, case.x, case.t, directions))
    assume(moved > VISIBLE)  # the bug changes H D at this network (relu'' = 0 cannot)
    report = _checked(net, case, directions, hvp_net=wrong)
    if not report.failures:
        raise PropertyFailure(f"a planted {bug} bug (H D off by {moved:.1e}) got: "
                              f"{report.headline}", case)


def _worst(draws: int) -> float:
    """The largest norm-wise difference from JAX over ``draws`` drawn networks (RTOL's reason)."""
    from hypothesis import HealthCheck

    worst = [0.0]

    @settings(max_examples=draws, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases(specs, max_batch=4), seed=st.integers(0, 2**16))
    def run(case, seed):
        net = case.network()
        directions = _directions(net, seed)
        got = net.hessian_vector_product(case.X, case.T, directions)
        worst[0] = max(worst[0], _off(got, _jax_hvp(net, case.x, case.t, directions)))

    run()
    return worst[0]


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"largest norm-wise |hand - JAX| over {n} networks: {_worst(n):.2e}")

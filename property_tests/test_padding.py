"""The padded JAX gradients are the exact-shape ones, and random shapes do not recompile.

``padded_autodiff`` embeds every network in one of maximal shape so that one compiled function
per loss serves all examples. These tests check the embedding against unpadded JAX (which
compiles per shape, so they run few examples) and that drawing new shapes compiles nothing.
"""

import numpy as np
from hypothesis import example, given, settings

from oracle.strategies import Case, cases

from . import padded_autodiff as pa
from .profiles import budget


@settings(max_examples=budget(0.05))
@given(case=cases())
@example(case=Case.of([2, 3, 2], ["softmax", "softmax"], "cross_entropy", X=[[1.0, -2.0]], T=[1]))
@example(case=Case.of([2, 1, 3], ["sine", "sigmoid"], "binary_cross_entropy",
                      X=[[0.5, 1.0], [0.0, -1.0]], T=[[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]]))
def test_padded_gradients_equal_the_exact_shape_gradients(case):
    net = case.network()
    dws, dx = pa.network_gradients(net, case.x, case.t)
    dws_exact, dx_exact = pa.network_gradients(net, case.x, case.t, pad=False)
    got = np.concatenate([*(d.ravel() for d in dws), dx.ravel()])
    exact = np.concatenate([*(d.ravel() for d in dws_exact), dx_exact.ravel()])
    # The same sums; padding adds exact zeros and x @ I, so only the order of the batch sum
    # (a masked vmap vs one matmul) differs: a few ulps of the terms.
    scale = np.linalg.norm(exact) + np.finfo(float).tiny
    assert np.linalg.norm(got - exact) <= 1e-12 * scale + 1e-300


def test_new_random_shapes_do_not_trigger_a_recompilation():
    # Warm up one example per loss, then draw fresh shapes and count compilations.
    rng = np.random.default_rng(0)

    def random_case(loss):
        depth = int(rng.integers(1, 5))
        sizes = [int(n) for n in rng.integers(1, 9, size=depth + 1)]
        acts = list(rng.choice(["tanh", "relu", "gelu", "elu", "softmax", "sine"], size=depth))
        if loss == "cross_entropy":
            acts[-1] = "softmax"
        if loss == "binary_cross_entropy":
            acts[-1] = "sigmoid"
        batch = int(rng.integers(1, 9))
        x = rng.normal(size=(batch, sizes[0]))
        t = (rng.integers(0, sizes[-1], size=batch) if loss == "cross_entropy"
             else rng.uniform(size=(batch, sizes[-1])))
        return Case.of(sizes, acts, loss, X=x.tolist(), T=t.tolist(), seed=int(rng.integers(99)))

    losses = ["mse", "cross_entropy", "binary_cross_entropy"]
    for loss in losses:
        c = random_case(loss)
        pa.network_gradients(c.network(), c.x, c.t)
    before = pa.compilations()
    for i in range(60):
        c = random_case(losses[i % 3])
        pa.network_gradients(c.network(), c.x, c.t)
    assert pa.compilations() == before

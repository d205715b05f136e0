"""The bench section "Where the time goes" (``benchmarks/profile.py``) times bare numpy versions
of the mnist step and gradients as the floor under the reference: they must compute what the
reference computes, or the floor would be a floor of something else."""

import numpy as np

from benchmarks.problems import PROBLEMS
from benchmarks.profile import _bare_mnist_step, _products

MNIST = next(p for p in PROBLEMS if p.name == "mnist")


def _setup():
    net = MNIST.network()
    x, t = MNIST.data(seed=1)
    return net, x, t


def test_the_bare_gradients_are_the_references():
    net, x, t = _setup()
    e, dws, dx = net.gradients(x, t)
    e2, dws2, dx2 = _bare_mnist_step([w.copy() for w in net.weights], x, t, 0.1,
                                     gradients=True)()
    assert abs(e2 - e) <= 1e-12 * abs(e)
    for a, b in zip(dws2, dws):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
    np.testing.assert_allclose(dx2, dx, rtol=0, atol=1e-12 * np.abs(dx).max())


def test_the_bare_step_moves_the_weights_as_the_references():
    net, x, t = _setup()
    weights = [w.copy() for w in net.weights]
    e = net.step(x, t, 0.1)
    assert abs(_bare_mnist_step(weights, x, t, 0.1)() - e) <= 1e-12 * abs(e)
    for a, b in zip(weights, net.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


def test_the_products_alone_run_in_numpy_and_torch():
    net, x, t = _setup()
    try:
        import torch
    except ImportError:
        torch = None
    for module in {None, torch}:
        for input_grad in (False, True):
            _products(net.weights, x, t, net.activations, net.loss_function,
                      input_grad=input_grad, torch=module)()

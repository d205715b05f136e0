"""Gradient checks of my_layers.py: assertions, property tests over every shape, a snapshot.

Three ways to add a check, each a line or two:

- ``assert_vjp(forward, backward, inputs)`` at fixed inputs;
- ``@given(layer_inputs({...}))`` over every shape that fits (and points on kinks and ties);
- ``gradcheck.snapshot(name, forward, backward, inputs)``: a regression gate that needs neither
  JAX nor finite differences (``pytest --gradcheck-update-snapshots`` records it).

``test_sigmoid_backward`` fails on purpose: it shows what pytest prints for a wrong gradient.
"""

import my_layers as L
import numpy as np
from hypothesis import given

from oracle.strategies import labels, layer_inputs
from oracle.testing import assert_vjp

DENSE = {"x": ("B", "n"), "w": ("n", "m"), "b": ("m",)}


def test_dense_backward():
    rng = np.random.default_rng(0)
    assert_vjp(L.dense_forward, L.dense_backward,
               (rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)))


@given(layer_inputs(DENSE))
def test_dense_backward_for_any_shapes(inputs):
    assert_vjp(L.dense_forward, L.dense_backward, inputs)


# Layers with kinks and ties: every entry is either exactly on the kink (0) or a tie, or at
# least SPREAD / 2 = 0.025 away from all of them. Finite differences step ~1e-5 from an entry;
# a right backward at 1e-6 from the kink would end in doubt (no stencil fits on one side), which
# --gradcheck-strict fails. At an exact kink or tie the oracle says "kink" and passes the
# hand's one-sided choice; well clear of them, it confirms the derivative outright.
SPREAD = 0.05


@given(layer_inputs({"x": ("B", "n")}, spread=SPREAD, plant=True))
def test_relu_backward_on_and_off_its_kink(inputs):
    assert_vjp(L.relu_forward, L.relu_backward, inputs)


@given(layer_inputs({"x": ("B", "2*k")}, spread=SPREAD, plant=True))
def test_max_pairs_backward_with_ties(inputs):
    assert_vjp(L.max_pairs_forward, L.max_pairs_backward, inputs)


@given(layer_inputs({"scores": ("B", "C"), "y": labels("B", classes="C")}))
def test_softmax_loss_backward_with_integer_labels(inputs):
    assert_vjp(L.softmax_loss, L.softmax_loss_backward, inputs)


def test_dense_backward_matches_its_snapshot(gradcheck):
    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(5, 4)), "w": rng.normal(size=(4, 3)),
              "b": rng.normal(size=3)}
    gradcheck.snapshot("dense", L.dense_forward, L.dense_backward, inputs)


def test_sigmoid_backward():
    # Fails on purpose (see my_layers.sigmoid_backward).
    x = np.linspace(-2.0, 2.0, 8).reshape(2, 4)
    assert_vjp(L.sigmoid_forward, L.sigmoid_backward, (x,))

"""How far apart two *correct* float64 computations of the same gradient may lie.

The bound itself (a running error bound: the magnitudes of the terms each gradient is a sum of,
propagated through the backward pass) lives in ``oracle.magnitudes``, which the oracle's
verdicts use too; this module adapts it to the property suite's ``Network``-based calls.
See ``oracle/magnitudes.py`` for the derivation and ``TERM_RTOL``'s reason.
"""

from __future__ import annotations

import numpy as np

from oracle.magnitudes import (
    TERM_RTOL,
    activation_magnitude,
    forward_error,
    loss_magnitude,
)
from oracle.magnitudes import loss_value_magnitude as _loss_value_magnitude
from oracle.magnitudes import network_magnitudes as _network_magnitudes
from reference import Loss, Network
from reference.passes import Trace

__all__ = [
    "TERM_RTOL",
    "TINY",
    "activation_magnitude",
    "forward_magnitudes",
    "loss_magnitude",
    "loss_value_magnitude",
    "network_magnitudes",
]

TINY = float(np.finfo(np.float64).tiny)
"""Absolute floor: JAX on CPU flushes subnormal results to zero, numpy keeps them."""


def forward_magnitudes(net: Network, trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Bounds, in units of eps, on the rounding error of the output layer's V and Y."""
    return forward_error(net.weights, trace, net.activations)


def loss_value_magnitude(loss: Loss, net: Network, trace: Trace, t: np.ndarray) -> float:
    """Bound, in units of eps, on the rounding error of E: not eps |E|."""
    return _loss_value_magnitude(net.weights, trace, t, net.activations, loss)


def network_magnitudes(net: Network, trace: Trace, t: np.ndarray):
    """``(M_dW of every layer, M_dX of the input)`` for the trace of ``net`` on targets ``t``."""
    m_dws, m_dxs = _network_magnitudes(net.weights, trace, t, net.activations,
                                       net.loss_function)
    return m_dws, m_dxs[0]

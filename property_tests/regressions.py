"""Cases the suite once failed on, pinned with ``@example`` so that they run on every run.

Each was found by Hypothesis (nightly profile) and fixed on the suite's side (a tolerance that
ignored cancellation, a step-size search that gave up too early, ...) or reported to the
oracle's owner (``test_oracle_known_issues.py``). The comment says what each taught us.
"""

import numpy as np

from oracle.strategies import Case

__all__ = [
    "GELU_LEFT_TAIL",
    "GELU_TAIL_AFTER_SOFTPLUS",
    "NEARLY_UNIFORM_SOFTMAX",
    "QUANTIZED_CROSS_ENTROPY",
    "STACKED_LEAKY_KINKS",
    "TINY_GRADIENT_STEP",
    "UNIFORM_SOFTMAX",
    "UNIFORM_SOFTMAX_CROSS_ENTROPY",
]

def _sparse(shape: tuple[int, int], entries: dict[tuple[int, int], float]) -> list:
    """A weight matrix of zeros but for ``entries``, as nested lists."""
    w = np.zeros(shape)
    for index, value in entries.items():
        w[index] = value
    return w.tolist()


# gelu' at v = -6.875 is ~1e-13 made of O(1) terms (1 + tanh(z) ~ 3e-15): hand and JAX agree
# only to ~eps of the terms, not relative to the result -> magnitude-of-terms tolerance.
GELU_LEFT_TAIL = Case.of(
    [1, 3, 1, 1], ["identity", "identity", "gelu"], "mse", X=[[0.0]], T=[[0.0]],
    weights=[[[1.5, 1.5, 1.5], [1.5, 1.5, 1.5]], [[1.0], [1.0], [1.0], [1.0]], [[-1.25], [0.0]]])

# the same at v = -4.47: hand and JAX 2.4e-10 apart relative, 3e-16 of the terms.
GELU_TAIL_AFTER_SOFTPLUS = Case.of(
    [1, 1, 5, 1], ["identity", "softplus", "gelu"], "mse", X=[[0.0]], T=[[0.0]],
    weights=[[[0.0], [0.0]], [[0.0] * 5, [0.0] * 5], [[-1.0]] * 6])

# leaky_relu twice at v = 0 with a negative weight between: the composite is smooth (slope
# 0.01 w on both sides) but the chain rule gives 0.01 * 0.01 w -> judged as the oracle does.
STACKED_LEAKY_KINKS = Case.of([1, 1, 1, 1], ["leaky_relu", "leaky_relu", "sigmoid"], "mse",
                              X=[[0.0]], T=[[0.0]])

# a uniform softmax: dE/dV is 0 exactly and ~1e-16 in float64.
UNIFORM_SOFTMAX = Case.of(
    [1, 3, 1], ["softmax", "identity"], "mse", X=[[0.0]], T=[[0.0]],
    weights=[[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[1.25], [1.25], [1.25], [1.25]]])

# a uniform softmax under cross-entropy with equal rows of W: dE/dX = sum(Y - T) = 0 exactly.
UNIFORM_SOFTMAX_CROSS_ENTROPY = Case.of(
    [1, 1, 1, 1, 6], ["identity", "identity", "leaky_relu", "softmax"], "cross_entropy",
    X=[[0.0]], T=[0],
    weights=[[[0.0], [0.0]], [[0.0], [0.0]], [[0.0], [0.0]], [[1.0] * 6, [1.0] * 6]])

# logits differing by ~1e-6: the batch-mean identity holds to eps of the terms, not of the
# (1e-7-sized) result.
NEARLY_UNIFORM_SOFTMAX = Case.of([1, 1, 2], ["identity", "softmax"], "mse",
                                 X=[[2.0**-20], [2.0**-20], [2.0**-20]],
                                 T=[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])

# |dE/dW|^2 ~ 1e-17 against E = 0.25 and curvature ~1: no step can show a decrease above E's
# rounding, so the property must say "undecidable", not fail.
TINY_GRADIENT_STEP = Case.of([1, 2], ["softmax"], "mse", X=[[2.0**-20]], T=[[0.0, 0.0]])

# E = log(1 + e^-16) ~ 1e-7 computed as logsumexp(v) - v_t from terms ~16: the stencil values
# of a weight whose effect on E is ~1e-18 are all equal, so finite differences claim 0 +- 1e-17
# for a derivative of -1.8e-11 they cannot resolve (their real noise is ~eps 16 / h ~ 6e-10).
QUANTIZED_CROSS_ENTROPY = Case.of(
    [6, 7, 7, 7, 2], ["identity", "identity", "square", "softmax"], "cross_entropy",
    X=[[0.0] * 6], T=[0],
    weights=[_sparse((7, 7), {(6, 0): 2.0}), _sparse((8, 7), {(0, 5): 2.0, (0, 6): 1e-05}),
             _sparse((8, 7), {(5, 3): 1.0}), _sparse((8, 2), {(3, 0): 1.0})])

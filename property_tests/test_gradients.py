"""The reference's gradients against JAX and finite differences, for any network.

Three sources, three pairs: hand vs JAX (exact up to rounding), hand vs finite differences (the
oracle's stated tolerance), and JAX vs finite differences (the oracle checking itself).
"""

from hypothesis import example, given, settings

from oracle.strategies import cases

from . import properties as P
from . import regressions as R
from .profiles import budget


@settings(max_examples=budget(5))
@given(case=cases())
@example(case=R.GELU_LEFT_TAIL)
@example(case=R.GELU_TAIL_AFTER_SOFTPLUS)
@example(case=R.UNIFORM_SOFTMAX_CROSS_ENTROPY)
def test_backward_matches_autodiff_for_any_network(case):
    P.backward_matches_autodiff(case)


@settings(max_examples=budget(1.5))
@given(case=cases())
@example(case=R.STACKED_LEAKY_KINKS)
@example(case=R.QUANTIZED_CROSS_ENTROPY)
@example(case=R.UNIFORM_SOFTMAX_CROSS_ENTROPY)
def test_backward_matches_finite_differences_for_any_network(case):
    P.backward_matches_finite_differences(case)


@settings(max_examples=budget(1.5))
@given(case=cases())
@example(case=R.GELU_LEFT_TAIL)
def test_autodiff_matches_finite_differences_so_the_oracle_checks_itself(case):
    P.autodiff_matches_finite_differences(case)

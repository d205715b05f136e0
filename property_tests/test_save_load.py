"""Save and load: a round trip preserves forward, loss and gradients bit for bit."""

from hypothesis import given, settings

from oracle.strategies import cases

from . import properties as P
from .profiles import budget


@settings(max_examples=budget(0.5))
@given(case=cases())
def test_save_load_round_trip_preserves_forward_loss_and_gradients_exactly(case):
    P.save_load_round_trip_is_exact(case)

"""Hypothesis settings for this project: derandomised, so CI runs the same examples every time;
no deadline (JAX traces each new shape once, ~0.1 s); no explain phase (for a gradient check it
would list the oracle's own failure path, which the check's report already explains)."""

from hypothesis import settings

from oracle.strategies import PHASES

settings.register_profile("gradients", max_examples=15, deadline=None, derandomize=True,
                          database=None, print_blob=True, phases=PHASES)
settings.load_profile("gradients")

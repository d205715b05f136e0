"""Hypothesis settings for this project: derandomised, so CI runs the same examples every time,
and no deadline (JAX traces each new shape once, ~0.1 s)."""

from hypothesis import settings

settings.register_profile("gradients", max_examples=15, deadline=None, derandomize=True,
                          database=None, print_blob=True)
settings.load_profile("gradients")

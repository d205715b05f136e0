"""Hypothesis settings profiles, chosen by the HYPOTHESIS_PROFILE environment variable.

- ``dev`` (default): quick, for local runs; randomised, with the example database.
- ``ci``: what ``make test`` uses: derandomised (the same examples on every run), no deadline,
  prints the ``@reproduce_failure`` blob, no database (a CI machine starts clean).
- ``nightly``: thousands of examples per property, randomised, with the example database.
- ``mutation``: few examples, derandomised, no shrinking, for ``make mutation`` (each mutant
  reruns the suite; a first failure is all it needs).

Tests state their share of the profile's example budget with ``budget(share)``, so expensive
properties run fewer examples than cheap ones in every profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

__all__ = ["PROFILE", "budget"]

# No deadline anywhere: the first example of a property may include a one-time JAX compilation
# (~1 s), which says nothing about the code under test.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("dev", max_examples=20, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, database=None,
                          print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=2000, print_blob=True, **_COMMON)
settings.register_profile("mutation", max_examples=12, derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.load_profile(PROFILE)


def budget(share: float) -> int:
    """``share`` x the profile's ``max_examples`` (at least 1)."""
    return max(1, round(settings.default.max_examples * share))

"""Property-suite setup: JAX in float64 before anything else, then the settings profile."""

import oracle  # noqa: F401  (first: switches JAX to float64 before any array exists)

from . import profiles  # noqa: F401  (registers and loads the HYPOTHESIS_PROFILE profile)

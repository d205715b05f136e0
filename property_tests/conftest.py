"""Property-suite setup: JAX in float64 before anything else, a persistent compilation cache,
then the settings profile."""

import os

import oracle  # noqa: F401  (first: switches JAX to float64 before any array exists)
from oracle.jax_support import jax

from . import profiles  # noqa: F401  (registers and loads the HYPOTHESIS_PROFILE profile)

# XLA compiles each new shape once (the padded gradients, the oracle's local terms and eager
# primitives); the persistent cache keeps those executables on disk, so a second run (or a
# second xdist worker) loads them instead of compiling: ~3 s -> 0.3 s for a fresh network in
# check_network. JAX keys the entries by its own version and the backend. Outside the
# repository; set SIMPLE_NET_JAX_CACHE="" to switch it off, or to a folder CI caches.
_CACHE = os.environ.get(
    "SIMPLE_NET_JAX_CACHE",
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                 "simple-net", "jax"))
if _CACHE:
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

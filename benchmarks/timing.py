"""Timing in alternating blocks: warm-up, then the median over many samples of every contender.

Contenders of one comparison are timed in turns, several cycles of "A's block, B's block, C's
block", so that a slow spell of the machine (another process, a frequency change) lands on all
of them alike and the *ratios* stay meaningful when absolute times drift.

Each block starts with ``settle_seconds`` of untimed calls. This matters: numpy's OpenBLAS,
torch's OpenMP and XLA each keep worker threads that spin for a while after their last parallel
call (OpenBLAS for ~0.1 s). Timed right after another library, a contender would share the
cores with those spinning threads, which is not how anyone runs it. The settle time lets them
go to sleep and warms the contender's own caches, threads and allocator.

A sample is the mean of a batch of calls lasting ~``batch_seconds``, so the resolution of
``time.perf_counter`` and the loop's own cost do not matter; the result is the median sample
and its quartiles. The garbage collector is off while timing, as in ``timeit``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Timing", "time_interleaved"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median sample and its quartiles; ``samples`` x ``calls`` calls."""

    median: float
    q1: float
    q3: float
    samples: int
    calls: int


def _run_for(fn: Callable[[], object], seconds: float) -> float:
    """Call ``fn`` at least once and until ``seconds`` have passed; return seconds per call."""
    start = time.perf_counter()
    fn()
    n = 1
    while (now := time.perf_counter()) - start < seconds:
        fn()
        n += 1
    return (now - start) / n


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    cycles: int = 5,
    samples_per_cycle: int = 20,
    settle_seconds: float = 0.25,
    batch_seconds: float = 2e-3,
) -> dict[str, Timing]:
    """Time every function of ``fns`` in alternating blocks; return a ``Timing`` per name."""
    names = list(fns)
    calls = {}
    for name in names:  # first warm-up (JIT compilation, first allocations) and calibration
        once = _run_for(fns[name], settle_seconds)
        calls[name] = max(1, min(10_000, round(batch_seconds / max(once, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(cycles):
            for name in names:
                fn, n = fns[name], calls[name]
                if settle_seconds > 0:
                    _run_for(fn, settle_seconds)
                for _ in range(samples_per_cycle):
                    t0 = time.perf_counter()
                    for _ in range(n):
                        fn()
                    samples[name].append((time.perf_counter() - t0) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {}
    for name in names:
        q1, med, q3 = np.percentile(samples[name], [25, 50, 75])
        out[name] = Timing(float(med), float(q1), float(q3), len(samples[name]), calls[name])
    return out

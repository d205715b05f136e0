"""Measure the property suite: examples run, seconds, examples per second; and the xdist speed-up.

    python -m property_tests.measure                 # ci profile, in this process, per test
    python -m property_tests.measure --xdist 2       # also: wall time with -n 0 vs -n 2
    HYPOTHESIS_PROFILE=nightly python -m property_tests.measure

An example is one test case Hypothesis ran to completion (passing or failing, in any phase,
including the searches the bug-zoo tests run inside themselves), counted from Hypothesis's own
run statistics. The rate is examples over the wall time of the whole pytest session, so JAX's
one-time compilations and every non-Hypothesis test are included in the denominator.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict

import pytest

__all__ = ["main"]


class _Counter:
    """A pytest plugin: Hypothesis test cases per test (via hypothesis.statistics' collector)."""

    def __init__(self) -> None:
        self.examples: Counter[str] = Counter()
        self.seconds: dict[str, float] = defaultdict(float)
        self.start = self.end = 0.0

    def pytest_sessionstart(self, session) -> None:
        self.start = time.perf_counter()

    def pytest_sessionfinish(self, session) -> None:
        self.end = time.perf_counter()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        from hypothesis.statistics import collector  # internal; what Hypothesis's plugin uses

        def note(stats) -> None:
            for key, phase in stats.items():
                if key.endswith("-phase") and isinstance(phase, dict):
                    self.examples[item.nodeid] += sum(
                        1 for case in phase.get("test-cases", [])
                        if case.get("status") in ("valid", "interesting"))

        t0 = time.perf_counter()
        try:
            with collector.with_value(note):
                return (yield)
        finally:
            self.seconds[item.nodeid] += time.perf_counter() - t0


def _in_process(paths: list[str]) -> int:
    counter = _Counter()
    code = pytest.main([*paths, "-q", "-p", "no:cacheprovider"], plugins=[counter])
    from . import padded_autodiff  # after pytest.main: it imports hypothesis, which pytest
    # must import first (to rewrite its plugin's asserts)

    wall = counter.end - counter.start
    total = sum(counter.examples.values())
    width = max((len(n) for n in counter.seconds), default=10)
    print(f"\n{'test':<{width}}  examples  seconds  examples/s")
    for nodeid in sorted(counter.seconds, key=counter.seconds.get, reverse=True):
        n, s = counter.examples[nodeid], counter.seconds[nodeid]
        rate = f"{n / s:10.0f}" if n and s > 0 else "         -"
        print(f"{nodeid:<{width}}  {n:8d}  {s:7.2f}  {rate}")
    print(f"\nprofile {os.environ['HYPOTHESIS_PROFILE']}: {total} examples in {wall:.1f} s of "
          f"wall time: {total / wall:.0f} examples/s (JAX compilations: "
          f"{padded_autodiff.compilations()})")
    return int(code)


def _wall(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["property_tests"])
    parser.add_argument("--xdist", type=int, metavar="N", default=0,
                        help="also time the paths in fresh processes with -n 0 and -n N")
    args = parser.parse_args(argv)
    os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
    code = _in_process(args.paths)
    if args.xdist:
        serial = _wall([*args.paths, "-n", "0"])
        parallel = _wall([*args.paths, "-n", str(args.xdist)])
        print(f"\nxdist: -n 0 {serial:.1f} s, -n {args.xdist} {parallel:.1f} s: speed-up "
              f"{serial / parallel:.2f}x on {os.cpu_count()} CPUs")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The resolution table's bisections (``benchmarks/resolution.py``) find the boundaries of a
verdict function whose boundaries are known by construction."""

import pytest

from benchmarks.resolution import largest_passing, smallest_failing


def _verdict(e: float) -> str:
    return "pass" if e < 1e-9 else ("doubt" if e < 1e-7 else "FAIL")


def test_the_bisections_find_where_pass_ends_and_fail_begins_to_a_factor_1_3():
    largest, above = largest_passing(_verdict)
    assert 1e-9 / 1.3 <= largest < 1e-9 and above == "doubt"
    assert 1e-7 <= smallest_failing(_verdict) <= 1.3e-7


@pytest.mark.parametrize(("verdict", "largest", "smallest"), [
    (lambda e: "pass", (1.0, "pass"), None),
    (lambda e: "FAIL", (None, "FAIL"), 1e-16),
    (lambda e: "doubt", (None, "doubt"), None),
])
def test_the_bisections_report_the_ends_of_the_range(verdict, largest, smallest):
    assert largest_passing(verdict) == largest
    assert smallest_failing(verdict) == smallest

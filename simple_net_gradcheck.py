"""pytest plugin of simple-net's gradient oracle: options, a fixture and a summary line.

Installed with simple-net (entry point ``pytest11: simple_net_gradcheck``), so any test suite in
the environment gets:

- ``--gradcheck-strict`` (or ini ``gradcheck_strict = true``): the ``oracle.testing`` helpers
  count doubt (the sources of truth could not confirm each other) as failure;
- ``--gradcheck-update-snapshots``: ``assert_snapshot`` / ``gradcheck.snapshot`` re-record their
  snapshots instead of comparing;
- the ``gradcheck`` fixture: an ``oracle.testing.GradCheck`` with the session's settings
  (strictness, ini ``gradcheck_seed``, ini ``gradcheck_snapshot_dir`` beside the test file, ini
  ``gradcheck_snapshot_rtol``);
- one line in the terminal summary counting the helpers' checks, failures, rows in doubt, kink
  entries and snapshots (under pytest-xdist too: each test's counts travel with its report, as a
  ``gradcheck`` user property, which ``--junitxml`` also writes into the test's properties).

This module is top-level and imports neither ``oracle`` nor JAX: pytest loads every installed
plugin in every session, and importing ``oracle`` would load JAX and switch it to float64 in
test suites that never asked for it (and import JAX into fork servers that must not hold its
threads). ``oracle.testing`` finds this module in ``sys.modules`` when it is loaded.
Disable it with ``-p no:simple_net_gradcheck``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PROPERTY", "STATE", "State"]

PROPERTY = "gradcheck"
"""The user property (name) that carries a test's counts from the test to the summary."""
COUNTS = ("checks", "failed", "doubtful", "kinks", "snapshots", "drifted")


@dataclass
class State:
    """The session's settings (read by ``oracle.testing``) and its running counts.

    Attributes:
        strict: doubt fails (``--gradcheck-strict`` / ini ``gradcheck_strict``).
        update_snapshots: snapshots re-record (``--gradcheck-update-snapshots``).
        snapshot_rtol: ini ``gradcheck_snapshot_rtol`` (None: the snapshot file's own).
        item: the test running now (its counts go into its user properties).
        tally: the running test's counts.
        totals: the session's counts (on the controller under xdist).
        tests: how many tests made at least one check.
    """

    strict: bool = False
    update_snapshots: bool = False
    snapshot_rtol: float | None = None
    item: Any = None
    tally: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    tests: int = 0

    def record(self, **counts: int) -> None:
        """Add to the running test's counts (called by the ``oracle.testing`` helpers)."""
        for key, value in counts.items():
            self.tally[key] = self.tally.get(key, 0) + int(value)

    def summary(self) -> str:
        """The terminal summary's line."""
        t = self.totals
        doubt = _count(t["doubtful"], "row in doubt", "rows in doubt")
        if t["doubtful"]:
            doubt += (" (failed: --gradcheck-strict)" if self.strict
                      else " (passed; --gradcheck-strict fails them)")
        line = (f"gradcheck: {_count(t['checks'], 'check', 'checks')} in "
                f"{_count(self.tests, 'test', 'tests')}, {t['failed']} failed, {doubt}, "
                f"{_count(t['kinks'], 'kink entry', 'kink entries')}")
        if t["snapshots"]:
            verb = "re-recorded" if self.update_snapshots else "compared"
            line += (f"; {_count(t['snapshots'], 'snapshot', 'snapshots')} {verb}, "
                     f"{t['drifted']} drifted")
        return line


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


STATE = State()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks (simple-net's oracle)")
    group.addoption("--gradcheck-strict", action="store_true", default=None,
                    help="oracle.testing helpers: count doubt (the sources of truth disagree "
                         "with each other) as failure")
    group.addoption("--gradcheck-update-snapshots", action="store_true", default=False,
                    help="re-record gradient snapshots instead of comparing them")
    parser.addini("gradcheck_strict", "count doubt as failure (as --gradcheck-strict)",
                  type="bool", default=False)
    parser.addini("gradcheck_seed", "seed of the gradcheck fixture's checks (default 0)",
                  default="0")
    parser.addini("gradcheck_snapshot_dir", "folder of the gradcheck fixture's snapshots, "
                  "relative to each test file's folder (default gradient_snapshots)",
                  default="gradient_snapshots")
    parser.addini("gradcheck_snapshot_rtol", "snapshot drift tolerance relative to the "
                  "gradient's norm (default: the one recorded in each file, 1e-9)", default="")


def pytest_configure(config: pytest.Config) -> None:
    strict = config.getoption("gradcheck_strict")
    STATE.strict = bool(config.getini("gradcheck_strict") if strict is None else strict)
    STATE.update_snapshots = bool(config.getoption("gradcheck_update_snapshots"))
    rtol = str(config.getini("gradcheck_snapshot_rtol")).strip()
    try:
        STATE.snapshot_rtol = float(rtol) if rtol else None
    except ValueError:
        raise pytest.UsageError(f"gradcheck_snapshot_rtol must be a number, got {rtol!r}"
                                ) from None
    STATE.totals = dict.fromkeys(COUNTS, 0)
    STATE.tests = 0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    STATE.item = item
    STATE.tally = dict.fromkeys(COUNTS, 0)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # After the fixtures' teardown (trylast), before the teardown report is made: the counts
    # ride on that report, which pytest-xdist sends to the controller.
    if item is STATE.item and any(STATE.tally.values()):
        item.user_properties.append((PROPERTY, json.dumps(STATE.tally)))
    STATE.item = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name == PROPERTY:
            counts = json.loads(value)
            for key in COUNTS:
                STATE.totals[key] += int(counts.get(key, 0))
            STATE.tests += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STATE.totals["checks"] or STATE.totals["snapshots"]:
        terminalreporter.write_line(STATE.summary())


@pytest.fixture(scope="module")
def gradcheck(request: pytest.FixtureRequest) -> Any:
    """The ``oracle.testing`` helpers with this session's settings: ``gradcheck.vjp(...)``,
    ``.gradient``, ``.network``, ``.layers``, ``.snapshot(name, ...)`` (an
    ``oracle.testing.GradCheck``). Module-scoped (it holds settings only), so Hypothesis tests
    may take it too."""
    from oracle.testing import GradCheck

    config = request.config
    try:
        seed = int(str(config.getini("gradcheck_seed")).strip() or 0)
    except ValueError:
        raise pytest.UsageError("gradcheck_seed must be an int, got "
                                f"{config.getini('gradcheck_seed')!r}") from None
    folder = Path(str(config.getini("gradcheck_snapshot_dir")))
    if not folder.is_absolute():
        folder = Path(request.path).parent / folder
    return GradCheck(strict=STATE.strict, seed=seed, snapshot_dir=folder,
                     update_snapshots=STATE.update_snapshots, snapshot_rtol=STATE.snapshot_rtol)

"""pytest plugin of simple-net's gradient oracle: options, a fixture and a summary line.

Installed with simple-net (entry point ``pytest11: simple_net_gradcheck``), so any test suite in
the environment gets:

- ``--gradcheck-strict`` (or ini ``gradcheck_strict = true``): the ``oracle.testing`` helpers
  count doubt (the sources of truth could not confirm each other) as failure;
  ``--gradcheck-no-strict`` overrides the ini setting for one run (the last flag given wins);
- ``--gradcheck-update-snapshots``: ``assert_snapshot`` / ``gradcheck.snapshot`` re-record their
  snapshots instead of comparing;
- the ``gradcheck`` fixture: an ``oracle.testing.GradCheck`` with the session's settings
  (strictness, ini ``gradcheck_seed``, ini ``gradcheck_snapshot_dir`` beside the test file, ini
  ``gradcheck_snapshot_rtol``);
- one line in the terminal summary counting the helpers' checks, failures, rows in doubt, kink
  entries and snapshots (under pytest-xdist too: each test's counts travel with its report, as a
  ``gradcheck`` user property, which ``--junitxml`` also writes into the test's properties).
  The counts follow each test's outcome: a Hypothesis test that fails counts the checks of its
  final run only (the minimal failing example it reports), not those of its search and
  shrinking; a check or snapshot that failed inside a test that passed (``pytest.raises``,
  ``xfail``) is counted as expected, not as failed; a missing snapshot as missing;
- in a gradient check's failure, Hypothesis' "Explanation" (its explain phase: lines only
  failing examples ran) without the oracle's lines and those of the libraries it calls: they
  are the oracle building its failure report, which only a failure runs, and say nothing about
  your code. The block goes when none of your lines is left in it.
  (``@settings(phases=oracle.strategies.PHASES)`` skips the phase and its reruns altogether.)

This module is top-level and imports neither ``oracle`` nor JAX: pytest loads every installed
plugin in every session, and importing ``oracle`` would load JAX and switch it to float64 in
test suites that never asked for it (and import JAX into fork servers that must not hold its
threads). ``oracle.testing`` finds this module in ``sys.modules`` when it is loaded.
Disable it with ``-p no:simple_net_gradcheck``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PROPERTY", "STATE", "State"]

PROPERTY = "gradcheck"
"""The user property (name) that carries a test's counts from the test to the summary."""
COUNTS = ("checks", "failed", "doubtful", "kinks", "snapshots", "drifted", "missing",
          "changed", "refused", "expected")
FAILURES = ("failed", "drifted", "missing", "changed", "refused")
"""The counts of checks and snapshots that failed: counted as "expected" in a test that passed
(the test caught the failure itself: ``pytest.raises``, or an ``xfail`` mark)."""


@dataclass
class State:
    """The session's settings (read by ``oracle.testing``) and its running counts.

    Attributes:
        strict: doubt fails (``--gradcheck-strict`` / ini ``gradcheck_strict``).
        update_snapshots: snapshots re-record (``--gradcheck-update-snapshots``).
        snapshot_rtol: ini ``gradcheck_snapshot_rtol`` (None: the snapshot file's own).
        item: the test running now (its counts go into its user properties).
        tally: the running test's counts.
        final: the running test's counts were restarted for Hypothesis' final run.
        call_failed: the running test's call phase failed.
        totals: the session's counts (on the controller under xdist).
        tests: how many tests made at least one check.
    """

    strict: bool = False
    update_snapshots: bool = False
    snapshot_rtol: float | None = None
    item: Any = None
    tally: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    final: bool = False
    call_failed: bool = False
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    tests: int = 0

    def record(self, **counts: int) -> None:
        """Add to the running test's counts (called by the ``oracle.testing`` helpers).

        Inside Hypothesis' final run of a failing test (the minimal example it reports), the
        first call drops what the search and the shrinking counted before it."""
        if not self.final and _in_final_hypothesis_run():
            self.tally = dict.fromkeys(COUNTS, 0)
            self.final = True
        for key, value in counts.items():
            self.tally[key] = self.tally.get(key, 0) + int(value)

    def settle(self, test_failed: bool) -> dict[str, int]:
        """The running test's counts as its outcome reads them: failures inside a test that
        did not fail were expected by it."""
        counts = dict(self.tally)
        if not test_failed:
            for key in FAILURES:
                counts["expected"] += counts[key]
                counts[key] = 0
        return counts

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
            line += f"; {_count(t['snapshots'], 'snapshot', 'snapshots')} {verb}"
            if not self.update_snapshots:
                line += f", {t['drifted']} drifted"
            for key, what in (("missing", "missing"), ("changed", "at other inputs"),
                              ("refused", "refused (the oracle says wrong)")):
                if t[key]:
                    line += f", {t[key]} {what}"
        if t["expected"]:
            line += (f"; {t['expected']} more failed inside passing tests, as those tests "
                     "expected")
        return line


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _in_final_hypothesis_run() -> bool:
    """True inside Hypothesis' final run of a failing test (never imports Hypothesis)."""
    control = sys.modules.get("hypothesis.control")
    if control is None:
        return False
    try:
        context = control.current_build_context()
    except Exception:  # not inside a Hypothesis test
        return False
    return bool(getattr(context, "is_final", False))


EXPLANATION = "Explanation:"
"""The first note of Hypothesis' explain phase; its lines follow, indented."""


def _not_yours() -> list[Path]:
    """Folders whose lines say nothing about a user's code: the oracle's, and the installed
    libraries' and the standard library's (numpy, JAX, ... called by the oracle's report)."""
    import sysconfig

    oracle = getattr(sys.modules.get("oracle"), "__file__", None)
    folders = [Path(oracle).resolve().parent] if oracle else []
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        folders.append(Path(sysconfig.get_path(key)).resolve())
    return folders


def _is_gradient_failure(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "oracle"


def drop_oracle_explanations(exc: BaseException) -> None:
    """Remove the oracle's lines (and the installed libraries' it calls) from Hypothesis'
    explanation of a gradient check's failure, in place in ``exc.__notes__``, and the
    explanation itself when none of your lines is left in it. Other failures are left alone;
    the failures of an exception group are each visited."""
    for inner in getattr(exc, "exceptions", ()):  # an ExceptionGroup of several failures
        drop_oracle_explanations(inner)
    notes = getattr(exc, "__notes__", None)
    if not notes or not _is_gradient_failure(exc) or EXPLANATION not in notes:
        return
    folders = _not_yours()
    start = notes.index(EXPLANATION)
    end = start + 2  # the header and the "These lines were ..." line
    while end < len(notes) and notes[end].startswith(" " * 8):
        end += 1
    kept = []
    for line in notes[start + 2:end]:
        if line.strip().startswith("(and "):
            continue  # "(and N more ...)": most of them the oracle's and the libraries' too
        where = Path(line.strip().rsplit(":", 1)[0])
        try:
            theirs = any(where.resolve().is_relative_to(f) for f in folders)
        except (OSError, ValueError):
            theirs = False
        if not theirs:
            kept.append(line)
    notes[start:end] = notes[start:start + 2] + kept if kept else []


STATE = State()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks (simple-net's oracle)")
    group.addoption("--gradcheck-strict", action="store_true", default=None,
                    dest="gradcheck_strict",
                    help="oracle.testing helpers: count doubt (the sources of truth disagree "
                         "with each other) as failure")
    group.addoption("--gradcheck-no-strict", action="store_false", dest="gradcheck_strict",
                    help="doubt passes, whatever the ini option gradcheck_strict says (the "
                         "last of --gradcheck-strict and --gradcheck-no-strict wins)")
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
    STATE.final = False
    STATE.call_failed = False


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    if call.excinfo is not None:  # before pytest renders the failure
        drop_oracle_explanations(call.excinfo.value)
    report = yield
    if call.when == "call" and item is STATE.item:
        STATE.call_failed = report.failed
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # After the fixtures' teardown (trylast), before the teardown report is made: the counts
    # ride on that report, which pytest-xdist sends to the controller.
    if item is STATE.item and any(STATE.tally.values()):
        counts = STATE.settle(STATE.call_failed)
        item.user_properties.append((PROPERTY, json.dumps(counts)))
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

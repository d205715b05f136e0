"""A failing property is a reproducer: its failure carries the case, a script and the oracle's
report.

``PropertyFailure`` is the ``AssertionError`` every property raises. Its message holds:

1. what was violated, with the numbers;
2. a standalone script (``Case.to_python``) that rebuilds the network and the batch and prints
   ``check_network``'s report, with no Hypothesis involved;
3. a ``Case.of(...)`` line to pin the case as a regression with ``@example(case=...)``;
4. the oracle's localised report on the case (layer, term, worst entry).

The report is computed lazily, the first time the message is rendered: Hypothesis renders only
the final, shrunk failure, so the search and the shrinking never pay for it (a fresh network
costs ``check_network`` ~1-3 s of eager-JAX compilation).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from oracle import check_network
from oracle.strategies import Case
from reference import Network

__all__ = ["Build", "PropertyFailure", "default_build"]

Build = Callable[[Case], Network]
"""Turns a case into the network under test (the reference, or a bug-zoo mutant of it)."""


def default_build(case: Case) -> Network:
    """The reference network of ``case``."""
    return case.network()


class PropertyFailure(AssertionError):
    """A property does not hold for ``case``; ``str()`` is a reproducer plus the oracle's report.

    Attributes:
        case: the failing case.
        problem: what was violated.
        build: how the network was built from the case (kept for the oracle's report). A build
            with a ``source`` attribute ``(lines, imports)`` (a bug-zoo mutant) adds those lines
            of Python, which turn ``net`` into the network under test, to the script.
    """

    def __init__(self, problem: str, case: Case, build: Build = default_build) -> None:
        super().__init__(problem)
        self.problem = problem
        self.case = case
        self.build = build
        self._rendered: str | None = None

    def oracle_report(self) -> str:
        """``str(check_network(...))`` on the case (or why it could not run)."""
        if os.environ.get("HYPOTHESIS_PROFILE") == "mutation":
            return "(skipped in the mutation profile: a mutant only needs to fail)"
        try:
            net = self.build(self.case)
            return str(check_network(net, self.case.X, self.case.T))
        except Exception as exc:  # the report is a courtesy; never hide the real failure
            return f"(check_network could not run: {type(exc).__name__}: {exc})"

    def script(self) -> str:
        lines, imports = getattr(self.build, "source", ([], []))
        text = self.case.to_python(imports=imports)
        if not lines:
            return text
        head, _, tail = text.rpartition("\nX = ")
        return head + "\n" + "\n".join(lines) + "\nX = " + tail

    def __str__(self) -> str:
        if self._rendered is None:
            self._rendered = "\n".join([
                self.problem,
                "",
                "Reproduce without Hypothesis:",
                "-" * 60,
                self.script(),
                "-" * 60,
                f"Pin it: @example(case={self.case!r})",
                "",
                "The oracle's report on this case:",
                self.oracle_report(),
            ])
        return self._rendered

"""The registry of report sections: each is a function ``(ctx) -> markdown`` under a title.

``run.py`` imports the modules listed in ``run.SECTION_MODULES``; importing a module registers
its sections, in order. To add rows to the report (for example the oracle's exhaustive
finite-difference check timings), write a module ``benchmarks/<name>.py`` with::

    from .sections import Context, section

    @section("Gradient checking: the oracle")
    def oracle_checks(ctx: Context) -> str:
        rows = []
        for problem in ctx.problems:
            net = problem.network()
            x, t = problem.data()
            timing = ctx.time({"check_network": lambda: check_network(net, x, t)})
            rows.append([problem.name, ms(timing["check_network"].median)])
        return markdown_table(["config", "check_network ms"], rows)

and add ``"benchmarks.<name>"`` to ``run.SECTION_MODULES``. A section that needs an optional
package should return a one-line note instead of raising when it is missing
(``ctx.peers[name] is None``). Results other sections need go in ``ctx.results``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .problems import Problem
from .timing import Timing, time_interleaved

__all__ = ["SECTIONS", "Context", "Section", "markdown_table", "ms", "ratio", "section"]


@dataclass
class Context:
    """What every section gets: the problems, which peers are installed, the timing settings
    (``quick`` = fewer, shorter blocks), and ``results`` shared between sections."""

    problems: Sequence[Problem]
    peers: Mapping[str, str | None]
    quick: bool = False
    results: dict = field(default_factory=dict)

    def time(self, fns: Mapping[str, Callable[[], object]], **kwargs) -> dict[str, Timing]:
        """``time_interleaved`` with this run's settings (fewer, shorter blocks when quick)."""
        if self.quick:
            kwargs.setdefault("cycles", 2)
            kwargs.setdefault("samples_per_cycle", 10)
            kwargs.setdefault("settle_seconds", 0.15)
        return time_interleaved(fns, **kwargs)


@dataclass(frozen=True)
class Section:
    title: str
    render: Callable[[Context], str]


SECTIONS: list[Section] = []


def section(title: str) -> Callable[[Callable[[Context], str]], Callable[[Context], str]]:
    """Register ``fn(ctx) -> markdown`` as a report section titled ``title``."""

    def register(fn: Callable[[Context], str]) -> Callable[[Context], str]:
        SECTIONS.append(Section(title, fn))
        return fn

    return register


def ms(seconds: float | None) -> str:
    """Milliseconds with 3 significant digits, or an em dash."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.3g}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

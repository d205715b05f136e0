"""Write docs/bug_zoo.md from the oracle's real reports on each mutant's pinned case.

    python -m property_tests.zoo_docs            # rewrite docs/bug_zoo.md
    python -m property_tests.zoo_docs --check    # exit 1 if it is out of date

``test_bug_zoo_docs.py`` checks each section against a fresh report, so the page cannot drift
from what the oracle says.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from oracle import check_network

from .properties import NETWORK_PROPERTIES
from .reproduce import PropertyFailure
from .zoo import MUTANTS, Mutant, expected_location

__all__ = ["DOC", "normalise", "render", "render_section", "render_table"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "bug_zoo.md"

HEADER = """\
# The bug zoo

Classic backpropagation mistakes, each a small mutant of the reference network
(`property_tests/zoo.py`), with the report `oracle.check_network` gives on it. The zoo proves
that the property suite has teeth: `property_tests/test_bug_zoo.py` runs the suite's properties
against every mutant and checks that each is caught and that the oracle names the right layer
and term. The reports below are generated from real runs by `python -m property_tests.zoo_docs`
(`test_bug_zoo_docs.py` fails when this page is out of date).

How to read a report: the first line is the headline, naming the first wrong term in backward
order (the loss, then each layer from the last: its activation, dE/dW, the dE/dX it passes
back; the SGD step last). *local* rows check one link of the chain given the upstream value it
received, so a mistake shows where it is made; *total* rows check the end-to-end gradients,
which a mistake upstream spoils too ("follows from ..."). *sources* says which exact values
were compared: JAX's autodiff of the same forward (`jax`) and finite differences (`fd`).

Each mutant is shown on one small network (seed-1 weights, inputs rounded to two decimals); the
pinned case and the mutant's code are one import away:

```python
from property_tests.zoo import MUTANTS
from oracle import check_network
m = MUTANTS["act_prime_at_y"]
print(check_network(m.build(m.pinned), m.pinned.X, m.pinned.T))
```
"""


def _failing_properties(mutant: Mutant) -> list[str]:
    case, build = mutant.pinned, mutant.builder()
    out = []
    for name, prop in NETWORK_PROPERTIES.items():
        try:
            prop(case, build)
        except PropertyFailure:
            out.append(name)
    return out


def render_table() -> str:
    """The summary table: mutant, mistake, where the oracle must point (no oracle run needed)."""
    lines = ["| mutant | the mistake | the oracle names |", "| --- | --- | --- |"]
    for m in MUTANTS.values():
        layer, term = expected_location(m, m.pinned)
        lines.append(f"| [`{m.name}`](#{m.name.replace('_', '-')}) | {m.bug} | "
                     f"layer {layer} {term} |")
    return "\n".join(lines)


def render_section(mutant: Mutant) -> str:
    """One mutant: its mistake, its case, the properties it fails there, the oracle's report."""
    case = mutant.pinned
    s = case.spec
    report = check_network(mutant.build(case), case.X, case.T)
    props = ", ".join(f"`{p}`" for p in _failing_properties(mutant)) or "(none on this case)"
    return "\n".join([
        f"## {mutant.name}",
        "",
        f"{mutant.bug[0].upper()}{mutant.bug[1:]}.",
        "",
        f"Network {list(s.sizes)}, activations {list(s.activation_names)}, loss `{s.loss}`, "
        f"batch of {case.batch}. Properties that fail on this case: {props}.",
        "",
        "```text",
        str(report),
        "```",
        "",
    ])


def render() -> str:
    sections = [render_section(m) for m in MUTANTS.values()]
    return "\n".join([HEADER, render_table(), "", *sections]).rstrip() + "\n"


_TINY_NUMBER = re.compile(r"-?\d(?:\.\d+)?e-(?:1[2-9]|[2-9]\d|\d{3})")
_PASS_ROW = re.compile(r"^(  \S+ +\S+(?: \S+)? +(?:local|total) +\S+ +pass)\b.*$", re.MULTILINE)


def normalise(text: str) -> str:
    """``text`` with rounding noise masked: numbers below 1e-11, everything after the status of
    a passing row (its worst entry is the one with the most rounding noise, which differs
    between BLAS builds, CPUs, and eager vs jitted JAX), and the column widths that follow."""
    text = _TINY_NUMBER.sub("~0", _PASS_ROW.sub(r"\1 ~", text))
    return _PADDING.sub(" ", _RULE.sub("---", text))


_RULE = re.compile(r"-{3,}")
_PADDING = re.compile(r" {2,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = normalise(DOC.read_text()) != normalise(text) if DOC.exists() else True
        print(f"{DOC} is {'out of date' if stale else 'up to date'}")
        return 1 if stale else 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

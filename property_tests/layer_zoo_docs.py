"""Write docs/layer_zoo.md from ``check_vjp``'s real reports on every layer of the layer zoo.

    python -m property_tests.layer_zoo_docs            # rewrite docs/layer_zoo.md
    python -m property_tests.layer_zoo_docs --check    # exit 1 if it is out of date

``test_layer_zoo_docs.py`` checks the page against fresh reports, so it cannot drift from what
the oracle says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from oracle import check_vjp

from .layer_zoo import LAYERS, ZooLayer
from .zoo_docs import normalise

__all__ = ["DOC", "HEADER", "render", "render_section", "render_table", "source_of"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "layer_zoo.md"

HEADER = """\
# The layer zoo

Layers written as students write them (`property_tests/layer_zoo.py`): plain numpy with ufuncs,
in-place writes into `np.zeros` buffers, Python loops and fancy indexing. Each comes right and
with one planted classic bug; below is what `check_vjp(forward, backward, inputs)` says of
both, with its default options. `property_tests/test_layer_zoo.py` proves every right backward
against the same layer written by hand in `jax.numpy`; `test_layer_zoo_oracle.py` checks that
every right backward passes and every bug is caught at its input and at entries where the bug
really is. This page is generated from real runs by `python -m property_tests.layer_zoo_docs`
(`test_layer_zoo_docs.py` fails when it is out of date).

*JAX* says how JAX differentiated the forward: **as it is** (the code happens to be array-API
style), **numpy on JAX** (the numpy code run on JAX arrays through numpy's dispatch protocols,
`oracle/numpy_on_jax.py`), or **none** (finite differences alone).
"""


def _inputs(layer: ZooLayer):
    return layer.make_inputs(np.random.default_rng(0))


def source_of(notes: list[str]) -> str:
    """How JAX took part, from a report's notes."""
    text = " ".join(notes)
    if "traced forward as it is" in text:
        return "as it is"
    if "numpy code run on JAX arrays" in text and "could not" not in text:
        return "numpy on JAX"
    return "none"


def _verdict(report) -> str:
    first = report.first_failure
    if first is None:
        kinks = sum(r.kinks for r in report.rows)
        return "OK" + (f" ({kinks} kink entries)" if kinks else "") + (
            ", in doubt" if report.count("doubt") else "")
    where = f"[{', '.join(map(str, first.index))}]" if first.index else "(not located)"
    return f"FAIL: {first.input} {where}, {first.wrong} of {first.size} entries wrong"


def _reports(layer: ZooLayer):
    return (check_vjp(layer.forward, layer.backward, _inputs(layer)),
            check_vjp(layer.forward, layer.buggy, _inputs(layer)))


def render_table() -> str:
    rows = ["| layer | written with | planted bug | right backward | buggy backward | JAX |",
            "|---|---|---|---|---|---|"]
    counts = {"as it is": 0, "numpy on JAX": 0, "none": 0}
    for name, layer in LAYERS.items():
        right, buggy = _reports(layer)
        source = source_of(right.notes)
        counts[source] += 1
        style = ", ".join(sorted(layer.style)) or "-"
        rows.append(f"| {name} | {style} | {layer.bug} | {_verdict(right)} | {_verdict(buggy)} "
                    f"| {source} |")
    total = len(LAYERS)
    traceable = sum("jnp_traceable" in layer.style for layer in LAYERS.values())
    rows.append("")
    rows.append(f"JAX took part in {total - counts['none']} of {total} layers: "
                f"{counts['as it is']} as they are, {counts['numpy on JAX']} through numpy on "
                f"JAX; {counts['none']} by finite differences alone. Traced as they are, "
                f"without numpy on JAX, {traceable} of {total} would get JAX (the "
                "`jnp_traceable` ones; code that names numpy is run on JAX arrays first, as "
                "that is what works for most of it).")
    return "\n".join(rows) + "\n"


def render_section(name: str, layer: ZooLayer) -> str:
    _, buggy = _reports(layer)
    return (f"## {name}\n\nPlanted bug: {layer.bug} (in `{layer.bug_input}`'s gradient).\n\n"
            f"```text\n{buggy}\n```\n")


def render() -> str:
    parts = [HEADER, render_table()]
    parts.extend(render_section(name, layer) for name, layer in LAYERS.items())
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = not DOC.exists() or normalise(DOC.read_text()) != normalise(text)
        print("docs/layer_zoo.md is " + ("out of date" if stale else "up to date"))
        return 1 if stale else 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write docs/adversarial.md: the oracle and two peers on every adversarial case.

    python -m property_tests.adversarial_docs                 # rewrite docs/adversarial.md
    python -m property_tests.adversarial_docs --known-wrong   # list the oracle's wrong verdicts

The page is generated from real runs: the oracle (``adversarial.outcome``),
``torch.autograd.gradcheck`` and ``jax.test_util.check_grads`` (each with its defaults) on every
case of ``adversarial.CASES``. ``--known-wrong`` prints the cases the oracle currently gets
wrong, with the headline of each report, to keep ``test_adversarial.KNOWN_WRONG`` current.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .adversarial import (
    CASES,
    DOUBT,
    FAMILIES,
    KLASS_TITLES,
    KLASSES,
    NA,
    REFUSED,
    RIGHT,
    Case,
    correct,
    outcome,
)

__all__ = ["BLIND_SPOTS", "BLIND_SPOT_RULES", "DOC", "Judged", "blind_spot_of", "judge_all", "main",
           "render"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "adversarial.md"

BLIND_SPOTS: dict[str, str] = {
    "tie-rule-network": (
        "a network's relu written with jnp.maximum: JAX's tie rule gives maximum'(0) = 1/2, the "
        "central difference of the loss gives the same, the entry is settled against JAX and "
        "relu'(0) = 0 or 1 (both valid) FAILs in the totals"),
    "tie-one-kink": (
        "only one of the tied entries is flagged as a kink (moving it one way leaves f smooth), "
        "so the joint check along the tied entries' sum never runs and each entry sits in its "
        "own bracket: routing to every tied entry passes"),
    "tie-balanced": (
        "kink entries are checked jointly along the sum of all of them, not tie group by tie "
        "group: with a cotangent balanced so that this sum comes out right (sum(c) = 0 on an "
        "all-tied image), routing every window's gradient to all its maxima passes"),
    "tie-across-inputs": (
        "the tie is between two inputs (maximum(x, y)): kink entries are checked jointly within "
        "one input only, so routing the cotangent to both passes"),
    "median-three-way": (
        "at a three-way tie the median is linear along every ray (f(x + t d) = f + t "
        "median(d_i)): random directions see no kink, disagree with JAX's 1/3 each, JAX is "
        "dropped and finite differences alone FAIL a valid subgradient"),
    "fd-alone-unresolved": (
        "finite differences alone (jax=False) pass a gradient whose error is below their own "
        "error bar (flat f, noise, drift, float32, a shrunken step at the domain's edge): pass "
        "where they cannot tell, instead of doubt"),
    "float32-jax": (
        "f computes in float32: JAX differentiates the float32 arithmetic (~1e-7 relative) and "
        "the float64 closed form differs from it by more than tau; finite differences of the "
        "float32 f cannot resolve it but 'confirm' JAX: FAIL of a right gradient"),
    "float32-fd": (
        "finite differences of a float32 f: the stencil reads float32 steps, the error estimate "
        "misses the quantisation and FD is confidently off: FAIL of a right gradient"),
    "aliasing-jax": (
        "a component of period ~h: the random-direction stencils disagree with JAX, JAX is "
        "dropped and finite differences alone (confidently off) FAIL the right gradient"),
    "aliasing-fd": (
        "a component of period h/2, h or 2h: every stencil point has the same phase, finite "
        "differences miss the component entirely (FAIL of the right gradient, pass of the one "
        "that forgot it)"),
    "confident-ce": (
        "JAX's p_t - 1 is rounded (0 at logit 40); the exact (or textbook) value differs from "
        "it by JAX's rounding of terms of size 1, far above a tolerance scaled by the entry "
        "itself (check_gradient's rounding magnitudes of a scalar f are |gradient| itself) and "
        "finite differences 'confirm' JAX: FAIL of a right gradient"),
    "cancelling-sum": (
        "f's float64 sum cancels to 0.25 where the exact sum is 1.25: JAX and the finite "
        "differences of the float64 f agree on the rounded value and the exact gradient FAILs"),
    "variance-naive": (
        "the float64 2 (x - mean) carries the rounding of the mean (eps x 1e4) and JAX's "
        "value is more accurate; the rounding allowance of a scalar f's gradient is |gradient| "
        "itself, not the size of its terms: FAIL of the textbook formula"),
    "probe-beside-kink": (
        "check_activation probes +-1e-7 beside a declared kink; a derivative taken from the "
        "wrong side there lies in the stencil's bracket (kink), so it passes"),
    "probe-gap": (
        "check_activation probes a grid (step 0.25) and +-1e-7 around declared kinks only: a "
        "derivative wrong on an interval between probes passes"),
    "steep-one-sided-kink": (
        "a kink with steep curvature on one side only (relu(x) e^(c x), c ~ 3e4 or 3e5): the "
        "stencil does not flag the kink, its estimate agrees with JAX's left derivative, and "
        "the right one-sided derivative (or the middle of both) FAILs"),
    "overflow-warning": (
        "verdict.worst_index divides an error by a tolerance floored at the smallest normal "
        "float: 'RuntimeWarning: overflow encountered in divide' escapes from check_gradient, "
        "an error wherever warnings are errors (this project's pytest configuration)"),
    "kink-hair-beside": (
        "a kink less than ~1e-9 beside the point: which side the point is on is not resolved, "
        "so the other side's slope (finite differences alone) or the average of both slopes "
        "(with JAX too) lies in the stencil's bracket and passes as a kink"),
    "directional-tiny": (
        "finite differences alone along random directions: an entry 1e-10 of the others is "
        "invisible in every projection"),
}
"""Why the oracle gets a case wrong, by blind spot: the reasons of the xfail marks."""

BLIND_SPOT_RULES: tuple[tuple[str, str], ...] = (
    (r"^2-curved-kink-relu_exp-.*-beyond$", "overflow-warning"),
    (r"^2-curved-kink-relu_exp-", "steep-one-sided-kink"),
    (r"^3-relu-maximum-net-", "tie-rule-network"),
    (r"^4-maxpool-.*-balanced$", "tie-balanced"),
    (r"^4-(sort-ties-one-pair-box|median-ties-k2-all)$", "tie-one-kink"),
    (r"^4-median-ties-k3-", "median-three-way"),
    (r"^4-maximum-ties-both$", "tie-across-inputs"),
    (r"^5-float32-.*-bug0-jax$", "float32-jax"),
    (r"^5-float32-.*-bug0-fd$", "float32-fd"),
    (r"^5-aliasing-.*-full-jax$", "aliasing-jax"),
    (r"^5-aliasing-.*-fd$", "aliasing-fd"),
    (r"^5-.*-fd$", "fd-alone-unresolved"),
    (r"^6-confident-ce-", "confident-ce"),
    (r"^6-cancelling-sum-", "cancelling-sum"),
    (r"^6-variance-", "variance-naive"),
    (r"^7-domain-edge-.*-fd$", "fd-alone-unresolved"),
    (r"^7-kink-beside-", "kink-hair-beside"),
    (r"^7-selu-threshold-.*-declared$", "probe-beside-kink"),
    (r"^7-selu-threshold-", "probe-gap"),
    (r"^other-large-directional-tiny$", "directional-tiny"),
    (r"^other-probe-gap-declared$", "probe-beside-kink"),
    (r"^other-probe-gap-", "probe-gap"),
)
"""Which blind spot a wrong case falls in, by its name (first match); "?" when none does."""


def blind_spot_of(name: str) -> str:
    return next((key for pattern, key in BLIND_SPOT_RULES if re.search(pattern, name)), "?")

CHECKERS = ("oracle", "gradcheck", "check_grads")
TITLES = {"oracle": "the oracle (`check_gradient`, `check_vjp`, `check_activation`, "
                    "`check_network`)",
          "gradcheck": "`torch.autograd.gradcheck`",
          "check_grads": "`jax.test_util.check_grads`"}

HEADER = """\
# Adversarial cases: the oracle and its peers

Cases built to find the oracle's blind spots (issue #12, "Verdicts without blind spots"), by
the parameterised generators of `property_tests/adversarial.py`. Each gradient's truth is known
without asking any checker: a bug planted by construction, a closed form, or a value computed
with mpmath at 60 digits and rounded to float64.

A **right** gradient may pass (kinks count as pass), be in doubt, or be refused (a
`ValueError` saying why the check cannot judge); FAIL is a wrong verdict. A **wrong** gradient
may FAIL, be in doubt, or be refused; pass is a wrong verdict. An exception other than a refusal
(for the oracle, also a numpy `RuntimeWarning` escaping from it) is an error, and wrong. Doubt is
never wrong, but it is counted.

The peers run with their defaults, for comparison: `torch.autograd.gradcheck` on an
`autograd.Function` wrapping the numpy code (central differences, eps 1e-6, atol 1e-5, rtol
1e-3), and `jax.test_util.check_grads(..., order=1, modes=["rev"])` on a `custom_vjp` of
`pure_callback`s (one random direction, eps 1e-4). Neither knows about kinks, ties or doubt;
their wrong verdicts are expected. "n/a": the peer does not apply (none here so far).

Generated by `python -m property_tests.adversarial_docs`; the tests are
`property_tests/test_adversarial.py` (the catalogue) and
`property_tests/test_adversarial_properties.py` (Hypothesis properties per class).
"""


@dataclass(frozen=True)
class Judged:
    """One case's verdicts: the oracle's (with its headline) and the peers'."""

    case: Case
    verdicts: dict[str, str]
    headline: str


def judge_all(peers: bool = True) -> list[Judged]:
    out = []
    for case in CASES.values():
        result = outcome(case)
        verdicts = {"oracle": result.verdict}
        verdicts["gradcheck"] = case.run_gradcheck() if peers else NA
        verdicts["check_grads"] = case.run_check_grads() if peers else NA
        out.append(Judged(case, verdicts, result.headline))
    return out


def _kind(truth: str, verdict: str) -> str:
    """right / wrong / doubt / refused / n/a: how a verdict counts."""
    if verdict == NA:
        return NA
    if verdict in (DOUBT, REFUSED):
        return verdict
    return "right" if correct(truth, verdict) else "wrong"


def _cell(truth: str, verdict: str) -> str:
    return f"**{verdict} (wrong)**" if _kind(truth, verdict) == "wrong" else verdict


def _totals(rows: list[Judged], checker: str) -> Counter:
    return Counter(_kind(j.case.truth, j.verdicts[checker]) for j in rows)


def _klass(klass: int | str) -> str:
    return f"{klass}: {KLASS_TITLES[klass]}"


def render_totals(judged: list[Judged]) -> str:
    lines = ["## Totals", "",
             "| checker | cases judged | right verdicts | wrong verdicts | doubts | refusals |",
             "|---|---|---|---|---|---|"]
    for checker in CHECKERS:
        t = _totals(judged, checker)
        judged_count = len(judged) - t[NA]
        lines.append(f"| {TITLES[checker]} | {judged_count} | {t['right']} | {t['wrong']} | "
                     f"{t[DOUBT]} | {t[REFUSED]} |")
    truths = Counter(j.case.truth for j in judged)
    lines += ["", f"{len(judged)} cases: {truths[RIGHT]} right gradients, "
                  f"{truths['wrong']} wrong ones. *Right verdicts*: pass on a right gradient, "
                  "FAIL on a wrong one.", ""]
    return "\n".join(lines)


def render_per_class(judged: list[Judged]) -> str:
    lines = ["## Per class", "",
             "Each checker's right / wrong verdicts / doubts (refusals, if any, after a +).", "",
             "| class | cases | oracle | gradcheck | check_grads |", "|---|---|---|---|---|"]
    for klass in KLASSES:
        rows = [j for j in judged if j.case.klass == klass]
        cells = []
        for checker in CHECKERS:
            t = _totals(rows, checker)
            cell = f"{t['right']} / {t['wrong']} / {t[DOUBT]}"
            cells.append(cell + (f" + {t[REFUSED]}" if t[REFUSED] else ""))
        lines.append(f"| {_klass(klass)} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_oracle_wrong(judged: list[Judged]) -> str:
    wrong = [j for j in judged if _kind(j.case.truth, j.verdicts["oracle"]) == "wrong"]
    lines = ["## Where the oracle is wrong now", ""]
    if not wrong:
        return "\n".join(lines + ["Nowhere: no wrong verdict on any case.", ""])
    lines += [f"{len(wrong)} cases (each `xfail(strict=True)` in `test_adversarial.py`, with "
              "the blind spot as its reason).", "",
              "| case | truth | oracle | headline |", "|---|---|---|---|"]
    for j in wrong:
        headline = j.headline.replace("|", "\\|")
        lines.append(f"| {j.case.name} | {j.case.truth} | {j.verdicts['oracle']} | "
                     f"{headline} |")
    return "\n".join(lines) + "\n"


def render_families() -> str:
    lines = ["## Families", ""]
    for name, (klass, description) in FAMILIES.items():
        count = sum(c.family == name for c in CASES.values())
        lines.append(f"- **{name}** (class {klass}, {count} cases): {description}.")
    return "\n".join(lines) + "\n"


def render_cases(judged: list[Judged]) -> str:
    lines = ["## Every case", "",
             "| case | class | truth | oracle | gradcheck | check_grads |",
             "|---|---|---|---|---|---|"]
    for j in judged:
        cells = [_cell(j.case.truth, j.verdicts[c]) for c in CHECKERS]
        lines.append(f"| {j.case.name} | {j.case.klass} | {j.case.truth} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render(judged: list[Judged] | None = None) -> str:
    judged = judge_all() if judged is None else judged
    return "\n".join([HEADER, render_totals(judged), render_per_class(judged),
                      render_oracle_wrong(judged), render_families(), render_cases(judged)])


def known_wrong() -> str:
    """The oracle's current wrong verdicts as entries of ``test_adversarial.KNOWN_WRONG``, each
    with its verdict and headline in a comment."""
    lines = []
    for j in judge_all(peers=False):
        if _kind(j.case.truth, j.verdicts["oracle"]) == "wrong":
            lines.append(f"    # {j.verdicts['oracle']} on a {j.case.truth} gradient: "
                         f"{j.headline[:200]}")
            lines.append(f'    "{j.case.name}": _BLIND["{blind_spot_of(j.case.name)}"],')
    return "\n".join(lines) or "(none)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known-wrong", action="store_true",
                        help="print the cases the oracle gets wrong now, and write nothing")
    args = parser.parse_args(argv)
    if args.known_wrong:
        print(known_wrong())
        return 0
    DOC.write_text(render())
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

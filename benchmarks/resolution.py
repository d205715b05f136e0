"""How small a wrong entry the oracle still catches, per setting: the resolution table.

    python -m benchmarks.resolution            # print the table and rewrite docs/resolution.md

For each setting one entry of a right gradient is multiplied by (1 + e) and e is bisected (on a
log scale, from 1e-16 to 1) for the largest relative error that still *passes* (report ok, the
entry not FAIL and not in doubt). Below that e the wrong entry passes; above it the verdict is
FAIL or doubt, never pass. The settings:

- an ordinary entry (a dense tanh layer, ``check_vjp``), with JAX and without;
- an entry 1e-6 and one 1e-12 of its term's largest (the same layer, one input column scaled);
- a saturated deep network (six sigmoid layers, weights ~N(0, 9): layer 0's dE/dW is ~1e-20
  of the loss gradient), with layer 0's act' off by (1 + e), ``check_network``;
- a noisy f (1e-8 relative noise, as a solver at its default tolerance), ``check_gradient``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from oracle import check_gradient, check_network, check_vjp
from reference import Activation, Network
from reference.activations import get_activation

DOC = Path(__file__).resolve().parent.parent / "docs" / "resolution.md"


def _dense(x, w):
    return np.tanh(x @ w)


def _dense_backward(d, x, w, *, entry=None, e=0.0):
    dv = d * (1 - np.tanh(x @ w) ** 2)
    dx, dw = dv @ w.T, x.T @ dv
    if entry is not None:
        dw[entry] *= 1 + e
    return dx, dw


def _layer_case(column_scale: float, jax: bool) -> tuple[Callable[[float], str], str]:
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(6, 4)), rng.normal(size=(4, 3))
    x[:, 2] *= column_scale  # dw[2, :] = x[:, 2]^T dv: that row's size follows the scale
    d = rng.normal(size=(6, 3))
    entry = (2, 1) if column_scale != 1.0 else (1, 1)
    dw = _dense_backward(d, x, w)[1]
    ratio = abs(dw[entry]) / np.max(np.abs(dw))

    def verdict(e: float) -> str:
        report = check_vjp(_dense, lambda c, x, w: _dense_backward(c, x, w, entry=entry, e=e),
                           (x, w), cotangent=d, jax=jax)
        row = report.row("w")
        return "pass" if report.ok and row.mask is not None and not row.mask[entry] and \
            row.status != "doubt" else ("doubt" if report.ok else "FAIL")

    return verdict, f"{ratio:.1e} of its term's largest"


def _saturated_case() -> Callable[[float], str]:
    sizes = [4, 6, 6, 6, 6, 6, 2]
    net = Network(sizes, ["sigmoid"] * 6, "mse", seed=0)
    rng = np.random.default_rng(1)
    for w in net.weights:
        w[...] = rng.normal(scale=3.0, size=w.shape)
    x, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    sigmoid = get_activation("sigmoid")

    def verdict(e: float) -> str:
        off = Activation("sigmoid_off", sigmoid.f, lambda v: (1 + e) * sigmoid.df(v))
        net.activations = [off] + [sigmoid] * 5
        report = check_network(net, x, t, check_step=False)
        row = next(r for r in report.rows if (r.layer, r.term, r.scope) == (0, "activation",
                                                                            "local"))
        return "pass" if report.ok and row.status == "pass" else (
            "doubt" if report.ok else "FAIL")

    return verdict


def _noisy_case() -> Callable[[float], str]:
    x = np.random.default_rng(4).normal(size=6)

    def f(z):
        bits = int(np.frombuffer(z.tobytes(), dtype=np.uint64).sum() % 1000003)
        return float(np.sum(np.sin(z)) * (1 + 1e-8 * (bits / 1000003.0 - 0.5)))

    def verdict(e: float) -> str:
        def grad(z):
            g = np.cos(z)
            g[2] *= 1 + e
            return g
        report = check_gradient(f, grad, x)
        return "pass" if report.ok and report.rows[0].status == "pass" else (
            "doubt" if report.ok else "FAIL")

    return verdict


def _boundary(below: Callable[[float], bool]) -> tuple[float, float]:
    """Exponents ``(lo, hi)``, at most 0.1 apart, with ``below(10**lo)`` true and
    ``below(10**hi)`` false, by bisection in [-16, 0]; the caller has checked that ``below``
    holds at 1e-16 and not at 1."""
    lo, hi = -16.0, 0.0
    while hi - lo > 0.1:
        mid = (lo + hi) / 2
        if below(10 ** mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def largest_passing(verdict: Callable[[float], str]) -> tuple[float | None, str]:
    """The largest e in [1e-16, 1] (to a factor ~1.3) whose verdict is "pass", and what the
    verdict is just above it; None when even 1e-16 does not pass."""
    if verdict(1e-16) != "pass":
        return None, verdict(1e-16)
    if verdict(1.0) == "pass":
        return 1.0, "pass"
    lo, hi = _boundary(lambda e: verdict(e) == "pass")
    return 10 ** lo, verdict(10 ** hi)


def smallest_failing(verdict: Callable[[float], str]) -> float | None:
    """The smallest e in [1e-16, 1] (to a factor ~1.3) whose verdict is FAIL (None: none)."""
    if verdict(1.0) != "FAIL":
        return None
    if verdict(1e-16) == "FAIL":
        return 1e-16
    return 10 ** _boundary(lambda e: verdict(e) != "FAIL")[1]


def table() -> str:
    rows = []
    for scale, jax, label in ((1.0, True, "ordinary entry, JAX and finite differences"),
                              (1.0, False, "ordinary entry, finite differences alone"),
                              (1e-6, True, "entry ~1e-6 of its term"),
                              (1e-12, True, "entry ~1e-12 of its term")):
        verdict, size = _layer_case(scale, jax)
        rows.append((f"{label} ({size})", *largest_passing(verdict), smallest_failing(verdict)))
    for label, verdict in (
            ("saturated deep network: layer 0's act' (local term ~1e-20 of the loss gradient)",
             _saturated_case()),
            ("noisy f (1e-8 relative noise), finite differences alone", _noisy_case())):
        rows.append((label, *largest_passing(verdict), smallest_failing(verdict)))
    lines = ["| setting | largest relative error that passes | just above it | smallest that "
             "FAILs |", "|---|---|---|---|"]
    for label, e, above, fails in rows:
        shown = "none (even 1e-16 is not a pass)" if e is None else f"{e:.1e}"
        failing = "none up to 1 (doubt)" if fails is None else f"{fails:.1e}"
        lines.append(f"| {label} | {shown} | {above} | {failing} |")
    return "\n".join(lines) + "\n"


HEADER = """\
# Resolution: the smallest wrong entry the oracle catches

Measured by `python -m benchmarks.resolution` (it rewrites this page): one entry of a right
gradient is multiplied by (1 + e), and e is bisected for the largest relative error that still
*passes*, and for the smallest that FAILs. In between the verdict is doubt (hand and JAX differ
but finite differences cannot tell which is right); never a pass.
Tolerances follow each entry's own rounding error, so an entry 1e-12 of its term is judged as
finely as an ordinary one, and a term 1e-20 of the loss gradient is not excused by its size.
With a noisy f, finite differences confirm nothing (doubt): no error passes.

"""


def main(argv: list[str] | None = None) -> int:
    text = HEADER + table()
    print(text)
    if "--no-write" not in (argv if argv is not None else sys.argv[1:]):
        DOC.write_text(text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

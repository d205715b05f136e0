"""Sections: correctness of every contender, then forward / gradients / step times and ratios.

For each problem, every installed contender is built from the same weights and data, its
gradient (E, dE/dW, dE/dX), forward output and one SGD step are compared with the reference's
(relative error ``max|a - b| / max|b|`` per array, at most ``AGREE`` = 1e-10), and only then
timed; a contender that disagrees is reported as WRONG and gets no time.
"""

from __future__ import annotations

import numpy as np

from .contenders import CONTENDERS, Contender
from .problems import Problem
from .sections import Context, markdown_table, ms, ratio, section

AGREE = 1e-10
OPS = ("forward", "gradients", "step")
TIMING_LR = 1e-3  # small enough that thousands of timed steps stay tame
CHECK_LR = 0.1

# (problem, op) -> (peer, bound): the reference's time must be at most bound x the peer's.
TARGETS: dict[tuple[str, str], list[tuple[str, float]]] = {
    ("tiny", "gradients"): [("jax jit", 1.0)],
    ("tiny", "step"): [("jax jit", 1.0)],
    ("small", "gradients"): [("jax jit", 1.0)],
    ("small", "step"): [("jax jit", 1.0)],
    ("mnist", "gradients"): [("jax jit", 0.8), ("torch", 0.8)],
    ("mnist", "step"): [("jax jit", 1.0), ("torch", 0.8)],
}
# Cheap-gradient principle: the reference's op at most this many forwards (None: no target;
# the step's 2.3 was retired with issue 16, which traded that margin for a plainer Network).
CHEAP = {"step": None, "gradients": 3.2}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b), initial=0.0)) or 1.0
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _disagreement(c: Contender, ref: Contender) -> float:
    """Worst relative error of ``c`` against the reference over every checked quantity."""
    errs = [_rel(c.numpy_forward(), ref.numpy_forward())]
    e, dw, dx = c.numpy_gradients()
    e0, dw0, dx0 = ref.numpy_gradients()
    errs += [_rel(e, e0), _rel(dx, dx0), *(_rel(a, b) for a, b in zip(dw, dw0))]
    errs.append(0.0 if len(dw) == len(dw0) else float("inf"))
    s, ws = c.numpy_step(CHECK_LR)
    s0, ws0 = ref.numpy_step(CHECK_LR)
    start = ref.initial.weights
    errs += [_rel(s, s0), *(_rel(w - w_old, w0 - w_old) for w, w0, w_old in zip(ws, ws0, start))]
    return max(errs)


def _build(problem: Problem, ctx: Context) -> tuple[dict[str, Contender], dict[str, str]]:
    weights = [w.copy() for w in problem.network(seed=0).weights]
    x, t = problem.data(seed=1)
    built, notes = {}, {}
    for name, (cls, module) in CONTENDERS.items():
        if module is not None and ctx.peers.get(module) is None:
            notes[name] = f"{module} not installed"
            continue
        built[name] = cls(problem, weights, x, t, TIMING_LR)
    return built, notes


def speed_results(ctx: Context) -> dict:
    """Build, check and time every contender on every problem (once; cached in ctx)."""
    if "speed" in ctx.results:
        return ctx.results["speed"]
    out = {}
    for problem in ctx.problems:
        contenders, notes = _build(problem, ctx)
        ref = contenders["numpy"]
        errors = {name: _disagreement(c, ref) for name, c in contenders.items()}
        valid = {n: c for n, c in contenders.items() if errors[n] <= AGREE}
        times = {op: ctx.time({n: c.ops()[op] for n, c in valid.items()}) for op in OPS}
        out[problem.name] = {"errors": errors, "notes": notes, "times": times}
    ctx.results["speed"] = out
    return out


def _median(res: dict, op: str, name: str) -> float | None:
    timing = res["times"][op].get(name)
    return None if timing is None else timing.median


@section("Every contender computes the same gradient (checked in this run)")
def correctness(ctx: Context) -> str:
    res = speed_results(ctx)
    names = list(CONTENDERS)
    rows = []
    for problem in ctx.problems:
        r = res[problem.name]
        cells = []
        for name in names:
            if name in r["notes"]:
                cells.append(f"skipped ({r['notes'][name]})")
            else:
                err = r["errors"][name]
                cells.append(f"{err:.1e} {'ok' if err <= AGREE else '**WRONG**'}")
        rows.append([problem.name, *cells])
    return (
        "Worst relative error (max |a - b| / max |b| per array) against the reference, over the "
        "forward output, E, every dE/dW, dE/dX and the weights after one SGD step "
        f"(lr = {CHECK_LR}). A contender above {AGREE:g} is WRONG and is not timed.\n\n"
        + markdown_table(["config", *names], rows)
    )


@section("Speed: forward, gradients (dE/dW and dE/dX), training step")
def speed(ctx: Context) -> str:
    res = speed_results(ctx)
    names = list(CONTENDERS)
    header = ["config", "op", *(f"{n} ms" for n in names[:]), "numpy / jax", "numpy / torch",
              "target", "met"]
    rows = []
    for problem in ctx.problems:
        r = res[problem.name]
        for op in OPS:
            t = {n: _median(r, op, n) for n in names}
            targets = TARGETS.get((problem.name, op), [])
            verdicts = []
            for peer, bound in targets:
                if t.get(peer) is None or t["numpy"] is None:
                    verdicts.append(f"{peer}: not measured")
                else:
                    verdicts.append("yes" if t["numpy"] <= bound * t[peer] else "**no**")
            rows.append([
                problem.name, op, *(ms(t[n]) for n in names),
                ratio(t["numpy"], t.get("jax jit")), ratio(t["numpy"], t.get("torch")),
                ", ".join(f"≤ {b:g}× {p}" for p, b in targets) or "—",
                ", ".join(verdicts) or "—",
            ])
    notes = [f"{problem.name}: {problem.describe()}" for problem in ctx.problems]
    skipped = {n: note for r in res.values() for n, note in r["notes"].items()}
    if skipped:
        notes.append("skipped: " + ", ".join(f"{n} ({why})" for n, why in skipped.items()))
    return (
        "Median time per call (contenders timed in alternating blocks; see the settings "
        "below). `gradients` returns E, dE/dW of every layer and dE/dX of the input; `step` is "
        "forward + backward + SGD update in place, without dE/dX of the input. A ratio below 1 "
        "means the reference is faster.\n\n"
        + markdown_table(header, rows)
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
    )


@section("Cheap-gradient principle: cost in forwards")
def cheap_gradient(ctx: Context) -> str:
    res = speed_results(ctx)
    names = list(CONTENDERS)
    header = ["config", *(f"{n} step / fwd" for n in names), *(f"{n} grads / fwd" for n in names),
              "target (numpy)", "met"]
    rows = []
    for problem in ctx.problems:
        r = res[problem.name]
        fwd = {n: _median(r, "forward", n) for n in names}
        step = [ratio(_median(r, "step", n), fwd[n]) for n in names]
        grads = [ratio(_median(r, "gradients", n), fwd[n]) for n in names]
        met, targets = [], []
        for op, bound in CHEAP.items():
            if bound is None:
                continue
            got = _median(r, op, "numpy")
            targets.append(f"{'grads' if op == 'gradients' else op} ≤ {bound}")
            met.append("yes" if got is not None and got <= bound * fwd["numpy"] else "**no**")
        rows.append([problem.name, *step, *grads, ", ".join(targets), ", ".join(met)])
    return (
        "Each contender's step and gradients divided by its own forward (same run).\n\n"
        + markdown_table(header, rows)
    )

"""Section: gradient checking by finite differences with numdifftools (an optional peer).

This is where gradient-*checking* rows belong (the oracle's exhaustive checks can be added as
another section next to this one; see ``sections.py``). numdifftools' ``Gradient`` (Richardson
extrapolation) is timed on the full weight vector of the tiny and small configurations, and its
error is measured against the reference's hand-derived dE/dW (mnist would take ~50 minutes).
"""

from __future__ import annotations

import numpy as np

from reference import network_loss

from .sections import Context, markdown_table, ms, section

MAX_PARAMS = 5_000  # beyond this a full Richardson gradient takes minutes


@section("Gradient checking peers: numdifftools")
def numdifftools_gradient(ctx: Context) -> str:
    if ctx.peers.get("numdifftools") is None:
        return "numdifftools is not installed: skipped (`pip install numdifftools`)."
    import numdifftools as nd

    rows = []
    for problem in ctx.problems:
        if problem.n_params > MAX_PARAMS or (ctx.quick and problem.n_params > 100):
            rows.append([problem.name, problem.n_params, "skipped (too slow)", "—"])
            continue
        net = problem.network()
        x, t = problem.data(seed=1)
        shapes = [w.shape for w in net.weights]
        sizes = [int(np.prod(s)) for s in shapes]
        acts, loss = net.activations, net.loss_function

        def energy(flat, shapes=shapes, sizes=sizes, x=x, t=t, acts=acts, loss=loss):
            parts = np.split(flat, np.cumsum(sizes)[:-1])
            ws = [p.reshape(s) for p, s in zip(parts, shapes)]
            return float(network_loss(ws, x, t, acts, loss))

        flat = np.concatenate([w.ravel() for w in net.weights])
        gradient = nd.Gradient(energy)
        _, dw, _ = net.gradients(x, t)
        exact = np.concatenate([d.ravel() for d in dw])
        err = float(np.max(np.abs(gradient(flat) - exact)) / np.max(np.abs(exact)))
        timing = ctx.time({"nd": lambda g=gradient, f=flat: g(f)}, cycles=1, samples_per_cycle=1,
                          settle_seconds=0.0, batch_seconds=0.0)
        rows.append([problem.name, problem.n_params, ms(timing["nd"].median), f"{err:.1e}"])
    return (
        "numdifftools `Gradient` (Richardson extrapolation) of E with respect to all weights; "
        "error = max |numerical - hand| / max |hand|.\n\n"
        + markdown_table(["config", "P", "ms per gradient", "error vs hand-derived"], rows)
    )

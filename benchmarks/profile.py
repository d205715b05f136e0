"""Section: where the reference's time goes on mnist, and the BLAS it stands on.

The reference's training step and gradients are split into their phases, each timed alone on
the same data (so the parts add up only roughly: a phase timed alone runs with warmer caches
than inside a step). Then the three large matrix products of layer 0 and the eq-10 update are
timed in numpy and in torch on identical arrays: what any numpy program pays for them here.
"""

from __future__ import annotations

import numpy as np

from reference.layer import weight_grad
from reference.passes import backward_sweep, forward_pass, output_loss

from .sections import Context, markdown_table, ms, ratio, section

PROBLEM = "mnist"


def _phases(ctx: Context) -> list[list[str]]:
    problem = next(p for p in ctx.problems if p.name == PROBLEM)
    net = problem.network()
    x, t = problem.data(seed=1)
    acts, loss = net.activations, net.loss_function
    weights = net.weights
    work = net._work.get(net.layer_sizes, problem.batch)
    fwd = forward_pass(weights, x, acts, out=work.vs)
    _, dvs, _ = backward_sweep(weights, fwd.vs, fwd.ys, t, acts, loss, need_input_grad=False,
                               dx_out=work.dxs)
    dws = work.dws
    lr = 1e-12

    def checks():  # what Network.step checks: see Network.step and _step
        net._inputs(x)
        net._targets(t, problem.batch)
        net._checked_weights(writable=True)

    def activations():
        for act, v in zip(acts, fwd.vs):
            act(v)

    def forward_matmuls():
        for x_k, w, v in zip(fwd.xs, weights, work.vs):
            np.add(np.matmul(x_k, w[:-1], out=v), w[-1], out=v)

    def dw_matmuls():
        for x_k, dv, dw in zip(fwd.xs, dvs, dws):
            weight_grad(x_k, dv, out=dw)

    def update():  # as Network._step: new weights into the buffer, checked, then copied
        for w, dw in zip(weights, dws):
            np.subtract(w, np.multiply(dw, lr, out=dw), out=dw)
            np.isfinite(dw).all()
        for w, dw in zip(weights, dws):
            np.copyto(w, dw)

    fns = {
        "whole step": lambda: net.step(x, t, lr),
        "whole gradients": lambda: net.gradients(x, t),
        "whole forward": lambda: net.forward(x),
        "input checks (X, T, the weights: types, shapes, NaN/Inf)": checks,
        "forward: matmul + bias, 3 layers": forward_matmuls,
        "forward: activations (relu, relu, softmax)": activations,
        "loss value (cross-entropy from V)": lambda: output_loss(fwd.vs[-1], fwd.ys[-1], t, loss),
        "backward chain: act', loss', dE/dX of layers 1-2": lambda: backward_sweep(
            weights, fwd.vs, fwd.ys, t, acts, loss, need_input_grad=False, dx_out=work.dxs),
        "dE/dX of the input (gradients only)": lambda: np.matmul(dvs[0], weights[0][:-1].T),
        "dE/dW: X~^T dE/dV, 3 layers": dw_matmuls,
        "eq 10 update (new weights checked, then written), 3 layers": update,
    }
    times = {  # one contender at a time: no need for alternating blocks
        name: ctx.time({name: fn}, cycles=1, samples_per_cycle=40)[name].median
        for name, fn in fns.items()
    }
    step = times["whole step"]
    return [[name, ms(s), ratio(s, step)] for name, s in times.items()]


def _blas(ctx: Context) -> list[list[str]] | None:
    if ctx.peers.get("torch") is None:
        return None
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 784))
    w = rng.standard_normal((785, 256))
    dv = rng.standard_normal((64, 256))
    d = rng.standard_normal((785, 256))
    v, dx, dw, scaled = np.empty((64, 256)), np.empty((64, 784)), np.empty((785, 256)), d.copy()
    tx, tw, tdv, td = (torch.tensor(a) for a in (x, w, dv, d))
    tv, tdx, tdw = torch.empty(64, 256, dtype=torch.float64), torch.empty(
        64, 784, dtype=torch.float64), torch.empty(785, 256, dtype=torch.float64)
    cases = {
        "X W (64x784 @ 784x256), forward": (
            lambda: np.matmul(x, w[:-1], out=v), lambda: torch.mm(tx, tw[:-1], out=tv)),
        "X^T dV (784x64 @ 64x256), dE/dW": (
            lambda: np.matmul(x.T, dv, out=dw[:-1]), lambda: torch.mm(tx.T, tdv, out=tdw[:-1])),
        "dV W^T (64x256 @ 256x784), dE/dX": (
            lambda: np.matmul(dv, w[:-1].T, out=dx), lambda: torch.mm(tdv, tw[:-1].T, out=tdx)),
        "W - lr dW in place (785x256)": (
            lambda: np.subtract(w, np.multiply(d, 1e-12, out=scaled), out=w),
            lambda: tw.sub_(td, alpha=1e-12)),
    }
    rows = []
    for name, (np_fn, torch_fn) in cases.items():
        r = ctx.time({"numpy": np_fn, "torch": torch_fn})
        a, b = r["numpy"].median, r["torch"].median
        rows.append([name, ms(a), ms(b), ratio(a, b)])
    return rows


def _bare_tiny_step(weights: list[np.ndarray], x: np.ndarray, t: np.ndarray, lr: float):
    """The tiny config's step (tanh, tanh, mse) written out by hand for this one network: no
    checks, no buffers, no loops; the fewest numpy calls a numpy step can make (~20)."""
    w0, w1 = weights

    def step() -> float:
        v0 = x @ w0[:-1]
        v0 += w0[-1]
        y0 = np.tanh(v0)
        v1 = y0 @ w1[:-1]
        v1 += w1[-1]
        y1 = np.tanh(v1)
        d = y1 - t
        e = 0.5 * float(np.vdot(d, d)) / x.shape[0]
        dv1 = d * (1.0 - y1 * y1) / x.shape[0]
        dv0 = (dv1 @ w1[:-1].T) * (1.0 - y0 * y0)
        w1[:-1] -= lr * (y0.T @ dv1)
        w1[-1] -= lr * dv1.sum(axis=0)
        w0[:-1] -= lr * (x.T @ dv0)
        w0[-1] -= lr * dv0.sum(axis=0)
        return e

    return step


def _bare_mnist_step(weights: list[np.ndarray], x: np.ndarray, t: np.ndarray, lr: float, *,
                     update: bool = True, backward: bool = True):
    """The mnist config's step (relu, relu, softmax + cross-entropy) written out by hand for
    this one network: no checks, buffers made once, the update as two in-place passes.
    ``update=False``: without the update; ``backward=False``: the forward and E only."""
    batch = x.shape[0]
    vs = [np.empty((batch, w.shape[1])) for w in weights]
    dws = [np.empty_like(w) for w in weights]

    def step() -> float:
        xs, h = [], x
        for k, w in enumerate(weights):
            xs.append(h)
            v = np.matmul(h, w[:-1], out=vs[k])
            v += w[-1]
            h = np.fmax(v, 0.0) if k < len(weights) - 1 else v
        top = v.max(axis=1, keepdims=True)
        e = np.exp(v - top)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.sum(np.log(total) + top) - np.vdot(t, v)) / batch
        if not backward:
            return loss
        dv = (e / total - t) / batch
        for k in range(len(weights) - 1, -1, -1):
            w, dw = weights[k], dws[k]
            dx = dv @ w[:-1].T if k > 0 else None
            np.matmul(xs[k].T, dv, out=dw[:-1])
            np.add.reduce(dv, axis=0, out=dw[-1])
            if update:
                np.subtract(w, np.multiply(dw, lr, out=dw), out=w)
            if k > 0:
                dv = dx * (vs[k - 1] > 0)
        return loss

    return step


def _floor(ctx: Context, name: str) -> list[list[str]]:
    """The reference's step against a bare hand-inlined numpy step and a jitted JAX step."""
    from .contenders import JaxContender

    problem = next(p for p in ctx.problems if p.name == name)
    net = problem.network()
    x, t = problem.data(seed=1)
    lr = 1e-12
    fns = {"reference `Network.step`": lambda: net.step(x, t, lr)}
    if name == "tiny":
        fns["bare numpy step (no checks, inlined)"] = _bare_tiny_step(
            [w.copy() for w in net.weights], x, t, lr)
        fns["one numpy call (`np.tanh` of 8 values)"] = lambda: np.tanh(x[0, :4])
    else:
        fns["bare numpy step (no checks, inlined)"] = _bare_mnist_step(
            [w.copy() for w in net.weights], x, t, lr)
        fns["the same without the eq 10 update"] = _bare_mnist_step(
            [w.copy() for w in net.weights], x, t, lr, update=False)
        fns["its forward alone (and E)"] = _bare_mnist_step(
            [w.copy() for w in net.weights], x, t, lr, backward=False)
    if ctx.peers.get("jax") is not None:
        fns["jax jit SGD step"] = JaxContender(problem, net.weights, x, t, lr).step
    times = ctx.time(fns)
    jax = times["jax jit SGD step"].median if "jax jit SGD step" in times else None
    return [[name, ms(r.median), ratio(r.median, jax) if jax else "—"]
            for name, r in times.items()]


@section("Where the time goes")
def where_the_time_goes(ctx: Context) -> str:
    parts = [
        "The reference's phases, each timed alone (fraction of one whole step; they add up "
        "only roughly).\n",
        markdown_table(["phase", "ms", "of a step"], _phases(ctx)),
        "\nThe floor for numpy: a step written out by hand for one network, with no checks "
        "and no loops, against the reference's step and a jitted JAX step (one dispatch of "
        "compiled code). The tiny config is all per-call overhead. The bare step updates the "
        "weights in two in-place passes; the reference computes the new weights into a buffer, "
        "checks them and copies them back (a divergence leaves the weights as they were).\n",
        markdown_table(["tiny", "ms", "/ jax jit step"], _floor(ctx, "tiny")),
        "",
        markdown_table(["mnist", "ms", "/ jax jit step"], _floor(ctx, "mnist")),
    ]
    blas = _blas(ctx)
    if blas is None:
        parts.append("\ntorch is not installed: the BLAS comparison is skipped.")
    else:
        parts += [
            "\nThe same products and update in numpy (OpenBLAS) and torch (MKL, and a fused "
            "multi-threaded `sub_`) on identical arrays, 2 threads each:\n",
            markdown_table(["operation", "numpy ms", "torch ms", "numpy / torch"], blas),
        ]
    return "\n".join(parts)

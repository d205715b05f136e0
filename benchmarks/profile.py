"""Section: where the reference's time goes on mnist, and the BLAS it stands on.

The reference's training step and gradients are split into their phases, each timed alone on
the same data (so the parts add up only roughly: a phase timed alone runs with warmer caches
than inside a step). Then the floor: a bare hand-written numpy step (and gradients) with no
checks, and the BLAS products alone, in numpy and in torch, timed beside the reference and both
peers in one comparison. Last, the three large matrix products of layer 0 and the eq-10 update
in numpy and in torch on identical arrays: what any numpy program pays for them here.
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
                     update: bool = True, gradients: bool = False):
    """The mnist config's step (relu, relu, softmax + cross-entropy) written out by hand for
    this one network: no checks, buffers made once, the update as two in-place passes.
    ``update=False``: without the update; ``gradients=True``: no update, but what
    ``Network.gradients`` returns instead (E, fresh dE/dW of every layer, dE/dX of the input)."""
    batch, last = x.shape[0], len(weights) - 1
    vs = [np.empty((batch, w.shape[1])) for w in weights]
    buffers = [np.empty_like(w) for w in weights]

    def step():
        xs, h = [], x
        for k, w in enumerate(weights):
            xs.append(h)
            v = np.matmul(h, w[:-1], out=vs[k])
            v += w[-1]
            h = np.fmax(v, 0.0) if k < last else v
        top = v.max(axis=1, keepdims=True)
        e = np.exp(v - top)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.sum(np.log(total) + top) - np.vdot(t, v)) / batch
        dv = (e / total - t) / batch
        dws = [np.empty_like(w) for w in weights] if gradients else buffers
        for k in range(last, -1, -1):
            w, dw = weights[k], dws[k]
            dx = dv @ w[:-1].T if k > 0 or gradients else None
            np.matmul(xs[k].T, dv, out=dw[:-1])
            np.add.reduce(dv, axis=0, out=dw[-1])
            if update and not gradients:
                np.subtract(w, np.multiply(dw, lr, out=dw), out=w)
            if k > 0:
                dv = dx * (vs[k - 1] > 0)
        return (loss, dws, dx) if gradients else loss

    return step


def _products(weights: list[np.ndarray], x: np.ndarray, t: np.ndarray, acts, loss, *,
              input_grad: bool, torch=None):
    """The BLAS products alone of one mnist step (``input_grad=False``: forward X W, dE/dW =
    X^T dE/dV of every layer, dE/dX of layers 1-2) or gradients (and dE/dX of layer 0), on the
    reference's own layer inputs and dE/dV, into buffers: what any implementation must do.
    With ``torch``: the same products on the same arrays as torch tensors (``torch.mm``)."""
    fwd = forward_pass(weights, x, acts)
    _, dvs, _ = backward_sweep(weights, fwd.vs, fwd.ys, t, acts, loss)
    xs, ws = fwd.xs, weights
    vs = [np.empty_like(v) for v in fwd.vs]
    dws = [np.empty_like(w) for w in weights]
    dxs = [np.empty_like(x_k) for x_k in xs]
    mm = np.matmul
    if torch is not None:
        xs, ws, dvs, vs, dws, dxs = ([torch.from_numpy(a) for a in arrays]
                                     for arrays in (xs, ws, dvs, vs, dws, dxs))
        mm = torch.mm

    def products():
        for x_k, w, v in zip(xs, ws, vs):
            mm(x_k, w[:-1], out=v)  # eq 5 (the bias added after)
        for k, (x_k, w, dv, dw, dx) in enumerate(zip(xs, ws, dvs, dws, dxs)):
            mm(x_k.T, dv, out=dw[:-1])  # eq 8
            if k > 0 or input_grad:
                mm(dv, w[:-1].T, out=dx)  # eq 11

    return products


def _tiny_floor(ctx: Context) -> list[list[str]]:
    """The tiny config's step: the reference, a bare hand-inlined numpy step, jitted JAX."""
    from .contenders import JaxContender

    problem = next(p for p in ctx.problems if p.name == "tiny")
    net = problem.network()
    x, t = problem.data(seed=1)
    lr = 1e-12
    fns = {"reference `Network.step`": lambda: net.step(x, t, lr),
           "bare numpy step (no checks, inlined)": _bare_tiny_step(
               [w.copy() for w in net.weights], x, t, lr),
           "one numpy call (`np.tanh` of 8 values)": lambda: np.tanh(x[0, :4])}
    if ctx.peers.get("jax") is not None:
        fns["jax jit SGD step"] = JaxContender(problem, net.weights, x, t, lr).step
    times = ctx.time(fns)
    jax = times["jax jit SGD step"].median if "jax jit SGD step" in times else None
    return [[name, ms(r.median), ratio(r.median, jax) if jax else "—"]
            for name, r in times.items()]


def _mnist_floor(ctx: Context) -> list[list[str]]:
    """mnist ``step`` and ``gradients``: the reference, a bare numpy version with no checks,
    the BLAS products alone (numpy and torch) and the two peers, all timed in one comparison;
    each row as a ratio to jitted JAX's and to torch's same operation."""
    from .contenders import JaxContender, TorchContender

    problem = next(p for p in ctx.problems if p.name == PROBLEM)
    net = problem.network()
    x, t = problem.data(seed=1)
    lr, acts, loss = 1e-12, net.activations, net.loss_function
    libraries, peers = {"numpy": None}, {}
    if ctx.peers.get("jax") is not None:
        peers["jax jit"] = JaxContender
    if ctx.peers.get("torch") is not None:
        import torch

        libraries["torch"], peers["torch"] = torch, TorchContender

    def copies() -> list[np.ndarray]:
        return [w.copy() for w in net.weights]

    fns = {
        ("step", "reference `Network.step`"): lambda: net.step(x, t, lr),
        ("step", "bare numpy step (no checks, inlined)"): _bare_mnist_step(copies(), x, t, lr),
        ("step", "the same without the eq 10 update"): _bare_mnist_step(
            copies(), x, t, lr, update=False),
    }
    for op in ("step", "gradients"):
        if op == "gradients":
            fns[op, "reference `Network.gradients`"] = lambda: net.gradients(x, t)
            fns[op, "bare numpy gradients (no checks, inlined)"] = _bare_mnist_step(
                copies(), x, t, lr, gradients=True)
        for name, module in libraries.items():
            fns[op, f"{name}: the BLAS products alone"] = _products(
                copies(), x, t, acts, loss, input_grad=op == "gradients", torch=module)
        for peer, contender in peers.items():
            fns[op, f"{peer} {op}"] = contender(problem, copies(), x, t, lr).ops()[op]
    times = ctx.time({f"{op}: {label}": fn for (op, label), fn in fns.items()})
    rows = []
    for op, label in fns:
        s = times[f"{op}: {label}"].median
        peer_times = [times.get(f"{op}: {peer} {op}") for peer in ("jax jit", "torch")]
        rows.append([op, label, ms(s), *(ratio(s, p.median) if p else "—" for p in peer_times)])
    return rows


@section("Where the time goes")
def where_the_time_goes(ctx: Context) -> str:
    parts = [
        "The reference's phases, each timed alone (fraction of one whole step; they add up "
        "only roughly).\n",
        markdown_table(["phase", "ms", "of a step"], _phases(ctx)),
        "\nThe floor for numpy, tiny: a step written out by hand for this one network, with "
        "no checks and no loops, against the reference's step and a jitted JAX step (one "
        "dispatch of compiled code). At batch 1 it is all per-call overhead.\n",
        markdown_table(["tiny", "ms", "/ jax jit step"], _tiny_floor(ctx)),
        "\nThe floor for numpy, mnist, against both peers in one comparison: the bare version "
        "has no checks and updates the weights in two in-place passes (the reference checks X, "
        "T and the weights, computes the new weights into a buffer, checks them and copies them "
        "back, so that a divergence leaves the weights as they were); the BLAS products alone "
        "are the matrix products any implementation of the op must make (forward, dE/dW and "
        "dE/dX: 8 for a step, 9 for gradients), on the same arrays, in numpy and in torch. "
        "Each row is divided by the same op of each peer.\n",
        markdown_table(["op", "mnist", "ms", "/ jax jit", "/ torch"], _mnist_floor(ctx)),
    ]
    blas = _blas(ctx)
    if blas is None:
        parts.append("\ntorch is not installed: the BLAS comparison is skipped.")
    else:
        parts += [
            "\nThe same products and update in numpy (OpenBLAS) and torch (MKL, and a fused "
            "multi-threaded `sub_`) on identical arrays, the same threads each:\n",
            markdown_table(["operation", "numpy ms", "torch ms", "numpy / torch"], blas),
        ]
    return "\n".join(parts)

"""Section: gradient checking — the oracle against torch ``gradcheck``, jax ``check_grads`` and
a plain per-coordinate finite-difference loop, on the same weights and data.

Three tables:

1. time and accuracy of an exhaustive check of every parameter (tiny, small);
2. the smallest single-entry error each checker catches: the largest entry of layer 0's
   dE/dW is made wrong by a relative ``eps`` *inside each tool's own mechanism* (a wrapped
   ``gradients`` for the oracle, a ``torch.autograd.Function`` with a wrong backward for
   gradcheck, a ``jax.custom_vjp`` with a wrong backward for check_grads), and each tool's own
   default tolerances decide;
3. the mnist configuration: the oracle's directional check and exhaustive check, jax
   check_grads and torch gradcheck(fast_mode) — time and verdict on a right gradient.
"""

from __future__ import annotations

import time

import numpy as np

from oracle import check_network
from oracle.autodiff import network_grads
from oracle.finite_differences import choose_steps
from reference import network_loss

from .contenders import TorchContender
from .sections import Context, markdown_table, ms, ratio, section

EPSILONS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)


def _flat_loss(net, x, t):
    shapes = [w.shape for w in net.weights]
    sizes = [int(np.prod(s)) for s in shapes]
    acts, loss = net.activations, net.loss_function

    def energy(flat: np.ndarray) -> float:
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        return float(network_loss([p.reshape(s) for p, s in zip(parts, shapes)], x, t, acts, loss))

    return energy, np.concatenate([w.ravel() for w in net.weights])


def fd_loop(net, x, t) -> np.ndarray:
    """The plain peer: central differences one coordinate at a time, h = cbrt(eps) max(1, |w|)."""
    energy, flat = _flat_loss(net, x, t)
    h = choose_steps(flat)
    out = np.empty_like(flat)
    for i in range(flat.size):
        w = flat[i]
        flat[i] = w + h[i]
        up = energy(flat)
        flat[i] = w - h[i]
        out[i] = (up - energy(flat)) / (2 * h[i])
        flat[i] = w
    return out


def _torch_checker(problem, net, x, t, *, eps: float = 0.0, fast: bool = False):
    """``() -> bool``: torch.autograd.gradcheck with default tolerances on the same loss."""
    import torch

    tc = TorchContender(problem, net.weights, x, t, lr=0.1)
    leaves = [p.detach().clone().requires_grad_(True) for p in tc.params]
    i, j = np.unravel_index(np.argmax(np.abs(_exact(net, x, t)[0][:-1])), net.weights[0][:-1].shape)

    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *params):
            ctx.save_for_backward(*params)
            return tc._loss(list(params), tc.x).detach()

        @staticmethod
        def backward(ctx, g):
            params = [p.detach().requires_grad_(True) for p in ctx.saved_tensors]
            with torch.enable_grad():
                grads = list(torch.autograd.grad(tc._loss(params, tc.x), params))
            grads[0] = grads[0].clone()
            grads[0][i, j] *= 1 + eps  # the injected error (0: a right gradient)
            return tuple(g * gr for gr in grads)

    def check() -> bool:
        return bool(torch.autograd.gradcheck(lambda *ps: Loss.apply(*ps), tuple(leaves),
                                             fast_mode=fast, raise_exception=False))

    return check


def _jax_checker(net, x, t, *, eps: float = 0.0):
    """``() -> bool``: jax.test_util.check_grads(order=1, modes=("rev",)), default tolerances."""
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    acts, loss = net.activations, net.loss_function
    tj = jnp.asarray(t)
    i, j = np.unravel_index(np.argmax(np.abs(_exact(net, x, t)[0])), net.weights[0].shape)

    @jax.custom_vjp
    def energy(ws):
        return network_loss(ws, jnp.asarray(x), tj, acts, loss)

    def fwd(ws):
        return energy(ws), ws

    def bwd(ws, g):
        grads = jax.grad(lambda w: network_loss(w, jnp.asarray(x), tj, acts, loss))(ws)
        grads = list(grads)
        grads[0] = grads[0].at[i, j].multiply(1 + eps)
        return ([g * gr for gr in grads],)

    energy.defvjp(fwd, bwd)
    ws = [jnp.asarray(w) for w in net.weights]

    def check() -> bool:
        try:
            check_grads(energy, (ws,), order=1, modes=("rev",))
            return True
        except AssertionError:
            return False

    return check


def _oracle_checker(net, x, t, *, eps: float = 0.0, fd: str = "exhaustive"):
    """``() -> bool``: check_network's verdict with one entry of layer 0's dE/dW made wrong."""
    i, j = np.unravel_index(np.argmax(np.abs(_exact(net, x, t)[0])), net.weights[0].shape)
    right = net.gradients

    def wrong(X, T):
        e, dws, dx = right(X, T)
        dws[0][i, j] *= 1 + eps
        return e, dws, dx

    def check() -> bool:
        net.gradients = wrong
        try:
            return check_network(net, x, t, fd=fd, local=False, check_step=False).ok
        finally:
            del net.gradients

    return check


def _exact(net, x, t):
    return network_grads(net.weights, x, net._targets(t, x.shape[0]), net.activations,
                         net.loss_function)[0]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _config_rows(ctx: Context, problem, torch_ok: bool) -> tuple[list, list]:
    """One configuration: its timing/accuracy row and its smallest-error-caught row."""
    from oracle import network_fd

    net = problem.network()
    x, t = problem.data(seed=1)
    exact = np.concatenate([g.ravel() for g in _exact(net, x, t)])
    fns = {
        "oracle": lambda: check_network(net, x, t, fd="exhaustive", local=False,
                                        check_step=False),
        "loop": lambda: fd_loop(net, x, t),
        "check_grads": _jax_checker(net, x, t),
    }
    if torch_ok:
        fns["gradcheck"] = _torch_checker(problem, net, x, t)
        fns["gradcheck fast"] = _torch_checker(problem, net, x, t, fast=True)
    timing = ctx.time(fns, cycles=2 if problem.n_params > 1000 else 3, samples_per_cycle=5)
    report = fns["oracle"]()
    # The oracle's own finite-difference estimate of dE/dW (full stencil), against JAX.
    trace = net.trace(x, t)
    tt = net._targets(t, x.shape[0])
    est = np.concatenate([
        network_fd.weight_fd(net.weights, trace.xs, trace.vs, trace.ys, tt, net.activations,
                             net.loss_function, k).value.ravel()
        for k in range(len(net.weights))])
    oracle_ms = timing["oracle"].median

    def vs_oracle(name: str) -> str:
        if name not in timing:
            return "—"
        return f"{ms(timing[name].median)} ({ratio(timing[name].median, oracle_ms)}x)"

    timing_row = [
        problem.name, f"{problem.n_params:,}",
        f"{ms(oracle_ms)} ({'ok' if report.ok else 'FAIL'})",
        vs_oracle("loop"), vs_oracle("gradcheck"), vs_oracle("gradcheck fast"),
        vs_oracle("check_grads"), f"{_rel(est, exact):.1e}",
        f"{_rel(fd_loop(net, x, t), exact):.1e}",
    ]
    checkers = {"oracle": lambda e: _oracle_checker(net, x, t, eps=e),
                "check_grads": lambda e: _jax_checker(net, x, t, eps=e)}
    if torch_ok:
        checkers["gradcheck"] = lambda e: _torch_checker(problem, net, x, t, eps=e)
    caught = {}
    for name, make in checkers.items():
        smallest = "none"
        for eps in EPSILONS:
            if make(eps)():  # passed: the error went unnoticed
                break
            smallest = f"{eps:.0e}"
        caught[name] = smallest
    catch_row = [problem.name, caught["oracle"], caught.get("gradcheck", "—"),
                 caught["check_grads"]]
    return timing_row, catch_row


@section("Gradient checking: the oracle against torch gradcheck, jax check_grads, a plain loop")
def oracle_checks(ctx: Context) -> str:
    torch_ok = ctx.peers.get("torch") is not None
    timing_rows, catch_rows = [], []
    for problem in ctx.problems:
        if problem.name != "mnist":
            timing_row, catch_row = _config_rows(ctx, problem, torch_ok)
            timing_rows.append(timing_row)
            catch_rows.append(catch_row)
    parts = [
        "Exhaustive checks of every parameter (median ms; the oracle's row also checks dE/dX "
        "of every layer, three ways, and shows its verdict; in brackets the peer's time over "
        "the oracle's). Accuracy: max |FD - exact| / max |exact| over dE/dW.",
        "",
        markdown_table(
            ["config", "P", "oracle exhaustive", "plain FD loop", "torch gradcheck",
             "gradcheck fast", "jax check_grads", "oracle FD err", "loop FD err"],
            timing_rows),
        "",
        "Smallest relative error of one entry of dE/dW (the largest) that each checker catches, "
        "with its own default tolerances (scanned over 1e-2 ... 1e-8):",
        "",
        markdown_table(["config", "oracle", "torch gradcheck", "jax check_grads"], catch_rows),
        "",
        _mnist(ctx, torch_ok),
    ]
    return "\n".join(parts)


def _mnist(ctx: Context, torch_ok: bool) -> str:
    problem = next(p for p in ctx.problems if p.name == "mnist")
    net = problem.network()
    x, t = problem.data(seed=1)
    fns = {
        "oracle directional (4 rank-one sign directions per term)": lambda: check_network(
            net, x, t, fd="directional", directions=4, local=False, check_step=False),
        "jax check_grads": _jax_checker(net, x, t),
    }
    if torch_ok:
        fns["torch gradcheck(fast_mode)"] = _torch_checker(problem, net, x, t, fast=True)
    timing = ctx.time(fns, cycles=2, samples_per_cycle=3)
    rows = []
    for name, fn in fns.items():
        verdict = fn()
        verdict = verdict.ok if hasattr(verdict, "ok") else verdict
        rows.append([name, ms(timing[name].median), "ok" if verdict else "**FAIL (false)**"])
    if not ctx.quick:
        start = time.perf_counter()
        report = check_network(net, x, t, fd="exhaustive", local=False, check_step=False)
        took = time.perf_counter() - start
        rows.append([f"oracle exhaustive (all {problem.n_params:,} parameters and dE/dX)",
                     f"{took * 1e3:.0f} (one run)", "ok" if report.ok else "FAIL"])
    return "\n".join([
        "mnist, a right gradient (relu kinks everywhere):\n",
        markdown_table(["checker", "ms", "verdict"], rows),
        "\nWhere the directional check's time goes (its parts, each timed alone):\n",
        markdown_table(["part", "ms"], _directional_parts(ctx, net, x, t)),
    ])


def _directional_parts(ctx: Context, net, x, t) -> list[list[str]]:
    from oracle import magnitudes, network_fd
    from oracle.network_check import _directions
    from reference import forward_pass

    tt = net._targets(t, x.shape[0])
    acts, loss, weights = net.activations, net.loss_function, net.weights
    fwd = forward_pass(weights, x, acts)
    e_floor = magnitudes.loss_value_magnitude(weights, fwd, tt, acts, loss)
    rng = np.random.default_rng(0)
    terms = [(k, wrt, _directions(weights[k].shape if wrt == "W" else fwd.xs[k].shape, 4, rng))
             for k in range(len(weights)) for wrt in ("W", "X")]
    ad_dws, ad_dxs = network_grads(weights, x, tt, acts, loss)
    refs = [u.project(ad_dws[k] if wrt == "W" else ad_dxs[k]) for k, wrt, u in terms]

    def finite_differences():
        for (k, wrt, u), ref in zip(terms, refs):
            network_fd.directional_fd(weights, fwd.xs, fwd.vs, tt, acts, loss, k, u, wrt=wrt,
                                      noise_floor=e_floor, reference=ref)

    def rounding_bounds():  # as check_network forms them
        first = magnitudes.first_layer_v_magnitude(weights, fwd)
        magnitudes.network_magnitudes(weights, fwd, tt, acts, loss, factored=True,
                                      first_v_mag=first)
        magnitudes.loss_value_magnitude(weights, fwd, tt, acts, loss, first_v_mag=first)

    parts = {
        "finite differences: 6 terms x 4 directions, f(x +- h) (+- 2h where FD and JAX "
        "differ by more than round-off)": finite_differences,
        "JAX's gradient (dE/dW and every dE/dX, jitted)": lambda: network_grads(
            weights, x, tt, acts, loss),
        "rounding bounds of every term (factored) and of E (oracle.magnitudes)":
            rounding_bounds,
        "the hand-derived terms: net.trace and net.gradients": lambda: (
            net.trace(x, t), net.gradients(x, t)),
    }
    times = {name: ctx.time({name: fn}, cycles=1, samples_per_cycle=20)[name].median
             for name, fn in parts.items()}
    return [[name, ms(sec)] for name, sec in times.items()]

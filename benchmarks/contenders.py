"""The contenders: the reference (numpy, hand backward), JAX ``jit`` and torch.

Each one is built from the same problem, weights and data, and offers three operations, timed
as they are (no conversion of results):

    forward()    Y = net(X), no gradient
    gradients()  E, dE/dW of every layer and dE/dX of the input
    step()       one SGD step W <- W - lr dE/dW in place (no dE/dX), returning E

and, for the correctness check of the same run, ``numpy_gradients()`` / ``numpy_step(lr)``
that give their results as numpy arrays (W with the bias as last row, as the reference).
The peers' timed operations return their own arrays and scalars (no conversion to numpy or to
a Python float, which would add a transfer the reference does not pay); JAX's are waited for
with ``block_until_ready``.

JAX differentiates the reference's own forward (``reference.network_loss``), jitted once per
shape; its step is ``jit(value_and_grad + update)`` with the weights donated and returned.
torch runs an idiomatic model of the same math (``addmm`` per layer, weight and bias as leaf
tensors) with ``backward()`` and an in-place ``sub_`` update.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from reference import Network

from .problems import Problem

__all__ = ["CONTENDERS", "Contender", "available_peers"]

Grads = tuple[float, list[np.ndarray], np.ndarray]


class Contender:
    """Base class; subclasses set ``name`` and implement the three operations."""

    name = "?"

    def forward(self) -> object:
        raise NotImplementedError

    def gradients(self) -> object:
        raise NotImplementedError

    def step(self) -> object:
        raise NotImplementedError

    def numpy_forward(self) -> np.ndarray:
        raise NotImplementedError

    def numpy_gradients(self) -> Grads:
        raise NotImplementedError

    def numpy_step(self, lr: float) -> tuple[float, list[np.ndarray]]:
        """E and the weights after one step of ``lr`` from the initial weights (a copy)."""
        raise NotImplementedError

    def ops(self) -> dict[str, Callable[[], object]]:
        return {"forward": self.forward, "gradients": self.gradients, "step": self.step}


class NumpyContender(Contender):
    """The reference: ``Network.forward``, ``Network.gradients``, ``Network.step``."""

    name = "numpy"

    def __init__(self, problem: Problem, weights: list[np.ndarray], x, t, lr: float) -> None:
        self.net = problem.network()
        self.net.weights = weights
        self.initial = copy.deepcopy(self.net)
        self.x, self.t, self.lr = x, t, lr

    def forward(self):
        return self.net.forward(self.x)

    def gradients(self):
        return self.net.gradients(self.x, self.t)

    def step(self):
        return self.net.step(self.x, self.t, self.lr)

    def numpy_forward(self):
        return self.initial.forward(self.x)

    def numpy_gradients(self):
        return self.initial.gradients(self.x, self.t)

    def numpy_step(self, lr):
        net = copy.deepcopy(self.initial)
        e = net.step(self.x, self.t, lr)
        return e, [w.copy() for w in net.weights]


class JaxContender(Contender):
    """``jax.jit`` of the reference's own forward / ``value_and_grad`` / SGD step, float64."""

    name = "jax jit"

    def __init__(self, problem: Problem, weights: list[np.ndarray], x, t, lr: float) -> None:
        import jax
        import jax.numpy as jnp

        from reference import forward_pass, network_loss

        jax.config.update("jax_enable_x64", True)
        net: Network = problem.network()
        acts, loss = net.activations, net.loss_function
        self.jax = jax
        self.initial = [np.array(w) for w in weights]
        self.x, self.t = jnp.asarray(x), jnp.asarray(t)
        self.lr = lr

        def energy(ws, xx, tt):
            return network_loss(ws, xx, tt, acts, loss)

        def sgd(ws, xx, tt, rate):
            e, g = jax.value_and_grad(energy)(ws, xx, tt)
            return e, [w - rate * d for w, d in zip(ws, g)]  # eq 10

        self._forward = jax.jit(lambda ws, xx: forward_pass(ws, xx, acts).ys[-1])
        self._grads = jax.jit(jax.value_and_grad(energy, argnums=(0, 1)))
        self._step = jax.jit(sgd, donate_argnums=0)
        self.ws = [jnp.asarray(w) for w in self.initial]
        self.step_ws = [jnp.array(w) for w in self.initial]  # donated, replaced on every step

    def forward(self):
        return self._forward(self.ws, self.x).block_until_ready()

    def gradients(self):
        return self.jax.block_until_ready(self._grads(self.ws, self.x, self.t))

    def step(self):
        e, self.step_ws = self._step(self.step_ws, self.x, self.t, self.lr)
        return self.jax.block_until_ready((e, self.step_ws))[0]

    def numpy_forward(self):
        return np.asarray(self.forward())

    def numpy_gradients(self):
        e, (dw, dx) = self.gradients()
        return float(e), [np.asarray(d) for d in dw], np.asarray(dx)

    def numpy_step(self, lr):
        import jax.numpy as jnp

        e, ws = self._step([jnp.array(w) for w in self.initial], self.x, self.t, lr)
        return float(e), [np.asarray(w) for w in ws]


class TorchContender(Contender):
    """torch, float64: ``addmm`` layers, ``loss.backward()``, ``p.sub_(p.grad, alpha=lr)``."""

    name = "torch"

    def __init__(self, problem: Problem, weights: list[np.ndarray], x, t, lr: float) -> None:
        import torch

        self.torch = torch
        self.problem = problem
        self.initial = [np.array(w) for w in weights]
        self.x = torch.tensor(x, dtype=torch.float64)
        self.x_grad = self.x.clone().requires_grad_(True)
        self.t = torch.tensor(t, dtype=torch.float64)
        self.lr = lr
        self.params = self._leaves(self.initial)
        self.step_params = self._leaves(self.initial)
        act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}
        self.hidden = [act.get(a) for a in problem.activations]

    def _leaves(self, weights: list[np.ndarray]) -> list:
        torch = self.torch
        out = []
        for w in weights:
            out.append(torch.tensor(w[:-1], requires_grad=True))  # (n, m)
            out.append(torch.tensor(w[-1], requires_grad=True))  # bias (m,)
        return out

    def _logits(self, params, x):
        """V of the output layer and Y of the last one (softmax is left to the loss)."""
        torch = self.torch
        h = x
        n_layers = len(params) // 2
        for k in range(n_layers):
            v = torch.addmm(params[2 * k + 1], h, params[2 * k])  # eq 4-5
            if k == n_layers - 1:
                return v
            h = self.hidden[k](v)
        raise AssertionError("no layers")

    def _loss(self, params, x):
        torch = self.torch
        v = self._logits(params, x)
        b = x.shape[0]
        if self.problem.loss == "cross_entropy":
            return -(self.t * torch.log_softmax(v, dim=-1)).sum() / b
        y = self.hidden[-1](v)
        return 0.5 * ((y - self.t) ** 2).sum() / b

    def forward(self):
        with self.torch.no_grad():
            v = self._logits(self.params, self.x)
            if self.problem.loss == "cross_entropy":
                return self.torch.softmax(v, dim=-1)
            return self.hidden[-1](v)

    def gradients(self):
        for p in self.params:
            p.grad = None
        self.x_grad.grad = None
        e = self._loss(self.params, self.x_grad)
        e.backward()
        return e, [p.grad for p in self.params], self.x_grad.grad

    def step(self):
        params = self.step_params
        for p in params:
            p.grad = None
        e = self._loss(params, self.x)
        e.backward()
        with self.torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=self.lr)  # eq 10
        return e

    def _stack(self, tensors) -> list[np.ndarray]:
        return [
            np.vstack([w.detach().numpy(), b.detach().numpy()[None]])
            for w, b in zip(tensors[::2], tensors[1::2])
        ]

    def numpy_forward(self):
        return self.forward().numpy()

    def numpy_gradients(self):
        e, grads, dx = self.gradients()
        return e.item(), self._stack(grads), dx.numpy().copy()

    def numpy_step(self, lr):
        saved, self.step_params, rate = self.step_params, self._leaves(self.initial), self.lr
        try:
            self.lr = lr
            e = self.step()
            return e.item(), self._stack(self.step_params)
        finally:
            self.step_params, self.lr = saved, rate


def available_peers() -> dict[str, str | None]:
    """Each optional peer's version, or None when it is not installed."""
    out: dict[str, str | None] = {}
    for module in ("jax", "torch", "numdifftools"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            out[module] = None
    return out


CONTENDERS: dict[str, tuple[type[Contender], str | None]] = {
    # name: (class, the optional module it needs)
    "numpy": (NumpyContender, None),
    "jax jit": (JaxContender, "jax"),
    "torch": (TorchContender, "torch"),
}

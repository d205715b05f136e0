"""JAX gradients of the reference's own forward, compiled once and reused for every random shape.

Why: Hypothesis draws a new shape (depth, widths, batch) for almost every example. Eager JAX
compiles each primitive once per new shape (a fresh network costs ~2 s in ``check_network``),
and ``jax.jit`` per new shape costs 100s of ms. Either would cap the suite at a few examples
per second. Measured alternatives (see README.md): a small set of shapes (too few networks);
an LRU of jitted functions keyed by shapes and activations (10^5 keys: every example misses);
**padding to one fixed shape** (chosen): every network is embedded in a network of maximal
shape, so one compiled function per loss serves them all, at ~0.5 ms per call.

The embedding, for a network of depth L <= 4, widths <= 8 and batch B <= 8 (larger ones get a
larger bucket, rounded up to a power of two):

- widths are padded to P with zero weight rows and columns, so a padded unit never feeds a real
  one; for a softmax layer the padded units get the bias -1e300, so exp() gives them exactly 0
  probability and the real units' softmax is unchanged;
- depth is padded in *front* with identity layers of weights ``[I; 0]``: ``x @ I`` is exact in
  floating point, so the real first layer sees exactly X;
- the batch is padded with masked samples: the loss is evaluated per sample (``vmap`` over
  samples, each a batch of one) and averaged with a mask; the built-in losses are means of
  per-sample losses (losses.py), so this is the same E;
- activations are chosen inside the compiled code by ``lax.switch`` over a table of activation
  functions (``Activation.f``), indexed per layer by an integer argument.

Everything JAX differentiates is the reference's code: ``reference.network_loss`` (and so
``dense_forward``, each ``Activation.f``, each ``Loss.value``/``value_from_v``) on padded arrays.

Padding is used only for functions known to treat padded units as absent: the built-in losses
and activations and ``oracle.strategies.USER_ACTIVATIONS`` (``test_padding.py`` checks them
against unpadded JAX). Anything else (a user loss, a mutated forward in the bug zoo) goes to an
exact-shape path: ``jit`` keyed by (shapes, functions), in a small LRU.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

import oracle  # noqa: F401  (first: switches JAX to float64)
from oracle.jax_support import jax, jnp
from oracle.strategies import USER_ACTIVATIONS
from reference import ACTIVATIONS, LOSSES, Activation, Loss, Network, network_loss

__all__ = [
    "activation_derivative",
    "activation_vjp",
    "compilations",
    "loss_gradient",
    "network_gradients",
]

lax = jax.lax

MIN_WIDTH, MIN_BATCH, MIN_DEPTH = 8, 8, 4
"""The smallest padded bucket: what the default strategies draw fits in it."""

HUGE_NEGATIVE = -1e300
"""Bias of padded softmax units: exp(-1e300 - max) is exactly 0, and it is finite (no NaN)."""

_SAFE_FS: tuple[Callable, ...] = tuple(a.f for a in ACTIVATIONS.values()) + tuple(
    a.f for a in USER_ACTIVATIONS.values())
"""The activation table of the compiled functions (branch i of ``lax.switch`` is _SAFE_FS[i])."""
_INDEX = {f: i for i, f in enumerate(_SAFE_FS)}
_SOFTMAX_F = ACTIVATIONS["softmax"].f
_IDENTITY = _INDEX[ACTIVATIONS["identity"].f]
_SAFE_LOSS_FNS = {(loss.value, loss.value_from_v) for loss in LOSSES.values()}

_compiled: dict[tuple, Callable] = {}
_exact: OrderedDict[tuple, Callable] = OrderedDict()
EXACT_CACHE_SIZE = 64


def compilations() -> dict[str, int]:
    """How many times XLA compiled: the padded network functions (one per loss and bucket),
    the exact-shape ones, and the local (activation, loss) ones."""
    def count(fns) -> int:
        return sum(fn._cache_size() for fn in fns)  # jit's count of compiled signatures

    return {"padded": count(_compiled.values()), "exact": count(_exact.values()),
            "local": count(_local.values())}


def _bucket(n: int, minimum: int) -> int:
    size = minimum
    while size < n:
        size *= 2
    return size


def _loss_key(loss: Loss) -> tuple:
    return (loss.value, loss.value_from_v, loss.fused)


def _switch_activations(idx, depth: int) -> list[Activation]:
    return [Activation(f"slot{k}", functools.partial(_switched, idx, k), None)
            for k in range(depth)]


def _switched(idx, k, v):
    return lax.switch(idx[k], _SAFE_FS, v)


def _padded_energy(loss: Loss, depth: int):
    def energy(ws, x, t, mask, inv_batch, idx):
        acts = _switch_activations(idx, depth)

        def per_sample(xb, tb):
            return network_loss(ws, xb[None], tb[None], acts, loss)

        return jnp.sum(jax.vmap(per_sample)(x, t) * mask) * inv_batch

    return energy


def _padded(loss: Loss, depth: int, width: int, batch: int) -> Callable:
    key = (_loss_key(loss), depth, width, batch)
    fn = _compiled.get(key)
    if fn is None:
        fn = _compiled[key] = jax.jit(jax.grad(_padded_energy(loss, depth), argnums=(0, 1)))
    return fn


def _exact_fn(net: Network, shape_key: tuple) -> Callable:
    acts = tuple(net.activations)
    loss = net.loss_function
    key = (shape_key, tuple(a.f for a in acts), _loss_key(loss))
    fn = _exact.get(key)
    if fn is None:
        def energy(ws, x, t):
            return network_loss(ws, x, t, acts, loss)

        fn = jax.jit(jax.grad(energy, argnums=(0, 1)))
        _exact[key] = fn
        if len(_exact) > EXACT_CACHE_SIZE:
            _exact.popitem(last=False)
    else:
        _exact.move_to_end(key)
    return fn


def paddable(net: Network) -> bool:
    """True when every activation and the loss are known to treat padded units as absent."""
    return (all(a.f in _INDEX for a in net.activations)
            and (net.loss_function.value, net.loss_function.value_from_v) in _SAFE_LOSS_FNS)


def network_gradients(
    net: Network, x: np.ndarray, t: np.ndarray, *, pad: bool = True
) -> tuple[list[np.ndarray], np.ndarray]:
    """JAX's ``(dE/dW_k for every k, dE/dX)`` of ``net`` at ``x (B, n0)``, ``t (B, nL)`` rows.

    ``pad=False`` forces the exact-shape path (what ``test_padding.py`` compares against).
    """
    weights, sizes = net.weights, net.layer_sizes
    depth, batch = len(weights), x.shape[0]
    if not (pad and paddable(net)):
        fn = _exact_fn(net, (tuple(sizes), batch))
        dws, dx = fn([jnp.asarray(w) for w in weights], jnp.asarray(x), jnp.asarray(t))
        return [np.asarray(d) for d in dws], np.asarray(dx)

    width = _bucket(max(sizes), MIN_WIDTH)
    rows = _bucket(batch, MIN_BATCH)
    slots = max(depth, MIN_DEPTH)
    front = slots - depth
    ws, idx = [], []
    eye = np.zeros((width + 1, width))
    eye[:width] = np.eye(width)
    for _ in range(front):
        ws.append(eye)
        idx.append(_IDENTITY)
    for w, act in zip(weights, net.activations):
        n, m = w.shape[0] - 1, w.shape[1]
        wp = np.zeros((width + 1, width))
        wp[:n, :m] = w[:-1]
        wp[width, :m] = w[-1]
        if act.f is _SOFTMAX_F:
            wp[width, m:] = HUGE_NEGATIVE
        ws.append(wp)
        idx.append(_INDEX[act.f])
    xp = np.zeros((rows, width))
    xp[:batch, : sizes[0]] = x
    tp = np.zeros((rows, width))
    tp[:batch, : sizes[-1]] = t
    mask = np.zeros(rows)
    mask[:batch] = 1.0
    fn = _padded(net.loss_function, slots, width, rows)
    dws, dx = fn(ws, xp, tp, mask, 1.0 / batch, np.asarray(idx, dtype=np.int32))
    out = []
    for k, w in enumerate(weights):
        d = np.asarray(dws[front + k])
        n, m = w.shape[0] - 1, w.shape[1]
        out.append(np.concatenate([d[:n, :m], d[width:, :m]]))
    return out, np.asarray(dx)[:batch, : sizes[0]]


# ---------------------------------------------------------------------------------------------
# Local terms: one activation, one loss. Padded to a fixed (rows, width) as well.
# ---------------------------------------------------------------------------------------------

_local: dict[tuple, Callable] = {}


def _local_fn(key: tuple, make: Callable[[], Callable]) -> Callable:
    fn = _local.get(key)
    if fn is None:
        fn = _local[key] = jax.jit(make())
        if len(_local) > 4 * EXACT_CACHE_SIZE:
            _local.pop(next(iter(_local)))
    return fn


def _pad2(a: np.ndarray, rows: int, width: int, fill: float = 0.0) -> np.ndarray:
    out = np.full((rows, width), fill)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def activation_vjp(act: Activation, v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """JAX's ``g^T dY/dV`` of ``act.f`` at ``v (B, m)`` for upstream ``g (B, m)``."""
    b, m = v.shape
    rows, width = _bucket(b, MIN_BATCH), _bucket(m, MIN_WIDTH)
    f = act.f
    fill = HUGE_NEGATIVE if f is _SOFTMAX_F else 0.0

    def make():
        return lambda vv, gg: jax.vjp(f, vv)[1](gg)[0]

    fn = _local_fn(("vjp", f, rows, width), make)
    out = fn(_pad2(v, rows, width, fill), _pad2(g, rows, width))
    return np.asarray(out)[:b, :m]


def activation_derivative(act: Activation, v: np.ndarray) -> np.ndarray:
    """JAX's elementwise ``act'(v)`` (a JVP with a tangent of ones), any shape of ``v``."""
    flat = np.asarray(v, dtype=np.float64).reshape(-1)
    size = _bucket(flat.size, 512)  # one bucket for every array of up to 8 x 8 x 8 entries
    f = act.f

    def make():
        return lambda vv: jax.jvp(f, (vv,), (jnp.ones_like(vv),))[1]

    fn = _local_fn(("jvp", f, size), make)
    padded = np.zeros(size)
    padded[: flat.size] = flat
    return np.asarray(fn(padded))[: flat.size].reshape(np.shape(v))


def loss_gradient(loss: Loss, a: np.ndarray, t: np.ndarray, *, from_v: bool = False) -> np.ndarray:
    """JAX's ``dE/dY`` of ``loss.value`` at ``a = Y (B, nL)`` (``dE/dV`` of ``value_from_v``).

    Padded per sample (each a batch of one, averaged with a mask); padded outputs have ``T = 0``
    and ``Y = 0.5`` (finite under every log; ``V = -1e300`` for the softmax-fused form): constant
    terms whose derivative never reaches a real entry.
    """
    b, m = a.shape
    rows, width = _bucket(b, MIN_BATCH), _bucket(m, MIN_WIDTH)
    fn_value = loss.value_from_v if from_v else loss.value
    safe = (loss.value, loss.value_from_v) in _SAFE_LOSS_FNS
    if not safe:
        rows, width = b, m

    def make():
        def energy(aa, tt, mask, inv_batch):
            per = jax.vmap(lambda ab, tb: fn_value(ab[None], tb[None]))(aa, tt)
            return jnp.sum(per * mask) * inv_batch

        return jax.grad(energy)

    fn = _local_fn(("loss", fn_value, rows, width), make)
    fill = 0.5
    if from_v:
        fill = HUGE_NEGATIVE if loss.output_activation == "softmax" else 0.0
    mask = np.zeros(rows)
    mask[:b] = 1.0
    out = fn(_pad2(a, rows, width, fill), _pad2(t, rows, width), mask, 1.0 / b)
    return np.asarray(out)[:b, :m]


def activation_table() -> Sequence[str]:
    """Names of the activations the padded functions can switch between (for the README)."""
    names = {a.f: a.name for a in (*ACTIVATIONS.values(), *USER_ACTIVATIONS.values())}
    return [names[f] for f in _SAFE_FS]

"""The second-order zoo: Hessian-vector products and double backwards derived by hand, each
with a right derivation and one with a planted bug of a classic kind.

Test data for ``oracle.check_hvp`` and ``oracle.check_double_backward`` (issue 15). Two kinds:

- ``HVPS``: a scalar function ``f(x) -> float`` of one float array (a network's weights are
  packed into one flat vector), its hand-derived gradient ``grad(x)``, its hand-derived
  Hessian-vector product ``hvp(x, v) = H(x) v`` and ``buggy(x, v)``. ``f`` is plain numpy
  (``np.exp``, ``np.logaddexp``, fancy indexing): JAX differentiates it through
  ``oracle.numpy_on_jax``; data (design matrices, targets, labels) are module constants.
- ``DOUBLE_BACKWARDS``: a layer ``forward(x, p, q)``, its backward ``backward(dout, x, p, q)``
  (right: the first order is not under test here) and its hand-derived double backward
  ``double_backward(dd, dout, x, p, q)``: the gradients of ``<dd, backward(dout, x, p, q)>``
  (``dd`` a tuple shaped like backward's output) with respect to ``dout, x, p, q``, in that
  order; and ``buggy`` with the same signature. The forwards are array-API code (``_xp``
  picks ``jax.numpy`` for JAX arrays, so JAX traces them as they are); ``numpy_forward`` is
  the same layer in plain numpy (JAX cannot trace it).

Bug classes (``bug_class``), those named by the issue: ``"dropped term"`` (a product-rule term
left out), ``"missing factor"``, ``"wrong point"`` (act'' evaluated at the output instead of
the pre-activation) and ``"sign"``.

Where the bug acts is part of the data, so the tests can check the oracle's localisation:
``bug_entries`` (HVPs: a slice of x's flat entries, None for all of them; at ``make_x`` of
seed 0 the bug moves every one of them, elsewhere it may miss some: a relu^2 unit dead on the
whole batch hides its act'') and ``bug_inputs`` (double backwards: the inputs whose gradients
the bug changes). ``dense_relu``'s bug is the one the issue describes, a double backward
that drops the act'' term: it is *invisible* for relu (relu'' = 0 away from 0), so its
``bug_inputs`` is empty and the buggy derivation equals the right one: the checker must pass
both. Every other bug changes its entries by far more than 1e-6 relative.

``f`` returns numpy's own scalar (``np.sum(...)``), never ``float(...)``: a ``float()`` of a
value JAX is differentiating cannot be lifted, and JAX would be left out.

Truth is by construction: the closed forms below are derived in their docstrings (R-operator
style for the MLP: R{.} is the directional derivative along v), and ``test_second_order_zoo.py``
checks every right one against JAX's second derivatives of independent ``jax.numpy``
re-writes. The points keep clear of kinks (relu, relu^2 pre-activations at least 0.05 from 0).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["BUG_CLASSES", "DOUBLE_BACKWARDS", "HVPS", "DoubleBackwardEntry", "HvpEntry"]

BUG_CLASSES = ("dropped term", "missing factor", "wrong point", "sign")
KINK_MARGIN = 0.05
"""relu and relu^2 pre-activations stay this far from 0: the finite-difference stencils (steps
~1e-5 times the entries) never straddle the kink."""


@dataclass(frozen=True)
class HvpEntry:
    """A scalar function with its hand-derived gradient and Hessian-vector product."""

    name: str
    f: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    hvp: Callable[[np.ndarray, np.ndarray], np.ndarray]
    buggy: Callable[[np.ndarray, np.ndarray], np.ndarray]
    bug: str
    bug_class: str
    make_x: Callable[[np.random.Generator], np.ndarray]
    bug_entries: slice | None = None


@dataclass(frozen=True)
class DoubleBackwardEntry:
    """A layer with its backward and hand-derived double backward (the VJP of the backward)."""

    name: str
    forward: Callable
    numpy_forward: Callable
    backward: Callable
    double_backward: Callable
    buggy: Callable
    bug: str
    bug_class: str
    bug_inputs: tuple[str, ...]
    make_inputs: Callable[[np.random.Generator], tuple[np.ndarray, ...]]


def _xp(*arrays):
    """``jax.numpy`` for JAX arrays and tracers, else numpy (array-API style, as reference/)."""
    for a in arrays:
        if type(a).__module__.startswith("jax"):
            return sys.modules["jax.numpy"]
    return np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_DATA = np.random.default_rng(20_240_915)


# ---------------------------------------------------------------------------------------------
# softmax cross-entropy of logits Z (B, C), labels fixed: H v = (P v - P <P, v>) / B per row
# ---------------------------------------------------------------------------------------------

XENT_LABELS = np.array([0, 2, 1, 2])


def xent_f(z):
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return np.mean(lse - z[np.arange(z.shape[0]), XENT_LABELS])


def xent_grad(z):
    p = _softmax_rows(z)
    p[np.arange(z.shape[0]), XENT_LABELS] -= 1.0
    return p / z.shape[0]


def xent_hvp(z, v):
    """d/dz of p = e^z / sum e^z is diag(p) - p p^T (quotient rule): both terms."""
    p = _softmax_rows(z)
    return (p * v - p * (p * v).sum(axis=1, keepdims=True)) / z.shape[0]


def xent_buggy(z, v):
    """The quotient rule's second term -p p^T dropped (softmax's Jacobian taken diagonal)."""
    return _softmax_rows(z) * v / z.shape[0]


# ---------------------------------------------------------------------------------------------
# logistic loss of weights w, data fixed: f = mean log(1 + exp(-y x.w))
# ---------------------------------------------------------------------------------------------

LOGISTIC_X = _DATA.normal(size=(8, 5))
LOGISTIC_Y = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0])


def logistic_f(w):
    return np.mean(np.logaddexp(0.0, -LOGISTIC_Y * (LOGISTIC_X @ w)))


def logistic_grad(w):
    m = LOGISTIC_Y * (LOGISTIC_X @ w)
    return -LOGISTIC_X.T @ (LOGISTIC_Y * _sigmoid(-m)) / len(m)


def logistic_hvp(w, v):
    """H = X^T diag(s (1 - s)) X / n, s = sigmoid(y x.w) (y^2 = 1)."""
    s = _sigmoid(LOGISTIC_Y * (LOGISTIC_X @ w))
    return LOGISTIC_X.T @ (s * (1 - s) * (LOGISTIC_X @ v)) / len(s)


def logistic_buggy(w, v):
    """The mean's 1/n forgotten in the second derivative."""
    s = _sigmoid(LOGISTIC_Y * (LOGISTIC_X @ w))
    return LOGISTIC_X.T @ (s * (1 - s) * (LOGISTIC_X @ v))


# ---------------------------------------------------------------------------------------------
# log-sum-exp of a vector: H v = p v - p (p.v)
# ---------------------------------------------------------------------------------------------


def lse_f(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def lse_grad(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def lse_hvp(x, v):
    p = lse_grad(x)
    return p * v - p * np.dot(p, v)


def lse_buggy(x, v):
    """The sign of the rank-one term flipped."""
    p = lse_grad(x)
    return p * v + p * np.dot(p, v)


# ---------------------------------------------------------------------------------------------
# Rosenbrock: sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; H tridiagonal
# ---------------------------------------------------------------------------------------------


def rosenbrock_f(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad(x):
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def _rosenbrock_hvp(x, v, *, drop):
    """H_ii = d/dx_i [-400 x_i (x_{i+1} - x_i^2)] + 2 + 200 [i > 0]; the product rule gives
    -400 (x_{i+1} - x_i^2) + 800 x_i^2; H_{i,i+1} = -400 x_i."""
    diag = np.zeros_like(x)
    first = np.zeros_like(x[:-1]) if drop else -400.0 * (x[1:] - x[:-1] ** 2)
    diag[:-1] += first + 800.0 * x[:-1] ** 2 + 2.0
    diag[1:] += 200.0
    off = -400.0 * x[:-1]
    hv = diag * v
    hv[:-1] += off * v[1:]
    hv[1:] += off * v[:-1]
    return hv


def rosenbrock_hvp(x, v):
    return _rosenbrock_hvp(x, v, drop=False)


def rosenbrock_buggy(x, v):
    """The product rule's -400 (x_{i+1} - x_i^2) dropped from H_ii (all but the last entry)."""
    return _rosenbrock_hvp(x, v, drop=True)


# ---------------------------------------------------------------------------------------------
# L2-regularised least squares, x = [w, b] (bias unregularised):
# f = ||X w + b - y||^2 / (2 n) + lam ||w||^2
# ---------------------------------------------------------------------------------------------

RIDGE_X = _DATA.normal(size=(8, 4))
RIDGE_Y = _DATA.normal(size=8)
RIDGE_LAMBDA = 0.3


def ridge_f(x):
    w, b = x[:-1], x[-1]
    r = RIDGE_X @ w + b - RIDGE_Y
    return r @ r / (2 * len(r)) + RIDGE_LAMBDA * np.sum(w * w)


def ridge_grad(x):
    w, b = x[:-1], x[-1]
    r = RIDGE_X @ w + b - RIDGE_Y
    return np.append(RIDGE_X.T @ r / len(r) + 2 * RIDGE_LAMBDA * w, r.sum() / len(r))


def _ridge_hvp(x, v, reg):
    rr = RIDGE_X @ v[:-1] + v[-1]
    return np.append(RIDGE_X.T @ rr / len(rr) + reg * v[:-1], rr.sum() / len(rr))


def ridge_hvp(x, v):
    return _ridge_hvp(x, v, 2 * RIDGE_LAMBDA)


def ridge_buggy(x, v):
    """d^2/dw^2 lam ||w||^2 = 2 lam: the 2 missing (the w entries only; b is unregularised)."""
    return _ridge_hvp(x, v, RIDGE_LAMBDA)


# ---------------------------------------------------------------------------------------------
# Gauss-Newton: f = 0.5 ||tanh(X w) - y||^2; H = J^T J + sum r_i hess(r_i)
# ---------------------------------------------------------------------------------------------

GN_X = _DATA.normal(size=(7, 4)) * 0.7
GN_Y = _DATA.normal(size=7)


def gn_f(w):
    r = np.tanh(GN_X @ w) - GN_Y
    return 0.5 * r @ r


def gn_grad(w):
    t = np.tanh(GN_X @ w)
    return GN_X.T @ ((t - GN_Y) * (1 - t**2))


def gn_hvp(w, v):
    """d/du [r t'] = t'^2 + r t'', t'' = -2 t t'."""
    t = np.tanh(GN_X @ w)
    d1 = 1 - t**2
    return GN_X.T @ ((d1**2 + (t - GN_Y) * (-2 * t * d1)) * (GN_X @ v))


def gn_buggy(w, v):
    """The Gauss-Newton matrix J^T J passed off as the Hessian: the product rule's r t'' term
    dropped."""
    t = np.tanh(GN_X @ w)
    return GN_X.T @ ((1 - t**2) ** 2 * (GN_X @ v))


# ---------------------------------------------------------------------------------------------
# a quartic: f = ||x||^4 / 4; H = ||x||^2 I + 2 x x^T
# ---------------------------------------------------------------------------------------------


def quartic_f(x):
    return 0.25 * np.dot(x, x) ** 2


def quartic_grad(x):
    return np.dot(x, x) * x


def quartic_hvp(x, v):
    return np.dot(x, x) * v + 2 * x * np.dot(x, v)


def quartic_buggy(x, v):
    """d/dx ||x||^2 = 2 x: the 2 missing."""
    return np.dot(x, x) * v + x * np.dot(x, v)


# ---------------------------------------------------------------------------------------------
# 2-layer MLP losses with respect to their weights, x = [W1.ravel(), b1, W2.ravel(), b2]
# ---------------------------------------------------------------------------------------------

MLP_IN, MLP_HIDDEN = 3, 4
MLP_X = _DATA.normal(size=(5, MLP_IN))
MLP_T = _DATA.normal(size=(5, 2))
MLP_LABELS = np.array([0, 2, 1, 1, 0])


def _unpack(x, n_out):
    i, h = MLP_IN, MLP_HIDDEN
    w1 = x[:i * h].reshape(i, h)
    b1 = x[i * h:i * h + h]
    w2 = x[i * h + h:i * h + h + h * n_out].reshape(h, n_out)
    b2 = x[i * h + h + h * n_out:]
    return w1, b1, w2, b2


def _pack(*parts):
    return np.concatenate([np.ravel(p) for p in parts])


def _mlp_size(n_out):
    return MLP_IN * MLP_HIDDEN + MLP_HIDDEN + MLP_HIDDEN * n_out + n_out


class _Mlp:
    """``f(x)``: h = act(X W1 + b1), z = h W2 + b2, loss "mse" (||z - T||^2 / (2B)) or "xent"
    (softmax cross-entropy with MLP_LABELS, mean over the batch).

    The HVP, R-operator style (R{.} = d/dt .(x + t v) at t = 0; the direction v unpacks as
    V1, c1, V2, c2):

        R{a1} = X V1 + c1            R{h} = act'(a1) R{a1}         R{z} = R{h} W2 + h V2 + c2
        dz = dL/dz                   R{dz} = R{z} / B (mse), (P R{z} - P <P, R{z}>) / B (xent)
        R{dW2} = R{h}^T dz + h^T R{dz}                       R{db2} = sum R{dz}
        dh = dz W2^T                 R{dh} = R{dz} W2^T + dz V2^T
        da1 = dh act'(a1)            R{da1} = R{dh} act'(a1) + dh act''(a1) R{a1}
        R{dW1} = X^T R{da1}          R{db1} = sum R{da1}

    The bugs: "act2 at output" evaluates act'' at h instead of a1; "drop dW2 term" leaves out
    R{h}^T dz (the W2 block only); "act2 sign" subtracts the act'' term; "act2 function" uses
    ``bad_act2`` for act''. The first, third and fourth change the W1 and b1 blocks only.
    """

    def __init__(self, act, act1, act2, loss, bug, bad_act2=None, kink=False):
        self.act, self.act1, self.act2 = act, act1, act2
        self.loss, self.bug, self.bad_act2, self.kink = loss, bug, bad_act2, kink
        self.n_out = 3 if loss == "xent" else 2

    def _forward(self, x):
        w1, b1, w2, b2 = _unpack(x, self.n_out)
        a1 = MLP_X @ w1 + b1
        h = self.act(a1)
        return w1, b1, w2, b2, a1, h, h @ w2 + b2

    def f(self, x):
        *_, z = self._forward(x)
        if self.loss == "mse":
            return np.sum((z - MLP_T) ** 2) / (2 * len(z))
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        return np.mean(lse - z[np.arange(len(z)), MLP_LABELS])

    def _dz(self, z):
        if self.loss == "mse":
            return (z - MLP_T) / len(z)
        p = _softmax_rows(z)
        p[np.arange(len(z)), MLP_LABELS] -= 1.0
        return p / len(z)

    def grad(self, x):
        w1, b1, w2, b2, a1, h, z = self._forward(x)
        dz = self._dz(z)
        da1 = (dz @ w2.T) * self.act1(a1)
        return _pack(MLP_X.T @ da1, da1.sum(0), h.T @ dz, dz.sum(0))

    def hvp(self, x, v, bug=None):
        w1, b1, w2, b2, a1, h, z = self._forward(x)
        v1, c1, v2, c2 = _unpack(v, self.n_out)
        ra1 = MLP_X @ v1 + c1
        rh = self.act1(a1) * ra1
        rz = rh @ w2 + h @ v2 + c2
        dz = self._dz(z)
        if self.loss == "mse":
            rdz = rz / len(z)
        else:
            p = _softmax_rows(z)
            rdz = (p * rz - p * (p * rz).sum(axis=1, keepdims=True)) / len(z)
        rdw2 = h.T @ rdz if bug == "drop dW2 term" else rh.T @ dz + h.T @ rdz
        dh = dz @ w2.T
        rdh = rdz @ w2.T + dz @ v2.T
        act2 = {"act2 at output": lambda: self.act2(h),
                "act2 function": lambda: self.bad_act2(a1)}.get(bug, lambda: self.act2(a1))()
        sign = -1.0 if bug == "act2 sign" else 1.0
        rda1 = rdh * self.act1(a1) + sign * dh * act2 * ra1
        return _pack(MLP_X.T @ rda1, rda1.sum(0), rdw2, rdz.sum(0))

    def buggy(self, x, v):
        return self.hvp(x, v, bug=self.bug)

    def make_x(self, rng):
        """Glorot-ish weights; for a kinked activation, redrawn until every pre-activation is
        at least KINK_MARGIN from 0."""
        for _ in range(1000):
            x = rng.normal(size=_mlp_size(self.n_out)) * 0.8
            if not self.kink or np.min(np.abs(self._forward(x)[4])) >= KINK_MARGIN:
                return x
        raise RuntimeError("no point clear of the kink")  # pragma: no cover

    def entries(self):
        """Where the bug acts, in x's flat entries: W1 and b1, or the W2 block."""
        i, h = MLP_IN, MLP_HIDDEN
        if self.bug == "drop dW2 term":
            return slice(i * h + h, i * h + h + h * self.n_out)
        return slice(0, i * h + h)


def _tanh1(a):
    return 1 - np.tanh(a) ** 2


def _tanh2(a):
    t = np.tanh(a)
    return -2 * t * (1 - t**2)


def _sigmoid1(a):
    s = _sigmoid(a)
    return s * (1 - s)


def _sigmoid2(a):
    s = _sigmoid(a)
    return s * (1 - s) * (1 - 2 * s)


def _softplus(a):
    return np.logaddexp(0.0, a)


def _relu2(a):
    return np.maximum(a, 0.0) ** 2


MLPS = {
    "mlp_tanh": (_Mlp(np.tanh, _tanh1, _tanh2, "mse", "act2 at output"),
                 "wrong point", "tanh'' evaluated at the output h = tanh(a1), not at a1"),
    "mlp_sigmoid": (_Mlp(_sigmoid, _sigmoid1, _sigmoid2, "mse", "drop dW2 term"),
                    "dropped term", "R{dW2} = h^T R{dz}: the product rule's R{h}^T dz dropped"),
    "mlp_softplus_xent": (_Mlp(_softplus, _sigmoid, _sigmoid1, "xent", "act2 sign"),
                          "sign", "the act'' term of R{da1} subtracted"),
    "mlp_relu2": (_Mlp(_relu2, lambda a: 2 * np.maximum(a, 0.0), lambda a: 2.0 * (a > 0),
                       "mse", "act2 function", bad_act2=lambda a: 1.0 * (a > 0), kink=True),
                  "missing factor", "relu^2'' = 2 [a > 0] taken as [a > 0]"),
}


def _normal(shape):
    return lambda rng: rng.normal(size=shape)


HVPS: dict[str, HvpEntry] = {
    e.name: e for e in [
        HvpEntry("softmax_xent", xent_f, xent_grad, xent_hvp, xent_buggy,
                 "softmax's Jacobian taken diagonal: -p p^T dropped", "dropped term",
                 _normal((4, 3))),
        HvpEntry("logistic", logistic_f, logistic_grad, logistic_hvp, logistic_buggy,
                 "the mean's 1/n missing", "missing factor", _normal(5)),
        HvpEntry("log_sum_exp", lse_f, lse_grad, lse_hvp, lse_buggy,
                 "p v + p (p.v): the rank-one term's sign", "sign", _normal(6)),
        HvpEntry("rosenbrock", rosenbrock_f, rosenbrock_grad, rosenbrock_hvp, rosenbrock_buggy,
                 "H_ii without -400 (x_{i+1} - x_i^2)", "dropped term",
                 lambda rng: rng.uniform(-1.2, 1.2, size=6), bug_entries=slice(0, 5)),
        HvpEntry("ridge", ridge_f, ridge_grad, ridge_hvp, ridge_buggy,
                 "lam v instead of 2 lam v", "missing factor", _normal(5),
                 bug_entries=slice(0, 4)),
        HvpEntry("gauss_newton", gn_f, gn_grad, gn_hvp, gn_buggy,
                 "J^T J v: the residual's curvature r t'' dropped", "dropped term",
                 _normal(4)),
        HvpEntry("quartic", quartic_f, quartic_grad, quartic_hvp, quartic_buggy,
                 "x (x.v) instead of 2 x (x.v)", "missing factor", _normal(5)),
        *(HvpEntry(name, mlp.f, mlp.grad, mlp.hvp, mlp.buggy, bug, cls, mlp.make_x,
                   bug_entries=mlp.entries())
          for name, (mlp, cls, bug) in MLPS.items()),
    ]
}


# ---------------------------------------------------------------------------------------------
# Double backwards of a dense layer y = act(x w + b)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Act:
    """An activation as the dense layer needs it: f (array-API), the same in plain numpy, f'
    and f'' (numpy)."""

    f: Callable
    np_f: Callable
    d1: Callable
    d2: Callable


def _xp_tanh(v):
    return _xp(v).tanh(v)


def _xp_sigmoid(v):
    return 1.0 / (1.0 + _xp(v).exp(-v))


def _xp_relu(v):
    return _xp(v).maximum(v, 0.0)


def _xp_softplus(v):
    return _xp(v).logaddexp(0.0, v)


ACTS = {
    "tanh": _Act(_xp_tanh, np.tanh, _tanh1, _tanh2),
    "sigmoid": _Act(_xp_sigmoid, _sigmoid, _sigmoid1, _sigmoid2),
    "relu": _Act(_xp_relu, lambda v: np.maximum(v, 0.0), lambda v: 1.0 * (v > 0),
                 lambda v: 0.0 * v),
    "softplus": _Act(_xp_softplus, _softplus, _sigmoid, _sigmoid1),
}


def _dense(act: _Act, bug: str | None):
    def forward(x, w, b):
        return act.f(x @ w + b)

    def numpy_forward(x, w, b):
        return act.np_f(x @ w + b)

    def backward(dout, x, w, b):
        dv = dout * act.d1(x @ w + b)
        return dv @ w.T, x.T @ dv, dv.sum(axis=0)

    def double_backward(dd, dout, x, w, b, bug=None):
        """phi = <ddx, dv w^T> + <ddw, x^T dv> + <ddb, sum dv>, dv = dout act'(v), v = x w + b:
        G = d phi / d dv = ddx w + x ddw + ddb; Q = d phi / d v = G dout act''(v);
        d dout = G act'(v); dx = dv ddw^T + Q w^T; dw = ddx^T dv + x^T Q; db = sum Q."""
        ddx, ddw, ddb = dd
        v = x @ w + b
        s = act.d1(v)
        dv = dout * s
        g = ddx @ w + x @ ddw + ddb
        if bug == "drop":
            q = np.zeros_like(v)
        elif bug == "at output":
            q = g * dout * act.d2(act.f(v))
        else:
            q = g * dout * act.d2(v)
        return g * s, dv @ ddw.T + q @ w.T, ddx.T @ dv + x.T @ q, q.sum(axis=0)

    def buggy(dd, dout, x, w, b):
        return double_backward(dd, dout, x, w, b, bug=bug)

    return forward, numpy_forward, backward, double_backward, buggy


def _dense_inputs(kink: bool):
    def make(rng):
        for _ in range(1000):
            x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)) * 0.7, rng.normal(size=2)
            if not kink or np.min(np.abs(x @ w + b)) >= KINK_MARGIN:
                return x, w, b
        raise RuntimeError("no point clear of the kink")  # pragma: no cover

    return make


# ---------------------------------------------------------------------------------------------
# Double backwards of layernorm (axis 1) and batchnorm (axis 0): y = xhat * gamma + beta
# ---------------------------------------------------------------------------------------------

NORM_EPS = 1e-5


def _norm(axis: int, bug: str | None):
    def forward(x, gamma, beta):
        xp = _xp(x, gamma, beta)
        mu = xp.mean(x, axis=axis, keepdims=True)
        var = xp.mean((x - mu) ** 2, axis=axis, keepdims=True)
        return (x - mu) / xp.sqrt(var + NORM_EPS) * gamma + beta

    def numpy_forward(x, gamma, beta):
        mu = np.mean(x, axis=axis, keepdims=True)
        var = np.mean((x - mu) ** 2, axis=axis, keepdims=True)
        return (x - mu) / np.sqrt(var + NORM_EPS) * gamma + beta

    def _stats(x):
        mu = x.mean(axis=axis, keepdims=True)
        sd = np.sqrt(((x - mu) ** 2).mean(axis=axis, keepdims=True) + NORM_EPS)
        return (x - mu) / sd, sd

    def _project(a, xhat, sd):
        """The backward of xhat: (a - mean a - xhat mean(a xhat)) / sd (self-adjoint)."""
        return (a - a.mean(axis=axis, keepdims=True)
                - xhat * (a * xhat).mean(axis=axis, keepdims=True)) / sd

    def backward(dout, x, gamma, beta):
        xhat, sd = _stats(x)
        return (_project(dout * gamma, xhat, sd), (dout * xhat).sum(axis=0),
                dout.sum(axis=0))

    def double_backward(dd, dout, x, gamma, beta, bug=None):
        """phi = <a, dx> + <c, sum dout xhat> + <e, sum dout>, dx = P(g), g = dout gamma,
        P(g) = (g - mean g - xhat m2) / sd, m2 = mean(g xhat):
        d phi / d g = P(a) (P is self-adjoint); d dout = P(a) gamma + c xhat + e;
        d gamma = sum P(a) dout; d beta = 0;
        through xhat (g, sd fixed): Gx = -(m2 a + mean(a xhat) g) / sd + c dout;
        through sd (xhat, g fixed): Gs = -sum(a dx) / sd;
        and x -> (xhat, sd): dx = P(Gx) + Gs xhat / D (d sd / d x = xhat / D)."""
        a, c, e = dd
        xhat, sd = _stats(x)
        n = x.shape[axis]
        g = dout * gamma
        pa = _project(a, xhat, sd)
        m2 = (g * xhat).mean(axis=axis, keepdims=True)
        k = (a * xhat).mean(axis=axis, keepdims=True)
        c_term = -c * dout if bug == "sign" else c * dout
        gx = -(m2 * a + k * g) / sd + c_term
        gs = -(a * _project(g, xhat, sd)).sum(axis=axis, keepdims=True) / sd
        d_x = _project(gx, xhat, sd) + (gs * xhat if bug == "factor" else gs * xhat / n)
        return (pa * gamma + c * xhat + e, d_x, (pa * dout).sum(axis=0), np.zeros_like(beta))

    def buggy(dd, dout, x, gamma, beta):
        return double_backward(dd, dout, x, gamma, beta, bug=bug)

    return forward, numpy_forward, backward, double_backward, buggy


def _norm_inputs(shape):
    def make(rng):
        x = rng.normal(size=shape) * 1.5 + 0.3
        return x, 1.0 + 0.5 * rng.normal(size=shape[1]), rng.normal(size=shape[1])

    return make


DOUBLE_BACKWARDS: dict[str, DoubleBackwardEntry] = {
    e.name: e for e in [
        DoubleBackwardEntry("dense_tanh", *_dense(ACTS["tanh"], "drop"),
                            "the act'' term Q dropped (the issue's example)", "dropped term",
                            ("x", "w", "b"), _dense_inputs(False)),
        DoubleBackwardEntry("dense_sigmoid", *_dense(ACTS["sigmoid"], "at output"),
                            "sigmoid'' taken at y = sigmoid(v), not at v", "wrong point",
                            ("x", "w", "b"), _dense_inputs(False)),
        DoubleBackwardEntry("dense_relu", *_dense(ACTS["relu"], "drop"),
                            "the act'' term dropped: invisible, relu'' = 0 off the kink",
                            "dropped term", (), _dense_inputs(True)),
        DoubleBackwardEntry("dense_softplus", *_dense(ACTS["softplus"], "at output"),
                            "softplus'' taken at y = softplus(v), not at v", "wrong point",
                            ("x", "w", "b"), _dense_inputs(False)),
        DoubleBackwardEntry("layernorm", *_norm(1, "factor"),
                            "d sd / d x = xhat / D without the 1/D", "missing factor", ("x",),
                            _norm_inputs((3, 5))),
        DoubleBackwardEntry("batchnorm", *_norm(0, "sign"),
                            "the d gamma cotangent's path through xhat subtracted", "sign",
                            ("x",), _norm_inputs((6, 3))),
    ]
}

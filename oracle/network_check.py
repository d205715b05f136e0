"""``check_network``: every link of a network's hand-derived chain rule, checked and located.

Two scopes of check, both three-way (hand vs JAX vs finite differences):

- **local**: each term on its own, given the hand-derived value it receives from above, so an
  error shows up only where it is made: the loss derivative dE/dY (or dE/dV for a fused
  softmax/sigmoid loss), each layer's activation backward ``dE/dV = G act'(V)`` (softmax: its
  VJP), each layer's ``dE/dW = X~^T dE/dV`` and the ``dE/dX = dE/dV W^T`` it passes back.
- **total**: the end-to-end gradients dE/dW of every layer and dE/dX of every layer's input.

Rows come in backward order (loss, then layer L-1 down to 0, local before total), and the
report's headline names the first failing local term: a wrong derivative in one place is
reported there, and the totals it spoils downstream say they follow from it.

Optionally (``check_step=True``) one SGD step on a copy of the network is checked against
``W - lr dE/dW`` with JAX's gradient, which catches update bugs (sign errors, weights updated
before dE/dX is computed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from reference import Network
from reference.passes import Trace

from . import autodiff, network_fd
from .finite_differences import EPS
from .jax_support import UntraceableError
from .report import Report, Row
from .verdict import FAIL, EntryVerdicts, judge

__all__ = ["check_network"]

MAX_EXHAUSTIVE = 50_000
"""Default: check every entry by finite differences when a term has at most this many."""


def _try_jax(fn, *args, notes: list[str], what: str, **kwargs):
    try:
        return fn(*args, **kwargs)
    except UntraceableError as exc:
        notes.append(f"JAX could not trace {what} ({exc}); checked by finite differences alone")
        return None


def _shape_row(layer: int | None, term: str, got: object, shape: tuple) -> Row | None:
    got_shape = np.shape(got) if got is not None else None
    if got_shape == shape:
        return None
    return Row(layer, term, "local", (), FAIL, float("inf"), float("inf"), 0.0, (),
               float("nan"), float("nan"),
               note=f"wrong shape: the hand-derived backward gave {got_shape}, expected {shape}")


def _hand_trace(net: Network, x: np.ndarray, t: np.ndarray) -> Trace | Row:
    try:
        return net._trace(x, t, need_input_grad=True)
    except Exception as exc:  # a broken hand backward is a verdict, not a crash
        return Row(None, "backward", "total", (), FAIL, float("inf"), float("inf"), 0.0, (),
                   float("nan"), float("nan"),
                   note=f"the hand-derived backward raised {type(exc).__name__}: {exc}")


def _directions(shape: tuple, count: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.normal(size=(count, *shape))
    norms = np.sqrt(np.sum(u.reshape(count, -1) ** 2, axis=1))
    return u / norms.reshape(count, *([1] * len(shape)))


def _directional(
    got: np.ndarray, ad: np.ndarray | None, fd, directions: np.ndarray
) -> EntryVerdicts:
    axes = tuple(range(1, directions.ndim))
    proj = lambda a: np.sum(directions * a[None], axis=axes)  # noqa: E731
    scale = float(np.sqrt(np.sum((ad if ad is not None else got) ** 2)))
    return judge(proj(got), None if ad is None else proj(ad), fd, scale=scale)


def check_network(
    net: Network,
    X: np.ndarray,
    T: np.ndarray,
    *,
    strict: bool = False,
    fd: str = "auto",
    directions: int = 8,
    max_exhaustive: int = MAX_EXHAUSTIVE,
    check_step: bool = True,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """Check every term of ``net``'s hand-derived backward pass at ``(X, T)``.

    Args:
        net: the network (its ``trace`` method supplies every hand-derived term).
        X: inputs ``(B, *in_shape)``; T: targets valid for the network's loss.
        strict: count "doubt" rows as failures.
        fd: "auto" (exhaustive up to ``max_exhaustive`` entries per term, else random
            directions), "exhaustive", "directional" or "none".
        directions: how many random unit directions a directional check uses (seeded).
        check_step: also check one SGD step (eq 10) on a copy of the network.
        seed: seeds the random directions.
        progress: called as ``progress(what, done, total)`` during exhaustive checks.

    Returns:
        A ``Report``; ``report.ok`` is False exactly when some term FAILs.

    Raises:
        ValueError, TypeError: bad X or T (the reference's own validation), or a forward pass
            that produces NaN/Inf.
    """
    if fd not in ("auto", "exhaustive", "directional", "none"):
        raise ValueError(f"fd must be 'auto', 'exhaustive', 'directional' or 'none', got {fd!r}")
    x = net._inputs(X)
    t = net._targets(T, x.shape[0])
    weights = [w.copy() for w in net._checked_weights()]
    acts, loss = net.activations, net.loss_function
    n_layers = len(weights)
    rows: list[Row] = []
    notes: list[str] = []
    rng = np.random.default_rng(seed)

    trace = _hand_trace(net, x, t)
    if isinstance(trace, Row):
        return Report([trace], strict=strict, title="network check", notes=notes)
    for k, y in enumerate(trace.ys):
        if not np.all(np.isfinite(y)):
            raise ValueError(f"the network's forward pass produces NaN/Inf at layer {k} output")
    if not np.isfinite(trace.loss):
        raise ValueError(f"the network's loss is not finite ({trace.loss}) at these inputs")

    def use_fd(size: int) -> str:
        if fd == "auto":
            return "exhaustive" if size <= max_exhaustive else "directional"
        return fd

    # ---- local terms, in backward order -----------------------------------------------------
    last = n_layers - 1
    v_last, y_last = trace.vs[last], trace.ys[last]
    if loss.fused:
        got = trace.dvs[last]
        ad = _try_jax(autodiff.loss_grad, loss, v_last, t, from_v=True, notes=notes,
                      what=f"loss {loss.name!r}")
        est = network_fd.loss_fd(loss, v_last, t, from_v=True) if fd != "none" else None
        rows.append(Row.from_verdicts(last, "loss", "local", judge(got, ad, est),
                                      name=f"{loss.name}+{acts[last].name}",
                                      note="dE/dV of the loss and its output activation together"))
    else:
        got = trace.gs[last]
        bad = _shape_row(last, "loss", got, y_last.shape)
        if bad:
            rows.append(bad)
        else:
            ad = _try_jax(autodiff.loss_grad, loss, y_last, t, notes=notes,
                          what=f"loss {loss.name!r}")
            est = network_fd.loss_fd(loss, y_last, t) if fd != "none" else None
            rows.append(Row.from_verdicts(last, "loss", "local", judge(got, ad, est),
                                          name=loss.name))

    for k in range(last, -1, -1):
        act, v, y = acts[k], trace.vs[k], trace.ys[k]
        # activation: dE/dV from the G this layer received
        if not (k == last and loss.fused):
            g = trace.gs[k]
            bad = _shape_row(k, "activation", trace.dvs[k], v.shape) or _shape_row(
                k, "activation", g, v.shape)
            if bad:
                rows.append(bad)
            else:
                rows.append(_activation_row(k, act, v, y, g, trace.dvs[k], fd, notes))
        else:  # the fused output layer: check the activation alone with a random upstream
            g = rng.normal(size=v.shape)
            rows.append(_activation_row(k, act, v, y, g, act.backward(v, y, g), fd, notes,
                                        note="fused with the loss; checked alone with a random "
                                             "upstream dE/dY"))
        # dW and dX, local: from this layer's hand dE/dV
        dv = trace.dvs[k]
        for term, got, shape in (("dW", trace.dws[k], weights[k].shape),
                                 ("dX", _passed_back(trace, k), trace.xs[k].shape)):
            bad = _shape_row(k, term, got, shape) or _shape_row(k, "activation", dv, v.shape)
            if bad:
                rows.append(bad)
                continue
            ref_dx, ref_dw = autodiff.dense_vjp(trace.xs[k], weights[k], dv)
            ref = ref_dw if term == "dW" else ref_dx
            note = "what layer k-1 received as dE/dY" if term == "dX" and k > 0 else ""
            rows.append(Row.from_verdicts(k, term, "local", judge(got, ref), note=note))

    # ---- totals -----------------------------------------------------------------------------
    totals = _try_jax(autodiff.network_grads, weights, x, t, acts, loss, notes=notes,
                      what="the network's forward")
    ad_dw, ad_dx = totals if totals is not None else (None, None)
    for k in range(last, -1, -1):
        for term in ("dW", "dX"):
            got = trace.dws[k] if term == "dW" else _passed_back(trace, k)
            shape = weights[k].shape if term == "dW" else trace.xs[k].shape
            if _shape_row(k, term, got, shape):
                continue  # already reported as a wrong shape
            ad = None if totals is None else (ad_dw[k] if term == "dW" else ad_dx[k])
            mode = use_fd(int(np.prod(shape)))
            if ad is None and mode == "none":
                continue
            if mode == "directional":
                u = _directions(shape, directions, rng)
                est = network_fd.directional_fd(weights, trace.xs, trace.vs, t, acts, loss, k,
                                                u, wrt=term[1])
                verdicts = _directional(got, ad, est, u)
                note = f"finite differences along {directions} random unit directions"
            else:
                est = None
                if mode == "exhaustive":
                    if term == "dW":
                        total = int(np.prod(shape))
                        cb = (lambda done, k=k, n=total:
                              progress(f"layer {k} dW", done, n)) if progress else None
                        est = network_fd.weight_fd(weights, trace.xs, trace.vs, trace.ys, t,
                                                   acts, loss, k, progress=cb)
                    else:
                        est = network_fd.input_fd(weights, trace.xs, t, acts, loss, k)
                verdicts = judge(got, ad, est)
                note = ""
            rows.append(Row.from_verdicts(k, term, "total", verdicts, note=note))

    if check_step:
        rows.extend(_step_rows(net, X, T, weights, trace, ad_dw))

    _annotate_symptoms(rows)
    return Report(rows, strict=strict, title="network check", notes=notes)


def _passed_back(trace: Trace, k: int) -> np.ndarray | None:
    """dE/dX of layer k as it was actually passed on: what layer k-1 received, if any."""
    if k > 0 and trace.gs[k - 1] is not None:
        return trace.gs[k - 1]
    return trace.dxs[k]


def _activation_row(k, act, v, y, g, got, fd, notes, note: str = "") -> Row:
    ad = _try_jax(autodiff.activation_vjp, act, v, g, notes=notes,
                  what=f"activation {act.name!r}")
    est, deriv = network_fd.activation_fd(act, v, g) if fd != "none" else (None, None)
    if ad is None and est is None:
        est, deriv = network_fd.activation_fd(act, v, g)
    verdicts = judge(got, ad, est)
    row = Row.from_verdicts(k, "activation", "local", verdicts, name=act.name, note=note)
    if row.index and act.elementwise:
        row.at = float(v[row.index])
        # Report the derivative itself at the worst entry (got/expected of act'(v)).
        gi = g[row.index]
        if gi != 0:
            row.got = float(got[row.index] / gi)
            if ad is not None:
                row.expected = float(ad[row.index] / gi)
            elif deriv is not None:
                row.expected = float(deriv.value[row.index])
    return row


def _step_rows(net, X, T, weights, trace: Trace, ad_dw) -> list[Row]:
    """One SGD step on a copy: each W_k must move by exactly -lr dE/dW_k (eq 10)."""
    reference = ad_dw if ad_dw is not None else trace.dws
    scale = max(float(np.max(np.abs(d), initial=0)) for d in reference)
    size = max(float(np.max(np.abs(w), initial=0)) for w in weights)
    lr = 1e-2 * max(size, 1.0) / scale if scale > 0 else 1e-2
    clone = copy.deepcopy(net)
    rows = []
    try:
        clone.step(X, T, lr)
    except Exception as exc:
        return [Row(None, "step", "total", (), FAIL, float("inf"), float("inf"), 0.0, (),
                    float("nan"), float("nan"),
                    note=f"step raised {type(exc).__name__}: {exc}")]
    for k, (w_old, w_new, g) in enumerate(zip(weights, clone.weights, reference)):
        moved = w_new - w_old
        expected = -lr * g
        verdicts = judge(moved, expected)
        # Subtracting two weights of size |W| loses up to eps |W| per entry: add it.
        rounding = 4 * EPS * (np.abs(w_old) + np.abs(w_new))
        verdicts.tolerance = verdicts.tolerance + rounding
        ok = verdicts.error <= verdicts.tolerance
        verdicts.status = np.where(ok, "pass", FAIL).astype(object)
        rows.append(Row.from_verdicts(k, "step", "total", verdicts,
                                      note=f"W_new - W_old vs -lr dE/dW with lr={lr:.3g}"))
    return rows[::-1]


def _annotate_symptoms(rows: list[Row]) -> None:
    """Mark failing totals that follow from an earlier failing local term."""
    first = next((r for r in rows if r.status == FAIL and r.scope == "local"), None)
    if first is None:
        return
    for r in rows:
        if r.status == FAIL and r is not first and r.scope == "total":
            r.note = "; ".join(filter(None, [r.note, f"follows from {first.where}"]))

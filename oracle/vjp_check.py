"""``check_vjp``: any hand-derived backward pass, checked input by input and entry by entry.

    report = check_vjp(affine_forward, affine_backward, (x, w, b))
    report.ok                      # False exactly when some entry is wrong
    print(report)                  # which input, which entry (in its own shape), how many
    report.wrong_entries("w")      # every wrong entry of w

The checked quantity is the vector-Jacobian product: ``backward(c, *inputs)`` must return the
gradient of ``<c, forward(*inputs)>`` with respect to each differentiable input, for a cotangent
``c`` of forward's output structure (random and seeded when not given; 1.0 for a scalar output).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .arguments import Arguments, Output, cotangent_for, hand_gradients
from .engine import JAX_MODES, MAX_EXHAUSTIVE, judge_vjp, validate_gradient
from .jax_support import collector_paused
from .report import Report, Row

__all__ = ["check_vjp"]

FD_MODES = ("auto", "exhaustive", "directional", "none")
COTANGENT_STREAM = 0x7A5E_ED00


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _same(a: Output, b: Output) -> bool:
    return a.kind == b.kind and len(a.arrays) == len(b.arrays) and all(
        (x is None and y is None) or (x is not None and y is not None and x.shape == y.shape
                                      and np.array_equal(x, y, equal_nan=True))
        for x, y in zip(a.arrays, b.arrays))


@collector_paused
def check_vjp(
    forward: Callable[..., object],
    backward: Callable[..., object],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    cotangent: object = None,
    wrt: str | int | Sequence[str | int] | None = None,
    jax: bool | str = True,
    fd: str = "auto",
    max_exhaustive: int = MAX_EXHAUSTIVE,
    directions: int = 8,
    seed: int = 0,
    strict: bool = False,
) -> Report:
    """Check a hand-derived ``backward`` against JAX and finite differences of ``forward``.

    Args:
        forward: ``forward(*inputs)`` (``forward(**inputs)`` for a dict) -> an array, a number,
            or a tuple of arrays. numpy, jax.numpy or array-API code; it must be deterministic.
        backward: ``backward(cotangent, *inputs)`` (keywords for a dict) -> the gradient of
            ``<cotangent, forward(inputs)>`` with respect to each differentiable input: a tuple
            in input order (one entry per input, or per differentiable input), a dict by name,
            or one array when there is one differentiable input. Shapes as the inputs.
        inputs: a tuple of arrays (passed positionally) or a dict of named arrays (passed as
            keywords). Floating arrays are differentiable; integer/bool arrays (labels, ids,
            masks) and other objects are constants. The caller's arrays are never changed: the
            user's code always gets copies.
        cotangent: the upstream gradient, shaped like forward's output (a tuple for a tuple);
            None draws standard normal entries (seeded by ``seed``), or 1.0 for a scalar output.
        wrt: the inputs to check (names or positions); default every differentiable one.
        jax: True: JAX differentiates forward as it is, or else its numpy code run on JAX arrays
            (``oracle.numpy_on_jax``); "direct": as it is only; False: leave JAX out (finite
            differences alone). The headline says which sources judged.
        fd: "auto" (with JAX: every entry against JAX, finite differences along ``directions``
            random directions to confirm JAX and on every entry where hand and JAX disagree;
            without JAX: a stencil per entry up to ``max_exhaustive`` entries, else random
            directions), "exhaustive" (a stencil per entry always), "directional" or "none"
            (JAX alone).
        directions: random unit directions per input in directional mode.
        seed: seeds the cotangent and the directions.
        strict: count doubt as failure.

    Returns:
        A ``Report`` with one row per checked input: ``report.ok``, ``str(report)``,
        ``report.row(name)`` (``.wrong`` counts the wrong entries, ``.mask`` marks them),
        ``report.wrong_entries(name)``.

    Raises:
        TypeError, ValueError: inputs, cotangent or options of the wrong form (the message
            names the argument); a forward that raises, is not finite or not deterministic at
            the inputs. What backward does wrong (raises, wrong form or shape) is a FAIL row.
    """
    if fd not in FD_MODES:
        raise ValueError(f"fd must be one of {FD_MODES}, got {fd!r}")
    if not any(jax is m and isinstance(jax, bool) or jax == m and isinstance(m, str)
               for m in JAX_MODES):
        raise ValueError(f"jax must be True, False or 'direct', got {jax!r}")
    if jax is False and fd == "none":
        raise ValueError("jax=False with fd='none' leaves no source of truth")
    max_exhaustive = _positive_int(max_exhaustive, "max_exhaustive")
    directions = _positive_int(directions, "directions")
    if not callable(forward) or not callable(backward):
        raise TypeError("forward and backward must be callables, got "
                        f"{type(forward).__name__} and {type(backward).__name__}")

    args = Arguments.of(forward, inputs)
    wrt_pos = args.positions(wrt)
    notes: list[str] = []
    low = [args.names[i] for i in wrt_pos if args.dtypes[i] != np.float64]
    if low:
        message = (f"inputs {low} are not float64: they are checked in float64 (upcast "
                   "copies); lower precision makes finite differences meaningless")
        warnings.warn(message, UserWarning, stacklevel=2)
        notes.append(message)

    values = []
    for _ in range(2):
        try:
            with np.errstate(all="ignore"):
                values.append(args.call(forward))
        except Exception as exc:  # the user's code: said as such, TypeError kept a TypeError
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(f"forward raised {type(exc).__name__} at the given inputs: {exc}"
                       ) from exc
    output, again = Output.of(values[0]), Output.of(values[1])
    for j, a in enumerate(output.arrays):
        if a is not None and not np.all(np.isfinite(a)):
            raise ValueError(f"forward's output{f' [{j}]' if output.kind == 'tuple' else ''} "
                             "is not finite at the given inputs")
    if not _same(output, again):
        raise ValueError("forward is not deterministic: two calls at the same inputs gave "
                         "different outputs; pass its randomness (a dropout mask, a seed) as an "
                         "input or fix it, or finite differences would measure noise")

    # The cotangent's generator mixes the seed with a constant: a cotangent drawn from the same
    # stream as the caller's inputs (both default_rng(0)) can fall exactly in a structured
    # subspace (a batchnorm's cotangent affine in x), where a wrong backward looks right.
    rng = np.random.default_rng((COTANGENT_STREAM, seed))
    flat_cot, handed, how = cotangent_for(output, cotangent, rng)
    notes.append(f"cotangent: {how}" + (f", seed {seed}" if cotangent is None and
                                        output.kind != "scalar" else ""))

    rows: list[Row] = []
    hand: dict[int, np.ndarray] = {}
    try:
        with np.errstate(all="ignore"):
            result = args.call(backward, handed)
        mapped = hand_gradients(args, result)
    except Exception as exc:
        why = (str(exc) if isinstance(exc, ValueError) and "backward returned" in str(exc)
               else f"backward raised {type(exc).__name__}: {exc}")
        rows.append(Row.broken(None, "backward", "total", why))
        return Report(rows, strict=strict, title="vjp check", notes=notes)
    for i in wrt_pos:
        name = args.names[i]
        got = validate_gradient(mapped.get(i), args.values[i].shape, name)
        if isinstance(got, str):
            rows.append(Row.broken(None, f"d{name}", "total", got, input=name))
        else:
            hand[i] = got
    judged_by = ""
    if hand:
        judged, more, judged_by = judge_vjp(forward, args, output, flat_cot, hand, fd=fd,
                                            jax=jax, max_exhaustive=max_exhaustive,
                                            directions=directions, rng=rng)
        rows.extend(judged)
        notes.extend(more)
        rows.sort(key=lambda r: args.names.index(r.input))  # input order
    return Report(rows, strict=strict, title="vjp check", notes=notes, judged_by=judged_by)

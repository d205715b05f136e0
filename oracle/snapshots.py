"""Regression snapshots of a hand-derived backward: a few numbers per input, kept in your repo.

    result = compare_snapshot("gradient_snapshots/dense.json", dense_forward, dense_backward,
                              (x, w, b))          # update=True (re)records it
    result.ok, print(result)                      # which input drifted, and by how much

**What is recorded** (a small JSON text file, meant to be committed): at your inputs, for each of
``pairs`` seeded cotangents ``c_j`` (shaped like forward's output; 1.0 for a scalar output) and,
per differentiable input, a seeded unit direction ``u_j``:

- the fingerprint ``u_j^T J^T c_j = <u_j, backward(c_j, inputs)[input]>`` and the gradient's
  norm ``||backward(c_j, inputs)[input]||``;
- ``<c_j, forward(inputs)>``, to tell a changed forward (which changes the gradient for a
  reason) from a changed backward;
- the inputs' names, dtypes, shapes and a SHA-256 of their bytes (a snapshot compared at other
  points says nothing);
- the oracle's verdict when it was recorded (``check_vjp``'s headline: which sources judged).

**What is compared**: the fingerprints, recomputed from your backward alone. No JAX and no finite
differences take part, so a snapshot catches a regression where JAX cannot trace your forward and
where finite differences are too weak to see it (a change of 1e-7 relative is far below what a
stencil resolves in a forward computed with any rounding noise). An input *drifts* when a
fingerprint or the norm moves by more than ``rtol`` times the recorded norm.

**Why rtol = 1e-9** (relative to the gradient's norm): a backward recomputed on another machine
(another BLAS, another summation order) moves by rounding only, a few ulps of its terms, ~1e-15
relative for a well-conditioned gradient and rarely beyond 1e-12 even where terms cancel; a
regression worth catching (a dropped term, a wrong constant, a changed epsilon) moves it by far
more than 1e-9. A change of 1e-7 relative in one input's gradient is caught with a margin of
100.

**No JAX needed to compare**: this module imports numpy and ``oracle.arguments`` only
(``oracle.engine``, whose checks need JAX, is imported only to record with ``check=True``), so
a CI job without JAX can compare snapshots that a machine with JAX recorded.

**Updating is explicit**: ``update=True``, or ``ORACLE_UPDATE_SNAPSHOTS=1`` in the environment
(``pytest --gradcheck-update-snapshots`` with the plugin). Recording runs ``check_vjp`` first and
refuses to record a gradient the oracle says is wrong. Without update, a missing snapshot is a
failure that says how to record it (a snapshot never silently records itself in CI).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import Arguments, Output, cotangent_for, hand_gradients

__all__ = [
    "PAIRS",
    "RTOL",
    "Drift",
    "SnapshotMismatch",
    "SnapshotResult",
    "compare_snapshot",
    "fingerprints",
    "read_snapshot",
]

FORMAT = 1
PAIRS = 3
"""Cotangent/direction pairs per input: three numbers and three norms per input."""
RTOL = 1e-9
"""Drift tolerance, relative to the recorded gradient's norm (see the module docstring)."""
STREAM = 0x5A4A_5107
"""Mixed into the seed, so the snapshot's draws differ from a check's with the same seed."""
UPDATE_ENV = "ORACLE_UPDATE_SNAPSHOTS"


class SnapshotMismatch(AssertionError):
    """A snapshot did not match; ``str()`` says which input drifted and by how much."""

    def __init__(self, result: SnapshotResult) -> None:
        self.result = result
        super().__init__(str(result))


@dataclass
class Drift:
    """One fingerprint that moved.

    Attributes:
        input: the input's name ("forward" for ``<c_j, forward(inputs)>``).
        what: "norm j" or "u_j.g" (pair ``j``, counted from 1).
        recorded, now: its value in the file and now.
        scale: what the change is relative to (the recorded norm, or ``<|c|, |f|>``).
    """

    input: str
    what: str
    recorded: float
    now: float
    scale: float

    @property
    def relative(self) -> float:
        gap = abs(self.now - self.recorded)
        if gap == 0:
            return 0.0
        return gap / self.scale if self.scale > 0 else float("inf")


@dataclass
class SnapshotResult:
    """The outcome of ``compare_snapshot``.

    Attributes:
        path: the snapshot file.
        status: "match", "recorded", "drift", "missing", "changed" (other inputs or forward
            output structure: the snapshot cannot be compared) or "refused" (update asked for,
            but the oracle says the gradient is wrong).
        drifts: every fingerprint that moved beyond ``rtol`` (all inputs, all pairs).
        rtol: the tolerance used.
        verdict: the oracle's verdict stored with the snapshot (or just given, when recorded).
        detail: why, for "missing", "changed" and "refused".
    """

    path: Path
    status: str
    drifts: list[Drift] = field(default_factory=list)
    rtol: float = RTOL
    verdict: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("match", "recorded")

    def __bool__(self) -> bool:
        return self.ok

    def drifted(self) -> dict[str, float]:
        """The inputs that drifted and by how much (largest relative change), in file order."""
        out: dict[str, float] = {}
        for d in self.drifts:
            out[d.input] = max(out.get(d.input, 0.0), d.relative)
        return out

    @property
    def headline(self) -> str:
        where = f"[{self.path}]"
        if self.status == "match":
            return f"OK: the gradients match their snapshot {where}"
        if self.status == "recorded":
            return f"RECORDED: snapshot written {where}"
        if self.status != "drift":
            return f"SNAPSHOT {self.status.upper()}: {self.detail} {where}"
        moved = self.drifted()
        grads = [f"{name} drifted by {rel:.1e} relative" for name, rel in moved.items()
                 if name != "forward"]
        parts = ([f"the forward changed ({moved['forward']:.1e} relative)"]
                 if "forward" in moved else []) + grads
        return (f"SNAPSHOT DRIFT: {'; '.join(parts)} (tolerance {self.rtol:.0e} of the "
                f"gradient's norm) {where}")

    def __str__(self) -> str:
        lines = [self.headline]
        if self.drifts:
            table = [("input", "fingerprint", "recorded", "now", "relative")]
            table += [(d.input, d.what, repr(d.recorded), repr(d.now), f"{d.relative:.1e}")
                      for d in self.drifts]
            widths = [max(len(row[i]) for row in table) for i in range(5)]
            for i, row in enumerate(table):
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
                if i == 0:
                    lines.append("  " + "  ".join("-" * w for w in widths))
            moved = self.drifted()
            if "forward" in moved:
                lines.append("  the forward's output changed too: a changed forward changes "
                             "its gradient; if both changes are intended, re-record")
            else:
                lines.append("  the forward is unchanged, so the hand-derived backward changed")
        if self.verdict:
            lines.append(f"  recorded verdict: {self.verdict}")
        if self.status in ("drift", "missing", "changed"):
            lines.append(f"  to re-record on purpose: update=True, {UPDATE_ENV}=1, or pytest "
                         "--gradcheck-update-snapshots; then commit the file")
        return "\n".join(lines)


# --- fingerprints ------------------------------------------------------------------------------


def _gradient(value: object, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The hand-derived gradient of input ``name`` as a float array (``oracle.engine``'s
    ``validate_gradient``, restated here because importing the engine imports JAX).

    Raises:
        ValueError: no gradient, not a real array, or not shaped like the input.
    """
    if value is None:
        raise ValueError(f"backward returned None for input {name!r}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # an object numpy cannot read
        raise ValueError(f"backward's gradient of {name!r} is not an array "
                         f"({type(exc).__name__}: {exc})") from None
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.floating)
                                    or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"backward's gradient of {name!r} has dtype {arr.dtype}, expected a "
                         "float array")
    if arr.shape != shape:
        raise ValueError(f"wrong shape: backward gave {arr.shape} for input {name!r}, which "
                         f"has shape {shape}")
    return arr if arr.dtype == np.float32 else arr.astype(np.float64)


def _describe_inputs(args: Arguments) -> dict[str, str]:
    out = {}
    for name, value in zip(args.names, args.values):
        if isinstance(value, np.ndarray):
            out[name] = f"{value.dtype.name} {tuple(value.shape)}"
        else:
            out[name] = type(value).__name__
    return out


def _inputs_hash(args: Arguments) -> str:
    digest = hashlib.sha256()
    for name, value in zip(args.names, args.values):
        digest.update(name.encode())
        if isinstance(value, np.ndarray):
            little = value.astype(value.dtype.newbyteorder("<"), copy=False)
            digest.update(f"{value.dtype.str}{value.shape}".encode())
            digest.update(np.ascontiguousarray(little).tobytes())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _name_of(fn: object) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def fingerprints(
    forward: Callable[..., object],
    backward: Callable[..., object],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    pairs: int = PAIRS,
    seed: int = 0,
) -> dict[str, Any]:
    """The numbers a snapshot holds (see the module docstring), computed from the hand-derived
    ``backward`` alone.

    Args:
        forward, backward, inputs: as in ``check_vjp``.
        pairs: seeded cotangent/direction pairs.
        seed: seeds the cotangents and directions.

    Returns:
        A JSON-ready dict: "inputs" (name -> "dtype shape"), "inputs_sha256", "forward"
        ({"values": <c_j, f>, "scales": <|c_j|, |f|>}) and "gradients" (name -> {"norms",
        "projections"}, one number per pair).

    Raises:
        ValueError: backward returned a gradient of the wrong form or shape (the message names
            the input); forward's output is not an array, a number or a tuple of them.
    """
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be a positive int, got {pairs!r}")
    args = Arguments.of(forward, inputs)
    with np.errstate(all="ignore"):
        output = Output.of(args.call(forward))
    rng = np.random.default_rng((STREAM, seed))
    wrt = [i for i, d in enumerate(args.differentiable) if d]
    grads: dict[str, dict[str, list[float]]] = {
        args.names[i]: {"norms": [], "projections": []} for i in wrt}
    values, scales = [], []
    for _ in range(pairs):
        flat, handed, _ = cotangent_for(output, None, rng)
        values.append(output.pair(flat))
        scales.append(output.pair_magnitude(flat))
        with np.errstate(all="ignore"):
            mapped = hand_gradients(args, args.call(backward, handed))
        for i in wrt:
            name, shape = args.names[i], args.values[i].shape
            g = _gradient(mapped.get(i), shape, name)
            u = rng.normal(size=shape)
            u /= max(float(np.sqrt(np.vdot(u, u))), np.finfo(float).tiny)
            grads[name]["norms"].append(float(np.sqrt(np.vdot(g, g))))
            grads[name]["projections"].append(float(np.vdot(u, g)))
    return {
        "inputs": _describe_inputs(args),
        "inputs_sha256": _inputs_hash(args),
        "forward": {"values": values, "scales": scales},
        "gradients": grads,
    }


# --- files -------------------------------------------------------------------------------------


def read_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """The snapshot at ``path`` as a dict.

    Raises:
        FileNotFoundError: no file. ValueError: not a snapshot of a format this version reads.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a gradient snapshot (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a gradient snapshot of format {FORMAT}")
    return data


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one line per key, and one per input under "inputs" and "gradients": short
    diffs in review (a drifted input is one changed line)."""
    lines = []
    for key, value in data.items():
        if key in ("inputs", "gradients"):
            inner = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            text = "{\n" + ",\n".join(inner) + "\n }" if inner else "{}"
        else:
            text = json.dumps(value)
        lines.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_dumps(data), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file


def _update_requested(update: bool | None) -> bool:
    if update is not None:
        return bool(update)
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes")


def _record(path: Path, forward, backward, inputs, pairs: int, seed: int, rtol: float,
            check: bool) -> SnapshotResult:
    verdict = "not checked (check=False)"
    if check:
        try:
            from .vjp_check import check_vjp
        except ImportError as exc:  # JAX missing: the oracle cannot judge what is recorded
            raise ImportError(f"recording a snapshot runs check_vjp first, which needs JAX "
                              f"({exc}): record where JAX is installed (pip install "
                              "'simple-net[oracle]'), or pass check=False to record "
                              "unchecked; comparing needs no JAX") from exc
        report = check_vjp(forward, backward, inputs, seed=seed)
        if not report.ok:
            return SnapshotResult(path, "refused", rtol=rtol, verdict=report.headline,
                                  detail="the oracle says this gradient is wrong, so it is not "
                                         "recorded:\n" + str(report))
        verdict = report.headline
    data = {
        "about": "gradient fingerprints of a hand-derived backward (oracle.snapshots); "
                 f"re-record on purpose with update=True, {UPDATE_ENV}=1 or pytest "
                 "--gradcheck-update-snapshots",
        "format": FORMAT,
        "forward_function": _name_of(forward),
        "backward_function": _name_of(backward),
        "verdict": verdict,
        "pairs": pairs,
        "seed": seed,
        "rtol": rtol,
        **fingerprints(forward, backward, inputs, pairs=pairs, seed=seed),
    }
    _write(path, data)
    return SnapshotResult(path, "recorded", rtol=rtol, verdict=verdict)


def compare_snapshot(
    path: str | os.PathLike,
    forward: Callable[..., object],
    backward: Callable[..., object],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    update: bool | None = None,
    pairs: int = PAIRS,
    seed: int = 0,
    rtol: float | None = None,
    check: bool = True,
) -> SnapshotResult:
    """Compare ``backward`` at ``inputs`` with the snapshot at ``path``, or (re)record it.

    Args:
        path: the snapshot file (JSON text).
        forward, backward, inputs: as in ``check_vjp``.
        update: True: record (replacing any old file); None: record only if
            ``ORACLE_UPDATE_SNAPSHOTS`` is 1/true/yes; False: compare.
        pairs, seed: used when recording; a comparison uses the file's.
        rtol: the drift tolerance relative to the gradient's norm; None: the file's (``RTOL``
            when recording).
        check: when recording, run ``check_vjp`` first and refuse a wrong gradient.

    Returns:
        A ``SnapshotResult``: ``.ok``, ``.status``, ``.drifts``, ``.drifted()``; ``str()``
        names each drifted input with its recorded and current fingerprints.

    Raises:
        ValueError: a file that is not a snapshot; backward returning the wrong form or shape.
    """
    path = Path(path)
    if _update_requested(update):
        return _record(path, forward, backward, inputs, pairs, seed,
                       RTOL if rtol is None else float(rtol), check)
    if not path.exists():
        return SnapshotResult(path, "missing", rtol=RTOL if rtol is None else float(rtol),
                              detail="no snapshot recorded yet")
    data = read_snapshot(path)
    rtol = float(data.get("rtol", RTOL)) if rtol is None else float(rtol)
    verdict = str(data.get("verdict", ""))
    args = Arguments.of(forward, inputs)
    described = _describe_inputs(args)
    if described != data["inputs"]:
        return SnapshotResult(path, "changed", rtol=rtol, verdict=verdict,
                              detail=f"the inputs are not those recorded (recorded "
                                     f"{data['inputs']}, now {described})")
    if _inputs_hash(args) != data["inputs_sha256"]:
        return SnapshotResult(path, "changed", rtol=rtol, verdict=verdict,
                              detail="the inputs' values are not those recorded (their "
                                     "SHA-256 differs): compare at the recorded points (seed "
                                     "your input generator) or re-record")
    now = fingerprints(forward, backward, inputs, pairs=int(data["pairs"]),
                       seed=int(data["seed"]))
    drifts: list[Drift] = []
    old_f, new_f = data["forward"], now["forward"]
    if len(old_f["values"]) != len(new_f["values"]):
        return SnapshotResult(path, "changed", rtol=rtol, verdict=verdict,
                              detail="the snapshot's pairs do not match its fingerprints")
    for j, (a, b, s) in enumerate(zip(old_f["values"], new_f["values"], old_f["scales"])):
        d = Drift("forward", f"<c{j + 1},f>", float(a), float(b), float(s))
        if d.relative > rtol:
            drifts.append(d)
    for name, old in data["gradients"].items():
        new = now["gradients"][name]
        for j in range(len(old["norms"])):
            scale = float(old["norms"][j])
            for what, key in ((f"norm {j + 1}", "norms"), (f"u{j + 1}.g", "projections")):
                d = Drift(name, what, float(old[key][j]), float(new[key][j]), scale)
                if d.relative > rtol:
                    drifts.append(d)
    return SnapshotResult(path, "drift" if drifts else "match", drifts, rtol, verdict)

"""Gradient checks as test assertions, for your own test suite (pytest or any other runner).

    from oracle.testing import assert_vjp

    def test_affine_backward():
        assert_vjp(affine_forward, affine_backward, (x, w, b))

Each ``assert_*`` runs the matching check (``assert_vjp``: ``check_vjp``, ``assert_gradient``:
``check_gradient``, ``assert_network``: ``check_network``, ``assert_layers``:
``check_layers``) with the same arguments, returns the ``Report`` when the gradient is right, and
otherwise raises ``GradientCheckError``, an ``AssertionError`` whose message is

1. the report's headline (the first line: pytest's one-line summary shows it),
2. the report's table and notes (which input or term, which entry, expected vs got),
3. for ``assert_vjp`` and ``assert_gradient``: a standalone script that reruns the check
   (your functions imported by name, the inputs as literals, the options that were given), so
   a failure found by Hypothesis or in CI can be rerun without the test suite.

``assert_snapshot`` compares a derivation with its regression snapshot (``oracle.snapshots``).

``strict=None`` (the default) means "as the session says": ``pytest --gradcheck-strict`` (the
``simple_net_gradcheck`` plugin) turns doubt (the sources of truth could not confirm each other)
into failure; without the plugin, doubt passes, as in the checks themselves. Every call is
counted by the plugin, when it is loaded, for its line in pytest's terminal summary. The
plugin's ``gradcheck`` fixture is a ``GradCheck``: these helpers with the session's settings
(strictness, seed, snapshot folder and tolerance) filled in.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .report import Report

__all__ = [
    "GradCheck",
    "GradientCheckError",
    "assert_gradient",
    "assert_layers",
    "assert_network",
    "assert_report",
    "assert_snapshot",
    "assert_vjp",
    "reproducer",
]

PLUGIN = "simple_net_gradcheck"
"""The pytest plugin's module (a top-level module, so that pytest loading it imports no JAX)."""

REPRODUCER_ENTRIES = 1000
"""A reproducer inlines the inputs as literals up to this many entries in all (beyond, it says
how to save them instead: a script of 10^5 numbers helps nobody)."""


class GradientCheckError(AssertionError):
    """A gradient check failed. ``str()`` is the headline, the table and a reproducer.

    Attributes:
        report: the check's ``Report``.
        script: the standalone reproducer (empty when there is none).
    """

    def __init__(self, report: Report, script: str = "") -> None:
        self.report = report
        self.script = script
        parts = [str(report)]
        if script:
            rule = "-" * 72
            parts += ["", "Reproduce without the test suite:", rule, script, rule]
        super().__init__("\n".join(parts))


# --- the session (the pytest plugin, when it is loaded) ----------------------------------------


def _session() -> Any:
    """The plugin's state, or None when the plugin is not loaded (plain Python, other runners)."""
    plugin = sys.modules.get(PLUGIN)
    return getattr(plugin, "STATE", None)


def _strict(strict: bool | None) -> bool:
    if strict is not None:
        return bool(strict)
    state = _session()
    return bool(state is not None and state.strict)


def _record(**counts: int) -> None:
    state = _session()
    if state is not None:
        state.record(**counts)


def assert_report(report: Report, script: str = "") -> Report:
    """Raise ``GradientCheckError`` unless ``report.ok``; return the report.

    Counts the check for the plugin's summary (checks, failures, rows in doubt, kink entries).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    _record(checks=1, failed=int(not report.ok),
            doubtful=sum(r.status == "doubt" for r in report.rows),
            kinks=sum(r.kinks for r in report.rows))
    if not report.ok:
        raise GradientCheckError(report, script)
    return report


# --- the helpers -------------------------------------------------------------------------------


def assert_vjp(
    forward: Callable[..., object],
    backward: Callable[..., object],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    strict: bool | None = None,
    **options: Any,
) -> Report:
    """``check_vjp(forward, backward, inputs, **options)``, as an assertion.

    Args:
        forward, backward, inputs: as in ``oracle.check_vjp``.
        strict: count doubt as failure; None: the session's setting (``--gradcheck-strict``).
        options: any other keyword of ``check_vjp`` (``cotangent``, ``wrt``, ``jax``, ``fd``,
            ``max_exhaustive``, ``directions``, ``seed``).

    Returns:
        The report, when every checked input agrees.

    Raises:
        GradientCheckError: the headline, the table and a standalone reproducer.
        TypeError, ValueError: as ``check_vjp`` (bad inputs, a forward that raises).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    from .vjp_check import check_vjp

    strict = _strict(strict)
    report = check_vjp(forward, backward, inputs, strict=strict, **options)
    script = "" if report.ok else reproducer(
        "check_vjp", {"forward": forward, "backward": backward}, {"inputs": inputs},
        {**options, **({"strict": True} if strict else {})})
    return assert_report(report, script)


def assert_gradient(
    f: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    strict: bool | None = None,
    **options: Any,
) -> Report:
    """``check_gradient(f, grad, x, **options)``, as an assertion.

    Args:
        f: ``x -> float``; grad: ``x -> dF/dx`` shaped like x (the hand-derived gradient).
        x: the point, any shape, float64.
        strict: count doubt as failure; None: the session's setting.
        options: any other keyword of ``check_gradient`` (``fd``, ``directions``, ``seed``,
            ``jax``, ``max_exhaustive``).

    Raises:
        GradientCheckError: the headline, the table and a standalone reproducer.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    from .function_check import check_gradient

    strict = _strict(strict)
    report = check_gradient(f, grad, x, strict=strict, **options)
    script = "" if report.ok else reproducer(
        "check_gradient", {"f": f, "grad": grad}, {"x": x},
        {**options, **({"strict": True} if strict else {})})
    return assert_report(report, script)


def assert_network(net: Any, X: np.ndarray, T: np.ndarray, *, strict: bool | None = None,
                   **options: Any) -> Report:
    """``check_network(net, X, T, **options)``, as an assertion.

    Args:
        net: a ``reference.Network`` (or a subclass with your own backward pass).
        X: inputs ``(B, *in_shape)``; T: targets valid for the network's loss.
        strict: count doubt as failure; None: the session's setting.
        options: any other keyword of ``check_network`` (``fd``, ``check_step``, ``local``,
            ``seed``, ...).

    Raises:
        GradientCheckError: the headline (layer and term of the first wrong derivative) and
            the per-layer, per-term table.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    from .network_check import check_network

    return assert_report(check_network(net, X, T, strict=_strict(strict), **options))


def assert_layers(layers: Sequence[object], loss: Callable[[np.ndarray, object], tuple],
                  x: np.ndarray, t: object, *, strict: bool | None = None,
                  **options: Any) -> Report:
    """``check_layers(layers, loss, x, t, **options)``, as an assertion: a network of your own
    layer objects, checked layer by layer (see ``oracle.layers_check``).

    Raises:
        GradientCheckError: the headline names the first wrong layer by index and class.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    from .layers_check import check_layers

    return assert_report(check_layers(layers, loss, x, t, strict=_strict(strict), **options))


def assert_snapshot(
    path: str | os.PathLike,
    forward: Callable[..., object],
    backward: Callable[..., object],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    update: bool | None = None,
    **options: Any,
) -> Any:
    """Compare ``backward`` at ``inputs`` with the snapshot at ``path`` (``oracle.snapshots``).

    Args:
        path: the snapshot file (a small JSON text file that lives in your repository).
        update: True re-records it (after ``check_vjp`` passes); None: the session's setting
            (``pytest --gradcheck-update-snapshots``, or ``ORACLE_UPDATE_SNAPSHOTS=1``).
        options: ``pairs``, ``seed``, ``rtol``, ``check`` (see
            ``oracle.snapshots.compare_snapshot``).

    Returns:
        The ``SnapshotResult`` (``.ok``, ``.drifts``, ``str()``).

    Raises:
        SnapshotMismatch (an AssertionError): an input's gradient drifted (named, with by how
            much), the inputs changed, there is no snapshot to compare with, or an update was
            refused because the oracle says the gradient is wrong.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    from .snapshots import SnapshotMismatch, compare_snapshot

    state = _session()
    if update is None and state is not None and state.update_snapshots:
        update = True
    if "rtol" not in options and state is not None and state.snapshot_rtol is not None:
        options["rtol"] = state.snapshot_rtol
    result = compare_snapshot(path, forward, backward, inputs, update=update, **options)
    _record(snapshots=1, drifted=int(result.status == "drift"),
            missing=int(result.status == "missing"), changed=int(result.status == "changed"),
            refused=int(result.status == "refused"))
    if not result.ok:
        raise SnapshotMismatch(result)
    return result


# --- the fixture's object ----------------------------------------------------------------------


@dataclass
class GradCheck:
    """The helpers above with one project's settings filled in: what the plugin's ``gradcheck``
    fixture gives a test.

    Attributes:
        strict: count doubt as failure (``--gradcheck-strict`` or the ini option
            ``gradcheck_strict``).
        seed: seeds every check's random cotangent and directions (ini ``gradcheck_seed``).
        snapshot_dir: where ``snapshot(name, ...)`` keeps ``<name>.json`` (ini
            ``gradcheck_snapshot_dir``, relative to the test file's folder).
        update_snapshots: re-record snapshots (``--gradcheck-update-snapshots``); False still
            lets ``ORACLE_UPDATE_SNAPSHOTS=1`` re-record them.
        snapshot_rtol: a snapshot's drift tolerance, relative to the gradient's norm (ini
            ``gradcheck_snapshot_rtol``; None: ``oracle.snapshots.RTOL``).

    The oracle's own tolerances are not settings: each entry's comes from an error analysis
    (rounding of the terms, the stencil's truncation and round-off) and every report states it.
    """

    strict: bool = False
    seed: int = 0
    snapshot_dir: Path = Path("gradient_snapshots")
    update_snapshots: bool = False
    snapshot_rtol: float | None = None

    def vjp(self, forward: Callable[..., object], backward: Callable[..., object],
            inputs: Sequence[object] | Mapping[str, object], **options: Any) -> Report:
        """``assert_vjp`` with this project's settings (keywords override them)."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        return assert_vjp(forward, backward, inputs, **{**self._defaults(), **options})

    def gradient(self, f: Callable[[np.ndarray], float],
                 grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                 **options: Any) -> Report:
        """``assert_gradient`` with this project's settings."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        return assert_gradient(f, grad, x, **{**self._defaults(), **options})

    def network(self, net: Any, X: np.ndarray, T: np.ndarray, **options: Any) -> Report:
        """``assert_network`` with this project's settings."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        return assert_network(net, X, T, **{**self._defaults(), **options})

    def layers(self, layers: Sequence[object], loss: Callable[[np.ndarray, object], tuple],
               x: np.ndarray, t: object, **options: Any) -> Report:
        """``assert_layers`` with this project's settings."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        return assert_layers(layers, loss, x, t, **{**self._defaults(), **options})

    def snapshot(self, name: str, forward: Callable[..., object],
                 backward: Callable[..., object],
                 inputs: Sequence[object] | Mapping[str, object], **options: Any) -> Any:
        """``assert_snapshot`` on ``snapshot_dir / (name + ".json")``."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        if self.snapshot_rtol is not None:
            options.setdefault("rtol", self.snapshot_rtol)
        options.setdefault("seed", self.seed)
        update = options.pop("update", True if self.update_snapshots else None)
        return assert_snapshot(Path(self.snapshot_dir) / f"{name}.json", forward, backward,
                               inputs, update=update, **options)

    def _defaults(self) -> dict[str, Any]:
        return {"strict": self.strict, "seed": self.seed}


# --- reproducers -------------------------------------------------------------------------------


def _importable(fn: object) -> tuple[str, str] | None:
    """``(module, qualname)`` when ``from module import name`` gives back ``fn`` itself."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    obj: object = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return (module, qualname) if obj is fn else None


def _where(fn: object) -> str:
    try:
        path = inspect.getsourcefile(fn)  # type: ignore[arg-type]
        line = inspect.getsourcelines(fn)[1]  # type: ignore[arg-type]
        return f"{Path(path).name}:{line}" if path else "unknown file"
    except (TypeError, OSError):
        return "unknown file"


def _literal(value: object) -> str | None:
    """Python source that rebuilds ``value`` exactly, or None when there is none."""
    if isinstance(value, np.ndarray):
        dtype = "" if value.dtype == np.float64 else f", dtype={value.dtype.name!r}"
        if value.size == 0:
            return f"np.zeros({value.shape!r}{dtype or ', dtype=float'})"
        return f"np.array({value.tolist()!r}{dtype})"
    if isinstance(value, np.generic):
        return f"np.{value.dtype.name}({value.item()!r})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        parts = [_literal(v) for v in value]
        if any(p is None for p in parts):
            return None
        body = ", ".join(parts)  # type: ignore[arg-type]
        return f"({body},)" if isinstance(value, tuple) and len(parts) == 1 else (
            f"({body})" if isinstance(value, tuple) else f"[{body}]")
    if isinstance(value, Mapping):
        parts = {k: _literal(v) for k, v in value.items()}
        if any(p is None for p in parts.values()) or not all(isinstance(k, str) for k in parts):
            return None
        items = [f"{k!r}: {v}" for k, v in parts.items()]
        if sum(map(len, items)) < 80:
            return "{" + ", ".join(items) + "}"
        return "{\n" + "".join(f"    {item},\n" for item in items) + "}"
    return None


def _entries(value: object) -> int:
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, Mapping):
        return sum(_entries(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_entries(v) for v in value)
    return 1


def reproducer(check: str, functions: Mapping[str, Callable[..., object]],
               arguments: Mapping[str, object], options: Mapping[str, object]) -> str:
    """A standalone script that reruns ``oracle.<check>`` and prints its report.

    Args:
        check: the check's name in ``oracle`` ("check_vjp", "check_gradient").
        functions: its function arguments by role ("forward", "backward"), in call order;
            imported by name when ``from module import name`` gives them back, else left as a
            placeholder to fill in (a lambda, a closure, a bound method).
        arguments: its data arguments by name, in call order, written as literals.
        options: keywords, written as literals (a value without one is named, not written).

    Returns:
        The script's text (``import numpy as np`` ... ``print(check(...))``).
    """
    imports: dict[str, list[str]] = {}
    body: list[str] = []
    names: list[str] = []
    for role, fn in functions.items():
        found = _importable(fn)
        if found is None:
            label = getattr(fn, "__qualname__", type(fn).__name__)
            body.append(f"{role} = ...  # {label} ({_where(fn)}) cannot be imported by name: "
                        "define it here")
            names.append(role)
            continue
        module, qualname = found
        head = qualname.split(".")[0]
        if head not in imports.setdefault(module, []):
            imports[module].append(head)
        names.append(qualname)
    lines = ["import numpy as np", "", f"from oracle import {check}"]
    lines += [f"from {module} import {', '.join(heads)}" for module, heads in imports.items()]
    lines += ["", *body] if body else [""]
    for name, value in arguments.items():
        size = _entries(value)
        literal = _literal(value) if size <= REPRODUCER_ENTRIES else None
        if literal is None:
            why = (f"{size} entries, too many to print" if size > REPRODUCER_ENTRIES
                   else f"a {type(value).__name__} with no literal form")
            literal = f"...  # {why}: save them with np.savez and load them here"
        lines.append(f"{name} = {literal}")
        names.append(name)
    for key, value in options.items():
        literal = _literal(value)
        if literal is None:
            lines.append(f"{key} = ...  # a {type(value).__name__} with no literal form: "
                         "rebuild it here")
            literal = key
        names.append(f"{key}={literal}")
    lines.append(f"print({check}({', '.join(names)}))")
    if imports:
        lines.insert(0, "# Run where " + ", ".join(f"`{m}`" for m in imports) +
                     " can be imported (your project's root, or its tests' folder).")
    return "\n".join(lines)

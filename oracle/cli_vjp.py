"""``python -m oracle vjp``: check your own forward/backward pair from the shell.

    python -m oracle vjp my_layers:affine_forward my_layers:affine_backward \\
        --shapes x=4,3 w=3,2 b=2
    python -m oracle vjp layers.py:softmax_loss layers.py:softmax_loss_backward \\
        --shapes scores=5,3 y=5:int3 --junit gradcheck.xml

``MODULE:FUNCTION`` names a function (``Class.method`` for an attribute chain) in a module that
can be imported from the current folder, or in a file (``path/to/file.py:FUNCTION``). The inputs
are drawn from a seeded normal at the shapes given (``--seed``), or read from an ``.npz``
(``--inputs``), as hostile as a network file: only forward's parameters, numeric arrays (no
pickle), every header and zip-directory size checked against the 1 GiB budget first.
``oracle.cli`` registers this subcommand; this module holds its arguments and its run, so that
the CLI's module stays about the shared parts.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from reference.cli_tools import UsageError, check_out, regular_file
from reference.safe_files import MAX_BYTES, NpzArchive, human_bytes, short_names

__all__ = ["EXAMPLES", "add_arguments", "load_function", "parse_shapes", "run"]

PROG = "python -m oracle"
EXAMPLES = f"""\
examples:
  {PROG} vjp my_layers:affine_forward my_layers:affine_backward --shapes x=4,3 w=3,2 b=2
  {PROG} vjp layers.py:softmax_loss layers.py:softmax_loss_backward --shapes 5,3 5:int3
  {PROG} vjp my_layers:conv_forward my_layers:conv_backward --cached --inputs point.npz --json
  {PROG} vjp my_layers:f my_layers:f_backward --shapes x=8 --junit reports/gradcheck.xml

--shapes takes one SPEC per input, in forward's parameter order: [NAME=]D1,D2,...[:KIND] with
KIND float (default: standard normal entries), int<N> (integer labels in [0, N)) or bool; "()"
or an empty shape is a scalar. Named specs pass the inputs as keywords, unnamed ones
positionally. backward(dout, *inputs) returns the gradient of <dout, forward(*inputs)> with
respect to each float input (see oracle.check_vjp); with --cached, forward returns (out, cache)
and backward(dout, cache) the gradients (CS231n style).
"""

SPEC = re.compile(r"^(?:(?P<name>[A-Za-z_]\w*)=)?(?P<shape>\(\)|[0-9, ]*)"
                  r"(?::(?P<kind>float|bool|int(?P<classes>\d+)))?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The vjp subcommand's own arguments (``oracle.cli`` adds the shared output flags)."""
    parser.add_argument("forward", metavar="MODULE:FORWARD",
                        help="forward(*inputs) -> output (module or path/to/file.py)")
    parser.add_argument("backward", metavar="MODULE:BACKWARD",
                        help="backward(dout, *inputs) -> gradients")
    data = parser.add_argument_group("the inputs (one of --shapes, --inputs)")
    data.add_argument("--shapes", nargs="+", metavar="SPEC",
                      help="[NAME=]D1,D2,...[:float|int<N>|bool], one per input")
    data.add_argument("--inputs", metavar="FILE.npz",
                      help=".npz of the inputs by name (numpy.savez(path, x=..., w=...))")
    data.add_argument("--seed", type=int, default=0,
                      help="seeds the drawn inputs and the check's cotangent (default 0)")
    check = parser.add_argument_group("the check")
    check.add_argument("--cached", action="store_true",
                       help="forward returns (out, cache); backward(dout, cache)")
    check.add_argument("--wrt", metavar="NAMES", help="comma-separated inputs to check "
                       "(default every float input)")
    check.add_argument("--fd", choices=("auto", "exhaustive", "directional", "none"),
                       default="auto", help="finite differences (default auto)")
    check.add_argument("--no-jax", dest="jax", action="store_false",
                       help="leave JAX out: finite differences alone")
    parser.add_argument("--junit", metavar="FILE.xml",
                        help="also write the report as JUnit XML (one test case per input)")


def _from_file(path: Path) -> object:
    if not path.is_file():
        raise UsageError(f"no file {path}")
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


def load_function(text: str) -> Callable[..., object]:
    """The function ``MODULE:NAME`` or ``path/to/file.py:NAME`` names (``NAME`` may be dotted).

    A module name is imported as ``python -m`` would, with the current folder first on the path.

    Raises:
        UsageError: a malformed spec, a module that cannot be imported or raises on import, a
            missing attribute, something not callable.
    """
    where, colon, attr = text.rpartition(":")
    if not colon or not where or not attr:
        raise UsageError(f"expected MODULE:FUNCTION or path/to/file.py:FUNCTION, got {text!r}")
    try:
        if where.endswith(".py") or os.sep in where or "/" in where:
            module = _from_file(Path(where))
        else:
            cwd = os.getcwd()
            added = cwd not in sys.path
            if added:
                sys.path.insert(0, cwd)
            try:
                module = importlib.import_module(where)
            finally:
                if added:
                    sys.path.remove(cwd)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import {where!r}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise UsageError(f"importing {where!r} raised {type(exc).__name__}: {exc}") from None
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{text} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[return-value]


def parse_shapes(specs: list[str], seed: int) -> tuple[object, ...] | dict[str, object]:
    """Inputs drawn at the shapes ``specs`` give (see ``EXAMPLES``), seeded by ``seed``.

    Returns:
        A dict when the specs are named, else a tuple, in the order given.

    Raises:
        UsageError: a malformed spec, a mix of named and unnamed specs, a repeated name.
    """
    rng = np.random.default_rng([seed, 2])
    named: dict[str, object] = {}
    plain: list[object] = []
    for text in specs:
        m = SPEC.match(text.strip())
        if m is None:
            raise UsageError(f"bad --shapes entry {text!r}: expected [NAME=]D1,D2,...[:KIND] "
                             "with KIND float, int<N> or bool, e.g. x=4,3 or y=4:int3")
        body = m["shape"].replace(" ", "")
        dims = [] if body in ("", "()") else body.split(",")
        if any(not d for d in dims):
            raise UsageError(f"bad shape in --shapes entry {text!r}")
        shape = tuple(int(d) for d in dims)
        kind = m["kind"] or "float"
        if kind == "bool":
            value: object = rng.random(shape) < 0.5
        elif kind.startswith("int"):
            classes = int(m["classes"])
            if classes < 1:
                raise UsageError(f"{text!r}: int<N> needs N >= 1")
            value = rng.integers(0, classes, size=shape)
        else:
            value = rng.normal(size=shape)
        if m["name"]:
            if m["name"] in named:
                raise UsageError(f"--shapes names {m['name']!r} twice")
            named[m["name"]] = value
        else:
            plain.append(value)
    if named and plain:
        raise UsageError("--shapes entries must be all named (x=4,3) or all unnamed (4,3)")
    return named if named else tuple(plain)


def _parameters(forward: Callable[..., object]) -> list[str] | None:
    """The names ``forward`` takes as keywords, or None when it takes any (``**kwargs``) or
    its signature cannot be read."""
    try:
        signature = inspect.signature(forward)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in kinds]


def _read_inputs(path: str, forward: Callable[..., object], *,
                 max_bytes: int = MAX_BYTES) -> dict[str, object]:
    """The arrays of ``--inputs``, read as hostile (``reference.safe_files``, as a network file
    is): only forward's parameters (an array forward does not take is refused by its name in
    the zip directory, unread); numeric arrays only (no pickle); every member's .npy header
    and its size in the zip directory checked, and their total against ``max_bytes`` (1 GiB),
    before any is allocated or inflated.

    Raises:
        UsageError: not a regular file or not an .npz, an array forward does not take.
        TooLargeError: the arrays declare more than ``max_bytes`` (exit 3).
        ValueError: a malformed archive or array (the message names the file).
    """
    regular_file(path, "inputs")
    describe = f"inputs {path}"
    with NpzArchive(path, describe, max_bytes=max_bytes) as z:
        expected = _parameters(forward)
        if expected is not None:
            extra = [name for name in z.names if name not in expected]
            if extra:
                raise UsageError(f"{describe}: it holds {short_names(extra)}, which the forward "
                                 f"function ({', '.join(expected)}) does not take; save only "
                                 "its inputs")
        total = sum(z.header(name).nbytes for name in z.names)  # headers and sizes first
        if total > z.budget:
            raise z.too_large(f"its arrays declare {human_bytes(total)}, more than the memory "
                              f"budget of {human_bytes(z.budget)}")
        return {name: z.read(name) for name in z.names}


def run(args: argparse.Namespace):
    """Load the functions, draw or read the inputs, run ``check_vjp``; write ``--junit``."""
    from .adapters import cached
    from .vjp_check import check_vjp

    if (args.shapes is None) == (args.inputs is None):
        raise UsageError("give the inputs with one of --shapes or --inputs")
    if args.junit and Path(args.junit).parent.exists():  # (a missing folder is created)
        check_out(args.junit, "--junit")  # before any work
    forward, backward = load_function(args.forward), load_function(args.backward)
    inputs = parse_shapes(args.shapes, args.seed) if args.shapes is not None \
        else _read_inputs(args.inputs, forward)
    if args.cached:
        forward, backward = cached(forward, backward)
    wrt = None if args.wrt is None else [w.strip() for w in args.wrt.split(",")]
    report = check_vjp(forward, backward, inputs, wrt=wrt, jax=args.jax, fd=args.fd,
                       seed=args.seed, strict=args.strict)
    if args.junit:
        from .junit import write_junit

        try:
            write_junit(args.junit, {f"{args.forward} / {args.backward}": report})
        except OSError as exc:
            raise UsageError(f"cannot write {args.junit}: {exc.strerror or exc}") from None
    return report

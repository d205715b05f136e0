"""argparse scaffolding shared by ``python -m reference`` and ``python -m oracle``.

Both command lines are a registry of subcommands, ``{name: (summary, add_arguments, run,
examples)}``; configurations are JSON objects with a known set of keys; data files are read as
hostile (``safe_files``). Every failure is one line on stderr and an exit status that keeps one
meaning in both command lines, never a traceback (``run_command``):

====  ==========================================================================================
0     done (reference) / every gradient agrees (oracle)
1     training diverged, nothing saved (reference) / a gradient is wrong (oracle)
2     bad usage or bad input (a file, a flag, a value refused, with the reason)
3     too large: an input over a stated limit (a file's memory budget, JSON nesting or number
      length, a zip directory), or out of memory (or of stack) on the way
4     internal error: an exception nobody expected, i.e. a bug (set SIMPLE_NET_TRACEBACK=1 to
      see its traceback)
130   interrupted (Ctrl-C)
141   its output was closed early (a pipe into ``head``): stopped quietly, as on SIGPIPE
====  ==========================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import stat
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from .errors import TooLargeError
from .safe_files import (
    MAX_BYTES,
    MAX_JSON_CHARS,
    NpzArchive,
    check_writable,
    human_bytes,
    loads_json,
    short_names,
)
from .validation import check_layer_sizes

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_DIVERGED_OR_WRONG",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STATUS_HELP",
    "EXIT_TOO_LARGE",
    "EXIT_USAGE",
    "Command",
    "UsageError",
    "build_parser",
    "check_network_budget",
    "check_out",
    "failure_status",
    "read_config",
    "read_xt",
    "regular_file",
    "run_command",
]

EXIT_OK = 0
EXIT_DIVERGED_OR_WRONG = 1
EXIT_USAGE = 2
EXIT_TOO_LARGE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

Command = tuple[str, Callable[[argparse.ArgumentParser], None],
                Callable[[argparse.Namespace], int], str]
"""(summary, add_arguments(parser), run(args) -> exit status, examples for --help)."""


class UsageError(Exception):
    """Bad usage or bad input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line on stderr (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser(
    prog: str, description: str, epilog: str, commands: Mapping[str, Command]
) -> argparse.ArgumentParser:
    """A parser with one subcommand per entry of ``commands``."""
    parser = _Parser(prog=prog, description=description, epilog=epilog,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (summary, add, _, examples) in commands.items():
        add(sub.add_parser(name, help=summary, description=summary, epilog=examples,
                           formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


# --- failures: one line, one exit status each ----------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def failure_status(prog: str, exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr; return its exit status (see the module's table)."""
    message = _one_line(exc)
    if isinstance(exc, UsageError):
        status = EXIT_USAGE
    elif isinstance(exc, TooLargeError):
        status = EXIT_TOO_LARGE
    elif isinstance(exc, MemoryError):
        status, message = EXIT_TOO_LARGE, f"out of memory ({message})"
    elif isinstance(exc, RecursionError):
        status, message = EXIT_TOO_LARGE, f"input nested too deeply for the stack ({message})"
    elif isinstance(exc, (ValueError, TypeError, OSError)):
        status = EXIT_USAGE  # refused input, with the library's message
    else:
        status = EXIT_INTERNAL
        message = (f"internal error, please report it: {type(exc).__name__}: {message} "
                   "(set SIMPLE_NET_TRACEBACK=1 to see the traceback)")
        if os.environ.get("SIMPLE_NET_TRACEBACK"):
            traceback.print_exception(exc, file=sys.stderr)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status


@contextlib.contextmanager
def _one_line_warnings(prog: str) -> Iterator[None]:
    """Warnings shown as one line each, ``prog: warning: ...`` (not file, line and source)."""
    with warnings.catch_warnings():
        def show(message, category, filename, lineno, file=None, line=None) -> None:
            print(f"{prog}: warning: {_one_line(Warning(message))}", file=sys.stderr)

        warnings.showwarning = show
        yield


def run_command(prog: str, run: Callable[[], int]) -> int:
    """``run()``'s exit status; any failure printed as one line with its own status instead of
    a traceback. ``SystemExit`` (``--help``) passes through."""
    try:
        with _one_line_warnings(prog):
            return run()
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as on SIGPIPE
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit finds no pipe
            os.close(devnull)
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every failure: one line, its own exit status
        return failure_status(prog, exc)


EXIT_STATUS_HELP = (
    "Exit status: 0 {zero}, 1 {one}, 2 bad usage or input, 3 too large (an input over a limit, "
    "or out of memory), 4 internal error (a bug), 130 interrupted, 141 output closed early"
)
"""The exit statuses for --help; ``{zero}`` and ``{one}`` are the command line's own meanings
of 0 and 1."""


# --- files -------------------------------------------------------------------------------------


def read_config(path: str, allowed: Sequence[str]) -> dict:
    """The JSON object in ``path``; ``layer_sizes`` (Network.save's name) is read as ``sizes``.

    Read within ``safe_files``'s JSON limits (size, nesting, number length).

    Raises:
        UsageError: unreadable file, invalid JSON, not an object, or a key not in ``allowed``.
        TooLargeError: over a limit.
    """
    what = f"config {path}"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_JSON_CHARS + 1)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        config = loads_json(text, what)
    except TooLargeError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(config, dict):
        raise UsageError(f"config {path} must hold a JSON object, got {type(config).__name__}")
    if "layer_sizes" in config and "sizes" not in config:
        config["sizes"] = config.pop("layer_sizes")
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise UsageError(f"config {path}: unknown keys {unknown}; expected any of "
                         f"{list(allowed)}")
    return config


def check_network_budget(sizes: object, batch: int = 0, *, what: str = "layer sizes",
                         max_bytes: int = MAX_BYTES) -> None:
    """Refuse, before anything is allocated, layer sizes (given on the command line or in a
    config) whose float64 weights, with ``batch`` rows of drawn X and T, take more than the
    memory budget ``max_bytes``: the same 1 GiB that bounds the arrays of a file.

    Sizes that are not a list of positive ints are left to ``Network``'s own messages.

    Raises:
        TooLargeError: over the budget (exit 3), naming ``what`` and the sizes.
    """
    try:
        sizes = check_layer_sizes(sizes)
    except TooLargeError:
        raise
    except (TypeError, ValueError):
        return
    weights = 8 * sum((n + 1) * m for n, m in zip(sizes, sizes[1:]))
    data = 8 * batch * (sizes[0] + sizes[-1])
    if weights + data > max_bytes:
        shown = ",".join(map(str, sizes)) if len(sizes) <= 8 else (
            ",".join(map(str, sizes[:4])) + ",...," + ",".join(map(str, sizes[-2:])))
        extra = f" and {human_bytes(data)} of data for a batch of {batch}" if batch else ""
        raise TooLargeError(f"{what} {shown} need {human_bytes(weights)} of weights{extra}, "
                            f"more than the memory budget of {human_bytes(max_bytes)} (the "
                            "same as for files)")


def check_out(path: str, flag: str = "--out") -> None:
    """Refuse an output path that cannot be written, before any work: the checks of
    ``safe_files.write_atomically`` (a path ending in a separator, a directory or device, a
    missing folder, an overlong name, a symlink loop) and a temporary file created in the
    target's folder and removed. Nothing is left behind.

    Raises:
        UsageError: ``"{flag}: cannot write {path}: {why}"``.
    """
    try:
        check_writable(path)
    except OSError as exc:
        raise UsageError(f"{flag}: {_one_line(exc)}") from None


def regular_file(path: str, what: str = "data") -> os.stat_result:
    """``os.stat(path)`` of a regular file; anything else is refused before it is opened (a
    FIFO would block, a device like /dev/zero never end).

    Raises:
        UsageError: ``"cannot read {what} {path}: <why>"``.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"cannot read {what} {path}: {os.strerror(errno.EISDIR)}")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"cannot read {what} {path}: not a regular file")
    return info


def read_xt(path: str, *, csv: bool = False,
            max_bytes: int = MAX_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``X`` and ``T`` of an ``.npz`` data file, read as hostile: only those two members,
    numeric (no pickle), their declared sizes checked against ``max_bytes`` before allocating.

    ``csv`` says that a .csv would have been accepted too (for the messages).

    Raises:
        UsageError: the file cannot be opened, is not an .npz, or lacks X or T.
        TooLargeError: X and T declare more than ``max_bytes``, or the archive is over a limit.
        ValueError: a malformed archive or array (the message names the file).
    """
    formats = ".npz or .csv" if csv else "an .npz archive"
    regular_file(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise UsageError(f"cannot read data {path}: {exc.strerror or exc}") from None
    if magic == b"\x93NUMPY":
        raise UsageError(f"data {path} is a single array; expected an .npz archive with arrays "
                         "X and T (numpy.savez(path, X=..., T=...))"
                         + (" or a .csv" if csv else ""))
    if not magic.startswith(b"PK"):
        raise UsageError(f"cannot read data {path} as {formats} (it is not a zip archive"
                         + (" and its name does not end in .csv)" if csv else ")"))
    with NpzArchive(path, f"data {path}", max_bytes=max_bytes) as z:
        missing = [k for k in ("X", "T") if k not in z.names]
        if missing:
            raise UsageError(f"data {path} lacks array(s) {missing}; found "
                             f"{short_names(z.names)}")
        total = z.header("X").nbytes + z.header("T").nbytes  # before either is allocated
        if total > z.budget:
            raise z.too_large(f"arrays X and T declare {human_bytes(total)}, more than the "
                              f"memory budget of {human_bytes(z.budget)}")
        return z.read("X"), z.read("T")

"""argparse scaffolding shared by ``python -m reference`` and ``python -m oracle``.

Both command lines are a registry of subcommands, ``{name: (summary, add_arguments, run,
examples)}``; bad usage or bad input is one line on stderr and exit status 2, never a
traceback; configurations are JSON objects with a known set of keys.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence

__all__ = ["Command", "UsageError", "build_parser", "read_config"]

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


def read_config(path: str, allowed: Sequence[str]) -> dict:
    """The JSON object in ``path``; ``layer_sizes`` (Network.save's name) is read as ``sizes``.

    Raises:
        UsageError: unreadable file, invalid JSON, not an object, or a key not in ``allowed``.
    """
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UsageError(f"config {path} must hold a JSON object, got {type(config).__name__}")
    if "layer_sizes" in config and "sizes" not in config:
        config["sizes"] = config.pop("layer_sizes")
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise UsageError(f"config {path}: unknown keys {unknown}; expected any of "
                         f"{list(allowed)}")
    return config

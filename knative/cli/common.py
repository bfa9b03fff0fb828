"""Pieces every command shares: the instance directory, output formats, errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

DATA_ENV = "KNFLOW_DATA"
DEFAULT_DATA = Path.home() / ".local" / "share" / "knflow"


class CliError(Exception):
    """A failure to report in one line; `code` is the exit status (1, or 2 for bad usage)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def add_global_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"instance directory (env {DATA_ENV}, default {DEFAULT_DATA})",
    )


def data_dir(args: argparse.Namespace) -> Path:
    """The local instance: --data, else $KNFLOW_DATA, else the per-user default."""
    chosen = getattr(args, "data", None) or os.environ.get(DATA_ENV) or DEFAULT_DATA
    return Path(chosen).expanduser().resolve()


def group(
    groups: argparse._SubParsersAction, name: str, help: str, aliases: Sequence[str] = ()
) -> argparse._SubParsersAction:
    """A noun (`service`, `trigger`, …) whose verbs are added to the returned subparsers."""
    parser = groups.add_parser(name, help=help, description=help, aliases=list(aliases))
    add_global_args(parser)
    parser.set_defaults(group_parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def command(
    groups: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int | None],
    help: str,
    output: bool = False,
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """A verb; `output=True` adds kn's `-o json|yaml`."""
    parser = groups.add_parser(name, help=help, description=help, aliases=list(aliases))
    add_global_args(parser)
    if output:
        parser.add_argument("-o", "--output", choices=("json", "yaml"), help="output format")
    parser.set_defaults(handler=handler)
    return parser


def emit(obj: Any, fmt: str | None) -> bool:
    """Print `obj` as JSON or YAML when asked; False when the caller should print a table."""
    if fmt == "json":
        print(json.dumps(obj, indent=2, default=str))
    elif fmt == "yaml":
        print(yaml.safe_dump(obj, sort_keys=False), end="")
    else:
        return False
    return True


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], file=None) -> None:
    """A kn-style table: upper-case headers, columns padded by three spaces."""
    cells = [[str(h).upper() for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=file)


def fail(message: str, code: int = 1) -> None:
    raise CliError(message, code)


def err(message: str) -> None:
    print(message, file=sys.stderr)

"""The `knflow` command line: kn-style `knflow <noun> <verb>` grammar.

Each module in `knative.cli.commands` registers its own command group, so adding a noun never
touches this file. Handlers return an exit code or raise `CliError`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import commands
from .common import CliError, add_global_args

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knflow",
        description="knflow: machine-learning pipelines as event-driven serverless functions.",
    )
    add_global_args(parser)
    groups = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # A bare noun (`knflow service`) prints that noun's help, as kn does.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 0 if argv is None or not argv else 2
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one readable line, the traceback only on request
        if os.environ.get("KNFLOW_DEBUG"):
            raise
        print(
            f"Error: {type(exc).__name__}: {exc} (set KNFLOW_DEBUG=1 for details)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

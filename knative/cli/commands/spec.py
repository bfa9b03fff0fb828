"""`knflow spec validate|show`."""

from __future__ import annotations

import argparse
import dataclasses

import yaml

from ...spec import SpecError, load_spec
from ..common import CliError, command, emit, group


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "spec", "Validate and show the pipeline spec (knflow.yaml)")
    validate = command(verbs, "validate", run_validate, "Validate a spec file")
    validate.add_argument("file", nargs="?", help="spec file (default: the shipped spec)")
    show = command(verbs, "show", run_show, "Print the effective spec", output=True)
    show.add_argument("--spec", help="spec file (default: the shipped spec)")
    show.add_argument("--resolved", action="store_true", help="show the typed, defaulted view")


def load_or_exit(path: str | None):
    """Load a spec or exit 2 with every problem on its own `file:line:` line."""
    try:
        return load_spec(path)
    except SpecError as exc:
        raise CliError(f"invalid spec\n{exc}", code=2) from None


def run_validate(args: argparse.Namespace) -> int:
    pipeline = load_or_exit(args.file)
    print(
        f"Spec '{pipeline.path}' is valid: {len(pipeline.services)} services, "
        f"{len(pipeline.triggers)} triggers, {len(pipeline.sources)} sources, "
        f"{len(pipeline.buckets)} buckets."
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    pipeline = load_or_exit(args.spec)
    doc = dataclasses.asdict(pipeline) if args.resolved else pipeline.raw
    if args.resolved:
        doc.pop("raw")
    if not emit(doc, args.output):
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    return 0

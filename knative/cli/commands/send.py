"""`knflow send`: put one CloudEvent on the running instance's broker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..common import CliError, data_dir, emit


def register(groups: argparse._SubParsersAction) -> None:
    # Not `common.command`: `--data` here is the event's data, as in the grammar, so the
    # instance directory comes from `knflow --data DIR send …` or $KNFLOW_DATA.
    about = "Send a CloudEvent to the broker (instance: `knflow --data DIR send …`)"
    cmd = groups.add_parser("send", help=about, description=about)
    cmd.add_argument("-o", "--output", choices=("json", "yaml"), help="output format")
    cmd.set_defaults(handler=run)
    cmd.add_argument("--type", required=True, help="event type, e.g. dev.knflow.training.requested")
    cmd.add_argument("--source", required=True, help="event source, e.g. /cli")
    cmd.add_argument("--subject", help="event subject (for object events: the key)")
    cmd.add_argument("--id", help="event id (default: a new UUID)")
    cmd.add_argument("--data", dest="event_data", help="JSON data, or @FILE to read it from a file")
    cmd.add_argument(
        "--extension",
        "-e",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extension attribute (repeatable), e.g. -e bucket=uploads",
    )


def parse_data(text: str | None) -> Any:
    """`--data`: inline JSON or `@file` holding JSON."""
    if text is None:
        return None
    where = "--data"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        where = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{where} is not valid JSON: {exc}", 2) from None


def parse_extensions(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--extension {item!r}: expected NAME=VALUE", 2)
        out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    from eventing.client import NoBroker, find_broker
    from eventing.events import new_event
    from eventing.http import to_json

    data = parse_data(args.event_data)
    try:
        event = new_event(
            args.type,
            args.source,
            data,
            subject=args.subject,
            id=args.id,
            **parse_extensions(args.extension),
        )
        doc = to_json(event)
    except Exception as exc:  # the SDK's validation errors: bad attribute names or values
        raise CliError(f"not a valid CloudEvent: {exc}", 2) from None
    try:
        broker = find_broker(data_dir(args))
        resp = broker.send(doc)
    except NoBroker as exc:
        raise CliError(str(exc)) from None
    if resp.status_code // 100 != 2:
        raise CliError(f"the broker refused the event ({resp.status_code}): {resp.text.strip()}")
    if not emit({"id": doc["id"], "status": resp.status_code, "broker": broker.url}, args.output):
        print(f"Event '{doc['id']}' of type '{args.type}' sent to broker {broker.url}.")
    return 0

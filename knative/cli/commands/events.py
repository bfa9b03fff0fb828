"""`knflow events tail`: watch events flow through the broker."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..common import CliError, command, group
from .broker import connect, fetch


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "events", "Watch events flow through the broker")
    tail = command(verbs, "tail", run_tail, "Show recent events; -f keeps following")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("-n", "--lines", type=int, default=20, help="recent entries to show first")
    tail.add_argument("--type", help="only this event type (a trailing * matches a prefix)")
    tail.add_argument("--source", help="only this event source (a trailing * matches a prefix)")
    tail.add_argument("--subject", help="only this subject (a trailing * matches a prefix)")
    tail.add_argument("--trigger", help="only what happened at this Trigger")
    tail.add_argument(
        "--kind",
        help="only accepted|delivered|retry|dead-lettered|failed|dropped",
    )
    tail.add_argument("-o", "--output", choices=("json",), help="one JSON object per line")


def line(entry: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(entry)
    stamp = time.strftime("%H:%M:%S", time.localtime(entry["time"]))
    stamp += f".{int(entry['time'] * 1000) % 1000:03d}"
    where = f" -> {entry['trigger']}" if entry.get("trigger") else ""
    code = f" ({entry['code']})" if entry.get("code") not in (None, "") else ""
    subject = f"  {entry['subject']}" if entry.get("subject") else ""
    return (
        f"{stamp}  {entry['kind']:<13} {entry['type']}  {entry['source']}{subject}"
        f"  id={entry['id']}{where}{code}"
    )


def run_tail(args: argparse.Namespace) -> int:
    filters = {
        k: getattr(args, k)
        for k in ("type", "source", "subject", "trigger", "kind")
        if getattr(args, k)
    }
    from eventing.client import NoBroker

    as_json = args.output == "json"
    if not args.follow:
        for entry in fetch(args, "/.knflow/events", limit=args.lines, **filters):
            print(line(entry, as_json))
        return 0
    try:
        for entry in connect(args).follow(limit=args.lines, **filters):
            print(line(entry, as_json), flush=True)
    except NoBroker as exc:
        raise CliError(str(exc)) from None
    raise CliError("the broker closed the stream (did `knflow up` stop?)")

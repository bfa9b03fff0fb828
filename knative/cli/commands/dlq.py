"""`knflow dlq list|replay`: the dead-letter queue (the `dead-letters` bucket)."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

from ..common import CliError, command, data_dir, emit, group, table

BUCKET = "dead-letters"
# Attributes the broker adds on the way: a replay starts the event's journey afresh.
BROKER_ATTRIBUTES = (
    "knativeerrordest",
    "knativeerrorcode",
    "knativeerrordata",
    "knativebrokerttl",
    "knativearrivaltime",
)


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "dlq", "Inspect and replay dead-lettered events")
    command(verbs, "list", run_list, "List dead-lettered events", output=True, aliases=["ls"])
    replay = command(verbs, "replay", run_replay, "Send dead-lettered events to the broker again")
    replay.add_argument("ids", nargs="+", metavar="ID", help="event id(s) from `knflow dlq list`")
    replay.add_argument("--keep", action="store_true", help="keep the entry after the replay")


def open_dead_letters(args: argparse.Namespace):
    """The instance's object store (from instance.json, else the local store in --data)."""
    from storage import StoreError, open_store

    root = data_dir(args)
    try:
        instance = json.loads((root / ".knflow" / "instance.json").read_text())
    except (OSError, ValueError):
        instance = {}
    try:
        return open_store(instance.get("store_url") or f"file://{Path(root)}")
    except StoreError as exc:
        raise CliError(str(exc)) from None


def load_entries(store) -> list[tuple[str, dict[str, Any]]]:
    from storage import NoSuchBucket

    try:
        infos = list(store.iter_objects(BUCKET))
    except NoSuchBucket:
        return []
    out = []
    for info in infos:
        try:
            out.append((info.key, json.loads(store.get(BUCKET, info.key))))
        except ValueError:
            continue  # not something the deadletter function wrote
    return out


def reason(doc: dict[str, Any], width: int = 60) -> str:
    raw = doc.get("knativeerrordata")
    if not raw:
        return ""
    try:
        text = base64.b64decode(raw).decode("utf-8", "replace")
    except ValueError:
        text = raw
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def run_list(args: argparse.Namespace) -> int:
    entries = load_entries(open_dead_letters(args))
    if emit([doc for _, doc in entries], args.output):
        return 0
    if not entries:
        print("No dead-lettered events.")
        return 0
    rows = [
        [
            doc.get("id", key),
            doc.get("type", ""),
            doc.get("knativeerrorcode", "-"),
            doc.get("knativeerrordest", ""),
            doc.get("knativearrivaltime", doc.get("time", "")),
            reason(doc),
        ]
        for key, doc in entries
    ]
    table(rows, ["id", "type", "code", "destination", "arrived", "reason"])
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from eventing.client import NoBroker, find_broker

    store = open_dead_letters(args)
    entries = {doc.get("id", key): (key, doc) for key, doc in load_entries(store)}
    missing = [i for i in args.ids if i not in entries]
    if missing:
        raise CliError(f"no dead-lettered event with id {', '.join(map(repr, missing))}")
    try:
        broker = find_broker(data_dir(args))
        for event_id in args.ids:
            key, doc = entries[event_id]
            event = {k: v for k, v in doc.items() if k not in BROKER_ATTRIBUTES}
            resp = broker.send(event)
            if resp.status_code // 100 != 2:
                raise CliError(
                    f"the broker refused {event_id!r} ({resp.status_code}): {resp.text.strip()}"
                )
            if not args.keep:
                store.delete(BUCKET, key)
            print(f"Event '{event_id}' replayed{'' if args.keep else ' and removed from the DLQ'}.")
    except NoBroker as exc:
        raise CliError(str(exc)) from None
    return 0

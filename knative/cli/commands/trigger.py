"""`knflow trigger list|describe`: Triggers as the running broker sees them."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..common import command, emit, group, table
from .broker import fetch, print_conditions


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "trigger", "Inspect Triggers")
    command(verbs, "list", run_list, "List Triggers", output=True, aliases=["ls"])
    describe = command(verbs, "describe", run_describe, "Show one Trigger", output=True)
    describe.add_argument("name")


def _sink(trigger: dict[str, Any]) -> str:
    subscriber = trigger["spec"].get("subscriber") or {}
    if "ref" in subscriber:
        return f"ksvc:{subscriber['ref'].get('name')}"
    return str(subscriber.get("uri", ""))


def _ready(trigger: dict[str, Any]) -> tuple[str, str, str]:
    conditions = trigger["status"]["conditions"]
    ok = sum(c["status"] == "True" for c in conditions)
    ready = next(c for c in conditions if c["type"] == "Ready")
    reason = next((c.get("message", "") for c in conditions if c["status"] != "True"), "")
    return f"{ok} OK / {len(conditions)}", ready["status"], reason


def run_list(args: argparse.Namespace) -> int:
    doc = fetch(args, "/.knflow/triggers")
    if emit(doc, args.output):
        return 0
    rows = []
    for t in doc["items"]:
        stats = t["status"]["knflow"]
        conditions, ready, reason = _ready(t)
        rows.append(
            [
                t["metadata"]["name"],
                t["spec"]["broker"],
                _sink(t),
                stats["delivered"],
                stats["backlog"],
                stats["deadLettered"],
                conditions,
                ready,
                reason,
            ]
        )
    if not rows:
        print("No triggers found.")
        return 0
    table(
        rows,
        ["name", "broker", "sink", "delivered", "backlog", "dead", "conditions", "ready", "reason"],
    )
    return 0


def run_describe(args: argparse.Namespace) -> int:
    t = fetch(args, f"/.knflow/triggers/{args.name}")
    if emit(t, args.output):
        return 0
    spec, status, stats = t["spec"], t["status"], t["status"]["knflow"]
    print(f"Name:         {t['metadata']['name']}")
    print(f"Namespace:    {t['metadata']['namespace']}")
    print(f"Broker:       {spec['broker']}")
    if spec.get("filters"):
        print(f"Filters:      {json.dumps(spec['filters'])}")
    elif (spec.get("filter") or {}).get("attributes"):
        print("Filter:")
        for key, value in spec["filter"]["attributes"].items():
            print(f"  {key}:{' ' * max(1, 10 - len(key))}{value}")
    print()
    print("Sink:")
    print(f"  Name:       {_sink(t)}")
    print(f"  URI:        {status['subscriberUri'] or '(not resolved yet)'}")
    print()
    d = stats["delivery"]
    dls = d["deadLetterSink"]
    print("Delivery:")
    print(
        f"  retry {d['retry']}, backoff {d['backoffPolicy']} {d['backoffDelay']:g}s, "
        f"timeout {d['timeout']:g}s, dead-letter sink "
        f"{(dls or {}).get('ref', {}).get('name') or (dls or {}).get('uri') or 'none'}"
    )
    print()
    print("Events:")
    print(
        f"  delivered {stats['delivered']}, retries {stats['retries']}, dead-lettered "
        f"{stats['deadLettered']}, failed {stats['failed']}, replies {stats['replies']}, "
        f"backlog {stats['backlog']} ({stats['inFlight']} in flight)"
    )
    if stats.get("lastError"):
        print(f"  last error: {stats['lastError']}")
    print()
    print_conditions(status["conditions"])
    return 0

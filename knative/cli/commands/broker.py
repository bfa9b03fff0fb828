"""`knflow broker describe`: the running Broker, shaped like Knative's."""

from __future__ import annotations

import argparse
from typing import Any

from ..common import CliError, command, data_dir, emit, group


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "broker", "Inspect the Broker")
    command(verbs, "describe", run_describe, "Show the Broker and its status", output=True)


def connect(args: argparse.Namespace):
    """The instance's broker client, or a one-line CliError when none runs."""
    from eventing.client import NoBroker, find_broker  # requests: only when talking to it

    try:
        return find_broker(data_dir(args))
    except NoBroker as exc:
        raise CliError(str(exc)) from None


def fetch(args: argparse.Namespace, path: str, **params: Any) -> Any:
    from eventing.client import NoBroker

    try:
        return connect(args).get(path, **params)
    except NoBroker as exc:
        raise CliError(str(exc)) from None
    except LookupError as exc:
        raise CliError(str(exc)) from None


def print_conditions(conditions: list[dict[str, str]]) -> None:
    """kn's condition block: `++` true, `!!` false."""
    print("Conditions:")
    width = max([len(c["type"]) for c in conditions] + [4])
    print(f"  OK {'TYPE'.ljust(width)}   REASON")
    for c in conditions:
        mark = "++" if c["status"] == "True" else "!!"
        print(f"  {mark} {c['type'].ljust(width)}   {c.get('message', '')}".rstrip())


def run_describe(args: argparse.Namespace) -> int:
    broker = fetch(args, "/.knflow/broker")
    if emit(broker, args.output):
        return 0
    meta, status = broker["metadata"], broker["status"]
    stats = status.get("knflow", {})
    delivery = broker["spec"].get("delivery") or {}
    print(f"Name:         {meta['name']}")
    print(f"Namespace:    {meta['namespace']}")
    print(f"Created:      {meta.get('creationTimestamp', '')}")
    print()
    print("Address:")
    print(f"  URL:        {status['address']['url']}")
    print()
    print("Delivery:")
    if not delivery:
        print("  (no retries, no dead-letter sink)")
    for key, value in delivery.items():
        print(f"  {key + ':':16}{_short(value)}")
    print()
    print("Events:")
    print(
        f"  accepted {stats.get('accepted', 0)}, rejected {stats.get('rejected', 0)}, "
        f"dropped by TTL {stats.get('dropped', 0)}, pending {stats.get('pending', 0)}, "
        f"recovered at start {stats.get('recovered', 0)}"
    )
    journal = stats.get("journal", {})
    print(
        f"  journal: {journal.get('records', 0)} records in {journal.get('commits', 0)} "
        f"fsyncs, {journal.get('segments', 0)} segment(s)"
    )
    print()
    print_conditions(status["conditions"])
    return 0


def _short(value: Any) -> str:
    if isinstance(value, dict):
        if "ref" in value:
            return f"service {value['ref'].get('name')}"
        if "uri" in value:
            return str(value["uri"])
    return str(value)

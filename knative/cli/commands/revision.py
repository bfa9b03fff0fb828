"""`knflow revision list [-s NAME]`."""

from __future__ import annotations

import argparse

from ..common import command, emit, group, table
from ..control import Control, age, condition_summary


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(
        groups, "revision", "List the services' revisions (kn revision …)", aliases=("revisions",)
    )
    listing = command(verbs, "list", run_list, "List revisions", output=True, aliases=("ls",))
    listing.add_argument("-s", "--service", help="only this service's revisions")


def run_list(args: argparse.Namespace) -> int:
    control = Control(args)
    doc = control.revisions(args.service)
    if emit(doc, args.output):
        return 0
    items = doc["items"]
    if not items:
        print("No revisions found.")
        return 0
    services = {}
    rows = []
    for rev in sorted(
        items,
        key=lambda r: (
            r["metadata"]["labels"]["serving.knative.dev/service"],
            r["metadata"]["name"],
        ),
        reverse=True,
    ):
        labels = rev["metadata"]["labels"]
        svc_name = labels["serving.knative.dev/service"]
        if svc_name not in services:
            services[svc_name] = control.service(svc_name)
        traffic = services[svc_name]["status"].get("traffic") or []
        mine = [t for t in traffic if t["revisionName"] == rev["metadata"]["name"]]
        percent = sum(t["percent"] for t in mine)
        tags = ",".join(t["tag"] for t in mine if t.get("tag"))
        conditions, ready, reason = condition_summary(rev)
        rows.append(
            [
                rev["metadata"]["name"],
                svc_name,
                f"{percent}%" if mine else "",
                tags,
                labels["serving.knative.dev/configurationGeneration"],
                age(rev["metadata"].get("creationTimestamp")),
                conditions,
                ready,
                reason,
            ]
        )
    table(
        rows,
        [
            "name",
            "service",
            "traffic",
            "tags",
            "generation",
            "age",
            "conditions",
            "ready",
            "reason",
        ],
    )
    return 0

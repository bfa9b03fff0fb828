"""`knflow service list|describe|update`: kn's service commands against the running instance."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from ..common import CliError, command, emit, group, table
from ..control import SERVING, Control, age, condition_summary

AUTOSCALING = "autoscaling.knative.dev/"


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(
        groups,
        "service",
        "Manage the pipeline's services (kn service …)",
        aliases=("services", "ksvc"),
    )
    command(verbs, "list", run_list, "List services", output=True, aliases=("ls",))
    describe = command(verbs, "describe", run_describe, "Show details of a service", output=True)
    describe.add_argument("name")
    update = command(
        verbs,
        "update",
        run_update,
        "Update a service (a template change creates a new revision)",
        output=True,
    )
    update.add_argument("name")
    update.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an environment variable (KEY- removes it); repeatable",
    )
    update.add_argument("--image", help="container image, or bundle:///dir for a local bundle")
    update.add_argument("--scale-min", type=int, metavar="N", help="minimum replicas")
    update.add_argument("--scale-max", type=int, metavar="N", help="maximum replicas (0: none)")
    update.add_argument(
        "--scale-target",
        type=float,
        metavar="N",
        help="concurrency target per replica (autoscaling.knative.dev/target)",
    )
    update.add_argument(
        "--concurrency-limit",
        type=int,
        metavar="N",
        help="hard limit of requests per replica (containerConcurrency)",
    )
    update.add_argument(
        "--annotation",
        "-a",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a template annotation (KEY- removes it); repeatable",
    )
    update.add_argument(
        "--traffic",
        action="append",
        default=[],
        metavar="REV=PCT,...",
        help="split traffic: revision name, tag or @latest = percent",
    )
    update.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="REV=TAG",
        help="tag a revision (@latest for the latest); repeatable",
    )
    update.add_argument("--no-wait", action="store_true", help="do not wait for readiness")
    update.add_argument("--wait-timeout", type=float, default=120, metavar="SECONDS")


def run_list(args: argparse.Namespace) -> int:
    items = Control(args).services()
    if emit(
        {"apiVersion": "serving.knative.dev/v1", "kind": "ServiceList", "items": items}, args.output
    ):
        return 0
    if not items:
        print("No services found.")
        return 0
    rows = []
    for svc in items:
        status = svc.get("status") or {}
        conditions, ready, reason = condition_summary(svc)
        rows.append(
            [
                svc["metadata"]["name"],
                status.get("url", ""),
                status.get("latestCreatedRevisionName", ""),
                age(svc["metadata"].get("creationTimestamp")),
                conditions,
                ready,
                reason,
            ]
        )
    table(rows, ["name", "url", "latest", "age", "conditions", "ready", "reason"])
    return 0


def run_describe(args: argparse.Namespace) -> int:
    control = Control(args)
    svc = control.service(args.name)
    if emit(svc, args.output):
        return 0
    stats = control.stats(args.name)
    _describe(svc, stats)
    return 0


def _describe(svc: dict[str, Any], stats: dict[str, Any]) -> None:
    meta, status = svc["metadata"], svc.get("status") or {}
    print(f"Name:       {meta['name']}")
    print(f"Namespace:  {meta['namespace']}")
    print(f"Age:        {age(meta.get('creationTimestamp'))}")
    print(f"URL:        {status.get('url', '')}")
    print()
    print("Revisions:")
    template = svc["spec"]["template"]
    for target in status.get("traffic") or []:
        name = target["revisionName"]
        label = f"@latest ({name})" if target.get("latestRevision") else name
        tag = f" #{target['tag']}" if target.get("tag") else ""
        rev = stats["revisions"].get(name, {})
        print(f"  {target['percent']:>3}%  {label}{tag}")
        print(
            f"        Replicas:  {rev.get('ready_replicas', 0)}/{rev.get('desired_replicas', 0)}"
            f"  in flight: {rev.get('in_flight', 0)}  target: {rev.get('target', '')}"
        )
    container = template["spec"]["containers"][0]
    print(f"  Image:  {container['image']}")
    annotations = template["metadata"].get("annotations") or {}
    scale = {
        k.removeprefix(AUTOSCALING): v for k, v in annotations.items() if k.startswith(AUTOSCALING)
    }
    if scale:
        print("  Autoscaling:  " + ", ".join(f"{k}={v}" for k, v in sorted(scale.items())))
    print(f"  Concurrency:  limit {template['spec'].get('containerConcurrency', 0)}")
    if container.get("env"):
        print("  Env:  " + ", ".join(f"{e['name']}={e.get('value', '')}" for e in container["env"]))
    print()
    print("Conditions:")
    rows = []
    for c in status.get("conditions") or []:
        ok = {"True": "++", "False": "!!"}.get(c.get("status"), "??")
        rows.append(
            [
                ok,
                c["type"],
                age(c.get("lastTransitionTime")),
                c.get("reason", "") + (f": {c['message']}" if c.get("message") else ""),
            ]
        )
    table(rows, ["ok", "type", "age", "reason"])


def run_update(args: argparse.Namespace) -> int:
    control = Control(args)
    current = control.service(args.name)
    patch = build_patch(current, args)
    if not patch:
        raise CliError(
            "nothing to update: give at least one of --env, --image, --scale-*, "
            "--concurrency-limit, --annotation, --traffic, --tag",
            2,
        )
    before = current["status"].get("latestCreatedRevisionName")
    updated = control.patch_service(args.name, patch)
    progress = sys.stderr if args.output else sys.stdout  # keep -o json|yaml parseable
    print(
        f"Updating Service '{args.name}' in namespace '{current['metadata']['namespace']}':",
        file=progress,
    )
    latest = updated["status"]["latestCreatedRevisionName"]
    if latest != before and not args.no_wait:
        updated = _wait_ready(control, args.name, latest, args.wait_timeout, progress)
    if emit(updated, args.output):
        return 0
    url = updated["status"]["url"]
    if latest != before:
        print(
            f"\nService '{args.name}' updated to latest revision '{latest}' is available at "
            f"URL:\n{url}"
        )
    else:
        print(
            f"\nService '{args.name}' with latest revision '{latest}' (unchanged) is available "
            f"at URL:\n{url}"
        )
    return 0


def _wait_ready(
    control: Control, name: str, revision: str, timeout: float, progress: TextIO
) -> dict[str, Any]:
    """Wait for the new revision as kn does, printing its progress."""
    t0 = time.monotonic()
    print(
        f"\n  {0.0:6.3f}s The Configuration is still working to reflect the latest desired "
        "specification.",
        file=progress,
        flush=True,
    )
    while True:
        svc = control.service(name)
        rev = control.call("GET", SERVING + f"/revisions/{revision}")
        ready = next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")
        if ready["status"] == "True":
            print(f"  {time.monotonic() - t0:6.3f}s Ready to serve.", file=progress, flush=True)
            return svc
        if ready["status"] == "False":
            raise CliError(
                f"revision '{revision}' failed to become ready: "
                f"{ready.get('message', ready.get('reason', ''))}"
            )
        if time.monotonic() - t0 > timeout:
            raise CliError(
                f"revision '{revision}' not ready after {timeout:.0f}s "
                "(use --wait-timeout, or check `knflow revision list`)"
            )
        time.sleep(0.2)


def build_patch(current: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """A merge-patch of the service from the flags (template and/or traffic)."""
    template = current["spec"]["template"]
    annotations: dict[str, Any] = {}
    tspec: dict[str, Any] = {}
    container = dict(template["spec"]["containers"][0])
    container_changed = False
    if args.env:
        env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        for item in args.env:
            if item.endswith("-") and "=" not in item:
                env.pop(item[:-1], None)
                continue
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CliError(f"--env {item!r}: expected KEY=VALUE (or KEY- to remove)", 2)
            env[key] = value
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        container_changed = True
    if args.image:
        container["image"] = args.image
        container_changed = True
    if container_changed:
        tspec["containers"] = [container]
    for flag, key in (
        ("scale_min", "min-scale"),
        ("scale_max", "max-scale"),
        ("scale_target", "target"),
    ):
        value = getattr(args, flag)
        if value is not None:
            annotations[AUTOSCALING + key] = _number(value)
    for item in args.annotation:
        if item.endswith("-") and "=" not in item:
            annotations[item[:-1]] = None
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--annotation {item!r}: expected KEY=VALUE (or KEY- to remove)", 2)
        annotations[key] = value
    if args.concurrency_limit is not None:
        tspec["containerConcurrency"] = args.concurrency_limit
    patch: dict[str, Any] = {}
    if annotations or tspec:
        patch["spec"] = {"template": {}}
        if annotations:
            patch["spec"]["template"]["metadata"] = {"annotations": annotations}
        if tspec:
            patch["spec"]["template"]["spec"] = tspec
    traffic = _traffic(current, args.traffic, args.tag)
    if traffic is not None:
        patch.setdefault("spec", {})["traffic"] = traffic
    return patch


def _traffic(current: dict[str, Any], splits: list[str], tags: list[str]) -> list | None:
    """kn's --traffic/--tag: --traffic replaces the split; --tag names revisions in it."""
    if not splits and not tags:
        return None
    tag_of: dict[str, str] = {}
    for item in tags:
        rev, sep, tag = item.partition("=")
        if not sep or not rev or not tag:
            raise CliError(f"--tag {item!r}: expected REVISION=TAG (or @latest=TAG)", 2)
        tag_of[rev] = tag
    existing = [dict(t) for t in current["spec"].get("traffic") or []]
    by_tag = {t["tag"]: t for t in existing if t.get("tag")}
    if splits:
        targets = []
        for item in ",".join(splits).split(","):
            ref, sep, pct = item.strip().rpartition("=")
            if not sep or not ref:
                raise CliError(f"--traffic {item!r}: expected REVISION=PERCENT", 2)
            try:
                percent = int(pct.rstrip("%"))
            except ValueError:
                raise CliError(
                    f"--traffic {item!r}: {pct!r} is not a whole percentage", 2
                ) from None
            if ref == "@latest":
                target = {"latestRevision": True, "percent": percent}
            elif ref in by_tag:
                target = {k: v for k, v in by_tag[ref].items() if k != "percent"}
                target["percent"] = percent
            elif ref in tag_of.values():
                rev = next(r for r, t in tag_of.items() if t == ref)
                target = {"latestRevision": True} if rev == "@latest" else {"revisionName": rev}
                target["percent"] = percent
            else:
                target = {"revisionName": ref, "percent": percent}
            targets.append(target)
    else:
        targets = existing
    for rev, tag in tag_of.items():
        for t in targets:
            if t.get("tag") == tag:
                t.pop("tag")
        match = next(
            (
                t
                for t in targets
                if (rev == "@latest" and t.get("latestRevision")) or t.get("revisionName") == rev
            ),
            None,
        )
        if match is None:
            match = {"latestRevision": True} if rev == "@latest" else {"revisionName": rev}
            match["percent"] = 0
            targets.append(match)
        match["tag"] = tag
    return targets


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

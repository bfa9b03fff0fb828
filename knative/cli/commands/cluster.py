"""`knflow render [minio]`, `knflow deploy`, `knflow status`: the pipeline on a Knative cluster."""

from __future__ import annotations

import argparse
import json
import sys

from ...cluster import Cluster, ClusterUnreachable, deploy, status
from ...render import (
    CrdsNotFound,
    RenderError,
    cluster_notes,
    minio_commands,
    render,
    to_json,
    to_yaml,
    validate_all,
)
from ..common import CliError, command, err, table
from .spec import load_or_exit


def register(groups: argparse._SubParsersAction) -> None:
    rend = command(groups, "render", run_render, "Print the pipeline as Knative resources")
    _target_args(rend)
    rend.add_argument(
        "-o", "--output", choices=("yaml", "json"), default="yaml", help="output format"
    )
    rend.add_argument(
        "--validate",
        action="store_true",
        help="check every resource against the Knative CRDs and Kubernetes schemas instead",
    )
    what = rend.add_subparsers(title="commands", metavar="COMMAND")
    minio = what.add_parser(
        "minio",
        help="Print the mc commands that send a bucket's notifications to the receiver",
        description="Print the mc commands that send a bucket's notifications to the receiver",
    )
    minio.add_argument("--spec", default=argparse.SUPPRESS, help="spec file")
    minio.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace")
    minio.add_argument(
        "--bucket",
        action="append",
        dest="buckets",
        metavar="BUCKET",
        help="bucket to notify about (repeatable; default: uploads)",
    )
    minio.add_argument("--alias", default="myminio", help="mc alias of the MinIO server")
    minio.add_argument("--endpoint", help="receiver URL (default: its cluster-local address)")
    minio.set_defaults(handler=run_minio)

    dep = command(groups, "deploy", run_deploy, "Apply the pipeline to the current cluster")
    _target_args(dep)
    dep.add_argument(
        "--dry-run",
        action="store_true",
        help="let the API server validate and default everything, persisting nothing",
    )
    dep.add_argument("--context", help="kubeconfig context (default: the current one)")

    st = command(groups, "status", run_status, "Show each deployed resource's Ready condition")
    _target_args(st, images=False)
    st.add_argument("-o", "--output", choices=("json", "yaml"), help="output format")
    st.add_argument("--context", help="kubeconfig context (default: the current one)")


def _target_args(parser: argparse.ArgumentParser, images: bool = True) -> None:
    parser.add_argument("--spec", help="spec file (default: the shipped spec)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the spec's)")
    if images:
        parser.add_argument(
            "--image-registry",
            metavar="REG",
            help="registry of the knflow-function image (env KNFLOW_IMAGE_REGISTRY)",
        )
        parser.add_argument("--store-url", help="object store URL the functions use (MinIO)")


def _render(args: argparse.Namespace, notes: bool = True) -> list[dict]:
    pipeline = load_or_exit(args.spec)
    try:
        docs = render(
            pipeline,
            args.namespace,
            getattr(args, "image_registry", None),
            store_url=getattr(args, "store_url", None),
        )
    except RenderError as exc:
        raise CliError(str(exc)) from None
    for note in cluster_notes(pipeline) if notes else []:
        err(f"Note: {note}")
    return docs


def run_render(args: argparse.Namespace) -> int:
    docs = _render(args)
    if args.validate:
        try:
            problems = validate_all(docs)
        except CrdsNotFound as exc:
            raise CliError(str(exc)) from None
        for problem in problems:
            print(problem)
        if problems:
            raise CliError(f"{len(problems)} problems in {len(docs)} resources")
        print(f"All {len(docs)} resources are valid.")
        return 0
    sys.stdout.write(to_json(docs) + "\n" if args.output == "json" else to_yaml(docs))
    return 0


def run_minio(args: argparse.Namespace) -> int:
    pipeline = load_or_exit(getattr(args, "spec", None))
    try:
        lines = minio_commands(
            pipeline,
            getattr(args, "namespace", None),
            args.buckets,
            alias=args.alias,
            endpoint=args.endpoint,
        )
    except RenderError as exc:
        raise CliError(str(exc)) from None
    print("\n".join(lines))
    return 0


def _connect(args: argparse.Namespace) -> Cluster:
    try:
        return Cluster.connect(args.context)
    except ClusterUnreachable as exc:
        raise CliError(str(exc)) from None


def run_deploy(args: argparse.Namespace) -> int:
    docs = _render(args)
    cluster = _connect(args)
    suffix = " (server dry run)" if args.dry_run else ""
    try:
        results = deploy(
            cluster, docs, dry_run=args.dry_run, progress=lambda r: print(r.line + suffix)
        )
    except ClusterUnreachable as exc:
        raise CliError(str(exc)) from None
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        raise CliError(f"{len(failed)} of {len(results)} resources were not applied")
    counts = {o: sum(r.outcome == o for r in results) for o in ("created", "configured")}
    namespace = docs[-1]["metadata"].get("namespace", "")
    print(
        f"\nPipeline applied to namespace '{namespace}'{suffix}: {counts['created']} created, "
        f"{counts['configured']} configured, "
        f"{len(results) - sum(counts.values())} unchanged."
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    docs = _render(args, notes=False)
    cluster = _connect(args)
    try:
        rows = status(cluster, docs)
    except ClusterUnreachable as exc:
        raise CliError(str(exc)) from None
    if args.output:
        items = [r.as_dict() for r in rows]
        if args.output == "json":
            print(json.dumps(items, indent=2))
        else:
            import yaml

            print(yaml.safe_dump(items, sort_keys=False), end="")
        return 0
    table(
        [(r.kind, r.name, r.url, r.conditions_summary, r.ready, r.reason) for r in rows],
        ("kind", "name", "url", "conditions", "ready", "reason"),
    )
    return 0

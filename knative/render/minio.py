"""The `mc` commands that point a MinIO bucket's notifications at knflow's webhook receiver.

The suffixes come from the Triggers: a bucket whose Triggers only want `.wav`/`.flac`/… objects
gets one `mc event add` per suffix, so MinIO does not send events nobody consumes.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

from ..spec import Pipeline, Source, Trigger
from .common import RenderError
from .services import receiver_path, receiver_secret

TARGET_ID = "knflow"  # notify_webhook:<id> and the ARN arn:minio:sqs::<id>:webhook
DEFAULT_TOKEN_ENV = "KNFLOW_MINIO_TOKEN"


def minio_commands(
    pipeline: Pipeline,
    namespace: str | None = None,
    buckets: list[str] | None = None,
    alias: str = "myminio",
    endpoint: str | None = None,
) -> list[str]:
    """Shell lines (comments included) to configure MinIO for this pipeline's receiver."""
    source = _receiver(pipeline)
    namespace = namespace or pipeline.namespace
    buckets = buckets or ["uploads"]
    if unknown := [b for b in buckets if b not in pipeline.buckets]:
        raise RenderError(
            f"bucket '{unknown[0]}' is not listed under buckets in {pipeline.path} "
            f"(buckets: {', '.join(pipeline.buckets)})"
        )
    endpoint = endpoint or (
        f"http://{source.name}.{namespace}.svc.cluster.local{receiver_path(source)}"
    )
    token_env = source.auth_token_env or DEFAULT_TOKEN_ENV
    secret = receiver_secret(source)
    q = shlex.quote
    lines = [
        f"# MinIO -> knflow receiver '{source.name}' ({endpoint}).",
        f"# The token must match Secret {secret} (key 'token') in namespace {namespace}:",
        f"#   kubectl -n {q(namespace)} create secret generic {secret} "
        f'--from-literal=token="${token_env}"',
        f"mc admin config set {q(alias)} notify_webhook:{TARGET_ID} "
        f'endpoint={q(endpoint)} auth_token="${{{token_env}}}"',
        f"mc admin service restart {q(alias)}",
    ]
    arn = f"arn:minio:sqs::{TARGET_ID}:webhook"
    for bucket in buckets:
        suffixes = wanted_suffixes(pipeline.triggers, bucket)
        base = f"mc event add {q(f'{alias}/{bucket}')} {arn} --event put,delete"
        lines += [f"{base} --suffix {q(s)}" for s in suffixes] if suffixes else [base]
    return lines


def wanted_suffixes(triggers: list[Trigger], bucket: str) -> list[str]:
    """Key suffixes the Triggers on `bucket` filter for; [] means every object is wanted."""
    found: set[str] = set()
    for trig in triggers:
        trees = [{"exact": trig.filter_attributes}, *trig.filters]
        if not any(_mentions_bucket(tree, bucket) for tree in trees):
            continue
        suffixes = {s for tree in trees for s in _subject_suffixes(tree)}
        if not suffixes:
            return []  # this Trigger wants every object of the bucket
        found |= suffixes
    return sorted(found)


def _receiver(pipeline: Pipeline) -> Source:
    for src in pipeline.sources:
        if src.kind == "minio-webhook":
            return src
    raise RenderError(f"{pipeline.path} has no source of kind 'minio-webhook' to notify")


def _walk(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for key in ("all", "any"):
            for sub in tree.get(key) or []:
                yield from _walk(sub)
        # `not` subtrees exclude objects: their suffixes are not ones to subscribe to.


def _mentions_bucket(tree: dict[str, Any], bucket: str) -> bool:
    return any((node.get("exact") or {}).get("bucket") == bucket for node in _walk(tree))


def _subject_suffixes(tree: dict[str, Any]) -> set[str]:
    return {
        node["suffix"]["subject"] for node in _walk(tree) if "subject" in (node.get("suffix") or {})
    }

"""The one entry point: a pipeline in, every Kubernetes/Knative resource it needs out."""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..spec import Pipeline
from .common import Target
from .config import namespace as namespace_docs
from .config import spec_config_map
from .eventing import broker, triggers
from .rbac import rbac
from .services import function_services, receiver_services
from .sources import ping_sources, sink_bindings

# Knative's default `max-revision-timeout-seconds` (config-defaults); longer needs a config change.
KNATIVE_MAX_TIMEOUT = 600


def render(
    pipeline: Pipeline,
    namespace: str | None = None,
    image_registry: str | None = None,
    *,
    store_url: str | None = None,
) -> list[dict[str, Any]]:
    """Every resource, in apply order (config and RBAC before the workloads that use them)."""
    target = Target.of(pipeline, namespace, image_registry, store_url)
    return [
        *namespace_docs(target),
        spec_config_map(target),
        *rbac(target),
        *function_services(target),
        *receiver_services(target),
        broker(target),
        *triggers(target),
        *sink_bindings(target),
        *ping_sources(target),
    ]


def cluster_notes(pipeline: Pipeline) -> list[str]:
    """Cluster settings the rendered resources rely on beyond Knative's defaults."""
    notes = []
    longest = max((s.timeout_seconds for s in pipeline.services), default=0)
    if longest > KNATIVE_MAX_TIMEOUT:
        slow = [s.name for s in pipeline.services if s.timeout_seconds > KNATIVE_MAX_TIMEOUT]
        notes.append(
            f"services {', '.join(slow)} need timeoutSeconds up to {longest}: set "
            f"max-revision-timeout-seconds >= {longest} in the knative-serving config-defaults"
        )
    if any(t.delivery.timeout is not None for t in pipeline.triggers) or (
        pipeline.broker.delivery.timeout is not None
    ):
        notes.append("delivery timeouts need delivery-timeout: enabled in config-features")
    return notes


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """Multi-document YAML, as `kubectl apply -f -` reads it."""
    return "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)


def to_json(docs: list[dict[str, Any]]) -> str:
    """A `v1 List`, as `kubectl get -o json` writes several objects."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}, indent=2)

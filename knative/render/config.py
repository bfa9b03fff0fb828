"""The Namespace and the ConfigMap that carries the spec (the whole pipeline, and the part the
MinIO receiver runs: its sources only)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .common import SPEC_CONFIGMAP, Target
from .services import RECEIVER_SPEC_KEY

SPEC_KEY = "knflow.yaml"


# SinkBindings act only in namespaces with this label when Eventing runs them in inclusion mode.
SINK_BINDING_INCLUDE = {"bindings.knative.dev/include": "true"}


def namespace(target: Target) -> list[dict[str, Any]]:
    """The namespace, unless it is `default` (which every cluster has and nobody should relabel)."""
    if target.namespace == "default":
        return []
    return [
        target.resource(
            "v1",
            "Namespace",
            target.namespace,
            "namespace",
            labels=SINK_BINDING_INCLUDE,
            namespaced=False,
        )
    ]


def spec_config_map(target: Target) -> dict[str, Any]:
    raw = copy.deepcopy(target.pipeline.raw)
    raw.setdefault("metadata", {})["namespace"] = target.namespace
    receiver = {
        "apiVersion": raw.get("apiVersion"),
        "kind": raw.get("kind"),
        "metadata": raw["metadata"],
        "broker": {"name": target.pipeline.broker.name},
        "sources": [s for s in raw.get("sources") or [] if s.get("kind") == "minio-webhook"],
    }
    data = {SPEC_KEY: _dump(raw), RECEIVER_SPEC_KEY: _dump(receiver)}
    return target.resource("v1", "ConfigMap", SPEC_CONFIGMAP, "config", data=data)


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)

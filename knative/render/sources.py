"""Event sources in a cluster: SinkBindings that hand the Broker's address (K_SINK) to the MinIO
receiver and to the functions, and a PingSource per `ping` source (the autoscaling tick).

`store` sources have no resource of their own in a cluster: MinIO itself notifies the receiver
(see `knflow render minio`).
"""

from __future__ import annotations

import json
from typing import Any

from ..spec import Source
from .common import SERVING_V1, SINK_LABEL, SOURCES_V1, Target

FUNCTIONS_BINDING = "knflow-functions"


def sink_bindings(target: Target) -> list[dict[str, Any]]:
    docs = [
        _binding(target, f"{src.name}-sink", {"name": src.name})
        for src in target.pipeline.sources
        if src.kind == "minio-webhook"
    ]
    if target.pipeline.services:
        # Functions that emit more than one reply (fan-out, progress) post to K_SINK.
        docs.append(
            _binding(
                target, FUNCTIONS_BINDING, {"selector": {"matchLabels": {SINK_LABEL: "broker"}}}
            )
        )
    return docs


def _binding(target: Target, name: str, subject: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "subject": {"apiVersion": SERVING_V1, "kind": "Service", **subject},
        "sink": target.broker_ref(),
    }
    return target.resource(SOURCES_V1, "SinkBinding", name, "source", spec=spec)


def ping_sources(target: Target) -> list[dict[str, Any]]:
    return [ping_source(target, src) for src in target.pipeline.sources if src.kind == "ping"]


def ping_source(target: Target, src: Source) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": src.schedule or "* * * * *"}
    if src.data is not None:
        spec["contentType"] = src.content_type
        spec["data"] = src.data if isinstance(src.data, str) else json.dumps(src.data)
    spec["sink"] = target.broker_ref()
    return target.resource(SOURCES_V1, "PingSource", src.name, "source", spec=spec)

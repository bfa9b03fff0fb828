"""What every renderer shares: the target cluster, labels, metadata, destinations, durations."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

from eventing.durations import format_duration

from ..spec import Delivery, Destination, Pipeline

PART_OF = "app.kubernetes.io/part-of"
SERVING_V1 = "serving.knative.dev/v1"
EVENTING_V1 = "eventing.knative.dev/v1"
SOURCES_V1 = "sources.knative.dev/v1"
RBAC_V1 = "rbac.authorization.k8s.io/v1"

REGISTRY_ENV = "KNFLOW_IMAGE_REGISTRY"
DEFAULT_REGISTRY = "docker.io/knflow"
IMAGE_NAME = "knflow-function"
# In a cluster the object store is MinIO; its credentials live in this Secret (keys as in AWS_*).
DEFAULT_STORE_URL = "s3://?endpoint=http://minio.minio.svc.cluster.local:9000&region=us-east-1"
S3_SECRET = "knflow-s3"
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
SPEC_CONFIGMAP = "knflow-spec"
# The label that asks the functions' SinkBinding to inject K_SINK (the Broker's address).
SINK_LABEL = "knflow.dev/sink"


class RenderError(Exception):
    """The spec cannot become cluster resources (e.g. a service runs a local-only bundle)."""


def knflow_version() -> str:
    """The version the function image is tagged with: the installed knflow distribution's."""
    try:
        return importlib_metadata.version("knflow")
    except importlib_metadata.PackageNotFoundError:
        return "0.1.0"


@dataclass(frozen=True)
class Target:
    """Where and how the pipeline is rendered: one value passed to every renderer."""

    pipeline: Pipeline
    namespace: str
    registry: str
    version: str
    store_url: str = DEFAULT_STORE_URL

    @classmethod
    def of(
        cls,
        pipeline: Pipeline,
        namespace: str | None = None,
        image_registry: str | None = None,
        store_url: str | None = None,
    ) -> Target:
        registry = image_registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY
        return cls(
            pipeline=pipeline,
            namespace=namespace or pipeline.namespace,
            registry=registry.rstrip("/"),
            version=knflow_version(),
            store_url=store_url or DEFAULT_STORE_URL,
        )

    @property
    def function_image(self) -> str:
        return f"{self.registry}/{IMAGE_NAME}:{self.version}"

    def labels(self, name: str, component: str, **extra: str) -> dict[str, str]:
        return {
            PART_OF: "knflow",
            "app.kubernetes.io/managed-by": "knflow",
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/version": self.version,
            "knflow.dev/pipeline": self.pipeline.name,
            **extra,
        }

    def resource(
        self,
        api_version: str,
        kind: str,
        name: str,
        component: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        namespaced: bool = True,
        **body: Any,
    ) -> dict[str, Any]:
        """A manifest skeleton with knflow's labels; `body` holds spec/data/rules/…"""
        meta: dict[str, Any] = {"name": name}
        if namespaced:
            meta["namespace"] = self.namespace
        meta["labels"] = self.labels(name, component, **(labels or {}))
        if annotations:
            meta["annotations"] = annotations
        return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}

    def broker_ref(self) -> dict[str, Any]:
        return {
            "ref": {"apiVersion": EVENTING_V1, "kind": "Broker", "name": self.pipeline.broker.name}
        }


def destination(dest: Destination) -> dict[str, Any]:
    """Knative's duckv1.Destination; pipeline services are Knative Services next to it."""
    if dest.ref:
        return {"ref": {"apiVersion": SERVING_V1, "kind": "Service", "name": dest.ref}}
    return {"uri": dest.uri}


def delivery(spec: Delivery) -> dict[str, Any]:
    """Knative's DeliverySpec, durations back in ISO-8601 as Knative requires."""
    out: dict[str, Any] = {}
    if spec.retry is not None:
        out["retry"] = spec.retry
    if spec.backoff_policy:
        out["backoffPolicy"] = spec.backoff_policy
    if spec.backoff_delay is not None:
        out["backoffDelay"] = format_duration(spec.backoff_delay)
    if spec.timeout is not None:
        out["timeout"] = format_duration(spec.timeout)
    if spec.dead_letter_sink is not None:
        out["deadLetterSink"] = destination(spec.dead_letter_sink)
    return out


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)

"""Knative Services: one per pipeline service, plus the MinIO webhook receiver per source.

Every function runs the same image (`<registry>/knflow-function:<version>`); `KNFLOW_FUNCTION`
picks the function, as in the embedded runtime (functions/config.py), unless the service names
its own image (e.g. one a builder produced).
"""

from __future__ import annotations

from typing import Any

from functions.config import ENV_CONFIG, ENV_DATA, ENV_FUNCTION, ENV_MODELS, ENV_STORE

from ..spec import Service, Source
from .common import (
    S3_SECRET,
    S3_SECRET_KEYS,
    SERVING_V1,
    SINK_LABEL,
    SPEC_CONFIGMAP,
    RenderError,
    Target,
    compact_json,
)
from .rbac import service_account

PORT = 8080
SCRATCH = "/tmp/knflow"  # KNFLOW_DATA in a container: caches and scratch, nothing durable
READINESS_PATH = "/health/readiness"
LIVENESS_PATH = "/health/liveness"
SPEC_MOUNT = "/etc/knflow"
RECEIVER_SPEC_KEY = "sources.yaml"
GPU = "nvidia.com/gpu"
# Knative does not tell a container its containerConcurrency or timeout; the function runtime
# sizes gunicorn's threads and timeouts from these (functions/runtime/server.py).
ENV_CONCURRENCY = "KNFLOW_CONTAINER_CONCURRENCY"
ENV_TIMEOUT = "KNFLOW_TIMEOUT_SECONDS"

# The restricted Pod Security profile, which Knative accepts on a Revision's container.
SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def function_services(target: Target) -> list[dict[str, Any]]:
    return [function_service(target, svc) for svc in target.pipeline.services]


def function_service(target: Target, svc: Service) -> dict[str, Any]:
    """The Knative Service for one pipeline service."""
    if svc.image and "://" in svc.image:
        raise RenderError(
            f"service '{svc.name}' uses the local image '{svc.image}', which a cluster cannot "
            "pull: push it to a registry and set `image`, or remove it to use the function image"
        )
    account = service_account(target.pipeline, svc)
    # An API caller learns its namespace (a plain value: Knative gates fieldRef behind a
    # feature flag) and where the builder pushes new images.
    caller = {"KNFLOW_NAMESPACE": target.namespace, "KNFLOW_IMAGE_REGISTRY": target.registry}
    env = {
        ENV_FUNCTION: _value(svc.function),
        ENV_CONFIG: _value(compact_json(svc.config)),
        ENV_MODELS: _value(compact_json([_model(m) for m in svc.models])),
        ENV_STORE: _value(target.store_url),
        ENV_DATA: _value(SCRATCH),
        ENV_CONCURRENCY: _value(str(svc.container_concurrency)),
        ENV_TIMEOUT: _value(str(svc.timeout_seconds)),
        **{key: _secret(S3_SECRET, key) for key in S3_SECRET_KEYS},
        **{name: _value(value) for name, value in (caller.items() if account else ())},
        # the spec's own env last: it overrides any default above (one entry per name)
        **{name: _value(value) for name, value in svc.env.items()},
        **{name: _secret(*ref) for name, ref in svc.secret_env.items()},
    }
    container: dict[str, Any] = {
        "name": "function",
        "image": svc.image or target.function_image,
        "ports": [{"name": "http1", "containerPort": PORT}],
        "env": [{"name": name, **source} for name, source in env.items()],
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH},
            "successThreshold": 1,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": LIVENESS_PATH},
            "periodSeconds": 10,
            "failureThreshold": 6,
            "timeoutSeconds": 5,
        },
        "securityContext": SECURITY_CONTEXT,
    }
    if resources := _resources(svc.resources):
        container["resources"] = resources
    pod: dict[str, Any] = {
        "containerConcurrency": svc.container_concurrency,
        "timeoutSeconds": svc.timeout_seconds,
    }
    if account:
        pod["serviceAccountName"] = account
    else:
        pod["automountServiceAccountToken"] = False  # nothing to ask the API server
    return _knative_service(
        target,
        svc.name,
        "function",
        container,
        pod,
        annotations=svc.annotations,
        labels={SINK_LABEL: "broker"},
        template_labels={"knflow.dev/function": svc.function},
        traffic=svc.traffic,
    )


def receiver_services(target: Target) -> list[dict[str, Any]]:
    return [
        receiver_service(target, src)
        for src in target.pipeline.sources
        if src.kind == "minio-webhook"
    ]


def receiver_service(target: Target, src: Source) -> dict[str, Any]:
    """The MinIO webhook receiver: eventing's sources runner on a spec holding only this source.

    MinIO in the cluster calls it, so it is cluster-local; its Bearer token comes from a Secret;
    the Broker's address arrives as K_SINK through a SinkBinding (see sources.py).
    """
    env = {"KNFLOW_DATA": _value(SCRATCH)}
    if src.auth_token_env:
        env[src.auth_token_env] = _secret(receiver_secret(src), "token")
    container = {
        "name": "receiver",
        "image": target.function_image,
        "command": ["python", "-m", "eventing.sources"],
        "args": [
            "--spec",
            f"{SPEC_MOUNT}/{RECEIVER_SPEC_KEY}",
            "--data",
            SCRATCH,
            "--broker",
            "$(K_SINK)",
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
            "--no-watch",
        ],
        "ports": [{"name": "http1", "containerPort": PORT}],
        "env": [{"name": name, **source} for name, source in env.items()],
        "volumeMounts": [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True}],
        # The receiver answers GET on its path without a token: enough to say it listens.
        "readinessProbe": {"httpGet": {"path": receiver_path(src)}},
        "securityContext": SECURITY_CONTEXT,
    }
    pod = {
        "automountServiceAccountToken": False,
        "volumes": [
            {
                "name": "spec",
                "configMap": {
                    "name": SPEC_CONFIGMAP,
                    "items": [{"key": RECEIVER_SPEC_KEY, "path": RECEIVER_SPEC_KEY}],
                },
            }
        ],
    }
    return _knative_service(
        target,
        src.name,
        "receiver",
        container,
        pod,
        labels={"networking.knative.dev/visibility": "cluster-local"},
    )


def receiver_path(src: Source) -> str:
    """The receiver serves each webhook source at `/<source name>` (eventing.sources)."""
    return f"/{src.name}"


def receiver_secret(src: Source) -> str:
    """The Secret (key `token`) holding the Bearer token MinIO sends to this receiver."""
    return f"knflow-{src.name}"


def _knative_service(
    target: Target,
    name: str,
    component: str,
    container: dict[str, Any],
    pod: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    template_labels: dict[str, str] | None = None,
    traffic: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`labels` go on the Service (bindings, visibility), `template_labels` on its revisions."""
    template_meta: dict[str, Any] = {
        "labels": target.labels(name, component, **(template_labels or {}))
    }
    if annotations:
        template_meta["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "template": {"metadata": template_meta, "spec": {**pod, "containers": [container]}}
    }
    if traffic:
        spec["traffic"] = [dict(t) for t in traffic]
    return target.resource(SERVING_V1, "Service", name, component, labels=labels, spec=spec)


def _resources(raw: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Requests/limits as given; a GPU asked for only in requests is also a limit, as
    Kubernetes requires for extended resources (and they must be equal)."""
    out = {kind: dict(values) for kind, values in raw.items() if values}
    gpu = out.get("requests", {}).get(GPU)
    if gpu is not None:
        out.setdefault("limits", {}).setdefault(GPU, gpu)
    return out


def _model(model) -> dict[str, str]:
    return {"name": model.name, "uri": model.uri} if model.name else {"uri": model.uri}


def _value(text: str) -> dict[str, str]:
    return {"value": text}


def _secret(name: str, key: str) -> dict[str, Any]:
    return {"valueFrom": {"secretKeyRef": {"name": name, "key": key}}}

"""Reading and setting a Knative Service's concurrency target: the one place that knows whether
it talks to the embedded control API or to a cluster.

Both speak the same Kubernetes-shaped resource (`serving.knative.dev/v1` Services, merge patch on
`spec.template.metadata.annotations`), so the only difference is the transport: plain HTTP to
`{control_url}/apis/...` embedded, the `kubernetes` client in a cluster.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

import requests

TARGET = "autoscaling.knative.dev/target"
DEFAULT_TARGET = 100  # Knative's default concurrency target
UTILIZATION = 0.7  # Knative's default target-utilization-percentage
GROUP, VERSION, PLURAL = "serving.knative.dev", "v1", "services"


class ControlError(RuntimeError):
    """The control plane refused or could not be reached; the message says which and why."""


class ServiceControl(Protocol):
    def get(self, name: str) -> dict[str, Any]: ...
    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...
    def stats(self, name: str) -> dict[str, Any]: ...


def target_patch(target: int) -> dict[str, Any]:
    """The merge patch that sets the concurrency target (a new revision, as in Knative)."""
    return {"spec": {"template": {"metadata": {"annotations": {TARGET: str(int(target))}}}}}


def current_target(service: dict[str, Any]) -> int:
    annotations = (
        service.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    )
    try:
        return int(float(annotations.get(TARGET, DEFAULT_TARGET)))
    except ValueError:
        return DEFAULT_TARGET


class EmbeddedControl:
    """The embedded platform's control API (`knflow up`)."""

    def __init__(self, control_url: str, namespace: str, timeout: float = 30):
        self.base = control_url.rstrip("/")
        self.namespace = namespace
        self.timeout = timeout
        self.http = requests.Session()

    def _url(self, name: str) -> str:
        return f"{self.base}/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{name}"

    def get(self, name: str) -> dict[str, Any]:
        return self._call("GET", self._url(name))

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "PATCH",
            self._url(name),
            data=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def stats(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"{self.base}/knflow/v1/services/{name}/stats")

    def _call(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        try:
            reply = self.http.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise ControlError(f"control API at {self.base} unreachable: {exc}") from None
        if reply.status_code >= 400:
            try:
                reason = reply.json().get("message") or reply.text
            except ValueError:
                reason = reply.text
            raise ControlError(f"{method} {url} answered {reply.status_code}: {reason[:300]}")
        return reply.json()


class ClusterControl:
    """Knative Services in a cluster, through the `kubernetes` client (in-cluster config first,
    then the local kubeconfig). Traffic comes from the KPA's PodAutoscaler: Knative sizes a
    revision as ceil(concurrency / (target x utilisation)), so its desired scale gives back the
    concurrency it is serving."""

    def __init__(self, namespace: str, api: Any = None):
        self.namespace = namespace
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CustomObjectsApi()
        self.api = api

    def get(self, name: str) -> dict[str, Any]:
        return self._call(
            self.api.get_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, name
        )

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            self.api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            patch,
        )

    def stats(self, name: str) -> dict[str, Any]:
        service = self.get(name)
        revision = service.get("status", {}).get("latestReadyRevisionName")
        target = current_target(service)
        pa = self._call(
            self.api.get_namespaced_custom_object,
            "autoscaling.internal.knative.dev",
            "v1alpha1",
            self.namespace,
            "podautoscalers",
            revision,
        )
        status = pa.get("status", {})
        desired = int(status.get("desiredScale") or 0)
        return {
            "replicas": int(status.get("actualScale") or 0),
            "desired_replicas": desired,
            "in_flight": desired * target * UTILIZATION,
            "target": target,
        }

    def _call(self, fn: Any, *args: Any) -> dict[str, Any]:
        try:
            return fn(*args)
        except Exception as exc:  # ApiException, urllib3 errors: report, never crash the tick
            raise ControlError(f"kubernetes API: {getattr(exc, 'reason', None) or exc}") from None


def connect(data_dir: Path | None, namespace: str | None = None) -> ServiceControl:
    """The control plane this replica belongs to.

    `KNFLOW_CONTROL_URL`, else the running local instance's `control_url` (instance.json), else,
    inside a cluster (KUBERNETES_SERVICE_HOST set), the kubernetes client.
    """
    url = os.environ.get("KNFLOW_CONTROL_URL")
    ns = namespace or os.environ.get("KNFLOW_NAMESPACE")
    if not url and data_dir is not None:
        data_dir = Path(data_dir)
        base = data_dir if data_dir.name == ".knflow" else data_dir / ".knflow"
        try:
            doc = json.loads((base / "instance.json").read_text())
            url, ns = doc.get("control_url"), ns or doc.get("namespace")
        except (OSError, ValueError):
            pass
    if url:
        return EmbeddedControl(url, ns or "default")
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ClusterControl(ns or _pod_namespace())
    raise ControlError(
        "no control plane: no running instance (instance.json), KNFLOW_CONTROL_URL unset, "
        "and not inside a cluster"
    )


def _pod_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.exists() else "default"


def desired_replicas(concurrency: float, target: int) -> int:
    """Knative's KPA sizing rule, for estimates and tests."""
    return math.ceil(concurrency / (target * UTILIZATION)) if concurrency > 0 else 0

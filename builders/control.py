"""A client for the Knative Serving API (Kubernetes-shaped paths), so the rollout code is the
same against the embedded control API and a cluster's API server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import requests

SERVING = "/apis/serving.knative.dev/v1/namespaces/{ns}"
MERGE_PATCH = "application/merge-patch+json"
SERVICE_LABEL = "serving.knative.dev/service"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
ENV_CONTROL_URL = "KNFLOW_CONTROL_URL"
ENV_NAMESPACE = "KNFLOW_NAMESPACE"


class ControlError(RuntimeError):
    """The API refused or could not be reached; the message is the server's (Status.message)."""


class ControlAPI:
    def __init__(
        self,
        base_url: str,
        namespace: str,
        token: str | None = None,
        verify: bool | str = True,
        timeout: float = 15.0,
    ) -> None:
        self.base_url, self.namespace = base_url.rstrip("/"), namespace
        self.session = requests.Session()
        self.session.verify = verify
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    @classmethod
    def discover(
        cls, data_dir: Path | str | None = None, namespace: str | None = None
    ) -> ControlAPI:
        """$KNFLOW_CONTROL_URL, else the local instance (`<data>/.knflow/instance.json`), else
        the in-cluster API server with the pod's service-account token."""
        if os.environ.get(ENV_CONTROL_URL):
            return cls(
                os.environ[ENV_CONTROL_URL], namespace or os.environ.get(ENV_NAMESPACE, "knflow")
            )
        if data_dir is not None:
            path = Path(data_dir) / ".knflow" / "instance.json"
            try:
                doc = json.loads(path.read_text())
                return cls(doc["control_url"], namespace or doc.get("namespace", "knflow"))
            except (OSError, ValueError, KeyError):
                pass
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if host and (SA_DIR / "token").is_file():
            ns = namespace or (SA_DIR / "namespace").read_text().strip()
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            return cls(
                f"https://{host}:{port}",
                ns,
                (SA_DIR / "token").read_text().strip(),
                str(SA_DIR / "ca.crt"),
            )
        raise ControlError(
            f"no control API: set {ENV_CONTROL_URL}, run `knflow up`, or run inside a cluster"
        )

    def call(self, method: str, path: str, body: Any = None, content_type: str | None = None):
        url = self.base_url + path.format(ns=self.namespace)
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            resp = self.session.request(
                method,
                url,
                data=None if body is None else json.dumps(body),
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ControlError(f"control API at {self.base_url} unreachable: {exc}") from None
        try:
            doc = resp.json()
        except ValueError:
            doc = {"message": resp.text.strip()}
        if resp.status_code >= 400:
            message = doc.get("message") if isinstance(doc, dict) else None
            raise ControlError(message or f"{method} {path} answered {resp.status_code}")
        return doc

    def service(self, name: str) -> dict[str, Any]:
        return self.call("GET", SERVING + f"/services/{name}")

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", SERVING + f"/services/{name}", patch, MERGE_PATCH)

    def revision(self, name: str) -> dict[str, Any]:
        return self.call("GET", SERVING + f"/revisions/{name}")

    def revisions(self, service: str) -> list[dict[str, Any]]:
        return self.call("GET", SERVING + f"/revisions?labelSelector={SERVICE_LABEL}={service}")[
            "items"
        ]


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {"status": "Unknown"})

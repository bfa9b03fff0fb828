"""How CLI commands reach the running instance's control API (as kn reaches a cluster's)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from ..instance import Instance, NotRunning
from .common import CliError, data_dir

SERVING = "/apis/serving.knative.dev/v1/namespaces/{ns}"


class Control:
    def __init__(self, args: argparse.Namespace) -> None:
        try:
            self.instance = Instance.load(data_dir(args))
        except NotRunning as exc:
            raise CliError(str(exc)) from None
        self.ns = self.instance.namespace

    def call(self, method: str, path: str, body: Any = None, content_type: str | None = None):
        """The decoded response; CliError with the server's message on any error status."""
        try:
            status, doc = self.instance.api(method, path.format(ns=self.ns), body, content_type)
        except NotRunning as exc:
            raise CliError(str(exc)) from None
        if status >= 400:
            message = doc.get("message") if isinstance(doc, dict) else None
            raise CliError(message or f"the control API answered {status}")
        return doc

    def service(self, name: str) -> dict[str, Any]:
        return self.call("GET", SERVING + f"/services/{name}")

    def services(self) -> list[dict[str, Any]]:
        return self.call("GET", SERVING + "/services")["items"]

    def revisions(self, service: str | None = None) -> dict[str, Any]:
        query = f"?labelSelector=serving.knative.dev/service={service}" if service else ""
        return self.call("GET", SERVING + "/revisions" + query)

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.call(
            "PATCH", SERVING + f"/services/{name}", patch, "application/merge-patch+json"
        )

    def stats(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/knflow/v1/services/{name}/stats")


def age(timestamp: str | None) -> str:
    """kn's AGE column: 42s, 5m, 3h, 2d."""
    if not timestamp:
        return ""
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int(time.time() - then.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def condition_summary(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(CONDITIONS, READY, REASON) columns as kn prints them."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    ok = sum(1 for c in conditions if c.get("status") == "True")
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    return f"{ok} OK / {len(conditions)}", ready.get("status", "Unknown"), ready.get("reason", "")

"""A stand-in for the Kubernetes API server, for `knflow deploy`/`status` tests.

No API server can run here (no Kubernetes, no Docker), so this small loopback HTTP server answers
exactly the calls knflow's client makes, with the API server's paths, status codes and Status
bodies: GET /version, GET of one object, and server-side apply (PATCH with
`application/apply-patch+yaml`, `fieldManager`, `force`, `dryRun`). It plays the controllers too,
just enough to give Knative objects a Ready condition. Every request is recorded for assertions.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "standin-token"
OBJECT_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)/(?P<name>[^/]+)$"
)
SERVER_FIELDS = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class ApiServerStandIn:
    served: set[str] = field(
        default_factory=lambda: {
            "v1",
            "rbac.authorization.k8s.io/v1",
            "serving.knative.dev/v1",
            "eventing.knative.dev/v1",
            "sources.knative.dev/v1",
        }
    )
    objects: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # (apiVersion, plural, namespace, name) -> the field another manager owns with another value
    conflicts: dict[tuple, str] = field(default_factory=dict)
    _version: int = 100

    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_PATCH(self) -> None:
                standin._handle(self, "PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    # --- the API -----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        request = Request(method, url.path, query, dict(h.headers.items()))
        self.requests.append(request)
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _send(h, 401, _status(401, "Unauthorized", "Unauthorized"))
        if url.path == "/version":
            return _send(h, 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-standin"})
        match = OBJECT_PATH.match(url.path)
        if not match:
            return _send(h, 404, _status(404, "NotFound", "the server could not find the path"))
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        if api_version not in self.served:
            # What an API server says for a type it does not serve (e.g. a CRD not installed).
            msg = "the server could not find the requested resource"
            return _send(h, 404, _status(404, "NotFound", msg))
        key = (api_version, match["plural"], match["ns"], match["name"])
        if method == "GET":
            obj = self.objects.get(key)
            if obj is None:
                return _send(h, 404, _missing(match["plural"], match["name"]))
            return _send(h, 200, obj)
        if h.headers.get("Content-Type") != "application/apply-patch+yaml":
            return _send(h, 415, _status(415, "UnsupportedMediaType", "unsupported patch type"))
        if not query.get("fieldManager"):
            msg = "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value"
            return _send(h, 422, _status(422, "Invalid", msg))
        body = request.body = yaml.safe_load(raw)
        meta = body.get("metadata") or {}
        if body.get("apiVersion") != api_version or meta.get("name") != match["name"]:
            return _send(h, 400, _status(400, "BadRequest", "body does not match the URL"))
        if key in self.conflicts and query.get("force") != "true":
            owned = self.conflicts[key]
            msg = f'Apply failed with 1 conflict: conflict with "kn" using {api_version}: {owned}'
            return _send(h, 409, _status(409, "Conflict", msg))
        return _send(h, 200, self._apply(key, body, query))

    def _apply(self, key: tuple, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        current = self.objects.get(key)
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if current is not None and _desired(current) == _desired(obj):
            return current  # nothing to change: same resourceVersion, no write
        if current is None:
            meta["uid"] = f"uid-{len(self.objects)}"
            meta["creationTimestamp"] = "2026-11-21T08:00:00Z"
            meta["generation"] = 1
        else:
            meta["uid"] = current["metadata"]["uid"]
            meta["creationTimestamp"] = current["metadata"]["creationTimestamp"]
            meta["generation"] = current["metadata"]["generation"] + 1
        self._version += 1
        meta["resourceVersion"] = str(self._version)
        meta["managedFields"] = [
            {
                "manager": query["fieldManager"],
                "operation": "Apply",
                "apiVersion": body["apiVersion"],
                "fieldsType": "FieldsV1",
            }
        ]
        if "knative.dev" in body["apiVersion"]:
            obj["status"] = _reconciled(obj, key)
        if query.get("dryRun") != "All":
            self.objects[key] = obj
        return obj


def _reconciled(obj: dict[str, Any], key: tuple) -> dict[str, Any]:
    """What the Knative controllers would report once the object is up."""
    _, _, ns, name = key
    status: dict[str, Any] = {
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    if obj["kind"] == "Service":
        status["url"] = f"http://{name}.{ns}.example.com"
        status["conditions"] += [
            {"type": "ConfigurationsReady", "status": "True"},
            {"type": "RoutesReady", "status": "True"},
        ]
    if obj["kind"] == "Broker":
        status["address"] = {
            "url": f"http://broker-ingress.knative-eventing.svc.cluster.local/{ns}/{name}"
        }
    return status


def _desired(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    for key in SERVER_FIELDS:
        obj["metadata"].pop(key, None)
    return obj


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def _missing(plural: str, name: str) -> dict:
    return _status(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})


def _send(h: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def kubeconfig(server: str, namespace: str = "default") -> str:
    """A kubeconfig whose current context points at `server` with the stand-in's token."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {"server": server}}],
            "users": [{"name": "tester", "user": {"token": TOKEN}}],
            "contexts": [
                {
                    "name": "standin",
                    "context": {"cluster": "standin", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": "standin",
        }
    )

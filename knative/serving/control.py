"""The control API: a Kubernetes-shaped subset for Knative Services, plus live stats.

GET   /apis/serving.knative.dev/v1/namespaces/{ns}/services[/{name}]
PATCH /apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}   (merge-patch+json)
GET   /apis/serving.knative.dev/v1/namespaces/{ns}/revisions[/{name}]
        ?labelSelector=serving.knative.dev/service=<name>
GET   /knflow/v1/services/{name}/stats
Errors are Kubernetes `Status` objects (404 NotFound, 422 Invalid, 415, 400).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .engine import Serving
from .objects import SERVICE_LABEL, Invalid

PREFIX = "/apis/serving.knative.dev/v1/namespaces/{ns}"
MERGE_PATCH = "application/merge-patch+json"


def status(code: int, reason: str, message: str, causes: list[str] | None = None, **details):
    """A Kubernetes `Status` object as the response."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if causes or details:
        body["details"] = dict(details)
        if causes:
            body["details"]["causes"] = [{"message": c} for c in causes]
    return web.json_response(body, status=code)


def control_app(serving: Serving) -> web.Application:
    app = web.Application()

    def namespace_ok(request: web.Request) -> web.Response | None:
        ns = request.match_info["ns"]
        if ns != serving.namespace:
            return status(
                404,
                "NotFound",
                f"namespace {ns!r} not found (this instance serves "
                f"namespace {serving.namespace!r})",
            )
        return None

    def not_found(kind: str, name: str) -> web.Response:
        return status(
            404, "NotFound", f'{kind}.serving.knative.dev "{name}" not found', name=name, kind=kind
        )

    async def list_services(request: web.Request) -> web.Response:
        if (bad := namespace_ok(request)) is not None:
            return bad
        items = [s.object() for s in serving.services.values()]
        return web.json_response(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "ServiceList",
                "metadata": {},
                "items": items,
            }
        )

    async def get_service(request: web.Request) -> web.Response:
        if (bad := namespace_ok(request)) is not None:
            return bad
        name = request.match_info["name"]
        if name not in serving.services:
            return not_found("services", name)
        return web.json_response(serving.services[name].object())

    async def patch_service(request: web.Request) -> web.Response:
        if (bad := namespace_ok(request)) is not None:
            return bad
        name = request.match_info["name"]
        if name not in serving.services:
            return not_found("services", name)
        if request.content_type not in (MERGE_PATCH, "application/json"):
            return status(
                415,
                "UnsupportedMediaType",
                f"the body must be {MERGE_PATCH}, not {request.content_type!r}",
            )
        try:
            patch = json.loads(await request.read())
        except ValueError as exc:
            return status(400, "BadRequest", f"the patch is not JSON: {exc}")
        try:
            return web.json_response(serving.patch(name, patch))
        except Invalid as exc:
            return status(
                422,
                "Invalid",
                f'Service.serving.knative.dev "{name}" is invalid: {exc}',
                exc.causes,
                name=name,
                kind="services",
            )

    async def list_revisions(request: web.Request) -> web.Response:
        if (bad := namespace_ok(request)) is not None:
            return bad
        service = None
        selector = request.query.get("labelSelector", "")
        if selector:
            key, _, value = selector.partition("=")
            if key != SERVICE_LABEL or not value:
                return status(
                    400,
                    "BadRequest",
                    f"unsupported labelSelector {selector!r} (supported: {SERVICE_LABEL}=<name>)",
                )
            service = value
        items = serving.revisions(service)
        return web.json_response(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "RevisionList",
                "metadata": {},
                "items": items,
            }
        )

    async def get_revision(request: web.Request) -> web.Response:
        if (bad := namespace_ok(request)) is not None:
            return bad
        name = request.match_info["name"]
        for item in serving.revisions():
            if item["metadata"]["name"] == name:
                return web.json_response(item)
        return not_found("revisions", name)

    async def stats(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in serving.services:
            return not_found("services", name)
        return web.json_response(serving.services[name].stats())

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_get(PREFIX + "/services", list_services)
    app.router.add_get(PREFIX + "/services/{name}", get_service)
    app.router.add_patch(PREFIX + "/services/{name}", patch_service)
    app.router.add_get(PREFIX + "/revisions", list_revisions)
    app.router.add_get(PREFIX + "/revisions/{name}", get_revision)
    app.router.add_get("/knflow/v1/services/{name}/stats", stats)
    app.router.add_get("/healthz", healthz)
    return app

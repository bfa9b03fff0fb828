"""The broker's HTTP face: Knative's ingress path plus a small read-only API for the CLI.

POST /<namespace>/<broker>         ingress (binary, structured or batch mode) → 202
GET  /.knflow/broker               the Broker, Knative-shaped (status.address.url, conditions)
GET  /.knflow/triggers[/<name>]    Triggers, Knative-shaped, with delivery counters
GET  /.knflow/events[?follow=1]    recent happenings; `follow` streams server-sent events
GET  /healthz                      liveness
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from ..feed import matches
from ..http import InvalidEvent, json_events_from_http
from .core import Broker

log = logging.getLogger("knflow.broker")

DEFAULT_MAX_BODY = 8 << 20  # 8 MiB: events carry URIs, not artifacts
FEED_FILTERS = ("type", "source", "subject", "trigger", "kind", "id")


def make_app(broker: Broker, max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    """The aiohttp application serving `broker`."""
    app = web.Application(client_max_size=max_body)
    ingress_path = f"/{broker.namespace}/{broker.name}"

    async def ingress(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body:
            return _too_large(request.content_length, max_body)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(None, max_body)
        try:
            docs = json_events_from_http(request.headers, body)
            await broker.accept(docs)
        except InvalidEvent as exc:
            broker.counts["rejected"] += 1
            return web.Response(status=400, text=f"invalid CloudEvent: {exc}\n")
        except OSError as exc:
            log.error("journal write failed: %s", exc)
            return web.Response(status=503, text=f"broker cannot persist events: {exc}\n")
        return web.Response(status=202)

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(
            status=404,
            text=f"no broker at {request.path}: this broker's ingress is {ingress_path}\n",
        )

    async def describe(request: web.Request) -> web.Response:
        return web.json_response(broker.describe())

    async def triggers(request: web.Request) -> web.Response:
        items = [broker.describe_trigger(s) for s in broker.triggers.values()]
        return web.json_response({"apiVersion": "v1", "kind": "List", "items": items})

    async def trigger(request: web.Request) -> web.Response:
        state = broker.triggers.get(request.match_info["name"])
        if state is None:
            return web.json_response(
                {"error": f"trigger {request.match_info['name']!r} not found"}, status=404
            )
        return web.json_response(broker.describe_trigger(state))

    async def events(request: web.Request) -> web.StreamResponse:
        wanted = {k: request.query[k] for k in FEED_FILTERS if request.query.get(k)}
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return web.Response(status=400, text="limit must be an integer\n")
        recent = [e for e in broker.feed.recent if matches(e, wanted)][-limit:] if limit else []
        if request.query.get("follow") not in ("1", "true", "yes"):
            return web.json_response(recent)
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await resp.prepare(request)
        queue = broker.feed.watch()
        try:
            for entry in recent:
                await resp.write(_sse(entry))
            while True:
                try:
                    entry = await asyncio.wait_for(queue.get(), 15)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if entry is None:  # the broker is stopping
                    break
                if matches(entry, wanted):
                    await resp.write(_sse(entry))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            broker.feed.unwatch(queue)
        return resp

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_post(ingress_path, ingress)
    app.router.add_get("/.knflow/broker", describe)
    app.router.add_get("/.knflow/triggers", triggers)
    app.router.add_get("/.knflow/triggers/{name}", trigger)
    app.router.add_get("/.knflow/events", events)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", elsewhere)
    return app


def _too_large(size: int | None, limit: int) -> web.Response:
    got = f"{size} bytes" if size is not None else "the body"
    return web.Response(
        status=413, text=f"event too large: {got} exceeds the broker's limit of {limit} bytes\n"
    )


def _sse(entry: dict) -> bytes:
    return b"data: " + json.dumps(entry).encode() + b"\n\n"

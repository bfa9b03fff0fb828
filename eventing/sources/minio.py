"""Source (2): an HTTP receiver for MinIO (or S3-compatible) webhook notifications.

MinIO POSTs `{"EventName", "Key", "Records": [...]}` with `Authorization: Bearer <auth_token>`.
Each record becomes one object event (the same conversion as the local store's), all of a
request go to the broker as one batch, and MinIO gets its 2xx only once the broker has them on
disk — otherwise a 502, and MinIO keeps the notification in its queue and retries.
"""

from __future__ import annotations

import hmac
import json
import logging
import os

from aiohttp import web

from .records import BadRecord, records_to_events
from .sink import BrokerRejected, BrokerSink, BrokerUnavailable

log = logging.getLogger("knflow.sources")

MAX_BODY = 1 << 20  # MinIO sends one small record per request


class MinioWebhook:
    """The receiver of one `minio-webhook` source."""

    def __init__(
        self, name: str, sink: BrokerSink, token_env: str | None, buckets: list[str] | None = None
    ):
        self.name, self.sink, self.token_env = name, sink, token_env
        self.buckets = set(buckets or []) or None
        self.received = 0

    async def probe(self, request: web.Request) -> web.Response:
        return web.Response(text=f"knflow {self.name}: POST MinIO notifications here\n")

    def _authorized(self, request: web.Request) -> web.Response | None:
        """None when the request may pass, else the error response."""
        if not self.token_env:
            return None
        expected = os.environ.get(self.token_env)
        if not expected:
            return _error(503, f"webhook disabled: set {self.token_env} to the MinIO auth_token")
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else given
        if not given:
            return _error(401, "missing Authorization header (expected: Bearer <auth_token>)")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return _error(401, "wrong auth token")
        return None

    async def receive(self, request: web.Request) -> web.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"notification too large: {request.content_length} bytes")
        content_type = request.content_type
        if content_type != "application/json":
            return _error(415, f"expected application/json, got {content_type or 'nothing'!r}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"notification too large (limit {MAX_BODY} bytes)")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        try:
            docs = records_to_events(payload, buckets=self.buckets)
        except BadRecord as exc:
            return _error(400, str(exc))
        try:
            await self.sink.send(docs)
        except BrokerRejected as exc:
            return _error(400, f"events refused by the broker: {exc}")
        except BrokerUnavailable as exc:
            log.warning("%s: %s", self.name, exc)
            return _error(502, f"broker unavailable, retry later: {exc}")
        self.received += len(docs)
        return web.json_response({"accepted": len(docs), "ids": [d["id"] for d in docs]})


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")

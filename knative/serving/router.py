"""The stable local URL of a service: Knative's activator and queue-proxy in one asyncio proxy.

Per request: pick the revision (tag header or weighted split), count it in the revision's meter
(the autoscaler's input), wait for a ready replica with room under containerConcurrency (at zero
replicas this is where a request is held while the revision scales from zero), forward it over a
keep-alive connection pool, and answer. A replica that fails mid-request (crash, dropped
connection) gets the request retried once on another replica; if that fails too the caller gets a
502 that says what happened, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from aiohttp import web
from multidict import CIMultiDict

from .meter import Meter
from .replicas import Replica, ReplicaSet, RevisionFailed
from .traffic import TAG_HEADER
from .upstream import Upstream, UpstreamError

log = logging.getLogger("knflow.serving")

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
REVISION_HEADER = "Knflow-Revision"  # which revision answered (handy for curl and tests)
ATTEMPTS = 2
MAX_BODY = 512 * 1024 * 1024  # bodies are buffered (for the retry); tensors and audio fit


class Routable(Protocol):
    """A revision as the router needs it."""

    name: str
    replicas: ReplicaSet
    meter: Meter
    timeout: float

    def activate(self) -> None: ...


class Routes(Protocol):
    name: str

    def route(self, tag: str | None) -> Routable | None: ...


class Router:
    """Serves one service (or one of its tags) on 127.0.0.1:<port>."""

    def __init__(self, routes: Routes, upstream: Upstream, tag: str | None = None):
        self.routes = routes
        self.upstream = upstream
        self.tag = tag  # a tag's own URL routes every request to that tag's revision
        self.server: asyncio.base_events.Server | None = None
        self.handler: web.Server | None = None
        self.port = 0
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def listen(self, port: int = 0) -> int:
        """Bind (re-using `port` when it is free) and return the port."""
        loop = asyncio.get_running_loop()

        def request_factory(message, payload, protocol, writer, task) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY
            )

        handler = self.handler = web.Server(
            self.handle, request_factory=request_factory, access_log=None
        )
        try:
            self.server = await loop.create_server(handler, "127.0.0.1", port, reuse_address=True)
        except OSError:
            self.server = await loop.create_server(handler, "127.0.0.1", 0, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self, drain: float = 30.0) -> None:
        """Stop accepting, then wait (up to `drain` s) for requests in flight to be answered."""
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain)

    async def shutdown(self, grace: float = 5.0) -> None:
        """After the replicas are gone: let the last answers (503/502) go out, then close every
        connection, so no caller is left waiting on a socket nobody serves."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        if self.handler is not None:
            await self.handler.shutdown(1.0)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        tag = self.tag or request.headers.get(TAG_HEADER)
        revision = self.routes.route(tag)
        if revision is None:
            return _text(404, f"service {self.routes.name!r} has no traffic target tagged {tag!r}")
        body = await request.read()
        self.in_flight += 1
        self._idle.clear()
        revision.meter.begin()
        try:
            return await self._forward(request, body, revision)
        finally:
            revision.meter.end()
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def _forward(
        self, request: web.BaseRequest, body: bytes, revision: Routable
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + revision.timeout
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        failure, failed = "", None
        for _attempt in range(ATTEMPTS):
            if not revision.replicas.ready:
                revision.activate()
            try:
                replica = await revision.replicas.acquire(deadline - loop.time(), failed)
            except RevisionFailed as exc:
                return _text(503, f"revision {revision.name} is not ready: {exc}")
            except TimeoutError:
                return _text(
                    503,
                    f"no replica of revision {revision.name} could take the request within "
                    f"{revision.timeout:.0f}s{f' ({failure})' if failure else ''}",
                )
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                    resp = await self.upstream.request(
                        replica.port, request.method, request.path_qs, headers, body
                    )
                out = CIMultiDict((k, v) for k, v in resp.headers if k.lower() not in HOP_BY_HOP)
                out[REVISION_HEADER] = revision.name
                return web.Response(status=resp.status, headers=out, body=resp.body)
            except TimeoutError:
                return _text(
                    504,
                    f"revision {revision.name} did not answer within "
                    f"{revision.timeout:.0f}s (timeoutSeconds)",
                )
            except (UpstreamError, OSError) as exc:
                failure, failed = await _describe(replica, revision.name, exc), replica
                log.warning("%s; %s", failure, "retrying" if _attempt + 1 < ATTEMPTS else "502")
            finally:
                revision.replicas.release(replica)
        return _text(502, f"{failure}; the retry on another replica failed too")


async def _describe(replica: Replica, revision: str, exc: Exception) -> str:
    """What went wrong with a replica, with its exit code when it died (waits briefly for it)."""
    code = None
    if replica.proc is not None:
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(asyncio.shield(replica.proc.wait()), 0.5)
    what = f"exited with code {code}" if code is not None else str(exc)
    return f"replica {replica.id} of revision {revision} failed during the request ({what})"


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")

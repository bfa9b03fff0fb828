"""A minimal HTTP/1.1 client for router → replica hops: raw asyncio streams, keep-alive pool.

The hop is loopback to a gunicorn we start ourselves, so a small client does: it writes one
request, reads the status line, headers and a Content-Length or chunked body, and keeps the
connection for the next request. That is several times less work per request than a general
client, which is most of the router's overhead budget (p50 ≤ 1 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable

from eventing.http1 import ProtocolError, read_response

IDLE_LIMIT = 60.0  # close pooled connections idle longer (gunicorn keeps them 300 s)
MAX_HEAD = 65536


class UpstreamError(ConnectionError):
    """The replica closed or broke the connection before a whole response arrived."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class _Conn:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Upstream:
    """Keep-alive connection pools to replicas on 127.0.0.1, by port."""

    def __init__(self) -> None:
        self._idle: dict[int, list[_Conn]] = defaultdict(list)

    async def request(
        self,
        port: int,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> Response:
        """Send one request and read the whole response; UpstreamError when the replica breaks
        the connection (the router then retries once, preferably on another replica)."""
        conn = await self._get(port)
        try:
            return await self._exchange(conn, port, method, target, headers, body)
        except BaseException:
            conn.close()  # half-used: never back into the pool
            raise

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def _get(self, port: int) -> _Conn:
        pool = self._idle[port]
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if now - conn.used < IDLE_LIMIT and not conn.reader.at_eof():
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MAX_HEAD)
        return _Conn(reader, writer)

    async def _exchange(
        self,
        conn: _Conn,
        port: int,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> Response:
        head = [f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in headers]
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        conn.writer.write("".join(head).encode("latin-1") + body)
        try:
            if len(body) > MAX_HEAD:
                await conn.writer.drain()
            raw = await read_response(conn.reader, method=method)
        except asyncio.IncompleteReadError as exc:
            where = "mid-body" if exc.partial else "without answering"
            raise UpstreamError(f"the replica closed the connection {where}") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise UpstreamError(f"the connection to the replica broke ({exc})") from None
        except asyncio.LimitOverrunError:
            raise UpstreamError("the replica sent response headers over 64 KiB") from None
        except ProtocolError as exc:
            raise UpstreamError(f"the replica broke HTTP: {exc}") from None
        if raw.keep_alive:
            conn.used = time.monotonic()
            self._idle[port].append(conn)
        else:
            conn.close()
        return Response(raw.status, raw.headers, raw.body)

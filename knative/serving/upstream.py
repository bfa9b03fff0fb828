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
        reader = conn.reader
        try:
            if len(body) > MAX_HEAD:
                await conn.writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise UpstreamError("the replica closed the connection without answering") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise UpstreamError(f"the connection to the replica broke ({exc})") from None
        except asyncio.LimitOverrunError:
            raise UpstreamError("the replica sent response headers over 64 KiB") from None
        lines = raw.decode("latin-1").split("\r\n")
        try:
            version, code, *_ = lines[0].split(" ", 2)
            status = int(code)
        except ValueError:
            raise UpstreamError(f"the replica sent a bad status line {lines[0]!r}") from None
        out: list[tuple[str, str]] = []
        length, chunked, close = None, False, version == "HTTP/1.0"
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            value = value.strip()
            lower = name.lower()
            if lower == "content-length":
                length = int(value)
            elif lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "connection":
                close = close or value.lower() == "close"
            out.append((name, value))
        try:
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                payload = b""
            elif chunked:
                payload = await _read_chunked(reader)
            elif length is not None:
                payload = await reader.readexactly(length)
            else:
                payload, close = await reader.read(), True
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            raise UpstreamError(f"the replica closed the connection mid-body ({exc})") from None
        if close:
            conn.close()
        else:
            conn.used = time.monotonic()
            self._idle[port].append(conn)
        return Response(status, out, payload)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers: not used by the runtime, skipped
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)

"""Reading one HTTP/1.1 response off an asyncio stream.

knflow has two small keep-alive clients on its hot paths — the broker's deliveries
(`eventing.httpclient`) and the router's hop to a replica (`knative.serving.upstream`). They
differ in pooling and in how they fail over, but parse responses the same way, here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class ProtocolError(ValueError):
    """The peer did not answer with a usable HTTP/1.x response."""


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: list[tuple[str, str]]  # as sent (order and repeats kept, for proxying)
    body: bytes
    keep_alive: bool


async def read_response(
    reader: asyncio.StreamReader, *, method: str = "POST", max_body: int | None = None
) -> RawResponse:
    """Status line, headers and body (Content-Length, chunked, or until close).

    Stream errors (IncompleteReadError, LimitOverrunError, resets) propagate: what they mean —
    retry on a fresh connection, fail over to another replica — is the caller's decision.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest.split(" ", 1)[0]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP response: {lines[0][:80]!r}")
    status = int(code)
    headers: list[tuple[str, str]] = []
    length, chunked, close = None, False, version == "HTTP/1.0"
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        lower = name.lower()
        if lower == "content-length":
            length = int(value)
        elif lower == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif lower == "connection":
            close = close or value.lower() == "close"
        headers.append((name, value))
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif chunked:
        body = await _read_chunked(reader, max_body)
    elif length is not None:
        _check_size(length, max_body)
        body = await reader.readexactly(length)
    else:
        body = await (reader.read(max_body) if max_body else reader.read())
        close = True
    return RawResponse(status, headers, body, not close)


async def _read_chunked(reader: asyncio.StreamReader, max_body: int | None) -> bytes:
    parts, total = [], 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers: not used by knflow, skipped
            return b"".join(parts)
        total += size
        _check_size(total, max_body)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _check_size(size: int, max_body: int | None) -> None:
    if max_body is not None and size > max_body:
        raise ProtocolError(f"response body too large ({size} bytes)")

"""The broker's fast paths agree with the SDK: structured JSON ↔ binary mode, and the lean
HTTP client against real servers that answer in each framing HTTP/1.1 allows."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat

from eventing.events import new_event
from eventing.http import event_from_http, json_to_binary, to_json
from eventing.httpclient import HTTPClient, HTTPError

EVENTS = [
    new_event("t.json", "/s", {"a": [1, 2], "é": "ü"}, subject="a b/ü", bucket="uploads"),
    new_event("t.bytes", "/s", b"\x00\x01\xff", datacontenttype="application/octet-stream"),
    new_event("t.text", "/s", "plain text", datacontenttype="text/plain"),
    new_event("t.none", "/s"),
    new_event("t.jsonstr", "/s", "just a string"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.get_type())
def test_to_json_matches_the_sdk_and_binary_round_trips(event):
    doc = to_json(event)
    assert doc == json.loads(to_structured(event, JSONFormat()).body)
    headers, body = json_to_binary(doc)
    back = event_from_http(headers, body)
    assert to_json(back) == doc


def test_binary_headers_are_percent_encoded_and_never_split_lines():
    doc = to_json(new_event("t", "/s", {}, subject='a "b"\r\nX-Injected: 1'))
    headers, _ = json_to_binary(doc)
    assert headers["ce-subject"] == "a%20%22b%22%0D%0AX-Injected:%201"
    assert all("\n" not in v for v in headers.values())


class OneShotServer:
    """Answers each connection's requests with canned raw bytes (after reading the request)."""

    def __init__(self, responses: list[bytes], close_after_each: bool = False):
        self.responses = list(responses)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/path?q=1"
        self.requests: list[bytes] = []
        self.connections = 0
        self.close_after_each = close_after_each
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while self.responses:
            conn, _ = self.sock.accept()
            self.connections += 1
            with conn:
                while self.responses:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.requests.append(data)
                    conn.sendall(self.responses.pop(0))
                    if self.close_after_each:
                        break


def post_all(url: str, n: int) -> list:
    async def main():
        client = HTTPClient()
        try:
            return [await client.post(url, {"ce-id": str(i)}, b"{}", 5) for i in range(n)]
        finally:
            await client.close()

    return asyncio.run(main())


def test_client_reads_content_length_chunked_and_close_delimited_bodies():
    server = OneShotServer(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        ]
    )
    first, second, third = post_all(server.url, 3)
    assert (first.status, first.body) == (200, b"hello")
    assert (second.status, second.body) == (200, b"abcde")
    assert (third.status, third.body) == (202, b"")
    assert server.connections == 1  # one keep-alive connection for all three
    assert server.requests[0].startswith(b"POST /path?q=1 HTTP/1.1\r\n")


def test_client_reconnects_when_the_server_closed_the_idle_connection():
    server = OneShotServer(
        [b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nuntil close"],
        close_after_each=True,
    )
    first, second = post_all(server.url, 2)
    assert first.status == 204
    assert (second.status, second.body) == (200, b"until close")
    assert server.connections == 2


def test_client_errors_are_oserrors_with_a_reason():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HTTPError, match="cannot connect"):
        post_all(f"http://127.0.0.1:{port}/", 1)
    garbage = OneShotServer([b"SSH-2.0-OpenSSH\r\n\r\n"])
    with pytest.raises(HTTPError, match="not an HTTP response"):
        post_all(garbage.url, 1)
    with pytest.raises(HTTPError, match="only http://"):
        post_all("https://example.invalid/", 1)

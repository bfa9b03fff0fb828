"""Helpers for the eventing tests: real loopback subscribers that fail in chosen ways, specs."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml


@dataclass
class Received:
    """One request a subscriber got, and when (time.monotonic)."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: float = 0.0  # when the subscriber finished answering it

    @property
    def id(self) -> str:
        return self.headers.get("ce-id", "")

    @property
    def type(self) -> str:
        return self.headers.get("ce-type", "")

    def json(self) -> Any:
        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a peer killed mid-request (the crash tests do that on purpose)


@dataclass
class Reply:
    status: int = 202
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Behaviour = Callable[[Received, int], Reply]  # (request, how many times this id was seen)


class Subscriber:
    """A real HTTP server on 127.0.0.1 in a background thread, recording what it receives."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or (lambda req, n: Reply())
        self.received: list[Received] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                req = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                with owner.lock:
                    owner.received.append(req)
                    seen = sum(1 for r in owner.received if r.id == req.id and r.path == req.path)
                reply = owner.behaviour(req, seen)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                req.answered = time.monotonic()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self, path: str | None = None) -> list[str]:
        with self.lock:
            return [r.id for r in self.received if path is None or r.path == path]

    def of(self, event_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.id == event_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_spec(
    path: Path,
    triggers: list[dict[str, Any]],
    delivery: dict[str, Any] | None = None,
    sources: list[dict[str, Any]] | None = None,
    buckets: list[str] | None = None,
    services: list[dict[str, Any]] | None = None,
) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "knflow.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "test", "namespace": "ns"},
        "broker": {"name": "default", **({"delivery": delivery} if delivery else {})},
        "triggers": triggers,
    }
    if sources:
        doc["sources"] = sources
    if buckets:
        doc["buckets"] = buckets
    if services:
        doc["services"] = services
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def trigger(name: str, url: str, type_: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "subscriber": {"uri": url}}
    if type_:
        out["filter"] = {"attributes": {"type": type_}}
    out.update(extra)
    return out


def send(url: str, event_id: str, type_: str = "test.event", data: Any = None, **attrs: str):
    """POST one binary-mode event; returns the response."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/tests",
        "ce-type": type_,
        "content-type": "application/json",
    }
    headers.update({f"ce-{k}": v for k, v in attrs.items()})
    return requests.post(url, data=json.dumps(data or {"n": event_id}), headers=headers, timeout=10)


def wait_for(condition: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def b64(text: bytes) -> str:
    return base64.b64encode(text).decode()

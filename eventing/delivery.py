"""Delivery with Knative's DeliverySpec semantics, one independent queue per Trigger.

- Retry on connection errors, timeouts, 5xx, 404, 408, 409 and 429 — nothing else (Knative's
  list); `retry` retries after the first attempt, waiting `backoffDelay * n` (linear) or
  `backoffDelay * 2^n` (exponential) before retry n.
- After the last try the event goes to the dead-letter sink with `knativeerrordest`,
  `knativeerrorcode` and `knativeerrordata` (base64 of the response body, cut to 1024 bytes).
- A 200 reply that carries a CloudEvent is handed back to the broker (it re-enters through the
  durable path); a reply without one (202, empty body) is simply an acknowledgement.
- Each Trigger has its own queue and its own workers (at most `max_in_flight` requests), and a
  retry waits on a timer, not in a worker: a slow or failing subscriber never delays another.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .http import InvalidEvent, json_events_from_http, json_to_binary
from .httpclient import HTTPClient

log = logging.getLogger("knflow.broker")

RETRYABLE = frozenset({404, 408, 409, 429})
DEFAULT_TIMEOUT = 300.0
ERROR_DATA_LIMIT = 1024


class Destination(Protocol):
    """Where to send: `knative.spec.Destination` (a service `ref` name or a `uri`)."""

    ref: str | None
    uri: str | None


def retryable(status: int | None) -> bool:
    """Knative's rule: connection errors (status None), 5xx, 404, 408, 409, 429."""
    return status is None or status >= 500 or status in RETRYABLE


@dataclass(frozen=True)
class RetryPolicy:
    """The effective DeliverySpec of one Trigger (its own fields over the Broker's)."""

    retry: int = 0
    backoff_policy: str = "exponential"
    backoff_delay: float = 0.2
    timeout: float = DEFAULT_TIMEOUT
    dead_letter_sink: Destination | None = None

    @classmethod
    def of(cls, delivery: Any) -> RetryPolicy:
        """From a `knative.spec.Delivery` (already merged over the Broker's with `.over`)."""
        return cls(
            retry=delivery.retry or 0,
            backoff_policy=delivery.backoff_policy or "exponential",
            backoff_delay=0.2 if delivery.backoff_delay is None else delivery.backoff_delay,
            timeout=delivery.timeout or DEFAULT_TIMEOUT,
            dead_letter_sink=delivery.dead_letter_sink,
        )

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1-based), as Knative computes it."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * retry_number
        return self.backoff_delay * (2**retry_number)


class Resolver:
    """Destination → URL; `ref` names come from `subscribers.json`, re-read when it changes."""

    def __init__(self, path: Path, base_url: str = ""):
        self.path = Path(path)
        self.base_url = base_url
        self._stamp: tuple[int, int] | None = None
        self._table: dict[str, str] = {}

    def table(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._table = None, {}
            return self._table
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                table = json.loads(self.path.read_text() or "{}")
                self._table = {str(k): str(v) for k, v in table.items()}
                self._stamp = stamp
            except (OSError, ValueError, AttributeError):
                pass  # half-written by `knflow up`: keep the last good table, look again later
        return self._table

    def resolve(self, dest: Destination | None) -> str | None:
        """The URL to POST to, or None while a `ref` is not (yet) known."""
        if dest is None:
            return None
        if dest.uri:
            return self.base_url + dest.uri if dest.uri.startswith("/") else dest.uri
        return self.table().get(dest.ref or "")


@dataclass
class Attempt:
    """The outcome of one HTTP request: status None means it never got a response."""

    url: str | None
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        return str(self.status) if self.status is not None else self.error


async def post(client: HTTPClient, url: str | None, doc: dict[str, Any], timeout: float) -> Attempt:
    """POST one event in binary mode; never raises (errors come back in the Attempt)."""
    if url is None:
        return Attempt(url, error="subscriber not resolvable (no address for it yet)")
    headers, body = json_to_binary(doc)
    try:
        resp = await client.post(url, headers, body, timeout)
    except TimeoutError:
        return Attempt(url, error=f"timed out after {timeout:g}s")
    except OSError as exc:
        return Attempt(url, error=str(exc) or type(exc).__name__)
    return Attempt(url, resp.status, resp.body, resp.headers)


def reply_of(attempt: Attempt) -> dict[str, Any] | None:
    """The CloudEvent a subscriber answered with (status 200 and an event), else None."""
    if attempt.status != 200:
        return None
    headers = {k.lower(): v for k, v in attempt.headers.items()}
    if "ce-id" not in headers and "cloudevents" not in headers.get("content-type", ""):
        return None  # a plain 200 (or an empty body) acknowledges without replying
    try:
        events = json_events_from_http(headers, attempt.body)
    except InvalidEvent as exc:
        log.warning("ignoring invalid reply from %s: %s", attempt.url, exc)
        return None
    return events[0] if len(events) == 1 else None


def dead_letter(doc: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
    """The event as the dead-letter sink gets it: Knative's three error extensions added."""
    out = dict(doc)
    out["knativeerrordest"] = attempt.url or "unresolved"
    if attempt.status is not None:
        out["knativeerrorcode"] = str(attempt.status)
    body = attempt.body[:ERROR_DATA_LIMIT] if attempt.body else attempt.error.encode()
    if body:
        out["knativeerrordata"] = base64.b64encode(body[:ERROR_DATA_LIMIT]).decode()
    return out


@dataclass
class Item:
    """One (event, Trigger) delivery in progress."""

    seq: int
    doc: dict[str, Any]
    tries: int = 0  # attempts made at the subscriber
    dead: Attempt | None = None  # set once it is heading for the dead-letter sink


@dataclass
class TriggerStats:
    delivered: int = 0
    retries: int = 0
    dead_lettered: int = 0
    failed: int = 0
    replies: int = 0
    last_error: str = ""
    last_latency_ms: float = 0.0


# Callbacks into the broker: done(seq, trigger, outcome) once an item is finished (the broker
# journals it; the worker moves on without waiting for that fsync), reply(doc, parent_doc) to
# ingest a reply (awaited: the reply is durable before the original is acknowledged),
# note(kind, ...) for the event feed.
Done = Callable[[int, str, str], None]
Reply = Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]
Note = Callable[..., None]


class TriggerDispatcher:
    """The queue and workers of one Trigger."""

    def __init__(
        self,
        name: str,
        subscriber: Destination,
        policy: RetryPolicy,
        *,
        client: HTTPClient,
        resolver: Resolver,
        done: Done,
        reply: Reply,
        note: Note,
        max_in_flight: int = 32,
    ):
        self.name, self.subscriber, self.policy = name, subscriber, policy
        self.client, self.resolver = client, resolver
        self._done, self._reply, self._note = done, reply, note
        self.max_in_flight = max_in_flight
        self.queue: deque[Item] = deque()
        self.workers = 0
        self.in_flight = 0
        self.waiting = 0  # items sleeping before a retry
        self.stats = TriggerStats()
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task] = set()

    def submit(self, item: Item) -> None:
        self.queue.append(item)
        if self.workers < self.max_in_flight:
            self.workers += 1
            task = asyncio.get_running_loop().create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def backlog(self) -> int:
        return len(self.queue) + self.in_flight + self.waiting

    async def _work(self) -> None:
        try:
            while self.queue:
                item = self.queue.popleft()
                self.in_flight += 1
                try:
                    await self._step(item)
                except Exception:  # a bug must not kill the worker and strand the queue
                    log.exception("delivery to trigger %s failed unexpectedly", self.name)
                    self._later(item, 1.0)
                finally:
                    self.in_flight -= 1
        finally:
            self.workers -= 1

    async def _step(self, item: Item) -> None:
        if item.dead is not None:
            await self._to_dead_letter_sink(item)
            return
        url = self.resolver.resolve(self.subscriber)
        started = time.perf_counter()
        attempt = await post(self.client, url, item.doc, self.policy.timeout)
        item.tries += 1
        if attempt.ok:
            self.stats.last_latency_ms = (time.perf_counter() - started) * 1e3
            reply = reply_of(attempt)
            if reply is not None:
                self.stats.replies += 1
                await self._reply(reply, item.doc)
            self.stats.delivered += 1
            self._note("delivered", item.doc, trigger=self.name, code=attempt.status)
            self._done(item.seq, self.name, "ok")
            return
        self.stats.last_error = f"{url or self.subscriber.ref}: {attempt.describe()}"
        if retryable(attempt.status) and item.tries <= self.policy.retry:
            self.stats.retries += 1
            delay = self.policy.backoff(item.tries)
            self._note("retry", item.doc, trigger=self.name, code=attempt.describe(), delay=delay)
            self._later(item, delay)
            return
        item.dead = attempt
        await self._to_dead_letter_sink(item)

    async def _to_dead_letter_sink(self, item: Item) -> None:
        attempt = item.dead
        assert attempt is not None
        sink = self.policy.dead_letter_sink
        if sink is None:
            self.stats.failed += 1
            self._note("failed", item.doc, trigger=self.name, code=attempt.describe())
            self._done(item.seq, self.name, f"failed {attempt.describe()}")
            return
        url = self.resolver.resolve(sink)
        result = await post(self.client, url, dead_letter(item.doc, attempt), self.policy.timeout)
        if result.ok:
            self.stats.dead_lettered += 1
            self._note("dead-lettered", item.doc, trigger=self.name, code=attempt.describe())
            self._done(item.seq, self.name, f"dead-lettered {attempt.describe()}")
            return
        # The sink itself is down: keep the event (nothing is lost) and try again later. When
        # the subscriber had no address either (services still starting), it gets the next
        # chance: whichever becomes reachable first decides where the event goes.
        self.stats.last_error = f"dead-letter sink {url or sink.ref}: {result.describe()}"
        self._note("retry", item.doc, trigger=self.name, code=f"dls {result.describe()}")
        if attempt.url is None:
            item.dead, item.tries = None, 0
        self._later(item, max(self.policy.backoff(1), 1.0))

    def _later(self, item: Item, delay: float) -> None:
        self.waiting += 1
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self.waiting -= 1
            self.submit(item)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def cancel(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

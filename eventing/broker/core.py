"""The Broker: accept events durably, route them to matching Triggers, remember what is done.

Order of things for one accepted event:
1. it gets `knativearrivaltime` and the `knativebrokerttl` loop guard (255 when absent; a
   reply carries its parent's value minus one; an event arriving with 0 or less is dropped);
2. it is queued on the journal and, at the same time, handed to every matching Trigger's queue
   (delivery does not wait for the fsync, which keeps the added latency low);
3. the ingress answers 202 once the journal says the record is on disk.
A Trigger acknowledges an event when its subscriber answered 2xx, or when the event reached the
dead-letter sink (or was given up without one); the ack is journaled, so after a crash exactly
the unacknowledged (event, Trigger) pairs are delivered again, with the same event id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..delivery import Item, Resolver, RetryPolicy, TriggerDispatcher
from ..feed import Feed
from ..filters import (
    Predicate,
    UnsupportedFilter,
    attributes_of,
    compile_trigger,
    possible_types,
)
from ..http import InvalidEvent
from ..httpclient import HTTPClient
from ..journal import Journal

log = logging.getLogger("knflow.broker")

TTL_ATTRIBUTE = "knativebrokerttl"
ARRIVAL_ATTRIBUTE = "knativearrivaltime"
DEFAULT_TTL = 255


def broker_dir(data_dir: Path) -> Path:
    """Where the broker keeps its state (journal, address.json, subscribers.json)."""
    return Path(data_dir) / ".knflow" / "broker"


@dataclass
class TriggerState:
    """A Trigger as the broker runs it: its predicate (or why it has none) and its queue."""

    spec: Any  # knative.spec.Trigger
    predicate: Predicate | None
    problem: str
    dispatcher: TriggerDispatcher

    @property
    def name(self) -> str:
        return self.spec.name


class Broker:
    """One Broker of a pipeline, running inside an asyncio loop."""

    def __init__(
        self,
        pipeline: Any,
        data_dir: Path,
        *,
        fsync: bool = True,
        max_in_flight: int = 32,
    ):
        self.pipeline = pipeline
        self.namespace, self.name = pipeline.namespace, pipeline.broker.name
        self.dir = broker_dir(data_dir)
        self.journal = Journal(self.dir / "journal", fsync=fsync)
        self.resolver = Resolver(self.dir / "subscribers.json")
        self.max_in_flight = max_in_flight
        self.triggers: dict[str, TriggerState] = {}
        self._by_type: dict[str, list[TriggerState]] = {}  # Triggers that pin the event type
        self._any_type: list[TriggerState] = []  # the others
        self.pending: dict[int, set[str]] = {}
        self.counts = {"accepted": 0, "rejected": 0, "dropped": 0, "recovered": 0}
        self.started_at = time.time()
        self.url = ""
        self._seq = 1
        self._client = HTTPClient()
        self.feed = Feed()

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the journal, build the Triggers and re-deliver what was not acknowledged."""
        for trigger in self.pipeline.triggers:
            if trigger.broker != self.name:
                continue
            try:
                predicate, problem = (
                    compile_trigger(trigger.filter_attributes, trigger.filters),
                    "",
                )
            except UnsupportedFilter as exc:
                predicate, problem = None, str(exc)
                log.error("trigger %s is not ready: %s", trigger.name, exc)
            policy = RetryPolicy.of(trigger.delivery.over(self.pipeline.broker.delivery))
            dispatcher = TriggerDispatcher(
                trigger.name,
                trigger.subscriber,
                policy,
                client=self._client,
                resolver=self.resolver,
                done=self._acknowledge,
                reply=self._reply,
                note=self.feed.note,
                max_in_flight=self.max_in_flight,
            )
            state = TriggerState(trigger, predicate, problem, dispatcher)
            self.triggers[trigger.name] = state
            if predicate is None:
                continue
            types = possible_types(trigger.filter_attributes, trigger.filters)
            if types is None:
                self._any_type.append(state)
            for event_type in types or ():
                self._by_type.setdefault(event_type, []).append(state)
        self._recover()

    def _recover(self) -> None:
        recovered = self.journal.recover()
        self._seq = recovered.next_seq
        redelivered = 0
        for seq, doc in recovered.events.items():
            acked = recovered.acks.get(seq, set())
            routed = recovered.routes.get(seq)
            if routed is None:  # a record that did not say: route it as if it arrived now
                candidates = self._matching(doc)
            else:  # the Triggers it matched on arrival that still exist
                candidates = [self.triggers[n] for n in routed if n in self.triggers]
            todo = [t for t in candidates if t.name not in acked and t.predicate is not None]
            if not todo:
                self.journal.done(seq)
                continue
            redelivered += 1
            self.pending[seq] = {t.name for t in todo}
            for state in todo:
                state.dispatcher.submit(Item(seq, doc))
        self.journal.drop_finished()
        self.counts["recovered"] = redelivered
        if redelivered:
            log.info("recovered %d unacknowledged event(s) from the journal", redelivered)

    async def stop(self) -> None:
        for state in self.triggers.values():
            state.dispatcher.cancel()
        await self._client.close()
        await self.journal.close()

    # --- the durable path -----------------------------------------------------------------------
    async def accept(self, docs: list[dict[str, Any]]) -> int:
        """Accept validated events (structured JSON); returns once all are on disk.

        Returns how many were accepted (the others were dropped by the TTL loop guard).
        Raises InvalidEvent for a malformed `knativebrokerttl` (before anything is written).
        """
        ttls = [_ttl(doc) for doc in docs]
        arrival = _arrival_time()
        durable = []
        for doc, ttl in zip(docs, ttls, strict=True):
            if ttl <= 0:
                self.counts["dropped"] += 1
                self.feed.note("dropped", doc, reason="knativebrokerttl exhausted")
                continue
            doc[TTL_ATTRIBUTE] = ttl
            doc[ARRIVAL_ATTRIBUTE] = arrival
            seq = self._seq
            self._seq += 1
            matched = self._matching(doc)
            durable.append(self.journal.append_event(seq, doc, [s.name for s in matched]))
            self.counts["accepted"] += 1
            self.feed.note("accepted", doc)
            self._route(seq, doc, matched)
        if len(durable) == 1:
            await durable[0]
        elif durable:
            await asyncio.gather(*durable)
        return len(durable)

    def _matching(self, doc: dict[str, Any]) -> list[TriggerState]:
        attrs = attributes_of(doc)
        candidates = self._by_type.get(attrs.get("type", ""), [])
        if self._any_type:
            candidates = candidates + self._any_type
        return [s for s in candidates if s.predicate(attrs)]

    def _route(self, seq: int, doc: dict[str, Any], matched: list[TriggerState]) -> None:
        if not matched:
            self.journal.done(seq)
            return
        self.pending[seq] = {s.name for s in matched}
        for state in matched:
            state.dispatcher.submit(Item(seq, doc))

    def _acknowledge(self, seq: int, trigger: str, outcome: str) -> None:
        """Journal "done at this Trigger"; forget the event once every Trigger is done."""
        future = self.journal.append_ack(seq, trigger, outcome)
        future.add_done_callback(functools.partial(self._settled, seq, trigger))

    def _settled(self, seq: int, trigger: str, future: asyncio.Future) -> None:
        if future.exception() is not None:
            # Not on disk: the event stays pending here and is delivered again after a restart.
            log.error(
                "could not journal the ack of event %d at %s: %s", seq, trigger, future.exception()
            )
            return
        waiting = self.pending.get(seq)
        if waiting is None:
            return
        waiting.discard(trigger)
        if not waiting:
            del self.pending[seq]
            self.journal.done(seq)

    async def _reply(self, reply: dict[str, Any], parent: dict[str, Any]) -> None:
        """A subscriber's reply re-enters through the durable path, one TTL step lower."""
        reply[TTL_ATTRIBUTE] = _ttl(parent) - 1
        reply.pop(ARRIVAL_ATTRIBUTE, None)
        await self.accept([reply])

    # --- what `knflow broker describe` / `trigger list` show --------------------------------------
    def describe(self) -> dict[str, Any]:
        now = _timestamp(time.time())
        ready = self.url != ""
        return {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "creationTimestamp": _timestamp(self.started_at),
            },
            "spec": {"delivery": (self.pipeline.raw.get("broker") or {}).get("delivery", {})},
            "status": {
                "address": {"url": self.url},
                "conditions": [
                    _condition(t, ready, now)
                    for t in ("Ready", "Addressable", "IngressReady", "FilterReady")
                ]
                + [_condition("Durable", True, now, "journal fsynced before every 202")],
                "knflow": {
                    **self.counts,
                    "pending": len(self.pending),
                    "triggers": len(self.triggers),
                    "journal": {
                        "segments": self.journal.segment_count(),
                        "commits": self.journal.commits,
                        "records": self.journal.records,
                    },
                    "pid": os.getpid(),
                },
            },
        }

    def describe_trigger(self, state: TriggerState) -> dict[str, Any]:
        now = _timestamp(time.time())
        spec = state.spec
        raws = self.pipeline.raw.get("triggers") or []
        raw = next((t for t in raws if t["name"] == spec.name), {})
        uri = self.resolver.resolve(spec.subscriber)
        d = state.dispatcher
        return {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": {"name": spec.name, "namespace": self.namespace},
            "spec": {k: v for k, v in raw.items() if k != "name"} | {"broker": spec.broker},
            "status": {
                "subscriberUri": uri or "",
                "conditions": [
                    _condition("Ready", state.predicate is not None and uri is not None, now),
                    _condition("BrokerReady", True, now),
                    _condition(
                        "SubscriberResolved",
                        uri is not None,
                        now,
                        "" if uri else f"no address yet for {spec.subscriber.ref!r}",
                    ),
                    _condition("FilterReady", state.predicate is not None, now, state.problem),
                ],
                "knflow": {
                    "delivered": d.stats.delivered,
                    "retries": d.stats.retries,
                    "deadLettered": d.stats.dead_lettered,
                    "failed": d.stats.failed,
                    "replies": d.stats.replies,
                    "backlog": d.backlog,
                    "inFlight": d.in_flight,
                    "lastError": d.stats.last_error,
                    "lastLatencyMs": round(d.stats.last_latency_ms, 3),
                    "delivery": {
                        "retry": d.policy.retry,
                        "backoffPolicy": d.policy.backoff_policy,
                        "backoffDelay": d.policy.backoff_delay,
                        "timeout": d.policy.timeout,
                        "deadLetterSink": _destination(d.policy.dead_letter_sink),
                    },
                },
            },
        }


def _ttl(doc: dict[str, Any]) -> int:
    value = doc.get(TTL_ATTRIBUTE)
    if value is None:
        return DEFAULT_TTL
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidEvent(f"{TTL_ATTRIBUTE} must be an integer, got {value!r}") from None


_second: list = [0, ""]  # the last whole second formatted, reused within that second


def _arrival_time() -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-21T07:08:24.582065Z (cheap: per event)."""
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((now - whole) * 1e6):06d}Z"


def _timestamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, ok: bool, now: str, message: str = "") -> dict[str, str]:
    cond = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now}
    if message:
        cond["message"] = message
    return cond


def _destination(dest: Any) -> dict[str, Any] | None:
    if dest is None:
        return None
    return {"ref": {"name": dest.ref}} if dest.ref else {"uri": dest.uri}

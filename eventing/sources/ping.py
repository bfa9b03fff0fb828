"""Source (3): a ping source — one event per cron tick, like Knative's PingSource.

The event id is derived from the source name and the scheduled time, so a tick sent twice
(a retry after the broker was briefly away) is recognisably the same tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from .sink import BrokerRejected, BrokerSink

log = logging.getLogger("knflow.sources")

PING_TYPE = "dev.knative.sources.ping"


class PingSource:
    def __init__(
        self,
        name: str,
        namespace: str,
        schedule: str,
        sink: BrokerSink,
        *,
        data: Any = None,
        content_type: str = "application/json",
        event_type: str | None = None,
    ):
        if not croniter.is_valid(schedule or ""):
            raise ValueError(f"ping source {name!r}: {schedule!r} is not a cron schedule")
        self.name, self.schedule, self.sink = name, schedule, sink
        self.source = f"/apis/v1/namespaces/{namespace}/pingsources/{name}"
        self.data, self.content_type = data, content_type
        self.type = event_type or PING_TYPE
        self.sent = 0

    def event(self, when: float) -> dict[str, Any]:
        """The event for the tick scheduled at `when` (epoch seconds)."""
        stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc: dict[str, Any] = {
            "specversion": "1.0",
            "id": hashlib.sha256(f"{self.source}\0{stamp}".encode()).hexdigest()[:32],
            "source": self.source,
            "type": self.type,
            "time": stamp,
        }
        if self.data is not None:
            doc["datacontenttype"] = self.content_type
            doc["data"] = _body(self.data, "json" in self.content_type)
        return doc

    def next_tick(self, after: float) -> float:
        return croniter(self.schedule, after).get_next(float)

    async def run(self) -> None:
        when = self.next_tick(time.time())
        while True:
            await asyncio.sleep(max(0.0, when - time.time()))
            try:
                await asyncio.wait_for(
                    self.sink.send_until_accepted([self.event(when)], f"ping {self.name}"),
                    timeout=max(1.0, self.next_tick(when) - time.time()),
                )
                self.sent += 1
            except TimeoutError:
                log.error("ping %s: tick %s not delivered before the next one", self.name, when)
            except BrokerRejected as exc:
                log.error("ping %s: broker refused the tick: %s", self.name, exc)
            when = self.next_tick(max(when, time.time()))


def _body(data: Any, is_json: bool) -> Any:
    """`data` as the structured form holds it: a JSON value for JSON types, else text.

    A string under a JSON content type is taken as JSON text (Knative sends it verbatim).
    """
    if not is_json:
        return data if isinstance(data, str) else json.dumps(data)
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data

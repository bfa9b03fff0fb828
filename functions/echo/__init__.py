"""`echo`: records every event it receives; optionally replies. Use it to try out triggers.

Deploy it as a service, point a Trigger at it, then `GET <service-url>/events` lists what it got
(newest last, at most `config.keep` events). With `config.reply_type` set it answers each event
with a copy of that type (id derived from the input id, so re-deliveries are idempotent); pick a
type no trigger routing to echo matches, or the reply would loop back through the broker.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from flask import jsonify

from eventing.events import derive_id
from eventing.http import to_json, with_attributes
from functions.config import FunctionConfig


class Echo:
    def __init__(self) -> None:
        self.keep = 100
        self.reply_type: str | None = None
        self.source = "/knflow/echo"
        self.events: deque[dict[str, Any]] = deque(maxlen=self.keep)
        self.lock = threading.Lock()

    def start(self, cfg: FunctionConfig) -> None:
        self.keep = int(cfg.config.get("keep", 100))
        self.reply_type = cfg.config.get("reply_type")
        self.source = f"/knflow/{cfg.service or 'echo'}"
        self.events = deque(maxlen=self.keep)

    def handle(self, event):
        with self.lock:
            self.events.append(to_json(event))
        if not self.reply_type:
            return None
        return with_attributes(
            event,
            id=derive_id(event.get_id(), "echo"),
            type=self.reply_type,
            source=self.source,
        )

    def routes(self):
        return [("/events", ["GET"], self.list_events)]

    def list_events(self):
        with self.lock:
            return jsonify(list(self.events))


def new() -> Echo:
    return Echo()

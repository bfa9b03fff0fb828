"""`deadletter`: keeps every dead-lettered event in the `dead-letters` bucket.

The broker sends an event here after its last failed try, with `knativeerrordest`,
`knativeerrorcode` and `knativeerrordata` added. Each one is stored as its structured
CloudEvent JSON under key = event id, so `knflow dlq list` can show why it failed and
`knflow dlq replay ID` can send exactly that event again. A re-delivery overwrites the same key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from eventing.http import to_json
from storage import InvalidKey, StoreError
from storage.keys import check_key

BUCKET = "dead-letters"
CONTENT_TYPE = "application/cloudevents+json"


def dead_letter_key(event_id: str) -> str:
    """The event id, or a hash of it when the id is not usable as an object key."""
    try:
        return check_key(event_id)
    except InvalidKey:
        return "id-" + hashlib.sha256(event_id.encode()).hexdigest()[:40]


class DeadLetters:
    """The function object (see functions.contract)."""

    def __init__(self) -> None:
        self.store: Any = None
        self.bucket = BUCKET

    def start(self, cfg: Any) -> None:
        self.bucket = str((cfg.config or {}).get("bucket", BUCKET))
        self.store = cfg.store
        self.store.create_bucket(self.bucket)

    def ready(self) -> bool:
        return self.store is not None

    def handle(self, event: Any) -> None:
        if self.store is None:
            raise StoreError("deadletter function was not started (no object store)")
        doc = to_json(event)
        body = json.dumps(doc, indent=2).encode()
        self.store.put(
            self.bucket, dead_letter_key(str(doc["id"])), body, content_type=CONTENT_TYPE
        )
        return None


def new() -> DeadLetters:
    return DeadLetters()

"""Making events: one constructor for every producer, and ids that make handlers idempotent."""

from __future__ import annotations

import hashlib
from typing import Any

from cloudevents.core.v1.event import CloudEvent


def derive_id(parent_id: str, stage: str) -> str:
    """A stable id for the event a stage emits in reply to `parent_id`.

    Re-deliveries of the same input produce the same output id (and the same output keys), so
    downstream de-duplication and overwrite-not-duplicate both work.
    """
    return hashlib.sha256(f"{stage}\0{parent_id}".encode()).hexdigest()[:32]


def new_event(
    type: str,
    source: str,
    data: Any = None,
    *,
    subject: str | None = None,
    id: str | None = None,
    datacontenttype: str | None = "application/json",
    **extensions: Any,
) -> CloudEvent:
    """A CloudEvents 1.0 event; `extensions` become extension attributes (lowercase names)."""
    attributes: dict[str, Any] = {"type": type, "source": source}
    if id is not None:
        attributes["id"] = id
    if subject is not None:
        attributes["subject"] = subject
    if data is not None and datacontenttype:
        attributes["datacontenttype"] = datacontenttype
    attributes.update({k: v for k, v in extensions.items() if v is not None})
    return CloudEvent(attributes, data)

"""CloudEvents for knflow: event types and constructors, the durable Broker (ingress, Triggers,
filters, delivery, dead letters) and the sources (store notifications, MinIO webhook, ping)."""

from . import types
from .events import derive_id, new_event

__all__ = ["derive_id", "new_event", "types"]

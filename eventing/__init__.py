"""CloudEvents for knflow: event types and constructors, the durable Broker (ingress, Triggers,
filters, delivery, dead letters) and the sources (store notifications, MinIO webhook, ping).

Modules, one job each (import the heavy ones only where needed; replicas import just these two):
    events, types     constructors, stable derived ids, the `dev.knflow.*` type names
    http              CloudEvents HTTP codec with validation (`InvalidEvent` → 400)
    filters           Trigger filters compiled to predicates
    journal           the broker's group-committed write-ahead log
    delivery          retry/backoff/dead-letter semantics, one queue per Trigger
    httpclient        the lean keep-alive HTTP client deliveries use
    broker            the Broker process: `python -m eventing.broker`, `broker.launch()`
    sources           store notifications, MinIO webhook, ping: `python -m eventing.sources`
    client            find and talk to a running broker (the CLI uses it)
"""

from . import types
from .events import derive_id, new_event

__all__ = ["derive_id", "new_event", "types"]

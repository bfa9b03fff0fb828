"""The Broker and its Triggers.

Knative does not merge a Trigger's delivery with its Broker's (a Trigger with its own `delivery`
replaces the Broker's entirely), while knflow's spec does, field by field. So every Trigger is
rendered with the merged delivery, dead-letter sink included, and behaves as it does embedded.
"""

from __future__ import annotations

from typing import Any

from ..spec import Trigger
from .common import EVENTING_V1, Target, delivery, destination

BROKER_CLASS = "MTChannelBasedBroker"
PING_TYPE = "dev.knative.sources.ping"  # what a cluster PingSource sends; it cannot be changed


def broker(target: Target) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if spec_delivery := delivery(target.pipeline.broker.delivery):
        spec["delivery"] = spec_delivery
    return target.resource(
        EVENTING_V1,
        "Broker",
        target.pipeline.broker.name,
        "broker",
        annotations={"eventing.knative.dev/broker.class": BROKER_CLASS},
        spec=spec,
    )


def triggers(target: Target) -> list[dict[str, Any]]:
    return [trigger(target, t) for t in target.pipeline.triggers]


def trigger(target: Target, trig: Trigger) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": target.pipeline.broker.name}
    spec.update(_filter(target, trig))
    spec["subscriber"] = destination(trig.subscriber)
    if merged := delivery(trig.delivery.over(target.pipeline.broker.delivery)):
        spec["delivery"] = merged
    return target.resource(EVENTING_V1, "Trigger", trig.name, "trigger", spec=spec)


def _filter(target: Target, trig: Trigger) -> dict[str, Any]:
    """`filter.attributes` or `filters`, as written. A ping source may give its events a `type`
    of its own, which a cluster PingSource cannot (it always sends `dev.knative.sources.ping`):
    a Trigger on such a type also matches that PingSource's events, by their `source`."""
    attrs = trig.filter_attributes
    if pings := ping_event_sources(target, attrs.get("type")):
        rest = {k: v for k, v in attrs.items() if k not in ("type", "source")}
        alternatives = [{"exact": dict(attrs)}] + [
            {"exact": {**rest, "type": PING_TYPE, "source": source}} for source in pings
        ]
        return {"filters": [{"any": alternatives}]}
    if trig.filters:
        return {"filters": [dict(f) for f in trig.filters]}
    if attrs:
        return {"filter": {"attributes": dict(attrs)}}
    return {}


def ping_event_sources(target: Target, event_type: str | None) -> list[str]:
    """The CloudEvents `source` (Knative's fixed format) of each PingSource whose spec gives
    its events the type `event_type`, other than the one a PingSource really sends."""
    if not event_type or event_type == PING_TYPE:
        return []
    return [
        f"/apis/v1/namespaces/{target.namespace}/pingsources/{src.name}"
        for src in target.pipeline.sources
        if src.kind == "ping" and getattr(src, "type", None) == event_type
    ]

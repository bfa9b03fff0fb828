"""The Broker and its Triggers.

Knative does not merge a Trigger's delivery with its Broker's (a Trigger with its own `delivery`
replaces the Broker's entirely), while knflow's spec does, field by field. So every Trigger is
rendered with the merged delivery, dead-letter sink included, and behaves as it does embedded.
"""

from __future__ import annotations

from typing import Any

from eventing.types import AUTOSCALE_TICK

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
    """`filter.attributes` or `filters`, as written; a Trigger on knflow's tick type also
    matches the cluster PingSources' events, whose type is fixed to `dev.knative.sources.ping`."""
    attrs = trig.filter_attributes
    if attrs.get("type") == AUTOSCALE_TICK and (pings := ping_event_sources(target)):
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


def ping_event_sources(target: Target) -> list[str]:
    """The CloudEvents `source` of each rendered PingSource (Knative's fixed format)."""
    return [
        f"/apis/v1/namespaces/{target.namespace}/pingsources/{src.name}"
        for src in target.pipeline.sources
        if src.kind == "ping"
    ]

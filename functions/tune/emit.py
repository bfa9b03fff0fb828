"""Sending extra events to the broker (the sink): a handler replies with one event, and posts the
others here first. Ids are derived from the input, so a re-delivery re-sends the same ids."""

from __future__ import annotations

from cloudevents.core.v1.event import CloudEvent

from eventing.client import BrokerClient, NoBroker
from eventing.http import to_json


class SinkError(RuntimeError):
    """The broker did not accept an event (the input is then retried, nothing is lost)."""


def send(sink: str, event: CloudEvent) -> None:
    """POST `event` to the broker; raise SinkError unless it answers 2xx."""
    if not sink:
        raise SinkError(f"no sink (K_SINK) to send {event.get_type()} to")
    try:
        response = BrokerClient(sink).send(to_json(event))
    except NoBroker as exc:
        raise SinkError(str(exc)) from None
    if response.status_code >= 300:
        raise SinkError(f"broker {sink} answered {response.status_code}: {response.text[:200]}")

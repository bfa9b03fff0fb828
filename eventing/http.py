"""CloudEvents over HTTP: binary, structured and batch modes, with spec validation.

Every HTTP entry point (broker ingress, the function runtime, the sources) parses with
`events_from_http`, so they all accept the same modes and reject bad events with the same
readable reasons (`InvalidEvent`, answered as HTTP 400).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from cloudevents.core.bindings.http import HTTPMessage, from_http, to_binary, to_structured
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "type", "specversion")
_FORMAT = JSONFormat()


class InvalidEvent(ValueError):
    """The request does not carry a valid CloudEvent; the message says what is wrong."""


def events_from_http(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """Parse any mode into events (a batch gives several); raise InvalidEvent with the reason."""
    headers = {k.lower(): v for k, v in headers.items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == BATCH:
        items = _json(body, "batch body")
        if not isinstance(items, list):
            raise InvalidEvent("a batch must be a JSON array of structured events")
        return [_structured(item, f"batch item {i}") for i, item in enumerate(items)]
    if any(k.startswith("ce-") for k in headers):
        return [_binary(headers, body)]
    if content_type == STRUCTURED or content_type.startswith("application/cloudevents"):
        return [_structured(_json(body, "structured event"), "event")]
    raise InvalidEvent(
        f"not a CloudEvent: content type {content_type or 'missing'!r} without ce-* headers "
        f"(send binary mode with ce-id/ce-source/ce-type/ce-specversion, or {STRUCTURED})"
    )


def event_from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Exactly one event (a batch of one is accepted)."""
    events = events_from_http(headers, body)
    if len(events) != 1:
        raise InvalidEvent(f"expected one event, got a batch of {len(events)}")
    return events[0]


def to_http(event: CloudEvent, mode: str = "binary") -> tuple[dict[str, str], bytes]:
    """Headers and body for sending `event` (binary or structured mode)."""
    message = (to_binary if mode == "binary" else to_structured)(event, _FORMAT)
    return dict(message.headers), message.body


def batch_to_http(events: list[CloudEvent]) -> tuple[dict[str, str], bytes]:
    items = [json.loads(to_structured(e, _FORMAT).body) for e in events]
    return {"content-type": BATCH}, json.dumps(items).encode()


# CloudEvents HTTP binding 3.1.3.2: printable ASCII is safe in headers except space, '"' and '%'.
_HEADER_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')
_NEEDS_QUOTING = re.compile(r'[^\x21-\x7e]|["%]')
_JSON_TYPES = ("application/json", "text/json")


def json_to_binary(doc: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """Binary-mode headers and body straight from the structured JSON form.

    The broker keeps events as their structured JSON (that is what it journals), so it sends
    them without a round trip through the SDK object: this is the hot path of every delivery.
    """
    headers: dict[str, str] = {}
    for name, value in doc.items():
        if name in ("data", "data_base64"):
            continue
        if name == "datacontenttype":
            headers["content-type"] = str(value)
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            if _NEEDS_QUOTING.search(text):
                text = quote(text, safe=_HEADER_SAFE)
            headers["ce-" + name] = text
    if "data_base64" in doc:
        return headers, base64.b64decode(doc["data_base64"])
    if "data" not in doc:
        return headers, b""
    data = doc["data"]
    if "datacontenttype" not in doc:  # JSON format: `data` without a type is JSON
        headers["content-type"] = "application/json"
    content_type = str(doc.get("datacontenttype", "application/json")).split(";")[0].strip()
    is_json = content_type in _JSON_TYPES or content_type.endswith("+json")
    if isinstance(data, str) and not is_json:
        return headers, data.encode()
    return headers, json.dumps(data).encode()


def json_events_from_http(headers: Mapping[str, str], body: bytes) -> list[dict[str, Any]]:
    """`events_from_http`, validated, returning each event in its structured JSON form."""
    return [to_json(event) for event in events_from_http(headers, body)]


def to_json(event: CloudEvent) -> dict[str, Any]:
    """The structured JSON form as a dict (for journals, logs, `-o json`).

    Built directly (the SDK's JSON format rules: `time` as RFC 3339 with `Z`, bytes as
    `data_base64`, non-JSON types as text) rather than serialised and parsed back, because the
    broker does this for every event it accepts.
    """
    doc: dict[str, Any] = {}
    for name, value in event.get_attributes().items():
        if isinstance(value, datetime):
            value = value.isoformat()
            if value.endswith("+00:00"):
                value = value[:-6] + "Z"
        doc[name] = value
    data = event.get_data()
    if isinstance(data, bytes | bytearray):
        doc["data_base64"] = base64.b64encode(data).decode()
    elif data is not None:
        is_json = _FORMAT.JSON_CONTENT_TYPE_PATTERN.match(
            doc.get("datacontenttype", "application/json")
        )
        doc["data"] = data if is_json else str(data)
    return doc


def from_json(doc: dict[str, Any]) -> CloudEvent:
    """Inverse of `to_json`."""
    return _structured(doc, "event")


def with_attributes(event: CloudEvent, **changes: Any) -> CloudEvent:
    """A copy of `event` with attributes added, changed, or (value None) removed."""
    attributes = dict(event.get_attributes())
    for name, value in changes.items():
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = value
    return CloudEvent(attributes, event.get_data())


def data_bytes(event: CloudEvent) -> bytes:
    """The event's data as bytes, whatever form the SDK decoded it into."""
    data = event.get_data()
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data).encode()


def data_json(event: CloudEvent) -> Any:
    """The event's data decoded as JSON; InvalidEvent when it is not JSON."""
    data = event.get_data()
    if isinstance(data, dict | list):
        return data
    try:
        return json.loads(data_bytes(event) or b"null")
    except ValueError:
        raise InvalidEvent("event data is not JSON") from None


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidEvent(f"{what} is not valid JSON: {exc}") from None


def _structured(doc: Any, what: str) -> CloudEvent:
    if not isinstance(doc, dict):
        raise InvalidEvent(f"{what} must be a JSON object")
    _check_required(doc.keys(), what)
    if "data_base64" in doc:
        try:
            base64.b64decode(doc["data_base64"], validate=True)
        except ValueError:
            raise InvalidEvent(f"{what}: data_base64 is not base64") from None
    _check_time(doc.get("time"), what)
    body = json.dumps(doc).encode()
    return _parse(HTTPMessage({"content-type": STRUCTURED}, body), what)


def _binary(headers: dict[str, str], body: bytes) -> CloudEvent:
    names = [k[3:] for k in headers if k.startswith("ce-")]
    _check_required(names, "event")
    _check_time(headers.get("ce-time"), "event")
    return _parse(HTTPMessage(headers, body), "event")


def _check_required(names, what: str) -> None:
    missing = [a for a in REQUIRED if a not in names]
    if missing:
        raise InvalidEvent(f"{what} is missing required attribute(s): {', '.join(missing)}")


def _check_time(value: Any, what: str) -> None:
    if value is None:
        return
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if "T" not in str(value):
            raise ValueError
    except ValueError:
        raise InvalidEvent(f"{what}: time {value!r} is not an RFC 3339 timestamp") from None


def _parse(message: HTTPMessage, what: str) -> CloudEvent:
    try:
        event = from_http(message, _FORMAT, CloudEvent)
    except CloudEventValidationError as exc:
        raise InvalidEvent(f"{what}: {_reasons(exc)}") from None
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        raise InvalidEvent(f"{what}: {exc}") from None
    if event.get_specversion() != "1.0":
        raise InvalidEvent(f"{what}: specversion {event.get_specversion()!r} is not 1.0")
    for name, value in event.get_attributes().items():
        if value == "" and name not in REQUIRED:
            raise InvalidEvent(f"{what}: attribute {name!r} must not be empty")
        if name in ("id", "source", "type") and not value:
            raise InvalidEvent(f"{what}: attribute {name!r} must not be empty")
    return event


def _reasons(exc: CloudEventValidationError) -> str:
    errors = getattr(exc, "errors", None) or {}
    parts = [str(e) for errs in errors.values() for e in errs]
    return "; ".join(parts) or str(exc)

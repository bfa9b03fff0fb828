"""Events point at objects; stages read their input from the store and write artifacts whose
keys derive from the input event's id, so a re-delivery overwrites instead of duplicating."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eventing.events import derive_id, new_event
from eventing.http import InvalidEvent, data_json

from ..contract import BadInput


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    uri: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"bucket": self.bucket, "key": self.key, "uri": self.uri}

    @property
    def name(self) -> str:
        return f"{self.bucket}/{self.key}"


def input_ref(event: Any, field: str | None = None) -> ObjectRef:
    """The object an event points at: its data's `bucket`/`key` (or those of `data[field]`)."""
    try:
        data = data_json(event)
    except InvalidEvent as exc:
        raise BadInput(f"event {event.get_id()}: {exc}") from None
    if field is not None:
        data = data.get(field) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not data.get("bucket") or not data.get("key"):
        where = f"data.{field}" if field else "data"
        raise BadInput(f"event {event.get_id()} has no object reference ({where}.bucket/key)")
    return ObjectRef(str(data["bucket"]), str(data["key"]), str(data.get("uri", "")))


def read_bytes(store: Any, ref: ObjectRef) -> bytes:
    """The object's bytes; BadInput when it is gone (deleted before we got to it)."""
    from storage import NoSuchBucket, NoSuchObject

    try:
        return store.get(ref.bucket, ref.key)
    except (NoSuchObject, NoSuchBucket) as exc:
        raise BadInput(f"{ref.name} no longer exists: {exc}") from None


def read_json(store: Any, ref: ObjectRef) -> dict[str, Any]:
    raw = read_bytes(store, ref)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BadInput(f"{ref.name} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{ref.name} is not a JSON object")
    return doc


def put_json(store: Any, bucket: str, key: str, doc: Any) -> ObjectRef:
    body = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    store.put(bucket, key, body, content_type="application/json")
    return ObjectRef(bucket, key, store.uri(bucket, key))


def put_bytes(store: Any, bucket: str, key: str, body: bytes, content_type: str) -> ObjectRef:
    store.put(bucket, key, body, content_type=content_type)
    return ObjectRef(bucket, key, store.uri(bucket, key))


def output_id(event: Any, stage: str) -> str:
    """The id of this stage's output for `event`: stable across re-deliveries."""
    return derive_id(event.get_id(), stage)


def reply(event: Any, stage: str, type: str, source: str, data: dict, subject: str) -> Any:
    """The reply event: id derived from the input's, so duplicates collapse downstream."""
    return new_event(type, source, data, subject=subject, id=output_id(event, stage))

"""S3/MinIO notification records → `dev.knflow.object.*` CloudEvents (shared by both sources).

One record becomes one event whose `id` is stable across re-deliveries of that record (it is a
hash of bucket, key and `sequencer`), so a consumer can recognise a repeat.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote, unquote_plus

from .. import types


class BadRecord(ValueError):
    """A notification record without the fields an object event needs."""


def event_type(event_name: str) -> str | None:
    """`s3:ObjectCreated:Put` → created, `s3:ObjectRemoved:*` → removed, others → None."""
    if event_name.startswith("s3:ObjectCreated:"):
        return types.OBJECT_CREATED
    if event_name.startswith("s3:ObjectRemoved:"):
        return types.OBJECT_REMOVED
    return None


def object_event_id(bucket: str, key: str, sequencer: str) -> str:
    return hashlib.sha256(f"{bucket}\0{key}\0{sequencer}".encode()).hexdigest()[:32]


def record_to_event(record: Any, source: str | None = None) -> dict[str, Any] | None:
    """The structured-JSON CloudEvent for one record (None for kinds knflow ignores).

    `source` defaults to the MinIO endpoint that produced the record when it says so, else
    `/knflow/storage/<bucket>`. Keys arrive URL-encoded with `+` for spaces, as S3 sends them.
    """
    try:
        name = record["eventName"]
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
    except (KeyError, TypeError) as exc:
        raise BadRecord(f"notification record lacks {exc}") from None
    if not isinstance(name, str) or not isinstance(bucket, str) or not bucket or not key:
        raise BadRecord("notification record has an empty bucket name or key")
    kind = event_type(name)
    if kind is None:
        return None
    sequencer = str(obj.get("sequencer") or record.get("eventTime") or "")
    if source is None:
        endpoint = (record.get("responseElements") or {}).get("x-minio-origin-endpoint")
        source = f"{endpoint.rstrip('/')}/{bucket}" if endpoint else f"/knflow/storage/{bucket}"
    data: dict[str, Any] = {
        "bucket": bucket,
        "key": key,
        "size": int(obj.get("size") or 0),
        "etag": obj.get("eTag") or obj.get("etag") or "",
        "contentType": obj.get("contentType") or "",
        "uri": f"s3://{bucket}/{quote(key, safe='/')}",
        "sequencer": sequencer,
    }
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": object_event_id(bucket, key, sequencer),
        "source": source,
        "type": kind,
        "subject": key,
        "bucket": bucket,
        "datacontenttype": "application/json",
        "data": data,
    }
    if record.get("eventTime"):
        doc["time"] = record["eventTime"]
    return doc


def records_to_events(
    payload: Any, source: str | None = None, buckets: set[str] | None = None
) -> list[dict[str, Any]]:
    """Every record of a notification (`{"Records": [...]}`) → events, in order.

    Raises BadRecord naming the first record that cannot be converted; records of other kinds
    (or, when `buckets` is given, other buckets) are skipped.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("Records"), list):
        raise BadRecord('expected a JSON object with a "Records" array (S3/MinIO notification)')
    out = []
    for i, record in enumerate(payload["Records"]):
        try:
            doc = record_to_event(record, source)
        except BadRecord as exc:
            raise BadRecord(f"Records[{i}]: {exc}") from None
        if doc is not None and (buckets is None or doc["bucket"] in buckets):
            out.append(doc)
    return out

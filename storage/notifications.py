"""Bucket notifications in the S3/MinIO record format, kept in a durable append-only log.

Writers (any process that changes the local store: a CLI upload, a replica writing outputs, the
folder watcher) append one record per create/delete; the store source in `eventing` reads the
log from its last acknowledged offset and turns each record into a CloudEvent. A crash between
append and delivery therefore replays rather than loses the notification.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

CREATED_PUT = "s3:ObjectCreated:Put"
CREATED_COPY = "s3:ObjectCreated:Copy"
REMOVED_DELETE = "s3:ObjectRemoved:Delete"


def make_record(
    event_name: str,
    bucket: str,
    key: str,
    *,
    size: int = 0,
    etag: str = "",
    sequencer: str | None = None,
    content_type: str = "",
    metadata: dict[str, str] | None = None,
    source: str = "knflow:local",
) -> dict:
    """One `Records[]` entry exactly as MinIO/S3 publish it (key URL-encoded, `+` for spaces)."""
    obj: dict = {"key": quote_plus(key, safe="/"), "sequencer": sequencer or new_sequencer()}
    if not event_name.startswith("s3:ObjectRemoved"):
        obj.update(size=size, eTag=etag, contentType=content_type, userMetadata=metadata or {})
    return {
        "eventVersion": "2.0",
        "eventSource": source,
        "awsRegion": "",
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "knflow"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "knflow",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


_last_sequencer = 0
_sequencer_lock = threading.Lock()


def new_sequencer() -> str:
    """Hex like MinIO's, from the clock; strictly increasing within a process, so events for the
    same key (committed under that key's lock) are ordered across processes too."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(time.time_ns(), _last_sequencer + 1)
        return f"{_last_sequencer:016X}"


class NotificationLog:
    """An append-only JSON-lines file of records; offsets are byte positions.

    Appends take an exclusive lock so lines from concurrent processes never interleave, and are
    fsynced: a record that was appended survives a crash.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, offset: int = 0, limit: int = 1000) -> list[tuple[int, dict]]:
        """Records after `offset`, each with the offset just past it (what to acknowledge)."""
        out: list[tuple[int, dict]] = []
        with open(self.path, "rb") as f:
            f.seek(offset)
            while len(out) < limit:
                line = f.readline()
                if not line.endswith(b"\n"):  # nothing more, or a line still being written
                    break
                offset += len(line)
                out.append((offset, json.loads(line)))
        return out

"""Source (1): the local store's notification log → object events at the broker.

The log (`<data>/.store/notifications.jsonl`) is read from a persisted byte offset; a batch
is posted to the broker and the offset advances only after the broker's 2xx, so a crash
anywhere replays rather than loses a notification (the stable ids make replays recognisable).
Files copied straight into a bucket folder are noticed by storage's folder watcher, which
appends to the same log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from storage.notifications import NotificationLog

from ..process import write_json_atomic
from .records import BadRecord, record_to_event
from .sink import BrokerRejected, BrokerSink

log = logging.getLogger("knflow.sources")

BATCH_SIZE = 100


def notifications_path(data_dir: Path) -> Path:
    return Path(data_dir) / ".store" / "notifications.jsonl"


class StoreSource:
    """Follows the notification log of the store in `data_dir`, for `buckets` (all if empty)."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        buckets: list[str],
        sink: BrokerSink,
        *,
        poll: float = 0.2,
    ):
        self.name, self.data_dir, self.sink, self.poll = name, Path(data_dir), sink, poll
        self.buckets = set(buckets) or None
        self.log = NotificationLog(notifications_path(self.data_dir))
        self.offset_file = self.data_dir / ".knflow" / "sources" / f"{name}.offset.json"
        self.offset = self._load_offset()
        self.sent = 0

    def _load_offset(self) -> int:
        try:
            offset = int(json.loads(self.offset_file.read_text())["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        size = self.log.path.stat().st_size
        return offset if offset <= size else 0  # the log was replaced: start over

    def _save_offset(self) -> None:
        write_json_atomic(self.offset_file, {"offset": self.offset, "log": str(self.log.path)})

    async def run(self) -> None:
        """Forever: read new records, post them, then persist the offset."""
        while True:
            if not await self.pump():
                await asyncio.sleep(self.poll)

    async def pump(self) -> int:
        """One batch; returns the number of records consumed (0: nothing new)."""
        batch = self.log.read(self.offset, BATCH_SIZE)
        if not batch:
            return 0
        docs = []
        for _, record in batch:
            try:
                doc = record_to_event(record)
            except BadRecord as exc:
                log.error("%s: skipping unreadable notification: %s", self.name, exc)
                continue
            if doc is not None and (self.buckets is None or doc["bucket"] in self.buckets):
                docs.append(doc)
        try:
            await self.sink.send_until_accepted(docs, f"source {self.name}")
        except BrokerRejected as exc:
            log.error("%s: broker refused %d event(s), skipped: %s", self.name, len(docs), exc)
        self.sent += len(docs)
        self.offset = batch[-1][0]
        self._save_offset()
        return len(batch)


def start_folder_watcher(
    data_dir: Path, buckets: Iterable[str] | None, stop: threading.Event
) -> threading.Thread | None:
    """Run storage's folder watcher (files copied straight into bucket folders) in a thread."""
    try:
        from storage.local import LocalStore
        from storage.watcher import FolderWatcher
    except ImportError:  # a storage without a watcher: uploads through the store still work
        log.warning("storage.watcher is not available: files copied into folders go unseen")
        return None
    watcher = FolderWatcher(LocalStore(data_dir), buckets)
    thread = threading.Thread(target=watcher.run, args=(stop,), name="folder-watcher", daemon=True)
    thread.start()
    return thread

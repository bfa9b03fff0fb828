"""The broker's recent-event feed: a ring of what happened, streamed to `knflow events tail`.

Publishing is a dict append and one queue put per watcher, cheap enough for every event.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import Any


class Feed:
    """Recent broker happenings (accepted, delivered, retry, dead-lettered, failed, dropped)."""

    def __init__(self, size: int = 1000):
        self.recent: deque[dict[str, Any]] = deque(maxlen=size)
        self._watchers: set[asyncio.Queue] = set()

    def note(self, kind: str, doc: Mapping[str, Any], **extra: Any) -> None:
        entry = {
            "time": time.time(),
            "kind": kind,
            "id": doc.get("id"),
            "type": doc.get("type"),
            "source": doc.get("source"),
            "subject": doc.get("subject"),
        }
        entry.update(extra)
        self.recent.append(entry)
        for queue in self._watchers:
            if queue.qsize() < 10_000:  # a stuck watcher loses lines, never stalls the broker
                queue.put_nowait(entry)

    def watch(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue) -> None:
        self._watchers.discard(queue)

    def close(self) -> None:
        """End every watcher's stream (the broker is stopping)."""
        for queue in self._watchers:
            queue.put_nowait(None)


def matches(entry: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """`--type`/`--source`/`--trigger`/`--kind` filters: exact, or a prefix ending in `*`."""
    for name, want in wanted.items():
        got = str(entry.get(name) or "")
        if want.endswith("*"):
            if not got.startswith(want[:-1]):
                return False
        elif got != want:
            return False
    return True

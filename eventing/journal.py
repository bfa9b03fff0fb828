"""The broker's write-ahead journal: accepted events and per-Trigger acknowledgements.

Why a journal: an event answered with 202 must survive `kill -9`, and after a restart every
(event, Trigger) pair that was not acknowledged must be delivered again — and no acknowledged one.

Layout: `<dir>/journal-<n>.log` segments of JSON lines, appended in order:
    {"s": seq, "e": {event}, "t": ["trigger"]}  an accepted event and the Triggers it matched
    {"a": seq, "t": "trigger", "o": "outcome"}   that event is done at that Trigger
An ack always follows its event in the stream, so it lives in the same or a later segment; the
oldest segments are therefore deleted as a prefix once all of their events are done.

Group commit: records queue in memory and one writer thread writes and fsyncs all that queued
while the previous fsync ran, then resolves their futures. One fsync serves many requests, which
keeps durable throughput high while each request still waits for its own record to be on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SEGMENT = re.compile(r"journal-(\d{8})\.log")


@dataclass
class Recovered:
    """What the journal held at start-up: events in order, the Triggers each was routed to
    (None for records that did not say) and the Triggers that acknowledged each."""

    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    routes: dict[int, list[str] | None] = field(default_factory=dict)
    acks: dict[int, set[str]] = field(default_factory=dict)
    next_seq: int = 1


class Journal:
    """Segmented, group-committed, append-only; one instance per broker data directory."""

    def __init__(self, directory: Path, segment_bytes: int = 32 << 20, fsync: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future] = []
        self._new_events: list[int] = []
        self._done_early: set[int] = set()
        self._flushing = False
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._segment_of: dict[int, int] = {}  # seq -> segment number, while not done
        self._open_in: dict[int, int] = {}  # segment -> events not yet done
        self._fd = -1
        self._active = 0
        self._active_size = 0
        self.commits = 0  # fsyncs done (group commit makes this far smaller than records)
        self.records = 0

    # --- start-up -----------------------------------------------------------------------------
    def recover(self) -> Recovered:
        """Read every segment (tolerating a torn last line), then open a fresh active segment."""
        out = Recovered()
        segments = self._segments()
        for number, path in segments:
            self._open_in.setdefault(number, 0)
            for record in _read_lines(path):
                if "e" in record:
                    seq = int(record["s"])
                    out.events[seq] = record["e"]
                    out.routes[seq] = record.get("t")
                    self._segment_of[seq] = number
                    self._open_in[number] += 1
                    out.next_seq = max(out.next_seq, seq + 1)
                elif "a" in record:
                    out.acks.setdefault(int(record["a"]), set()).add(record["t"])
        self._active = (segments[-1][0] + 1) if segments else 1
        self._open_segment()
        return out

    # --- appends --------------------------------------------------------------------------------
    def append_event(
        self, seq: int, doc: dict[str, Any], triggers: list[str] | None = None
    ) -> asyncio.Future:
        """Queue an accepted event and the Triggers it is routed to (a Trigger added later
        must not receive it after a restart); the future resolves once it is on disk."""
        record: dict[str, Any] = {"s": seq, "e": doc}
        if triggers is not None:
            record["t"] = triggers
        return self._append(record, seq)

    def append_ack(self, seq: int, trigger: str, outcome: str) -> asyncio.Future:
        """Queue "event `seq` is done at `trigger`"; the future resolves once it is on disk."""
        return self._append({"a": seq, "t": trigger, "o": outcome})

    def done(self, seq: int) -> None:
        """Every Trigger acknowledged `seq`: its segment may go once all its events are done."""
        number = self._segment_of.pop(seq, None)
        if number is None:
            self._done_early.add(seq)  # done before its first flush (it matched no Trigger)
            return
        self._open_in[number] -= 1
        self._drop_finished_prefix()

    def _append(self, record: dict[str, Any], seq: int | None = None) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((json.dumps(record, separators=(",", ":")) + "\n").encode())
        self._waiters.append(future)
        if seq is not None:
            self._new_events.append(seq)
        if not self._flushing:
            self._flushing = True
            self._task = loop.create_task(self._flush_loop())
        return future

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                chunk, waiters = b"".join(self._pending), self._waiters
                self._pending, self._waiters = [], []
                # Segments are assigned here, in the loop thread, so the map matches the file.
                for seq in self._new_events:
                    if seq in self._done_early:
                        self._done_early.discard(seq)
                    else:
                        self._segment_of[seq] = self._active
                        self._open_in[self._active] += 1
                self._new_events = []
                try:
                    await loop.run_in_executor(self._executor, self._write, chunk)
                except OSError as exc:
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc)
                    continue
                self.commits += 1
                self.records += len(waiters)
                if self._active_size >= self.segment_bytes:
                    os.close(self._fd)
                    self._active += 1
                    self._open_segment()
                    self._drop_finished_prefix()
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        finally:
            self._flushing = False

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]
        if self.fsync:
            os.fdatasync(self._fd)
        self._active_size += len(chunk)

    # --- housekeeping ---------------------------------------------------------------------------
    def _open_segment(self) -> None:
        path = self.dir / f"journal-{self._active:08d}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._active_size = os.fstat(self._fd).st_size
        self._open_in.setdefault(self._active, 0)
        _fsync_dir(self.dir)

    def _drop_finished_prefix(self) -> None:
        for number in sorted(self._open_in):
            if number >= self._active or self._open_in[number] > 0:
                return
            del self._open_in[number]
            (self.dir / f"journal-{number:08d}.log").unlink(missing_ok=True)

    def drop_finished(self) -> None:
        """Delete leading segments with nothing left to deliver (after recovery acked them)."""
        self._drop_finished_prefix()

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.dir.iterdir():
            match = _SEGMENT.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def segment_count(self) -> int:
        return len(self._segments())

    async def close(self) -> None:
        """Flush what is queued and close the active segment."""
        while self._flushing or self._pending:
            if not self._flushing:
                self._flushing = True
                await self._flush_loop()
            else:
                await asyncio.sleep(0.005)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._executor.shutdown(wait=True)


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # torn write at a crash: that record was never acknowledged
            try:
                yield json.loads(line)
            except ValueError:
                return


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

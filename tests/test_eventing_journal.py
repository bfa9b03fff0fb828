"""The broker journal: group commit, recovery of unacknowledged pairs, segment clean-up."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from eventing.journal import Journal


def run(coro):
    return asyncio.run(coro)


def test_group_commit_uses_few_fsyncs_for_many_concurrent_records(tmp_path: Path):
    async def main():
        journal = Journal(tmp_path)
        journal.recover()
        await asyncio.gather(*(journal.append_event(i, {"id": str(i)}) for i in range(1, 501)))
        await journal.close()
        return journal

    journal = run(main())
    assert journal.records == 500
    assert journal.commits < 50  # queued while the previous fsync ran: written together


def test_recovery_returns_events_with_the_triggers_that_acked_them(tmp_path: Path):
    async def first():
        journal = Journal(tmp_path)
        journal.recover()
        for seq in (1, 2, 3):
            await journal.append_event(seq, {"id": f"e{seq}"})
        await journal.append_ack(1, "a", "ok")
        await journal.append_ack(1, "b", "ok")
        await journal.append_ack(2, "a", "dead-lettered 500")
        await journal.close()

    run(first())
    # a torn record at the end (a crash mid-write) is ignored
    segment = sorted(tmp_path.glob("journal-*.log"))[-1]
    with open(segment, "ab") as f:
        f.write(b'{"a":3,"t":"a","o"')
    recovered = Journal(tmp_path).recover()
    assert recovered.events == {1: {"id": "e1"}, 2: {"id": "e2"}, 3: {"id": "e3"}}
    assert recovered.acks == {1: {"a", "b"}, 2: {"a"}}
    assert recovered.next_seq == 4


def test_finished_segments_are_deleted_oldest_first(tmp_path: Path):
    async def main():
        journal = Journal(tmp_path, segment_bytes=200)  # rotate after about every record
        journal.recover()
        for seq in range(1, 7):
            await journal.append_event(seq, {"id": f"e{seq}", "pad": "x" * 250})
        segments = journal.segment_count()
        for seq in (2, 3, 4):  # not the oldest: nothing can go yet
            await journal.append_ack(seq, "t", "ok")
            journal.done(seq)
        still = journal.segment_count()
        await journal.append_ack(1, "t", "ok")
        journal.done(1)  # now segments 1-4 are finished and form a prefix
        after = journal.segment_count()
        await journal.close()
        return segments, still, after

    segments, still, after = run(main())
    assert segments >= 6
    assert still == segments
    assert after == segments - 4
    recovered = Journal(tmp_path).recover()
    assert sorted(recovered.events) == [5, 6]  # what is left to deliver, nothing more


def test_an_event_done_before_its_first_flush_does_not_pin_its_segment(tmp_path: Path):
    async def main():
        journal = Journal(tmp_path, segment_bytes=100)
        journal.recover()
        future = journal.append_event(1, {"id": "no-trigger-wants-me", "pad": "x" * 100})
        journal.done(1)  # matched no Trigger
        await future
        await journal.append_event(2, {"id": "next", "pad": "x" * 100})
        await journal.close()
        return journal

    run(main())
    names = sorted(p.name for p in tmp_path.glob("journal-*.log"))
    assert "journal-00000001.log" not in names
    assert os.path.getsize(tmp_path / names[0]) > 0

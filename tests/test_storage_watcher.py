"""The folder watcher: files copied straight into a bucket folder are announced once complete,
exactly once, and never while another program is still writing them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from storage import FolderWatcher, LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "data")
    s.create_bucket("uploads")
    s.create_bucket("other")
    return s


def logged(store: LocalStore) -> list[dict]:
    return [r for _, r in store.notifications.read(0, limit=10_000)]


def test_copied_file_is_adopted_once_and_only_once(store, tmp_path):
    src = tmp_path / "talk.wav"
    src.write_bytes(b"RIFF" + bytes(1000))
    shutil.copy(src, store.root / "uploads" / "talk.wav")  # what `cp talk.wav data/uploads/` does
    watcher = FolderWatcher(store, ["uploads"], interval=0.05)
    assert watcher.scan_once() == []  # first sighting: not known to be complete yet
    (record,) = watcher.scan_once()
    obj = record["s3"]["object"]
    assert record["eventName"] == "s3:ObjectCreated:Put"
    assert (obj["key"], obj["size"]) == ("talk.wav", 1004)
    assert obj["eTag"] == hashlib.md5(src.read_bytes()).hexdigest()
    assert logged(store) == [record]
    assert watcher.scan_once() == [] and watcher.scan_once() == []
    restarted = FolderWatcher(store, ["uploads"], interval=0.05)  # survives restarts
    assert restarted.scan_once() == [] and restarted.scan_once() == []
    assert len(logged(store)) == 1
    info = store.head("uploads", "talk.wav")
    assert info.etag == obj["eTag"] and info.content_type in ("audio/x-wav", "audio/wav")
    assert [o.etag for o in store.iter_objects("uploads")] == [obj["eTag"]]


def test_objects_put_through_the_store_are_not_announced_again(store):
    store.put("uploads", "via-store.txt", b"hello")
    watcher = FolderWatcher(store, None, interval=0.05)
    assert watcher.scan_once() == [] and watcher.scan_once() == []
    assert len(logged(store)) == 1


SLOW_COPY = """
import sys, time
with open(sys.argv[1], "wb") as f:
    f.write(b"part-one;")
    f.flush()
    print("started", flush=True)
    sys.stdin.readline()          # hold the file open, unchanged, until told to go on
    f.write(b"part-two")
"""


def test_file_still_open_by_its_writer_is_not_adopted(store):
    """The writer pauses (so size and mtime look stable) with the file open: no adoption until
    it closes; then exactly one record, for the complete bytes."""
    target = store.root / "uploads" / "slow.bin"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_COPY, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        watcher = FolderWatcher(store, ["uploads"], interval=0.05)
        for _ in range(4):
            assert watcher.scan_once() == []
            time.sleep(0.05)
        proc.stdin.write("go\n")
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert watcher.scan_once() == []  # changed since the last look: wait one more scan
    (record,) = watcher.scan_once()
    assert record["s3"]["object"]["size"] == len(b"part-one;part-two")
    assert record["s3"]["object"]["eTag"] == hashlib.md5(b"part-one;part-two").hexdigest()
    assert watcher.scan_once() == []


def test_growing_file_is_adopted_only_when_it_stops_changing(store):
    target = store.root / "uploads" / "growing.bin"
    watcher = FolderWatcher(store, ["uploads"], interval=0.05)
    with open(target, "wb") as f:
        for _ in range(3):
            f.write(b"x" * 100)
            f.flush()
            assert watcher.scan_once() == []  # changed since the last scan
        assert watcher.scan_once() == []  # stable now, but still open (by us)
    records = watcher.scan_once()  # closed and unchanged since the previous scan
    assert [r["s3"]["object"]["size"] for r in records] == [300]
    assert watcher.scan_once() == []


def test_overwritten_in_place_and_removed_by_hand(store):
    path = store.root / "uploads" / "f.txt"
    path.write_bytes(b"v1")
    watcher = FolderWatcher(store, ["uploads"], interval=0.05)
    watcher.scan_once()
    assert len(watcher.scan_once()) == 1
    time.sleep(0.01)
    path.write_bytes(b"version 2")  # same inode, new bytes: a new version to announce
    watcher.scan_once()
    (again,) = watcher.scan_once()
    assert again["s3"]["object"]["size"] == 9
    path.unlink()  # `rm data/uploads/f.txt`
    (removed,) = watcher.scan_once()
    assert removed["eventName"] == "s3:ObjectRemoved:Delete"
    assert removed["s3"]["object"]["key"] == "f.txt"
    assert watcher.scan_once() == [] and watcher.scan_once() == []
    assert len(logged(store)) == 3


def test_only_watched_buckets_and_valid_names(store):
    (store.root / "other" / "elsewhere.txt").write_bytes(b"1")
    (store.root / "uploads" / ".talk.wav.partial").write_bytes(b"temp file of a copier")
    (store.root / "uploads" / "bad\x01name").write_bytes(b"control char")
    watcher = FolderWatcher(store, ["uploads"], interval=0.05)
    assert watcher.scan_once() == [] and watcher.scan_once() == []
    for everything in (None, []):  # no bucket list: every bucket (created later ones too)
        everywhere = FolderWatcher(store, everything, interval=0.05)
        store.create_bucket("later")
        (store.root / "later" / f"{everything}.txt").write_bytes(b"2")
        everywhere.scan_once()
        found = sorted(r["s3"]["bucket"]["name"] for r in everywhere.scan_once())
        assert found == (["later", "other"] if everything is None else ["later"])


def test_run_in_a_thread_until_stopped(store):
    seen: list[dict] = []
    store.subscribe(seen.append)
    stop = threading.Event()
    watcher = FolderWatcher(store, ["uploads"], interval=0.05)
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        (store.root / "uploads" / "dropped.txt").write_bytes(b"hello")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert [r["s3"]["object"]["key"] for r in seen] == ["dropped.txt"]

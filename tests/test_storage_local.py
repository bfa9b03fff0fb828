"""What only the local backend does: real files, crash safety, cross-process writers, and the
S3-format notification log that feeds eventing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from storage import LocalStore, NoSuchObject, StoreError, parse_uri
from tests.conftest import knflow_env


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "data")
    s.create_bucket("uploads")
    return s


def records(store: LocalStore) -> list[dict]:
    return [r for _, r in store.notifications.read(0, limit=10_000)]


def test_objects_are_plain_files_with_state_kept_apart(store):
    store.put("uploads", "talks/talk.wav", b"RIFF")
    assert (store.root / "uploads" / "talks" / "talk.wav").read_bytes() == b"RIFF"
    meta_file = store.root / ".store" / "meta" / "uploads" / "talks" / "talk.wav"
    meta = json.loads(meta_file.read_text())
    assert meta["etag"] == hashlib.md5(b"RIFF").hexdigest()
    assert os.listdir(store.root / ".store" / "tmp") == []  # nothing staged is left behind
    assert store.list_buckets() == ["uploads"]  # .store is not a bucket


def test_put_and_delete_append_s3_records(store):
    seen: list[dict] = []
    store.subscribe(seen.append)
    store.put("uploads", "in/a b+c.wav", b"12345", metadata={"origin": "mic"})
    store.put("uploads", "in/a b+c.wav", b"123")
    store.delete("uploads", "in/a b+c.wav")
    logged = records(store)
    assert logged == seen and len(logged) == 3
    put, again, removed = logged
    assert [r["eventName"] for r in logged] == [
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Put",
        "s3:ObjectRemoved:Delete",
    ]
    obj = put["s3"]["object"]
    assert obj["key"] == "in/a+b%2Bc.wav"  # query-escaped like MinIO: space → '+', '+' → %2B
    assert unquote_plus(obj["key"]) == "in/a b+c.wav"
    assert obj["size"] == 5 and obj["eTag"] == hashlib.md5(b"12345").hexdigest()
    assert obj["contentType"] in ("audio/x-wav", "audio/wav")
    assert obj["userMetadata"] == {"origin": "mic"}
    assert put["s3"]["bucket"]["name"] == "uploads"
    assert put["eventVersion"] == "2.0" and put["eventTime"].endswith("Z")
    assert again["s3"]["object"]["size"] == 3
    assert "size" not in removed["s3"]["object"]
    sequencers = [int(r["s3"]["object"]["sequencer"], 16) for r in logged]
    assert sequencers == sorted(set(sequencers))  # strictly increasing


def test_failed_put_leaves_old_object_and_no_record(store):
    store.put("uploads", "k", b"old")

    class Broken:
        def __init__(self):
            self.calls = 0

        def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk vanished")
            return b"x" * n

    with pytest.raises(OSError, match="disk vanished"):
        store.put("uploads", "k", Broken())
    assert store.get("uploads", "k") == b"old"
    assert len(records(store)) == 1
    assert os.listdir(store.tmp) == []


WRITER = """
import sys, time
from storage import LocalStore
store = LocalStore(sys.argv[1])
payload = bytes([int(sys.argv[2])]) * (512 << 10)
for _ in range(int(sys.argv[3])):
    store.put("uploads", "shared.bin", payload)
"""


def test_writers_in_separate_processes_commit_whole_objects(store):
    """Real processes racing on one key: readers only ever see one writer's bytes, the
    metadata matches the final bytes, and every put is logged once, in sequencer order."""
    payloads = {bytes([i]) * (512 << 10) for i in range(1, 5)}
    store.put("uploads", "shared.bin", bytes([1]) * (512 << 10))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), str(i), "5"], env=knflow_env()
        )
        for i in range(1, 5)
    ]
    reads = 0
    while any(p.poll() is None for p in procs):
        assert store.get("uploads", "shared.bin") in payloads
        reads += 1
    assert all(p.wait() == 0 for p in procs)
    final = store.get("uploads", "shared.bin")
    assert final in payloads and reads > 0
    assert store.head("uploads", "shared.bin").etag == hashlib.md5(final).hexdigest()
    logged = records(store)
    assert len(logged) == 1 + 4 * 5
    assert logged[-1]["s3"]["object"]["eTag"] == hashlib.md5(final).hexdigest()
    sequencers = [int(r["s3"]["object"]["sequencer"], 16) for r in logged]
    assert sequencers == sorted(set(sequencers))


SLOW_WRITER = """
import sys, time
from storage import LocalStore

class Slow:
    def __init__(self): self.n = 0
    def read(self, size):
        self.n += 1
        if self.n == 3:
            print("writing", flush=True)
        time.sleep(0.05)
        return b"y" * size

LocalStore(sys.argv[1]).put("uploads", "crash.bin", Slow())
"""


def test_crash_mid_write_leaves_no_partial_object(store):
    store.put("uploads", "crash.bin", b"before")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(store.root)],
        env=knflow_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert store.get("uploads", "crash.bin") == b"before"
    assert [o.key for o in store.iter_objects("uploads")] == ["crash.bin"]
    leftovers = list(store.tmp.iterdir())
    assert leftovers  # the killed writer's staged file: never visible under a bucket
    old = time.time() - 2 * 3600
    for path in leftovers:
        os.utime(path, (old, old))
    LocalStore(store.root)  # a later start sweeps staged files abandoned for over an hour
    assert list(store.tmp.iterdir()) == []
    assert len(records(store)) == 1


def test_key_that_is_also_a_folder_is_refused_clearly(store):
    store.put("uploads", "a/b", b"x")
    with pytest.raises(StoreError, match="cannot also be a prefix"):
        store.put("uploads", "a", b"y")
    store.put("uploads", "c", b"x")
    with pytest.raises(StoreError, match="cannot also be a prefix"):
        store.put("uploads", "c/d", b"y")
    assert store.get("uploads", "a/b") == b"x" and store.get("uploads", "c") == b"x"


def test_delete_removes_empty_folders(store):
    store.put("uploads", "x/y/z.txt", b"1")
    store.delete("uploads", "x/y/z.txt")
    assert os.listdir(store.root / "uploads") == []
    assert not (store.meta_root / "uploads" / "x").exists()


def test_file_copied_in_is_readable_before_adoption(store):
    (store.root / "uploads" / "copied.wav").write_bytes(b"abc")
    head = store.head("uploads", "copied.wav")
    assert head.etag == hashlib.md5(b"abc").hexdigest() and head.size == 3
    assert [o.etag for o in store.iter_objects("uploads")] == [""]  # not adopted yet
    assert records(store) == []  # only the watcher announces copied files


def test_symlinks_in_bucket_folders_are_not_objects(store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the store")
    (store.root / "uploads" / "link").symlink_to(secret)
    with pytest.raises(NoSuchObject):
        store.get("uploads", "link")
    assert list(store.iter_objects("uploads")) == []


def test_file_uri_maps_back_to_bucket_and_key(store):
    store.put("uploads", "dir/a b%.wav", b"x")
    uri = store.uri("uploads", "dir/a b%.wav")
    assert uri.startswith("file://") and "%20" in uri
    assert parse_uri(uri) == ("uploads", "dir/a b%.wav")


def test_bad_continuation_token(store):
    with pytest.raises(StoreError, match="continuation token"):
        store.list("uploads", token="%%%not-base64")

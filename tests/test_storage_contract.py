"""The ObjectStore contract, run against both backends: the local directory store and S3Store
talking to a real S3-protocol server (moto's server mode, in its own process on loopback)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import uuid
from pathlib import Path

import pytest

from storage import (
    InvalidKey,
    LocalStore,
    NoSuchBucket,
    NoSuchObject,
    ObjectStore,
    StoreError,
    open_store,
    parse_uri,
)
from storage.s3 import S3Store

pytest_plugins = ["tests.s3server"]

# Keys every backend must refuse, with the words the error has to contain.
BAD_KEYS = {
    "": "empty",
    "../etc/passwd": "'..'",
    "a/../../b": "'..'",
    "a/..": "'..'",
    "./a": "'.'",
    "a/./b": "'.'",
    "/etc/passwd": "absolute",
    "a//b": "empty path segment",
    "folder/": "folder",
    "nul\0byte": "NUL",
    "line\nbreak": "control character U+000A",
    "tab\there": "control character U+0009",
    "del\x7f": "control character U+007F",
    "k" * 1025: "1025 bytes",
    "é" * 513: "1026 bytes",
    "a/" + "s" * 256: "longer than 255 bytes",
    ".hidden": "starts with '.'",
    "dir/.part.tmp": "starts with '.'",
    "bad\udcffsurrogate": "not valid Unicode",
}
BAD_BUCKETS = {
    "": "empty",
    ".store": "reserved",
    ".knflow": "reserved",
    "ab": "3 to 63",
    "b" * 64: "3 to 63",
    "Uploads": "lower-case",
    "up_loads": "lower-case",
    "-uploads": "start and end",
    "uploads-": "start and end",
    "up..loads": "DNS label",
    "192.168.1.1": "IP address",
    "xn--uploads": "reserves",
}


@pytest.fixture(scope="session")
def s3_store(s3_endpoint: str) -> S3Store:
    return S3Store(s3_endpoint, "us-east-1")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> ObjectStore:
    """A store with an empty bucket `store.bucket` (a fresh one on the shared S3 server)."""
    if request.param == "local":
        s: ObjectStore = LocalStore(tmp_path / "store")
        bucket = "uploads"
    else:
        s = request.getfixturevalue("s3_store")
        bucket = f"t-{uuid.uuid4().hex[:12]}"
    s.create_bucket(bucket)
    return Bound(s, bucket)


class Bound:
    """A store plus the test's bucket (attribute access passes through to the store)."""

    def __init__(self, store: ObjectStore, bucket: str):
        self.store, self.bucket = store, bucket

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_put_get_head_roundtrip(store):
    b = store.bucket
    info = store.put(b, "talks/a b+c.wav", b"RIFF-data", metadata={"Origin": "mic-1"})
    assert (info.size, info.etag) == (9, md5(b"RIFF-data"))
    head = store.head(b, "talks/a b+c.wav")
    assert head.size == 9
    assert head.etag == md5(b"RIFF-data")
    assert head.content_type in ("audio/x-wav", "audio/wav")
    assert head.metadata == {"origin": "mic-1"}
    assert head.last_modified > 0
    assert store.get(b, "talks/a b+c.wav") == b"RIFF-data"


def test_explicit_content_type_and_empty_object(store):
    store.put(store.bucket, "empty.txt", b"", content_type="text/x-knflow")
    head = store.head(store.bucket, "empty.txt")
    assert (head.size, head.etag, head.content_type) == (0, md5(b""), "text/x-knflow")
    assert store.get(store.bucket, "empty.txt") == b""


def test_put_from_path_and_stream_reports_progress(store, tmp_path):
    data = os.urandom(3 << 20) + b"tail"
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    seen: list[int] = []
    info = store.put(store.bucket, "from-path", src, progress=seen.append)
    assert info.etag == md5(data) and info.size == len(data)
    assert seen and seen[-1] == len(data) and seen == sorted(seen)
    info = store.put(store.bucket, "from-stream", io.BytesIO(data))
    assert store.get(store.bucket, "from-stream") == data


def s3_etag(data: bytes, part: int = 8 << 20) -> str:
    """What S3 reports for `data` uploaded by boto3/AWS CLI defaults (multipart from 8 MiB)."""
    if len(data) < part:
        return md5(data)
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


@pytest.mark.parametrize("size", [8 << 20, (20 << 20) + 5])
def test_large_objects_stream_and_get_the_same_etag_on_both_backends(store, tmp_path, size):
    """Around and above boto3's 8 MiB multipart threshold: both backends report the etag S3
    gives a boto3 upload, whether the bytes came from a file or a stream."""
    data = os.urandom(size)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    assert store.put(store.bucket, "big.bin", src).etag == s3_etag(data)
    assert store.head(store.bucket, "big.bin").etag == s3_etag(data)
    store.put(store.bucket, "streamed.bin", io.BufferedReader(io.BytesIO(data)))
    assert store.head(store.bucket, "streamed.bin").etag == s3_etag(data)
    digest = hashlib.md5()
    with store.open(store.bucket, "big.bin") as stream:
        while chunk := stream.read(1 << 20):
            assert len(chunk) <= 1 << 20
            digest.update(chunk)
    assert digest.hexdigest() == md5(data)
    out = tmp_path / "out.bin"
    store.download(store.bucket, "big.bin", out)
    assert out.read_bytes() == data


def test_put_from_an_open_file_starts_at_its_position(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"HEADER" + b"payload")
    with open(src, "rb") as f:
        f.read(6)
        store.put(store.bucket, "tail", f)
    assert store.get(store.bucket, "tail") == b"payload"


def test_list_prefix_order_and_pagination(store):
    keys = ["b", "a", "c/d", "c0", "c/e/f", "z z", "ü"]
    for k in keys:
        store.put(store.bucket, k, k.encode())
    everything = [o.key for o in store.iter_objects(store.bucket)]
    assert everything == sorted(keys, key=str.encode)  # S3 order: UTF-8 bytes
    assert [o.key for o in store.iter_objects(store.bucket, "c")] == ["c/d", "c/e/f", "c0"]
    assert [o.key for o in store.iter_objects(store.bucket, "c/")] == ["c/d", "c/e/f"]
    assert [o.key for o in store.iter_objects(store.bucket, "nothing")] == []
    pages, token = [], None
    while True:
        page = store.list(store.bucket, token=token, limit=3)
        pages.append([o.key for o in page.objects])
        token = page.next_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [k for p in pages for k in p] == everything
    first = store.list(store.bucket, "c/d", limit=10).objects[0]
    assert (first.size, first.etag) == (3, md5(b"c/d"))


def test_overwrite_replaces_bytes_and_metadata(store):
    store.put(store.bucket, "k", b"one", metadata={"v": "1"})
    store.put(store.bucket, "k", b"second", metadata={"v": "2"})
    head = store.head(store.bucket, "k")
    assert (head.size, head.etag, head.metadata) == (6, md5(b"second"), {"v": "2"})
    assert store.get(store.bucket, "k") == b"second"


def test_delete_and_missing_objects(store):
    store.put(store.bucket, "gone/soon.txt", b"x")
    store.delete(store.bucket, "gone/soon.txt")
    for op in (store.head, store.get, store.open, store.delete):
        with pytest.raises(NoSuchObject, match=r"'gone/soon\.txt' does not exist"):
            op(store.bucket, "gone/soon.txt")
    assert list(store.iter_objects(store.bucket)) == []


def test_missing_bucket(store):
    with pytest.raises(NoSuchBucket, match="no-such-bucket"):
        store.put("no-such-bucket", "k", b"x")
    with pytest.raises(NoSuchBucket):
        store.head("no-such-bucket", "k")
    with pytest.raises(NoSuchBucket):
        store.list("no-such-bucket")
    assert store.bucket in store.list_buckets()
    store.create_bucket(store.bucket)  # idempotent


def test_download_is_all_or_nothing(store, tmp_path):
    target = tmp_path / "keep.txt"
    target.write_bytes(b"precious")
    with pytest.raises(NoSuchObject):
        store.download(store.bucket, "missing", target)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "store") == ["keep.txt"]
    store.put(store.bucket, "there", b"new bytes")
    info = store.download(store.bucket, "there", target)
    assert target.read_bytes() == b"new bytes" and info.etag == md5(b"new bytes")


def test_uri_roundtrips_through_parse_uri(store):
    store.put(store.bucket, "dir/a b+c?.wav", b"x")
    uri = store.uri(store.bucket, "dir/a b+c?.wav")
    assert parse_uri(uri) == (store.bucket, "dir/a b+c?.wav")


@pytest.mark.parametrize("key", list(BAD_KEYS), ids=[repr(k)[:30] for k in BAD_KEYS])
def test_refused_keys(store, key):
    with pytest.raises(InvalidKey, match=re.escape(BAD_KEYS[key])):
        store.put(store.bucket, key, b"x")
    for op in (store.head, store.open, store.delete):
        with pytest.raises(InvalidKey):
            op(store.bucket, key)
    assert list(store.iter_objects(store.bucket)) == []


@pytest.mark.parametrize("bucket", list(BAD_BUCKETS), ids=[b[:20] or "empty" for b in BAD_BUCKETS])
def test_refused_bucket_names(store, bucket):
    with pytest.raises(InvalidKey, match=re.escape(BAD_BUCKETS[bucket])):
        store.create_bucket(bucket)
    with pytest.raises(InvalidKey, match=re.escape(BAD_BUCKETS[bucket])):
        store.put(bucket, "k", b"x")


@pytest.mark.parametrize(
    "metadata,words",
    [({"bad name": "v"}, "metadata name"), ({"k": "é"}, "ASCII"), ({"k": "v" * 3000}, "2048")],
)
def test_refused_metadata(store, metadata, words):
    with pytest.raises(InvalidKey, match=words):
        store.put(store.bucket, "k", b"x", metadata=metadata)


def test_parallel_writers_and_readers_never_see_torn_objects(store):
    """Eight writers race on one key while readers read it: every read and the final object
    are exactly one writer's bytes, and head() describes those bytes."""
    size = 256 << 10
    payloads = [bytes([i]) * size for i in range(8)]
    store.put(store.bucket, "race", payloads[0])
    done = threading.Event()
    torn: list[str] = []

    def writer(i: int) -> None:
        for _ in range(3):
            store.put(store.bucket, "race", payloads[i])

    def reader() -> None:
        while not done.is_set():
            data = store.get(store.bucket, "race")
            if data not in payloads:
                torn.append(f"{len(data)} bytes, first {data[:1]!r} last {data[-1:]!r}")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert torn == []
    final = store.get(store.bucket, "race")
    assert final in payloads
    assert store.head(store.bucket, "race").etag == md5(final)


def test_open_store_urls(tmp_path, s3_endpoint, monkeypatch):
    local = open_store(f"file://{tmp_path}/st")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "st"
    assert isinstance(open_store(tmp_path / "plain"), LocalStore)
    s3 = open_store(f"s3://?endpoint={s3_endpoint}&region=us-east-1")
    assert isinstance(s3, S3Store) and s3.endpoint == s3_endpoint
    monkeypatch.setenv("KNFLOW_S3_ENDPOINT", s3_endpoint)
    assert open_store("s3://").endpoint == s3_endpoint
    for bad, words in [
        ("", "no object store URL"),
        ("ftp://x/y", "unsupported scheme"),
        ("file://host/dir", "absolute path"),
        ("s3://?endpint=x", "unknown option"),
    ]:
        with pytest.raises(StoreError, match=words):
            open_store(bad)


def test_s3_credentials_only_from_env_and_never_shown(s3_endpoint, monkeypatch):
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    store = S3Store(s3_endpoint)
    assert secret not in repr(store) and os.environ["AWS_ACCESS_KEY_ID"] not in repr(store)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match="AWS_SECRET_ACCESS_KEY"):
        S3Store(s3_endpoint)
    # (moto does not verify signatures, so a wrong secret cannot be tested against it.)


def test_s3_unreachable_endpoint_is_one_clear_error(s3_endpoint):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3Store(f"http://127.0.0.1:{port}", attempts=1)
    with pytest.raises(StoreError, match=f"cannot reach the S3 endpoint http://127.0.0.1:{port}"):
        store.head("uploads", "k")


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("s3://uploads/talk.wav", ("uploads", "talk.wav")),
        ("s3://uploads/dir/a%20b.wav", ("uploads", "dir/a b.wav")),
    ],
)
def test_parse_uri(uri, expected):
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    "uri,words",
    [
        ("s3://uploads", "empty"),
        ("s3://uploads/../x", "'..'"),
        ("s3://Bad_Bucket/x", "lower-case"),
        ("http://uploads/x", "not an object URI"),
        ("file:///definitely/not/a/store/x", "not inside a local object store"),
    ],
)
def test_parse_uri_refuses(uri, words):
    with pytest.raises(InvalidKey, match=words):
        parse_uri(uri)

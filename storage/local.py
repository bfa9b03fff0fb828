"""The local backend: buckets are plain folders, so `cp talk.wav <root>/uploads/` just works.

Layout under `root`:
    <bucket>/<key>                     the object's bytes, a real file
    .store/meta/<bucket>/<key>         its metadata (JSON), a tree mirroring the data tree
    .store/tmp/                        staged writes (same file system, so rename is atomic)
    .store/locks/NN.lock               striped per-key commit locks (flock, across processes)
    .store/notifications.jsonl         S3-format records of every create/delete

A put streams into a temp file (a file source is copied by the kernel) while other threads
compute its S3 etag from the bytes written (storage.etag), fsyncs it, then — under the key's
lock — renames it into place, appends the notification and writes the metadata. Concurrent
writers to one key therefore each commit a whole object; the last rename wins and its metadata
matches it.
The notification is appended before the metadata: a crash in between leaves a file without
metadata, which the folder watcher adopts and announces again (at-least-once, never lost).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import io
import json
import mimetypes
import os
import stat
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from . import keys
from .base import (
    Body,
    Listener,
    NoSuchBucket,
    NoSuchObject,
    ObjectInfo,
    ObjectStore,
    Page,
    Progress,
    StoreError,
)
from .etag import FileEtag, etag_of_file
from .files import copy_stream, fsync_dir, kernel_copy, open_body, seal, staged
from .notifications import CREATED_PUT, REMOVED_DELETE, NotificationLog, make_record

STATE_DIR = ".store"
LOCK_STRIPES = 64
STALE_TMP_SECONDS = 3600  # staged files untouched this long belong to a crashed writer
DEFAULT_TYPE = "application/octet-stream"


def guess_type(key: str) -> str:
    """The content type S3 clients would send for this key's file name."""
    return mimetypes.guess_type(key, strict=False)[0] or DEFAULT_TYPE


class LocalStore(ObjectStore):
    """Objects as files under `root`, with S3 semantics (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.state = self.root / STATE_DIR
        self.meta_root = self.state / "meta"
        self.tmp = self.state / "tmp"
        self.locks = self.state / "locks"
        for d in (self.root, self.meta_root, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        self.notifications = NotificationLog(self.state / "notifications.jsonl")
        self._listeners: list[Listener] = []
        self._sweep_tmp()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # ----------------------------------------------------------------- paths and locks
    def data_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def meta_path(self, bucket: str, key: str) -> Path:
        return self.meta_root / bucket / key

    def _bucket_dir(self, bucket: str) -> Path:
        keys.check_bucket(bucket)
        path = self.root / bucket
        if not path.is_dir():
            raise NoSuchBucket(f"bucket '{bucket}' does not exist in {self.root}")
        return path

    @contextlib.contextmanager
    def lock(self, bucket: str, key: str, shared: bool = False) -> Iterator[None]:
        """The commit lock of one key (striped); holds across threads and processes."""
        stripe = zlib.crc32(f"{bucket}/{key}".encode()) % LOCK_STRIPES
        fd = os.open(self.locks / f"{stripe:02d}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _sweep_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    # ----------------------------------------------------------------- metadata
    def read_meta(self, bucket: str, key: str, st: os.stat_result) -> dict | None:
        """The stored metadata if it still describes the file `st` (else None: not adopted)."""
        try:
            meta = json.loads(self.meta_path(bucket, key).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        same = (meta.get("size"), meta.get("mtimeNs"), meta.get("ino")) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
        )
        return meta if same else None

    def write_meta(self, bucket: str, key: str, st: os.stat_result, meta: dict) -> None:
        """Record metadata for the file whose stat is `st` (atomically, durably)."""
        meta = {**meta, "size": st.st_size, "mtimeNs": st.st_mtime_ns, "ino": st.st_ino}
        path = self.meta_path(bucket, key)
        self._makedirs(path.parent, bucket, key)
        with staged(self.tmp, "meta") as (f, tmp):
            f.write(json.dumps(meta, separators=(",", ":")).encode())
            seal(f)
            os.replace(tmp, path)
        fsync_dir(path.parent)

    def _info(self, bucket: str, key: str, st: os.stat_result, meta: dict | None) -> ObjectInfo:
        meta = meta or {}
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=st.st_size,
            etag=meta.get("etag", ""),
            content_type=meta.get("contentType") or guess_type(key),
            metadata=dict(meta.get("metadata") or {}),
            last_modified=st.st_mtime,
        )

    # ----------------------------------------------------------------- notifications
    def subscribe(self, listener: Listener) -> None:
        """Also call `listener(record)` in this process after every create/delete."""
        self._listeners.append(listener)

    def tell(self, record: dict) -> None:
        """Hand an already logged record to the in-process listeners."""
        for listener in list(self._listeners):
            listener(record)

    # ----------------------------------------------------------------- writes
    def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectInfo:
        keys.check_key(key)
        self._bucket_dir(bucket)
        user_meta = keys.check_metadata(metadata)
        content_type = content_type or guess_type(key)
        with staged(self.tmp, "put") as (f, tmp), open_body(body) as src:
            etag = FileEtag(f.fileno(), _remaining(src))

            def written(total: int) -> None:
                f.flush()
                etag.advance(total)
                if progress is not None:
                    progress(total)

            try:
                size = kernel_copy(src, f, written)
                if size is None:
                    size = copy_stream(src, f, written)
                st = seal(f)  # the fsync overlaps the tail of the hashing
                digest = etag.finish(size)
            finally:
                etag.abort()
            meta = {"etag": digest, "contentType": content_type, "metadata": user_meta}
            with self.lock(bucket, key):
                self._commit(tmp, bucket, key)
                record = make_record(
                    CREATED_PUT,
                    bucket,
                    key,
                    size=st.st_size,
                    etag=meta["etag"],
                    content_type=content_type,
                    metadata=user_meta,
                )
                self.notifications.append(record)
                self.write_meta(bucket, key, st, meta)
        self.tell(record)
        return self._info(bucket, key, st, meta)

    def _commit(self, tmp: Path, bucket: str, key: str) -> None:
        """Rename a sealed temp file into place (creating folders; a racing rmdir is retried)."""
        dest = self.data_path(bucket, key)
        for _ in range(5):
            self._makedirs(dest.parent, bucket, key)
            try:
                os.rename(tmp, dest)
            except FileNotFoundError:  # a delete pruned the folder we just made
                continue
            except (IsADirectoryError, NotADirectoryError) as exc:
                raise self._conflict(bucket, key) from exc
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise self._conflict(bucket, key) from exc
                raise
            fsync_dir(dest.parent)
            return
        raise StoreError(f"could not create folders for '{bucket}/{key}'")

    def _makedirs(self, path: Path, bucket: str, key: str) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise self._conflict(bucket, key) from exc

    @staticmethod
    def _conflict(bucket: str, key: str) -> StoreError:
        return StoreError(
            f"'{bucket}/{key}' conflicts with an existing object or folder: the local store keeps "
            "objects as files, so a key cannot also be a prefix of another key"
        )

    def delete(self, bucket: str, key: str) -> None:
        keys.check_key(key)
        self._bucket_dir(bucket)
        path = self.data_path(bucket, key)
        with self.lock(bucket, key):
            try:
                st = os.stat(path, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(bucket, key) from None
            if not _is_file(st):
                raise self._missing(bucket, key)
            os.unlink(path)
            fsync_dir(path.parent)
            record = make_record(REMOVED_DELETE, bucket, key)
            self.notifications.append(record)
            self.forget_meta(bucket, key)
            self._prune(path.parent, self.root / bucket)
        self.tell(record)

    def forget_meta(self, bucket: str, key: str) -> None:
        """Drop an object's metadata (its file is gone) and the folders that held only it."""
        meta = self.meta_path(bucket, key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            meta.unlink()
        self._prune(meta.parent, self.meta_root / bucket)

    @staticmethod
    def _prune(folder: Path, stop: Path) -> None:
        """Remove now-empty folders up to (not including) `stop`, as S3 has no folders."""
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    # ----------------------------------------------------------------- reads
    def open(self, bucket: str, key: str) -> BinaryIO:
        keys.check_key(key)
        self._bucket_dir(bucket)
        try:
            fd = os.open(self.data_path(bucket, key), os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._missing(bucket, key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink: not an object
                raise self._missing(bucket, key) from None
            raise StoreError(f"cannot read '{bucket}/{key}': {exc.strerror}") from None
        if not _is_file(os.fstat(fd)):
            os.close(fd)
            raise self._missing(bucket, key)
        return os.fdopen(fd, "rb")

    def head(self, bucket: str, key: str) -> ObjectInfo:
        keys.check_key(key)
        self._bucket_dir(bucket)
        with self.lock(bucket, key, shared=True):
            st = self._stat(bucket, key)
            meta = self.read_meta(bucket, key, st)
        if meta is None:  # copied in by another program and not adopted yet: hash it now
            with self.open(bucket, key) as f:
                st = os.fstat(f.fileno())
                meta = {"etag": etag_of_file(f)}
        return self._info(bucket, key, st, meta)

    def _stat(self, bucket: str, key: str) -> os.stat_result:
        try:
            st = os.stat(self.data_path(bucket, key), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(bucket, key) from None
        if not _is_file(st):
            raise self._missing(bucket, key)
        return st

    def _missing(self, bucket: str, key: str) -> NoSuchObject:
        return NoSuchObject(f"object '{key}' does not exist in bucket '{bucket}'")

    def list(
        self, bucket: str, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> Page:
        """Objects in UTF-8 byte order, like S3. Files not adopted yet have an empty etag."""
        keys.check_prefix(prefix)
        after = _decode_token(token)
        base = self._bucket_dir(bucket)
        found = sorted(
            (k for k in self.walk(base, prefix) if k.encode() > after),
            key=lambda k: k.encode(),
        )
        objects = []
        for key in found[:limit]:
            try:
                st = self._stat(bucket, key)
            except NoSuchObject:  # deleted while we listed
                continue
            objects.append(self._info(bucket, key, st, self.read_meta(bucket, key, st)))
        more = len(found) > limit
        return Page(objects, _encode_token(found[limit - 1]) if more and limit else None)

    @staticmethod
    def walk(base: Path, prefix: str = "") -> Iterator[str]:
        """Keys of the regular, non-hidden files under `base` that start with `prefix`."""
        folder = prefix.rpartition("/")[0]
        start = base / folder if folder else base
        stack = [(start, f"{folder}/" if folder else "")]
        while stack:
            path, rel = stack.pop()
            try:
                entries = list(os.scandir(path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                key = rel + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                        stack.append((Path(entry.path), key + "/"))
                elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                    yield key

    def uri(self, bucket: str, key: str) -> str:
        keys.check(bucket, key)
        return "file://" + quote(str(self.data_path(bucket, key)))

    # ----------------------------------------------------------------- buckets
    def create_bucket(self, bucket: str) -> None:
        keys.check_bucket(bucket)
        path = self.root / bucket
        if path.exists() and not path.is_dir():
            raise StoreError(f"cannot create bucket '{bucket}': {path} is a file")
        path.mkdir(exist_ok=True)

    def list_buckets(self) -> list[str]:
        names = []
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                with contextlib.suppress(keys.InvalidKey):
                    names.append(keys.check_bucket(entry.name))
        return sorted(names)

    def _read_into(self, bucket: str, key: str, dst: BinaryIO, progress: Progress | None) -> None:
        """Download fast path: the kernel copies file to file (no bytes through Python)."""
        with self.open(bucket, key) as src:
            if kernel_copy(src, dst, progress) is None:
                copy_stream(src, dst, progress)


def _is_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def _remaining(src: BinaryIO) -> int | None:
    """Bytes left in a seekable source (picks the hashing plan); None when unknown."""
    try:
        if isinstance(src, io.BytesIO):
            return len(src.getbuffer()) - src.tell()
        return os.fstat(src.fileno()).st_size - src.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_token(token: str | None) -> bytes:
    if not token:
        return b""
    try:
        return base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise keys.InvalidKey(f"continuation token {token!r} was not issued here") from None

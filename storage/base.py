"""The `ObjectStore` interface every backend implements, and its errors."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

# A put accepts bytes, an open binary file/stream, or a path to a file.
Body = bytes | BinaryIO | Path
# Called with the number of bytes moved so far (progress bars).
Progress = Callable[[int], None]
# Receives one S3/MinIO-format notification record (see storage.notifications).
Listener = Callable[[dict], None]


class StoreError(Exception):
    """Base of every object-store error; the message is meant for the user."""


class InvalidKey(StoreError, ValueError):
    """A bucket name or object key that S3 (or a safe local path) would not accept."""


class NoSuchObject(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NoSuchBucket(StoreError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: float = 0.0


@dataclass(frozen=True)
class Page:
    """One page of a listing; pass `next_token` back to get the next one (None: no more)."""

    objects: list[ObjectInfo]
    next_token: str | None = None


class ObjectStore(abc.ABC):
    """Buckets of objects addressed by key. Implementations stream: memory stays bounded."""

    @abc.abstractmethod
    def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectInfo: ...

    @abc.abstractmethod
    def open(self, bucket: str, key: str) -> BinaryIO:
        """A readable stream of the object's bytes (use as a context manager)."""

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def list(
        self, bucket: str, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> Page: ...

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> None: ...

    @abc.abstractmethod
    def uri(self, bucket: str, key: str) -> str:
        """Where the object lives: `s3://bucket/key`, or the local backend's `file://` path."""

    @abc.abstractmethod
    def create_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (idempotent)."""

    @abc.abstractmethod
    def list_buckets(self) -> list[str]: ...

    # Conveniences built on the primitives above.
    def get(self, bucket: str, key: str) -> bytes:
        with self.open(bucket, key) as stream:
            return stream.read()

    def download(
        self, bucket: str, key: str, path: Path, progress: Progress | None = None
    ) -> ObjectInfo:
        """Stream an object to a file, all or nothing: a temp file beside `path`, then rename.

        A failure part-way (missing object, network, disk full) leaves `path` untouched. Not
        fsynced (like cp or boto3): the object itself stays safe in the store.
        """
        from .files import atomic_write

        info = self.head(bucket, key)
        path = Path(path)
        try:
            with atomic_write(path, durable=False) as f:
                self._read_into(bucket, key, f, progress)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        return info

    def _read_into(self, bucket: str, key: str, dst: BinaryIO, progress: Progress | None) -> None:
        """Copy an object's bytes into `dst` (backends override with their fastest transfer)."""
        from .files import copy_stream

        with self.open(bucket, key) as src:
            copy_stream(src, dst, progress)

    def iter_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        token = None
        while True:
            page = self.list(bucket, prefix, token=token)
            yield from page.objects
            if not page.next_token:
                return
            token = page.next_token

    def subscribe(self, listener: Listener) -> None:
        """Be told of every create/delete as an S3 notification record (where supported)."""
        raise StoreError(f"{type(self).__name__} does not deliver notifications itself")

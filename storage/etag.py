"""S3 etags for local objects, computed in parallel while the bytes are being written.

S3 (and MinIO) give a single-part object the MD5 of its bytes and a multipart object the MD5 of
its parts' MD5s followed by `-<parts>`. boto3 and the AWS CLI upload anything from 8 MiB on in 8 MiB
parts; the local store (and S3Store) use the same threshold and part size, so one file gets the
same etag from either backend. Parts are independent, so they hash on several threads; MD5 being
the slowest step of a put, that is what keeps a local put close to a plain copy.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading

MULTIPART_THRESHOLD = 8 << 20  # boto3 / AWS CLI default
PART_SIZE = 8 << 20  # boto3 / AWS CLI default
MAX_PARTS = 10_000  # S3's limit; boto3 doubles the part size until the object fits
READ = 1 << 20
WORKERS = 2


def part_size_for(size: int | None) -> int:
    """The part size boto3 would use for an object of `size` bytes (None: not known yet)."""
    part = PART_SIZE
    while size and math.ceil(size / part) > MAX_PARTS:
        part *= 2
    return part


def combine(digests: list[bytes], size: int) -> str:
    """The etag from per-part MD5 digests (a single part's digest is the whole MD5)."""
    if size < MULTIPART_THRESHOLD:  # boto3: multipart from the threshold on
        return digests[0].hex() if digests else hashlib.md5(b"").hexdigest()
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


class FileEtag:
    """Hashes a file descriptor's bytes as a writer reports them written (`advance`).

    Worker threads each claim the next part and hash it with `pread` as soon as its bytes are
    there (from the page cache), so hashing overlaps the copy and the final fsync.
    """

    def __init__(self, fd: int, expected_size: int | None = None, workers: int = WORKERS):
        self.fd = fd
        self.part = part_size_for(expected_size)
        self.available = 0
        self.done = False
        self.next_part = 0
        self.digests: dict[int, bytes] = {}
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        if expected_size is not None and expected_size <= self.part:
            workers = 1
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def advance(self, available: int) -> None:
        """Bytes [0, available) are written and may be read back."""
        with self.cond:
            self.available = available
            self.cond.notify_all()
        if self.error is not None:
            raise self.error

    def finish(self, size: int) -> str:
        """Wait for the hashing to complete; `size` is the final length."""
        self._stop(size)
        if self.error is not None:
            raise self.error
        if size >= MULTIPART_THRESHOLD and self.part != part_size_for(size):
            return etag_of_fd(self.fd, size)  # grew past 80 GiB without notice: rehash
        count = max(1, math.ceil(size / self.part))
        return combine([self.digests[i] for i in range(count)] if size else [], size)

    def abort(self) -> None:
        self._stop(self.available)

    def _stop(self, size: int) -> None:
        with self.cond:
            self.available = size
            self.done = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()

    def _work(self) -> None:
        try:
            while True:
                with self.cond:
                    index = self.next_part
                    self.next_part += 1
                start = index * self.part
                end = start + self.part
                md5 = hashlib.md5(usedforsecurity=False)
                pos = start
                while pos < end:
                    with self.cond:
                        while self.available <= pos and not self.done:
                            self.cond.wait()
                        limit = min(end, self.available)
                        if self.done and pos >= limit:
                            break
                    while pos < limit:
                        data = os.pread(self.fd, min(READ, limit - pos), pos)
                        if not data:
                            raise OSError("file shrank while it was being hashed")
                        md5.update(data)
                        pos += len(data)
                if pos == start and self.done:
                    return  # past the end: no such part
                self.digests[index] = md5.digest()
        except BaseException as exc:  # handed to the writer at its next advance()/finish()
            self.error = exc
            with self.cond:
                self.done = True
                self.cond.notify_all()


def etag_of_fd(fd: int, size: int) -> str:
    """The etag of the first `size` bytes of an open file (all there already)."""
    etag = FileEtag(fd, size)
    etag.advance(size)
    return etag.finish(size)


def etag_of_file(f) -> str:
    """The etag of an open regular file, hashed from its start."""
    return etag_of_fd(f.fileno(), os.fstat(f.fileno()).st_size)

"""Notice files that other programs put straight into a local bucket folder.

`cp talk.wav <root>/uploads/` bypasses the store, so nothing announces the new object. The
watcher scans bucket folders periodically and adopts each file that has no (current) metadata
once it is complete: its size, mtime and inode were the same at two consecutive scans and no
process has it open. Adopting hashes the file, writes its metadata and appends one
`s3:ObjectCreated:Put` record. The metadata is what marks a file as adopted, so a file is
announced once, across watcher restarts too; a file overwritten in place is announced again.
Metadata whose file was removed by hand is dropped with an `s3:ObjectRemoved:Delete` record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from . import keys
from .base import InvalidKey
from .etag import etag_of_file
from .local import LocalStore, guess_type
from .notifications import CREATED_PUT, REMOVED_DELETE, make_record

log = logging.getLogger(__name__)

Signature = tuple[int, int, int]  # size, mtime_ns, inode


class FolderWatcher:
    """Periodic scanner of a LocalStore's bucket folders (every bucket when `buckets` is None
    or empty, as in a spec source without a bucket list)."""

    def __init__(
        self, store: LocalStore, buckets: Iterable[str] | None = None, interval: float = 1.0
    ):
        self.store = store
        self.buckets = [keys.check_bucket(b) for b in buckets or ()] or None
        self.interval = interval
        self._seen: dict[tuple[str, str], Signature] = {}
        # Files known to be adopted, at the signature they had then: a large bucket costs one
        # stat per file and scan, not a metadata read.
        self._adopted: dict[tuple[str, str], Signature] = {}
        self._warned: set[tuple[str, str]] = set()

    def run(self, stop: threading.Event) -> None:
        """Scan every `interval` seconds until `stop` is set (run it in a thread)."""
        while not stop.is_set():
            try:
                self.scan_once()
            except Exception:  # a bad scan must not end the watcher; the next one retries
                log.exception("folder scan of %s failed", self.store.root)
            stop.wait(self.interval)

    def scan_once(self) -> list[dict]:
        """One pass: adopt files that were stable since the previous pass; returns the records."""
        records: list[dict] = []
        seen: dict[tuple[str, str], Signature] = {}
        adopted: dict[tuple[str, str], Signature] = {}
        ready: list[tuple[str, str, Signature]] = []
        for bucket in self.buckets if self.buckets is not None else self.store.list_buckets():
            base = self.store.root / bucket
            if not base.is_dir():
                continue
            for key in LocalStore.walk(base):
                if not self._valid(bucket, key):
                    continue
                try:
                    st = os.stat(base / key, follow_symlinks=False)
                except OSError:
                    continue
                sig = (st.st_size, st.st_mtime_ns, st.st_ino)
                if self._adopted.get((bucket, key)) == sig or (
                    self.store.read_meta(bucket, key, st) is not None
                ):
                    adopted[(bucket, key)] = sig
                    continue
                if self._seen.get((bucket, key)) == sig:
                    ready.append((bucket, key, sig))
                seen[(bucket, key)] = sig
            records += self._forget_removed(bucket)
        self._seen, self._adopted = seen, adopted
        if ready:
            busy = open_files({self.store.data_path(b, k) for b, k, _ in ready})
            for bucket, key, sig in ready:
                if self.store.data_path(bucket, key) in busy:
                    continue  # a writer (or reader) still has it open: wait for the next pass
                record = self._adopt(bucket, key, sig)
                if record is not None:
                    self._seen.pop((bucket, key), None)
                    records.append(record)
        return records

    def _valid(self, bucket: str, key: str) -> bool:
        try:
            keys.check_key(key)
        except InvalidKey as exc:
            if (bucket, key) not in self._warned:
                self._warned.add((bucket, key))
                log.warning("not adopting %s/%r: %s", bucket, key, exc)
            return False
        return True

    def _adopt(self, bucket: str, key: str, sig: Signature) -> dict | None:
        """Hash outside the lock, then commit only if the file is still exactly what we hashed."""
        path = self.store.data_path(bucket, key)
        try:
            with open(path, "rb") as f:
                etag = etag_of_file(f)
                st = os.fstat(f.fileno())
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns, st.st_ino) != sig:
            return None
        with self.store.lock(bucket, key):
            try:
                now = os.stat(path, follow_symlinks=False)
            except OSError:
                return None
            if (now.st_size, now.st_mtime_ns, now.st_ino) != sig:
                return None
            if self.store.read_meta(bucket, key, now) is not None:
                return None  # a put (or another watcher) got there first
            content_type = guess_type(key)
            record = make_record(
                CREATED_PUT, bucket, key, size=now.st_size, etag=etag, content_type=content_type
            )
            self.store.notifications.append(record)
            self.store.write_meta(
                bucket, key, now, {"etag": etag, "contentType": content_type, "metadata": {}}
            )
        self.store.tell(record)
        return record

    def _forget_removed(self, bucket: str) -> list[dict]:
        """Metadata left behind by `rm <root>/<bucket>/<key>`: announce the removal once."""
        records = []
        meta_base = self.store.meta_root / bucket
        if not meta_base.is_dir():
            return records
        for key in LocalStore.walk(meta_base):
            if self.store.data_path(bucket, key).exists():
                continue
            with self.store.lock(bucket, key):
                if self.store.data_path(bucket, key).exists():
                    continue
                if not self.store.meta_path(bucket, key).exists():
                    continue
                record = make_record(REMOVED_DELETE, bucket, key)
                self.store.notifications.append(record)
                self.store.forget_meta(bucket, key)
            self.store.tell(record)
            records.append(record)
        return records


def open_files(paths: set[Path]) -> set[Path]:
    """Which of `paths` some process (that we may inspect) has open, from /proc/*/fd."""
    wanted = {str(p) for p in paths}
    found: set[Path] = set()
    pids: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in wanted:
                found.add(Path(target))
    return found

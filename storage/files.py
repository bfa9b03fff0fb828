"""Durable file plumbing shared by the backends and the CLI: chunked copies, staged temp files.

A file that readers may see is only ever created by renaming a complete, fsynced temp file over
it, so a reader sees the old bytes or the new bytes, never a mix, and a crash leaves at most a
stray temp file (which never has the final name).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough to keep memory flat


def copy_stream(
    src: BinaryIO,
    dst: BinaryIO,
    progress=None,
    chunk: int = CHUNK,
) -> int:
    """Copy `src` to `dst` in fixed-size chunks (memory stays at one chunk); returns the size.

    `progress(total_so_far)` is called after every chunk.
    """
    buf = bytearray(chunk)
    view = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    total = 0
    while True:
        if readinto is not None:
            n = readinto(view)
            data = view[:n] if n else b""
        else:
            data = src.read(chunk)
            n = len(data)
        if not n:
            return total
        dst.write(data)
        total += n
        if progress is not None:
            progress(total)


def kernel_copy(src: BinaryIO, dst: BinaryIO, progress=None) -> int | None:
    """Copy a regular file from its current position into `dst` inside the kernel
    (copy_file_range: no bytes through Python). Returns None, having copied nothing, when the
    source is not a regular file or the kernel cannot copy between the two files."""
    try:
        src_fd, dst_fd = src.fileno(), dst.fileno()
        if not stat.S_ISREG(os.fstat(src_fd).st_mode):
            return None
        start = src.tell()
        dst.flush()
        os.lseek(src_fd, start, os.SEEK_SET)
        n = os.copy_file_range(src_fd, dst_fd, 8 * CHUNK)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    total = 0
    while n:
        total += n
        if progress is not None:
            progress(total)
        n = os.copy_file_range(src_fd, dst_fd, 8 * CHUNK)
    src.seek(start + total)
    dst.seek(0, os.SEEK_CUR)  # resync the buffered writer with the fd's position
    return total


def fsync_dir(path: Path) -> None:
    """Make a rename/unlink in `path` durable (the directory entry itself is data too)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged(directory: Path, hint: str = "obj") -> Iterator[tuple[BinaryIO, Path]]:
    """A fresh temp file in `directory`, removed afterwards unless the caller renamed it away."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{hint[:40]}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def seal(f: BinaryIO) -> os.stat_result:
    """Flush and fsync a staged file; returns its final stat (kept by the rename)."""
    f.flush()
    os.fsync(f.fileno())
    return os.fstat(f.fileno())


@contextlib.contextmanager
def atomic_write(path: Path, durable: bool = True) -> Iterator[BinaryIO]:
    """Write `path` all-or-nothing: a temp file beside it, renamed over `path` once complete.

    `durable` also fsyncs the file and folder, so the new bytes survive a power cut; a copy
    whose original stays safe elsewhere (a download) can skip that, as cp and boto3 do.
    """
    path = Path(path)
    with staged(path.parent, path.name) as (f, tmp):
        yield f
        if durable:
            seal(f)
        else:
            f.flush()
        os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


@contextlib.contextmanager
def open_body(body) -> Iterator[BinaryIO]:
    """A readable stream for any accepted put body: bytes wrapped, a Path opened (and closed
    afterwards; unreadable → StoreError), a stream as it is."""
    from .base import StoreError

    if isinstance(body, bytes | bytearray | memoryview):
        yield io.BytesIO(body)
    elif isinstance(body, Path):
        try:
            f = open(body, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise StoreError(f"cannot read {body}: {exc.strerror}") from None
        with f:
            yield f
    elif hasattr(body, "read"):
        yield body
    else:
        raise TypeError(f"cannot store a {type(body).__name__}: pass bytes, a stream or a Path")

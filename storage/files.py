"""Durable file plumbing shared by the backends and the CLI: chunked copies, staged temp files.

A file that readers may see is only ever created by renaming a complete, fsynced temp file over
it, so a reader sees the old bytes or the new bytes, never a mix, and a crash leaves at most a
stray temp file (which never has the final name).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough to keep memory flat


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


def copy_stream(
    src: BinaryIO,
    dst: BinaryIO,
    progress=None,
    hasher: _Hasher | None = None,
    chunk: int = CHUNK,
) -> int:
    """Copy `src` to `dst` in fixed-size chunks (memory stays at one chunk); returns the size.

    `progress(total_so_far)` is called after every chunk; `hasher.update` sees every byte.
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
        if hasher is not None:
            hasher.update(data)
        dst.write(data)
        total += n
        if progress is not None:
            progress(total)


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
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Write `path` all-or-nothing: a temp file beside it, fsync, rename, fsync the folder."""
    path = Path(path)
    with staged(path.parent, path.name) as (f, tmp):
        yield f
        seal(f)
        os.replace(tmp, path)
    fsync_dir(path.parent)

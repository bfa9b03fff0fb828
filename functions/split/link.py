"""An emulated network link between the halves, shared by every replica of A.

Knative may run several replicas of A, each its own process, and all of them send to B over the
same (emulated) link. So the link's state lives in a directory: `settings.json` (changed at run
time by PUT /link on any replica; every replica re-reads it when it changes), one lock file per
transfer slot (a cap on concurrent transfers, like the original proxy's thread count), and a wire
clock that serialises bytes at the configured bandwidth. `flock` locks belong to an open file, so
the same code limits threads of one replica and replicas of one service alike.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_SLOTS = 256


class LinkError(ValueError):
    """Link settings that make no sense (negative bandwidth, unknown field, …)."""


@dataclass(frozen=True)
class LinkSettings:
    """What the link allows. None means unlimited."""

    name: str = "clear"
    bandwidth: float | None = None  # bytes per second, shared by all transfers
    latency: float = 0.0  # seconds added to each transfer
    max_transfers: int | None = None  # transfers in flight at once (further ones wait)

    @classmethod
    def from_dict(cls, doc: Any) -> LinkSettings:
        if not isinstance(doc, dict):
            raise LinkError("link settings must be a JSON object")
        if "preset" in doc:
            return preset(str(doc["preset"]))
        unknown = set(doc) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise LinkError(
                f"unknown link field(s) {', '.join(sorted(unknown))} "
                f"(known: name, bandwidth, latency, max_transfers, preset)"
            )
        bandwidth = _number(doc.get("bandwidth"), "bandwidth", positive=True)
        latency = _number(doc.get("latency", 0.0), "latency") or 0.0
        slots = doc.get("max_transfers")
        if slots is not None and (
            isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_SLOTS
        ):
            raise LinkError(f"max_transfers must be an integer from 1 to {MAX_SLOTS} or null")
        return cls(str(doc.get("name") or "custom"), bandwidth, float(latency), slots)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.bandwidth:
            parts.append(f"{self.bandwidth / 1e6:g} MB/s")
        if self.latency:
            parts.append(f"+{self.latency * 1000:g} ms")
        if self.max_transfers:
            parts.append(f"{self.max_transfers} at a time")
        return f"{self.name} ({', '.join(parts) or 'unlimited'})"


PRESETS: dict[str, LinkSettings] = {
    "clear": LinkSettings("clear"),
    "congested": LinkSettings("congested", bandwidth=20e6, latency=0.02, max_transfers=1),
}


def preset(name: str) -> LinkSettings:
    if name not in PRESETS:
        raise LinkError(f"unknown link preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]


def parse_link(text: str) -> LinkSettings:
    """A preset name, or `name:bandwidth=2e6,latency=0.05,max_transfers=1` (CLI form)."""
    if ":" not in text and "=" not in text:
        return preset(text)
    name, _, rest = text.rpartition(":") if ":" in text else ("custom", "", text)
    doc: dict[str, Any] = {"name": name or "custom"}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise LinkError(f"link option {item!r} is not key=value")
        key = {"bw": "bandwidth", "lat": "latency", "max": "max_transfers"}.get(key, key)
        try:
            doc[key] = int(value) if key == "max_transfers" else float(value)
        except ValueError:
            raise LinkError(f"link option {key}={value!r} is not a number") from None
    return LinkSettings.from_dict(doc)


@dataclass
class LinkStats:
    """What this replica has seen (counters since start)."""

    transfers: int = 0
    bytes: int = 0
    waited_s: float = 0.0  # time spent waiting for a slot or the wire, plus added latency
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int, waited: float) -> None:
        with self.lock:
            self.transfers += 1
            self.bytes += nbytes
            self.waited_s += waited

    def as_dict(self) -> dict[str, Any]:
        return {"transfers": self.transfers, "bytes": self.bytes, "waited_s": self.waited_s}


class Link:
    """The link as seen from one replica; `state_dir` is shared by all replicas of a service."""

    def __init__(self, state_dir: Path | None = None, initial: LinkSettings | None = None):
        self.dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="knflow-link-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._settings_path = self.dir / "settings.json"
        self._cached: tuple[float, LinkSettings] | None = None
        self.stats = LinkStats()
        if initial is not None and not self._settings_path.exists():
            self.update(initial)

    @property
    def settings(self) -> LinkSettings:
        try:
            mtime = self._settings_path.stat().st_mtime_ns
        except FileNotFoundError:
            return PRESETS["clear"]
        if self._cached is None or self._cached[0] != mtime:
            try:
                doc = json.loads(self._settings_path.read_text())
                self._cached = (mtime, LinkSettings.from_dict(doc))
            except (OSError, ValueError):
                return self._cached[1] if self._cached else PRESETS["clear"]
        return self._cached[1]

    def update(self, settings: LinkSettings) -> LinkSettings:
        """Change the link for every replica (atomic replace; readers see old or new)."""
        tmp = self._settings_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(settings.as_dict()))
        os.replace(tmp, self._settings_path)
        return settings

    @contextmanager
    def transfer(self, nbytes: int) -> Iterator[LinkSettings]:
        """Hold a slot for the whole exchange with B; delay by latency and by the bytes' time on
        the shared wire. The body of the `with` is the actual request."""
        settings = self.settings
        began = time.monotonic()
        slot = self._acquire_slot(settings.max_transfers) if settings.max_transfers else None
        try:
            if settings.bandwidth:
                self._occupy_wire(nbytes / settings.bandwidth)
            if settings.latency:
                time.sleep(settings.latency)
            self.stats.add(nbytes, time.monotonic() - began)
            yield settings
        finally:
            if slot is not None:
                fcntl.flock(slot, fcntl.LOCK_UN)
                os.close(slot)

    def _acquire_slot(self, slots: int) -> int:
        delay = 0.001
        while True:
            for i in range(slots):
                fd = os.open(self.dir / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _occupy_wire(self, seconds: float) -> None:
        """Reserve the next `seconds` of the shared wire (FIFO) and wait until they have passed."""
        fd = os.open(self.dir / "wire", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 64, 0)
            now = time.time()
            free_at = 0.0
            with suppress(ValueError):
                free_at = float(raw.decode() or 0)
            done = max(now, free_at) + seconds
            os.ftruncate(fd, 0)
            os.pwrite(fd, repr(done).encode(), 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        time.sleep(max(0.0, done - time.time()))


def _number(value: Any, what: str, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LinkError(f"{what} must be a number or null, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise LinkError(f"{what} must be {'positive' if positive else 'non-negative'}")
    return float(value)

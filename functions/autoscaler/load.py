"""Closed-loop load against a live service, with the replicas it used sampled meanwhile.

`clients` threads each send a request, wait for the answer, and send the next, which is how a
fixed number of concurrent users behaves: the concurrency the autoscaler sees equals `clients`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    replica_samples: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    @property
    def replicas(self) -> float:
        """Mean replicas while the load ran."""
        samples = self.replica_samples
        return sum(samples) / len(samples) if samples else 0.0

    @property
    def replica_seconds(self) -> float:
        return self.replicas * self.duration_s


def run_load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    clients: int,
    duration: float,
    replicas: Callable[[], float] | None = None,
    sample_every: float = 0.25,
    timeout: float = 120.0,
) -> LoadResult:
    """POST `body` to `url` from `clients` closed-loop clients for `duration` seconds.

    A request counts when it was sent inside the window; its latency is recorded when it ends
    (after the window too, so slow answers are not dropped from the p95).
    """
    result = LoadResult(clients, duration)
    lock = threading.Lock()
    began = time.monotonic()
    deadline = began + duration
    done = threading.Event()

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                reply = session.post(url, data=body, headers=headers, timeout=timeout)
                ok, why = reply.status_code == 200, f"HTTP {reply.status_code}: {reply.text[:200]}"
            except requests.RequestException as exc:
                ok, why = False, str(exc)
            elapsed = (time.monotonic() - t0) * 1000
            with lock:
                if ok:
                    result.latencies_ms.append(elapsed)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or why
            if not ok:
                time.sleep(0.05)

    def sampler() -> None:
        while not done.wait(sample_every):
            try:
                result.replica_samples.append(float(replicas()))  # type: ignore[misc]
            except Exception:  # a missed sample must not stop the measurement
                continue

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    watcher = threading.Thread(target=sampler, daemon=True) if replicas else None
    for t in threads:
        t.start()
    if watcher:
        watcher.start()
    for t in threads:
        t.join()
    result.duration_s = max(duration, time.monotonic() - began)
    done.set()
    if watcher:
        watcher.join()
    return result

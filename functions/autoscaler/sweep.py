"""Measuring the live split services: target x traffic x link, one cell at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests

from functions.split.link import LinkSettings

from .control import ControlError, EmbeddedControl, current_target, target_patch
from .environment import Measurement
from .load import LoadResult, run_load


@dataclass
class LiveSplit:
    """The two halves of a running instance: A's URL and the control API for both."""

    control: EmbeddedControl
    a_url: str
    services: Sequence[str]  # [A, B]

    def link(self) -> LinkSettings:
        doc = requests.get(self.a_url.rstrip("/") + "/link", timeout=180).json()
        return LinkSettings.from_dict(
            {k: doc[k] for k in ("name", "bandwidth", "latency", "max_transfers")}
        )

    def set_link(self, link: LinkSettings) -> None:
        reply = requests.put(self.a_url.rstrip("/") + "/link", json=link.as_dict(), timeout=180)
        if reply.status_code != 200:
            raise ControlError(f"setting the link on {self.services[0]} failed: {reply.text}")

    def targets(self) -> dict[str, int]:
        return {name: current_target(self.control.get(name)) for name in self.services}

    def set_target(self, target: int, wait: float = 180.0) -> None:
        """Patch every half and wait until its new revision is ready (or `wait` runs out)."""
        for name in self.services:
            if current_target(self.control.get(name)) != target:
                self.control.patch(name, target_patch(target))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if all(_settled(self.control.get(name)) for name in self.services):
                return
            time.sleep(0.25)
        raise ControlError(f"new revisions at target {target} not ready after {wait:.0f}s")

    def replicas(self) -> float:
        return float(sum(self.control.stats(name)["replicas"] for name in self.services))

    def load(
        self, body: bytes, headers: dict[str, str], clients: int, seconds: float
    ) -> LoadResult:
        url = self.a_url.rstrip("/") + "/predict"
        return run_load(url, body, headers, clients, seconds, replicas=self.replicas)


def _settled(service: dict) -> bool:
    status = service.get("status", {})
    created = status.get("latestCreatedRevisionName")
    return bool(created) and created == status.get("latestReadyRevisionName")


def measure(
    live: LiveSplit,
    body: bytes,
    headers: dict[str, str],
    targets: Sequence[int],
    traffic_levels: Sequence[int],
    links: Sequence[LinkSettings],
    seconds: float,
    warmup: float,
    progress: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    """Every (link, target, traffic) cell; the original targets are restored afterwards."""
    original, original_link = live.targets(), live.link()
    rows = []
    try:
        for target in targets:  # outermost: each target is a new revision, links are instant
            live.set_target(target)
            for link in links:
                live.set_link(link)
                for clients in traffic_levels:
                    if warmup:
                        live.load(body, headers, clients, warmup)
                    result = live.load(body, headers, clients, seconds)
                    row = Measurement(
                        link=link.name,
                        traffic=clients,
                        target=target,
                        throughput=round(result.throughput, 4),
                        p95_ms=round(result.percentile(95), 2),
                        replicas=round(result.replicas, 3),
                        requests=result.requests,
                        errors=result.errors,
                        p50_ms=round(result.percentile(50), 2),
                        duration_s=round(result.duration_s, 3),
                    )
                    rows.append(row)
                    if progress:
                        progress(row)
    finally:
        live.set_link(original_link)
        for name, target in original.items():
            try:
                if current_target(live.control.get(name)) != target:
                    live.control.patch(name, target_patch(target))
            except ControlError:
                pass
    return rows

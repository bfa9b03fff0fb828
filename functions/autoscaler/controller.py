"""One autoscaling decision: observe traffic, ask the policy, set the targets that changed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .control import ServiceControl, current_target, target_patch
from .policy import Policy


@dataclass
class Decision:
    traffic: float
    link: str | None
    changes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (from, to)
    kept: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "traffic": round(self.traffic, 3),
            "link": self.link,
            "changed": {k: {"from": a, "to": b} for k, (a, b) in self.changes.items()},
            "kept": self.kept,
        }


class Controller:
    """Applies `policy` to `services`; traffic is the in-flight requests at the first of them
    (every request to A becomes one to B, so A's concurrency is the pipeline's)."""

    def __init__(
        self,
        control: ServiceControl,
        policy: Policy,
        services: Sequence[str],
        samples: int = 5,
        interval: float = 0.1,
        link: Callable[[], str | None] | None = None,
    ):
        if not services:
            raise ValueError("no services to autoscale")
        self.control, self.policy, self.services = control, policy, list(services)
        self.samples, self.interval, self.link = samples, interval, link

    def observe(self) -> float:
        """Mean in-flight requests at the first service over a few samples."""
        total = 0.0
        for i in range(self.samples):
            if i:
                time.sleep(self.interval)
            total += float(self.control.stats(self.services[0]).get("in_flight") or 0)
        return total / self.samples

    def tick(self, traffic: float | None = None, link: str | None = None) -> Decision:
        traffic = self.observe() if traffic is None else traffic
        if link is None and self.link is not None and traffic > 0:
            link = self.link()
        decision = Decision(traffic, link)
        if traffic <= 0:  # idle: the halves scale to zero whatever their target
            return decision
        for name in self.services:
            before = current_target(self.control.get(name))
            after = self.policy.decide(link, traffic, before)
            if after != before:
                self.control.patch(name, target_patch(after))
                decision.changes[name] = (before, after)
            else:
                decision.kept[name] = before
        return decision

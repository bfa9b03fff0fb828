"""Knative's KPA (Knative Pod Autoscaler) on observed concurrency, one per revision.

desired = ceil(observed concurrency / (target x utilization)), computed over a stable window
(default 60 s) and a panic window (`panic-window-percentage` of it, default 10 % = 6 s). When the
panic estimate reaches `panic-threshold-percentage` (200 %) of the ready replicas the autoscaler
panics: it scales on the panic window and never scales down until a whole stable window has
passed without reaching the threshold. Each step is bounded by `max-scale-up-rate` x
ready and ready / `max-scale-down-rate`; `scale-down-delay` holds the highest recommendation of
that long; the result is clamped to `min-scale`/`max-scale` (and, above zero, to at least
`activation-scale`). A revision goes to zero only after a
stable window without requests plus `scale-to-zero-pod-retention-period`.
This follows knative.dev/serving pkg/autoscaler/scaling/autoscaler.go, with `tick`-long buckets.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from eventing.durations import parse_duration

from ..spec import AUTOSCALING_PREFIX, Service


@dataclass(frozen=True)
class ScalingSpec:
    """A revision's autoscaling settings, from its annotations with Knative's defaults."""

    target: float
    utilization: float = 0.7
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    min_scale: int = 0
    max_scale: int = 0  # 0: no upper bound
    initial_scale: int = 1
    retention: float = 0.0
    scale_down_delay: float = 0.0
    activation_scale: int = 1  # replicas to start when scaling from zero

    @property
    def target_value(self) -> float:
        """Concurrency per replica the autoscaler aims at (target x utilization)."""
        return max(self.target * self.utilization, 0.01)

    @classmethod
    def of(cls, svc: Service) -> ScalingSpec:
        """Knative's rules: target defaults to containerConcurrency (else 100), capped by it.
        ValueError naming the annotation when a value is not a number or duration."""

        def num(key: str, kind: type = float):
            value = (
                svc.autoscaling(key)
                if key != "activation-scale"
                else svc.annotations.get(AUTOSCALING_PREFIX + key, "1")
            )
            try:
                return kind(value) if kind is not _seconds else _seconds(value)
            except ValueError:
                what = {float: "a number", int: "a whole number"}.get(kind, "a duration (60s)")
                raise ValueError(f"{AUTOSCALING_PREFIX}{key}: {value!r} is not {what}") from None

        cc = svc.container_concurrency
        if AUTOSCALING_PREFIX + "target" in svc.annotations or cc <= 0:
            target = num("target")
        else:
            target = float(cc)
        if cc > 0:
            target = min(target, float(cc))
        window = num("window", _seconds)
        return cls(
            target=target,
            utilization=num("target-utilization-percentage") / 100.0,
            stable_window=window,
            panic_window=window * num("panic-window-percentage") / 100.0,
            panic_threshold=num("panic-threshold-percentage") / 100.0,
            max_scale_up_rate=num("max-scale-up-rate"),
            max_scale_down_rate=num("max-scale-down-rate"),
            min_scale=num("min-scale", int),
            max_scale=num("max-scale", int),
            initial_scale=num("initial-scale", int),
            retention=num("scale-to-zero-pod-retention-period", _seconds),
            scale_down_delay=num("scale-down-delay", _seconds),
            activation_scale=num("activation-scale", int),
        )


@dataclass(frozen=True)
class Decision:
    desired: int
    stable: float  # observed concurrency, stable window
    panic: float  # observed concurrency, panic window
    panicking: bool


class KPA:
    """The decider: observations in, desired replica count out. Pure; time is passed in."""

    def __init__(self, spec: ScalingSpec) -> None:
        self.spec = spec
        self.samples: deque[tuple[float, float]] = deque()
        self.panic_since: float | None = None
        self.max_panic_pods = 0
        self.recent: deque[tuple[float, int]] = deque()  # scale-down-delay window

    def record(self, now: float, concurrency: float) -> None:
        """One observation: the average concurrency over the last tick."""
        self.samples.append((now, concurrency))
        horizon = now - self.spec.stable_window
        while self.samples and self.samples[0][0] <= horizon:
            self.samples.popleft()

    def average(self, now: float, window: float) -> float | None:
        values = [v for t, v in self.samples if t > now - window]
        if not values and self.samples:  # a window shorter than a tick: the latest sample
            values = [self.samples[-1][1]]
        return sum(values) / len(values) if values else None

    def decide(self, now: float, ready: int) -> Decision | None:
        """Desired replicas from the windows; None before the first observation."""
        spec = self.spec
        stable = self.average(now, spec.stable_window)
        panic = self.average(now, spec.panic_window)
        if stable is None or panic is None:
            return None
        ready_pods = max(1, ready)
        max_up = math.ceil(spec.max_scale_up_rate * ready_pods)
        max_down = (
            math.floor(ready_pods / spec.max_scale_down_rate) if spec.max_scale_down_rate > 0 else 0
        )
        stable_pods = min(max(math.ceil(stable / spec.target_value), max_down), max_up)
        panic_pods = min(max(math.ceil(panic / spec.target_value), max_down), max_up)

        over = panic_pods / ready_pods >= spec.panic_threshold
        if over:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since > spec.stable_window:
            self.panic_since, self.max_panic_pods = None, 0

        desired = stable_pods
        if self.panic_since is not None:
            self.max_panic_pods = max(self.max_panic_pods, panic_pods)
            desired = self.max_panic_pods  # in panic the count only goes up

        if spec.scale_down_delay > 0:
            self.recent.append((now, desired))
            while self.recent and self.recent[0][0] <= now - spec.scale_down_delay:
                self.recent.popleft()
            desired = max(d for _, d in self.recent)
        return Decision(desired, stable, panic, self.panic_since is not None)

    def bounded(self, desired: int, current: int, routed: bool, idle_for: float) -> int:
        """Clamp to min/max scale; hold the last replica until the service has been idle long
        enough; an unrouted revision (no traffic, no tag) scales to zero whatever its min-scale."""
        spec = self.spec
        if not routed:
            return 0
        desired = max(desired, spec.min_scale)
        if desired > 0:
            desired = max(desired, spec.activation_scale)
        if spec.max_scale > 0:
            desired = min(desired, spec.max_scale)
        if desired == 0 and current > 0 and idle_for < spec.stable_window + spec.retention:
            desired = 1
        return desired


def _seconds(text: str) -> float:
    text = str(text).strip()
    if text and text[-1].isdigit():
        return float(text)
    if text.startswith("P"):
        return parse_duration(text)
    return _go_duration(text)


def _go_duration(text: str) -> float:
    """Kubernetes annotations use Go durations: `60s`, `1m30s`, `500ms`, `1h`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number, i = 0.0, "", 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            raise ValueError(f"not a duration: {text!r} (use e.g. 60s, 1m30s, 500ms)")
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number:
        raise ValueError(f"not a duration: {text!r} (missing unit, e.g. 60s)")
    return total


def parse_seconds(text: str) -> float:
    """A Go-style (`60s`) or ISO-8601 duration, or plain seconds, in seconds."""
    return _seconds(text)

"""Prometheus metrics of one replica: requests by status, latency, requests in flight."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "knflow_function_requests",
            "Requests handled, by HTTP status and kind (event or route).",
            ["status", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "knflow_function_request_duration_seconds",
            "Time from request received to response ready.",
            ["kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "knflow_function_in_flight_requests",
            "Requests being handled right now.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

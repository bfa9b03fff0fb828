"""Typed view of a validated `knflow.yaml`: what the engines and the renderer consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventing.durations import parse_duration

from .pipeline import AUTOSCALING_PREFIX

# Knative's defaults (config-autoscaler / config-defaults), used when a service leaves them out.
AUTOSCALING_DEFAULTS: dict[str, str] = {
    "class": "kpa.autoscaling.knative.dev",
    "metric": "concurrency",
    "target": "100",
    "target-utilization-percentage": "70",
    "min-scale": "0",
    "max-scale": "0",
    "initial-scale": "1",
    "window": "60s",
    "panic-window-percentage": "10.0",
    "panic-threshold-percentage": "200.0",
    "max-scale-up-rate": "1000.0",
    "max-scale-down-rate": "2.0",
    "scale-to-zero-pod-retention-period": "0s",
    "scale-down-delay": "0s",
}


@dataclass(frozen=True)
class Destination:
    """Where events go: a service of this pipeline (`ref`) or a plain URI."""

    ref: str | None = None
    uri: str | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Destination | None:
        if not raw:
            return None
        return cls(ref=(raw.get("ref") or {}).get("name"), uri=raw.get("uri"))


@dataclass(frozen=True)
class Delivery:
    """Knative's DeliverySpec, durations already in seconds."""

    retry: int | None = None
    backoff_policy: str | None = None
    backoff_delay: float | None = None
    timeout: float | None = None
    dead_letter_sink: Destination | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Delivery:
        raw = raw or {}
        return cls(
            retry=raw.get("retry"),
            backoff_policy=raw.get("backoffPolicy"),
            backoff_delay=_seconds(raw.get("backoffDelay")),
            timeout=_seconds(raw.get("timeout")),
            dead_letter_sink=Destination.parse(raw.get("deadLetterSink")),
        )

    def over(self, default: Delivery) -> Delivery:
        """This delivery with unset fields taken from `default` (Trigger over Broker)."""
        return Delivery(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(self.astuple(), default.astuple(), strict=True)
            )
        )

    def astuple(self) -> tuple:
        return (
            self.retry,
            self.backoff_policy,
            self.backoff_delay,
            self.timeout,
            self.dead_letter_sink,
        )


@dataclass(frozen=True)
class ModelSource:
    uri: str
    name: str | None = None


@dataclass
class Service:
    name: str
    function: str
    image: str | None = None
    models: list[ModelSource] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    container_concurrency: int = 0
    timeout_seconds: int = 300
    annotations: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    traffic: list[dict[str, Any]] = field(default_factory=list)

    def autoscaling(self, key: str) -> str:
        """An `autoscaling.knative.dev/<key>` value, falling back to Knative's default."""
        return str(self.annotations.get(AUTOSCALING_PREFIX + key, AUTOSCALING_DEFAULTS[key]))

    @classmethod
    def parse(cls, raw: dict) -> Service:
        env, secret_env = {}, {}
        for var in raw.get("env") or []:
            if "valueFrom" in var:
                ref = var["valueFrom"]["secretKeyRef"]
                secret_env[var["name"]] = (ref["name"], ref["key"])
            else:
                env[var["name"]] = str(var.get("value", ""))
        return cls(
            name=raw["name"],
            function=raw["function"],
            image=raw.get("image"),
            models=[ModelSource(m["uri"], m.get("name")) for m in raw.get("models") or []],
            env=env,
            secret_env=secret_env,
            config=dict(raw.get("config") or {}),
            container_concurrency=int(raw.get("containerConcurrency", 0)),
            timeout_seconds=int(raw.get("timeoutSeconds", 300)),
            annotations={k: str(v) for k, v in (raw.get("annotations") or {}).items()},
            resources={
                k: {q: str(v) for q, v in m.items()}
                for k, m in (raw.get("resources") or {}).items()
            },
            traffic=list(raw.get("traffic") or []),
        )


@dataclass
class Trigger:
    name: str
    subscriber: Destination
    broker: str = "default"
    filter_attributes: dict[str, str] = field(default_factory=dict)
    filters: list[dict[str, Any]] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)

    @classmethod
    def parse(cls, raw: dict) -> Trigger:
        return cls(
            name=raw["name"],
            subscriber=Destination.parse(raw["subscriber"]),
            broker=raw.get("broker", "default"),
            filter_attributes={
                k: "" if v is None else str(v)
                for k, v in ((raw.get("filter") or {}).get("attributes") or {}).items()
            },
            filters=list(raw.get("filters") or []),
            delivery=Delivery.parse(raw.get("delivery")),
        )


@dataclass
class Source:
    name: str
    kind: str
    buckets: list[str] = field(default_factory=list)
    auth_token_env: str | None = None
    schedule: str | None = None
    data: Any = None
    content_type: str = "application/json"
    type: str | None = None  # ping: event type (Knative's PingSource uses dev.knative.sources.ping)

    @classmethod
    def parse(cls, raw: dict) -> Source:
        return cls(
            name=raw["name"],
            kind=raw["kind"],
            buckets=list(raw.get("buckets") or []),
            auth_token_env=raw.get("authTokenEnv"),
            schedule=raw.get("schedule"),
            data=raw.get("data"),
            content_type=raw.get("contentType", "application/json"),
            type=raw.get("type"),
        )


@dataclass
class Broker:
    name: str = "default"
    delivery: Delivery = field(default_factory=Delivery)


@dataclass
class Pipeline:
    """A whole validated pipeline; `raw` keeps the document as written (for `spec show`)."""

    name: str
    namespace: str
    broker: Broker
    buckets: list[str]
    services: list[Service]
    triggers: list[Trigger]
    sources: list[Source]
    path: str
    raw: dict[str, Any]

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(f"no service named {name!r} in {self.path}")

    @classmethod
    def parse(cls, raw: dict, path: str) -> Pipeline:
        meta = raw.get("metadata") or {}
        broker = raw.get("broker") or {}
        return cls(
            name=meta.get("name", "knflow"),
            namespace=meta.get("namespace", "default"),
            broker=Broker(broker.get("name", "default"), Delivery.parse(broker.get("delivery"))),
            buckets=list(raw.get("buckets") or []),
            services=[Service.parse(s) for s in raw.get("services") or []],
            triggers=[Trigger.parse(t) for t in raw.get("triggers") or []],
            sources=[Source.parse(s) for s in raw.get("sources") or []],
            path=path,
            raw=raw,
        )


def _seconds(text: str | None) -> float | None:
    return None if text is None else parse_duration(text)

"""One service at run time: its revisions (replicas, meter, KPA each) and its routers.

`ServiceRuntime` owns the persisted `ServiceState`, the traffic `Split` the routers use, and the
Knative object views of itself; `RevisionRuntime` ties one revision's replica set to its meter
and autoscaler. Both live on the serving loop (see `engine.Serving`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .autoscaler import KPA, Decision, ScalingSpec
from .bundles import BundleError
from .meter import Meter
from .objects import condition, revision_object, template_object, timestamp
from .replicas import ReplicaSet
from .revisions import NOT_READY, READY, UNKNOWN, Revision, ServiceState
from .router import Router
from .traffic import DEFAULT, Split, resolve

if TYPE_CHECKING:
    from .engine import Serving


class RevisionRuntime:
    """One revision at run time: its replicas, its meter and its autoscaler."""

    def __init__(self, service: ServiceRuntime, rev: Revision, fresh: bool) -> None:
        self.service, self.rev, self.name = service, rev, rev.name
        template = rev.template
        self.timeout = float(template.timeout_seconds)
        self.spec = ScalingSpec.of(template.service(service.name))
        self.kpa = KPA(self.spec)
        self.meter = Meter()
        self.decision: Decision | None = None
        engine = service.engine
        self.broken: str | None = None
        try:
            env = engine.revision_env(service.name, rev)
        except BundleError as exc:
            env, self.broken = {}, str(exc)
        self.replicas = ReplicaSet(
            rev.name,
            env,
            template.container_concurrency,
            engine.log_dir,
            engine.http,
            on_change=self._changed,
            timeout=self.timeout,
        )
        self.holding = fresh and self.spec.initial_scale > 0 and not self.broken
        if self.broken:
            self.replicas.failure = self.broken
            self._set(NOT_READY, "InvalidImage", self.broken)
        elif fresh and self.spec.initial_scale == 0:
            self._set(READY, "", "")  # nothing to wait for, as with Knative's zero initial scale
        elif self.holding:
            self.replicas.scale(self.spec.initial_scale)

    def activate(self) -> None:
        """A request is waiting: scale from zero now instead of at the next tick (activator)."""
        if not self.broken and self.replicas.desired == 0:
            spec = self.spec
            wanted = max(1, spec.min_scale, spec.activation_scale)
            self.replicas.scale(min(wanted, spec.max_scale) if spec.max_scale else wanted)

    def tick(self, now: float, routed: bool) -> None:
        self.kpa.record(now, self.meter.sample())
        decision = self.kpa.decide(now, len(self.replicas.ready))
        if decision is None or self.broken:
            return
        self.decision = decision
        want = self.kpa.bounded(
            decision.desired, len(self.replicas.active), routed, self.meter.idle_for()
        )
        if self.holding:
            if self.replicas.ever_ready or self.replicas.failure:
                self.holding = False
            else:
                want = max(want, self.spec.initial_scale)
        if self.replicas.waiting and want == 0:
            want = 1
        self.replicas.scale(want)

    def _changed(self, replicas: ReplicaSet) -> None:
        if replicas.ready:
            self._set(READY, "", "")
        elif replicas.failure:
            message = replicas.failure
            reason = (
                "ExitCode"
                if "exited with code" in message
                else "ProgressDeadlineExceeded"
                if "not ready within" in message
                else "StartFailed"
            )
            self._set(NOT_READY, reason, message)

    def _set(self, ready: str, reason: str, message: str) -> None:
        rev = self.rev
        if (rev.ready, rev.reason, rev.message) == (ready, reason, message):
            return
        rev.ready, rev.reason, rev.message = ready, reason, message
        self.service.revision_changed()

    def object(self, routed: bool) -> dict[str, Any]:
        return revision_object(
            self.rev,
            self.service.engine.namespace,
            routed,
            len(self.replicas.ready),
            self.replicas.desired,
        )


class ServiceRuntime:
    """One Knative Service: its persisted state, revisions, traffic split and router."""

    def __init__(self, engine: Serving, state: ServiceState) -> None:
        self.engine, self.state, self.name = engine, state, state.name
        self.revisions: dict[str, RevisionRuntime] = {}
        self.router = Router(self, engine.upstream)
        self.tag_routers: dict[str, Router] = {}
        self.split = Split([])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.router.port}"

    def add(self, rev: Revision, fresh: bool) -> None:
        self.revisions[rev.name] = RevisionRuntime(self, rev, fresh)

    def latest_ready(self) -> str:
        """Where `latestRevision` points: the newest Ready revision (else the newest not failed)."""
        revs = self.state.revisions
        for ready in (READY, UNKNOWN):
            for rev in reversed(revs):
                if rev.ready == ready:
                    return rev.name
        return revs[-1].name

    def rebuild(self) -> None:
        self.split = Split(resolve(self.state.traffic, self.latest_ready()))
        if set(self.split.tags) != set(self.tag_routers):
            asyncio.get_running_loop().create_task(self.sync_tags())

    async def sync_tags(self) -> None:
        """Give each tag its own URL (Knative: `tag-service.ns.domain`), drop removed ones."""
        for tag in set(self.split.tags) - set(self.tag_routers):
            router = self.tag_routers[tag] = Router(self, self.engine.upstream, tag)
            key = f"{self.name}#{tag}"
            self.engine.ports[key] = await router.listen(int(self.engine.ports.get(key, 0)))
        for tag in set(self.tag_routers) - set(self.split.tags):
            await self.tag_routers.pop(tag).close()
        self.engine.save_ports()

    def tag_url(self, tag: str) -> str | None:
        router = self.tag_routers.get(tag)
        return f"http://127.0.0.1:{router.port}" if router is not None and router.port else None

    def route(self, tag: str | None) -> RevisionRuntime | None:
        name = self.split.pick(tag)
        return self.revisions.get(name) if name else None

    def revision_changed(self) -> None:
        self.rebuild()
        self.engine.store.save(self.state)

    def tick(self, now: float) -> None:
        routed = self.split.routed()
        for rev in self.revisions.values():
            rev.tick(now, rev.name in routed)

    # ---- Knative object views --------------------------------------------------------------
    def object(self) -> dict[str, Any]:
        state = self.state
        latest = state.latest
        latest_ready = next((r.name for r in reversed(state.revisions) if r.ready == READY), None)
        routed = [self.state.revision(t.revision) for t in self.split.targets]
        failed = [r for r in routed if r is not None and r.ready == NOT_READY]
        config_cond = condition(
            "ConfigurationsReady", latest.ready, latest.reason, latest.message, latest.created
        )
        if failed:
            route_cond = condition(
                "RoutesReady",
                NOT_READY,
                "RevisionFailed",
                f"revision {failed[0].name} is not ready: {failed[0].message}",
            )
        else:
            route_cond = condition("RoutesReady", READY if latest_ready else UNKNOWN)
        statuses = {config_cond["status"], route_cond["status"]}
        ready_status = (
            NOT_READY if NOT_READY in statuses else (READY if statuses == {READY} else UNKNOWN)
        )
        bad = next((c for c in (config_cond, route_cond) if c["status"] == NOT_READY), None)
        ready_cond = condition(
            "Ready",
            ready_status,
            bad.get("reason", "") if bad else "",
            bad.get("message", "") if bad else "",
        )
        traffic_status = []
        for t in self.split.targets:
            entry: dict[str, Any] = {
                "revisionName": t.revision,
                "latestRevision": t.latest,
                "percent": t.percent,
            }
            if t.tag:
                entry["tag"] = t.tag
                if url := self.tag_url(t.tag):
                    entry["url"] = url
            traffic_status.append(entry)
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": self.name,
                "namespace": self.engine.namespace,
                "generation": state.generation,
                "creationTimestamp": timestamp(state.created),
            },
            "spec": {
                "template": template_object(state.template),
                "traffic": state.traffic or [dict(t) for t in DEFAULT],
            },
            "status": {
                "observedGeneration": state.generation,
                "url": self.url,
                "address": {"url": self.url},
                "conditions": [ready_cond, config_cond, route_cond],
                "latestCreatedRevisionName": latest.name,
                "latestReadyRevisionName": latest_ready,
                "traffic": traffic_status,
            },
        }

    def stats(self) -> dict[str, Any]:
        revs = {}
        for rev in self.revisions.values():
            rs = rev.replicas
            revs[rev.name] = {
                "replicas": len(rs.active),
                "ready_replicas": len(rs.ready),
                "in_flight": rev.meter.in_flight,
                "rps": round(rev.meter.rps, 3),
                "desired_replicas": rs.desired,
                "target": rev.spec.target,
                "observed_stable": round(rev.decision.stable, 3) if rev.decision else 0.0,
                "observed_panic": round(rev.decision.panic, 3) if rev.decision else 0.0,
                "panicking": bool(rev.decision and rev.decision.panicking),
                "restarts": rs.restarts,
                "endpoints": [r.url for r in rs.ready],
            }
        latest = self.revisions[self.state.latest.name]
        return {
            "service": self.name,
            "replicas": sum(r["replicas"] for r in revs.values()),
            "ready_replicas": sum(r["ready_replicas"] for r in revs.values()),
            "in_flight": sum(r["in_flight"] for r in revs.values()),
            "rps": round(sum(r["rps"] for r in revs.values()), 3),
            "desired_replicas": sum(r["desired_replicas"] for r in revs.values()),
            "target": latest.spec.target,
            "revisions": revs,
        }

"""The embedded serving engine: services, their revisions, routers and autoscalers on one loop.

Everything here runs on a single asyncio event loop (see `knative.embedded.Platform` for the
thread that owns it): routers forward requests, a ticker feeds each revision's meter into its
KPA every `tick` seconds, and replica sets start/drain processes to match.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import aiohttp

from functions.config import FunctionConfig
from functions.runtime.gunicorn_conf import ENV_PARENT
from functions.runtime.server import ENV_CONCURRENCY, ENV_TIMEOUT

from ..spec import Pipeline
from .autoscaler import KPA, Decision, ScalingSpec
from .bundles import BundleError, is_bundle, load_bundle
from .meter import Meter
from .objects import Invalid, apply_patch, condition, revision_object, template_object, timestamp
from .replicas import ReplicaSet
from .revisions import NOT_READY, READY, UNKNOWN, Revision, RevisionStore, ServiceState
from .router import Router
from .traffic import DEFAULT, Split, resolve
from .traffic import validate as validate_traffic

log = logging.getLogger("knflow.serving")
REPO = Path(__file__).resolve().parents[2]


class ServingError(Exception):
    """The pipeline's services cannot be served as written; the message says why."""


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
            self.replicas.scale(max(1, self.spec.min_scale))

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
        if self.meter.in_flight and want == 0:
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
        self.router = Router(self, engine.http)
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
                "conditions": [config_cond, ready_cond, route_cond],
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


class Serving:
    """All services of a pipeline. Create, `await start()` and `await stop()` on one loop."""

    def __init__(
        self,
        pipeline: Pipeline,
        data_dir: Path,
        store_url: str = "",
        sink: str = "",
        tick: float = 1.0,
    ) -> None:
        self.pipeline = pipeline
        self.namespace = pipeline.namespace
        self.data_dir = Path(data_dir)
        self.store_url = store_url or f"file://{self.data_dir}"
        self.sink = sink
        self.tick_seconds = tick
        self.root = self.data_dir / ".knflow" / "serving"
        self.log_dir = self.root / "logs"
        self.services: dict[str, ServiceRuntime] = {}
        self.store = RevisionStore(self.data_dir)
        self.http: aiohttp.ClientSession | None = None
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        ports_file = self.root / "ports.json"
        ports = json.loads(ports_file.read_text()) if ports_file.exists() else {}
        for svc in self.pipeline.services:
            state, new = self.store.apply(svc)
            problems = validate_traffic(state.traffic, [r.name for r in state.revisions])
            if problems:
                raise ServingError(f"service {svc.name!r}: {'; '.join(problems)}")
            srt = ServiceRuntime(self, state)
            for rev in state.revisions:
                srt.add(rev, fresh=rev is new)
            srt.rebuild()
            self.services[svc.name] = srt
            ports[svc.name] = await srt.router.listen(int(ports.get(svc.name, 0)))
        ports_file.write_text(json.dumps(ports))
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def stop(self, drain: float = 30.0) -> None:
        """Stop taking requests, answer those in flight, then stop every replica."""
        if self._ticker is not None:
            self._ticker.cancel()
        await asyncio.gather(*(s.router.close(drain) for s in self.services.values()))
        await asyncio.gather(
            *(r.replicas.close() for s in self.services.values() for r in s.revisions.values())
        )
        if self.http is not None:
            await self.http.close()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_seconds)
            now = loop.time()
            for service in self.services.values():
                try:
                    service.tick(now)
                except Exception:  # one bad revision must not stop autoscaling for the rest
                    log.exception("autoscaler tick failed for %s", service.name)

    def revision_env(self, service: str, rev: Revision) -> dict[str, str]:
        """The environment of a replica, as a container would get it (plus loopback details)."""
        template = rev.template
        function, extra, paths = template.function, {}, [str(REPO)]
        models = list(template.models)
        if is_bundle(template.image):
            bundle = load_bundle(template.image)
            function, extra = bundle.function, bundle.env
            if bundle.code:
                paths.insert(0, str(bundle.code))
            if bundle.model:
                models.insert(0, {"name": "model", "uri": str(bundle.model)})
        cfg = FunctionConfig(
            function=function,
            service=service,
            revision=rev.name,
            config=dict(template.config),
            models=models,
            store_url=self.store_url,
            sink=self.sink,
            data_dir=self.data_dir,
        )
        env = dict(os.environ)
        env.update(cfg.to_env())
        env.update(extra)
        env.update(template.env)
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env[ENV_CONCURRENCY] = str(template.container_concurrency)
        env[ENV_TIMEOUT] = str(template.timeout_seconds)
        env[ENV_PARENT] = str(os.getpid())
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    # ---- the control API's operations --------------------------------------------------------
    def service(self, name: str) -> ServiceRuntime:
        if name not in self.services:
            raise KeyError(name)
        return self.services[name]

    def patch(self, name: str, patch: Any) -> dict[str, Any]:
        """Apply a merge-patch; Invalid (nothing changed) when Knative would refuse it."""
        srt = self.service(name)
        state = srt.state
        template, traffic = apply_patch(
            srt.object(), patch, [r.name for r in state.revisions], name
        )
        if traffic == [dict(t) for t in DEFAULT]:
            traffic = []
        if template == state.template and traffic == state.traffic:
            return srt.object()
        new = state.set_template(template) if template != state.template else None
        if new is None:
            state.generation += 1
        state.traffic = traffic
        self.store.save(state)
        if new is not None:
            srt.add(new, fresh=True)
            log.info("service %s: created revision %s", name, new.name)
        srt.rebuild()
        return srt.object()

    def revisions(self, service: str | None = None) -> list[dict[str, Any]]:
        out = []
        for srt in self.services.values():
            if service and srt.name != service:
                continue
            routed = srt.split.routed()
            out += [r.object(r.name in routed) for r in srt.revisions.values()]
        return out


__all__ = ["Invalid", "RevisionRuntime", "ServiceRuntime", "Serving", "ServingError"]

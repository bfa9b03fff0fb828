"""The embedded serving engine: every service of a pipeline on one asyncio loop.

Routers forward requests, a ticker feeds each revision's meter into its KPA every `tick`
seconds, replica sets start and drain processes to match (see `services`); the control API's
operations (`patch`, `revisions`) are methods here. `knative.embedded.Platform` owns the loop.
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
from .bundles import is_bundle, load_bundle
from .objects import Invalid, apply_patch, scaling_problems
from .revisions import Revision, RevisionStore
from .services import RevisionRuntime, ServiceRuntime
from .traffic import DEFAULT
from .traffic import validate as validate_traffic
from .upstream import Upstream

log = logging.getLogger("knflow.serving")
REPO = Path(__file__).resolve().parents[2]


class ServingError(Exception):
    """The pipeline's services cannot be served as written; the message says why."""


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
        self.http: aiohttp.ClientSession | None = None  # readiness probes
        self.upstream = Upstream()  # forwarded requests
        self.ports_file = self.root / "ports.json"
        self.ports: dict[str, int] = (
            json.loads(self.ports_file.read_text()) if self.ports_file.exists() else {}
        )
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        )
        ports = self.ports
        for svc in self.pipeline.services:
            state, new = self.store.apply(svc)
            problems = scaling_problems(state.template, svc.name)
            problems += validate_traffic(state.traffic, [r.name for r in state.revisions])
            if problems:
                raise ServingError(f"service {svc.name!r}: {'; '.join(problems)}")
            srt = ServiceRuntime(self, state)
            for rev in state.revisions:
                srt.add(rev, fresh=rev is new)
            srt.rebuild()
            self.services[svc.name] = srt
            ports[svc.name] = await srt.router.listen(int(ports.get(svc.name, 0)))
        self.save_ports()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    def save_ports(self) -> None:
        """Ports are re-used at the next start, so service URLs stay the same across restarts."""
        self.ports_file.write_text(json.dumps(self.ports))

    async def stop(self, drain: float = 30.0) -> None:
        """Stop taking requests, answer those in flight, then stop every replica."""
        if self._ticker is not None:
            self._ticker.cancel()
        routers = [s.router for s in self.services.values()]
        routers += [r for s in self.services.values() for r in s.tag_routers.values()]
        await asyncio.gather(*(r.close(drain) for r in routers))
        await asyncio.gather(
            *(r.replicas.close(drain) for s in self.services.values() for r in s.revisions.values())
        )
        await asyncio.gather(*(r.shutdown() for r in routers))
        self.upstream.close()
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

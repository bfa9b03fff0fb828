"""The embedded platform: store, broker, services and sources of one pipeline on this machine.

    with Platform(load_spec(), data_dir).start() as platform:
        platform.service_url("transcribe")

Start order follows the dependencies: store (buckets) → broker (its URL becomes every replica's
K_SINK) → services (routers, revisions, control API) → `subscribers.json` for the broker →
sources. `stop()` goes the other way: no new events, then in-flight requests are answered
(drained), then replicas and processes stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .instance import Instance
from .serving import Serving, control_app
from .serving.replicas import STOP_GRACE
from .spec import Pipeline

log = logging.getLogger("knflow.platform")


class Platform:
    """Everything `knflow up` runs, in this process (services) and child processes (broker,
    sources, replicas). `tick` is the autoscaler period in seconds."""

    def __init__(
        self,
        pipeline: Pipeline,
        data_dir: Path | str,
        *,
        tick: float = 1.0,
        broker: bool = True,
        sources: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.data_dir = Path(data_dir).resolve()
        self.state_dir = self.data_dir / ".knflow"
        self.store_url = f"file://{self.data_dir}"
        self.tick = tick
        self.want_broker, self.want_sources = broker, sources
        self.broker_url = ""
        self.control_url = ""
        self.source_urls: dict[str, str] = {}
        self.serving: Serving | None = None
        self._broker: Any = None
        self._sources: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = False

    # ---- public API ---------------------------------------------------------------------------
    def start(self) -> Platform:
        """Start everything; raises (after cleaning up) when a part cannot start."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_store()
            spec_path = self._write_spec()
            self._start_broker(spec_path)
            self._start_loop()
            self._call(self._start_serving())
            self._write_subscribers()
            self._start_sources(spec_path)
            self._write_instance()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self, drain: float = 30.0) -> None:
        """Stop sources, then the broker, then drain and stop services. Safe to call twice."""
        if self._sources is not None:
            with contextlib.suppress(Exception):
                self._sources.stop()
            self._sources = None
        if self._broker is not None:
            with contextlib.suppress(Exception):
                self._broker.stop()
            self._broker = None
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._call(self._stop_serving(drain), timeout=2 * drain + STOP_GRACE + 30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None
        path = self.state_dir / "instance.json"
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            if json.loads(path.read_text())["pid"] == os.getpid():
                path.unlink()
        self._started = False

    def __enter__(self) -> Platform:
        return self if self._started else self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def service_url(self, name: str) -> str:
        return self._serving().service(name).url

    @property
    def service_urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self._serving().services.items()}

    def call(self, fn, *args):
        """Run `fn(*args)` on the serving loop (engine state lives there) and return its result."""

        async def run():
            return fn(*args)

        return self._call(run())

    # ---- parts --------------------------------------------------------------------------------
    def _start_store(self) -> None:
        try:
            from storage import open_store

            store = open_store(self.store_url)
        except (ImportError, AttributeError, NotImplementedError) as exc:
            log.warning("local object store unavailable (%s); buckets are plain folders", exc)
            store = None
        for bucket in self.pipeline.buckets:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.create_bucket(bucket)
            (self.data_dir / bucket).mkdir(parents=True, exist_ok=True)

    def _write_spec(self) -> Path:
        """The effective spec, for the broker and sources processes to read."""
        path = self.state_dir / "spec.yaml"
        path.write_text(yaml.safe_dump(self.pipeline.raw, sort_keys=False))
        return path

    def _start_broker(self, spec_path: Path) -> None:
        if not self.want_broker:
            return
        try:
            from eventing.broker import launch
        except ImportError as exc:
            log.warning("no broker available (%s): services run without K_SINK", exc)
            return
        self._broker = launch(self.data_dir, spec_path)
        self.broker_url = self._broker.url

    def _start_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="knflow-serving", daemon=True
        )
        self._thread.start()

    def _call(self, coro, timeout: float | None = 120.0):
        assert self._loop is not None, "the platform is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _serving(self) -> Serving:
        if self.serving is None:
            raise RuntimeError("the platform is not started")
        return self.serving

    async def _start_serving(self) -> None:
        self.serving = Serving(
            self.pipeline, self.data_dir, self.store_url, self.broker_url, tick=self.tick
        )
        await self.serving.start()
        self._runner = web.AppRunner(control_app(self.serving), access_log=None)
        await self._runner.setup()
        ports = self.serving.ports
        site = None
        for port in (int(ports.get("control", 0)), 0):
            site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
            try:
                await site.start()
                break
            except OSError:
                continue
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ports["control"] = port
        self.serving.save_ports()
        self.control_url = f"http://127.0.0.1:{port}"

    async def _stop_serving(self, drain: float) -> None:
        if self.serving is not None:
            await self.serving.stop(drain)
        if self._runner is not None:
            await self._runner.cleanup()

    def _write_subscribers(self) -> None:
        path = self.state_dir / "broker" / "subscribers.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.service_urls, indent=2))
        os.replace(tmp, path)

    def _start_sources(self, spec_path: Path) -> None:
        if not (self.want_sources and self.pipeline.sources and self.broker_url):
            return
        try:
            from eventing.sources import launch
        except ImportError as exc:
            log.warning("no event sources available (%s)", exc)
            return
        self._sources = launch(self.data_dir, spec_path, self.broker_url)
        self.source_urls = self._sources.sources

    def _write_instance(self) -> None:
        Instance(
            pid=os.getpid(),
            namespace=self.pipeline.namespace,
            broker_url=self.broker_url,
            control_url=self.control_url,
            store_url=self.store_url,
            services=self.service_urls,
            sources=self.source_urls,
            data_dir=str(self.data_dir),
        ).write(self.data_dir)

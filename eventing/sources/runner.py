"""All sources of a pipeline in one asyncio process: store followers, webhook receivers, pings."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from ..process import read_address, write_json_atomic
from .minio import MAX_BODY, MinioWebhook
from .ping import PingSource
from .sink import BrokerSink
from .store import StoreSource, start_folder_watcher

log = logging.getLogger("knflow.sources")


def sources_file(data_dir: Path) -> Path:
    """`{"pid", "url", "sources": {name: url}}` of the running sources process."""
    return Path(data_dir) / ".knflow" / "sources.json"


class Sources:
    """Builds every source of `pipeline` that posts to `broker_url`."""

    def __init__(
        self, pipeline: Any, data_dir: Path, broker_url: str, *, watch_folders: bool = True
    ):
        self.data_dir = Path(data_dir)
        self.sink = BrokerSink(broker_url)
        self.store: list[StoreSource] = []
        self.webhooks: list[MinioWebhook] = []
        self.pings: list[PingSource] = []
        self.watch_folders = watch_folders
        for src in pipeline.sources:
            if src.kind == "store":
                self.store.append(StoreSource(src.name, self.data_dir, src.buckets, self.sink))
            elif src.kind == "minio-webhook":
                self.webhooks.append(
                    MinioWebhook(src.name, self.sink, src.auth_token_env, src.buckets)
                )
            elif src.kind == "ping":
                self.pings.append(
                    PingSource(
                        src.name,
                        pipeline.namespace,
                        src.schedule or "",
                        self.sink,
                        data=src.data,
                        content_type=src.content_type,
                        event_type=src.type,
                    )
                )
        self.urls: dict[str, str] = {}
        self._tasks: list[asyncio.Task] = []
        self._runner: web.AppRunner | None = None
        self._stop = threading.Event()

    def app(self) -> web.Application:
        """Each webhook source at `/<name>`; the first one also at `/`."""
        app = web.Application(client_max_size=MAX_BODY)
        for i, hook in enumerate(self.webhooks):
            paths = [f"/{hook.name}"] + (["/"] if i == 0 else [])
            for path in paths:
                app.router.add_post(path, hook.receive)
                app.router.add_get(path, hook.probe)
        return app

    async def start(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        host, port = sock.getsockname()[:2]
        base = f"http://{host}:{port}"
        self.urls = {hook.name: f"{base}/{hook.name}" for hook in self.webhooks}
        if self.watch_folders and self.store:
            buckets = sorted({b for s in self.store for b in s.buckets or ()}) or None
            start_folder_watcher(self.data_dir, buckets, self._stop)
        for runnable in [*self.store, *self.pings]:
            self._tasks.append(asyncio.create_task(runnable.run(), name=runnable.name))
        write_json_atomic(
            sources_file(self.data_dir), {"pid": os.getpid(), "url": base, "sources": self.urls}
        )
        log.info(
            "sources running: %d store, %d webhook, %d ping",
            len(self.store),
            len(self.webhooks),
            len(self.pings),
        )

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.sink.close()
        path = sources_file(self.data_dir)
        if (read_address(path) or {}).get("pid") == os.getpid():
            path.unlink(missing_ok=True)

"""Event sources: the local store's notifications, a MinIO webhook receiver, and ping (cron).

handle = launch(data_dir, spec_path, broker_url)   # its own process; waits until ready
handle.sources                                       # {"minio-webhook": "http://…/minio-webhook"}
handle.stop()
"""

from __future__ import annotations

import os
from pathlib import Path

from ..process import DaemonError, ProcessHandle, spawn
from .records import BadRecord, record_to_event, records_to_events
from .runner import Sources, sources_file

__all__ = [
    "BadRecord",
    "DaemonError",
    "Sources",
    "SourcesHandle",
    "launch",
    "record_to_event",
    "records_to_events",
    "sources_file",
]


class SourcesHandle(ProcessHandle):
    @property
    def sources(self) -> dict[str, str]:
        """Webhook URL of each `minio-webhook` source, by name."""
        return dict(self.address.get("sources") or {})

    @property
    def url(self) -> str:
        return self.address["url"]


def launch(
    data_dir: str | Path,
    spec_path: str | Path | None,
    broker_url: str,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    watch_folders: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    tie_to_parent: bool = True,
) -> SourcesHandle:
    """Start `python -m eventing.sources` and return once its webhook receiver listens
    (stopping by itself when this process is gone, with `tie_to_parent`)."""
    data = Path(data_dir).resolve()
    args = ["--data", str(data), "--broker", broker_url, "--host", host, "--port", str(port)]
    if tie_to_parent:
        args += ["--parent", str(os.getpid())]
    if spec_path is not None:
        args += ["--spec", str(Path(spec_path).resolve())]
    if not watch_folders:
        args.append("--no-watch")
    handle = spawn(
        "eventing.sources",
        args,
        sources_file(data),
        data / ".knflow" / "sources.log",
        timeout=timeout,
        env=env,
    )
    return SourcesHandle(handle.proc, handle.address, handle.log_path)

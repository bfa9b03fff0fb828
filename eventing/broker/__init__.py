"""The Broker as its own process, and `launch()` to start one (for `knflow up` and tests).

handle = launch(data_dir, spec_path)     # waits until it listens
handle.url                               # http://127.0.0.1:P/<namespace>/<broker>
handle.stop()
"""

from __future__ import annotations

import os
from pathlib import Path

from ..process import DaemonError, ProcessHandle, spawn
from .core import Broker, broker_dir

__all__ = ["Broker", "BrokerHandle", "DaemonError", "broker_dir", "launch"]


class BrokerHandle(ProcessHandle):
    """A running broker process."""

    @property
    def url(self) -> str:
        """The ingress URL (what K_SINK and `knflow send` post to)."""
        return self.address["url"]

    @property
    def base_url(self) -> str:
        """`http://host:port`, for the `/.knflow/...` read API."""
        return self.address["base"]


def launch(
    data_dir: str | Path,
    spec_path: str | Path | None = None,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    timeout: float = 30,
    tie_to_parent: bool = True,
) -> BrokerHandle:
    """Start `python -m eventing.broker` and return once it accepts events.

    With `tie_to_parent` the broker stops by itself when this process is gone (even after a
    `kill -9` of it), so it never lingers holding the data directory.
    """
    data = Path(data_dir).resolve()
    args = ["--data", str(data), "--host", host, "--port", str(port)]
    if tie_to_parent:
        args += ["--parent", str(os.getpid())]
    if spec_path is not None:
        args += ["--spec", str(Path(spec_path).resolve())]
    state = broker_dir(data)
    handle = spawn(
        "eventing.broker",
        args + list(extra_args or []),
        state / "address.json",
        state / "broker.log",
        timeout=timeout,
        env=env,
    )
    return BrokerHandle(handle.proc, handle.address, handle.log_path)

"""Running split halves as real replicas (gunicorn + the shared runtime) for the split tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from functions.config import FunctionConfig

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def replica(
    function: str,
    config: dict,
    data_dir: Path,
    service: str,
    extra_env: dict[str, str] | None = None,
    concurrency: int = 4,
) -> Iterator[str]:
    """One replica of `function` on a free loopback port; yields its URL, stops it after."""
    port = free_port()
    cfg = FunctionConfig(function, service=service, config=config, data_dir=data_dir)
    env = {
        **os.environ,
        **cfg.to_env(),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "KNFLOW_CONTAINER_CONCURRENCY": str(concurrency),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        **(extra_env or {}),
    }
    log = open(data_dir / f"{service}.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions.runtime"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, data_dir / f"{service}.log")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"replica exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/health/readiness", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{log.read_text()[-2000:]}")

"""The gunicorn command line that serves one function (in a container and in every replica)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# Knative does not tell a container its containerConcurrency; the platform (or the image's env)
# does through this variable so the WSGI server gets exactly that many threads.
ENV_CONCURRENCY = "KNFLOW_CONTAINER_CONCURRENCY"
ENV_TIMEOUT = "KNFLOW_TIMEOUT_SECONDS"
DEFAULT_THREADS = 16  # containerConcurrency 0 means "no limit": a pool that suits light handlers
DEFAULT_PORT = 8080  # Knative's default container port


def gunicorn_command(env: Mapping[str, str] | None = None) -> list[str]:
    """argv for gunicorn: one worker process, threads = containerConcurrency, bind from $PORT."""
    env = os.environ if env is None else env
    concurrency = int(env.get(ENV_CONCURRENCY) or 0)
    threads = concurrency if concurrency > 0 else DEFAULT_THREADS
    host = env.get("HOST") or "0.0.0.0"
    port = int(env.get("PORT") or DEFAULT_PORT)
    timeout = int(env.get(ENV_TIMEOUT) or 300)
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class=gthread",
        "--workers=1",
        f"--threads={threads}",
        f"--bind={host}:{port}",
        # gthread heartbeats from its main loop, so this bounds a stuck worker, not a slow request
        f"--timeout={max(timeout, 30)}",
        f"--graceful-timeout={timeout}",
        # longer than any client pool keeps an idle connection: the client always closes first
        "--keep-alive=300",
        "--no-control-socket",  # a host runs many replicas; none needs a shared control socket
        "--config=python:functions.runtime.gunicorn_conf",
        "functions.runtime.wsgi:application",
    ]

"""gunicorn hooks: the function's `stop()` on worker exit; no orphan when the platform dies."""

from __future__ import annotations

import os
import signal
import threading
import time

loglevel = "info"
accesslog = None
errorlog = "-"

# Set by the embedded platform: if that process disappears (even by SIGKILL) the replica stops.
ENV_PARENT = "KNFLOW_PARENT_PID"


def when_ready(server) -> None:
    parent = os.environ.get(ENV_PARENT)
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_exit(server, worker) -> None:
    from . import wsgi

    lifecycle = getattr(wsgi, "lifecycle", None)
    if lifecycle is not None:
        lifecycle.stop()

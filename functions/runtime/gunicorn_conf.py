"""gunicorn hooks: the function's `stop()` runs when the worker exits (scale-down, shutdown)."""

from __future__ import annotations

loglevel = "info"
accesslog = None
errorlog = "-"


def worker_exit(server, worker) -> None:  # noqa: ARG001 (gunicorn's hook signature)
    from . import wsgi

    lifecycle = getattr(wsgi, "lifecycle", None)
    if lifecycle is not None:
        lifecycle.stop()

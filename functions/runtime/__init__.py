"""The shared function runtime: one function served over HTTP, as a Knative Functions image does.

`create_app(function, cfg)` builds the Flask app (CloudEvents in/out, the function's own routes,
health probes, Prometheus metrics); `python -m functions.runtime` serves it under gunicorn with
as many threads as `containerConcurrency` allows — the same command a container image runs, and
the command every embedded replica runs (`gunicorn_command`).

Names are imported lazily so that building the command does not pay for importing Flask.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "create_app": ".app",
    "resolve_function": ".loader",
    "gunicorn_command": ".server",
    "DEFAULT_THREADS": ".server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(_EXPORTS[name], __name__), name)

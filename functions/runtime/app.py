"""The Flask app serving one function, modelled on Knative Functions' Python template.

- `POST /`: a CloudEvent (binary, structured, or a batch of one) → `handle(event)`; the reply
  event comes back in binary mode with 200, no reply is 202. A malformed event is 400 with the
  reason; `BadInput` is 422 with the reason (Knative does not retry it, so the broker dead-letters
  the event); any other exception is 500 with a one-line reason, the traceback goes to the log.
- the function's `routes()` as plain HTTP routes (e.g. the V2 inference API), same error mapping.
- `/health/readiness`: 503 until `start(cfg)` has finished and `ready()` is true;
  `/health/liveness`: 503 when `alive()` says so or `start` failed; `/metrics`: Prometheus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from eventing.http import InvalidEvent, event_from_http, to_http

from ..config import FunctionConfig
from ..contract import BadInput, Function
from .metrics import Metrics

log = logging.getLogger("knflow.runtime")

# Paths the platform polls: not counted as requests, never subject to readiness.
PROBES = ("/health/readiness", "/health/liveness", "/metrics")


class Lifecycle:
    """Runs `start(cfg)` once in the background and answers the probes from its outcome."""

    def __init__(self, function: Function, cfg: FunctionConfig) -> None:
        self.function, self.cfg = function, cfg
        self.started = threading.Event()
        self.error: str | None = None

    def start(self, background: bool = True) -> None:
        if background:
            threading.Thread(target=self._run_start, name="function-start", daemon=True).start()
        else:
            self._run_start()

    def _run_start(self) -> None:
        start = getattr(self.function, "start", None)
        try:
            if start is not None:
                start(self.cfg)
        except Exception as exc:
            self.error = f"start failed: {type(exc).__name__}: {exc}"
            log.exception("function %s: start(cfg) failed", self.cfg.function)
        finally:
            self.started.set()

    def ready(self) -> tuple[bool, str]:
        if self.error:
            return False, self.error
        if not self.started.is_set():
            return False, "starting"
        return _hook(self.function, "ready", "not ready")

    def alive(self) -> tuple[bool, str]:
        if self.error:
            return False, self.error
        return _hook(self.function, "alive", "not alive")

    def stop(self) -> None:
        stop = getattr(self.function, "stop", None)
        if stop is not None and self.started.is_set() and not self.error:
            stop()


def create_app(function: Function, cfg: FunctionConfig, start_in_background: bool = True) -> Flask:
    """A Flask app serving `function`; `start(cfg)` begins at once (in a thread by default)."""
    app = Flask(f"knflow-{cfg.function}")
    metrics = Metrics()
    lifecycle = Lifecycle(function, cfg)
    app.extensions["knflow"] = {"metrics": metrics, "lifecycle": lifecycle, "function": function}

    @app.before_request
    def _begin() -> None:
        if request.path not in PROBES:
            g.knflow_t0 = time.perf_counter()
            metrics.in_flight.inc()

    @app.after_request
    def _count(response: Response) -> Response:
        t0 = g.pop("knflow_t0", None)
        if t0 is not None:
            kind = "event" if request.path == "/" else "route"
            metrics.requests.labels(str(response.status_code), kind).inc()
            metrics.latency.labels(kind).observe(time.perf_counter() - t0)
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        if request.path not in PROBES:
            metrics.in_flight.dec()

    @app.errorhandler(BadInput)
    def _bad_input(exc: BadInput) -> Response:
        log.info("bad input: %s", exc)
        return _text(str(exc), 422)

    @app.errorhandler(Exception)
    def _failure(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return exc  # type: ignore[return-value]
        log.exception("%s %s failed", request.method, request.path)
        reason = " ".join(str(exc).split()) or "no message"
        return _text(f"{type(exc).__name__}: {reason}"[:500], 500)

    @app.post("/")
    def _event() -> Response:
        ok, why = lifecycle.ready()
        if not ok:
            return _text(f"function not ready: {why}", 503)
        try:
            event = event_from_http(request.headers, request.get_data())
        except InvalidEvent as exc:
            return _text(f"invalid CloudEvent: {exc}", 400)
        reply = function.handle(event)
        if reply is None:
            return Response(status=202)
        headers, body = to_http(reply, "binary")
        return Response(body, status=200, headers=headers)

    @app.get("/health/readiness")
    def _readiness() -> Response:
        ok, why = lifecycle.ready()
        return _text("ready" if ok else why, 200 if ok else 503)

    @app.get("/health/liveness")
    def _liveness() -> Response:
        ok, why = lifecycle.alive()
        return _text("alive" if ok else why, 200 if ok else 503)

    @app.get("/metrics")
    def _metrics() -> Response:
        return Response(metrics.render(), mimetype=metrics.content_type)

    for rule, methods, view in _routes(function):
        app.add_url_rule(
            rule, endpoint=f"fn:{rule}:{','.join(methods)}", view_func=view, methods=methods
        )

    lifecycle.start(background=start_in_background)
    return app


def _routes(function: Function) -> list[tuple[str, list[str], Callable[..., Any]]]:
    routes = getattr(function, "routes", None)
    return list(routes()) if routes is not None else []


def _hook(function: Function, name: str, failing: str) -> tuple[bool, str]:
    hook = getattr(function, name, None)
    if hook is None:
        return True, ""
    try:
        return (True, "") if hook() else (False, failing)
    except Exception as exc:  # a probe that throws is a failing probe, not a crash
        return False, f"{name}() raised {type(exc).__name__}: {exc}"


def _text(body: str, status: int) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain")

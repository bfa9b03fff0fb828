"""The function runtime over real HTTP: gunicorn started by `python -m functions.runtime`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO
from servingkit.support import HERE, get, wait_for

from eventing.http import event_from_http, to_http
from functions.runtime.server import DEFAULT_THREADS, gunicorn_command

CE = {"ce-id": "e1", "ce-source": "/test", "ce-specversion": "1.0", "content-type": "text/plain"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def replica():
    """One replica of the probe function whose start() takes 1 s."""
    port = _port()
    env = dict(
        os.environ,
        KNFLOW_FUNCTION="probe_fn",
        KNFLOW_CONFIG=json.dumps({"start_sleep": 1.0}),
        K_REVISION="probe-00001",
        KNFLOW_CONTAINER_CONCURRENCY="3",
        PORT=str(port),
        HOST="127.0.0.1",
        PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions.runtime"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    early = wait_for(lambda: _status(url + "/health/readiness"), 30, 0.02, "the socket")
    yield url, early, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def _status(url: str) -> int | None:
    try:
        return get(url, timeout=5)[0]
    except OSError:
        return None


def post(url: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_readiness_is_503_until_start_finished(replica):
    url, early, _ = replica
    assert early == 503  # start() still sleeping when the socket first answered
    status, _, body = get(url + "/health/readiness")
    if status == 503:
        assert b"starting" in body
    wait_for(lambda: get(url + "/health/readiness")[0] == 200, 10, 0.05, "readiness")
    assert get(url + "/health/liveness")[0] == 200


def test_binary_event_in_reply_out_binary(replica):
    url, _, _ = replica
    wait_for(lambda: get(url + "/health/readiness")[0] == 200, 10, 0.05, "readiness")
    status, headers, body = post(url + "/", dict(CE, **{"ce-type": "hello"}), b"payload")
    assert status == 200
    reply = event_from_http(headers, body)
    assert (reply.get_type(), reply.get_source(), reply.get_id()) == ("reply", "/probe", "e1")
    assert body == b"payload"
    assert headers["ce-type"] == "reply"  # binary mode: attributes as headers


def test_structured_event_in_and_no_reply_is_202(replica):
    url, _, _ = replica
    wait_for(lambda: get(url + "/health/readiness")[0] == 200, 10, 0.05, "readiness")
    from eventing.events import new_event

    headers, body = to_http(new_event("quiet", "/test", {"a": 1}, id="s1"), "structured")
    status, _, out = post(url + "/", headers, body)
    assert (status, out) == (202, b"")


def test_error_mapping(replica):
    url, _, _ = replica
    wait_for(lambda: get(url + "/health/readiness")[0] == 200, 10, 0.05, "readiness")
    status, _, body = post(url + "/", {"content-type": "application/json"}, b"{}")
    assert status == 400 and b"not a CloudEvent" in body
    status, _, body = post(url + "/", dict(CE, **{"ce-type": "x", "ce-time": "yesterday"}), b"")
    assert status == 400 and b"RFC 3339" in body
    status, _, body = post(url + "/", dict(CE, **{"ce-type": "bad"}), b"")
    assert status == 422 and body == b"this input can never work\n"
    status, _, body = post(url + "/", dict(CE, **{"ce-type": "boom"}), b"")
    assert status == 500 and body == b"RuntimeError: exploded with two lines\n"


def test_function_routes_and_metrics(replica):
    url, _, proc = replica
    wait_for(lambda: get(url + "/health/readiness")[0] == 200, 10, 0.05, "readiness")
    status, _, body = get(url + "/work?sleep=0")
    assert status == 200 and json.loads(body)["revision"] == "probe-00001"
    assert json.loads(body)["pid"] != proc.pid  # served by gunicorn's worker process
    metrics = get(url + "/metrics")[2].decode()
    assert 'knflow_function_requests_total{kind="route",status="200"}' in metrics
    assert 'knflow_function_requests_total{kind="event",status="422"}' in metrics
    assert "knflow_function_request_duration_seconds_bucket" in metrics
    assert "knflow_function_in_flight_requests 0.0" in metrics


def test_threads_follow_container_concurrency(replica):
    url, _, _ = replica
    wait_for(lambda: get(url + "/health/readiness")[0] == 200, 10, 0.05, "readiness")
    # containerConcurrency 3 → 3 threads: 3 requests of 1 s overlap, a 4th waits for one
    # (serially 4 s; with a 4th thread 1 s)
    import concurrent.futures

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: get(url + "/work?sleep=1.0"), range(4)))
    assert 1.9 < time.monotonic() - t0 < 3.5
    assert "--threads=3" in gunicorn_command({"KNFLOW_CONTAINER_CONCURRENCY": "3"})
    assert f"--threads={DEFAULT_THREADS}" in gunicorn_command({"KNFLOW_CONTAINER_CONCURRENCY": "0"})
    assert "--bind=0.0.0.0:9000" in gunicorn_command({"PORT": "9000"})


def test_missing_function_name_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k != "KNFLOW_FUNCTION"}
    out = subprocess.run(
        [sys.executable, "-m", "functions.runtime"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 1 and "KNFLOW_FUNCTION is not set" in out.stderr


def test_echo_records_events_and_replies_with_a_derived_id():
    from eventing.events import derive_id
    from functions.config import FunctionConfig
    from functions.echo import new as new_echo
    from functions.runtime import create_app

    cfg = FunctionConfig(function="echo", service="echo", config={"reply_type": "echo.replied"})
    client = create_app(new_echo(), cfg, start_in_background=False).test_client()
    resp = client.post("/", headers=dict(CE, **{"ce-type": "ping"}), data=b"hi")
    assert resp.status_code == 200
    assert resp.headers["ce-type"] == "echo.replied" and resp.headers["ce-source"] == "/knflow/echo"
    assert resp.headers["ce-id"] == derive_id("e1", "echo") and resp.data == b"hi"
    [seen] = client.get("/events").get_json()
    assert (seen["type"], seen["id"]) == ("ping", "e1")

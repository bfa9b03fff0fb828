"""Bad input at the broker ingress: a clear 4xx each time, nothing accepted, still serving."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import knflow_env
from eventing_support import Subscriber, send, trigger, wait_for, write_spec

from eventing.broker import launch

STRUCTURED = {"content-type": "application/cloudevents+json"}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("ingress")
    with Subscriber() as sub:
        spec = write_spec(tmp / "spec.yaml", [trigger("all", sub.url)])
        handle = launch(tmp / "data", spec)
        try:
            yield handle, sub
        finally:
            handle.stop()


def good(event_id: str = "ok") -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "/t", "type": "test.event"}


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        (STRUCTURED, b"{not json", 400, "not valid JSON"),
        (STRUCTURED, b"[1, 2]", 400, "must be a JSON object"),
        (
            {"content-type": "text/plain"},
            b"hello",
            400,
            "not a CloudEvent: content type 'text/plain'",
        ),
        ({}, b"", 400, "content type 'missing'"),
        (
            STRUCTURED,
            json.dumps({"source": "/t", "type": "x"}).encode(),
            400,
            "missing required attribute(s): id, specversion",
        ),
        (
            {"ce-id": "1", "ce-source": "/t", "ce-specversion": "1.0"},
            b"",
            400,
            "missing required attribute(s): type",
        ),
        (STRUCTURED, json.dumps({**good(), "specversion": "0.3"}).encode(), 400, "specversion"),
        (STRUCTURED, json.dumps({**good(), "time": "yesterday"}).encode(), 400, "RFC 3339"),
        (STRUCTURED, json.dumps({**good(), "subject": ""}).encode(), 400, "must not be empty"),
        (STRUCTURED, json.dumps({**good(), "knativebrokerttl": "many"}).encode(), 400, "integer"),
        (
            {"content-type": "application/cloudevents-batch+json"},
            json.dumps([good("b1"), {"id": "b2"}]).encode(),
            400,
            "batch item 1",
        ),
    ],
)
def test_invalid_events_get_400_with_the_reason(running, headers, body, status, reason):
    handle, _sub = running
    resp = requests.post(handle.url, data=body, headers=headers, timeout=10)
    assert resp.status_code == status
    assert reason in resp.text


def test_a_10_mb_body_gets_413_and_the_broker_keeps_serving(running):
    handle, _sub = running
    big = json.dumps({**good("big"), "data": "x" * (10 << 20)}).encode()
    resp = requests.post(handle.url, data=big, headers=STRUCTURED, timeout=30)
    assert resp.status_code == 413
    assert "too large" in resp.text


def test_a_chunked_oversized_body_is_cut_off_with_413(running):
    handle, _ = running

    def chunks():
        for _ in range(10):
            yield b"x" * (1 << 20)

    resp = requests.post(handle.url, data=chunks(), headers=STRUCTURED, timeout=30)
    assert resp.status_code == 413


def test_wrong_path_and_method(running):
    handle, _ = running
    resp = requests.post(f"{handle.base_url}/ns/other", json=good(), headers=STRUCTURED)
    assert resp.status_code == 404
    assert "this broker's ingress is /ns/default" in resp.text
    assert requests.get(handle.url).status_code == 405


def test_garbage_on_the_socket_does_not_hurt_the_broker(running):
    handle, _ = running
    host, port = handle.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x16\x03\x01 this is not http at all\r\n\r\n")
        assert b" 400 " in s.recv(100).split(b"\r\n")[0]


def test_after_all_that_it_still_accepts_and_delivers(running):
    handle, sub = running
    # nothing that was refused reached the subscriber
    assert sub.ids() == [] or set(sub.ids()) <= {"ok-after"}
    assert send(handle.url, "ok-after").status_code == 202
    wait_for(lambda: "ok-after" in sub.ids(), what="delivery")
    counts = requests.get(f"{handle.base_url}/.knflow/broker").json()["status"]["knflow"]
    assert counts["accepted"] == 1
    assert counts["rejected"] >= 11


def run_broker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eventing.broker", *args],
        env=knflow_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broker_process_refuses_a_bad_spec_a_busy_port_and_a_second_instance(running, tmp_path):
    handle, _ = running
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: knflow.dev/v1alpha1\nkind: Pipeline\ntriggers:\n  - name: x\n")
    result = run_broker("--data", str(tmp_path / "d"), "--spec", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4:" in result.stderr and "subscriber" in result.stderr

    spec_file = next(Path(handle.log_path).parents[3].glob("spec.yaml"))
    port = handle.base_url.rsplit(":", 1)[1]
    busy = run_broker("--data", str(tmp_path / "d2"), "--spec", str(spec_file), "--port", port)
    assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr

    data = Path(handle.log_path).parents[2]
    twice = run_broker("--data", str(data), "--spec", str(spec_file))
    assert twice.returncode == 1
    assert f"a broker already runs for {data} (pid {handle.pid}" in twice.stderr

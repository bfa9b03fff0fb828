"""`knflow send | broker | trigger | events | dlq` as a user runs them, against a real broker,
with dead letters stored by the real `deadletter` function."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import knflow_env, run_cli
from eventing_support import Reply, Subscriber, trigger, wait_for, write_spec

from eventing.broker import launch
from eventing.http import event_from_http
from functions.config import FunctionConfig
from functions.deadletter import new as new_deadletter
from knative.cli import main


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("cli")
    data = tmp / "data"
    data.mkdir()
    dead_letters = new_deadletter()
    dead_letters.start(FunctionConfig(function="deadletter", store_url=f"file://{data}"))

    def store_dead_letter(req, n):  # the deadletter function behind a real HTTP endpoint
        dead_letters.handle(event_from_http(req.headers, req.body))
        return Reply(202)

    def stage(req, n):
        if req.type == "test.bad":
            return Reply(422, b"unreadable audio: not a RIFF file")
        return Reply(202)

    with Subscriber(stage) as sub, Subscriber(store_dead_letter) as dls:
        spec = write_spec(
            tmp / "spec.yaml",
            [
                trigger("good", sub.url + "good", "test.event"),
                trigger("bad", sub.url + "bad", "test.bad"),
            ],
            {"retry": 2, "backoffDelay": "PT0.01S", "deadLetterSink": {"uri": dls.url}},
        )
        broker = launch(data, spec)
        try:
            yield {"data": data, "sub": sub, "broker": broker, "tmp": tmp}
        finally:
            broker.stop()


def cli(instance, *args) -> subprocess.CompletedProcess:
    """The CLI's `main()` in this process (the same code path as `knflow`, minus a Python
    start-up per call); the tests that must see a real process use `run_cli`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--data", str(instance["data"]), *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_send_puts_an_event_on_the_broker(instance):
    result = run_cli(  # a real `knflow` process
        "send",
        "--type",
        "test.event",
        "--source",
        "/cli",
        "--id",
        "c1",
        "--data",
        '{"a": 1}',
        "-e",
        "bucket=uploads",
        data=instance["data"],
    )
    assert result.returncode == 0, result.stderr
    assert "Event 'c1' of type 'test.event' sent to broker" in result.stdout
    (got,) = wait_for(lambda: instance["sub"].of("c1"), what="delivery")
    assert got.json() == {"a": 1}
    assert got.headers["ce-bucket"] == "uploads" and got.headers["ce-source"] == "/cli"


def test_send_data_from_a_file_and_bad_data(instance):
    path = instance["tmp"] / "payload.json"
    path.write_text('{"from": "file"}')
    ok = cli(
        instance,
        "send",
        "--type",
        "test.event",
        "--source",
        "/cli",
        "--id",
        "c2",
        "--data",
        f"@{path}",
        "-o",
        "json",
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["status"] == 202
    assert wait_for(lambda: instance["sub"].of("c2"))[0].json() == {"from": "file"}
    bad = cli(instance, "send", "--type", "t", "--source", "/cli", "--data", "{oops")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: --data is not valid JSON")
    missing = cli(instance, "send", "--type", "t", "--source", "/cli", "--data", "@/no/such/file")
    assert missing.returncode == 2 and "cannot read /no/such/file" in missing.stderr
    ext = cli(instance, "send", "--type", "t", "--source", "/cli", "-e", "Bad-Name=x")
    assert ext.returncode == 2 and ext.stderr.startswith("Error: not a valid CloudEvent")


def test_broker_describe(instance):
    text = cli(instance, "broker", "describe")
    assert text.returncode == 0, text.stderr
    assert instance["broker"].url in text.stdout and "++ Ready" in text.stdout
    doc = json.loads(cli(instance, "broker", "describe", "-o", "json").stdout)
    assert doc["kind"] == "Broker" and doc["metadata"] == doc["metadata"] | {
        "name": "default",
        "namespace": "ns",
    }
    assert doc["status"]["address"]["url"] == instance["broker"].url
    assert {c["type"]: c["status"] for c in doc["status"]["conditions"]}["Ready"] == "True"


def test_trigger_list_and_describe(instance):
    listing = cli(instance, "trigger", "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "BROKER", "SINK"]
    assert {line.split()[0] for line in lines[1:]} == {"good", "bad"}
    items = json.loads(cli(instance, "trigger", "list", "-o", "json").stdout)["items"]
    good = next(t for t in items if t["metadata"]["name"] == "good")
    assert good["spec"]["filter"] == {"attributes": {"type": "test.event"}}
    assert good["status"]["subscriberUri"] == instance["sub"].url + "good"
    described = cli(instance, "trigger", "describe", "bad")
    assert "retry 2" in described.stdout and "Sink:" in described.stdout
    nope = cli(instance, "trigger", "describe", "nope")
    assert nope.returncode == 1 and nope.stderr.strip() == "Error: trigger 'nope' not found"


def test_dead_letters_are_listed_and_replayed(instance):
    sent = cli(
        instance, "send", "--type", "test.bad", "--source", "/cli", "--id", "bad-1", "--data", "{}"
    )
    assert sent.returncode == 0
    stored = instance["data"] / "dead-letters" / "bad-1"
    wait_for(stored.exists, what="the dead letter in the bucket")
    assert len(instance["sub"].of("bad-1")) == 1  # 422 is not retried
    listing = cli(instance, "dlq", "list")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("bad-1"))
    assert "422" in row and "unreadable audio" in row and instance["sub"].url + "bad" in row
    (doc,) = json.loads(cli(instance, "dlq", "list", "-o", "json").stdout)
    assert doc["knativeerrorcode"] == "422"

    replay = cli(instance, "dlq", "replay", "bad-1")
    assert replay.returncode == 0, replay.stderr
    assert "replayed and removed" in replay.stdout
    again = wait_for(lambda: instance["sub"].of("bad-1")[1:], what="the replayed delivery")
    assert not any(k.startswith("ce-knativeerror") for k in again[0].headers)
    # it failed again, so the dead-letter function stored it again (same key, overwritten)
    wait_for(stored.exists, what="the second dead letter")
    missing = cli(instance, "dlq", "replay", "nope")
    assert missing.returncode == 1 and "no dead-lettered event with id 'nope'" in missing.stderr


def test_events_tail_with_filters(instance):
    cli(instance, "send", "--type", "test.event", "--source", "/tail", "--id", "t1")
    wait_for(lambda: instance["sub"].of("t1"))
    out = cli(instance, "events", "tail", "--source", "/tail", "-n", "50")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert any("accepted" in line and "id=t1" in line for line in lines)
    assert any("delivered" in line and "-> good (202)" in line for line in lines)
    assert all("/tail" in line for line in lines)
    entries = [
        json.loads(line)
        for line in cli(
            instance, "events", "tail", "--kind", "dead-lettered", "-o", "json"
        ).stdout.splitlines()
    ]
    assert entries and all(
        e["kind"] == "dead-lettered" and e["type"] == "test.bad" for e in entries
    )


def test_events_tail_follow_streams_new_events(instance):
    proc = subprocess.Popen(
        [sys.executable, "-m", "knative", "events", "tail", "-f", "-n", "0", "--source", "/follow"],
        env=knflow_env(instance["data"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        for i in range(20):  # until the follower is connected and prints what it sees
            run_cli(
                "send",
                "--type",
                "test.event",
                "--source",
                "/follow",
                "--id",
                f"f{i}",
                data=instance["data"],
            )
            if lines:
                break
        wait_for(lambda: len(lines) >= 2, what="streamed lines")
        assert all("/follow" in line for line in lines)
        assert any("accepted" in line for line in lines) and any(
            "delivered" in line for line in lines
        )
    finally:
        proc.kill()
        proc.wait()


def test_clear_errors_when_nothing_runs(tmp_path):
    for args in (["trigger", "list"], ["send", "--type", "t", "--source", "/s"]):
        result = run_cli(*args, data=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith(f"Error: no broker is running for {tmp_path}"), (
            result.stderr
        )
        assert len(result.stderr.strip().splitlines()) == 1
    (tmp_path / ".knflow/broker").mkdir(parents=True)
    (tmp_path / ".knflow/broker/address.json").write_text(
        '{"url": "http://127.0.0.1:9/ns/default"}'
    )
    stale = run_cli("broker", "describe", data=tmp_path)
    assert stale.returncode == 1 and "is not answering" in stale.stderr
    empty = run_cli("dlq", "list", data=tmp_path)
    assert empty.returncode == 0 and empty.stdout.strip() == "No dead-lettered events."

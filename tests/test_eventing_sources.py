"""Sources: MinIO webhook records and local store notifications → object events; ping ticks."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import requests
from eventing_support import Subscriber, trigger, wait_for, write_spec

from eventing import sources as sources_pkg
from eventing.broker import launch
from eventing.sources import BadRecord, record_to_event, records_to_events
from eventing.sources.ping import PingSource
from storage.notifications import REMOVED_DELETE, make_record


def shared_fixtures() -> Path:
    """`../shared/fixtures/minio` of this checkout (a worktree looks one level further up)."""
    repo = Path(__file__).resolve().parents[1]
    for base in (repo.parent, repo.parent.parent):
        folder = base / "shared" / "fixtures" / "minio"
        if folder.is_dir():
            return folder
    pytest.skip("the shared MinIO fixtures (../shared/fixtures/minio) are not present")


# --- record → event conversion ---------------------------------------------------------------
def test_minio_webhook_fixture_becomes_one_object_event():
    payload = json.loads((shared_fixtures() / "webhook-put.json").read_text())
    (doc,) = records_to_events(payload)
    assert doc["type"] == "dev.knflow.object.created"
    assert doc["source"] == "http://10.0.3.1:9000/images"  # the MinIO endpoint that sent it
    assert doc["subject"] == "gopher.jpg"
    assert doc["bucket"] == "images"
    assert doc["time"] == "2018-10-31T09:31:11Z"
    assert doc["data"] == {
        "bucket": "images",
        "key": "gopher.jpg",
        "size": 162023,
        "etag": "5337769ffa594e742408ad3f30713cd7",
        "contentType": "image/jpeg",
        "uri": "s3://images/gopher.jpg",
        "sequencer": "1562A792DAA53426",
    }
    assert records_to_events(payload)[0]["id"] == doc["id"]  # stable across re-deliveries


def test_every_fixture_converts_and_ids_differ_by_sequencer():
    ids = set()
    for path in sorted(shared_fixtures().glob("*.json")):
        payload = json.loads(path.read_text())
        docs = records_to_events(payload)
        assert len(docs) == len(payload["Records"]), path.name
        for doc, record in zip(docs, payload["Records"], strict=True):
            assert doc["data"]["sequencer"] == record["s3"]["object"]["sequencer"]
            assert payload["Key"] == f"{doc['bucket']}/{doc['subject']}"
            ids.add(doc["id"])
    assert len(ids) == 2
    multipart = records_to_events(
        json.loads((shared_fixtures() / "kafka-put-multipart.json").read_text())
    )
    assert multipart[0]["data"]["etag"].endswith("-1")


def test_keys_are_url_decoded_plus_is_a_space():
    record = make_record(
        "s3:ObjectCreated:Put", "uploads", "talks/my talk+notes é.wav", sequencer="A1"
    )
    assert "my+talk%2Bnotes" in record["s3"]["object"]["key"]
    doc = record_to_event(record)
    assert doc["subject"] == "talks/my talk+notes é.wav"
    assert doc["data"]["key"] == "talks/my talk+notes é.wav"
    assert doc["source"] == "/knflow/storage/uploads"
    assert doc["data"]["uri"].startswith("s3://uploads/talks/my%20talk%2Bnotes")


def test_removed_and_ignored_kinds_and_bad_records():
    removed = record_to_event(make_record(REMOVED_DELETE, "uploads", "a.wav", sequencer="B"))
    assert removed["type"] == "dev.knflow.object.removed"
    accessed = make_record("s3:ObjectAccessed:Get", "uploads", "a.wav")
    assert record_to_event(accessed) is None
    assert (
        record_to_event(removed_rec := make_record(REMOVED_DELETE, "b1b", "k", sequencer="1"))["id"]
        != record_to_event(
            {**removed_rec, "s3": {**removed_rec["s3"], "object": {"key": "k", "sequencer": "2"}}}
        )["id"]
    )
    with pytest.raises(BadRecord, match=r"Records\[0\].*lacks 's3'"):
        records_to_events({"Records": [{"eventName": "s3:ObjectCreated:Put"}]})
    with pytest.raises(BadRecord, match="Records"):
        records_to_events({"EventName": "x"})


def test_ping_event_shape():
    ping = PingSource(
        "tick", "ns", "*/5 * * * *", sink=None, data={"a": 1}, event_type="dev.x.tick"
    )
    doc = ping.event(0)
    assert doc["type"] == "dev.x.tick"
    assert doc["source"] == "/apis/v1/namespaces/ns/pingsources/tick"
    assert doc["time"] == "1970-01-01T00:00:00Z"
    assert doc["data"] == {"a": 1} and doc["datacontenttype"] == "application/json"
    assert ping.event(0)["id"] == doc["id"] != ping.event(300)["id"]
    assert ping.next_tick(0) == 300
    text = PingSource("t", "ns", "* * * * *", None, data="hi", content_type="text/plain")
    assert text.event(0)["data"] == "hi"
    assert PingSource("t", "ns", "* * * * *", None).event(0)["type"] == "dev.knative.sources.ping"
    with pytest.raises(ValueError, match="not a cron schedule"):
        PingSource("t", "ns", "every minute", None)


# --- the sources process against a real broker -------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """broker + sources processes + a subscriber that gets every object event and tick."""
    tmp: Path = tmp_path_factory.mktemp("sources")
    data = tmp / "data"
    with Subscriber() as sub:
        spec = write_spec(
            tmp / "spec.yaml",
            [
                trigger(
                    "objects",
                    sub.url + "objects",
                    filters=[{"prefix": {"type": "dev.knflow.object."}}],
                ),
                trigger("ticks", sub.url + "ticks", "dev.test.tick"),
            ],
            sources=[
                {"name": "files", "kind": "store", "buckets": ["uploads"]},
                {"name": "minio", "kind": "minio-webhook", "authTokenEnv": "TEST_MINIO_TOKEN"},
                {
                    "name": "tick",
                    "kind": "ping",
                    "schedule": "* * * * * *",
                    "type": "dev.test.tick",
                    "data": {"n": 1},
                },
            ],
            buckets=["uploads", "other"],
        )
        port = free_port()
        env = dict(os.environ, TEST_MINIO_TOKEN="s3cret")
        state = {"data": data, "spec": spec, "sub": sub, "port": port, "env": env}
        try:
            state["broker"] = launch(data, spec, port=port)
            state["sources"] = sources_pkg.launch(data, spec, state["broker"].url, env=env)
            yield state
        finally:  # the slow test replaces both: stop whichever run now
            for name in ("sources", "broker"):
                if name in state:
                    state[name].stop()


def post_minio(
    url: str, body: bytes, token: str | None = "s3cret", content_type="application/json"
):
    headers = {"content-type": content_type}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return requests.post(url, data=body, headers=headers, timeout=10)


def test_sources_process_announces_its_webhook(pipeline):
    srcs = pipeline["sources"]
    url = srcs.sources["minio"]
    assert url.endswith("/minio")
    recorded = json.loads((pipeline["data"] / ".knflow/sources.json").read_text())
    assert recorded["sources"]["minio"] == url and recorded["pid"] == srcs.pid


@pytest.mark.parametrize(
    ("token", "content_type", "body", "status", "reason"),
    [
        (None, "application/json", b"{}", 401, "missing Authorization"),
        ("wrong", "application/json", b"{}", 401, "wrong auth token"),
        ("s3cret", "text/plain", b"{}", 415, "expected application/json"),
        ("s3cret", "application/json", b"{nope", 400, "not valid JSON"),
        ("s3cret", "application/json", b'{"EventName": "x"}', 400, "Records"),
        ("s3cret", "application/json", b'{"Records": [{"s3": {}}]}', 400, "Records[0]"),
        ("s3cret", "application/json", b"x" * (10 << 20), 413, "too large"),
    ],
)
def test_minio_receiver_rejects_bad_requests_clearly(
    pipeline, token, content_type, body, status, reason
):
    resp = post_minio(pipeline["sources"].sources["minio"], body, token, content_type)
    assert resp.status_code == status
    assert reason in resp.text


def test_minio_receiver_turns_each_record_into_an_event(pipeline):
    sub = pipeline["sub"]
    payload = json.loads((shared_fixtures() / "webhook-put.json").read_text())
    second = json.loads(json.dumps(payload["Records"][0]))
    second["s3"]["object"]["key"] = "a+b%2Fc.jpg"
    second["s3"]["object"]["sequencer"] = "1562A792DAA53427"
    payload["Records"].append(second)
    resp = post_minio(pipeline["sources"].sources["minio"], json.dumps(payload).encode())
    assert resp.status_code == 200, resp.text
    ids = resp.json()["ids"]
    assert resp.json()["accepted"] == 2
    got = wait_for(
        lambda: (
            [r for r in sub.received if r.id in ids]
            if len([r for r in sub.received if r.id in ids]) == 2
            else None
        ),
        what="both events",
    )
    subjects = sorted(r.headers["ce-subject"] for r in got)
    assert subjects == ["a%20b/c.jpg", "gopher.jpg"]  # "a b/c.jpg", space percent-encoded
    assert all(r.headers["ce-type"] == "dev.knflow.object.created" for r in got)


def test_store_notifications_become_events_and_folder_copies_too(pipeline):
    from storage import open_store

    sub, data = pipeline["sub"], pipeline["data"]
    store = open_store(f"file://{data}")
    store.create_bucket("uploads")
    store.create_bucket("other")
    store.put("uploads", "talks/hello world.wav", b"RIFF....", content_type="audio/wav")
    store.put("other", "ignored.txt", b"not a watched bucket")
    store.delete("uploads", "talks/hello world.wav")

    def object_events():
        return [
            r
            for r in sub.received
            if r.path == "/objects" and r.headers["ce-source"] == "/knflow/storage/uploads"
        ]

    got = wait_for(
        lambda: object_events() if len(object_events()) >= 2 else None, what="created+removed"
    )
    # one batch from the log; the broker delivers without ordering (as Knative's MT broker)
    by_type = {r.type: r for r in got}
    assert sorted(by_type) == ["dev.knflow.object.created", "dev.knflow.object.removed"]
    created = by_type["dev.knflow.object.created"].json()
    assert created["key"] == "talks/hello world.wav" and created["size"] == 8
    assert created["uri"] == "s3://uploads/talks/hello%20world.wav"
    assert by_type["dev.knflow.object.removed"].headers["ce-bucket"] == "uploads"

    (data / "uploads" / "copied.wav").write_bytes(b"copied straight into the folder")
    copied = wait_for(
        lambda: [r for r in object_events() if r.headers["ce-subject"] == "copied.wav"],
        timeout=15,
        what="the folder watcher",
    )
    assert copied[0].json()["size"] == 31
    assert not [r for r in sub.received if r.headers.get("ce-bucket") == "other"]


def test_ping_ticks_arrive_with_the_spec_type_and_data(pipeline):
    ticks = wait_for(
        lambda: [r for r in pipeline["sub"].received if r.path == "/ticks"],
        timeout=5,
        what="a tick",
    )
    assert ticks[0].headers["ce-source"] == "/apis/v1/namespaces/ns/pingsources/tick"
    assert ticks[0].json() == {"n": 1}


@pytest.mark.slow
def test_store_source_waits_for_the_broker_and_resumes_from_its_offset(pipeline):
    """Broker down: the notification is kept and sent once it is back; a restarted source
    does not send again what the broker already acknowledged."""
    from storage import open_store

    sub, data, spec = pipeline["sub"], pipeline["data"], pipeline["spec"]
    store = open_store(f"file://{data}")

    def keys():
        return [
            r.headers["ce-subject"]
            for r in sub.received
            if r.path == "/objects" and r.headers["ce-source"] == "/knflow/storage/uploads"
        ]

    pipeline["broker"].stop()
    store.put("uploads", "while-down.wav", b"1")
    pipeline["broker"] = launch(data, spec, port=pipeline["port"])
    wait_for(
        lambda: "while-down.wav" in keys(), timeout=15, what="delivery after the broker is back"
    )

    pipeline["sources"].stop()
    store.put("uploads", "while-sources-down.wav", b"2")
    before = keys()
    pipeline["sources"] = sources_pkg.launch(
        data, spec, pipeline["broker"].url, env=pipeline["env"]
    )
    wait_for(
        lambda: "while-sources-down.wav" in keys(), timeout=15, what="catch-up from the offset"
    )
    after = keys()
    assert after[: len(before)] == before
    assert after[len(before) :].count("while-down.wav") == 0  # not re-sent


def test_minio_receiver_answers_502_while_the_broker_is_away(tmp_path):
    """MinIO keeps (and retries) a notification that did not get a 2xx: nothing is lost."""
    spec = write_spec(
        tmp_path / "spec.yaml",
        [],
        sources=[{"name": "minio", "kind": "minio-webhook"}],  # no token configured
    )
    srcs = sources_pkg.launch(tmp_path / "data", spec, "http://127.0.0.1:9/ns/default")
    try:
        body = (shared_fixtures() / "webhook-put.json").read_bytes()
        resp = post_minio(srcs.sources["minio"], body, token=None)
        assert resp.status_code == 502
        assert "broker unavailable, retry later" in resp.text
    finally:
        srcs.stop()

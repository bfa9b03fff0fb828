"""The `deadletter` function: each dead letter lands in the `dead-letters` bucket as its
structured CloudEvent JSON, under its event id."""

from __future__ import annotations

import json
from pathlib import Path

from eventing.events import new_event
from eventing.http import from_json
from functions.config import FunctionConfig
from functions.deadletter import BUCKET, dead_letter_key, new


def started(root: Path):
    function = new()
    function.start(FunctionConfig(function="deadletter", store_url=f"file://{root}"))
    return function


def test_stores_the_event_with_its_error_attributes_under_its_id(tmp_path: Path):
    function = started(tmp_path)
    assert function.ready()
    event = new_event(
        "dev.knflow.object.created",
        "/knflow/storage/uploads",
        {"bucket": "uploads", "key": "talk.wav"},
        id="evt-1",
        knativeerrordest="http://127.0.0.1:1/",
        knativeerrorcode="422",
        knativeerrordata="dW5yZWFkYWJsZQ==",
    )
    assert function.handle(event) is None
    doc = json.loads((tmp_path / BUCKET / "evt-1").read_text())
    assert doc["knativeerrorcode"] == "422" and doc["data"]["key"] == "talk.wav"
    assert from_json(doc).get_id() == "evt-1"  # a valid CloudEvent: replayable as it is
    function.handle(event)  # a re-delivery overwrites, never duplicates
    assert [p.name for p in (tmp_path / BUCKET).iterdir()] == ["evt-1"]


def test_ids_that_are_not_usable_as_keys_are_hashed(tmp_path: Path):
    assert dead_letter_key("plain-id") == "plain-id"
    odd = dead_letter_key("../../etc/passwd")
    assert odd.startswith("id-") and "/" not in odd
    function = started(tmp_path)
    function.handle(new_event("t", "/s", {}, id="../../etc/passwd"))
    (stored,) = (tmp_path / BUCKET).iterdir()
    assert json.loads(stored.read_text())["id"] == "../../etc/passwd"

"""The `tune` function in the real function runtime, sending to a real HTTP sink on loopback;
and bad input on every entry point (events, web API, page form, CLI) answered with the reason."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from eventing import new_event, types
from eventing.broker import launch
from eventing.http import event_from_http, to_http
from functions.config import FunctionConfig
from functions.runtime import create_app
from functions.tune import Studies, new, storage_url
from knative.instance import Instance
from knative.ui import create_app as create_ui
from tests.tuning_support import available_spec

SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}, "batch_size": [32, 64]}


class Sink:
    """A real HTTP server standing in for the broker ingress: it records what it receives."""

    def __init__(self):
        self.events = []
        app = Flask("sink")

        @app.post("/")
        def receive():
            self.events.append(event_from_http(request.headers, request.get_data()))
            return "", 202

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def tune(data_dir, sink):
    cfg = FunctionConfig(
        function="tune", sink=sink.url, data_dir=data_dir, config={"check_interval": 3600}
    )
    function = new()
    app = create_app(function, cfg, start_in_background=False)
    yield app.test_client()
    function.stop()


def post(client, event):
    headers, body = to_http(event)
    return client.post("/", data=body, headers=headers)


def reply_of(response):
    return event_from_http(response.headers, response.get_data())


def test_request_fans_out_parallel_trials_idempotently(tune, sink, data_dir):
    ask = new_event(
        types.TUNING_REQUESTED,
        "/test",
        {"id": "svc-run", "space": SPACE, "budget": {"max_trials": 4, "parallel_trials": 3}},
        id="req-1",
    )
    response = post(tune, ask)
    assert response.status_code == 200
    trials = [*sink.events, reply_of(response)]
    assert [e.get_type() for e in trials] == [types.TRIAL_REQUESTED] * 3
    assert sorted(e.get_data()["trial"] for e in trials) == [0, 1, 2]
    ids = {e.get_id() for e in trials}
    assert len(ids) == 3

    again = post(tune, ask)  # the broker re-delivers the same request
    assert {reply_of(again).get_id(), *(e.get_id() for e in sink.events[2:])} == ids
    assert len(Studies(storage_url(data_dir)).get("svc-run").trials()) == 3

    # results come back: the 4th trial is asked, and after the last one tuning.completed
    sent = []
    for trial in sorted(trials, key=lambda e: e.get_data()["trial"]):
        result = {
            "tuning": "svc-run",
            "trial": trial.get_data()["trial"],
            "metrics": {"val_accuracy": 0.5},
        }
        done = post(
            tune, new_event(types.TRIAL_COMPLETED, "/test", result, id=f"done-{result['trial']}")
        )
        if done.status_code == 200:
            sent.append(reply_of(done))
    assert [e.get_type() for e in sent] == [types.TRIAL_REQUESTED]
    last = {"tuning": "svc-run", "trial": 3, "metrics": {"val_accuracy": 0.9}}
    finished = reply_of(post(tune, new_event(types.TRIAL_COMPLETED, "/test", last, id="done-3")))
    assert finished.get_type() == types.TUNING_COMPLETED
    data = finished.get_data()
    assert (
        data["status"] == "completed" and data["top"][0]["value"] == 0.9 and len(data["top"]) == 4
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"space": {"lr": {"type": "float", "low": 1, "high": 0.1}}}, "range is reversed"),
        ({"space": {"lr": {"type": "gaussian", "low": 0, "high": 1}}}, "unknown type 'gaussian'"),
        ({"space": {}}, "search space is empty"),
        ({"tuning": "nope", "trial": 0}, "no tuning run 'nope'"),
    ],
)
def test_bad_events_are_422_with_the_reason(tune, data, message):
    kind = types.TRIAL_COMPLETED if "tuning" in data else types.TUNING_REQUESTED
    response = post(tune, new_event(kind, "/test", data))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


# --- the web API and the page's form ------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One broker (a real process) for the page/API tests of this module."""
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "data").mkdir()
    handle = launch(tmp / "data", available_spec(tmp / "knflow.yaml"))
    yield handle, tmp / "data"
    handle.stop()


@pytest.fixture
def broker(site):
    return site[0]


@pytest.fixture
def ui(site):
    broker, data_dir = site
    instance = Instance(
        pid=os.getpid(),
        namespace="knflow",
        broker_url=broker.url,
        control_url="http://127.0.0.1:9",
        store_url=f"file://{data_dir}",
        data_dir=str(data_dir),
    )
    return create_ui(instance, data_dir).test_client()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"space": json.dumps({"lr": {"type": "float", "low": 0.1, "high": 0.001}})},
            "range is reversed (low 0.1 > high 0.001)",
        ),
        (
            {"space": json.dumps({"lr": {"type": "normal", "low": 0, "high": 1}})},
            "unknown type 'normal'",
        ),
        ({"request": "learning rate from 0.1 to 0.0001"}, "range is reversed"),
        ({"request": "please tune it"}, "cannot read 'please tune it'"),
        ({"request": "", "space": ""}, "describe the search space"),
        ({"space": "{not json"}, "space is not valid JSON"),
        ({"request": "lr from 1e-3 to 1e-1", "max_trials": "0"}, "max_trials must be at least 1"),
    ],
)
def test_page_form_refuses_bad_input_with_a_clear_message(ui, form, message):
    response = ui.post("/api/tuning", data=form)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        ((io.BytesIO(b""), "train.py"), "the uploaded file 'train.py' is empty"),
        ((io.BytesIO(b"def train(:\n"), "train.py"), "train.py is not valid Python"),
        ((io.BytesIO(b"x = 1\n"), "train.py"), "defines no train(params, progress)"),
        ((io.BytesIO(b"\x80\x04pickle"), "model.pkl"), "upload training code as a .py file"),
    ],
)
def test_bad_uploads_are_refused(ui, upload, message):
    form = {"request": "lr from 1e-3 to 1e-1", "code": upload}
    response = ui.post("/api/tuning", data=form, content_type="multipart/form-data")
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_api_json_bad_input_and_good_request_reaches_the_broker(ui, site):
    broker, data_dir = site
    bad = ui.post("/api/tuning", json={"space": {"lr": {"type": "float", "low": 5, "high": 1}}})
    assert bad.status_code == 400 and "range is reversed" in bad.get_json()["error"]
    assert ui.post("/api/tuning", json=[1, 2]).status_code == 400
    code = io.BytesIO(b"def train(params, progress):\n    return {'val_accuracy': params['lr']}\n")
    good = ui.post(
        "/api/tuning",
        data={"request": "lr from 1e-3 to 1e-1", "max_trials": "4", "code": (code, "mine.py")},
        content_type="multipart/form-data",
    )
    assert good.status_code == 201, good.get_json()
    run_id = good.get_json()["id"]
    trainer = good.get_json()["request"]["trainer"]
    assert trainer["code_uri"].endswith("/mine.py")
    assert (Path(data_dir) / "artifacts").is_dir()
    from eventing.client import BrokerClient

    seen = BrokerClient(broker.url).get("/.knflow/events", limit=50)
    assert any(e.get("type") == types.TUNING_REQUESTED and e.get("subject") == run_id for e in seen)
    assert ui.get("/api/tuning/nope").status_code == 404
    assert "no tuning run 'nope'" in ui.get("/api/tuning/nope").get_json()["error"]


def test_cli_refuses_bad_specs(cli, tmp_path):
    reversed_spec = tmp_path / "bad.yaml"
    reversed_spec.write_text("space:\n  lr: {type: float, low: 0.1, high: 0.0001}\n")
    result = cli("tune", "start", str(reversed_spec))
    assert result.returncode == 2
    assert "Error: invalid tuning request: parameter 'lr': range is reversed" in result.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = cli("tune", "start", str(empty))
    assert result.returncode == 2 and "is empty" in result.stderr
    result = cli("tune", "start", "--request", "lr from 1e-3 to 1e-1")
    assert result.returncode == 1 and "no broker is running" in result.stderr
    result = cli("tune", "status", "nope")
    assert result.returncode == 1 and "no tuning run 'nope'" in result.stderr


def test_deploy_announces_the_trial_and_follows_the_rollout(tune, data_dir):
    from functions.tune.deploy import NotDeployable, check_deployment, deploy_event

    studies = Studies(storage_url(data_dir))
    ask = {"id": "dep", "space": SPACE, "budget": {"max_trials": 2, "parallel_trials": 2}}
    post(tune, new_event(types.TUNING_REQUESTED, "/test", ask, id="dep-req"))
    run = studies.get("dep")
    with pytest.raises(NotDeployable, match="no trial has completed yet"):
        deploy_event(run)
    checkpoint = {
        "name": "digits",
        "version": 7,
        "bucket": "artifacts",
        "key": "models/digits/7/model.safetensors",
    }
    done = {"tuning": "dep", "trial": 1, "metrics": {"val_accuracy": 0.8}, "checkpoint": checkpoint}
    post(tune, new_event(types.TRIAL_COMPLETED, "/test", done, id="dep-1"))
    with pytest.raises(NotDeployable, match="trial 0 is running, not complete"):
        deploy_event(run, 0)
    event = deploy_event(run)
    assert event.get_type() == types.MODEL_TRAINED
    assert event.get_data()["key"] == checkpoint["key"] and event.get_data()["trial"] == 1
    assert deploy_event(run).get_id() == event.get_id()  # asking twice is the same request
    assert run.view()["deployment"]["status"] == "deploying"
    # not promoted yet: the endpoint is not probed, whatever it says
    assert check_deployment(run, "http://127.0.0.1:9")["status"] == "deploying"
    failed = {"model": "digits", "version": 7, "reason": "smoke inference failed: 0.4 accuracy"}
    assert post(tune, new_event(types.REVISION_FAILED, "/builder", failed)).status_code == 202
    deployment = studies.get("dep").view()["deployment"]
    assert deployment["status"] == "failed" and "smoke inference failed" in deployment["reason"]


def test_background_check_re_asks_trials_whose_trainer_died(data_dir, sink):
    cfg = FunctionConfig(
        function="tune", sink=sink.url, data_dir=data_dir, config={"check_interval": 0.2}
    )
    function = new()
    app = create_app(function, cfg, start_in_background=False)
    try:
        ask = {
            "id": "dies",
            "space": SPACE,
            "budget": {"max_trials": 2, "parallel_trials": 2, "trial_timeout": 0.5},
        }
        first = post(
            app.test_client(), new_event(types.TUNING_REQUESTED, "/test", ask, id="dies-req")
        )
        assert first.status_code == 200
        # nobody trains: after the deadline the checker fails both and asks them again
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and sum(e.get_data()["attempt"] == 2 for e in sink.events) < 2
        ):
            time.sleep(0.2)
        retried = [e.get_data() for e in sink.events if e.get_data()["attempt"] == 2]
        assert len(retried) == 2
        view = Studies(storage_url(data_dir)).get("dies").view()
        assert all(
            "no result within the deadline" in t["error"]
            for t in view["trials"]
            if t["state"] == "fail"
        )
    finally:
        function.stop()


def test_dead_lettered_deployment_is_reported_failed_with_the_reason(tune, data_dir):
    import base64

    from functions.tune.deploy import check_deployment, deploy_event
    from storage import open_store

    ask = {"id": "dl", "space": SPACE, "budget": {"max_trials": 1, "parallel_trials": 1}}
    post(tune, new_event(types.TUNING_REQUESTED, "/test", ask, id="dl-req"))
    checkpoint = {"name": "digits", "version": 3, "key": "models/digits/3/model.safetensors"}
    done = {"tuning": "dl", "trial": 0, "metrics": {"val_accuracy": 0.2}, "checkpoint": checkpoint}
    post(tune, new_event(types.TRIAL_COMPLETED, "/test", done, id="dl-0"))
    run = Studies(storage_url(data_dir)).get("dl")
    event = deploy_event(run)
    store = open_store(f"file://{data_dir}")
    assert check_deployment(run, "", store)["status"] == "deploying"  # nothing dead-lettered yet
    why = "bad input: export of digits v3 failed its check: onnx differs"
    letter = {
        "id": event.get_id(),
        "type": event.get_type(),
        "knativeerrorcode": "422",
        "knativeerrordata": base64.b64encode(why.encode()).decode(),
    }
    store.create_bucket("dead-letters")
    store.put("dead-letters", event.get_id(), json.dumps(letter).encode())
    deployment = check_deployment(run, "", store)
    assert deployment["status"] == "failed" and deployment["reason"] == why

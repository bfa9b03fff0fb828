"""End to end on the embedded default: a training spec upload becomes, with no further action,
a new `predict` revision serving V2 digits at >= 0.95 held-out accuracy after a visible canary;
pickled and corrupt model uploads leave that revision at 100 % with the reason shown."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests
import yaml
from conftest import run_cli
from lifecycle_helpers import torch_save_bytes_for_upload

from builders import ControlAPI
from eventing import types
from eventing.http import data_json, events_from_http
from functions.predict import request_body
from functions.predict.v2 import output_array
from functions.train import digits_dataset
from knative.spec import default_spec_path, load_spec
from storage import open_store

LIFECYCLE = {"train", "export", "predict", "builder", "dead-letters"}


def lifecycle_spec(path, display: str) -> None:
    """The shipped pipeline, cut down to the lifecycle's services, triggers and store source,
    plus a Trigger sending revision events to an event display (as `kn` users would)."""
    doc = yaml.safe_load(default_spec_path().read_text())
    doc["services"] = [s for s in doc["services"] if s["name"] in LIFECYCLE]
    doc["triggers"] = [t for t in doc["triggers"] if t["subscriber"]["ref"]["name"] in LIFECYCLE]
    doc["triggers"].append(
        {
            "name": "revision-events",
            "filters": [{"prefix": {"type": "dev.knflow.revision."}}],
            "subscriber": {"uri": display},
        }
    )
    doc["sources"] = [s for s in doc["sources"] if s["kind"] == "store"]
    for svc in doc["services"]:
        if svc["name"] == "builder":  # hold the canary long enough for a CLI to look at it
            svc["config"]["canary_seconds"] = 12
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class EventDisplay:
    """A CloudEvents sink on loopback that keeps what it receives (like Knative's event-display)."""

    def __init__(self) -> None:
        self.events: list = []
        display = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                display.events.extend(events_from_http(dict(self.headers), body))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, type: str, origin_part: str):
        for event in list(self.events):
            data = data_json(event)
            if event.get_type() == type and origin_part in str(data.get("origin", "")):
                return data
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def split(api: ControlAPI) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in api.service("predict")["status"]["traffic"]}


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_training_spec_to_canary_to_served_digits_and_refused_uploads(tmp_path, data_dir):
    from knative.embedded import Platform

    display = EventDisplay()
    lifecycle_spec(tmp_path / "knflow.yaml", display.url)
    with (
        contextlib.closing(display),
        Platform(load_spec(tmp_path / "knflow.yaml"), data_dir) as platform,
    ):
        api = ControlAPI.discover(data_dir)
        (first,) = split(api)
        store = open_store(f"file://{data_dir}")
        described: list[str] = []
        stop = threading.Event()

        def watch_canary():  # run `knflow service describe` while the canary is live
            while not stop.is_set() and not described:
                try:
                    if len(split(api)) == 2:
                        out = run_cli("service", "describe", "predict", data=data_dir)
                        if "10%" in out.stdout and "90%" in out.stdout:
                            described.append(out.stdout)
                except Exception:
                    pass
                time.sleep(0.2)

        watcher = threading.Thread(target=watch_canary, daemon=True)
        watcher.start()
        spec = {"name": "digits", "epochs": 2, "batch_size": 32, "lr": 0.05, "seed": 0}
        store.put("training", "digits.yaml", yaml.safe_dump(spec).encode())

        def promoted():
            now = split(api)
            return next((r for r, pct in now.items() if pct == 100 and r != first), None)

        revision = wait_for("the trained model's revision at 100%", promoted, timeout=1200, every=2)
        stop.set()
        watcher.join(10)
        assert described, "the canary split was never seen in `knflow service describe`"
        assert "candidate" in described[0]
        ready = wait_for(
            "revision.ready",
            lambda: [e for e in display.events if e.get_type() == types.REVISION_READY],
            30,
        )
        assert data_json(ready[0])["revision"] == revision

        data = digits_dataset()
        url = platform.service_url("predict")
        labels = []
        for i in range(0, len(data.test_y), 60):  # bodies stay under the 1 MiB limit
            resp = requests.post(
                f"{url}/v2/models/digits/infer",
                json=request_body(data.test_x[i : i + 60].numpy()),
                timeout=120,
            )
            assert resp.status_code == 200, resp.text
            labels.append(output_array(resp.json(), "label"))
        accuracy = float((np.concatenate(labels) == data.test_y.numpy()).mean())
        assert accuracy >= 0.95

        # a pickle and a corrupt ONNX file: refused, the trained revision keeps 100 %
        for key, body, reason in [
            ("evil.pt", torch_save_bytes_for_upload(), "pickle"),
            ("broken.onnx", b"\x08\x07" + b"\xff" * 400, "not a valid ONNX"),
        ]:
            store.put("models", key, body)
            failed = wait_for(
                f"the revision.failed event for {key}",
                lambda key=key: display.find(types.REVISION_FAILED, key),
                timeout=300,
                every=2,
            )
            assert reason in failed["reason"] and failed["outcome"] == "rolled-back"
            assert split(api) == {revision: 100}
            listing = run_cli("revision", "list", "-s", "predict", data=data_dir)
            row = next(
                line for line in listing.stdout.splitlines() if line.startswith(failed["revision"])
            )
            assert "False" in row and "StartFailed" in row
            as_json = run_cli("revision", "list", "-s", "predict", "-o", "json", data=data_dir)
            (item,) = [
                r
                for r in json.loads(as_json.stdout)["items"]
                if r["metadata"]["name"] == failed["revision"]
            ]
            ready = next(c for c in item["status"]["conditions"] if c["type"] == "Ready")
            assert reason in ready["message"]

"""End to end on the embedded default: a training spec upload becomes, with no further action,
a new `predict` revision serving V2 digits at >= 0.95 held-out accuracy after a visible canary;
pickled and corrupt model uploads leave that revision at 100 % with the reason shown."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import requests
import yaml
from conftest import run_cli
from lifecycle_helpers import torch_save_bytes_for_upload

from builders import ControlAPI
from functions.predict import request_body
from functions.predict.v2 import output_array
from functions.train import digits_dataset
from knative.spec import default_spec_path, load_spec
from storage import open_store

LIFECYCLE = {"train", "export", "predict", "builder", "dead-letters"}


def lifecycle_spec(path) -> None:
    """The shipped pipeline, cut down to the lifecycle's services, triggers and store source."""
    doc = yaml.safe_load(default_spec_path().read_text())
    doc["services"] = [s for s in doc["services"] if s["name"] in LIFECYCLE]
    doc["triggers"] = [t for t in doc["triggers"] if t["subscriber"]["ref"]["name"] in LIFECYCLE]
    doc["sources"] = [s for s in doc["sources"] if s["kind"] == "store"]
    for svc in doc["services"]:
        if svc["name"] == "builder":  # hold the canary long enough for a CLI to look at it
            svc["config"]["canary_seconds"] = 12
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


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

    lifecycle_spec(tmp_path / "knflow.yaml")
    with Platform(load_spec(tmp_path / "knflow.yaml"), data_dir) as platform:
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
                lambda key=key: _failed_event(data_dir, key),
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
            as_yaml = run_cli("revision", "list", "-s", "predict", "-o", "yaml", data=data_dir)
            assert reason in as_yaml.stdout


def _failed_event(data_dir, key: str):
    out = run_cli(
        "events",
        "tail",
        "--type",
        "dev.knflow.revision.failed",
        "-n",
        "50",
        "-o",
        "json",
        data=data_dir,
    )
    for line in out.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event", entry)
        data = event.get("data") or {}
        if isinstance(data, dict) and key in str(data.get("origin", "")):
            return data
    return None

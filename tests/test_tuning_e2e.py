"""End to end on the embedded platform: a tuning run over the digits ResNet-18 with 12 trials,
3 at a time, through the real broker, `tune` and `train` replicas; then the best trial goes
through export → builder → predict and the endpoint answers V2 inference. Also: the platform
stopped mid-run and started again resumes the study without losing finished trials."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from eventing import types
from eventing.client import find_broker
from functions.tune.client import (
    start_run,
    studies_for,
    validate,
)
from knative.embedded import Platform
from knative.spec import load_spec
from tests.conftest import run_cli
from tests.tuning_support import available_spec

# Minutes on a shared 2-core machine: trials train real ResNet-18s in their own processes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REQUEST = {
    "space": {
        "lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64]},
    },
    "objective": {"name": "val_accuracy", "direction": "maximize"},
    "budget": {"max_trials": 12, "parallel_trials": 3, "trial_timeout": 400},
    "fixed": {"epochs": 1, "limit": 400},
    "sampler": "tpe",
    "pruner": "median",
    "seed": 3,
}


def platform_for(data: Path, spec: Path) -> Platform:
    return Platform(load_spec(str(spec)), data, tick=0.5).start()


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def digits_batch(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    from functions.train.data import digits_dataset

    data = digits_dataset()
    return data.test_x[:n].numpy(), data.test_y[:n].numpy()


# Trials are deliberately tiny (1 epoch on 400 images, ~0.3-0.7 held-out accuracy) so the run fits
# in about two minutes; the builder's smoke check (0.9 by default, exercised by the lifecycle
# tests) is lowered for this test so that such a model may be promoted.
SMOKE = {"smoke_min_accuracy": 0.2}


def test_tuning_run_fans_out_ranks_and_deploys_the_best(tmp_path, data_dir):
    spec = available_spec(tmp_path / "knflow.yaml", builder=SMOKE)
    platform = platform_for(data_dir, spec)
    try:
        broker = find_broker(data_dir)
        spec_file = tmp_path / "tuning.yaml"
        spec_file.write_text(yaml.safe_dump({**REQUEST, "id": "e2e-digits"}))
        started = time.monotonic()
        begun = run_cli("tune", "start", str(spec_file), data=data_dir)
        assert begun.returncode == 0, begun.stderr
        assert "Tuning run 'e2e-digits' started: 12 trials, 3 at a time" in begun.stdout
        studies = studies_for(data_dir)
        running_seen, replicas_seen = [], []

        def finished():
            try:
                run = studies.get("e2e-digits")
            except LookupError:
                return None
            running_seen.append(run.counts()["running"])
            stats = requests.get(
                f"{platform.control_url}/knflow/v1/services/train/stats", timeout=5
            )
            replicas_seen.append(stats.json().get("replicas", 0))
            return run if run.status != "running" else None

        run = wait_for(finished, 600, "the tuning run to finish", every=1)
        spent = time.monotonic()
        view = run.view()
        assert view["status"] == "completed", view["reason"]
        assert view["counts"]["complete"] + view["counts"]["pruned"] == 12
        assert max(running_seen) <= 3 and max(running_seen) >= 2
        assert max(replicas_seen) >= 2, "train did not scale out for waiting trials"
        top = view["top"]
        assert len(top) == min(10, view["counts"]["complete"]) and len(top) >= 8
        values = [t["value"] for t in top]
        assert values == sorted(values, reverse=True)
        assert top[0]["value"] == max(t["value"] for t in view["trials"] if t["value"] is not None)
        feed = broker.get("/.knflow/events", limit=500, type=types.TUNING_COMPLETED)
        assert any(e.get("subject") == "e2e-digits" for e in feed)
        print(f"\n12 trials, 3 at a time: {spent - started:.1f}s; best {top[0]['value']:.3f}")

        best = run_cli("tune", "best", "e2e-digits", "-o", "json", data=data_dir)
        assert [t["number"] for t in json.loads(best.stdout)] == [t["number"] for t in top]
        status = run_cli("tune", "status", "e2e-digits", data=data_dir)
        assert "Tuning run 'e2e-digits': completed (budget of 12 trials spent)" in status.stdout
        assert status.stdout.count("COMPLETE") == view["counts"]["complete"]

        # deploy the best trial through export → builder → predict, as a user would
        deployed = run_cli(
            "tune", "deploy", "e2e-digits", "--wait", "240", data=data_dir, timeout=300
        )
        assert deployed.returncode == 0, deployed.stderr
        print(f"budget spent → endpoint answering: {time.monotonic() - spent:.1f}s")
        ready = studies.get("e2e-digits").study.user_attrs["deployment"]
        assert ready["trial"] == top[0]["number"] and ready["status"] == "ready"
        assert f"The model you asked for is served at {ready['url']}" in deployed.stdout
        predict = platform.service_url("predict")
        assert ready["url"] == f"{predict}/v2/models/digits/infer"
        x, y = digits_batch()
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
        answer = requests.post(ready["url"], json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        outputs = answer.json()["outputs"]
        assert outputs and outputs[0]["shape"][0] == len(y)
        assert answer.json()["model_version"] == str(ready["version"])
    finally:
        platform.stop(drain=5)


def test_platform_stopped_mid_run_resumes_without_losing_trials(tmp_path, data_dir):
    spec = available_spec(tmp_path / "knflow.yaml")
    request = validate(
        {
            **REQUEST,
            "id": "e2e-resume",
            "budget": {"max_trials": 6, "parallel_trials": 2, "trial_timeout": 120},
        }
    )
    platform = platform_for(data_dir, spec)
    try:
        start_run(find_broker(data_dir), request)
        studies = studies_for(data_dir)

        def some_done():
            try:
                run = studies.get("e2e-resume")
            except LookupError:
                return None
            return run if run.counts()["complete"] >= 2 else None

        wait_for(some_done, 240, "two finished trials")
    finally:
        platform.stop(drain=0)  # the platform goes away mid-run, trials still running
    before = {
        t["number"]: t["value"]
        for t in studies.get("e2e-resume").view()["trials"]
        if t["state"] == "complete"
    }
    assert len(before) >= 2
    platform = platform_for(data_dir, spec)
    try:
        run = wait_for(
            lambda: (r := studies.get("e2e-resume")).status != "running" and r,
            300,
            "the resumed run to finish",
            every=1,
        )
        view = run.view()
        after = {t["number"]: t["value"] for t in view["trials"] if t["state"] == "complete"}
        assert all(after[n] == v for n, v in before.items()), "a finished trial was lost"
        assert view["status"] == "completed"
        assert view["counts"]["complete"] + view["counts"]["pruned"] == 6
    finally:
        platform.stop(drain=5)

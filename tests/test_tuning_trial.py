"""The `train` service's trial path (functions/train/trial.py) in process, with a real local store
and study storage: uploaded training code, failures reported to the study, re-deliveries."""

from __future__ import annotations

from pathlib import Path

import pytest

import functions.train as train
from eventing import types
from functions.config import FunctionConfig
from functions.tune import Studies, TuningRequest, storage_url
from functions.tune.service import trial_event
from storage import open_store

USER_CODE = b"""
import pathlib

def train(params, progress):
    calls = pathlib.Path(params["calls"])
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    for epoch in (1, 2):
        progress({"epoch": epoch, "score": params["lr"] * epoch})
    if params["lr"] > 0.5:
        raise RuntimeError("diverged")
    return {"score": params["lr"] * 2}
"""


@pytest.fixture
def setup(data_dir: Path, tmp_path: Path):
    store = open_store(f"file://{data_dir}")
    store.create_bucket("artifacts")
    store.put("artifacts", "tuning/code/mine.py", USER_CODE)
    cfg = FunctionConfig(function="train", store_url=f"file://{data_dir}", data_dir=data_dir)
    function = train.new()
    function.start(cfg)
    studies = Studies(storage_url(data_dir))

    def run(space, **extra):
        request = TuningRequest.from_dict(
            {
                "id": "trial-test",
                "space": space,
                "objective": {"name": "score"},
                "budget": {"max_trials": 2, "parallel_trials": 1},
                "pruner": "none",
                **extra,
            }
        )
        return studies.create(request)

    return function, run, tmp_path / "calls.txt", store


def test_uploaded_code_trains_reports_epochs_and_is_not_rerun(setup):
    function, run, calls, store = setup
    tuning = run(
        {"lr": {"type": "float", "low": 0.01, "high": 0.1}},
        trainer={"code_uri": store.uri("artifacts", "tuning/code/mine.py")},
        fixed={"calls": str(calls)},
    )
    (ticket,) = tuning.fill("req").trials
    reply = function.handle(trial_event(ticket))
    assert reply.get_type() == types.TRIAL_COMPLETED
    data = reply.get_data()
    assert data["state"] == "complete" and data["metrics"]["score"] == pytest.approx(
        ticket["params"]["lr"] * 2
    )
    frozen = tuning.trials()[0]
    assert sorted(frozen.intermediate_values) == [1, 2]  # per-epoch reports reached the study
    tuning.record(data, reply.get_id())
    again = function.handle(trial_event(ticket))  # the broker re-delivers the request
    assert again.get_id() == reply.get_id() and again.get_data()["state"] == "complete"
    assert calls.read_text() == "x"  # trained once


def test_crashing_code_and_bad_params_are_reported_as_failed_trials(setup):
    function, run, calls, store = setup
    tuning = run(
        {"lr": {"type": "float", "low": 0.6, "high": 0.9}},
        trainer={"code_uri": store.uri("artifacts", "tuning/code/mine.py")},
        fixed={"calls": str(calls)},
    )
    (ticket,) = tuning.fill("req").trials
    data = function.handle(trial_event(ticket)).get_data()
    assert data["state"] == "failed" and "RuntimeError: diverged" in data["error"]
    assert data["metrics"]["score"] > 0  # what it reported before dying is kept

    builtin = run({"batch_size": [0, 1]}, id="trial-bad", objective="val_accuracy")
    (ticket,) = builtin.fill("req").trials
    ticket = {**ticket, "params": {**ticket["params"], "batch_size": 0}}
    data = function.handle(trial_event(ticket)).get_data()
    assert data["state"] == "failed" and "batch_size must be in 1..4096" in data["error"]

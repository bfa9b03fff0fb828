"""The study logic against a real Optuna sqlite storage: budget, parallelism, top 10, retries,
deadlines, early stop, pruning, and a process killed mid-run that resumes without losing trials.

The "trainer" here is a quick analytic objective run in the test process: the study logic is what
is under test (the real trainer runs in tests/test_tuning_e2e.py).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from functions.tune import Studies, TrialPruned, TrialReporter, TuningRequest, storage_url
from tests.conftest import knflow_env


def request(**change) -> TuningRequest:
    raw = {
        "id": "digits-lr",
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "batch_size": [16, 32, 64],
        },
        "objective": {"name": "val_accuracy", "direction": "maximize"},
        "budget": {"max_trials": 12, "parallel_trials": 3},
        "seed": 7,
        **change,
    }
    return TuningRequest.from_dict(raw)


def score(params: dict) -> float:
    """A smooth objective with its best at lr=0.01, batch 32."""
    return (
        1.0 - abs(math.log10(params.get("lr", 0.01)) + 2) / 4 - (params["batch_size"] != 32) * 0.05
    )


def finish(run, ticket, state="complete", cause=None):
    metrics = {"val_accuracy": score(ticket["params"])} if state == "complete" else {}
    return run.record(
        {"tuning": run.id, "trial": ticket["trial"], "state": state, "metrics": metrics},
        cause or f"done-{ticket['trial']}-{ticket['attempt']}",
    )


def drive(run, pending):
    """Complete trials one at a time (oldest first) until the run finishes; return finish count."""
    finished = 0
    while pending:
        outcome = finish(run, pending.pop(0))
        pending.extend(outcome.trials)
        finished += outcome.finished
    return finished


@pytest.fixture
def studies(data_dir: Path) -> Studies:
    return Studies(storage_url(data_dir))


def test_run_keeps_parallel_trials_and_ends_with_sorted_top_10(studies):
    run = studies.create(request())
    first = run.fill("req-1")
    assert len(first.trials) == 3 and not first.finished
    assert [t["trial"] for t in first.trials] == [0, 1, 2]
    ticket = first.trials[0]
    assert set(ticket["params"]) == {"lr", "batch_size"}
    assert ticket["storage"] == studies.url and ticket["objective"] == "val_accuracy"

    pending, finished_signals, running_seen = list(first.trials), 0, []
    while pending:
        outcome = finish(run, pending.pop(0))
        pending.extend(outcome.trials)
        finished_signals += outcome.finished
        running_seen.append(run.counts()["running"])
    assert max(running_seen) <= 3
    assert finished_signals == 1  # tuning.completed exactly once
    view = run.view()
    assert view["status"] == "completed" and "budget of 12 trials spent" in view["reason"]
    assert view["counts"]["complete"] == 12
    values = [t["value"] for t in view["top"]]
    assert len(values) == 10 and values == sorted(values, reverse=True)
    assert view["best"]["value"] == max(t["value"] for t in view["trials"])
    assert run.fill("late-event").trials == []  # nothing asked after the budget is spent


def test_minimize_sorts_ascending(studies):
    run = studies.create(
        request(
            id="min", sampler="random", objective={"name": "val_accuracy", "direction": "minimize"}
        )
    )
    drive(run, run.fill("req").trials)
    values = [t["value"] for t in run.top()]
    assert values == sorted(values)


def test_redelivered_events_do_not_ask_twice(studies):
    run = studies.create(request())
    first = run.fill("req-1")
    again = studies.create(request()).fill("req-1")
    assert [t["trial"] for t in again.trials] == [t["trial"] for t in first.trials]
    done = finish(run, first.trials[0], cause="c-1")
    redelivered = finish(run, first.trials[0], cause="c-1")
    assert [t["trial"] for t in redelivered.trials] == [t["trial"] for t in done.trials]
    assert len(run.trials()) == 4


def test_failed_trial_is_retried_with_same_params_then_counted(studies):
    run = studies.create(
        request(budget={"max_trials": 4, "parallel_trials": 1, "max_failed_trials": 2})
    )
    (ticket,) = run.fill("req").trials
    (retry,) = finish(run, ticket, state="failed").trials
    assert retry["params"] == ticket["params"] and retry["attempt"] == 2
    (fresh,) = finish(run, retry, state="failed").trials  # retries exhausted: a new config
    assert fresh["attempt"] == 1 and fresh["params"] != ticket["params"]
    view = run.view()
    failed = [t for t in view["trials"] if t["state"] == "fail"]
    assert len(failed) == 2 and failed[1]["retry_of"] == 0 and "failed" in failed[0]["error"]


def test_too_many_failures_end_the_run_with_the_reason(studies):
    run = studies.create(
        request(
            budget={"max_trials": 6, "parallel_trials": 2, "max_failed_trials": 1, "max_retries": 0}
        )
    )
    pending, finished = run.fill("req").trials, 0
    while pending:
        outcome = finish(run, pending.pop(0), state="failed")
        pending.extend(outcome.trials)
        finished += outcome.finished
    view = run.view()
    assert finished == 1 and view["status"] == "failed"
    assert "3 trials failed (max_failed_trials 1)" in view["reason"]  # 2 fail, 1 was running


def test_missing_objective_metric_fails_the_trial_with_a_clear_error(studies):
    run = studies.create(request(budget={"max_trials": 2, "parallel_trials": 1}))
    (ticket,) = run.fill("req").trials
    run.record({"tuning": run.id, "trial": ticket["trial"], "metrics": {"loss": 0.3}}, "c")
    error = run.view()["trials"][0]["error"]
    assert "objective 'val_accuracy' missing from the trial's metrics (got: loss)" in error


def test_trial_past_its_deadline_is_failed_and_asked_again(studies):
    run = studies.create(
        request(budget={"max_trials": 3, "parallel_trials": 2, "trial_timeout": 30})
    )
    tickets = run.fill("req").trials
    assert run.expire(now=time.time() + 5).trials == []  # not yet overdue
    outcome = run.expire(now=time.time() + 60)
    assert sorted(t["params"]["lr"] for t in outcome.trials) == sorted(
        t["params"]["lr"] for t in tickets
    )
    assert all(t["attempt"] == 2 for t in outcome.trials)
    errors = [t["error"] for t in run.view()["trials"] if t["state"] == "fail"]
    assert len(errors) == 2 and all("no result within the deadline" in e for e in errors)
    # a late result for a trial already failed is ignored, the retry's result counts
    finish(run, tickets[0])
    assert run.counts()["complete"] == 0


def test_goal_value_stops_early(studies):
    run = studies.create(
        request(
            objective={"name": "val_accuracy", "direction": "maximize", "goal": 0.5},
            budget={"max_trials": 12, "parallel_trials": 1},
        )
    )
    assert drive(run, run.fill("req").trials) == 1
    view = run.view()
    assert view["counts"]["complete"] < 12 and "goal 0.5 reached" in view["reason"]


def test_grid_sampler_visits_each_point_once(studies):
    run = studies.create(
        request(id="grid", sampler="grid", space={"batch_size": [16, 32], "opt": ["sgd", "adam"]})
    )
    drive(run, run.fill("req").trials)
    seen = {(t["params"]["batch_size"], t["params"]["opt"]) for t in run.view()["trials"]}
    assert len(seen) == 4 and run.view()["counts"]["complete"] == 4


def test_trainer_reports_per_epoch_and_median_pruner_stops_laggards(studies):
    run = studies.create(request(id="prune", budget={"max_trials": 8, "parallel_trials": 1}))
    pending, pruned = run.fill("req").trials, []
    for i in range(8):
        ticket = pending.pop(0)
        reporter = TrialReporter(ticket)
        assert reporter.is_open()
        quality = 0.9 if i < 4 else 0.1  # the later trials are far worse
        try:
            for epoch in range(1, 4):
                reporter.progress({"epoch": epoch, "val_accuracy": quality * epoch / 3})
            state = "complete"
        except TrialPruned as exc:
            pruned.append(str(exc))
            state = "pruned"
        outcome = run.record(
            {"tuning": run.id, "trial": ticket["trial"], "state": state, "metrics": reporter.last},
            f"c{i}",
        )
        pending.extend(outcome.trials)
        assert not TrialReporter(ticket).is_open()  # a re-delivered request would not retrain
    view = run.view()
    assert view["counts"]["pruned"] >= 1 and "pruned at epoch 1" in pruned[0]
    assert view["trials"][0]["intermediate"] == {"1": 0.3, "2": 0.6, "3": 0.9}


KILLED_TUNER = textwrap.dedent(
    """
    import sys, time
    from functions.tune import Studies
    from tests.test_tuning_study import finish, request
    run = Studies(sys.argv[1]).create(request())
    pending = list(run.fill("req").trials)
    while pending:
        outcome = finish(run, pending.pop(0))
        pending.extend(outcome.trials)
        print(run.counts()["complete"], flush=True)
        if run.counts()["complete"] >= 5:
            time.sleep(60)  # killed here, with trials still running
    """
)


def test_killed_tuner_resumes_without_losing_finished_trials(studies, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_TUNER, studies.url],
        env=knflow_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if int(line) >= 5:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    reopened = Studies(studies.url).get("digits-lr")
    before = {
        t["number"]: t["value"] for t in reopened.view()["trials"] if t["state"] == "complete"
    }
    assert len(before) == 5 and reopened.counts()["running"] == 3
    # the trials that were running when it died are failed at their deadline and asked again
    outcome = reopened.expire(now=time.time() + 3600)
    assert len(outcome.trials) == 3 and all(t["attempt"] == 2 for t in outcome.trials)
    drive(reopened, list(outcome.trials))
    view = reopened.view()
    after = {t["number"]: t["value"] for t in view["trials"] if t["state"] == "complete"}
    assert all(after[n] == v for n, v in before.items())  # nothing finished was lost
    assert view["status"] == "completed" and view["counts"]["complete"] == 12
    assert json.dumps(view)  # the view is plain JSON for the CLI and page


OPEN_STORAGE = (
    "import sys; from functions.tune import Studies, storage_url; Studies(storage_url(sys.argv[1]))"
)


def test_processes_opening_a_new_study_database_at_once_all_succeed(tmp_path):
    """The tune replica and the CLI/page may create the schema at the same moment."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORAGE, str(tmp_path)],
            env=knflow_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors

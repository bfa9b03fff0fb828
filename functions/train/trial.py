"""Tuning trials in the `train` service: `dev.knflow.trial.requested` in, one training run with
per-epoch reports into the run's study (so the pruner can stop it), `dev.knflow.trial.completed`
out — also when the trial failed or was pruned, so the study always hears about it."""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from eventing import types
from eventing.events import derive_id, new_event
from functions.contract import BadInput
from functions.tune.worker import TrialPruned, TrialReporter

from .checkpoint import ARTIFACTS, save_run
from .trainer import TrainParams, train_model

log = logging.getLogger("knflow.train.trial")
SOURCE = "/knflow/functions/train"


def run_trial(ticket: dict[str, Any], event_id: str, cfg, defaults: dict[str, Any]):
    """Train one trial and return its `trial.completed` event (state complete|pruned|failed)."""
    for key in ("tuning", "trial", "storage", "objective", "params"):
        if key not in ticket:
            raise BadInput(f"trial.requested data lacks {key!r}")
    reporter = TrialReporter(ticket)
    subject = f"{ticket['tuning']}/trial-{ticket['trial']}"
    reply_id = derive_id(event_id, "trial.completed")
    base = {"tuning": ticket["tuning"], "trial": ticket["trial"], "attempt": ticket.get("attempt")}
    if not reporter.is_open():  # a re-delivery of a finished trial: repeat its result
        result = reporter.finished_result()
    else:
        started = time.monotonic()
        result = _train(ticket, reporter, cfg, defaults, event_id)
        result["duration"] = round(time.monotonic() - started, 2)
        result["worker"] = cfg.revision or cfg.service or "local"
    log.info(
        "trial %s: %s %s",
        subject,
        result["state"],
        result.get("metrics", {}).get(ticket["objective"]),
    )
    return new_event(
        types.TRIAL_COMPLETED, SOURCE, {**base, **result}, subject=subject, id=reply_id
    )


def _train(ticket, reporter: TrialReporter, cfg, defaults, event_id) -> dict[str, Any]:
    trainer = ticket.get("trainer") or {"builtin": "digits"}
    try:
        if trainer.get("code_uri"):
            metrics = _user_code(cfg, trainer["code_uri"], ticket["params"], reporter)
            return {
                "state": "complete",
                "metrics": metrics,
                "checkpoint": metrics.pop("checkpoint", None),
            }
        params = TrainParams.from_mapping(
            {"threads": 1, **ticket["params"], "name": ticket.get("model_name", "digits")}, defaults
        )
        model, metrics = train_model(params, progress=reporter.progress)
    except TrialPruned as exc:
        return {"state": "pruned", "metrics": reporter.last, "error": str(exc)}
    except Exception as exc:  # bad params or a crash in training: the study must hear it
        log.exception("trial %s failed", ticket["trial"])
        return {
            "state": "failed",
            "metrics": reporter.last,
            "error": f"{type(exc).__name__}: {exc}",
        }
    final = {**metrics["history"][-1], "accuracy": metrics["accuracy"], "loss": metrics["loss"]}
    cfg.store.create_bucket(ARTIFACTS)  # versions are allocated by listing it
    saved = save_run(cfg.store, model, metrics, derive_id(event_id, "trial"), log=log.info)
    return {"state": "complete", "metrics": final, "checkpoint": saved}


def _user_code(cfg, uri: str, params: dict[str, Any], reporter: TrialReporter) -> dict[str, Any]:
    """Run uploaded training code: a module defining `train(params, progress) -> metrics`."""
    from storage import parse_uri

    bucket, key = parse_uri(uri)
    source = cfg.store.get(bucket, key)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user_train.py"
        path.write_bytes(source)
        spec = importlib.util.spec_from_file_location("knflow_user_train", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    train = getattr(module, "train", None) or getattr(module, "train_model", None)
    if train is None:
        raise ValueError(f"{uri} defines no train(params, progress) function")
    metrics = train(dict(params), reporter.progress)
    if not isinstance(metrics, dict):
        raise ValueError(
            f"train() in {uri} must return a dict of metrics, got {type(metrics).__name__}"
        )
    return metrics

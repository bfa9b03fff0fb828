"""The trainer's side of a trial: report per-epoch values into the shared study and stop early
when the run's pruner says the trial falls behind (Optuna's distributed pattern: every worker opens
the same RDB storage)."""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import TrialState

from .optimizers import make_pruner, open_storage
from .request import TuningRequest


class TrialPruned(Exception):
    """Raised from the progress callback so training stops; the trial is reported as pruned."""


class TrialReporter:
    """Built from a `trial.requested` ticket; `progress(metrics)` is the per-epoch callback."""

    def __init__(self, ticket: dict[str, Any]):
        self.ticket = ticket
        self.objective = ticket["objective"]
        self.number = int(ticket["trial"])
        storage = open_storage(ticket["storage"])
        summary = optuna.load_study(study_name=ticket["tuning"], storage=storage)
        request = TuningRequest.from_dict(summary.user_attrs["request"])
        self.study = optuna.load_study(
            study_name=ticket["tuning"], storage=storage, pruner=make_pruner(request)
        )
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, self.number
        )
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        self.last: dict[str, Any] = {}

    def state(self) -> TrialState:
        return self.study._storage.get_trial(self.trial_id).state

    def is_open(self) -> bool:
        """False when the trial already finished (a re-delivered request: do not train again)."""
        return self.state() == TrialState.RUNNING

    def finished_result(self) -> dict[str, Any]:
        """The result stored for a finished trial, to re-emit for a re-delivered request."""
        frozen = self.study._storage.get_trial(self.trial_id)
        state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
            frozen.state, "failed"
        )
        return {
            "state": state,
            "value": frozen.value,
            "metrics": frozen.user_attrs.get("metrics") or {},
            "checkpoint": frozen.user_attrs.get("checkpoint"),
            "error": frozen.user_attrs.get("error"),
        }

    def progress(self, metrics: dict[str, Any]) -> None:
        """Per-epoch callback (the trainer passes that epoch's metrics, with `epoch`): record the
        objective in the study, raise TrialPruned when the pruner says the trial falls behind."""
        self.last = dict(metrics)
        value = metrics.get(self.objective)
        if not isinstance(value, int | float) or not self.is_open():
            return
        epoch = int(metrics.get("epoch", 1))
        self.trial.report(float(value), epoch)
        self.study._storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
        last_epoch = self.ticket.get("params", {}).get("epochs")
        if isinstance(last_epoch, int) and epoch >= last_epoch:
            return  # the trial is done anyway: a final report is a result, not a reason to stop
        if self.trial.should_prune():
            raise TrialPruned(
                f"trial {self.number} pruned at epoch {epoch}: {self.objective}={value:.4g}"
            )

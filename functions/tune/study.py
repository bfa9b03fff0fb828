"""A tuning run = one Optuna study in RDB storage, driven by ask/tell from events.

Everything the run needs to continue lives in the storage (the validated request as a study
attribute, each trial's cause, attempt, deadline and results as trial attributes), so a restarted
`tune` service picks up where it stopped: finished trials stay finished, and trials that were
running when it died are failed at their deadline and asked again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .optimizers import grid_size, make_pruner, make_sampler, open_storage
from .request import TuningRequest
from .space import distributions

TOP_K = 10
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_STATES = {
    "complete": TrialState.COMPLETE,
    "completed": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
}


class UnknownRun(LookupError):
    """No tuning run has that id."""


@dataclass(frozen=True)
class Outcome:
    """What one step of the run produced: trials to send out, and whether it just finished."""

    trials: list[dict[str, Any]]
    finished: bool = False


class Studies:
    """The tuning runs of one instance, all in one Optuna storage (sqlite file or database URL)."""

    def __init__(self, storage_url: str):
        self.url = storage_url
        self.storage = open_storage(storage_url)

    def create(self, request: TuningRequest) -> Run:
        """Create the run's study, or return the existing one (a re-delivered request)."""
        try:
            return self.get(request.id)
        except UnknownRun:
            pass
        study = optuna.create_study(
            storage=self.storage,
            study_name=request.id,
            direction=request.objective.direction,
            load_if_exists=True,
        )
        if "request" not in study.user_attrs:
            study.set_user_attr("request", request.to_dict())
            study.set_user_attr("status", RUNNING)
            study.set_user_attr("created", time.time())
        return Run(self, study)

    def get(self, run_id: str) -> Run:
        try:
            study = optuna.load_study(study_name=run_id, storage=self.storage)
        except KeyError:
            raise UnknownRun(f"no tuning run {run_id!r}") from None
        if "request" not in study.user_attrs:
            raise UnknownRun(f"no tuning run {run_id!r} (study without a request)")
        return Run(self, study)

    def ids(self) -> list[str]:
        return [s.study_name for s in self.storage.get_all_studies()]

    def runs(self, status: str | None = None) -> list[Run]:
        """Every run (or those in `status`), oldest first."""
        found = []
        for summary in self.storage.get_all_studies():
            if status is not None and summary.user_attrs.get("status", RUNNING) != status:
                continue
            run_id = summary.study_name
            try:
                found.append(self.get(run_id))
            except UnknownRun:
                continue
        return found


class Run:
    """One tuning run. Methods are idempotent per cause (the id of the event being handled)."""

    def __init__(self, studies: Studies, study: optuna.Study):
        self.studies = studies
        self.request = TuningRequest.from_dict(study.user_attrs["request"])
        n = len(study.get_trials(deepcopy=False))
        # Reload with the request's sampler and pruner (Optuna does not persist them).
        self.study = optuna.load_study(
            study_name=study.study_name,
            storage=studies.storage,
            sampler=make_sampler(self.request, n),
            pruner=make_pruner(self.request),
        )
        self.id = self.request.id

    # --- state -------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.study.user_attrs.get("status", RUNNING)

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def counts(self, trials: list[FrozenTrial] | None = None) -> dict[str, int]:
        trials = self.trials() if trials is None else trials
        count = lambda s: sum(t.state == s for t in trials)  # noqa: E731
        return {
            "complete": count(TrialState.COMPLETE),
            "pruned": count(TrialState.PRUNED),
            "failed": count(TrialState.FAIL),
            "running": count(TrialState.RUNNING),
            "waiting": count(TrialState.WAITING),
        }

    @property
    def max_trials(self) -> int:
        limit = self.request.budget.max_trials
        return min(limit, grid_size(self.request)) if self.request.sampler == "grid" else limit

    def best(self, trials: list[FrozenTrial] | None = None) -> FrozenTrial | None:
        trials = self.trials() if trials is None else trials
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        if not done:
            return None
        return sorted(done, key=self._rank)[0]

    def top(self, k: int = TOP_K) -> list[dict[str, Any]]:
        """The best `k` finished trials, best first (by the objective in its direction)."""
        done = sorted(self.trials(TrialState.COMPLETE), key=self._rank)
        return [trial_view(t) for t in done[:k]]

    def _rank(self, trial: FrozenTrial) -> tuple:
        sign = -1 if self.request.objective.direction == "maximize" else 1
        return (sign * trial.value, trial.number)

    def stop_reason(self, trials: list[FrozenTrial] | None = None) -> str | None:
        """Why no more trials are asked (budget spent, goal reached, too many failures)."""
        trials = self.trials() if trials is None else trials
        counts = self.counts(trials)
        if counts["failed"] > self.request.budget.max_failed_trials:
            limit = self.request.budget.max_failed_trials
            return f"{counts['failed']} trials failed (max_failed_trials {limit})"
        best = self.best(trials)
        if best is not None and self.request.objective.reached(best.value):
            return f"goal {self.request.objective.goal:g} reached by trial {best.number}"
        if counts["complete"] + counts["pruned"] >= self.max_trials:
            return f"budget of {self.max_trials} trials spent"
        if self.study.user_attrs.get("stopped"):
            return "stopped by the user"
        return None

    # --- steps -------------------------------------------------------------------------------
    def fill(self, cause: str) -> Outcome:
        """Ask the sampler for trials until `parallel_trials` run or the budget is spent.

        A re-delivered cause gets back the trials it asked the first time, not new ones.
        """
        already = [t for t in self.trials() if t.user_attrs.get("cause") == cause]
        if already:
            return Outcome([self.ticket(t) for t in already if t.state == TrialState.RUNNING])
        asked = []
        budget = self.request.budget
        while self.status == RUNNING:
            trials = self.trials()
            if self.stop_reason(trials) is not None:
                break
            counts = self.counts(trials)
            if counts["running"] >= budget.parallel_trials:
                break
            if counts["complete"] + counts["pruned"] + counts["running"] >= self.max_trials:
                break
            trial = self.study.ask(distributions(list(self.request.params)))
            attrs = {
                "cause": cause,
                "asked": time.time(),
                "deadline": time.time() + budget.trial_timeout,
            }
            attrs.setdefault("attempt", 1)
            for key, value in attrs.items():
                if key not in trial.user_attrs:
                    trial.set_user_attr(key, value)
            asked.append(self.ticket(self.study._storage.get_trial(trial._trial_id)))
        return Outcome(asked, self._maybe_finish(cause))

    def record(self, result: dict[str, Any], cause: str) -> Outcome:
        """A `trial.completed` arrived: tell the study, retry a failure, then ask for more."""
        number = int(result["trial"])
        trial = self._trial(number)
        if trial.state == TrialState.RUNNING:
            state = _STATES.get(str(result.get("state", "complete")).lower(), TrialState.FAIL)
            metrics = result.get("metrics") or {}
            value = metrics.get(self.request.objective.name, result.get("value"))
            error = result.get("error")
            if state == TrialState.COMPLETE and not _is_number(value):
                state = TrialState.FAIL
                error = (
                    f"objective {self.request.objective.name!r} missing from the trial's "
                    f"metrics (got: {', '.join(sorted(metrics)) or 'none'})"
                )
            for key in ("metrics", "checkpoint", "duration", "worker"):
                if result.get(key) is not None:
                    self._set(trial, key, result[key])
            if error:
                self._set(trial, "error", str(error)[:2000])
            self._set(trial, "finished_by", cause)
            if state == TrialState.COMPLETE:
                self.study.tell(number, float(value), skip_if_finished=True)
            elif state == TrialState.PRUNED:
                self.study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            else:
                self._fail(trial, str(error or "the trial failed"))
        return self.fill(cause)

    def expire(self, now: float | None = None) -> Outcome:
        """Fail running trials past their deadline (and ask again), so none is silently lost."""
        now = time.time() if now is None else now
        expired = [
            t
            for t in self.trials(TrialState.RUNNING)
            if float(t.user_attrs.get("deadline", now + 1)) < now
        ]
        for trial in expired:
            waited = now - float(trial.user_attrs.get("asked", now))
            self._fail(
                trial, f"no result within the deadline ({waited:.0f}s): the trial died or hangs"
            )
        if not expired and self.status != RUNNING:
            return Outcome([])
        return self.fill(f"expire:{','.join(str(t.number) for t in expired)}:{int(now)}")

    def stop(self) -> None:
        """Ask no more trials; the run completes when the running ones report."""
        self.study.set_user_attr("stopped", True)

    def _fail(self, trial: FrozenTrial, error: str) -> None:
        self._set(trial, "error", error)
        self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        attempt = int(trial.user_attrs.get("attempt", 1))
        if attempt <= self.request.budget.max_retries and self.stop_reason() is None:
            self.study.enqueue_trial(
                dict(trial.params),
                user_attrs={
                    "attempt": attempt + 1,
                    "retry_of": trial.user_attrs.get("retry_of", trial.number),
                },
            )

    def _maybe_finish(self, cause: str) -> bool:
        """True when this cause ends the run (no trial running and nothing more to ask)."""
        if self.status != RUNNING:
            return self.study.user_attrs.get("finished_by") == cause
        reason = self.stop_reason()
        if reason is None or self.counts()["running"]:
            return False
        failed = self.counts()["failed"] > self.request.budget.max_failed_trials
        self.study.set_user_attr("status", FAILED if failed and self.best() is None else COMPLETED)
        self.study.set_user_attr("reason", reason)
        self.study.set_user_attr("finished_by", cause)
        self.study.set_user_attr("completed_at", time.time())
        return True

    def _trial(self, number: int) -> FrozenTrial:
        for trial in self.trials():
            if trial.number == number:
                return trial
        raise UnknownRun(f"tuning run {self.id!r} has no trial {number}")

    def _set(self, trial: FrozenTrial, key: str, value: Any) -> None:
        self.study._storage.set_trial_user_attr(trial._trial_id, key, value)

    # --- views -------------------------------------------------------------------------------
    def ticket(self, trial: FrozenTrial) -> dict[str, Any]:
        """The `trial.requested` data: everything a trainer needs, including where to report."""
        return {
            "tuning": self.id,
            "trial": trial.number,
            "attempt": int(trial.user_attrs.get("attempt", 1)),
            "params": {**self.request.fixed, **trial.params},
            "tuned": sorted(trial.params),
            "objective": self.request.objective.name,
            "storage": self.studies.url,
            "deadline": trial.user_attrs.get("deadline"),
            "trainer": self.request.trainer,
            "model_name": self.request.model_name,
        }

    def view(self) -> dict[str, Any]:
        """The run as the CLI and the web page show it."""
        best = self.best()
        attrs = self.study.user_attrs
        return {
            "id": self.id,
            "status": attrs.get("status", RUNNING),
            "reason": attrs.get("reason") or self.stop_reason(),
            "objective": {
                "name": self.request.objective.name,
                "direction": self.request.objective.direction,
                "goal": self.request.objective.goal,
            },
            "sampler": self.request.sampler,
            "pruner": self.request.pruner,
            "space": [p.to_dict() for p in self.request.params],
            "budget": {**self.request.to_dict()["budget"], "max_trials": self.max_trials},
            "counts": self.counts(),
            "created": attrs.get("created"),
            "completed_at": attrs.get("completed_at"),
            "best": trial_view(best) if best else None,
            "top": self.top(),
            "trials": [trial_view(t) for t in self.trials()],
            "deployment": attrs.get("deployment"),
        }

    def set_deployment(self, info: dict[str, Any]) -> None:
        self.study.set_user_attr("deployment", info)


def trial_view(trial: FrozenTrial) -> dict[str, Any]:
    started, finished = trial.datetime_start, trial.datetime_complete
    duration = trial.user_attrs.get("duration")
    if duration is None and started and finished:
        duration = (finished - started).total_seconds()
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "params": dict(trial.params),
        "metrics": trial.user_attrs.get("metrics") or {},
        "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
        "attempt": trial.user_attrs.get("attempt", 1),
        "retry_of": trial.user_attrs.get("retry_of"),
        "error": trial.user_attrs.get("error"),
        "checkpoint": trial.user_attrs.get("checkpoint"),
        "started": started.timestamp() if started else None,
        "duration": duration,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value

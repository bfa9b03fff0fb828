"""The `tune` function: keeps each tuning run's study and turns events into trials.

tuning.requested → create the study, ask up to `parallel_trials` configurations → trial.requested
trial.completed  → tell the study, ask the next trial while budget remains → trial.requested
                   … and when the budget is spent → tuning.completed with the top 10.
A background check fails trials past their deadline (and asks again), so a trainer that died
does not stall the run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import jsonify

from eventing import derive_id, new_event, types
from eventing.http import InvalidEvent, data_json
from functions.contract import BadInput

from .emit import send
from .optimizers import storage_url
from .request import TuningRequest
from .space import SpaceError
from .study import RUNNING, Outcome, Run, Studies, UnknownRun

log = logging.getLogger("knflow.tune")
SOURCE = "/knflow/tune"


def trial_event(ticket: dict[str, Any]):
    """`trial.requested` for one trial; the id depends only on (run, trial), so re-sends dedupe."""
    key = f"{ticket['tuning']}/trial-{ticket['trial']}"
    return new_event(
        types.TRIAL_REQUESTED, SOURCE, ticket, subject=key, id=derive_id(key, "trial.requested")
    )


def completed_event(run: Run):
    view = run.view()
    data = {k: view[k] for k in ("id", "status", "reason", "objective", "counts", "best", "top")}
    return new_event(
        types.TUNING_COMPLETED,
        SOURCE,
        data,
        subject=run.id,
        id=derive_id(run.id, "tuning.completed"),
    )


class TuneFunction:
    def __init__(self) -> None:
        self.studies: Studies | None = None
        self.sink = ""
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, cfg) -> None:
        self.studies = Studies(cfg.config.get("storage_url") or storage_url(cfg.data_dir))
        self.sink = cfg.sink
        interval = float(cfg.config.get("check_interval", 5))
        self._checker = threading.Thread(
            target=self._check_loop, args=(interval,), name="tune-deadlines", daemon=True
        )
        self._checker.start()

    def stop(self) -> None:
        self._stop.set()

    def ready(self) -> bool:
        return self.studies is not None

    # --- events ----------------------------------------------------------------------------
    def handle(self, event):
        kind = event.get_type()
        try:
            data = data_json(event)
        except InvalidEvent as exc:
            raise BadInput(str(exc)) from None
        if not isinstance(data, dict):
            raise BadInput(f"{kind} data must be a JSON object")
        with self.lock:
            if kind == types.TUNING_REQUESTED:
                run, outcome = self.request(data, event.get_id())
            elif kind == types.TRIAL_COMPLETED:
                run, outcome = self.complete(data, event.get_id())
            elif kind in (types.REVISION_READY, types.REVISION_FAILED):
                self.rolled_out(data, ready=kind == types.REVISION_READY)
                return None
            else:
                raise BadInput(f"tune does not handle {kind}")
            return self._send(run, outcome, reply=True)

    def request(self, data: dict[str, Any], cause: str) -> tuple[Run, Outcome]:
        try:
            request = TuningRequest.from_dict(data, default_id=f"tune-{cause[:12].lower()}")
        except SpaceError as exc:
            raise BadInput(f"invalid tuning request: {exc}") from None
        run = self.studies.create(request)
        outcome = run.fill(cause)
        log.info("tuning %s: %d trial(s) asked", run.id, len(outcome.trials))
        return run, outcome

    def complete(self, data: dict[str, Any], cause: str) -> tuple[Run, Outcome]:
        if "tuning" not in data or "trial" not in data:
            raise BadInput("trial.completed needs 'tuning' (run id) and 'trial' (number)")
        try:
            run = self.studies.get(str(data["tuning"]))
            outcome = run.record(data, cause)
        except UnknownRun as exc:
            raise BadInput(str(exc)) from None
        log.info(
            "tuning %s: trial %s %s; %s",
            run.id,
            data["trial"],
            data.get("state", "complete"),
            run.counts(),
        )
        return run, outcome

    def rolled_out(self, data: dict[str, Any], ready: bool) -> None:
        """The builder finished a rollout: mark the run whose deployment it was."""
        model, version = data.get("model"), data.get("version")
        for run in self.studies.runs():
            deployment = run.study.user_attrs.get("deployment") or {}
            if deployment.get("model") == model and str(deployment.get("version")) == str(version):
                run.set_deployment(
                    {
                        **deployment,
                        "status": "promoted" if ready else "failed",
                        "revision": data.get("revision"),
                        "reason": data.get("reason") or None,
                    }
                )
                log.info("tuning %s: deployment %s", run.id, "promoted" if ready else "failed")

    def check(self) -> None:
        """Fail overdue trials of every running run and send what that asks for."""
        with self.lock:
            for run in self.studies.runs(status=RUNNING):
                self._send(run, run.expire(), reply=False)

    def _send(self, run: Run, outcome: Outcome, reply: bool):
        events = [trial_event(t) for t in outcome.trials]
        if outcome.finished:
            events.append(completed_event(run))
            log.info("tuning %s finished: %s", run.id, run.view()["reason"])
        if reply and events:
            *others, last = events
        else:
            others, last = events, None
        for event in others:
            send(self.sink, event)
        return last

    def _check_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception:  # the next tick tries again; handlers keep working meanwhile
                log.exception("deadline check failed")

    # --- HTTP routes (status for the CLI and page when they cannot open the storage) --------
    def routes(self):
        return [
            ("/tuning", ["GET"], self._list_view),
            ("/tuning/<run_id>", ["GET"], self._run_view),
        ]

    def _list_view(self):
        return jsonify([run.view() for run in self.studies.runs()])

    def _run_view(self, run_id: str):
        try:
            return jsonify(self.studies.get(run_id).view())
        except UnknownRun as exc:
            return jsonify({"error": str(exc)}), 404

"""What the CLI and the web page do with tuning runs: validate and send a request, read runs,
ask for a deployment. Both share this so they accept and refuse exactly the same input."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from eventing import new_event, types
from eventing.client import BrokerClient

from .deploy import check_deployment, deploy_event
from .emit import send
from .optimizers import storage_url
from .request import TuningRequest
from .study import Run, Studies

SOURCE = "/knflow/tune/client"


def studies_for(data_dir: Path | str) -> Studies:
    return Studies(storage_url(data_dir))


def new_run_id(raw: Any) -> str:
    """A readable id unique per request: `tune-<time>-<hash>`."""
    digest = hashlib.sha256(repr((raw, time.time_ns())).encode()).hexdigest()[:6]
    return f"tune-{time.strftime('%H%M%S')}-{digest}"


def validate(raw: dict[str, Any]) -> TuningRequest:
    """The request as the tune service will see it; SpaceError says what is wrong."""
    return TuningRequest.from_dict(raw, default_id=new_run_id(raw))


def start_run(broker: BrokerClient, raw: dict[str, Any] | TuningRequest) -> TuningRequest:
    """Validate (SpaceError says why) and send `tuning.requested`; returns the request."""
    request = raw if isinstance(raw, TuningRequest) else validate(raw)
    event = new_event(types.TUNING_REQUESTED, SOURCE, request.to_dict(), subject=request.id)
    _send(broker, event)
    return request


def request_deployment(broker: BrokerClient, run: Run, trial: int | None = None) -> dict[str, Any]:
    """Send the chosen (default: best) trial down the export → builder → predict path."""
    event = deploy_event(run, trial)
    _send(broker, event)
    return run.study.user_attrs["deployment"]


def deployment_status(run: Run, predict_url: str, store=None) -> dict[str, Any] | None:
    return check_deployment(run, predict_url, store)


def _send(broker: BrokerClient, event) -> None:
    send(broker.url, event)

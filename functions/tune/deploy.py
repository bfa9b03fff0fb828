"""Deploying a trial through the model-lifecycle path: the trial's checkpoint is announced as
`dev.knflow.model.trained`, so export → builder → predict roll it out exactly like any trained
model; the run records the request and notices when the endpoint serves that version."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import requests

from eventing import derive_id, new_event, types

from .study import Run

SOURCE = "/knflow/tune"
DEAD_LETTERS = "dead-letters"


class NotDeployable(ValueError):
    """The trial cannot be deployed (not finished, or no checkpoint); the message says why."""


def deploy_event(run: Run, trial: int | None = None):
    """`model.trained` for `trial` (default: the best); records the deployment as requested."""
    view = run.view()
    chosen = (
        view["best"]
        if trial is None
        else next((t for t in view["trials"] if t["number"] == trial), None)
    )
    if chosen is None:
        what = "no trial has completed yet" if trial is None else f"there is no trial {trial}"
        raise NotDeployable(f"cannot deploy from run {run.id}: {what}")
    if chosen["state"] != "complete":
        raise NotDeployable(f"trial {chosen['number']} is {chosen['state']}, not complete")
    checkpoint = chosen.get("checkpoint")
    if not isinstance(checkpoint, dict) or not checkpoint.get("key"):
        raise NotDeployable(f"trial {chosen['number']} saved no checkpoint to deploy")
    data = {**checkpoint, "metrics": chosen["metrics"], "tuning": run.id, "trial": chosen["number"]}
    key = f"{run.id}/trial-{chosen['number']}"
    event = new_event(
        types.MODEL_TRAINED, SOURCE, data, subject=checkpoint["key"], id=derive_id(key, "deploy")
    )
    run.set_deployment(
        {
            "trial": chosen["number"],
            "model": checkpoint.get("name"),
            "version": checkpoint.get("version"),
            "value": chosen["value"],
            "status": "deploying",
            "requested_at": time.time(),
            "event_id": event.get_id(),
        }
    )
    return event


def dead_letter_reason(doc: dict[str, Any]) -> str:
    """Why the broker gave up on an event (`knativeerrordata`, base64 as Knative writes it)."""
    raw = doc.get("knativeerrordata") or ""
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8", "replace")
    except ValueError:
        text = str(raw)
    return " ".join(text.split())[:500] or f"dead-lettered (code {doc.get('knativeerrorcode')})"


def check_deployment(
    run: Run, predict_url: str, store=None, timeout: float = 3.0
) -> dict[str, Any] | None:
    """Mark the deployment ready once it is promoted and `predict` serves the trial's model
    version, or failed when its `model.trained` event was dead-lettered (e.g. the export check
    refused the model); return it."""
    deployment = run.study.user_attrs.get("deployment")
    if deployment and deployment.get("status") == "deploying" and store is not None:
        try:
            doc = json.loads(store.get(DEAD_LETTERS, deployment["event_id"]))
        except (KeyError, ValueError):  # not dead-lettered (NoSuchObject/Bucket are KeyErrors)
            doc = None
        if isinstance(doc, dict):
            deployment = {**deployment, "status": "failed", "reason": dead_letter_reason(doc)}
            run.set_deployment(deployment)
            return deployment
    # Only after the builder promoted the revision (tune hears revision.ready): during the canary
    # a probe could reach the new revision while a rollback is still possible.
    if not deployment or deployment.get("status") != "promoted" or not predict_url:
        return deployment
    name, version = deployment["model"], str(deployment["version"])
    base = predict_url.rstrip("/")
    try:
        meta = requests.get(f"{base}/v2/models/{name}", timeout=timeout)
        ready = requests.get(f"{base}/v2/models/{name}/ready", timeout=timeout)
    except requests.RequestException:
        return deployment
    if meta.ok and ready.ok and version in [str(v) for v in meta.json().get("versions", [])]:
        deployment = {
            **deployment,
            "status": "ready",
            "url": f"{base}/v2/models/{name}/infer",
            "ready_at": time.time(),
        }
        run.set_deployment(deployment)
    return deployment

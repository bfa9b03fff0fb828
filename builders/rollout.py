"""Roll a serving service to a new image with a canary share, promote or roll back.

1. pin the traffic to the revision serving now and change the template (→ new revision, 0 %);
2. wait for the new revision to be Ready (a model that does not load fails it here);
3. tag it `candidate` and smoke-test a V2 inference through the tag (no user traffic yet);
4. give it `canary_percent` of the traffic for `canary_seconds`, smoke-testing again;
5. promote it to 100 %, or put the previous revision back at 100 % with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .control import ControlAPI, ControlError, ready_condition

log = logging.getLogger("knflow.rollout")

TAG = "candidate"
TAG_HEADER = "Knative-Serving-Tag"
# (url, headers) -> (ok, detail): one smoke inference against the candidate revision.
SmokeTest = Callable[[str, dict[str, str]], tuple[bool, str]]


@dataclass
class RolloutResult:
    service: str
    revision: str | None
    previous: str | None
    outcome: str = "pending"  # promoted | rolled-back | unchanged
    reason: str = ""
    canary_percent: int = 0
    steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in ("promoted", "unchanged")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RolloutFailed(Exception):
    """Internal: a step failed; the rollout rolls back with this reason."""


class Rollout:
    def __init__(
        self,
        api: ControlAPI,
        service: str,
        canary_percent: int = 10,
        canary_seconds: float = 5.0,
        ready_timeout: float = 180.0,
        smoke: SmokeTest | None = None,
        poll: float = 0.25,
    ) -> None:
        if not 0 < canary_percent < 100:
            raise ValueError(f"canary_percent must be in 1..99, not {canary_percent}")
        self.api, self.service = api, service
        self.canary_percent, self.canary_seconds = canary_percent, canary_seconds
        self.ready_timeout, self.smoke, self.poll = ready_timeout, smoke, poll

    def run(
        self,
        image: str,
        env: dict[str, str | None] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> RolloutResult:
        """Deploy `image` (env entries set, or removed when None) and see it through."""
        svc = self.api.service(self.service)
        previous = serving_revision(svc)
        result = RolloutResult(self.service, None, previous)
        template = svc["spec"]["template"]
        container = dict(template["spec"]["containers"][0])
        variables = {v["name"]: v.get("value", "") for v in container.get("env") or []}
        for name, value in (env or {}).items():
            if value is None:
                variables.pop(name, None)
            else:
                variables[name] = value
        container["image"] = image
        container["env"] = [{"name": k, "value": v} for k, v in variables.items()]
        if container == template["spec"]["containers"][0] and previous:
            result.revision, result.outcome = previous, "unchanged"
            result.steps.append(f"{image} already serves as {previous}")
            return result
        before = svc["status"].get("latestCreatedRevisionName")
        patch: dict[str, Any] = {
            "spec": {
                "template": {
                    "metadata": {"annotations": dict(annotations or {})},
                    "spec": {"containers": [container]},
                },
                "traffic": _pinned(previous),
            }
        }
        self._step(result, f"deploying {image} (traffic pinned to {previous or 'latest'})")
        try:
            svc = self.api.patch_service(self.service, patch)
            result.revision = self._new_revision(svc, before)
            self._wait_ready(result.revision)
            self._step(result, f"revision {result.revision} is ready")
            if previous is None:  # nothing to protect: it is the first revision that works
                self._traffic([{"revisionName": result.revision, "percent": 100}])
            else:
                self._traffic(_split(previous, result.revision, 0))
                self._smoke(result, "candidate at 0%")
                self._traffic(_split(previous, result.revision, self.canary_percent))
                result.canary_percent = self.canary_percent
                self._step(
                    result,
                    f"canary: {self.canary_percent}% to {result.revision}, "
                    f"{100 - self.canary_percent}% to {previous}",
                )
                time.sleep(self.canary_seconds)
                self._wait_ready(result.revision, timeout=5)
                self._smoke(result, f"canary at {self.canary_percent}%")
                self._traffic([{"revisionName": result.revision, "percent": 100}])
            result.outcome = "promoted"
            self._step(result, f"promoted {result.revision} to 100%")
        except (RolloutFailed, ControlError) as exc:
            result.reason = str(exc)
            result.outcome = "rolled-back"
            self._step(result, f"rolling back: {exc}")
            if previous is not None:
                try:
                    self._traffic([{"revisionName": previous, "percent": 100}])
                    self._step(result, f"{previous} serves 100% again")
                except ControlError as again:
                    result.reason += f"; rollback failed too: {again}"
        return result

    # ---- steps ---------------------------------------------------------------------------------
    def _step(self, result: RolloutResult, message: str) -> None:
        result.steps.append(message)
        log.info("%s: %s", self.service, message)

    def _traffic(self, targets: list[dict[str, Any]]) -> dict[str, Any]:
        return self.api.patch_service(self.service, {"spec": {"traffic": targets}})

    def _new_revision(self, svc: dict[str, Any], before: str | None) -> str:
        deadline = time.monotonic() + 30
        while True:
            name = svc["status"].get("latestCreatedRevisionName")
            if name and name != before:
                return name
            if time.monotonic() > deadline:
                raise RolloutFailed("the service did not create a new revision")
            time.sleep(self.poll)
            svc = self.api.service(self.service)

    def _wait_ready(self, revision: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while True:
            cond = ready_condition(self.api.revision(revision))
            if cond.get("status") == "True":
                return
            if cond.get("status") == "False":
                detail = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
                raise RolloutFailed(f"revision {revision} failed: {detail or 'not ready'}")
            if time.monotonic() > deadline:
                raise RolloutFailed(
                    f"revision {revision} not ready within {self.ready_timeout:.0f}s"
                )
            time.sleep(self.poll)

    def _smoke(self, result: RolloutResult, when: str) -> None:
        if self.smoke is None:
            return
        svc = self.api.service(self.service)
        url, headers = candidate_address(svc)
        try:
            ok, detail = self.smoke(url, headers)
        except Exception as exc:  # a smoke test that cannot even run is a failed one
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            raise RolloutFailed(f"smoke inference failed ({when}): {detail}")
        self._step(result, f"smoke inference passed ({when}): {detail}")


def serving_revision(svc: dict[str, Any]) -> str | None:
    """The revision that takes most of the traffic now (None when nothing is ready)."""
    targets = [t for t in (svc.get("status") or {}).get("traffic") or [] if t.get("percent")]
    if targets:
        return max(targets, key=lambda t: t["percent"])["revisionName"]
    return (svc.get("status") or {}).get("latestReadyRevisionName")


def candidate_address(svc: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The tag's own URL where the platform gives one (a cluster), else the header."""
    for target in svc["status"].get("traffic") or []:
        if target.get("tag") == TAG and target.get("url"):
            return target["url"], {}
    return svc["status"]["url"], {TAG_HEADER: TAG}


def _pinned(previous: str | None) -> list[dict[str, Any]]:
    if previous is None:
        return [{"latestRevision": True, "percent": 100}]
    return [{"revisionName": previous, "percent": 100}]


def _split(previous: str, candidate: str, percent: int) -> list[dict[str, Any]]:
    return [
        {"revisionName": previous, "percent": 100 - percent},
        {"revisionName": candidate, "percent": percent, "tag": TAG},
    ]

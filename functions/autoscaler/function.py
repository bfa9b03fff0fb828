"""The `autoscaler` function: on each `dev.knflow.autoscale.tick` (a ping source), apply the
learned policy to the services named in the event (default: the split halves)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from functions.contract import BadInput

from .control import ControlError, connect
from .controller import Controller
from .policy import Policy, PolicyError

if TYPE_CHECKING:
    from cloudevents.core.base import BaseCloudEvent

    from functions.config import FunctionConfig

log = logging.getLogger("knflow.autoscaler")
APPLIED = "dev.knflow.autoscale.applied"
DEFAULT_SERVICES = ("resnet-a", "resnet-b")


def policy_dir(data_dir: Path) -> Path:
    """Where `knflow autoscale train` writes and the autoscaler looks for relative names."""
    data_dir = Path(data_dir)
    base = data_dir if data_dir.name == ".knflow" else data_dir / ".knflow"
    return base / "autoscale"


class AutoscalerFunction:
    def __init__(self) -> None:
        self._policy: tuple[Any, Policy] | None = None

    def start(self, cfg: FunctionConfig) -> None:
        self.cfg = cfg
        self.policy_ref = str(cfg.config.get("policy", "policy.json"))
        self.samples = int(cfg.config.get("samples", 5))

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        from eventing import derive_id, new_event
        from eventing.http import InvalidEvent, data_json

        try:
            data = data_json(event) or {}
        except InvalidEvent as exc:
            raise BadInput(str(exc)) from None
        if not isinstance(data, dict):
            raise BadInput('tick data must be a JSON object like {"services": [...]}')
        services = data.get("services") or list(DEFAULT_SERVICES)
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise BadInput("tick data 'services' must be a list of service names")
        try:
            policy = self.policy()
        except PolicyError as exc:
            log.warning("no usable policy, targets left alone: %s", exc)
            return None
        control = connect(self.cfg.data_dir)
        controller = Controller(
            control, policy, services, samples=self.samples, link=lambda: self.link(services[0])
        )
        try:
            decision = controller.tick(link=data.get("link"))
        except ControlError as exc:
            raise RuntimeError(str(exc)) from None  # 500: the broker retries the tick
        log.info("autoscale: %s", decision.as_dict())
        return new_event(
            APPLIED,
            f"/knflow/autoscaler/{self.cfg.service or 'autoscaler'}",
            decision.as_dict(),
            id=derive_id(event.get_id(), "autoscaler"),
        )

    def policy(self) -> Policy:
        """The policy file, re-read when it changes (a new `knflow autoscale train`)."""
        ref = self.policy_ref
        if ref.startswith("s3://"):
            from storage import StoreError, parse_uri

            try:
                bucket, key = parse_uri(ref)
                stamp: Any = (ref, self.cfg.store.head(bucket, key).etag)
                if self._policy is None or self._policy[0] != stamp:
                    doc = json.loads(self.cfg.store.get(bucket, key))
                    self._policy = (stamp, Policy.from_json(doc, ref))
            except (StoreError, ValueError) as exc:
                if isinstance(exc, PolicyError):
                    raise
                raise PolicyError(f"policy {ref} cannot be read: {exc}") from None
            return self._policy[1]
        path = Path(ref) if Path(ref).is_absolute() else policy_dir(self.cfg.data_dir) / ref
        try:
            stamp = (str(path), path.stat().st_mtime_ns)
        except OSError:
            raise PolicyError(
                f"policy {path} does not exist (run knflow autoscale train)"
            ) from None
        if self._policy is None or self._policy[0] != stamp:
            self._policy = (stamp, Policy.load(path))
        return self._policy[1]

    def link(self, service: str) -> str | None:
        """The link condition A reports (GET /link), named as the policy names links."""
        base = policy_dir(self.cfg.data_dir).parent
        try:
            url = json.loads((base / "instance.json").read_text())["services"][service]
            doc = requests.get(url.rstrip("/") + "/link", timeout=10).json()
        except (OSError, ValueError, KeyError, requests.RequestException):
            return None
        return doc.get("name")

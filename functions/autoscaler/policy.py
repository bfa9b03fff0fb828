"""A learned concurrency-target policy: its JSON file and how to look a decision up."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIONS = ("lower", "keep", "raise")
VERSION = 1


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says why."""


@dataclass
class Policy:
    links: list[str]
    traffic_levels: list[int]
    targets: list[int]
    q: list[list[list[list[float]]]]  # [link][traffic][target][action]
    training: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    reward: dict[str, Any] = field(default_factory=dict)

    # --- decisions --------------------------------------------------------------------------
    def action(self, link: int, level: int, k: int) -> str:
        row = self.q[link][level][k]
        best = max(row)
        return "keep" if math.isclose(row[1], best) else ACTIONS[row.index(best)]

    def decide(self, link: str | None, traffic: float, current: int) -> int:
        """The target to run at: follow the greedy actions from the current target until the
        policy says keep (one tick may take several steps, so a tick every minute is enough)."""
        li = self.link_index(link)
        level = self.level_index(traffic)
        k = self.target_index(current)
        seen = [k]
        while (action := self.action(li, level, k)) != "keep":
            step = 1 if action == "raise" else -1
            if not 0 <= k + step < len(self.targets):
                break
            k += step
            if k in seen:  # an under-trained table can loop: settle on the best state of the loop
                loop = seen[seen.index(k) :]
                k = max(loop, key=lambda i: max(self.q[li][level][i]))
                break
            seen.append(k)
        return self.targets[k]

    def table(self) -> dict[str, dict[int, int]]:
        """For each link and traffic level, the target the policy settles on from the middle."""
        middle = self.targets[len(self.targets) // 2]
        return {
            link: {level: self.decide(link, level, middle) for level in self.traffic_levels}
            for link in self.links
        }

    def link_index(self, link: str | None) -> int:
        return self.links.index(link) if link in self.links else 0

    def level_index(self, traffic: float) -> int:
        """Nearest traffic level on a log scale (1, 2, 4, 8 … are evenly spaced that way)."""
        t = math.log(max(traffic, 0.5))
        return min(
            range(len(self.traffic_levels)),
            key=lambda i: abs(math.log(self.traffic_levels[i]) - t),
        )

    def target_index(self, target: float) -> int:
        t = math.log(max(target, 0.01))
        return min(range(len(self.targets)), key=lambda i: abs(math.log(self.targets[i]) - t))

    # --- files ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "kind": "knflow.autoscale.policy",
            "links": self.links,
            "traffic_levels": self.traffic_levels,
            "targets": self.targets,
            "actions": list(ACTIONS),
            "settles_on": {
                link: {str(k): v for k, v in row.items()} for link, row in self.table().items()
            },
            "q": self.q,
            "reward": self.reward,
            "training": self.training,
            "environment": self.environment,
        }

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            doc = json.loads(Path(path).read_text())
        except OSError as exc:
            raise PolicyError(f"cannot read policy {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise PolicyError(f"policy {path} is not JSON: {exc}") from None
        return cls.from_json(doc, str(path))

    @classmethod
    def from_json(cls, doc: Any, where: str = "policy") -> Policy:
        if not isinstance(doc, dict) or doc.get("kind") != "knflow.autoscale.policy":
            raise PolicyError(f"{where} is not a knflow autoscale policy (kind missing)")
        try:
            policy = cls(
                links=[str(x) for x in doc["links"]],
                traffic_levels=[int(x) for x in doc["traffic_levels"]],
                targets=[int(x) for x in doc["targets"]],
                q=doc["q"],
                training=dict(doc.get("training") or {}),
                environment=dict(doc.get("environment") or {}),
                reward=dict(doc.get("reward") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"{where}: missing or malformed field {exc}") from None
        shape = (len(policy.links), len(policy.traffic_levels), len(policy.targets), len(ACTIONS))
        if not all(shape) or min(policy.targets) < 1 or min(policy.traffic_levels) < 1:
            raise PolicyError(f"{where}: links, traffic levels and targets must be non-empty")
        if _shape(policy.q) != shape:
            raise PolicyError(f"{where}: q has shape {_shape(policy.q)}, expected {shape}")
        return policy


def _shape(q: Any) -> tuple[int, ...]:
    dims = []
    while isinstance(q, list):
        dims.append(len(q))
        q = q[0] if q else None
    return tuple(dims)

"""A tuning request (`dev.knflow.tuning.requested` data): validated once, stored with the study,
and read back the same way after a restart."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .phrases import parse_phrase
from .space import Param, SpaceError, parse_param, parse_space

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
BUILTIN_TRAINERS = ("digits",)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Budget:
    max_trials: int = 12
    parallel_trials: int = 3
    max_failed_trials: int = 3
    max_retries: int = 1  # a trial that dies is re-asked with the same parameters this often
    trial_timeout: float = 600.0  # seconds; a trial running longer is failed (and retried)


@dataclass(frozen=True)
class Objective:
    name: str = "val_accuracy"
    direction: str = "maximize"
    goal: float | None = None  # stop early once the best value reaches it

    def reached(self, value: float | None) -> bool:
        if self.goal is None or value is None:
            return False
        return value >= self.goal if self.direction == "maximize" else value <= self.goal


@dataclass(frozen=True)
class TuningRequest:
    id: str
    params: tuple[Param, ...]
    objective: Objective = field(default_factory=Objective)
    budget: Budget = field(default_factory=Budget)
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # passed to every trial unchanged
    trainer: dict[str, Any] = field(default_factory=lambda: {"builtin": "digits"})
    model_name: str = "digits"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["params"] = [p.to_dict() for p in self.params]
        return doc

    @classmethod
    def from_dict(cls, raw: Any, default_id: str = "") -> TuningRequest:
        """Validate request data; raises SpaceError naming the first problem."""
        if not isinstance(raw, dict):
            raise SpaceError("tuning request must be a JSON object")
        run_id = str(raw.get("id") or default_id).strip().lower()
        if not _ID.match(run_id):
            raise SpaceError(
                f"tuning id {run_id!r} must be lower-case letters, digits and '-' (max 63)"
            )
        space = raw.get("params", raw.get("space"))
        if space in (None, "", [], {}) and raw.get("request"):
            space = parse_phrase(str(raw["request"]))
        if isinstance(space, list) and space and all(isinstance(p, dict) for p in space):
            params = [parse_param(p, f"parameter {i + 1}") for i, p in enumerate(space)]
            parse_space(space)  # duplicate names
        else:
            params = parse_space(space)
        objective = _objective(raw.get("objective"))
        budget = _budget(raw.get("budget") or {})
        sampler = _choice(raw.get("sampler", "tpe"), SAMPLERS, "sampler")
        pruner = _choice(raw.get("pruner", "median"), PRUNERS, "pruner")
        seed = raw.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise SpaceError(f"seed must be an integer, got {seed!r}")
        fixed = raw.get("fixed") or {}
        if not isinstance(fixed, dict):
            raise SpaceError("fixed must be a mapping of parameter name to value")
        clash = sorted(set(fixed) & {p.name for p in params})
        if clash:
            raise SpaceError(f"{', '.join(clash)} is both fixed and tuned; keep one")
        return cls(
            id=run_id,
            params=tuple(params),
            objective=objective,
            budget=budget,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            fixed=dict(fixed),
            trainer=_trainer(raw.get("trainer")),
            model_name=str(raw.get("model_name") or "digits"),
        )


def _objective(raw: Any) -> Objective:
    if raw is None:
        return Objective()
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise SpaceError("objective must be a name or {name, direction, goal}")
    name = str(raw.get("name") or "val_accuracy")
    direction = _choice(raw.get("direction", "maximize"), DIRECTIONS, "objective direction")
    goal = raw.get("goal")
    if goal is not None:
        try:
            goal = float(goal)
        except (TypeError, ValueError):
            raise SpaceError(f"objective goal must be a number, got {goal!r}") from None
    return Objective(name, direction, goal)


def _budget(raw: Any) -> Budget:
    if not isinstance(raw, dict):
        raise SpaceError("budget must be a mapping (max_trials, parallel_trials, …)")
    known = Budget.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpaceError(
            f"unknown budget field(s) {', '.join(unknown)} (known: {', '.join(known)})"
        )
    values = {}
    for key, value in raw.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SpaceError(f"budget {key} must be a number, got {value!r}") from None
        values[key] = number if key == "trial_timeout" else int(number)
    budget = Budget(**values)
    if budget.max_trials < 1:
        raise SpaceError("budget max_trials must be at least 1")
    if budget.parallel_trials < 1:
        raise SpaceError("budget parallel_trials must be at least 1")
    if budget.max_failed_trials < 0 or budget.max_retries < 0:
        raise SpaceError("budget max_failed_trials and max_retries must not be negative")
    if budget.trial_timeout <= 0:
        raise SpaceError("budget trial_timeout must be positive (seconds)")
    return budget


def _trainer(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {"builtin": "digits"}
    if isinstance(raw, str):
        raw = {"builtin": raw} if raw in BUILTIN_TRAINERS else {"code_uri": raw}
    if not isinstance(raw, dict) or not (raw.get("builtin") or raw.get("code_uri")):
        raise SpaceError("trainer must be a built-in name (digits) or {code_uri: s3://…/train.py}")
    if raw.get("builtin") and raw["builtin"] not in BUILTIN_TRAINERS:
        raise SpaceError(
            f"unknown built-in trainer {raw['builtin']!r} (known: {', '.join(BUILTIN_TRAINERS)})"
        )
    return dict(raw)


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise SpaceError(f"unknown {what} {value!r} (use one of: {', '.join(allowed)})")
    return text

"""Search spaces: parameters typed float (linear or log), int and categorical, validated with
messages a person can act on, and turned into Optuna distributions.

A space is written as a mapping (`{"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": true}}`)
or a list of `{"name": ..., "type": ...}` entries (what the web page sends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna.distributions as od

TYPES = ("float", "int", "categorical")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class SpaceError(ValueError):
    """The search space (or the rest of a tuning request) is invalid; the message says why."""


@dataclass(frozen=True)
class Param:
    """One tunable parameter. `values` are explicit grid points (float/int) or the choices."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self) -> od.BaseDistribution:
        """The Optuna distribution the samplers draw from."""
        if self.type == "float":
            return od.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return od.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return od.CategoricalDistribution(list(self.choices))

    def grid(self, points: int = 3) -> list[Any]:
        """Values the grid sampler visits: the choices, every int, or `points` spread floats."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            values = list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
            return values if len(values) <= 16 else _spread(self.low, self.high, 5, self.log, int)
        return _spread(self.low, self.high, points, self.log, float)

    def describe(self) -> str:
        """Short human form for tables: `lr ∈ [0.0001, 0.1] log`."""
        if self.type == "categorical":
            return f"{self.name} ∈ {{{', '.join(map(str, self.choices))}}}"
        scale = " log" if self.log else ""
        return f"{self.name} ∈ [{self.low:g}, {self.high:g}]{scale} ({self.type})"

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"name": self.name, "type": self.type, "choices": list(self.choices)}
        doc = {"name": self.name, "type": self.type, "low": self.low, "high": self.high}
        if self.log:
            doc["log"] = True
        if self.step is not None:
            doc["step"] = self.step
        return doc


def parse_space(raw: Any) -> list[Param]:
    """Validate a search space and return its parameters (in the order written)."""
    if isinstance(raw, dict):
        entries = [
            {"name": name, **spec} if isinstance(spec, dict) else _shorthand(name, spec)
            for name, spec in raw.items()
        ]
    elif isinstance(raw, list):
        entries = raw
    elif raw is None or raw == "":
        entries = []
    else:
        raise SpaceError("search space must be a mapping of parameter name to its range, or a list")
    if not entries:
        raise SpaceError("search space is empty: give at least one parameter to tune")
    params, seen = [], set()
    for i, entry in enumerate(entries):
        param = parse_param(entry, where=f"parameter {i + 1}")
        if param.name in seen:
            raise SpaceError(f"parameter {param.name!r} appears twice in the search space")
        seen.add(param.name)
        params.append(param)
    return params


def parse_param(entry: Any, where: str = "parameter") -> Param:
    """One parameter entry → Param; every mistake names the parameter and what to write instead."""
    if not isinstance(entry, dict):
        raise SpaceError(f"{where} must be a mapping with name and type, got {entry!r}")
    name = str(entry.get("name") or "").strip()
    if not name:
        raise SpaceError(f"{where} has no name")
    if not set(name.lower()) <= _NAME_OK or name[0].isdigit():
        raise SpaceError(
            f"parameter name {name!r} must be letters, digits and _ (e.g. learning_rate)"
        )
    kind = str(entry.get("type") or ("categorical" if "choices" in entry else "")).strip().lower()
    if kind not in TYPES:
        shown = repr(entry.get("type")) if entry.get("type") else "missing"
        raise SpaceError(
            f"parameter {name!r}: unknown type {shown} (use one of: {', '.join(TYPES)})"
        )
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise SpaceError(f"parameter {name!r}: categorical needs a non-empty list of choices")
        for c in choices:
            if not (c is None or isinstance(c, bool | int | float | str)):
                raise SpaceError(f"parameter {name!r}: choice {c!r} must be a number or a string")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"parameter {name!r}: choices repeat a value")
        return Param(name, kind, choices=tuple(choices))
    low, high = _number(entry, "low", name), _number(entry, "high", name)
    log = bool(entry.get("log", False))
    step = entry.get("step")
    if step is not None:
        step = _number(entry, "step", name)
        if step <= 0:
            raise SpaceError(f"parameter {name!r}: step must be positive, got {step:g}")
    if low > high:
        raise SpaceError(
            f"parameter {name!r}: range is reversed (low {low:g} > high {high:g}); "
            f"write low={high:g}, high={low:g}"
        )
    if low == high:
        raise SpaceError(f"parameter {name!r}: low and high are both {low:g}; nothing to tune")
    if log and low <= 0:
        raise SpaceError(f"parameter {name!r}: a log scale needs low > 0, got {low:g}")
    if log and step is not None:
        raise SpaceError(f"parameter {name!r}: use either log or step, not both")
    if kind == "int":
        for label, value in (("low", low), ("high", high), ("step", step or 1)):
            if value != int(value):
                raise SpaceError(
                    f"parameter {name!r}: int needs whole numbers, {label} is {value:g}"
                )
        return Param(name, kind, int(low), int(high), log, int(step) if step else None)
    return Param(name, kind, float(low), float(high), log, float(step) if step else None)


def distributions(params: list[Param]) -> dict[str, od.BaseDistribution]:
    return {p.name: p.distribution() for p in params}


def _shorthand(name: str, spec: Any) -> dict[str, Any]:
    """`batch_size: [32, 64]` means categorical choices."""
    if isinstance(spec, list):
        return {"name": name, "type": "categorical", "choices": spec}
    raise SpaceError(
        f"parameter {name!r}: expected a mapping (type, low, high) or a list of choices"
    )


def _number(entry: dict, key: str, name: str) -> float:
    value = entry.get(key)
    if value is None or value == "":
        raise SpaceError(f"parameter {name!r}: {key} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"parameter {name!r}: {key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise SpaceError(f"parameter {name!r}: {key} must be a finite number, got {value!r}")
    return number


def _spread(low: float, high: float, points: int, log: bool, cast) -> list:
    if log:
        a, b = math.log10(low), math.log10(high)
        raw = [10 ** (a + (b - a) * i / (points - 1)) for i in range(points)]
    else:
        raw = [low + (high - low) * i / (points - 1) for i in range(points)]
    values = [cast(round(v)) if cast is int else float(f"{v:.6g}") for v in raw]
    return sorted(set(values))

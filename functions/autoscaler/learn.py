"""Measurements in, policy out: fit the environment, tabulate rewards, run Q-learning."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from .environment import Environment, Measurement, Reward
from .policy import Policy
from .qlearning import RewardTable, Schedule, train


def read_measurements(path: Path) -> list[Measurement]:
    """Rows of a `knflow autoscale collect` CSV; ValueError naming the first bad line."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"link", "traffic", "target", "throughput", "p95_ms", "replicas"} - set(
                reader.fieldnames or []
            )
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append(Measurement.from_row(row))
                except ValueError as exc:
                    raise ValueError(f"{path}:{line}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise ValueError(f"{path} holds no measurements")
    return rows


def write_measurements(path: Path, rows: Iterable[Measurement]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Measurement.FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_row())
    return path


def reward_table(env: Environment, reward: Reward) -> RewardTable:
    return [
        [
            [reward(*env.outcome(link, level, target)) for target in env.targets]
            for level in env.traffic_levels
        ]
        for link in env.links
    ]


def train_policy(
    rows: Sequence[Measurement],
    reward: Reward | None = None,
    schedule: Schedule | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[Policy, Environment]:
    """Fit the measurements, learn on the fitted environment; the policy records both."""
    reward, schedule = reward or Reward(), schedule or Schedule()
    env = Environment.fit(rows)
    table = reward_table(env, reward)
    policy = train(
        env.links, env.traffic_levels, env.targets, table, schedule, progress, reward.switch_cost
    )
    policy.environment = env.describe()
    policy.reward = asdict(reward)
    return policy, env


def best_static(env: Environment, reward: Reward, phases: Sequence[tuple[str, int]]) -> int:
    """The one target that earns most over `phases` ((link, traffic) pairs, equal length)."""
    return max(
        env.targets,
        key=lambda target: sum(reward(*env.outcome(link, level, target)) for link, level in phases),
    )

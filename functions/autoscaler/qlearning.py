"""Tabular Q-learning of a concurrency-target policy.

State: (link condition, traffic level, current target). Actions: lower, keep or raise the target
by one step of the measured target ladder. Reward: the environment's reward for the new target
at the current traffic. Traffic wanders between neighbouring levels and the link changes now and
then, so the agent learns what to do in every state, not only along one trajectory.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .policy import ACTIONS, Policy

# reward(link index, traffic index, target index) -> float
RewardTable = list[list[list[float]]]


@dataclass(frozen=True)
class Schedule:
    """Learning rate, discount and the ε-greedy exploration schedule."""

    episodes: int = 3000
    steps: int = 30
    alpha: float = 0.2
    gamma: float = 0.8
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay: str = "exponential"  # or "linear"
    traffic_change: float = 0.3  # chance per step that traffic moves to a neighbouring level
    link_change: float = 0.05  # chance per step that the link condition changes
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.episodes < 1 or self.steps < 1:
            problems.append("episodes and steps must be at least 1")
        if not 0 < self.alpha <= 1:
            problems.append("alpha must be in (0, 1]")
        if not 0 <= self.gamma < 1:
            problems.append("gamma must be in [0, 1)")
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1:
            problems.append("need 0 <= epsilon_end <= epsilon_start <= 1")
        if self.epsilon_decay not in ("exponential", "linear"):
            problems.append("epsilon_decay must be 'exponential' or 'linear'")
        if problems:
            raise ValueError("; ".join(problems))

    def epsilon(self, episode: int) -> float:
        frac = episode / max(1, self.episodes - 1)
        if self.epsilon_decay == "linear":
            return self.epsilon_start + (self.epsilon_end - self.epsilon_start) * frac
        if self.epsilon_start == 0:
            return 0.0
        ratio = max(self.epsilon_end, 1e-6) / self.epsilon_start
        return self.epsilon_start * ratio**frac


def train(
    links: list[str],
    traffic_levels: list[int],
    targets: list[int],
    reward: RewardTable,
    schedule: Schedule = Schedule(),
    progress: Callable[[int, float], None] | None = None,
    switch_cost: float = 0.0,
) -> Policy:
    """Learn Q over the reward table (less `switch_cost` whenever the target changes); the
    greedy policy over Q is returned."""
    rng = random.Random(schedule.seed)
    nl, nt, nk = len(links), len(traffic_levels), len(targets)
    q = [[[[0.0] * len(ACTIONS) for _ in range(nk)] for _ in range(nt)] for _ in range(nl)]
    returns: list[float] = []
    for episode in range(schedule.episodes):
        eps = schedule.epsilon(episode)
        link, level, k = rng.randrange(nl), rng.randrange(nt), rng.randrange(nk)
        total = 0.0
        for _ in range(schedule.steps):
            row = q[link][level][k]
            action = rng.randrange(len(ACTIONS)) if rng.random() < eps else _argmax(row)
            k2 = min(nk - 1, max(0, k + action - 1))
            r = reward[link][level][k2] - (switch_cost if k2 != k else 0.0)
            total += r
            level2 = level
            if rng.random() < schedule.traffic_change:
                level2 = min(nt - 1, max(0, level + rng.choice((-1, 1))))
            link2 = rng.randrange(nl) if rng.random() < schedule.link_change else link
            best_next = max(q[link2][level2][k2])
            row[action] += schedule.alpha * (r + schedule.gamma * best_next - row[action])
            link, level, k = link2, level2, k2
        returns.append(total / schedule.steps)
        if progress and (episode + 1) % max(1, schedule.episodes // 20) == 0:
            recent = returns[-max(1, schedule.episodes // 20) :]
            progress(episode + 1, sum(recent) / len(recent))
    return Policy(
        links=links,
        traffic_levels=traffic_levels,
        targets=targets,
        q=q,
        training={**asdict(schedule), "mean_reward_last_10pct": _tail_mean(returns)},
    )


def _argmax(row: list[float]) -> int:
    best = max(row)
    # ties go to "keep" (index 1) first: no change without a reason
    return 1 if math.isclose(row[1], best) else row.index(best)


def _tail_mean(values: list[float]) -> float:
    tail = values[-max(1, len(values) // 10) :]
    return round(sum(tail) / len(tail), 6)

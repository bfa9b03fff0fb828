"""Q-learning of concurrency targets: fitting, learning a known optimum, the policy file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from functions.autoscaler import (
    Environment,
    Measurement,
    Policy,
    PolicyError,
    Reward,
    Schedule,
    best_static,
    read_measurements,
    train,
    train_policy,
    write_measurements,
)
from functions.autoscaler.environment import fit, saturating


def test_curve_fit_recovers_an_exponential_saturation():
    xs = [1, 2, 4, 8, 16]
    ys = saturating(np.array(xs, dtype=float), 12.0, 3.0)
    curve = fit("saturating", xs, ys)
    assert curve.kind == "saturating"
    assert curve.params == pytest.approx([12.0, 3.0], rel=1e-3)
    grown = fit("exp", xs, [50 * math.exp(0.2 * x) for x in xs])
    assert grown.kind == "exp" and grown.params == pytest.approx([50.0, 0.2], rel=1e-3)


def test_two_points_fit_and_one_falls_back_to_interpolation():
    assert fit("exp", [1, 4], [100.0, 800.0])(4) == pytest.approx(800.0, rel=1e-3)
    curve = fit("exp", [2, 2], [10.0, 30.0])
    assert curve.kind == "interp" and curve(2) in (10.0, 30.0)


@pytest.mark.parametrize("best", [[0, 2, 4], [4, 1, 0], [2, 2, 2]])
def test_agent_finds_the_optimum_of_a_reward_table(best):
    """Rewards peak at a known target per traffic level; from every start the policy gets there."""
    targets = [1, 2, 4, 8, 16]
    table = [[[10.0 - 3 * abs(k - best[level]) for k in range(5)] for level in range(3)]]
    policy = train(["clear"], [1, 4, 16], targets, table, Schedule(episodes=1500, steps=20))
    for level, traffic in enumerate([1, 4, 16]):
        for start in targets:
            assert policy.decide("clear", traffic, start) == targets[best[level]]


def test_switch_cost_keeps_the_target_when_the_gain_is_small():
    """Two changes at 1.0 each do not pay for a 0.1 gain per step (gamma 0.9); 5.0 does."""
    targets = [1, 2, 4]
    for gain, expected in ((0.1, 1), (5.0, 4)):
        table = [[[0.0, 0.0, gain]]]
        schedule = Schedule(episodes=1500, steps=20, traffic_change=0, gamma=0.9)
        policy = train(["clear"], [1], targets, table, schedule, switch_cost=1.0)
        assert policy.decide("clear", 1, 1) == expected


def synthetic_sweep() -> list[Measurement]:
    """A system with known behaviour: each replica serves 5 req/s with 4 requests in flight;
    a clear link carries everything, a congested one 6 req/s; Knative-style replica counts."""
    rows = []
    for link, cap in (("clear", math.inf), ("congested", 6.0)):
        for traffic in (1, 2, 4, 8):
            for target in (1, 2, 4, 8):
                replicas = math.ceil(traffic / (target * 0.7))
                per_replica = 5.0 * (1 - math.exp(-traffic / replicas / 1.5))
                throughput = min(replicas * per_replica, cap)
                p95 = 1000 * traffic / throughput * 1.3
                rows.append(Measurement(link, traffic, target, throughput, p95, 2 * replicas))
    return rows


def test_policy_from_a_synthetic_sweep_picks_the_best_target_per_situation(tmp_path):
    rows = synthetic_sweep()
    path = write_measurements(tmp_path / "sweep.csv", rows)
    assert read_measurements(path) == rows
    reward = Reward(slo_ms=2000, latency_weight=1.0, replica_cost=0.3)
    # traffic and link held still within an episode: the optimum is then the best target of each
    # situation (with wandering traffic the agent rightly hedges towards neighbouring levels)
    schedule = Schedule(episodes=2000, steps=25, seed=1, traffic_change=0, link_change=0)
    policy, env = train_policy(rows, reward, schedule)
    for link in ("clear", "congested"):
        for traffic in (1, 2, 4, 8):
            scores = {t: reward(*env.outcome(link, traffic, t)) for t in env.targets}
            optimum = max(scores.values())
            chosen = policy.decide(link, traffic, 4)
            assert scores[chosen] >= optimum - 1e-6 * abs(optimum), (link, traffic, scores)
    # the known behaviour: congested links get fewer replicas (a higher target) at high traffic
    assert policy.decide("congested", 8, 4) > policy.decide("clear", 8, 4)
    assert best_static(env, reward, [("clear", 1), ("congested", 8)]) in env.targets


def test_policy_file_round_trip_and_bad_files(tmp_path):
    rows = synthetic_sweep()
    policy, _ = train_policy(rows, Reward(replica_cost=0.3), Schedule(episodes=300, steps=10))
    path = policy.save(tmp_path / "policy.json")
    again = Policy.load(path)
    assert again.table() == policy.table()
    doc = json.loads(path.read_text())
    assert doc["settles_on"]["congested"]["8"] == policy.decide("congested", 8, 4)
    assert doc["training"]["alpha"] == 0.2 and "environment" in doc

    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(PolicyError, match="not JSON"):
        Policy.load(tmp_path / "broken.json")
    doc["q"] = doc["q"][:1]
    (tmp_path / "short.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match="shape"):
        Policy.load(tmp_path / "short.json")
    with pytest.raises(PolicyError, match=r"does not exist|cannot read"):
        Policy.load(tmp_path / "missing.json")


def test_lookup_maps_observations_to_the_nearest_state():
    policy = Policy(["clear"], [1, 4, 16], [1, 10], q=[[[[0, 1, 0]] * 2] * 3])
    assert policy.level_index(0) == 0 and policy.level_index(3) == 1 and policy.level_index(50) == 2
    assert policy.target_index(3) == 0 and policy.target_index(4) == 1
    assert policy.decide("unknown-link", 4, 10) == 10  # unknown links use the first


@pytest.mark.parametrize(
    "kw",
    [{"alpha": 0}, {"gamma": 1.0}, {"epsilon_end": 0.5, "epsilon_start": 0.1}, {"episodes": 0}],
)
def test_schedule_rejects_nonsense(kw):
    with pytest.raises(ValueError):
        Schedule(**kw)


def test_epsilon_schedules_decay_to_their_end():
    for decay in ("linear", "exponential"):
        s = Schedule(episodes=100, epsilon_start=1.0, epsilon_end=0.1, epsilon_decay=decay)
        assert s.epsilon(0) == pytest.approx(1.0) and s.epsilon(99) == pytest.approx(0.1)
        assert s.epsilon(50) < s.epsilon(10)


def test_environment_needs_every_cell():
    rows = [Measurement("clear", 1, 1, 1, 1, 1), Measurement("clear", 1, 2, 1, 1, 1)]
    rows.append(Measurement("slow", 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="no measurements for link 'slow' at target 2"):
        Environment.fit(rows)

"""The KPA's decisions on synthetic metrics, traffic splits and patch validation (no processes)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from knative.serving.autoscaler import KPA, ScalingSpec, parse_seconds
from knative.serving.objects import Invalid, apply_patch, merge_patch, template_object
from knative.serving.revisions import Template
from knative.serving.traffic import Split, resolve, validate
from knative.spec import Service


def spec(**annotations) -> ScalingSpec:
    ann = {f"autoscaling.knative.dev/{k.replace('_', '-')}": str(v) for k, v in annotations.items()}
    return ScalingSpec.of(Service(name="s", function="echo", annotations=ann))


def feed(kpa: KPA, start: float, end: float, value: float, ready: int, step: float = 1.0):
    decision, t = None, start
    while t <= end:
        kpa.record(t, value)
        decision = kpa.decide(t, ready)
        t += step
    return decision


def test_knative_defaults_and_annotations():
    d = spec()
    assert (d.target, d.utilization, d.stable_window, d.panic_window) == (100, 0.7, 60, 6)
    assert (d.panic_threshold, d.max_scale_up_rate, d.max_scale_down_rate) == (2.0, 1000, 2)
    assert (d.min_scale, d.max_scale, d.initial_scale, d.retention) == (0, 0, 1, 0)
    s = spec(target=10, window="20s", panic_window_percentage=25, scale_down_delay="1m30s")
    assert (s.target, s.stable_window, s.panic_window, s.scale_down_delay) == (10, 20, 5, 90)
    # target defaults to containerConcurrency and is capped by it
    svc = Service(name="s", function="echo", container_concurrency=4)
    assert ScalingSpec.of(svc).target == 4
    svc.annotations["autoscaling.knative.dev/target"] = "50"
    assert ScalingSpec.of(svc).target == 4
    assert parse_seconds("1m30s") == 90 and parse_seconds("PT2S") == 2


def test_stable_mode_desired_is_concurrency_over_target_times_utilization():
    kpa = KPA(spec(target=10))  # target value 7
    decision = feed(kpa, 0, 59, 30.0, ready=5)
    assert decision.desired == 5 and not decision.panicking  # ceil(30 / 7)
    decision = feed(kpa, 60, 130, 70.0, ready=10)
    assert decision.desired == 10


def test_panic_mode_on_a_burst_and_no_scale_down_while_panicking():
    kpa = KPA(spec(target=10))
    feed(kpa, 0, 59, 7.0, ready=1)  # steady: one replica
    decision = feed(kpa, 60, 65, 70.0, ready=1)  # burst: panic window sees 70 → 10 pods ≥ 2x1
    assert decision.panicking and decision.desired == 10
    # the burst ends: panic holds the count for a stable window after the last over-threshold
    decision = feed(kpa, 66, 100, 0.0, ready=10)
    assert decision.panicking and decision.desired == 10
    decision = feed(kpa, 101, 200, 0.0, ready=10)
    assert not decision.panicking and decision.desired < 10


def test_scale_rates_bound_each_step():
    kpa = KPA(spec(target=1, max_scale_up_rate=2, max_scale_down_rate=2))
    assert feed(kpa, 0, 5, 100.0, ready=3).desired == 6  # at most 2 x ready
    kpa = KPA(spec(target=1))
    feed(kpa, 0, 59, 8.0, ready=8)
    assert feed(kpa, 60, 200, 0.0, ready=8).desired == 4  # at least ready / 2


def test_scale_down_delay_holds_the_highest_recommendation():
    kpa = KPA(
        spec(target=1, target_utilization_percentage=100, window="6s", scale_down_delay="10s")
    )
    feed(kpa, 0, 6, 4.0, ready=4)
    assert feed(kpa, 7, 14, 0.0, ready=4).desired == 4  # within 10 s of the last 4
    assert feed(kpa, 15, 30, 0.0, ready=4).desired < 4


def test_bounds_min_max_and_scale_to_zero_after_idle_window_and_retention():
    kpa = KPA(spec(min_scale=2, max_scale=5, window="10s", scale_to_zero_pod_retention_period="5s"))
    assert kpa.bounded(0, current=3, routed=True, idle_for=100) == 2
    assert kpa.bounded(9, current=3, routed=True, idle_for=0) == 5
    assert kpa.bounded(9, current=3, routed=False, idle_for=0) == 0  # no traffic, no tag
    kpa = KPA(spec(window="10s", scale_to_zero_pod_retention_period="5s"))
    assert kpa.bounded(0, current=1, routed=True, idle_for=12) == 1  # idle < window + retention
    assert kpa.bounded(0, current=1, routed=True, idle_for=15) == 0
    assert kpa.bounded(0, current=0, routed=True, idle_for=0) == 0  # never scales up by itself
    kpa = KPA(spec(activation_scale=3))
    assert kpa.bounded(1, current=1, routed=True, idle_for=0) == 3


def test_no_decision_without_observations():
    assert KPA(spec()).decide(0.0, 0) is None


def test_traffic_validation():
    revs = ["s-00001", "s-00002"]
    assert validate([{"revisionName": "s-00001", "percent": 100}], revs) == []
    assert validate(
        [{"revisionName": "s-00001", "percent": 50}, {"revisionName": "s-00002", "percent": 40}],
        revs,
    ) == ["traffic percentages must sum to 100, not 90"]
    [problem] = validate([{"revisionName": "s-00009", "percent": 100}], revs)
    assert "'s-00009' does not exist" in problem
    assert validate([{"percent": 100}], revs)[0].endswith("revisionName or latestRevision: true")
    assert (
        "used twice"
        in validate(
            [
                {"latestRevision": True, "percent": 100, "tag": "a"},
                {"revisionName": "s-00001", "percent": 0, "tag": "a"},
            ],
            revs,
        )[0]
    )


def test_split_draws_by_percent_and_routes_tags():
    targets = resolve(
        [
            {"revisionName": "a", "percent": 20},
            {"latestRevision": True, "percent": 80},
            {"revisionName": "old", "percent": 0, "tag": "v1"},
        ],
        "b",
    )
    split = Split(targets, random.Random(7).random)
    counts = Counter(split.pick() for _ in range(10000))
    assert set(counts) == {"a", "b"} and 0.18 < counts["a"] / 10000 < 0.22
    assert split.pick("v1") == "old" and split.pick("nope") is None
    assert split.routed() == {"a", "b", "old"}


def test_patch_validation_refuses_with_every_reason():
    t = Template(function="echo", container_concurrency=2)
    current = {
        "metadata": {"name": "s"},
        "spec": {
            "template": template_object(t),
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }
    template, _traffic = apply_patch(
        current, {"spec": {"template": {"spec": {"containerConcurrency": 5}}}}, ["s-00001"], "s"
    )
    assert template.container_concurrency == 5 and template.function == "echo"
    with pytest.raises(Invalid) as err:
        apply_patch(
            current,
            {
                "spec": {
                    "template": {
                        "metadata": {
                            "annotations": {
                                "autoscaling.knative.dev/min-scale": "3",
                                "autoscaling.knative.dev/max-scale": "2",
                                "autoscaling.knative.dev/windw": "10s",
                            }
                        }
                    },
                    "traffic": [{"revisionName": "s-00001", "percent": 60}],
                }
            },
            ["s-00001"],
            "s",
        )
    causes = "\n".join(err.value.causes)
    assert "unknown annotation 'autoscaling.knative.dev/windw'" in causes
    assert "min-scale 3 is greater than max-scale 2" in causes
    assert "sum to 100, not 60" in causes
    with pytest.raises(Invalid, match=r"autoscaling\.knative\.dev/target: 'abc' is not a number"):
        apply_patch(
            current,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"autoscaling.knative.dev/target": "abc"}}
                    }
                }
            },
            [],
            "s",
        )
    with pytest.raises(Invalid, match="window must be between 6s and 1h"):
        apply_patch(
            current,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"autoscaling.knative.dev/window": "2s"}}
                    }
                }
            },
            [],
            "s",
        )


def test_merge_patch_is_rfc7386():
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None, "e": 3}, "d": [2]}) == {
        "a": {"c": 2, "e": 3},
        "d": [2],
    }

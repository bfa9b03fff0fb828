"""The split halves and the autoscaler on the embedded platform: real routers, replicas, KPA.

A reaches B through B's router (found in instance.json), so B scales from zero on A's first
request; the autoscaler, sent a tick while A is busy, sets a new target on both halves through
the control API, which rolls each to a new revision.
"""

from __future__ import annotations

import threading

import pytest
import requests
import torch
from servingkit.support import spec_text, wait_for

from eventing import new_event
from eventing.http import event_from_http, to_http
from functions.autoscaler import Policy
from functions.split import encode
from knative.embedded import Platform
from knative.spec import parse_spec

pytestmark = pytest.mark.slow
TARGETS = [1, 2, 4, 8]


def raise_to_top_policy() -> Policy:
    """A policy whose known answer is 'go to 8' from anywhere (raise until the top)."""
    raise_row, keep_row = [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]
    q = [[[raise_row, raise_row, raise_row, keep_row] for _ in range(3)]]
    return Policy(["clear"], [1, 2, 4], TARGETS, q)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("split-live")
    policy = raise_to_top_policy().save(root / "policy.json")
    split = "{variant: balanced, image_size: 32, threads: 1"
    services = f"""\
    - name: resnet-b
      function: split
      config: {split}, half: b}}
      containerConcurrency: 2
      annotations:
        autoscaling.knative.dev/target: "4"
        autoscaling.knative.dev/min-scale: "0"
        autoscaling.knative.dev/initial-scale: "0"
    - name: resnet-a
      function: split
      config: {split}, half: a, next: resnet-b}}
      containerConcurrency: 2
      annotations:
        autoscaling.knative.dev/target: "4"
        autoscaling.knative.dev/min-scale: "0"
        autoscaling.knative.dev/initial-scale: "0"
    - name: autoscaler
      function: autoscaler
      config: {{policy: "{policy}", samples: 5}}
      containerConcurrency: 1
    """
    pipeline = parse_spec(spec_text(services), "split-live.yaml")
    with Platform(pipeline, root / "data", tick=0.25, broker=False) as p:
        yield p


def _service(p: Platform, name: str) -> dict:
    url = f"{p.control_url}/apis/serving.knative.dev/v1/namespaces/test/services/{name}"
    return requests.get(url, timeout=10).json()


def _stats(p: Platform, name: str) -> dict:
    return requests.get(f"{p.control_url}/knflow/v1/services/{name}/stats", timeout=10).json()


def _target(p: Platform, name: str) -> str:
    meta = _service(p, name)["spec"]["template"]["metadata"]
    return meta["annotations"]["autoscaling.knative.dev/target"]


def test_a_reaches_b_through_its_router_and_b_scales_from_zero(platform):
    assert _stats(platform, "resnet-b")["replicas"] == 0
    headers, body = encode(torch.randn(1, 3, 32, 32))
    reply = requests.post(
        platform.service_url("resnet-a") + "/predict", data=body, headers=headers, timeout=120
    )
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["predictions"][0]) == 5 and reply.json()["untrained"] is True
    assert _stats(platform, "resnet-b")["replicas"] >= 1


def test_autoscaler_tick_sets_the_policy_target_on_both_halves(platform):
    assert _target(platform, "resnet-a") == "4"
    a_url = platform.service_url("resnet-a")
    headers, body = encode(torch.randn(1, 3, 32, 32))
    stop = threading.Event()

    def client():
        while not stop.is_set():
            requests.post(a_url + "/predict", data=body, headers=headers, timeout=120)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for c in clients:
        c.start()
    try:
        wait_for(lambda: _stats(platform, "resnet-a")["in_flight"] > 0, 60, what="load on A")
        tick = new_event(
            "dev.knflow.autoscale.tick",
            "/knflow/sources/autoscale-tick",
            {"services": ["resnet-a", "resnet-b"]},
        )
        h, b = to_http(tick)
        reply = requests.post(platform.service_url("autoscaler"), data=b, headers=h, timeout=120)
    finally:
        stop.set()
        for c in clients:
            c.join(120)
    assert reply.status_code == 200, reply.text
    decision = event_from_http(reply.headers, reply.content).get_data()
    assert decision["traffic"] > 0
    assert decision["changed"] == {
        "resnet-a": {"from": 4, "to": 8},
        "resnet-b": {"from": 4, "to": 8},
    }
    assert _target(platform, "resnet-a") == "8" and _target(platform, "resnet-b") == "8"
    # a template change is a new revision, as in Knative
    status = _service(platform, "resnet-a")["status"]
    assert status["latestCreatedRevisionName"] == "resnet-a-00002", status
    # min-scale stays 0: the halves still scale to zero
    annotations = _service(platform, "resnet-b")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"


def test_idle_tick_changes_nothing_and_bad_ticks_are_refused(platform):
    wait_for(lambda: _stats(platform, "resnet-a")["in_flight"] == 0, 60, what="idle")
    before = _target(platform, "resnet-a")
    h, b = to_http(new_event("dev.knflow.autoscale.tick", "/t", {"services": ["resnet-a"]}))
    reply = requests.post(platform.service_url("autoscaler"), data=b, headers=h, timeout=60)
    assert reply.status_code == 200
    assert event_from_http(reply.headers, reply.content).get_data()["changed"] == {}
    assert _target(platform, "resnet-a") == before
    h, b = to_http(new_event("dev.knflow.autoscale.tick", "/t", {"services": "resnet-a"}))
    reply = requests.post(platform.service_url("autoscaler"), data=b, headers=h, timeout=60)
    assert reply.status_code == 422 and "list of service names" in reply.text

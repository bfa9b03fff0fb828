"""Embedded serving end to end: real replica processes behind the real router and autoscaler."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
from servingkit.support import get, probe_bundle, spec_text, wait_for

from knative.embedded import Platform
from knative.spec import parse_spec

pytestmark = pytest.mark.slow
FAST = """\
      autoscaling.knative.dev/window: "6s"
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    probe = probe_bundle(root / "bundle")
    broken = probe_bundle(root / "broken")
    (root / "broken" / "bundle.json").write_text(json.dumps({"function": "no_such_function"}))
    services = f"""\
    - name: cold
      function: echo
      annotations: {{autoscaling.knative.dev/initial-scale: "0"}}
    - name: limited
      function: echo
      image: {probe}
      containerConcurrency: 1
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
        autoscaling.knative.dev/max-scale: "1"
    - name: pair
      function: echo
      image: {probe}
      containerConcurrency: 4
      annotations:
        autoscaling.knative.dev/min-scale: "2"
        autoscaling.knative.dev/initial-scale: "2"
    - name: split
      function: echo
      image: {probe}
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    - name: scaler
      function: echo
      image: {probe}
      annotations:
        autoscaling.knative.dev/target: "1"
        autoscaling.knative.dev/target-utilization-percentage: "100"
        autoscaling.knative.dev/initial-scale: "0"
        autoscaling.knative.dev/max-scale: "4"
        autoscaling.knative.dev/window: "6s"
    - name: failing
      function: echo
      image: {probe}
      config: {{start_error: "weights file is missing"}}
    - name: unbootable
      function: echo
      image: {broken}
    """
    pipeline = parse_spec(spec_text(services), "test.yaml")
    with Platform(pipeline, root / "data", tick=0.25, broker=False) as p:
        yield p


def stats(p: Platform, name: str) -> dict:
    return json.loads(get(f"{p.control_url}/knflow/v1/services/{name}/stats")[2])


def service(p: Platform, name: str) -> dict:
    url = f"{p.control_url}/apis/serving.knative.dev/v1/namespaces/test/services/{name}"
    return json.loads(get(url)[2])


def test_scale_from_zero_holds_the_request_then_answers(platform):
    assert stats(platform, "cold")["replicas"] == 0
    t0 = time.monotonic()
    status, headers, _ = get(platform.service_url("cold") + "/events")
    assert status == 200 and headers["Knflow-Revision"] == "cold-00001"
    assert time.monotonic() - t0 > 0.1  # it waited for a replica to boot
    assert stats(platform, "cold")["ready_replicas"] == 1


def test_container_concurrency_is_enforced(platform):
    url = platform.service_url("limited") + "/work?sleep=0.4"
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: get(url), range(3)))
    elapsed = time.monotonic() - t0
    assert [r[0] for r in results] == [200, 200, 200]
    assert len({json.loads(r[2])["pid"] for r in results}) == 1  # max-scale 1
    assert elapsed >= 1.2  # one at a time on the single replica: 3 x 0.4 s


def test_large_bodies_pass_through_the_router(platform):
    import urllib.request

    body = os.urandom(5 * 1024 * 1024)  # e.g. an intermediate tensor between split halves
    request = urllib.request.Request(
        platform.service_url("limited") + "/work", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert json.loads(resp.read())["bytes"] == len(body)


def test_traffic_split_and_tags(platform):
    first = service(platform, "split")["status"]["latestReadyRevisionName"]
    platform.call(
        platform.serving.patch,
        "split",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "image": service(platform, "split")["spec"]["template"]["spec"][
                                    "containers"
                                ][0]["image"],
                                "env": [{"name": "V", "value": "2"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    second = wait_for(
        lambda: (
            (s := service(platform, "split")["status"])["latestReadyRevisionName"] != first
            and s["latestReadyRevisionName"]
        ),
        60,
        0.1,
        "the second revision to be ready",
    )
    platform.call(
        platform.serving.patch,
        "split",
        {
            "spec": {
                "traffic": [
                    {"revisionName": first, "percent": 30, "tag": "old"},
                    {"latestRevision": True, "percent": 70},
                ]
            }
        },
    )
    seen = Counter(
        get(platform.service_url("split") + "/work")[1]["Knflow-Revision"] for _ in range(300)
    )
    assert set(seen) == {first, second}
    assert 0.2 < seen[first] / 300 < 0.4
    tagged = {
        get(platform.service_url("split") + "/work", headers={"Knative-Serving-Tag": "old"})[1][
            "Knflow-Revision"
        ]
        for _ in range(10)
    }
    assert tagged == {first}
    status, _, body = get(
        platform.service_url("split") + "/work", headers={"Knative-Serving-Tag": "nope"}
    )
    assert status == 404 and b"no traffic target tagged 'nope'" in body
    traffic = wait_for(
        lambda: (t := service(platform, "split")["status"]["traffic"])[0].get("url") and t,
        10,
        0.1,
        "the tag's URL",
    )
    tag_url = traffic[0].pop("url")
    assert traffic == [
        {"revisionName": first, "latestRevision": False, "percent": 30, "tag": "old"},
        {"revisionName": second, "latestRevision": True, "percent": 70},
    ]
    assert tag_url != platform.service_url("split")
    assert {get(tag_url + "/work")[1]["Knflow-Revision"] for _ in range(10)} == {first}


def test_revision_switch_drains_requests_in_flight(platform):
    url = platform.service_url("split")
    platform.call(platform.serving.patch, "split", {"spec": {"traffic": None}})
    old = service(platform, "split")["status"]["latestReadyRevisionName"]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(get, url + "/work?sleep=1.5") for _ in range(3)]
        time.sleep(0.5)
        image = service(platform, "split")["spec"]["template"]["spec"]["containers"][0]["image"]
        platform.call(
            platform.serving.patch,
            "split",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"image": image, "env": [{"name": "V", "value": "3"}]}]
                        }
                    }
                }
            },
        )
        wait_for(
            lambda: service(platform, "split")["status"]["latestReadyRevisionName"] != old,
            60,
            0.1,
            "the new revision",
        )
        results = [c.result(30) for c in calls]
    assert [r[0] for r in results] == [200] * 3
    assert {json.loads(r[2])["revision"] for r in results} == {old}
    wait_for(
        lambda: stats(platform, "split")["revisions"][old]["replicas"] == 0,
        10,
        0.1,
        "the unrouted revision to scale to zero",
    )


def test_worker_crash_mid_request_is_retried_on_another_replica(platform, tmp_path):
    url = platform.service_url("pair")
    wait_for(lambda: stats(platform, "pair")["ready_replicas"] == 2, 60, 0.1, "2 replicas")
    status, _, body = get(url + f"/crash?once={tmp_path / 'crashed'}")
    assert status == 200 and json.loads(body)["crashed"] is False  # answered by the retry
    t0 = time.monotonic()
    status, _, body = get(url + "/crash")  # crashes wherever it goes
    assert status == 502 and time.monotonic() - t0 < 10
    assert b"failed during the request" in body and b"retry on another replica" in body


def test_killed_replica_is_restarted_and_its_request_answered(platform):
    url = platform.service_url("pair")
    wait_for(lambda: stats(platform, "pair")["ready_replicas"] == 2, 60, 0.1, "2 replicas")
    result = {}
    caller = threading.Thread(target=lambda: result.update(r=get(url + "/work?sleep=1.5")))
    caller.start()

    def busy_pid():
        rs = platform.serving.service("pair").revisions["pair-00001"].replicas
        return next((r.pid for r in rs.replicas if r.in_flight), None)

    pid = wait_for(lambda: platform.call(busy_pid), 10, 0.02, "the request in flight")
    os.killpg(pid, signal.SIGKILL)  # the whole replica: gunicorn master and worker
    caller.join(30)
    assert result["r"][0] == 200  # retried on the other replica
    wait_for(lambda: stats(platform, "pair")["ready_replicas"] == 2, 60, 0.1, "a restart")
    assert stats(platform, "pair")["revisions"]["pair-00001"]["restarts"] >= 1


def test_replica_failing_readiness_gets_no_traffic(platform):
    url = platform.service_url("pair")
    wait_for(lambda: stats(platform, "pair")["ready_replicas"] == 2, 60, 0.1, "2 replicas")
    sick = json.loads(get(url + "/unready")[2])["pid"]
    wait_for(lambda: stats(platform, "pair")["ready_replicas"] == 1, 10, 0.1, "probe failure")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pids = {
            json.loads(r[2])["pid"]
            for r in pool.map(lambda _: get(url + "/work?sleep=0.05"), range(20))
        }
    assert sick not in pids and len(pids) == 1


def test_replica_failing_liveness_is_replaced(platform):
    url = platform.service_url("pair")
    wait_for(lambda: stats(platform, "pair")["ready_replicas"] >= 1, 60, 0.1, "a replica")
    before = stats(platform, "pair")["revisions"]["pair-00001"]["restarts"]
    master = _master_of(json.loads(get(url + "/wedge")[2])["pid"])

    def replaced():
        rs = platform.serving.service("pair").revisions["pair-00001"].replicas
        return master not in {r.pid for r in rs.replicas} and len(rs.active) == 2

    wait_for(lambda: platform.call(replaced), 60, 0.2, "the wedged replica to be replaced")
    assert stats(platform, "pair")["revisions"]["pair-00001"]["restarts"] == before + 1
    assert get(url + "/work")[0] == 200


def _master_of(worker_pid: int) -> int | None:
    import psutil

    try:
        return psutil.Process(worker_pid).ppid()
    except psutil.NoSuchProcess:
        return None


def test_revision_that_cannot_start_is_not_ready_with_the_reason(platform):
    def failed(name):
        cond = service(platform, name)["status"]["conditions"][0]
        return cond if cond["status"] == "False" else None

    cond = wait_for(lambda: failed("failing"), 60, 0.2, "Ready=False")
    assert cond["type"] == "Ready" and "weights file is missing" in cond["message"]
    status, _, body = get(platform.service_url("failing") + "/work")
    assert status == 503 and b"weights file is missing" in body
    cond = wait_for(lambda: failed("unbootable"), 60, 0.2, "Ready=False")
    assert "exited with code 3" in cond["message"]  # gunicorn: worker failed to boot
    assert "unknown function 'no_such_function'" in cond["message"]


def test_scale_up_under_load_then_scale_to_zero(platform):
    url = platform.service_url("scaler") + "/work?sleep=0.25"
    stop, codes, peak = threading.Event(), Counter(), [0]

    def load():
        while not stop.is_set():
            codes[get(url)[0]] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and peak[0] < 3:
            peak[0] = max(peak[0], stats(platform, "scaler")["ready_replicas"])
            time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert peak[0] >= 3  # 4 concurrent callers, target 1 per replica
    assert set(codes) == {200}  # nothing dropped while scaling
    wait_for(lambda: stats(platform, "scaler")["replicas"] == 0, 30, 0.25, "scale to zero")


def test_stop_with_a_request_longer_than_the_drain_leaves_no_process(tmp_path):
    import psutil

    image = probe_bundle(tmp_path / "bundle")
    pipeline = parse_spec(
        spec_text(f"""\
    - name: long
      function: echo
      image: {image}
    """),
        "test.yaml",
    )
    platform = Platform(pipeline, tmp_path / "data", tick=0.25, broker=False).start()
    url = platform.service_url("long")
    wait_for(lambda: get(url + "/work")[0] == 200, 60, 0.2, "a ready replica")
    group = platform.call(
        lambda: platform.serving.service("long").revisions["long-00001"].replicas.ready[0].pid
    )
    result = {}
    caller = threading.Thread(target=lambda: result.update(r=get(url + "/work?sleep=60")))
    caller.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    platform.stop(drain=1.0)
    assert time.monotonic() - t0 < 15
    caller.join(10)
    assert not caller.is_alive()  # answered or cut off, never left hanging
    if "r" in result:
        assert result["r"][0] in (502, 503)
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "status"])
        if _pgid(p.pid) == group and p.info["status"] != psutil.STATUS_ZOMBIE  # reaped by init
    ]
    assert leftovers == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None

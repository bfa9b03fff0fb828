"""`knflow up` as a real subprocess, and the kn-style commands against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import knflow_env, run_cli
from servingkit.support import get, probe_bundle, spec_text, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def up(tmp_path, data_dir):
    """A running `knflow up` with `echo` (scale-from-zero) and `slow` (the probe function)."""
    image = probe_bundle(tmp_path / "bundle")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        spec_text(f"""\
        - name: echo
          function: echo
          annotations: {{autoscaling.knative.dev/initial-scale: "0"}}
        - name: slow
          function: echo
          image: {image}
        """)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "knative", "up", "--spec", str(spec), "--data", str(data_dir)],
        env=knflow_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "knflow is up" in line:
            break
    yield proc, "".join(lines), data_dir
    if proc.poll() is None:  # stop it as a user would, so it stops its broker and replicas
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def cli_json(data_dir, *args):
    out = run_cli(*args, "-o", "json", data=data_dir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_up_prints_urls_and_the_cli_manages_services(up):
    proc, banner, data = up
    urls = dict(re.findall(r"^(echo|slow)\s+(http://127\.0\.0\.1:\d+)", banner, re.M))
    assert set(urls) == {"echo", "slow"}
    assert "Control API: http://127.0.0.1:" in banner
    instance = json.loads((data / ".knflow" / "instance.json").read_text())
    assert instance["services"] == urls and instance["pid"] == proc.pid
    subscribers = json.loads((data / ".knflow" / "broker" / "subscribers.json").read_text())
    assert subscribers == urls
    assert get(urls["echo"] + "/events")[0] == 200  # scales from zero

    listing = cli_json(data, "service", "list")
    assert {s["metadata"]["name"]: s["status"]["url"] for s in listing["items"]} == urls
    text = run_cli("service", "list", data=data).stdout
    assert text.splitlines()[0].split() == [
        "NAME",
        "URL",
        "LATEST",
        "AGE",
        "CONDITIONS",
        "READY",
        "REASON",
    ]

    out = run_cli(
        "service",
        "update",
        "echo",
        "--env",
        "GREETING=hi",
        "--scale-target",
        "5",
        "--concurrency-limit",
        "8",
        data=data,
    )
    assert out.returncode == 0, out.stderr
    assert "Service 'echo' updated to latest revision 'echo-00002'" in out.stdout
    assert "Ready to serve." in out.stdout
    svc = cli_json(data, "service", "describe", "echo")
    assert svc["status"]["latestReadyRevisionName"] == "echo-00002"
    assert svc["spec"]["template"]["spec"]["containerConcurrency"] == 8
    assert (
        svc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/target"] == "5"
    )
    revisions = cli_json(data, "revision", "list", "-s", "echo")["items"]
    assert sorted(r["metadata"]["name"] for r in revisions) == ["echo-00001", "echo-00002"]

    out = run_cli(
        "service",
        "update",
        "echo",
        "--traffic",
        "echo-00001=20,@latest=80",
        "--tag",
        "echo-00001=old",
        "-o",
        "json",
        data=data,
    )
    assert out.returncode == 0, out.stderr
    traffic = json.loads(out.stdout)["status"]["traffic"]  # progress went to stderr
    described = cli_json(data, "service", "describe", "echo")["status"]["traffic"]
    assert described[0]["url"].startswith("http://127.0.0.1:")  # the tag's own URL
    assert [{k: v for k, v in t.items() if k != "url"} for t in described] == traffic
    assert {(t["revisionName"], t["percent"], t.get("tag")) for t in traffic} == {
        ("echo-00001", 20, "old"),
        ("echo-00002", 80, None),
    }
    table = run_cli("revision", "list", data=data).stdout
    assert re.search(r"echo-00001\s+echo\s+20%\s+old", table)


def test_bad_update_is_refused_and_changes_nothing(up):
    _, _, data = up
    before = cli_json(data, "service", "describe", "echo")
    cases = [
        (["--traffic", "echo-00001=50,@latest=40"], 1, "percentages must sum to 100, not 90"),
        (["--traffic", "echo-00007=100"], 1, "revision 'echo-00007' does not exist"),
        (["--traffic", "echo-00001=half"], 2, "'half' is not a whole percentage"),
        (["--scale-min", "3", "--scale-max", "2"], 1, "min-scale 3 is greater than max-scale 2"),
        (["--env", "NOEQUALS"], 2, "expected KEY=VALUE"),
        (["--image", "bundle:///nowhere"], 1, "cannot read bundle.json"),
    ]
    for flags, code, message in cases:
        out = run_cli("service", "update", "echo", *flags, data=data)
        assert (out.returncode, out.stdout) == (code, ""), (flags, out.stderr)
        assert out.stderr.startswith("Error: ") and message in out.stderr, out.stderr
    out = run_cli("service", "update", "nope", "--env", "A=1", data=data)
    assert out.returncode == 1 and 'services.serving.knative.dev "nope" not found' in out.stderr
    # the control API itself answers Kubernetes Status objects
    from knative.instance import Instance

    api = Instance.load(data)
    path = "/apis/serving.knative.dev/v1/namespaces/test/services/echo"
    status, body = api.api(
        "PATCH",
        path,
        {"spec": {"traffic": [{"revisionName": "echo-00001", "percent": 99}]}},
        "application/merge-patch+json",
    )
    assert status == 422 and (body["kind"], body["reason"], body["code"]) == (
        "Status",
        "Invalid",
        422,
    )
    assert body["details"]["causes"] == [{"message": "traffic percentages must sum to 100, not 99"}]
    assert api.api("PATCH", path, {"spec": {}}, "text/plain")[0] == 415
    assert api.api("GET", path.replace("/test/", "/other/"))[0] == 404
    after = cli_json(data, "service", "describe", "echo")
    assert after == before
    assert len(cli_json(data, "revision", "list", "-s", "echo")["items"]) == 1


def test_sigint_drains_in_flight_requests_and_stops_everything(up):
    proc, banner, data = up
    url = re.search(r"^slow\s+(\S+)", banner, re.M).group(1)
    wait_for(lambda: get(url + "/work")[0] == 200, 60, 0.2, "slow to answer")
    stats = json.loads(run_cli("service", "describe", "slow", "-o", "json", data=data).stdout)
    assert stats["status"]["conditions"][0]["status"] == "True"
    replica_pids = _children(proc.pid)
    assert replica_pids
    result = {}
    caller = threading.Thread(target=lambda: result.update(r=get(url + "/work?sleep=1.5")))
    caller.start()
    time.sleep(0.4)
    proc.send_signal(signal.SIGINT)
    caller.join(30)
    assert result["r"][0] == 200  # answered, not cut off
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Stopping: draining in-flight requests" in out and "Stopped." in out
    wait_for(lambda: not any(_alive(p) for p in replica_pids), 15, 0.1, "replicas to exit")
    assert not (data / ".knflow" / "instance.json").exists()
    out = run_cli("service", "list", data=data)
    assert out.returncode == 1 and "no knflow instance is running" in out.stderr


def test_stale_instance_file_is_reported(data_dir):
    (data_dir / ".knflow").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data_dir / ".knflow" / "instance.json").write_text(
        json.dumps(
            {
                "pid": dead.pid,
                "namespace": "x",
                "broker_url": "",
                "control_url": "http://127.0.0.1:9",
                "store_url": "",
            }
        )
    )
    out = run_cli("service", "list", data=data_dir)
    assert out.returncode == 1 and "is stale (process" in out.stderr


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

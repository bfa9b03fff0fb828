"""`knflow deploy` / `knflow status` against a stand-in for the Kubernetes API server.

No API server can run here, so tests/k8s_standin.py stands in for it on loopback: it speaks the
paths, content types and Status bodies the real one does for the calls knflow makes. The client
side is the real `kubernetes` package, with a real kubeconfig, over real HTTP.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import yaml

from knative.cli import main
from knative.render import render
from tests.conftest import REPO, knflow_env
from tests.k8s_standin import ApiServerStandIn, kubeconfig

pytest_plugins = ("tests.cluster_support",)  # fixtures: pipeline, spec_functions


@pytest.fixture
def apiserver(tmp_path, monkeypatch):
    standin = ApiServerStandIn()
    url = standin.start()
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(url))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield standin
    standin.stop()


def outcomes(out: str) -> dict[str, str]:
    """`service.serving.knative.dev/transcribe created` lines -> {resource/name: outcome}."""
    lines = [line.split(" ", 1) for line in out.splitlines() if "/" in line.split(" ")[0]]
    return {name: outcome for name, outcome in lines}


def test_deploy_applies_everything_server_side_and_is_idempotent(apiserver, pipeline, capsys):
    expected = render(pipeline, None, "reg.example/ml")
    assert main(["deploy", "--image-registry", "reg.example/ml"]) == 0
    first = outcomes(capsys.readouterr().out)
    assert len(first) == len(expected) and set(first.values()) == {"created"}
    assert first["service.serving.knative.dev/transcribe"] == "created"
    assert first["trigger.eventing.knative.dev/transcribe-uploads"] == "created"

    patches = apiserver.patches()
    assert len(patches) == len(expected)
    for request, doc in zip(patches, expected, strict=True):
        assert request.headers["Content-Type"] == "application/apply-patch+yaml"
        assert request.query == {"fieldManager": "knflow", "force": "false"}
        assert request.body == doc  # exactly what `knflow render` prints
    assert patches[0].path == "/api/v1/namespaces/knflow"
    assert "/apis/serving.knative.dev/v1/namespaces/knflow/services/transcribe" in {
        r.path for r in patches
    }
    stored = apiserver.objects[("serving.knative.dev/v1", "services", "knflow", "transcribe")]
    assert stored["metadata"]["managedFields"][0]["manager"] == "knflow"
    versions = {k: o["metadata"]["resourceVersion"] for k, o in apiserver.objects.items()}

    # Second deploy of the same spec: nothing changes on the server, and the user is told so.
    assert main(["deploy", "--image-registry", "reg.example/ml"]) == 0
    out = capsys.readouterr().out
    assert set(outcomes(out).values()) == {"unchanged"}
    assert f"0 created, 0 configured, {len(expected)} unchanged" in out
    assert versions == {k: o["metadata"]["resourceVersion"] for k, o in apiserver.objects.items()}

    # A changed registry changes the Services' image, and only what depends on it.
    assert main(["deploy", "--image-registry", "ghcr.io/acme"]) == 0
    third = outcomes(capsys.readouterr().out)
    assert third["service.serving.knative.dev/predict"] == "configured"
    assert third["broker.eventing.knative.dev/default"] == "unchanged"


def test_dry_run_persists_nothing(apiserver, pipeline, capsys):
    assert main(["deploy", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "service.serving.knative.dev/compose created (server dry run)" in out
    assert {r.query.get("dryRun") for r in apiserver.patches()} == {"All"}
    assert apiserver.objects == {}


def test_status_shows_ready_conditions(apiserver, pipeline, capsys):
    assert main(["status"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["KIND", "NAME", "URL", "CONDITIONS", "READY", "REASON"]
    assert any(r.split()[:2] == ["Service", "transcribe"] and "Missing" in r for r in rows)

    assert main(["deploy"]) == 0
    capsys.readouterr()
    key = ("serving.knative.dev/v1", "services", "knflow", "compose")
    apiserver.objects[key]["status"]["conditions"][0].update(
        status="False", reason="RevisionFailed", message="0/3 nodes have nvidia.com/gpu"
    )
    assert main(["status"]) == 0
    rows = {tuple(r.split()[:2]): r.split() for r in capsys.readouterr().out.splitlines()}
    assert rows[("Service", "transcribe")][2:] == [
        "http://transcribe.knflow.example.com",
        "3",
        "OK",
        "/",
        "3",
        "True",
    ]
    assert rows[("Service", "compose")][-2:] == ["False", "RevisionFailed"]
    assert rows[("ConfigMap", "knflow-spec")][-1] == "-"

    assert main(["status", "-o", "json"]) == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    assert items["default"]["url"].endswith("/knflow/default")  # the Broker's address
    assert items["compose"]["message"] == "0/3 nodes have nvidia.com/gpu"


def test_missing_knative_is_named_and_the_rest_still_applies(apiserver, pipeline, capsys):
    missing = {"eventing.knative.dev/v1", "sources.knative.dev/v1"}
    apiserver.served -= missing
    docs = render(pipeline, pipeline.namespace, "")
    refused = sum(d["apiVersion"] in missing for d in docs)
    assert main(["deploy"]) == 1
    out, err = capsys.readouterr()
    assert "service.serving.knative.dev/transcribe created" in out
    assert (
        "broker.eventing.knative.dev/default failed: the cluster does not serve "
        "eventing.knative.dev Broker (is Knative Serving/Eventing installed?)" in out
    )
    last = err.strip().splitlines()[-1]
    assert last == f"Error: {refused} of {len(docs)} resources were not applied"


def test_conflicting_manager_is_reported_never_forced(apiserver, pipeline, capsys):
    assert main(["deploy"]) == 0
    capsys.readouterr()
    key = ("serving.knative.dev/v1", "services", "knflow", "resnet-a")
    field = ".spec.template.metadata.annotations.autoscaling.knative.dev/target"
    apiserver.conflicts[key] = field  # e.g. after `kn service update resnet-a --scale-target 8`
    assert main(["deploy"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("service.serving.knative.dev/resnet-a"))
    assert line.startswith(
        "service.serving.knative.dev/resnet-a failed: Apply failed with 1 conflict"
    )
    assert field in line and "knflow never forces" in line
    assert {r.query["force"] for r in apiserver.patches()} == {"false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


SERVICELESS = "apiVersion: knflow.dev/v1alpha1\nkind: Pipeline\nbuckets: [uploads]\n"


@pytest.mark.parametrize("command", ["deploy", "status"])
def test_no_reachable_cluster_one_line_exit_1(tmp_path, command):
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(f"http://127.0.0.1:{free_port()}"))
    spec = tmp_path / "knflow.yaml"
    spec.write_text(SERVICELESS)
    env = knflow_env(KUBECONFIG=str(config))
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "knative", command, "--spec", str(spec)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if not line.startswith("Note:")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: cannot reach the Kubernetes API server at http://127.0.0.1:")
    assert lines[0].endswith("connection refused")


def test_no_kubeconfig_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    spec = tmp_path / "knflow.yaml"
    spec.write_text(SERVICELESS)
    assert main(["deploy", "--spec", str(spec)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: no Kubernetes cluster configured")


def test_unauthorized_is_reported_not_retried_forever(apiserver, tmp_path, monkeypatch, capsys):
    config = yaml.safe_load(kubeconfig(f"http://127.0.0.1:{apiserver.httpd.server_address[1]}"))
    config["users"][0]["user"]["token"] = "wrong"
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(bad))
    spec = tmp_path / "knflow.yaml"
    spec.write_text(SERVICELESS)
    assert main(["deploy", "--spec", str(spec)]) == 1
    assert "answered 401" in capsys.readouterr().err

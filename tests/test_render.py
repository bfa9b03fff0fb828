"""`knflow render`: the shipped pipeline as Knative resources that validate against the Knative
CRDs (../shared/crds/knative) and the Kubernetes schemas, with Knative's exact field names."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
import yaml

from knative.cli import main
from knative.render import (
    CrdsNotFound,
    RenderError,
    crd_dir,
    minio_commands,
    render,
    validate,
    validate_all,
    wanted_suffixes,
)
from knative.spec import parse_spec
from tests.conftest import REPO, knflow_env

pytest_plugins = ("tests.cluster_support",)  # fixtures: pipeline, spec_functions

ISO_DURATION = r"^P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture
def docs(pipeline) -> list[dict]:
    return render(pipeline, None, "registry.example.com/ml")


def test_every_rendered_document_validates(docs):
    kinds = {d["kind"] for d in docs}
    assert {"Service", "Broker", "Trigger", "SinkBinding", "PingSource", "ConfigMap"} <= kinds
    assert {"ServiceAccount", "Role", "RoleBinding", "Namespace"} <= kinds
    assert validate_all(docs) == []


def test_validation_catches_what_the_cluster_would_reject_or_prune(docs):
    svc = by_kind(docs, "Service")["transcribe"]
    svc["spec"]["template"]["spec"]["containerConcurrency"] = "one"
    svc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    problems = [str(p) for p in validate(svc)]
    assert any("containerConcurrency" in p and "not of type 'integer'" in p for p in problems)
    assert any("imagePullPolicyy" in p for p in problems)  # would be pruned silently

    trig = by_kind(docs, "Trigger")["sentiment-transcripts"]
    trig["spec"]["subscriber"] = {"reff": {"name": "sentiment"}}
    assert any("reff" in str(p) for p in validate(trig))

    role = by_kind(docs, "Role")["knflow-builder"]
    role["rules"][0]["verbs"] = "patch"
    assert any("rules.0.verbs" in str(p) for p in validate(role))

    cm = by_kind(docs, "ConfigMap")["knflow-spec"]
    cm["metadata"]["name"] = "Not_A_Name"
    assert any("metadata.name" in str(p) for p in validate(cm))


def test_services_golden_details(docs, pipeline):
    services = by_kind(docs, "Service")
    transcribe = services["transcribe"]
    assert transcribe["apiVersion"] == "serving.knative.dev/v1"
    template = transcribe["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "autoscaling.knative.dev/target": "1",
        "autoscaling.knative.dev/max-scale": "2",
    }
    assert services["tune"]["spec"]["template"]["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "1",
        "autoscaling.knative.dev/max-scale": "1",
    }
    spec = template["spec"]
    assert spec["containerConcurrency"] == 1 and spec["timeoutSeconds"] == 600
    (container,) = spec["containers"]
    assert container["image"] == "registry.example.com/ml/knflow-function:0.1.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/readiness"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/liveness"}
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    env = {e["name"]: e for e in container["env"]}
    assert env["KNFLOW_FUNCTION"]["value"] == "transcribe"
    assert json.loads(env["KNFLOW_CONFIG"]["value"]) == {"max_audio_seconds": 600}
    models = [{"name": m.name, "uri": m.uri} for m in pipeline.service("transcribe").models]
    assert json.loads(env["KNFLOW_MODELS"]["value"]) == models
    assert env["KNFLOW_STORE"]["value"].startswith("s3://?endpoint=")
    # The runtime sizes its threads/timeouts from these (Knative does not pass them on).
    assert env["KNFLOW_CONTAINER_CONCURRENCY"]["value"] == "1"
    assert env["KNFLOW_TIMEOUT_SECONDS"]["value"] == "600"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "knflow-s3", "key": "AWS_SECRET_ACCESS_KEY"}},
    }
    assert container["securityContext"]["runAsNonRoot"] is True
    compose = services["compose"]["spec"]["template"]["spec"]
    assert compose["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert compose["timeoutSeconds"] == 900
    # Only the functions that call the API server run with an account.
    builder = services["builder"]["spec"]["template"]["spec"]
    assert builder["serviceAccountName"] == "knflow-builder"
    builder_env = {e["name"]: e.get("value") for e in builder["containers"][0]["env"]}
    assert builder_env["KNFLOW_NAMESPACE"] == "knflow"
    assert builder_env["KNFLOW_IMAGE_REGISTRY"] == "registry.example.com/ml"
    assert "KNFLOW_NAMESPACE" not in env
    assert "serviceAccountName" not in spec and spec["automountServiceAccountToken"] is False
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "knflow"


def test_broker_and_trigger_shapes(docs):
    broker = by_kind(docs, "Broker")["default"]
    assert broker["spec"]["delivery"] == {
        "retry": 3,
        "backoffPolicy": "exponential",
        "backoffDelay": "PT0.2S",
        "timeout": "PT300S",
        "deadLetterSink": {
            "ref": {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "name": "dead-letters",
            }
        },
    }
    triggers = by_kind(docs, "Trigger")
    legacy = triggers["sentiment-transcripts"]["spec"]
    assert legacy["filter"] == {"attributes": {"type": "dev.knflow.transcript.created"}}
    assert "filters" not in legacy
    assert legacy["subscriber"]["ref"]["name"] == "sentiment"
    assert legacy["broker"] == "default"
    uploads = triggers["transcribe-uploads"]["spec"]
    assert uploads["filters"][0] == {
        "exact": {"type": "dev.knflow.object.created", "bucket": "uploads"}
    }
    assert {"suffix": {"subject": ".wav"}} in uploads["filters"][1]["any"]
    # A Trigger's own delivery wins field by field; the rest (dead-letter sink too) is the
    # Broker's, because Knative would otherwise drop the Broker's delivery for this Trigger.
    compose = triggers["compose-sentiments"]["spec"]["delivery"]
    assert compose["retry"] == 1 and compose["timeout"] == "PT900S"
    assert compose["backoffDelay"] == "PT0.2S"
    assert compose["deadLetterSink"]["ref"]["name"] == "dead-letters"
    for trig in triggers.values():
        for key in ("backoffDelay", "timeout"):
            assert re.match(ISO_DURATION, trig["spec"]["delivery"][key])


def test_sources_receiver_and_ping(docs):
    services = by_kind(docs, "Service")
    receiver = services["minio-webhook"]
    assert receiver["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    env = receiver["spec"]["template"]["spec"]["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "KNFLOW_MINIO_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "knflow-minio-webhook", "key": "token"}
    bindings = by_kind(docs, "SinkBinding")
    receiver_binding = bindings["minio-webhook-sink"]["spec"]
    assert receiver_binding["subject"] == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": "minio-webhook",
    }
    assert receiver_binding["sink"]["ref"] == {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "name": "default",
    }
    selector = bindings["knflow-functions"]["spec"]["subject"]["selector"]["matchLabels"]
    assert services["predict"]["metadata"]["labels"].items() >= selector.items()
    ping = by_kind(docs, "PingSource")["autoscale-tick"]["spec"]
    assert ping["schedule"] == "* * * * *"
    assert json.loads(ping["data"]) == {"services": ["resnet-a", "resnet-b"]}
    assert ping["sink"]["ref"]["kind"] == "Broker"
    # The cluster's PingSource sends dev.knative.sources.ping: the autoscaler's Trigger takes both.
    ticks = by_kind(docs, "Trigger")["autoscaler-ticks"]["spec"]["filters"][0]["any"]
    assert {"exact": {"type": "dev.knflow.autoscale.tick"}} in ticks
    assert {
        "exact": {
            "type": "dev.knative.sources.ping",
            "source": "/apis/v1/namespaces/knflow/pingsources/autoscale-tick",
        }
    } in ticks


def test_rbac_is_namespaced_and_least_privilege(docs):
    roles = by_kind(docs, "Role")
    assert set(roles) == {"knflow-builder", "knflow-autoscaler"}
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    (autoscaler,) = roles["knflow-autoscaler"]["rules"]
    assert autoscaler == {
        "apiGroups": ["serving.knative.dev"],
        "resources": ["services"],
        "resourceNames": ["resnet-a", "resnet-b"],
        "verbs": ["get", "patch"],
    }
    builder = roles["knflow-builder"]["rules"]
    assert builder[0]["resourceNames"] == ["predict"]
    jobs = next(r for r in builder if r["apiGroups"] == ["batch"])
    assert "create" in jobs["verbs"] and "escalate" not in jobs["verbs"]
    for rule in (r for role in roles.values() for r in role["rules"]):
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "secrets" not in rule["resources"]
    binding = by_kind(docs, "RoleBinding")["knflow-builder"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "knflow-builder", "namespace": "knflow"}
    ]


def test_no_secret_values_and_spec_carried(docs, monkeypatch):
    monkeypatch.setenv("KNFLOW_MINIO_TOKEN", "s3cr3t-token-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-aws-value")
    text = yaml.safe_dump_all(docs)
    assert "s3cr3t" not in text
    assert not [d for d in docs if d["kind"] == "Secret"]
    cm = by_kind(docs, "ConfigMap")["knflow-spec"]
    carried = yaml.safe_load(cm["data"]["knflow.yaml"])
    assert [s["name"] for s in carried["services"]][:2] == ["transcribe", "sentiment"]
    receiver_spec = yaml.safe_load(cm["data"]["sources.yaml"])
    assert [s["kind"] for s in receiver_spec["sources"]] == ["minio-webhook"]


def test_namespace_and_registry_options(pipeline):
    docs = render(pipeline, "ml-prod", "ghcr.io/acme/")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"ml-prod"}
    namespace = by_kind(docs, "Namespace")["ml-prod"]
    assert namespace["metadata"]["labels"]["bindings.knative.dev/include"] == "true"
    image = by_kind(docs, "Service")["predict"]["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "ghcr.io/acme/knflow-function:0.1.0"
    assert not by_kind(render(pipeline, "default"), "Namespace")  # never relabel `default`


MINIMAL = """\
apiVersion: knflow.dev/v1alpha1
kind: Pipeline
buckets: [uploads]
services:
  - name: predict
    function: predict
    image: {image}
    resources:
      requests: {{nvidia.com/gpu: "1"}}
    env:
      - name: TOKEN
        valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
      - name: KNFLOW_STORE
        value: s3://?endpoint=http://minio.storage:9000
"""


def test_service_image_gpu_request_and_secret_env(spec_functions):
    spec = parse_spec(MINIMAL.format(image="ghcr.io/acme/predict@sha256:" + "a" * 64))
    (svc,) = [d for d in render(spec) if d["kind"] == "Service"]
    container = svc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("ghcr.io/acme/predict@sha256:")
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}  # extended: limit too
    token = next(e for e in container["env"] if e["name"] == "TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "api", "key": "token"}
    # The spec's env overrides knflow's default, leaving one entry per name.
    stores = [e for e in container["env"] if e["name"] == "KNFLOW_STORE"]
    assert stores == [{"name": "KNFLOW_STORE", "value": "s3://?endpoint=http://minio.storage:9000"}]
    assert validate(svc) == []


def test_local_bundle_image_is_refused(spec_functions):
    spec = parse_spec(MINIMAL.format(image="bundle:///var/knflow/predict-00002"))
    with pytest.raises(RenderError, match="service 'predict' uses the local image"):
        render(spec)


def test_missing_crds_is_a_clear_error(monkeypatch, tmp_path, docs):
    monkeypatch.setenv("KNFLOW_CRD_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(CrdsNotFound, match=r"no Knative CRDs at .*nowhere.*KNFLOW_CRD_DIR"):
        crd_dir()
    monkeypatch.delenv("KNFLOW_CRD_DIR")
    assert (crd_dir() / "service.yaml").exists()


def test_minio_commands(pipeline):
    lines = minio_commands(pipeline, buckets=["uploads", "models"], alias="prod")
    commands = [line for line in lines if not line.startswith("#")]
    assert commands[0] == (
        "mc admin config set prod notify_webhook:knflow "
        "endpoint=http://minio-webhook.knflow.svc.cluster.local/minio-webhook "
        'auth_token="${KNFLOW_MINIO_TOKEN}"'
    )
    assert commands[1] == "mc admin service restart prod"
    events = [c for c in commands if c.startswith("mc event add prod/uploads")]
    # audio for transcribe and images for resnet-a: exactly the suffixes the Triggers consume
    suffixes = [".flac", ".jpeg", ".jpg", ".mp3", ".ogg", ".png", ".wav"]
    assert [c.rsplit(" ", 1)[1] for c in events] == suffixes
    assert all("arn:minio:sqs::knflow:webhook --event put,delete --suffix" in c for c in events)
    assert "mc event add prod/models arn:minio:sqs::knflow:webhook --event put,delete" in commands
    assert wanted_suffixes(pipeline.triggers, "training") == [".json", ".yaml"]
    with pytest.raises(RenderError, match="bucket 'nope' is not listed"):
        minio_commands(pipeline, buckets=["nope"])


def test_cli_render_yaml_json_and_validate(pipeline, capsys):
    assert main(["render", "--image-registry", "reg.example/x", "-n", "team-a"]) == 0
    out, err = capsys.readouterr()
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert out.startswith("---\n") and len(docs) == len(render(pipeline))
    assert {d["metadata"].get("namespace") for d in docs} == {"team-a", None}
    assert "max-revision-timeout-seconds >= 1800" in err  # compose/train run longer than 600 s
    assert main(["render", "-o", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["kind"] == "List" and len(listing["items"]) == len(docs)
    assert main(["render", "--validate"]) == 0
    assert f"All {len(docs)} resources are valid." in capsys.readouterr().out


def test_cli_render_minio_and_bad_input(pipeline, capsys, tmp_path):
    assert main(["render", "minio", "--alias", "lab", "--bucket", "training"]) == 0
    out = capsys.readouterr().out
    assert "mc event add lab/training arn:minio:sqs::knflow:webhook" in out
    assert main(["render", "minio", "--bucket", "nope"]) == 1
    assert capsys.readouterr().err.startswith("Error: bucket 'nope'")
    bad = tmp_path / "knflow.yaml"
    bad.write_text(textwrap.dedent("apiVersion: knflow.dev/v1alpha1\nkind: Pipeline\nbuckets: 3\n"))
    assert main(["render", "--spec", str(bad)]) == 2
    assert f"{bad}:3:" in capsys.readouterr().err


def test_ping_source_without_own_type_keeps_trigger_as_written(spec_functions):
    spec = parse_spec(
        textwrap.dedent(
            """\
            apiVersion: knflow.dev/v1alpha1
            kind: Pipeline
            sources:
              - {name: tick, kind: ping, schedule: "*/5 * * * *"}
            services:
              - {name: autoscaler, function: autoscaler}
            triggers:
              - name: ticks
                filter: {attributes: {type: dev.knative.sources.ping}}
                subscriber: {ref: {name: autoscaler}}
            """
        )
    )
    docs = render(spec)
    trigger = by_kind(docs, "Trigger")["ticks"]["spec"]
    assert trigger["filter"] == {"attributes": {"type": "dev.knative.sources.ping"}}
    assert by_kind(docs, "PingSource")["tick"]["spec"]["schedule"] == "*/5 * * * *"
    assert validate_all(docs) == []


def test_rendered_receiver_container_runs(docs, tmp_path):
    """The receiver's command line and mounted spec, run as the container would run them
    (K_SINK and the port substituted): it must start and answer its readiness probe."""
    receiver = by_kind(docs, "Service")["minio-webhook"]["spec"]["template"]["spec"]
    container = receiver["containers"][0]
    spec_file = tmp_path / "sources.yaml"
    spec_file.write_text(by_kind(docs, "ConfigMap")["knflow-spec"]["data"]["sources.yaml"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        {
            "/etc/knflow/sources.yaml": str(spec_file),
            "/tmp/knflow": str(tmp_path / "scratch"),
            "$(K_SINK)": "http://127.0.0.1:9/knflow/default",
            "0.0.0.0": "127.0.0.1",
            "8080": str(port),
        }.get(a, a)
        for a in container["args"]
    ]
    assert container["command"][:2] == ["python", "-m"]
    proc = subprocess.Popen(
        [sys.executable, *container["command"][1:], *args],
        env=knflow_env(KNFLOW_MINIO_TOKEN="t0ken"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        probe = f"http://127.0.0.1:{port}{container['readinessProbe']['httpGet']['path']}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(probe, timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)

"""The pipeline spec: the shipped default is valid, and mistakes are named with file and line."""

from __future__ import annotations

import json
import textwrap

import pytest

from knative.spec import SpecError, load_spec, parse_spec
from tests.conftest import run_cli

MINIMAL = """\
apiVersion: knflow.dev/v1alpha1
kind: Pipeline
broker:
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.5S
    deadLetterSink: {ref: {name: dead-letters}}
buckets: [uploads]
services:
  - name: transcribe
    function: transcribe
    containerConcurrency: 1
    annotations:
      autoscaling.knative.dev/target: "1"
  - name: dead-letters
    function: deadletter
triggers:
  - name: on-upload
    filters:
      - exact: {type: dev.knflow.object.created}
    subscriber: {ref: {name: transcribe}}
    delivery: {retry: 5}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text))
    return str(info.value).splitlines()


def test_default_spec_is_valid_and_complete():
    pipeline = load_spec()
    names = {s.name for s in pipeline.services}
    assert {"transcribe", "sentiment", "compose", "train", "export", "predict"} <= names
    assert {"resnet-a", "resnet-b", "autoscaler", "tune", "dead-letters"} <= names
    for trigger in pipeline.triggers:
        assert trigger.subscriber.ref in names


def test_typed_view_defaults_and_delivery_merge():
    pipeline = parse_spec(MINIMAL)
    svc = pipeline.service("transcribe")
    assert svc.container_concurrency == 1
    assert svc.autoscaling("target") == "1"
    assert svc.autoscaling("panic-threshold-percentage") == "200.0"  # Knative's default
    trigger = pipeline.triggers[0]
    merged = trigger.delivery.over(pipeline.broker.delivery)
    assert merged.retry == 5  # the Trigger's own
    assert merged.backoff_delay == 0.5 and merged.backoff_policy == "linear"  # the Broker's
    assert merged.dead_letter_sink.ref == "dead-letters"


def test_typo_field_names_file_line_and_service(tmp_path):
    spec = tmp_path / "knflow.yaml"
    spec.write_text(MINIMAL.replace("containerConcurrency", "contanerConcurrency"))
    result = run_cli("spec", "validate", str(spec))
    assert result.returncode == 2
    assert (
        f"{spec}:13: unknown field 'contanerConcurrency' in service 'transcribe'" in result.stderr
    )
    assert "did you mean 'containerConcurrency'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'autoscaling.knative.dev/target: "1"',
            'autoscaling.knative.dev/targt: "1"',
            "15: unknown annotation 'autoscaling.knative.dev/targt'",
        ),
        ("backoffDelay: PT0.5S", "backoffDelay: 500ms", "7: '500ms' is not an ISO-8601 duration"),
        ("backoffPolicy: linear", "backoffPolicy: random", "6: 'random' is not one of linear"),
        ("retry: 5}", "retry: many}", "23: expected an integer, got 'many'"),
        ("function: transcribe", "function: transcrib", "12: unknown function 'transcrib'"),
        (
            "subscriber: {ref: {name: transcribe}}",
            "subscriber: {ref: {name: nobody}}",
            "22: 'nobody' is not a service of this pipeline in trigger 'on-upload'",
        ),
        (
            "- exact: {type: dev.knflow.object.created}",
            "- exact: {Type: x}",
            "21: invalid attribute name 'Type'",
        ),
        (
            "- exact: {type: dev.knflow.object.created}",
            "- {exact: {type: a}, prefix: {type: b}}",
            "exactly one of exact, prefix",
        ),
        ("  - name: dead-letters\n", "  - name: transcribe\n", "duplicate name 'transcribe'"),
        ("containerConcurrency: 1", "containerConcurrency: -1", "-1 is below the minimum 0"),
    ],
)
def test_mistakes_are_named_precisely(old, new, expected):
    assert old in MINIMAL
    lines = problems(MINIMAL.replace(old, new, 1))
    assert any(expected in line for line in lines), lines
    assert all(line.startswith("knflow.yaml:") for line in lines)


def test_not_yaml_and_empty():
    assert problems("services: [unclosed\n")[0].startswith("knflow.yaml:2: not valid YAML")
    assert problems("") == ["knflow.yaml:1: the spec is empty"]


def test_missing_file_is_one_line(tmp_path):
    result = run_cli("spec", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read spec" in result.stderr and "Traceback" not in result.stderr


def test_spec_show_json_is_the_effective_spec():
    result = run_cli("spec", "show", "-o", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "Pipeline"
    assert any(s["name"] == "transcribe" for s in doc["services"])

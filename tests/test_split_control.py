"""The control-plane client choice: same patch for embedded and cluster, readable failures."""

from __future__ import annotations

import json

import pytest
from split_support import free_port

from functions.autoscaler.control import (
    TARGET,
    ClusterControl,
    ControlError,
    EmbeddedControl,
    connect,
    current_target,
    desired_replicas,
    target_patch,
)


class RecordingCustomObjects:
    """Stands in for kubernetes.client.CustomObjectsApi (no cluster can run here): records the
    calls and answers like an API server holding one Knative Service and its PodAutoscaler."""

    def __init__(self):
        self.calls = []

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get", group, version, namespace, plural, name))
        if plural == "podautoscalers":
            return {"status": {"desiredScale": 3, "actualScale": 2}}
        return {
            "spec": {"template": {"metadata": {"annotations": {TARGET: "4"}}}},
            "status": {"latestReadyRevisionName": f"{name}-00001"},
        }

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append(("patch", group, version, namespace, plural, name, body))
        return body


def test_cluster_client_patches_the_knative_service():
    api = RecordingCustomObjects()
    control = ClusterControl("ml", api=api)
    control.patch("resnet-a", target_patch(8))
    assert api.calls[-1] == (
        "patch",
        "serving.knative.dev",
        "v1",
        "ml",
        "services",
        "resnet-a",
        {"spec": {"template": {"metadata": {"annotations": {TARGET: "8"}}}}},
    )
    stats = control.stats("resnet-a")
    assert (
        "get",
        "autoscaling.internal.knative.dev",
        "v1alpha1",
        "ml",
        "podautoscalers",
        "resnet-a-00001",
    ) in api.calls
    # 3 desired replicas at target 4 and 70 % utilisation: about 8.4 requests in flight
    assert stats["in_flight"] == pytest.approx(8.4) and stats["replicas"] == 2
    assert desired_replicas(stats["in_flight"], 4) == 3


def test_target_parsing_defaults_to_knative():
    assert current_target({}) == 100
    assert current_target(target_patch(3)) == 3


def test_unreachable_control_api_is_one_clear_error():
    control = EmbeddedControl(f"http://127.0.0.1:{free_port()}", "ns", timeout=2)
    with pytest.raises(ControlError, match="unreachable"):
        control.get("resnet-a")


def test_connect_finds_the_running_instance(tmp_path, monkeypatch):
    monkeypatch.delenv("KNFLOW_CONTROL_URL", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ControlError, match="no control plane"):
        connect(tmp_path)
    (tmp_path / ".knflow").mkdir()
    (tmp_path / ".knflow" / "instance.json").write_text(
        json.dumps({"control_url": "http://127.0.0.1:9", "namespace": "ml"})
    )
    control = connect(tmp_path)
    assert isinstance(control, EmbeddedControl) and control.namespace == "ml"

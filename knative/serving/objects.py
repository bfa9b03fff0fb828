"""Knative's object shapes for services and revisions, and validated merge-patches of them.

The control API and the CLI speak these shapes, so the same `-o json` and the same patches work
against the embedded engine and against a cluster. What Knative's container spec has no field for
(the function, its config and model sources) travels as `knflow.dev/*` template annotations.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

from functions.registry import available_functions

from ..spec import AUTOSCALING_PREFIX
from ..spec.pipeline import AUTOSCALING_KEYS
from .autoscaler import ScalingSpec
from .bundles import BundleError, is_bundle, load_bundle
from .revisions import READY, Revision, Template
from .traffic import validate as validate_traffic

API_VERSION = "serving.knative.dev/v1"
FUNCTION_ANN = "knflow.dev/function"
CONFIG_ANN = "knflow.dev/config"
MODELS_ANN = "knflow.dev/models"
SERVICE_LABEL = "serving.knative.dev/service"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


class Invalid(ValueError):
    """A patch Knative would refuse (HTTP 422); `causes` lists each problem."""

    def __init__(self, causes: list[str]) -> None:
        self.causes = causes
        super().__init__("; ".join(causes))


def timestamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_of(t: Template) -> str:
    """The container image; a function without one is shown as the image the cluster builds."""
    return t.image or f"knflow/function-{t.function}"


def template_object(t: Template) -> dict[str, Any]:
    annotations = dict(t.annotations)
    annotations[FUNCTION_ANN] = t.function
    if t.config:
        annotations[CONFIG_ANN] = json.dumps(t.config, sort_keys=True)
    if t.models:
        annotations[MODELS_ANN] = json.dumps(t.models)
    return {
        "metadata": {"annotations": annotations},
        "spec": {
            "containerConcurrency": t.container_concurrency,
            "timeoutSeconds": t.timeout_seconds,
            "containers": [
                {
                    "name": "user-container",
                    "image": image_of(t),
                    "env": [{"name": k, "value": v} for k, v in t.env.items()],
                }
            ],
        },
    }


def condition(kind: str, status: str, reason: str = "", message: str = "", at: float = 0.0):
    out: dict[str, Any] = {"type": kind, "status": status}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    if at:
        out["lastTransitionTime"] = timestamp(at)
    return out


def revision_object(
    rev: Revision, namespace: str, routed: bool, actual: int, desired: int
) -> dict[str, Any]:
    template = template_object(rev.template)
    return {
        "apiVersion": API_VERSION,
        "kind": "Revision",
        "metadata": {
            "name": rev.name,
            "namespace": namespace,
            "creationTimestamp": timestamp(rev.created),
            "labels": {
                SERVICE_LABEL: rev.service,
                "serving.knative.dev/configuration": rev.service,
                "serving.knative.dev/configurationGeneration": str(rev.generation),
                "serving.knative.dev/routingState": "active" if routed else "reserve",
            },
            "annotations": template["metadata"]["annotations"],
        },
        "spec": template["spec"],
        "status": {
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", rev.ready, rev.reason, rev.message, rev.created),
                condition("ContainerHealthy", rev.ready, rev.reason, rev.message, rev.created),
            ],
            "actualReplicas": actual,
            "desiredReplicas": desired,
        },
    }


def template_from_object(obj: Any, service: str) -> Template:
    """Inverse of `template_object`; Invalid listing every problem."""
    problems: list[str] = []
    obj = obj if isinstance(obj, dict) else {}
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    annotations = {str(k): v for k, v in (meta.get("annotations") or {}).items() if v is not None}
    function = str(annotations.pop(FUNCTION_ANN, "") or "")
    config = _json_annotation(annotations.pop(CONFIG_ANN, None), dict, CONFIG_ANN, problems)
    models = _json_annotation(annotations.pop(MODELS_ANN, None), list, MODELS_ANN, problems)
    for key, value in annotations.items():
        if not isinstance(value, str):
            problems.append(f"annotation {key!r} must be a string, not {value!r}")
        short = key.removeprefix(AUTOSCALING_PREFIX)
        if short != key and short not in AUTOSCALING_KEYS:
            problems.append(f"unknown annotation {key!r}")
    containers = spec.get("containers") or [{}]
    if not isinstance(containers, list) or len(containers) != 1:
        problems.append("spec.template.spec.containers must hold exactly one container")
        containers = [{}]
    container = containers[0] if isinstance(containers[0], dict) else {}
    image = container.get("image")
    if image == f"knflow/function-{function}":
        image = None
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        name = var.get("name") if isinstance(var, dict) else None
        if not isinstance(name, str) or not ENV_NAME.match(name):
            problems.append(f"env name {name!r} is not a valid variable name")
            continue
        env[name] = str(var.get("value", ""))
    cc = spec.get("containerConcurrency", 0)
    if not isinstance(cc, int) or isinstance(cc, bool) or not 0 <= cc <= 1000:
        problems.append(f"containerConcurrency must be an integer from 0 to 1000, not {cc!r}")
        cc = 0
    timeout = spec.get("timeoutSeconds", 300)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
        problems.append(f"timeoutSeconds must be an integer from 1 to 3600, not {timeout!r}")
        timeout = 300
    if is_bundle(image):
        try:
            load_bundle(image)
        except BundleError as exc:
            problems.append(str(exc))
    elif function not in available_functions():
        problems.append(f"unknown function {function!r} (annotation {FUNCTION_ANN})")
    template = Template(
        function=function,
        image=image,
        env=env,
        config=config or {},
        models=models or [],
        container_concurrency=cc,
        timeout_seconds=timeout,
        annotations={k: str(v) for k, v in annotations.items()},
    )
    problems += scaling_problems(template, service)
    if problems:
        raise Invalid(problems)
    return template


def scaling_problems(template: Template, service: str) -> list[str]:
    """Autoscaling annotations the KPA cannot use (Knative's webhook refuses the same)."""
    svc = template.service(service)
    try:
        spec = ScalingSpec.of(svc)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if svc.autoscaling("class") != "kpa.autoscaling.knative.dev":
        problems.append("only the KPA autoscaling class (kpa.autoscaling.knative.dev) runs here")
    if svc.autoscaling("metric") != "concurrency":
        problems.append("only the concurrency metric is supported here")
    if spec.target <= 0:
        problems.append("autoscaling.knative.dev/target must be greater than 0")
    if not 0 < spec.utilization <= 1:
        problems.append("target-utilization-percentage must be in (0, 100]")
    if not 6 <= spec.stable_window <= 3600:
        problems.append("autoscaling.knative.dev/window must be between 6s and 1h")
    if not 1 <= spec.panic_window / spec.stable_window * 100 <= 100:
        problems.append("panic-window-percentage must be between 1 and 100")
    if min(spec.min_scale, spec.max_scale, spec.initial_scale) < 0:
        problems.append("min-scale, max-scale and initial-scale must not be negative")
    if spec.activation_scale < 1:
        problems.append("activation-scale must be at least 1")
    if spec.max_scale and spec.min_scale > spec.max_scale:
        problems.append(f"min-scale {spec.min_scale} is greater than max-scale {spec.max_scale}")
    if spec.max_scale_up_rate <= 1 or spec.max_scale_down_rate <= 1:
        problems.append("max-scale-up-rate and max-scale-down-rate must be greater than 1")
    return problems


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge-patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(
    current: dict[str, Any], patch: Any, revisions: list[str], service: str
) -> tuple[Template, list[dict[str, Any]]]:
    """The template and traffic a merge-patch asks for; Invalid when Knative would refuse it."""
    if not isinstance(patch, dict):
        raise Invalid(["the patch must be a JSON object"])
    merged = merge_patch(current, patch)
    name = (merged.get("metadata") or {}).get("name")
    if name != service:
        raise Invalid([f"metadata.name cannot change ({service!r} → {name!r})"])
    spec = merged.get("spec") or {}
    problems: list[str] = []
    try:
        template = template_from_object(spec.get("template"), service)
    except Invalid as exc:
        problems += exc.causes
        template = None
    traffic = spec.get("traffic") or []
    problems += validate_traffic(traffic, revisions)
    if problems:
        raise Invalid(problems)
    return template, traffic  # type: ignore[return-value]


def is_ready(rev: Revision) -> bool:
    return rev.ready == READY


def _json_annotation(value: Any, kind: type, key: str, problems: list[str]) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        problems.append(f"annotation {key} must be JSON")
        return None
    if not isinstance(parsed, kind):
        problems.append(f"annotation {key} must be a JSON {kind.__name__}")
        return None
    return parsed

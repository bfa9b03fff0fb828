"""ServiceAccounts and namespaced RBAC for the functions that call the Kubernetes API.

Least privilege: only `builder` (creates build Jobs, rolls a Knative Service to the new image)
and `autoscaler` (sets `autoscaling.knative.dev/target`) get an account; each account may patch
only the Knative Services it manages (by name), in its own namespace, and nothing cluster-wide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..spec import Pipeline, Service
from .common import RBAC_V1, Target

SERVING = "serving.knative.dev"


def _services_rule(names: list[str]) -> dict[str, Any]:
    # get+patch only on the named services (resourceNames cannot restrict list/watch/create).
    return {
        "apiGroups": [SERVING],
        "resources": ["services"],
        "resourceNames": sorted(set(names)),
        "verbs": ["get", "patch"],
    }


def _builder_rules(pipeline: Pipeline, svc: Service) -> list[dict[str, Any]]:
    target = svc.config.get("service")
    managed = [target] if target else [s.name for s in pipeline.services if s.name != svc.name]
    return [
        _services_rule(managed),
        # Watching the canary revision come up.
        {"apiGroups": [SERVING], "resources": ["revisions"], "verbs": ["get", "list", "watch"]},
        # The unprivileged Kaniko build Job, and its pod's log for the failure reason.
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]


def _autoscaler_rules(pipeline: Pipeline, svc: Service) -> list[dict[str, Any]]:
    managed = [
        name
        for src in pipeline.sources
        if src.kind == "ping" and isinstance(src.data, dict)
        for name in src.data.get("services") or []
    ] or [s.name for s in pipeline.services if s.name != svc.name]
    return [_services_rule(managed)]


# function name -> the rules its service needs from the API server
ACCESS: dict[str, Callable[[Pipeline, Service], list[dict[str, Any]]]] = {
    "builder": _builder_rules,
    "autoscaler": _autoscaler_rules,
}


def service_account(pipeline: Pipeline, svc: Service) -> str | None:
    """The account a service runs as, or None when it needs no API access."""
    return f"knflow-{svc.name}" if svc.function in ACCESS else None


def rbac(target: Target) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for svc in target.pipeline.services:
        name = service_account(target.pipeline, svc)
        if name is None:
            continue
        rules = ACCESS[svc.function](target.pipeline, svc)
        docs += [
            target.resource(
                "v1", "ServiceAccount", name, "rbac", automountServiceAccountToken=True
            ),
            target.resource(RBAC_V1, "Role", name, "rbac", rules=rules),
            target.resource(
                RBAC_V1,
                "RoleBinding",
                name,
                "rbac",
                roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                subjects=[{"kind": "ServiceAccount", "name": name, "namespace": target.namespace}],
            ),
        ]
    return docs

"""`knflow status`: each rendered resource's Ready condition, as the cluster reports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .client import ApiError, Cluster, Ref


@dataclass
class ResourceStatus:
    kind: str
    name: str
    api_version: str
    ready: str  # True | False | Unknown | "-" (kinds without conditions) | Missing
    reason: str = ""
    message: str = ""
    url: str = ""
    conditions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def conditions_summary(self) -> str:
        """kn's CONDITIONS column: `3 OK / 3`."""
        if not self.conditions:
            return ""
        ok = sum(1 for c in self.conditions if c.get("status") == "True")
        return f"{ok} OK / {len(self.conditions)}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(cluster: Cluster, docs: list[dict[str, Any]]) -> list[ResourceStatus]:
    return [resource_status(cluster, Ref.of(doc)) for doc in docs]


def resource_status(cluster: Cluster, ref: Ref) -> ResourceStatus:
    base = {"kind": ref.kind, "name": ref.name, "api_version": ref.api_version}
    try:
        obj = cluster.get(ref)
    except ApiError as exc:
        return ResourceStatus(
            **base, ready="Unknown", reason=exc.reason or "Error", message=str(exc)
        )
    if obj is None:
        return ResourceStatus(**base, ready="Missing", reason="NotFound")
    st = obj.get("status") or {}
    conditions = list(st.get("conditions") or [])
    url = st.get("url") or (st.get("address") or {}).get("url") or ""
    if not conditions:
        # Core kinds have no conditions; a Knative object without them is not reconciled yet.
        knative = "knative.dev" in ref.api_version
        return ResourceStatus(**base, ready="Unknown" if knative else "-", url=url)
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    return ResourceStatus(
        **base,
        ready=ready.get("status", "Unknown"),
        reason=ready.get("reason", ""),
        message=ready.get("message", ""),
        url=url,
        conditions=conditions,
    )

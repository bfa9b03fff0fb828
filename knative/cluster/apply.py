"""`knflow deploy`: server-side apply every rendered resource, reporting what changed.

Server-side apply is idempotent by construction; to tell the user *what* changed, each object is
read before and compared after, ignoring what the server maintains itself (resourceVersion,
managedFields, status …), so a second deploy of the same spec reports every object `unchanged`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import ApiError, Cluster, Ref

SERVER_FIELDS = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid")


@dataclass(frozen=True)
class Applied:
    ref: Ref
    outcome: str  # created | configured | unchanged | failed
    error: str = ""

    @property
    def line(self) -> str:
        """kubectl's wording: `service.serving.knative.dev/transcribe created`."""
        detail = f": {self.error}" if self.error else ""
        return f"{self.ref.resource}/{self.ref.name} {self.outcome}{detail}"


def deploy(
    cluster: Cluster,
    docs: list[dict[str, Any]],
    dry_run: bool = False,
    progress: Callable[[Applied], None] | None = None,
) -> list[Applied]:
    """Apply `docs` in order; a refused object is reported and the rest still applied."""
    results = []
    for doc in docs:
        ref = Ref.of(doc)
        try:
            before = cluster.get(ref)
            after = cluster.apply(doc, dry_run=dry_run)
            if before is None:
                outcome = "created"
            else:
                outcome = "unchanged" if _desired(before) == _desired(after) else "configured"
            result = Applied(ref, outcome)
        except ApiError as exc:
            result = Applied(ref, "failed", str(exc))
        results.append(result)
        if progress:
            progress(result)
    return results


def _desired(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server keeps up to date on its own."""
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    meta = obj.get("metadata") or {}
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    return obj

"""Services' templates and their immutable revisions, persisted under `<data>/.knflow/serving/`.

Every change of a service's template (function, image, env, config, models, containerConcurrency,
timeoutSeconds, annotations) creates a revision `<name>-00001`, `-00002`, … that never changes.
The pipeline file is applied like `kubectl apply`: a template edited in the file gives a new
revision at the next `knflow up`; an unchanged file keeps whatever `service update` made live.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..spec import Service

READY, NOT_READY, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class Template:
    """Everything that defines a revision (Knative's `spec.template`, plus the function)."""

    function: str
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, str]] = field(default_factory=list)
    container_concurrency: int = 0
    timeout_seconds: int = 300
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, svc: Service) -> Template:
        return cls(
            function=svc.function,
            image=svc.image,
            env=dict(svc.env),
            config=dict(svc.config),
            models=[{"name": m.name or "", "uri": m.uri} for m in svc.models],
            container_concurrency=svc.container_concurrency,
            timeout_seconds=svc.timeout_seconds,
            annotations=dict(svc.annotations),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Template:
        return cls(**doc)

    def service(self, name: str) -> Service:
        """A spec `Service` view (for `.autoscaling(key)` with Knative's defaults)."""
        return Service(
            name=name,
            function=self.function,
            image=self.image,
            env=dict(self.env),
            config=dict(self.config),
            container_concurrency=self.container_concurrency,
            timeout_seconds=self.timeout_seconds,
            annotations=dict(self.annotations),
        )


@dataclass
class Revision:
    name: str
    service: str
    generation: int
    template: Template
    created: float
    ready: str = UNKNOWN  # the Ready condition: True once a replica served, False with a reason
    reason: str = ""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["template"] = self.template.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Revision:
        doc = dict(doc)
        doc["template"] = Template.from_dict(doc["template"])
        return cls(**doc)


@dataclass
class ServiceState:
    """One service's persistent record: live template, traffic, and every revision made."""

    name: str
    template: Template
    traffic: list[dict[str, Any]] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    generation: int = 0
    applied: dict[str, Any] = field(default_factory=dict)  # the template last taken from the file
    created: float = field(default_factory=time.time)

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]

    def revision(self, name: str) -> Revision | None:
        return next((r for r in self.revisions if r.name == name), None)

    def set_template(self, template: Template) -> Revision | None:
        """Make `template` live; the new revision when it differs from the latest one."""
        self.generation += 1
        self.template = template
        if self.revisions and self.latest.template == template:
            return None
        revision = Revision(
            name=f"{self.name}-{len(self.revisions) + 1:05d}",
            service=self.name,
            generation=self.generation,
            template=template,
            created=time.time(),
        )
        self.revisions.append(revision)
        return revision

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "generation": self.generation,
            "created": self.created,
            "template": self.template.to_dict(),
            "applied": self.applied,
            "traffic": self.traffic,
            "revisions": [r.to_dict() for r in self.revisions],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ServiceState:
        return cls(
            name=doc["name"],
            template=Template.from_dict(doc["template"]),
            traffic=list(doc.get("traffic") or []),
            revisions=[Revision.from_dict(r) for r in doc.get("revisions") or []],
            generation=int(doc.get("generation", 0)),
            applied=dict(doc.get("applied") or {}),
            created=float(doc.get("created", time.time())),
        )


class RevisionStore:
    """`<data>/.knflow/serving/services/<name>.json`, written atomically."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / ".knflow" / "serving" / "services"
        self.root.mkdir(parents=True, exist_ok=True)

    def apply(self, svc: Service) -> tuple[ServiceState, Revision | None]:
        """Load the service's state and apply the file's template; the new revision, if any."""
        path = self.root / f"{svc.name}.json"
        template = Template.of(svc)
        if path.exists():
            state = ServiceState.from_dict(json.loads(path.read_text()))
            if state.applied == template.to_dict():
                return state, None
        else:
            state = ServiceState(name=svc.name, template=template, traffic=list(svc.traffic))
        state.applied = template.to_dict()
        if svc.traffic:
            state.traffic = list(svc.traffic)
        revision = state.set_template(template)
        self.save(state)
        return state, revision

    def save(self, state: ServiceState) -> None:
        path = self.root / f"{state.name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_dict(), indent=1))
        os.replace(tmp, path)

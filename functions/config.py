"""What a replica knows about itself, passed through the environment as in a container."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

# Environment variables a replica reads (the same in an embedded replica and a container).
ENV_SERVICE = "K_SERVICE"  # set by Knative Serving
ENV_REVISION = "K_REVISION"  # set by Knative Serving
ENV_SINK = "K_SINK"  # broker URL, injected by a SinkBinding in a cluster
ENV_FUNCTION = "KNFLOW_FUNCTION"
ENV_CONFIG = "KNFLOW_CONFIG"  # JSON: the service's `config` block
ENV_MODELS = "KNFLOW_MODELS"  # JSON: [{"name":..., "uri":...}]
ENV_STORE = "KNFLOW_STORE"  # object store URL (see storage.open_store)
ENV_DATA = "KNFLOW_DATA"  # the local instance directory (caches, scratch)


@dataclass
class FunctionConfig:
    """Configuration handed to `Function.start`."""

    function: str
    service: str = ""
    revision: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, str]] = field(default_factory=list)
    store_url: str = ""
    sink: str = ""
    data_dir: Path = Path(".knflow")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FunctionConfig:
        env = os.environ if env is None else env
        return cls(
            function=env[ENV_FUNCTION],
            service=env.get(ENV_SERVICE, ""),
            revision=env.get(ENV_REVISION, ""),
            config=json.loads(env.get(ENV_CONFIG) or "{}"),
            models=json.loads(env.get(ENV_MODELS) or "[]"),
            store_url=env.get(ENV_STORE, ""),
            sink=env.get(ENV_SINK, ""),
            data_dir=Path(env.get(ENV_DATA, ".knflow")),
        )

    def to_env(self) -> dict[str, str]:
        return {
            ENV_FUNCTION: self.function,
            ENV_SERVICE: self.service,
            ENV_REVISION: self.revision,
            ENV_CONFIG: json.dumps(self.config),
            ENV_MODELS: json.dumps(self.models),
            ENV_STORE: self.store_url,
            ENV_SINK: self.sink,
            ENV_DATA: str(self.data_dir),
        }

    def model_uri(self, name: str | None = None) -> str | None:
        """The URI of the named model source (the first one when `name` is None)."""
        for model in self.models:
            if name is None or model.get("name") == name:
                return model["uri"]
        return None

    @cached_property
    def store(self):  # -> storage.ObjectStore
        from storage import open_store

        return open_store(self.store_url or f"file://{self.data_dir}")

"""Embedded Knative Serving: revisions, traffic, replicas, router, KPA autoscaler, control API.

`Serving` runs every service of a pipeline on one asyncio loop; `control_app(serving)` is the
Kubernetes-shaped control API over it. `knative.embedded.Platform` wires these into `knflow up`.
"""

from .autoscaler import KPA, Decision, ScalingSpec
from .control import control_app
from .engine import Serving, ServingError
from .objects import Invalid
from .traffic import TAG_HEADER

__all__ = [
    "KPA",
    "TAG_HEADER",
    "Decision",
    "Invalid",
    "ScalingSpec",
    "Serving",
    "ServingError",
    "control_app",
]

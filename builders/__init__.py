"""Builder functions: content-addressed build contexts for new inference images, build backends
(an unprivileged Kaniko Job in a cluster, a local revision bundle on one machine) and the canary
rollout of the serving service to the new revision."""

from functions.predict.function import ENV_MODEL_DIR, ENV_MODEL_ERROR

from .backends import BuildBackend, LocalBundleBackend
from .context import BuildContext, make_context, pinned_requirements, runtime_ref
from .control import ControlAPI, ControlError
from .kaniko import BuildFailed, KanikoJobBackend
from .rollout import Rollout, RolloutResult, SmokeTest
from .smoke import digits_sample, v2_smoke
from .validation import MAX_MODEL_BYTES, ModelFile, RefusedModel, check_model, sniff

__all__ = [
    "ENV_MODEL_DIR",
    "ENV_MODEL_ERROR",
    "MAX_MODEL_BYTES",
    "BuildBackend",
    "BuildContext",
    "BuildFailed",
    "ControlAPI",
    "ControlError",
    "KanikoJobBackend",
    "LocalBundleBackend",
    "ModelFile",
    "RefusedModel",
    "Rollout",
    "RolloutResult",
    "SmokeTest",
    "check_model",
    "digits_sample",
    "make_context",
    "pinned_requirements",
    "runtime_ref",
    "sniff",
    "v2_smoke",
]

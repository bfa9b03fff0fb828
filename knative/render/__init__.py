"""Render a pipeline as Knative/Kubernetes resources, and check them offline.

docs = render(load_spec(), "knflow", "registry.example.com/team")
assert not validate_all(docs)
print(to_yaml(docs))
"""

from .common import DEFAULT_REGISTRY, DEFAULT_STORE_URL, RenderError, Target, knflow_version
from .manifests import cluster_notes, render, to_json, to_yaml
from .minio import minio_commands, wanted_suffixes
from .validate import CrdsNotFound, Problem, crd_dir, validate, validate_all

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_STORE_URL",
    "CrdsNotFound",
    "Problem",
    "RenderError",
    "Target",
    "cluster_notes",
    "crd_dir",
    "knflow_version",
    "minio_commands",
    "render",
    "to_json",
    "to_yaml",
    "validate",
    "validate_all",
    "wanted_suffixes",
]

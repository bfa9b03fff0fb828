"""`builder`: exported or uploaded model → build context → image (bundle or Kaniko) → canary
rollout of the serving service; replies revision.ready / revision.failed."""

from .function import BuilderFunction
from .models import ModelRepo, is_model_upload, model_name, repo_from_upload

__all__ = ["BuilderFunction", "ModelRepo", "is_model_upload", "model_name", "repo_from_upload"]


def new() -> BuilderFunction:
    return BuilderFunction()

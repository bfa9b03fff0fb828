"""Check rendered resources before any cluster sees them.

Knative kinds validate against the openAPIV3Schema of the CRDs in the repository's sibling
`../shared/crds/knative/`, made strict: a field the schema does not know is an error, because the
API server would silently prune it. Core kinds validate with `kubernetes-validate`'s offline
schemas for one Kubernetes version.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

K8S_VERSION = "1.33"  # core schemas of this Kubernetes minor (kubernetes-validate ships 1.25+)
CRD_DIR_ENV = "KNFLOW_CRD_DIR"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
CORE_GROUPS = {"v1", "rbac.authorization.k8s.io/v1", "apps/v1", "batch/v1"}


class CrdsNotFound(Exception):
    """The CRD directory is not where the repository layout puts it."""


@dataclass(frozen=True)
class Problem:
    resource: str  # kind/name
    path: str  # where in the resource
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.path or '(root)'}: {self.message}"


def crd_dir() -> Path:
    """`<repo>/../shared/crds/knative` (or $KNFLOW_CRD_DIR), found from this file upwards.

    In a git worktree the repository is also its main checkout, so that one's sibling counts too.
    """
    if env := os.environ.get(CRD_DIR_ENV):
        candidates = [Path(env)]
    else:
        here = Path(__file__).resolve()
        root = next((p for p in here.parents if (p / "pyproject.toml").exists()), None)
        if root is None:
            raise CrdsNotFound(f"cannot find the repository root above {here}")
        candidates = [r.parent / "shared" / "crds" / "knative" for r in _checkouts(root)]
    for path in candidates:
        if path.is_dir() and any(path.glob("*.yaml")):
            return path
    raise CrdsNotFound(
        f"no Knative CRDs at {candidates[0]}: put the CRD YAML files there or set {CRD_DIR_ENV}"
    )


def _checkouts(root: Path) -> list[Path]:
    """This checkout, then the main one when this is a git worktree (`.git` is a file)."""
    roots = [root]
    dot_git = root / ".git"
    if dot_git.is_file():
        text = dot_git.read_text().strip()
        if text.startswith("gitdir:"):
            gitdir = (root / text.removeprefix("gitdir:").strip()).resolve()
            common = gitdir / "commondir"
            main_git = (gitdir / common.read_text().strip()).resolve() if common.exists() else None
            if main_git is not None and main_git.name == ".git":
                roots.append(main_git.parent)
    return roots


@cache
def crd_schemas(directory: Path | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema, for every served version of every CRD."""
    schemas = {}
    for file in sorted((directory or crd_dir()).glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if version.get("served") and schema:
                    schemas[(f"{group}/{version['name']}", kind)] = _strict(_with_root(schema))
    return schemas


def _with_root(schema: dict[str, Any]) -> dict[str, Any]:
    """The fields every object has; some CRDs leave them implicit (the API server adds them)."""
    root = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    return {**schema, "properties": {**root, **schema.get("properties", {})}}


def _strict(schema: Any) -> Any:
    """Deny unknown fields where the API server would prune them (structural schema rules)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def validate(doc: dict[str, Any]) -> list[Problem]:
    """Every problem in one rendered resource ([] when the cluster would accept it as is)."""
    import jsonschema
    import kubernetes_validate

    name = f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"
    problems = _metadata_problems(name, doc.get("metadata"))
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key[0] in CORE_GROUPS:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(Problem(name, _path(exc.absolute_path), exc.message))
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(Problem(name, "", exc.message))
        return problems
    schema = crd_schemas().get(key)
    if schema is None:
        return [*problems, Problem(name, "", f"no CRD in {crd_dir()} serves {key[0]} {key[1]}")]
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        problems.append(Problem(name, _path(error.absolute_path), error.message))
    return problems


def validate_all(docs: list[dict[str, Any]]) -> list[Problem]:
    return [p for doc in docs for p in validate(doc)]


def _metadata_problems(name: str, meta: Any) -> list[Problem]:
    """ObjectMeta essentials (CRD schemas leave `metadata` open)."""
    if not isinstance(meta, dict):
        return [Problem(name, "metadata", "missing")]
    problems = []
    for field in ("name", "namespace"):
        value = meta.get(field)
        if value is not None and not (DNS_LABEL.fullmatch(str(value)) and len(value) <= 63):
            problems.append(Problem(name, f"metadata.{field}", f"{value!r} is not a DNS label"))
    for field in ("labels", "annotations"):
        for key, value in (meta.get(field) or {}).items():
            if not isinstance(value, str):
                problems.append(Problem(name, f"metadata.{field}.{key}", "value must be a string"))
    return problems


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)

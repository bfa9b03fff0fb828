"""Content-addressed build contexts: Dockerfile, runtime reference, model files and pinned
requirements. The digest is a sha256 over the sorted (path, content) pairs, so the same model on
the same runtime always gives the same context, bundle and image tag (builds are idempotent).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What the predict runtime imports; pinned to the versions installed here.
RUNTIME_REQUIREMENTS = (
    "cloudevents",
    "flask",
    "gunicorn",
    "numpy",
    "onnxruntime",
    "pillow",
    "prometheus-client",
    "pyyaml",
    "torch",
)
# Source the served image runs; their hash is the runtime code reference.
RUNTIME_SOURCES = (
    "functions/__init__.py",
    "functions/config.py",
    "functions/contract.py",
    "functions/registry.py",
    "functions/runtime",
    "functions/predict",
    "eventing/__init__.py",
    "eventing/types.py",
    "eventing/events.py",
    "eventing/http.py",
)
PYTHON_IMAGE = "python:3.11-slim"  # with the runtime sources copied in
RUNTIME_IMAGE = "ghcr.io/knflow/runtime"  # tagged with the knflow version; holds the runtime
MODEL_DIR = "model"


@dataclass
class BuildContext:
    """Files of one build, keyed by relative path; `digest` identifies the whole context."""

    files: dict[str, bytes] = field(default_factory=dict)
    function: str = "predict"
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # extra runtime environment

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest() + b"\n")
        if self.env:
            h.update(b"env\0" + json.dumps(self.env, sort_keys=True).encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.files.values())

    def tar_gz(self) -> bytes:
        """A reproducible tar.gz of the context (fixed mtimes/owners), as Kaniko reads it."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.files):
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(self.files[path]), 0, 0o644
                tar.addfile(info, io.BytesIO(self.files[path]))
        return buffer.getvalue()


def runtime_files() -> dict[str, bytes]:
    """The serving runtime's sources, keyed by path relative to the repository."""
    files = {}
    for rel in RUNTIME_SOURCES:
        root = REPO / rel
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            files[str(path.relative_to(REPO))] = path.read_bytes()
    return files


def runtime_ref() -> dict[str, str]:
    """The runtime code the image runs: knflow's version and a hash of the serving sources."""
    h = hashlib.sha256()
    for path, data in sorted(runtime_files().items()):
        h.update(path.encode() + b"\0" + data)
    return {"knflow": _version("knflow"), "sources_sha256": h.hexdigest()}


def pinned_requirements(names: tuple[str, ...] = RUNTIME_REQUIREMENTS) -> str:
    return "".join(f"{name}=={_version(name)}\n" for name in sorted(names))


def dockerfile(function: str, base_image: str, with_code: bool) -> str:
    """Without `code/` the base image must already hold the knflow runtime."""
    return (
        f"FROM {base_image}\n"
        "WORKDIR /app\n"
        "COPY requirements.txt runtime.json ./\n"
        "RUN pip install --no-cache-dir -r requirements.txt\n"
        + ("COPY code/ /app/\n" if with_code else "")
        + f"COPY {MODEL_DIR}/ /models/\n"
        f"ENV KNFLOW_FUNCTION={function} KNFLOW_MODEL_DIR=/models PYTHONPATH=/app\n"
        "USER 65532:65532\n"
        "EXPOSE 8080\n"
        "ENV PORT=8080\n"
        'CMD ["python", "-m", "functions.runtime"]\n'
    )


def make_context(
    model_files: dict[str, bytes],
    function: str = "predict",
    base_image: str | None = None,
    labels: dict[str, str] | None = None,
    include_code: bool = False,
) -> BuildContext:
    """A context for serving `model_files` (paths relative to the model repository root).

    `include_code` copies the runtime sources into `code/` (for a real image build); a local
    bundle runs this checkout's runtime and only records its reference.
    """
    base_image = base_image or (
        PYTHON_IMAGE if include_code else f"{RUNTIME_IMAGE}:{_version('knflow')}"
    )
    files = {f"{MODEL_DIR}/{path}": data for path, data in model_files.items()}
    files["Dockerfile"] = dockerfile(function, base_image, include_code).encode()
    files["requirements.txt"] = pinned_requirements().encode()
    runtime = {"function": function, "base_image": base_image, **runtime_ref()}
    files["runtime.json"] = (json.dumps(runtime, indent=2, sort_keys=True) + "\n").encode()
    if include_code:
        files.update({f"code/{path}": data for path, data in runtime_files().items()})
    return BuildContext(files, function, dict(labels or {}))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0.0.0"

"""Build backends: turn a build context into something a revision can run.

`LocalBundleBackend` (one machine) writes a revision bundle the embedded runtime runs directly;
`builders.kaniko.KanikoJobBackend` (cluster) builds a real image in an unprivileged Job.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Protocol

from functions.predict.function import ENV_MODEL_DIR

from .context import MODEL_DIR, BuildContext

BUNDLE_SCHEME = "bundle://"


class BuildBackend(Protocol):
    def build(self, context: BuildContext) -> str:
        """Build `context`; return the image reference a revision's template can name."""


class LocalBundleBackend:
    """Writes `<data>/.knflow/bundles/<digest>/` (bundle.json + the context) and returns
    `bundle:///…/<digest>`. The same context is written once; rebuilding it is a no-op."""

    def __init__(self, data_dir: Path | str, env: dict[str, str] | None = None) -> None:
        self.root = Path(data_dir).resolve() / ".knflow" / "bundles"
        self.env = dict(env or {})

    def build(self, context: BuildContext) -> str:
        target = self.root / context.digest
        if not (target / "bundle.json").is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            try:
                for rel, data in context.files.items():
                    path = staging / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                manifest = {
                    "function": context.function,
                    "env": {ENV_MODEL_DIR: str(target / MODEL_DIR), **self.env, **context.env},
                    "digest": context.digest,
                    "labels": context.labels,
                    "created": time.time(),
                }
                (staging / "bundle.json").write_text(json.dumps(manifest, indent=2))
                try:
                    os.rename(staging, target)  # atomic: a bundle is complete or absent
                except OSError:
                    if not (target / "bundle.json").is_file():
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return BUNDLE_SCHEME + str(target)

"""Local revision bundles: image `bundle:///abs/dir`, the embedded stand-in for a built image.

The directory holds `bundle.json` {"function": name, "env": {...}}, optionally `code/` (put first
on PYTHONPATH, so it may ship its own function module) and `model/` (the first model source).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SCHEME = "bundle://"


class BundleError(ValueError):
    """The image names a bundle that cannot be used; the message says why."""


@dataclass(frozen=True)
class Bundle:
    root: Path
    function: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> Path | None:
        return self.root / "code" if (self.root / "code").is_dir() else None

    @property
    def model(self) -> Path | None:
        return self.root / "model" if (self.root / "model").is_dir() else None


def is_bundle(image: str | None) -> bool:
    return bool(image) and image.startswith(SCHEME)


def load_bundle(image: str) -> Bundle:
    """Read a `bundle:///dir` image; BundleError when the directory or its manifest is wrong."""
    root = Path(image[len(SCHEME) :])
    if not root.is_absolute():
        raise BundleError(f"bundle image {image!r} must be bundle:///absolute/dir")
    manifest = root / "bundle.json"
    try:
        doc = json.loads(manifest.read_text())
    except OSError as exc:
        raise BundleError(f"bundle {root}: cannot read bundle.json: {exc.strerror}") from None
    except ValueError as exc:
        raise BundleError(f"bundle {root}: bundle.json is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("function"), str):
        raise BundleError(f"bundle {root}: bundle.json needs a string 'function'")
    env = doc.get("env") or {}
    if not isinstance(env, dict):
        raise BundleError(f"bundle {root}: 'env' in bundle.json must be an object")
    return Bundle(root, doc["function"], {str(k): str(v) for k, v in env.items()})

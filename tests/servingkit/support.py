"""Helpers for the serving tests: a bundle with the probe function, specs, HTTP calls."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def probe_bundle(root: Path, env: dict[str, str] | None = None) -> str:
    """A `bundle:///…` image whose code/ holds the probe function (module `probe_fn`)."""
    (root / "code").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "probe_fn.py", root / "code" / "probe_fn.py")
    (root / "bundle.json").write_text(json.dumps({"function": "probe_fn", "env": env or {}}))
    return f"bundle://{root}"


def spec_text(services: str, namespace: str = "test") -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: knflow.dev/v1alpha1
        kind: Pipeline
        metadata: {{name: test, namespace: {namespace}}}
        buckets: [uploads]
        services:
        """
    ) + textwrap.indent(textwrap.dedent(services), "  ")


def get(url: str, timeout: float = 30.0, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

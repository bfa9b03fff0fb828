"""Find a function by name: a `functions.<name>` package, or a top-level module on PYTHONPATH.

The second form serves revision bundles, whose `code/` directory is put on PYTHONPATH and may
bring its own function module.
"""

from __future__ import annotations

import importlib

from ..contract import Function
from ..registry import available_functions, load_function


def resolve_function(name: str) -> Function:
    """`new()` of the named function; LookupError with the known names when there is none."""
    if name in available_functions():
        return load_function(name)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but one of its imports does not
            raise
        raise LookupError(
            f"unknown function {name!r} (known: {', '.join(available_functions())})"
        ) from None
    if not hasattr(module, "new"):
        raise LookupError(f"module {name!r} has no new() returning a function")
    return module.new()

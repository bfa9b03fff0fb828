"""Model stages as functions, and the shared function runtime that serves them.

A function is a subpackage of `functions` (e.g. `functions.transcribe`) whose module exposes
`new()` returning an object that follows `functions.contract.Function`: `handle(event)` plus the
optional `start(cfg)`, `stop()`, `ready()`, `alive()` and `routes()`. Models load in `start`.
"""

from .config import FunctionConfig
from .contract import BadInput, Function
from .registry import available_functions, load_function

__all__ = ["BadInput", "Function", "FunctionConfig", "available_functions", "load_function"]

"""The `tune` function: hyperparameter tuning as events, with Optuna studies in RDB storage.

Public API: `new()` (the function), `TuningRequest`/`SpaceError` (validation), `parse_phrase`
(plain-language search spaces), `Studies`/`Run` (the study logic the CLI and page read),
`storage_url(data_dir)`, and `TrialReporter`/`TrialPruned` for trainers.
"""

from .optimizers import storage_url
from .phrases import parse_phrase
from .request import Budget, Objective, TuningRequest
from .service import TuneFunction
from .space import Param, SpaceError, parse_space
from .study import Run, Studies, UnknownRun
from .worker import TrialPruned, TrialReporter

__all__ = [
    "Budget",
    "Objective",
    "Param",
    "Run",
    "SpaceError",
    "Studies",
    "TrialPruned",
    "TrialReporter",
    "TuneFunction",
    "TuningRequest",
    "UnknownRun",
    "new",
    "parse_phrase",
    "parse_space",
    "storage_url",
]


def new() -> TuneFunction:
    return TuneFunction()

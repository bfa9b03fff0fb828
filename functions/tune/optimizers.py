"""Optuna samplers and pruners built from a tuning request, and the storage they share.

Samplers and pruners are not persisted by Optuna, so every process that opens a study (the tune
service after a restart, each trainer that reports per-epoch values) rebuilds them from the stored
request with these functions: all of them then agree on how to sample and when to prune.
"""

from __future__ import annotations

import fcntl
import functools
import math
from pathlib import Path

import optuna

from .request import TuningRequest

optuna.logging.set_verbosity(optuna.logging.WARNING)

SQLITE_FILE = "studies.db"


def storage_url(data_dir: Path | str) -> str:
    """The instance's study database: sqlite under `<data>/.knflow/tuning/` (survives restarts)."""
    folder = Path(data_dir).resolve() / ".knflow" / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / SQLITE_FILE}"


@functools.cache
def open_storage(url: str) -> optuna.storages.BaseStorage:
    """One RDB storage per URL per process; sqlite waits on locks instead of failing at once.

    Optuna creates the schema on first use; two processes doing that at once on a new sqlite
    file (the tune replica and the CLI or page) collide, so creation holds a file lock."""
    if not url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url)
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def grid_size(request: TuningRequest) -> int:
    return math.prod(len(p.grid()) for p in request.params)


def make_sampler(request: TuningRequest, n_existing: int = 0) -> optuna.samplers.BaseSampler:
    """The request's sampler; the seed advances with the trials already asked, so a restarted
    service does not replay the same configurations."""
    seed = None if request.seed is None else request.seed + n_existing
    if request.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if request.sampler == "grid":
        return _AskTellGrid({p.name: p.grid() for p in request.params}, seed=seed)
    startup = max(2, min(10, request.budget.max_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def make_pruner(request: TuningRequest) -> optuna.pruners.BasePruner:
    if request.pruner == "median":
        startup = max(1, min(5, request.budget.max_trials // 4))
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if request.pruner == "hyperband":
        epochs = request.fixed.get("epochs")
        max_resource = int(epochs) if isinstance(epochs, int) and epochs > 1 else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource)
    return optuna.pruners.NopPruner()


class _AskTellGrid(optuna.samplers.GridSampler):
    """GridSampler for ask/tell: its `after_trial` calls `study.stop()`, which Optuna allows only
    inside `optimize`; the run's budget is capped at the grid size instead (`grid_size`)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None

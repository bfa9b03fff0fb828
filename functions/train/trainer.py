"""`train_model`: the pure training loop, shared by the `train` function and tuning trials."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, digits_dataset
from .model import build_model, make_recipe

log = logging.getLogger("knflow.train")

# Called after every epoch with that epoch's metrics. Raise (e.g. optuna.TrialPruned) to abort
# the run, or return True to stop early keeping the model as it is.
EpochCallback = Callable[[dict[str, Any]], bool | None]


@dataclass
class TrainParams:
    """Hyperparameters of one run; `from_mapping` validates user input (event or spec)."""

    name: str = "digits"
    epochs: int = 2  # 2 x 32 at lr 0.05 (one-cycle) reaches ~0.97 on held-out digits
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    seed: int = 0
    limit: int | None = None  # use only the first N training images (quick runs)
    threads: int | None = None  # torch intra-op threads (None: leave as is)
    recipe: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], base: Mapping[str, Any] = ()) -> TrainParams:
        """Params from `raw` over `base` (the service config); ValueError names the bad key."""
        merged = {**dict(base), **dict(raw)}
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in merged.items():
            if key == "model":
                key = "name"
            if key not in known or value is None:
                continue
            values[key] = _coerce(key, value, known[key].type)
        params = cls(**values)
        params.validate()
        return params

    def validate(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ValueError(f"name must be letters, digits, '-', '_' or '.', not {self.name!r}")
        if not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs must be in 1..1000, not {self.epochs}")
        if not 1 <= self.batch_size <= 4096:
            raise ValueError(f"batch_size must be in 1..4096, not {self.batch_size}")
        if not (0 < self.lr < 10) or math.isnan(self.lr):
            raise ValueError(f"lr must be in (0, 10), not {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', not {self.optimizer!r}")
        make_recipe(self.recipe)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(key: str, value: Any, annotation: str) -> Any:
    kind = annotation.split("|")[0].strip()
    try:
        if kind == "int" and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "str" and isinstance(value, str):
            return value
        if kind.startswith("dict") and isinstance(value, Mapping):
            return dict(value)
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{key} must be {kind}, not {value!r}")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> dict:
    """Accuracy and mean cross-entropy of `model` on (x, y), in eval mode without gradients."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.inference_mode():
        for i in range(0, len(y), batch):
            logits = model(x[i : i + batch])
            loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    n = max(len(y), 1)
    return {"accuracy": correct / n, "loss": loss / n}


def train_model(
    params: TrainParams,
    progress: EpochCallback | None = None,
    dataset: Dataset | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a fresh model; return it (eval mode) and metrics measured on the held-out split.

    Deterministic for a given seed and thread count. Metrics: accuracy, loss, per-epoch history,
    dataset sizes, duration and the recipe to rebuild the architecture.
    """
    if params.threads:
        torch.set_num_threads(params.threads)
    dataset = dataset or digits_dataset()
    train_x, train_y = dataset.train_x, dataset.train_y
    if params.limit:
        train_x, train_y = train_x[: params.limit], train_y[: params.limit]
    torch.manual_seed(params.seed)
    recipe = make_recipe(params.recipe)
    model = build_model(recipe)
    optimizer = _optimizer(params, model)
    steps_per_epoch = math.ceil(len(train_y) / params.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=params.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(params.seed)
    log.info("training %s on %s, %s", params.name, dataset.describe(), _brief(params))
    history: list[dict[str, Any]] = []
    started = time.monotonic()
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        seen, total_loss, correct = 0, 0.0, 0
        for i in range(0, len(order), params.batch_size):
            idx = order[i : i + params.batch_size]
            logits = model(train_x[idx])
            loss = F.cross_entropy(logits, train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(idx)
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == train_y[idx]).sum().item()
        held_out = evaluate(model, dataset.test_x, dataset.test_y)
        metrics = {
            "epoch": epoch,
            "train_loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "val_loss": held_out["loss"],
            "val_accuracy": held_out["accuracy"],
            "seconds": round(time.monotonic() - started, 2),
        }
        history.append(metrics)
        log.info(
            "epoch %d/%d: train loss %.4f acc %.4f | held-out loss %.4f acc %.4f (%.1fs)",
            epoch,
            params.epochs,
            metrics["train_loss"],
            metrics["train_accuracy"],
            metrics["val_loss"],
            metrics["val_accuracy"],
            metrics["seconds"],
        )
        if progress is not None and progress(dict(metrics)):
            log.info("stopped after epoch %d at the caller's request", epoch)
            break
    model.eval()
    final = history[-1]
    return model, {
        "name": params.name,
        "accuracy": final["val_accuracy"],
        "loss": final["val_loss"],
        "epochs": len(history),
        "history": history,
        "dataset": dataset.name,
        "train_size": len(train_y),
        "held_out_size": len(dataset.test_y),
        "seconds": round(time.monotonic() - started, 2),
        "params": params.as_dict(),
        "recipe": recipe,
    }


def _optimizer(params: TrainParams, model: nn.Module) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=params.lr,
        momentum=params.momentum,
        weight_decay=params.weight_decay,
        nesterov=params.momentum > 0,
    )


def _brief(params: TrainParams) -> str:
    return (
        f"epochs={params.epochs} batch_size={params.batch_size} lr={params.lr} "
        f"optimizer={params.optimizer} seed={params.seed}"
    )

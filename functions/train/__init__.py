"""`train`: ResNet-18 on 1x28x28 digits (MNIST from the store, or scikit-learn's digits).

`train_model(params, progress)` is the pure API (tuning trials reuse it); the function wraps it
with request parsing, checkpointing to the store and the `dev.knflow.model.trained` reply.
"""

from .checkpoint import checkpoint_bytes, load_checkpoint, save_run
from .data import Dataset, digits_dataset, mnist_dataset, parse_idx
from .function import TrainFunction
from .model import DEFAULT_RECIPE, build_model, make_recipe, sample_input
from .trainer import EpochCallback, TrainParams, evaluate, train_model

__all__ = [
    "DEFAULT_RECIPE",
    "Dataset",
    "EpochCallback",
    "TrainFunction",
    "TrainParams",
    "build_model",
    "checkpoint_bytes",
    "digits_dataset",
    "evaluate",
    "load_checkpoint",
    "make_recipe",
    "mnist_dataset",
    "parse_idx",
    "sample_input",
    "save_run",
    "train_model",
]


def new() -> TrainFunction:
    return TrainFunction()

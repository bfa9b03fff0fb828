"""Concurrency targets learned from measurements: the environment fitted to a sweep
(`environment`), tabular Q-learning (`qlearning`), the policy file (`policy`), the control-plane
client (`control`) and the `autoscaler` function that applies a policy on each ping."""

from .control import ControlError, EmbeddedControl, connect, target_patch
from .controller import Controller, Decision
from .environment import Environment, Measurement, Reward
from .function import AutoscalerFunction
from .learn import best_static, read_measurements, train_policy, write_measurements
from .policy import Policy, PolicyError
from .qlearning import Schedule, train


def new() -> AutoscalerFunction:
    return AutoscalerFunction()


__all__ = [
    "AutoscalerFunction",
    "ControlError",
    "Controller",
    "Decision",
    "EmbeddedControl",
    "Environment",
    "Measurement",
    "Policy",
    "PolicyError",
    "Reward",
    "Schedule",
    "best_static",
    "connect",
    "new",
    "read_measurements",
    "target_patch",
    "train",
    "train_policy",
    "write_measurements",
]

"""Torch settings every stage shares: few threads (replicas share the cores), and the device."""

from __future__ import annotations

import os
from typing import Any


def torch_threads(config: dict[str, Any] | None = None) -> int:
    """Limit intra-op threads: `config.threads`, else $KNFLOW_TORCH_THREADS, else 1.

    Several replicas of several services share a small machine; one thread each keeps them
    from fighting over the cores.
    """
    import torch

    n = int((config or {}).get("threads") or os.environ.get("KNFLOW_TORCH_THREADS") or 1)
    torch.set_num_threads(max(1, n))
    return n


def pick_device(config: dict[str, Any] | None = None) -> tuple[str, Any]:
    """("cuda", float16) when a GPU is present (unless `config.device` says otherwise), else
    ("cpu", float32): half precision only where it is fast and supported."""
    import torch

    wanted = (config or {}).get("device", "auto")
    if wanted == "cpu" or not torch.cuda.is_available():
        return "cpu", torch.float32
    return "cuda", torch.float16

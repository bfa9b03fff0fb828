"""Loading ResNet-50 weights from a URI without ever unpickling arbitrary objects."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.models import ResNet, resnet50

from .model import UNTRAINED, untrained_resnet50

# Opens an object-store URI (`s3://bucket/key`) as bytes; the function passes its store's reader.
Fetch = Callable[[str], bytes]


class WeightsError(ValueError):
    """The weights cannot be used; the message says why (missing file, wrong keys, pickle)."""


def load_resnet50(uri: str | None, fetch: Fetch | None = None) -> tuple[ResNet, str]:
    """The model and a label for its weights: the URI, or `untrained …` when there is none.

    `uri` is a local path or `file://` URL of a `.safetensors` file or a torch state dict
    (`.pt`/`.pth`, read with `weights_only=True`), or `s3://bucket/key` read through `fetch`.
    """
    if not uri:
        return untrained_resnet50(), UNTRAINED
    state = read_state_dict(uri, fetch)
    model = resnet50(weights=None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"{uri} is not a ResNet-50 state dict: {first}") from None
    return model.eval(), uri


def read_state_dict(uri: str, fetch: Fetch | None = None) -> dict[str, torch.Tensor]:
    if uri.startswith("s3://"):
        if fetch is None:
            raise WeightsError(f"{uri}: no object store configured to read it from")
        suffix = Path(uri).suffix
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(fetch(uri))
            tmp.flush()
            return _read_file(Path(tmp.name), uri)
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {uri} does not exist")
    return _read_file(path, uri)


def save_state_dict(model: torch.nn.Module, path: Path) -> Path:
    """Write `model`'s weights in the format `path`'s suffix names (safetensors or torch)."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def _read_file(path: Path, uri: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{uri} is not a readable safetensors file: {exc}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, …
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{uri} is not a plain torch state dict ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{uri} does not hold a mapping of parameter names to tensors")
    return state

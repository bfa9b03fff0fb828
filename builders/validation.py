"""Which uploaded model files are accepted: safetensors, TorchScript or ONNX within a size limit.

Everything is decided from the bytes without deserialising anything that could run code:
pickles (plain, or zipped as `torch.save` writes them) are refused with the reason, since
loading one executes whatever the file says.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

MAX_MODEL_BYTES = 512 * 1024 * 1024
PICKLE_REASON = (
    "loading a pickle runs arbitrary code from the file, so knflow never loads one; "
    "save the weights with safetensors (safetensors.torch.save_file), or export TorchScript "
    "(torch.jit.save) or ONNX (torch.onnx.export)"
)


class RefusedModel(ValueError):
    """An upload that is not served; the message says why and what to upload instead."""


@dataclass(frozen=True)
class ModelFile:
    format: str  # "safetensors" | "torchscript" | "onnx"
    size: int


def sniff(raw: bytes) -> str:
    """The file's format from its bytes: safetensors, torchscript, onnx, pickle, zip-pickle,
    zip, or unknown. Nothing is unpickled or executed."""
    if raw[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any("/code/" in n or n.startswith("code/") for n in names) and any(
            n.endswith("constants.pkl") for n in names
        ):
            return "torchscript"
        if any(n.endswith("data.pkl") or n.endswith(".pkl") for n in names):
            return "zip-pickle"
        return "zip"
    if len(raw) >= 2 and raw[0] == 0x80 and raw[1] <= 5:
        return "pickle"  # PROTO opcode: pickle protocol 2..5 (torch.save's legacy format too)
    if len(raw) >= 2 and raw[:1] in (b"(", b"}", b"]", b"c") and raw.rstrip()[-1:] == b".":
        return "pickle"  # protocol 0/1 pickles start with MARK/DICT/LIST/GLOBAL, end with STOP
    if _is_safetensors(raw):
        return "safetensors"
    if _is_onnx(raw):
        return "onnx"
    return "unknown"


def check_model(raw: bytes, filename: str, limit: int = MAX_MODEL_BYTES) -> ModelFile:
    """Accept or refuse an uploaded model file (RefusedModel says why)."""
    if len(raw) > limit:
        raise RefusedModel(
            f"{filename} is {len(raw) / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit"
        )
    if not raw:
        raise RefusedModel(f"{filename} is empty")
    kind = sniff(raw)
    if kind in ("pickle", "zip-pickle"):
        what = "a torch.save/pickle zip archive" if kind == "zip-pickle" else "a Python pickle"
        raise RefusedModel(f"{filename} is {what}: refused, {PICKLE_REASON}")
    if kind in ("zip", "unknown"):
        raise RefusedModel(
            f"{filename} is not a model knflow can serve (corrupt, or an unknown format): "
            "upload safetensors, TorchScript (.pt) or ONNX (.onnx)"
        )
    if kind == "onnx":
        _check_onnx(raw, filename)
    return ModelFile(kind, len(raw))


def _is_safetensors(raw: bytes) -> bool:
    if len(raw) < 10:
        return False
    size = int.from_bytes(raw[:8], "little")
    if not 2 <= size <= len(raw) - 8 or raw[8:9] != b"{":
        return False
    try:
        header = json.loads(raw[8 : 8 + size])
    except ValueError:
        return False
    if not isinstance(header, dict):
        return False
    body = len(raw) - 8 - size
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and 0 <= offsets[0] <= offsets[1] <= body
        ):
            return False
    return True


def _is_onnx(raw: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint: tag 0x08) in every exporter we know.
    return raw[:1] == b"\x08" and len(raw) > 16


def _check_onnx(raw: bytes, filename: str) -> None:
    """Parse the protobuf and run ONNX's checker (neither executes anything)."""
    import onnx

    try:
        model = onnx.load_model_from_string(raw)
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RefusedModel(f"{filename} is not a valid ONNX model: {first}") from None

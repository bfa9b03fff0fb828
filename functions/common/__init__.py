"""Helpers the audio stages share: decoding audio, resolving model URIs into a local cache,
reading the input object an event points at, and writing artifacts with stable keys."""

from .artifacts import (
    ObjectRef,
    input_ref,
    output_id,
    put_bytes,
    put_json,
    read_bytes,
    read_json,
    reply,
)
from .audio import decode_audio, read_audio_info
from .models import ModelError, ResolvedModel, model_cache, resolve_model, write_card
from .torchenv import pick_device, torch_threads

__all__ = [
    "ModelError",
    "ObjectRef",
    "ResolvedModel",
    "decode_audio",
    "input_ref",
    "model_cache",
    "output_id",
    "pick_device",
    "put_bytes",
    "put_json",
    "read_audio_info",
    "read_bytes",
    "read_json",
    "reply",
    "resolve_model",
    "torch_threads",
    "write_card",
]

"""`predict`: the Open Inference Protocol (V2) over an exported model (ONNX Runtime or
TorchScript), read from the revision's bundle (KNFLOW_MODEL_DIR) or a model URI."""

from .backends import FORMATS, OnnxBackend, TorchScriptBackend, open_backend
from .function import ENV_MODEL_DIR, PredictFunction
from .repository import LoadedModel, ModelError, fetch_repository, load_model
from .v2 import ProtocolError, image_to_array, load_input_file, output_array, request_body

__all__ = [
    "ENV_MODEL_DIR",
    "FORMATS",
    "LoadedModel",
    "ModelError",
    "OnnxBackend",
    "PredictFunction",
    "ProtocolError",
    "TorchScriptBackend",
    "fetch_repository",
    "image_to_array",
    "load_input_file",
    "load_model",
    "open_backend",
    "output_array",
    "request_body",
]


def new() -> PredictFunction:
    return PredictFunction()

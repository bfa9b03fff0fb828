"""Loading whisper from a spec URI: a model name, a checkpoint file in whisper's own format
({"dims": ModelDimensions, "model_state_dict": ...}), or an `s3://` object / builtin demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..common.models import ModelError, ResolvedModel, model_cache, require_file


def whisper_root(data_dir: Path) -> Path:
    """Where whisper looks for named models (`tiny.pt`, …): `<data>/.knflow/models/whisper`."""
    return model_cache(data_dir) / "whisper"


def load_whisper(model: ResolvedModel, data_dir: Path, device: str) -> Any:
    """A `whisper.model.Whisper`; ModelError with what to do when it is not available.

    Nothing is downloaded: a named model must already be in the download root (whisper would
    otherwise try the internet and hang or fail obscurely).
    """
    import whisper

    if model.path is None:
        name = model.name or ""
        if name not in whisper.available_models():
            names = ", ".join(whisper.available_models())
            raise ModelError(
                f"{name!r} is neither a whisper model name ({names}) "
                "nor a checkpoint path / s3:// URI / builtin:whisper-demo"
            )
        root = whisper_root(data_dir)
        expected = root / os.path.basename(whisper._MODELS[name])
        if not expected.is_file():
            raise ModelError(
                f"whisper model {name!r} is not in {root} and cannot be downloaded here: put "
                f"{expected.name} there, or use a checkpoint path, an s3:// URI or "
                "builtin:whisper-demo"
            )
        try:
            return whisper.load_model(name, device=device, download_root=str(root))
        except Exception as exc:  # a corrupt file fails its checksum and whisper tries to fetch
            raise ModelError(f"whisper model {name!r} in {root} cannot be loaded: {exc}") from None
    path = require_file(model, "whisper checkpoint")
    try:
        return whisper.load_model(str(path), device=device)
    except (KeyError, TypeError) as exc:
        raise ModelError(
            f"{model.uri}: not a whisper checkpoint (needs 'dims' and 'model_state_dict'): {exc}"
        ) from None
    except Exception as exc:  # unpickling refused (weights_only), corrupt file, shape mismatch
        raise ModelError(f"{model.uri}: cannot load whisper checkpoint: {exc}") from None

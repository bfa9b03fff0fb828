"""The demo whisper: the real architecture at whisper `tiny` dimensions, random weights, saved
as a checkpoint in whisper's own format so `whisper.load_model(path)` loads it like a real one.
Its transcripts are noise, and everything it produces says `untrained: true`.

`python -m functions.transcribe.demo_model DIR` builds it into DIR.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from ..common.models import write_card

# whisper `tiny` (39 M parameters): the size the demo and the benchmark run at.
TINY_DIMS = dict(
    n_mels=80,
    n_audio_ctx=1500,
    n_audio_state=384,
    n_audio_head=6,
    n_audio_layer=4,
    n_vocab=51865,
    n_text_ctx=448,
    n_text_state=384,
    n_text_head=6,
    n_text_layer=4,
)


def build(dest: Path, dims: dict | None = None, seed: int = 0) -> Path:
    """Write `model.pt` (fp16 weights, half the size) and its card into `dest`."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    dimensions = ModelDimensions(**(dims or TINY_DIMS))
    model = Whisper(dimensions)
    state = {k: v.half() for k, v in model.state_dict().items()}
    dest.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dimensions), "model_state_dict": state}, dest / "model.pt")
    write_card(
        dest,
        untrained=True,
        entry="model.pt",
        label="whisper (tiny dimensions, untrained weights: builtin:whisper-demo)",
    )
    return dest / "model.pt"


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "whisper-demo")))

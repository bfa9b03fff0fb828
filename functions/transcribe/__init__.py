"""`transcribe`: speech in an uploaded audio object → a transcript JSON (openai-whisper)."""

from .handler import Transcribe


def new() -> Transcribe:
    return Transcribe()


__all__ = ["Transcribe", "new"]

"""`sentiment`: a transcript → its sentiment label (transformers text classification)."""

from .handler import Sentiment


def new() -> Sentiment:
    return Sentiment()


__all__ = ["Sentiment", "new"]

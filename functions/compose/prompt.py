"""The text prompt for the music: a mood from the sentiment, a few content words from the
transcript (the user should hear that the clip is *about* what they said)."""

from __future__ import annotations

import re

MOODS = {
    "positive": "uplifting major key acoustic guitar and piano, bright, joyful",
    "negative": "melancholic minor key cello and piano, slow, sad",
    "neutral": "calm ambient lo-fi beat, mellow, gentle",
}
_STOPWORDS = """a an and are as at be but by for from has have i i'm in is it its me my of on or
our so that the this to too was we were what with you your very just really today hello"""
STOPWORDS = frozenset(_STOPWORDS.split())


def keywords(text: str, limit: int = 6) -> list[str]:
    """Distinct content words in order of appearance."""
    seen: dict[str, None] = {}
    for word in re.findall(r"[a-zA-Z][a-zA-Z'-]+", text.lower()):
        if word not in STOPWORDS and len(word) > 2:
            seen.setdefault(word, None)
    return list(seen)[:limit]


def build_prompt(label: str, text: str) -> str:
    mood = MOODS.get(label, MOODS["neutral"])
    words = keywords(text)
    return f"{mood}, inspired by {', '.join(words)}" if words else mood

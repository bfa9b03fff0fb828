"""ISO-8601 durations as Knative writes them (`PT0.2S`, `PT1M`, `P1DT2H`)."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration; raises ValueError with a readable message."""
    match = _DURATION.fullmatch(text or "")
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration (e.g. PT0.5S, PT1M)")
    d, h, m, s = (float(match.group(g) or 0) for g in "dhms")
    return d * 86400 + h * 3600 + m * 60 + s


def format_duration(seconds: float) -> str:
    """The shortest ISO-8601 form Knative accepts for a number of seconds."""
    if seconds <= 0:
        return "PT0S"
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"

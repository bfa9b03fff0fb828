"""A small deterministic parser for plain requests such as
"learning rate from 1e-4 to 1e-1, batch size 32 or 64" → a search space.

Grammar (one clause per parameter; clauses split by `;`, new lines, or a comma followed by a name):
    NAME [from|between|in|is|=|:] NUM (to|and|-|..) NUM [log|linear] [step NUM]   → float/int range
    NAME [one of|in|is|either|=|:] VALUE ((,|or|/) VALUE)+                         → categorical
A range of whole numbers is an int; a float range spanning two decades or more is log-scaled
unless "linear" is said. Familiar names map to the built-in trainer's ("learning rate" → lr).
"""

from __future__ import annotations

import re
from typing import Any

from .space import SpaceError

ALIASES = {
    "learning_rate": "lr",
    "learning": "lr",
    "rate": "lr",
    "batch": "batch_size",
    "batchsize": "batch_size",
    "batch_sizes": "batch_size",
    "epoch": "epochs",
    "number_of_epochs": "epochs",
    "weight_decay_rate": "weight_decay",
    "l2": "weight_decay",
    "dropout_rate": "dropout",
}
FLOAT_NAMES = {"lr", "momentum", "weight_decay", "dropout"}

_WORDS = r"[a-z_][a-z0-9_]*(?:\s+[a-z_][a-z0-9_]*)*?"  # a name: words that start with a letter
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_RANGE = re.compile(
    rf"^(?P<name>{_WORDS})\b\s*(?:from|between|in|is|=|:|range)?\s*\[?\s*(?P<low>{_NUM})\s*"
    rf"(?:to|and|-|\.\.|…)\s*(?P<high>{_NUM})\s*\]?"
    rf"(?P<rest>(?:\s+(?:on\s+a\s+)?(?:log(?:arithmic)?(?:\s+scale)?|linear(?:ly)?(?:\s+scale)?"
    rf"|step\s+{_NUM}|\(log\)|\(linear\)))*)\s*$"
)
_CHOICES = re.compile(
    rf"^(?P<name>{_WORDS})\b\s*(?:one\s+of|in|is|either|=|:|of)?\s*[\[{{(]?"
    r"(?P<values>[^\s,/\[\]{}()]+(?:\s*(?:,|\bor\b|/)\s*[^\s,/\[\]{}()]+)+)\s*[\]})]?\s*$"
)
_SEPARATORS = re.compile(r"(;|\n|,|\s+and\s+)")
_LEADING = re.compile(r"^(?:and|tune|try|with|search)\s+")


def parse_phrase(text: str) -> list[dict[str, Any]]:
    """Plain request → list of parameter entries for `space.parse_space`; SpaceError if unclear."""
    cleaned = text.strip().lower().rstrip(".")
    if not cleaned:
        raise SpaceError("the request is empty: say e.g. 'learning rate from 1e-4 to 1e-1'")
    entries, seen = [], set()
    for clause in _clauses(cleaned):
        entry = _clause(clause)
        if entry["name"] in seen:
            raise SpaceError(f"{entry['name']!r} is mentioned twice in the request")
        seen.add(entry["name"])
        entries.append(entry)
    return entries


def _clauses(text: str) -> list[str]:
    """Split at `;`/new lines always, and at `,`/`and` only where a readable clause follows
    ("optimizer sgd, adam" and "between 0.001 and 0.1" stay whole)."""
    pieces = _SEPARATORS.split(text)
    clauses = [_LEADING.sub("", pieces[0].strip())]
    for sep, piece in zip(pieces[1::2], pieces[2::2], strict=True):
        piece = _LEADING.sub("", piece.strip())
        if not piece:
            continue
        if sep in (";", "\n") or _RANGE.match(piece) or _CHOICES.match(piece):
            clauses.append(piece)
        else:
            clauses[-1] += f"{sep}{piece}" if sep.strip() == "and" else f"{sep} {piece}"
    return [c for c in clauses if c]


def _clause(clause: str) -> dict[str, Any]:
    match = _RANGE.match(clause)
    if match:
        name = _name(match["name"])
        low, high = float(match["low"]), float(match["high"])
        rest = match["rest"] or ""
        whole = all(re.fullmatch(r"[-+]?\d+", match[g]) for g in ("low", "high"))
        entry: dict[str, Any] = {
            "name": name,
            "type": "int" if whole and name not in FLOAT_NAMES else "float",
        }
        entry["low"], entry["high"] = (
            (int(low), int(high)) if entry["type"] == "int" else (low, high)
        )
        step = re.search(rf"step\s+({_NUM})", rest)
        if step:
            entry["step"] = float(step.group(1))
        if "log" in rest or (
            "linear" not in rest
            and not step
            and entry["type"] == "float"
            and low > 0
            and high / low >= 100
        ):
            entry["log"] = True
        return entry
    match = _CHOICES.match(clause)
    if match:
        values = [v for v in re.split(r"\s*(?:,|\bor\b|/)\s*", match["values"]) if v]
        return {
            "name": _name(match["name"]),
            "type": "categorical",
            "choices": [_value(v) for v in values],
        }
    raise SpaceError(
        f"cannot read {clause!r}: say 'NAME from LOW to HIGH' or 'NAME A or B' "
        "(e.g. 'learning rate from 1e-4 to 1e-1, batch size 32 or 64')"
    )


def _name(words: str) -> str:
    name = re.sub(r"\s+", "_", words.strip())
    name = re.sub(r"^(?:the|a)_", "", name)
    return ALIASES.get(name, name)


def _value(text: str) -> Any:
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(_NUM, text):
        return float(text)
    return {"true": True, "false": False}.get(text, text)

"""Traffic splits as Knative's Route does: percentages over revisions, `latestRevision`, tags.

A target is {revisionName | latestRevision: true, percent, tag}. Percentages must sum to 100;
a tag gives its revision an address of its own (here: the `Knative-Serving-Tag` header, or the
tag's own URL), whether or not it also carries a share of the main traffic.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT = ({"latestRevision": True, "percent": 100},)
TAG = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
TAG_HEADER = "Knative-Serving-Tag"


@dataclass(frozen=True)
class Target:
    revision: str  # resolved name
    percent: int
    tag: str | None
    latest: bool


def validate(targets: Any, revisions: Sequence[str]) -> list[str]:
    """Every problem with `targets` (empty list when the split is usable)."""
    if targets in (None, []):
        return []
    if not isinstance(targets, list):
        return ["spec.traffic must be a list of targets"]
    problems, tags, total = [], set(), 0
    for i, target in enumerate(targets):
        where = f"spec.traffic[{i}]"
        if not isinstance(target, dict):
            problems.append(f"{where} must be an object")
            continue
        unknown = set(target) - {"revisionName", "latestRevision", "percent", "tag"}
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name, latest = target.get("revisionName"), target.get("latestRevision")
        if latest not in (None, True, False):
            problems.append(f"{where}.latestRevision must be true or false")
        if bool(name) == bool(latest):
            problems.append(f"{where}: give exactly one of revisionName or latestRevision: true")
        elif name and name not in revisions:
            known = ", ".join(revisions) or "none"
            problems.append(f"{where}: revision {name!r} does not exist (revisions: {known})")
        percent = target.get("percent", 0)
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
            problems.append(f"{where}.percent must be an integer from 0 to 100, not {percent!r}")
        else:
            total += percent
        tag = target.get("tag")
        if tag is not None:
            if not isinstance(tag, str) or not TAG.match(tag):
                problems.append(f"{where}.tag {tag!r} is not a DNS label")
            elif tag in tags:
                problems.append(f"{where}.tag {tag!r} is used twice")
            tags.add(tag)
    if not problems and total != 100:
        problems.append(f"traffic percentages must sum to 100, not {total}")
    return problems


def resolve(targets: Sequence[dict[str, Any]], latest_ready: str) -> list[Target]:
    """Targets with `latestRevision` replaced by the latest ready revision's name."""
    return [
        Target(
            revision=latest_ready if t.get("latestRevision") else t["revisionName"],
            percent=int(t.get("percent", 0)),
            tag=t.get("tag"),
            latest=bool(t.get("latestRevision")),
        )
        for t in (targets or DEFAULT)
    ]


class Split:
    """Picks a revision per request: by tag when one is asked for, else by weighted draw."""

    def __init__(self, targets: Sequence[Target], rng: Callable[[], float] = random.random):
        self.targets = list(targets)
        self.tags = {t.tag: t.revision for t in self.targets if t.tag}
        weighted = [t for t in self.targets if t.percent > 0]
        self._names = [t.revision for t in weighted]
        self._cumulative, acc = [], 0
        for t in weighted:
            acc += t.percent
            self._cumulative.append(acc)
        self._rng = rng

    def pick(self, tag: str | None = None) -> str | None:
        """The revision for one request; None for an unknown tag."""
        if tag:
            return self.tags.get(tag)
        if len(self._names) == 1:
            return self._names[0]
        point = self._rng() * self._cumulative[-1]
        return self._names[bisect.bisect_right(self._cumulative, point)]

    def routed(self) -> set[str]:
        """Revisions that can receive requests (they keep min-scale; the others may go to 0)."""
        return {t.revision for t in self.targets if t.percent > 0 or t.tag}

    def percent_by_revision(self) -> dict[str, int]:
        shares: dict[str, int] = {}
        for t in self.targets:
            shares[t.revision] = shares.get(t.revision, 0) + t.percent
        return shares

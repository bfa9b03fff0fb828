"""From measurements to an environment the agent can practise in.

A sweep measures, for each link setting, traffic level (concurrent clients) and concurrency
target, the throughput, the p95 latency and the replicas used. Throughput saturates
exponentially with traffic (`a*(1 - exp(-c/b))`) and latency grows exponentially
(`l0*exp(k*c)`), so each (link, target) series is fitted with those curves by
`scipy.optimize.curve_fit`; the environment then answers for any traffic level, not only the
measured ones, and smooths measurement noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Measurement:
    """One cell of a sweep."""

    link: str
    traffic: int  # concurrent clients
    target: int  # autoscaling.knative.dev/target on both halves
    throughput: float  # completed requests per second
    p95_ms: float
    replicas: float  # mean replicas of A and B together while measuring
    requests: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    duration_s: float = 0.0

    FIELDS = (
        "link",
        "traffic",
        "target",
        "throughput",
        "p95_ms",
        "replicas",
        "requests",
        "errors",
        "p50_ms",
        "duration_s",
    )

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Measurement:
        try:
            return cls(
                link=row["link"],
                traffic=int(float(row["traffic"])),
                target=int(float(row["target"])),
                throughput=float(row["throughput"]),
                p95_ms=float(row["p95_ms"]),
                replicas=float(row["replicas"]),
                requests=int(float(row.get("requests") or 0)),
                errors=int(float(row.get("errors") or 0)),
                p50_ms=float(row.get("p50_ms") or 0),
                duration_s=float(row.get("duration_s") or 0),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"bad measurement row {row}: {exc}") from None

    def as_row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}


@dataclass(frozen=True)
class Reward:
    """Throughput, less a penalty for latency over the SLO and a small cost per replica.

    `switch_cost` is charged by the learner for every change of target: each change is a new
    revision whose replicas must start, which costs more than the table of outcomes shows.
    """

    slo_ms: float = 1000.0
    latency_weight: float = 1.0  # requests/s lost per second of p95 over the SLO, per req/s
    replica_cost: float = 0.0  # requests/s a replica must earn to pay for itself
    switch_cost: float = 0.0  # requests/s lost for one step of changing the target

    def __call__(self, throughput: float, p95_ms: float, replicas: float) -> float:
        over = max(0.0, p95_ms - self.slo_ms) / self.slo_ms
        return throughput * math.exp(-self.latency_weight * over) - self.replica_cost * replicas


def saturating(c: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * (1.0 - np.exp(-c / b))


def exp_growth(c: np.ndarray, l0: float, k: float) -> np.ndarray:
    return l0 * np.exp(k * c)


@dataclass
class Curve:
    """A fitted curve, or (too few points / no convergence) linear interpolation of the data."""

    kind: str  # "saturating", "exp" or "interp"
    params: list[float]
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)

    def __call__(self, c: float) -> float:
        x = np.asarray([c], dtype=float)
        if self.kind == "saturating":
            return float(saturating(x, *self.params)[0])
        if self.kind == "exp":
            return float(exp_growth(x, *self.params)[0])
        return float(np.interp(c, self.xs, self.ys))


def fit(kind: str, xs: Sequence[float], ys: Sequence[float]) -> Curve:
    """Fit `kind` ("saturating" or "exp") with curve_fit; interpolate when it cannot be fitted."""
    from scipy.optimize import curve_fit

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    fallback = Curve("interp", [], x.tolist(), y.tolist())
    if len(set(x.tolist())) < 2:
        return fallback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "saturating":
                p0 = [max(y.max(), 1e-6), max(x.mean(), 1e-3)]
                params, _ = curve_fit(
                    saturating, x, y, p0=p0, bounds=([0, 1e-3], [np.inf, 1e4]), maxfev=5000
                )
            else:
                k0 = math.log(max(y[-1], 1e-6) / max(y[0], 1e-6)) / max(x[-1] - x[0], 1e-6)
                p0 = [max(y[0] * math.exp(-k0 * x[0]), 1e-6), min(max(k0, -5.0), 5.0)]
                params, _ = curve_fit(
                    exp_growth, x, y, p0=p0, bounds=([0, -5.0], [np.inf, 5.0]), maxfev=5000
                )
    except (RuntimeError, ValueError):
        return fallback
    curve = Curve(kind, [float(p) for p in params], x.tolist(), y.tolist())
    if not all(math.isfinite(curve(c)) for c in x):
        return fallback
    return curve


@dataclass
class Environment:
    """Throughput, p95 and replicas for every (link, target), as functions of traffic."""

    links: list[str]
    traffic_levels: list[int]
    targets: list[int]
    throughput: dict[tuple[str, int], Curve]
    latency: dict[tuple[str, int], Curve]
    replicas: dict[tuple[str, int], Curve]

    @classmethod
    def fit(cls, rows: Iterable[Measurement]) -> Environment:
        rows = list(rows)
        if not rows:
            raise ValueError("no measurements to fit")
        links = list(dict.fromkeys(r.link for r in rows))
        traffic = sorted({r.traffic for r in rows})
        targets = sorted({r.target for r in rows})
        thr, lat, rep = {}, {}, {}
        for link in links:
            for target in targets:
                cell = [r for r in rows if r.link == link and r.target == target]
                if not cell:
                    raise ValueError(f"no measurements for link {link!r} at target {target}")
                xs = [r.traffic for r in cell]
                thr[link, target] = fit("saturating", xs, [r.throughput for r in cell])
                lat[link, target] = fit("exp", xs, [r.p95_ms for r in cell])
                rep[link, target] = Curve("interp", [], *_sorted(xs, [r.replicas for r in cell]))
        return cls(links, traffic, targets, thr, lat, rep)

    def outcome(self, link: str, traffic: float, target: int) -> tuple[float, float, float]:
        """(throughput, p95 ms, replicas) predicted for this situation."""
        key = (link, target)
        return (
            max(0.0, self.throughput[key](traffic)),
            max(0.0, self.latency[key](traffic)),
            max(0.0, self.replicas[key](traffic)),
        )

    def describe(self) -> dict[str, Any]:
        """The fitted parameters, for the policy file and for people."""
        return {
            f"{link}/target={target}": {
                "throughput": asdict(self.throughput[link, target]),
                "p95_ms": asdict(self.latency[link, target]),
            }
            for link in self.links
            for target in self.targets
        }


def _sorted(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    pairs = sorted(zip(xs, ys, strict=True))
    return [p[0] for p in pairs], [p[1] for p in pairs]

"""PNG plots of a sweep (with the fitted curves) and of a learned policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .environment import Environment, Measurement
from .policy import Policy


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_measurements(
    rows: Sequence[Measurement], path: Path, env: Environment | None = None
) -> Path:
    """Throughput and p95 against traffic, one panel pair per link, one line per target."""
    import numpy as np

    plt = _pyplot()
    links = list(dict.fromkeys(r.link for r in rows))
    targets = sorted({r.target for r in rows})
    fig, axes = plt.subplots(2, len(links), figsize=(5 * len(links), 7), squeeze=False)
    for col, link in enumerate(links):
        for target in targets:
            cell = sorted(
                (r for r in rows if r.link == link and r.target == target), key=lambda r: r.traffic
            )
            if not cell:
                continue
            xs = [r.traffic for r in cell]
            line = axes[0][col].plot(
                xs, [r.throughput for r in cell], "o", label=f"target {target}"
            )
            axes[1][col].plot(xs, [r.p95_ms for r in cell], "o", color=line[0].get_color())
            if env is not None:
                grid = np.linspace(min(xs), max(xs), 50)
                outcomes = [env.outcome(link, c, target) for c in grid]
                color = line[0].get_color()
                axes[0][col].plot(grid, [o[0] for o in outcomes], "-", color=color, alpha=0.6)
                axes[1][col].plot(grid, [o[1] for o in outcomes], "-", color=color, alpha=0.6)
        axes[0][col].set_title(f"link: {link}")
        axes[0][col].set_ylabel("throughput (req/s)")
        axes[1][col].set_ylabel("p95 latency (ms)")
        axes[1][col].set_xlabel("traffic (concurrent clients)")
        axes[0][col].legend(fontsize=8)
    fig.suptitle("split ResNet-50: measured (dots) and fitted (lines)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_policy(policy: Policy, path: Path) -> Path:
    """Per link: the greedy action in each (traffic, current target) state, where it settles."""
    plt = _pyplot()
    glyph = {"lower": "v", "keep": "o", "raise": "^"}
    color = {"lower": "tab:blue", "keep": "tab:gray", "raise": "tab:red"}
    n = len(policy.links)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    table = policy.table()
    for col, link in enumerate(policy.links):
        ax = axes[0][col]
        for li_level, level in enumerate(policy.traffic_levels):
            for k, _target in enumerate(policy.targets):
                action = policy.action(col, li_level, k)
                ax.scatter(li_level, k, marker=glyph[action], color=color[action], s=80)
            settled = policy.targets.index(table[link][level])
            ax.scatter(li_level, settled, marker="s", facecolors="none", edgecolors="k", s=220)
        ax.set_xticks(range(len(policy.traffic_levels)), [str(t) for t in policy.traffic_levels])
        ax.set_yticks(range(len(policy.targets)), [str(t) for t in policy.targets])
        ax.set_xlabel("traffic (concurrent clients)")
        ax.set_ylabel("current target")
        ax.set_title(f"link: {link}  (^ raise, o keep, v lower; box = settles)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

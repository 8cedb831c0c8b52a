"""The report's plots (matplotlib, from the ``bench`` extra), written as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

from matplotlib import pyplot as plt


def plot_latency(steps: list[dict[str, Any]], path: Path) -> None:
    """p50, p99 and p99.9 of both modes against the offered rate, log scale, the goal drawn."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for mode, colour in (("segstream", "tab:blue"), ("bare", "tab:grey")):
        mine = sorted((s for s in steps if s["mode"] == mode), key=lambda s: s["rate"])
        if not mine:
            continue
        rates = [s["rate"] for s in mine]
        for key, style in (("p50_ms", ":"), ("p99_ms", "-"), ("p999_ms", "--")):
            label = f"{mode} {key.removesuffix('_ms').replace('p999', 'p99.9')}"
            axes.plot(rates, [s[key] for s in mine], style, color=colour, marker="o", label=label)
    axes.axhline(50, color="tab:red", linewidth=0.8, label="goal: p99 ≤ 50 ms")
    axes.set_yscale("log")
    axes.set_xlabel("events/s offered (vegeta → bridge)")
    axes.set_ylabel("record timestamp → CRM received (ms)")
    axes.set_title("End-to-end latency against rate")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, ncols=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_scaling(runs: list[dict[str, Any]], path: Path) -> None:
    """Writes/s against the number of consumer instances."""
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.bar([str(r["instances"]) for r in runs], [r["per_s"] for r in runs], color="tab:blue")
    axes.set_xlabel("consumer instances (same 2-core machine)")
    axes.set_ylabel("CRM writes/s")
    axes.set_title("Throughput against instances")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)

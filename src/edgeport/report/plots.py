"""Charts of a run as base64 PNGs (matplotlib, Agg), so the HTML page needs no network."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def latency_distribution(document: dict) -> str | None:
    series = []
    if document.get("baseline", {}) and document["baseline"].get("samples_ms"):
        series.append(("pytorch-fp32", document["baseline"]["samples_ms"]))
    for name, entry in document["targets"].items():
        for device, prof in (entry.get("profiles") or {}).items():
            if prof.get("samples_ms"):
                series.append((f"{name}@{device}", prof["samples_ms"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(series) + 1.5))
    ax.boxplot([s for _, s in series], vert=False, tick_labels=[n for n, _ in series], showfliers=True)
    ax.set_xlabel("latency per inference (ms)")
    ax.set_title("Latency distribution")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def pareto_points(points: list[tuple[str, float, float, float]]) -> set[str]:
    """Names on the Pareto front: no other point is at least as fast and as faithful and smaller."""
    front = set()
    for name, lat, quality, size in points:
        dominated = any(o_lat <= lat and o_q >= quality and o_size <= size and (o_lat, o_q, o_size) != (lat, quality, size)
                        for _, o_lat, o_q, o_size in points)
        if not dominated:
            front.add(name)
    return front


def tradeoff(document: dict) -> str | None:
    points = []
    for name, entry in document["targets"].items():
        if entry.get("latency_ms") and entry.get("fidelity"):
            acc = entry.get("accuracy")
            quality = acc["artifact"] * 100 if acc else entry["fidelity"]["mean_cosine"]
            points.append((name, entry["latency_ms"]["p50"], quality, entry["size_mb"]))
    if not points:
        return None
    front = pareto_points(points)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    biggest = max(p[3] for p in points) or 1
    for name, lat, quality, size in points:
        on_front = name in front
        ax.scatter(lat, quality, s=80 + 900 * size / biggest, alpha=0.6,
                   edgecolors="black" if on_front else "none", linewidths=2 if on_front else 0)
        ax.annotate(f"{name}\n{size:.1f} MB", (lat, quality), textcoords="offset points", xytext=(8, 4), fontsize=8)
    ordered = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    ax.plot([p[1] for p in ordered], [p[2] for p in ordered], "k--", alpha=0.5, label="Pareto front")
    measured = [document["targets"][p[0]].get("accuracy") for p in points]
    metric = next((acc.get("metric", "accuracy") for acc in measured if acc), None)
    ax.set_xlabel("p50 latency (ms), this machine")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)" if metric else "mean cosine vs fp32")
    ax.set_title("Accuracy vs latency (bubble area: size on disk)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def sensitivity(document: dict) -> dict[str, str]:
    charts = {}
    for name, entry in document["targets"].items():
        rows = entry.get("sensitivity") or (entry.get("fallback") or {}).get("sensitivity") or []
        if not rows:
            continue
        rows = rows[:20][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
        ax.barh([r["unit"] for r in rows], [r["loss"] for r in rows], color="tab:red", alpha=0.7)
        ax.set_xlabel("fidelity loss when quantized alone (1 - mean cosine)")
        ax.set_title(f"Sensitivity: {name}")
        charts[name] = _png(fig)
    return charts

"""The sweep's report: sweep.json (every job, its results and provenance), sweep.md and
sweep.html (self-contained: charts as base64 PNG), with a Pareto front per device over
quality (accuracy, else fidelity), p50 latency, size and peak memory; the jobs that met each
budget, the closest misses, the failures and where each job ran.

A device is a board of the sweep (``devices:``) or a node's own CPU (``local@<hostname>``:
profiles on different nodes are not comparable, so each node is its own device)."""

from __future__ import annotations

import html
import json

from edgeport.report.plots import _png, plt

SCHEMA = "edgeport-sweep/1"


def job_metrics(document: dict, device: str | None, build_host: str | None) -> dict:
    """What the report compares, from a job's results document (one target per job)."""
    (target, entry), = document["targets"].items()
    accuracy, fidelity = entry.get("accuracy"), entry.get("fidelity") or {}
    fallback = entry.get("fallback")
    profiles = {}
    for name, prof in (entry.get("profiles") or {}).items():
        key = f"local@{build_host}" if name == "local" else name
        profiles[key] = {"p50_ms": prof["latency_ms"]["p50"], "peak_rss_mb": prof.get("peak_rss_mb"),
                         "reached_as": (prof.get("environment") or {}).get("reached_as", name)}
    return {"target": target, "size_mb": entry["size_mb"], "mean_cosine": fidelity.get("mean_cosine"),
            "accuracy": accuracy["artifact"] * 100 if accuracy else None,
            "quality": accuracy["artifact"] * 100 if accuracy else fidelity.get("mean_cosine"),
            "quality_kind": "accuracy %" if accuracy else "mean cosine vs fp32",
            "budget": fallback["budget"] if fallback else None, "budget_met": fallback["met"] if fallback else None,
            "fp32_layers": len(fallback["fp32_layers"]) if fallback else 0, "profiles": profiles}


def pareto(points: dict[str, tuple]) -> list[str]:
    """Keys of the non-dominated points. A point is (quality, p50, size, memory): quality higher
    is better, the rest lower; a None (not measured) in either point leaves that axis out."""
    def no_worse(a: tuple, b: tuple) -> bool:
        compared = False
        for axis, (x, y) in enumerate(zip(a, b)):
            if x is None or y is None:
                continue
            compared = True
            if (x < y) if axis == 0 else (x > y):
                return False
        return compared

    front = []
    for key, point in points.items():
        if not any(no_worse(other, point) and not no_worse(point, other)
                   for okey, other in points.items() if okey != key):
            front.append(key)
    return sorted(front)


def _points(jobs: list[dict]) -> dict[str, dict[str, tuple]]:
    """device -> job key -> (quality, p50, size, memory), for jobs that met their budget."""
    out: dict[str, dict[str, tuple]] = {}
    for job in jobs:
        m = job.get("metrics")
        if job["status"] != "done" or not m:
            continue
        for device, prof in m["profiles"].items():
            out.setdefault(device, {})[job["key"]] = (m["quality"], prof["p50_ms"], m["size_mb"], prof["peak_rss_mb"])
        if not m["profiles"]:
            out.setdefault("not profiled", {})[job["key"]] = (m["quality"], None, m["size_mb"], None)
    return out


def _budgets(jobs: list[dict]) -> dict[str, dict]:
    """Per budget: the jobs that met it, and the closest misses (smallest shortfall first)."""
    out: dict[str, dict] = {}
    for job in jobs:
        if job["status"] not in ("done", "missed"):
            continue
        entry = out.setdefault(job["axes"]["budget"], {"met": [], "closest_misses": []})
        if job["status"] == "done":
            entry["met"].append(job["key"])
            continue
        m = job["metrics"]
        floor = (m["budget"] or {}).get("min_fidelity")
        gap = floor - m["mean_cosine"] if floor is not None and m["mean_cosine"] is not None else None
        entry["closest_misses"].append({"key": job["key"], "shortfall": gap})
    for entry in out.values():
        entry["closest_misses"].sort(key=lambda miss: (miss["shortfall"] is None, miss["shortfall"] or 0))
        entry["closest_misses"] = entry["closest_misses"][:3]
    return out


def sweep_document(name: str, spec_sha256: str, jobs: list[dict], engine: dict | None, status: str,
                   created: str, wall_seconds: float | None, history: list[dict]) -> dict:
    counts = {state: sum(j["status"] == state for j in jobs) for state in ("done", "missed", "failed", "pending")}
    counts["cached"] = sum(bool(j.get("cached")) for j in jobs)
    points = _points(jobs)
    return {"schema": SCHEMA, "name": name, "spec_sha256": spec_sha256, "created": created, "status": status,
            "wall_seconds": wall_seconds, "counts": counts, "engine": engine, "history": history,
            "pareto": {device: pareto(pts) for device, pts in points.items()},
            "budgets": _budgets(jobs), "jobs": jobs}


# -- rendering

def _fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _where(job: dict) -> str:
    ran = job.get("ran_on") or {}
    hosts = [f"{phase} {h.get('hostname')} ({(h.get('node_id') or '')[:8]})" for phase, h in ran.items() if h]
    return "; ".join(hosts) or ("cached" if job.get("cached") else "–")


DEVICE_COLUMNS = ("job", "target", "budget", "quality", "p50 ms", "size MB", "peak MB", "front", "ran on")


def _device_rows(document: dict, device: str) -> list[list[str]]:
    front = set(document["pareto"].get(device, []))
    rows = []
    for job in document["jobs"]:
        m = job.get("metrics")
        if not m or job["status"] != "done" or (device not in m["profiles"] and device != "not profiled") or (
                device == "not profiled" and m["profiles"]):
            continue
        prof = m["profiles"].get(device, {})
        rows.append([job["label"], m["target"], job["axes"]["budget"], _fmt(m["quality"], ".4f"),
                     _fmt(prof.get("p50_ms")), _fmt(m["size_mb"], ".1f"), _fmt(prof.get("peak_rss_mb"), ".0f"),
                     "yes" if job["key"] in front else "", _where(job)])
    return rows


def _by_key(document: dict) -> dict[str, dict]:
    return {job["key"]: job for job in document["jobs"]}


def markdown(document: dict) -> str:
    counts = document["counts"]
    lines = [f"# edgeport sweep: {document['name']}", "",
             f"{len(document['jobs'])} jobs: {counts['done']} done, {counts['missed']} missed their budget, "
             f"{counts['failed']} failed, {counts['pending']} not run ({counts['cached']} reused from earlier runs); "
             f"status {document['status']}" + (f", {document['wall_seconds']:.0f} s" if document['wall_seconds'] else "")
             + "."]
    engine = document.get("engine")
    if engine:
        lines.append(f"Engine: Ray {engine['ray']} ({engine['mode']}), {len(engine['nodes'])} node(s).")
    for device in document["pareto"]:
        lines += ["", f"## {device}", "", "| " + " | ".join(DEVICE_COLUMNS) + " |", "|" + "---|" * len(DEVICE_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in _device_rows(document, device)]
    jobs = _by_key(document)
    lines += ["", "## Budgets", ""]
    for budget, entry in document["budgets"].items():
        met = ", ".join(jobs[k]["label"] for k in entry["met"]) or "none"
        misses = ", ".join(f"{jobs[m['key']]['label']} (short by {_fmt(m['shortfall'], '.4f')})"
                           for m in entry["closest_misses"]) or "none"
        lines.append(f"- **{budget}**: met by {met}; closest misses: {misses}")
    failed = [j for j in document["jobs"] if j["status"] == "failed"]
    if failed:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- {j['label']}: exit {j['error']['exit_code']}, {j['error']['message']}" for j in failed]
    return "\n".join(lines) + "\n"


def _chart(document: dict, device: str) -> str | None:
    jobs = _by_key(document)
    front = set(document["pareto"].get(device, []))
    points = []
    for key in (k for k, j in jobs.items() if j.get("metrics")):
        job, m = jobs[key], jobs[key]["metrics"]
        prof = m["profiles"].get(device)
        if job["status"] == "done" and prof:
            points.append((key, prof["p50_ms"], m["quality"], m["size_mb"], m["target"], job["axes"]["budget"]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    biggest = max(p[3] for p in points) or 1
    for key, lat, quality, size, target, budget in points:
        on = key in front
        ax.scatter(lat, quality, s=60 + 700 * size / biggest, alpha=0.6, edgecolors="black" if on else "none",
                   linewidths=2 if on else 0)
        ax.annotate(f"{target}\n{budget}, {size:.1f} MB", (lat, quality), textcoords="offset points", xytext=(8, 4),
                    fontsize=7)
    ax.scatter([], [], s=60, facecolors="none", edgecolors="black", linewidths=2, label="on the Pareto front")
    ax.ticklabel_format(useOffset=False)
    kinds = {jobs[p[0]]["metrics"]["quality_kind"] for p in points}
    ax.set_xlabel(f"p50 latency (ms) on {device}")
    ax.set_ylabel(" / ".join(sorted(kinds)))
    ax.set_title(f"{device}: quality vs latency (bubble area: size; front also weighs peak memory)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1300px}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .45rem}
th{background:#f3f3f3}.fail{color:#a00}figure{margin:1rem 0}img{max-width:100%}
pre{background:#f7f7f7;padding:1rem;overflow-x:auto;font-size:.75rem}
"""


def _table(columns, rows, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def html_report(document: dict) -> str:
    jobs = _by_key(document)
    sections = []
    for device in document["pareto"]:
        png = _chart(document, device)
        figure = (f'<figure class="chart" id="chart-{_slug(device)}"><img alt="Pareto chart for {html.escape(device)}" '
                  f'src="data:image/png;base64,{png}"></figure>') if png else ""
        sections.append(f"<h2>{html.escape(device)}</h2>" + figure
                        + _table(DEVICE_COLUMNS, _device_rows(document, device), f"device-{_slug(device)}"))
    budgets = "".join(
        f"<li><b>{html.escape(b)}</b>: met by {html.escape(', '.join(jobs[k]['label'] for k in e['met']) or 'none')}; "
        f"closest misses: {html.escape(', '.join(jobs[m['key']]['label'] for m in e['closest_misses']) or 'none')}</li>"
        for b, e in document["budgets"].items())
    all_rows = [[j["label"], j["status"] + (" (cached)" if j.get("cached") else ""),
                 f"exit {j['error']['exit_code']}: {j['error']['message']}" if j.get("error") else "", _where(j),
                 j["key"][:16]] for j in document["jobs"]]
    counts = document["counts"]
    engine = html.escape(json.dumps(document.get("engine"), indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeport sweep: {html.escape(document['name'])}</title>
<style>{STYLE}</style></head><body>
<h1>edgeport sweep: {html.escape(document['name'])}</h1>
<p id="counts">{len(document['jobs'])} jobs: {counts['done']} done, {counts['missed']} missed their budget,
{counts['failed']} failed, {counts['pending']} not run; {counts['cached']} reused. Status: {html.escape(document['status'])}.
Created {html.escape(document['created'])}.</p>
{''.join(sections)}
<h2>Budgets</h2><ul id="budgets">{budgets or '<li>none</li>'}</ul>
<h2>Every job</h2>{_table(("job", "status", "error", "ran on", "folder"), all_rows, "jobs")}
<h2>Engine</h2><pre id="engine">{engine}</pre>
</body></html>
"""

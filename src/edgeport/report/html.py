"""One self-contained HTML page (no script, no network at view time): summary table, latency
distribution, accuracy-vs-latency-vs-size with the Pareto front, sensitivity, environment."""

from __future__ import annotations

import html
import json

from edgeport.report import plots
from edgeport.report.table import COLUMNS, COMPRESSION_COLUMNS, VERIFY_COLUMNS, compression_rows, evidence, \
    precision_lines, rows, verification_rows

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{color:#a60}
figure{margin:1.5rem 0}img{max-width:100%}pre{background:#f7f7f7;padding:1rem;overflow-x:auto;font-size:.8rem}
"""


def _figure(png: str | None, chart_id: str, caption: str) -> str:
    if not png:
        return ""
    return (f'<figure id="{chart_id}" class="chart"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{png}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _fallback_item(name: str, fallback: dict) -> str:
    """One line per target: how many layers stayed in higher precision, by kind, with the full
    list folded away (a <details> element: no script needed)."""
    layers = fallback["fp32_layers"]
    verdict = "" if fallback["met"] else " — budget NOT met"
    if not layers:
        return f"<li><b>{html.escape(name)}</b>: none{verdict}</li>"
    kinds: dict[str, int] = {}
    for layer in layers:
        kind = ".".join(part for part in layer.split(".")[-3:] if not part.isdigit())
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = ", ".join(f"{count}× {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (f"<li><details><summary><b>{html.escape(name)}</b>: {len(layers)} layers{verdict} "
            f"({html.escape(summary)})</summary>{html.escape(', '.join(layers))}</details></li>")


def _compression(document: dict) -> str:
    """The compress stage's passes (PyTorch, before export), when the run had one."""
    report = document.get("compression")
    if not report:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COMPRESSION_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                   for row in compression_rows(report))
    return (f'<h2>Compression</h2><p>Each pass in order, measured in PyTorch against the original model.</p>'
            f'<table id="compression"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _device_verification(document: dict) -> str:
    """Host-side vs on-device fidelity, when any target was verified where it runs."""
    table = verification_rows(document)
    if not table:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in VERIFY_COLUMNS)
    body = "".join("<tr>" + "".join(f'<td{" class=warn" if v.startswith("DISAGREES") else ""}>{html.escape(v)}</td>'
                                    for v in row) + "</tr>" for row in table)
    return (f'<h2>Verification where it runs</h2><p>The report set through the artifact on each device '
            f'(edgeport.runtime, the code path users run), compared with fp32 beside the host-side check.</p>'
            f'<table id="device-verification"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _precisions(document: dict) -> str:
    lines = precision_lines(document)
    if not lines:
        return ""
    return ('<h2>INT8 vs FP16 where both ran</h2><ul id="precision-pairs">'
            + "".join(f'<li{" class=warn" if "NOT faster" in line else ""}>{html.escape(line)}</li>' for line in lines)
            + "</ul>")


def html_report(document: dict) -> str:
    model = document["model"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows(document))
    warnings = "".join(f'<p class="warn">warning: {html.escape(w)}</p>' for w in document.get("warnings", []))
    sens = "".join(_figure(png, f"sensitivity-{name}", f"Sensitivity of {name}")
                   for name, png in plots.sensitivity(document).items())
    fallbacks = "".join(_fallback_item(n, e["fallback"]) for n, e in document["targets"].items() if e.get("fallback"))
    env = html.escape(json.dumps(document.get("environment", {}), indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeport report: {html.escape(model['ref'])}</title>
<style>{STYLE}</style></head><body>
<h1>edgeport report: {html.escape(model['ref'])}</h1>
<p>{html.escape(model['family'])} {html.escape(model['task'])}, {model['parameters']:,} parameters,
{model['size_mb']:.1f} MB; created {html.escape(document['created'])}.</p>
{warnings}
<h2>Summary</h2><table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul id="evidence">{"".join(f"<li>{html.escape(line)}</li>" for line in evidence(document))}</ul>
{_device_verification(document)}
{_precisions(document)}
{_compression(document)}
<h2>Layers kept in higher precision</h2><ul id="fallbacks">{fallbacks or '<li>none</li>'}</ul>
<h2>Charts</h2>
{_figure(plots.latency_distribution(document), "latency-chart", "Latency distribution per target and device")}
{_figure(plots.tradeoff(document), "tradeoff-chart", "Accuracy vs latency vs size, Pareto front dashed")}
{sens}
<h2>Environment</h2><pre id="environment">{env}</pre>
</body></html>
"""

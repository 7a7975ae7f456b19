#!/usr/bin/env python3
"""Side by side on this machine: PyTorch fp32 eager vs every x86 edgeport target on MiniLM,
plus the choices the targets make (ONNX Runtime dynamic vs static INT8; OpenVINO IR from
torch vs from ONNX). Each artifact is timed in its own fresh process by the device agent
(never two runtimes in one process), the processes alternate over several rounds, and the
table gives the median p50 with its spread across rounds. Targets use their defaults (the
default budget: mean cosine >= 0.995, chosen on the built-in selection texts, reported on the
disjoint held-out texts).

    python bench/x86_targets.py [--rounds 3] [--runs 200] [--threads N]

Writes bench/results/x86_targets.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _results import provenance_line, write_results

VARIANTS = {  # run folder -> (targets, target options)
    "default": (["onnx-fp32", "onnx-int8", "openvino-fp16", "openvino-int8"], {}),
    "alternatives": (["onnx-int8", "openvino-int8"],
                     {"onnx-int8": {"mode": "static", "method": "percentile"}, "openvino-int8": {"source": "onnx"}}),
}
BASELINE = "pytorch-fp32 eager"


def build(work: Path, ui) -> tuple[dict[str, Path], dict[str, dict], Path]:
    from edgeport.recipe import recipe_from_dict
    from edgeport.stages.flow import run_export

    artifacts, facts = {}, {}
    for variant, (targets, options) in VARIANTS.items():
        recipe = recipe_from_dict({"model": "minilm", "targets": targets, "target_options": options,
                                   "profile": {"enabled": False}})
        results = run_export(recipe, work / variant, ui)
        for name, entry in results.targets.items():
            label = name if variant == "default" else f"{name} ({entry.strategy})"
            artifacts[label] = Path(entry.artifact)
            facts[label] = entry
    return artifacts, facts, work / "default" / "model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-x86"))
    args = parser.parse_args()

    from edgeport.devices.local_profile import profile_local
    from edgeport.recipe import ProfileSpec
    from edgeport.ui import UI, quiet_libraries

    quiet_libraries()
    ui = UI()
    artifacts, facts, model_dir = build(args.work, ui)
    rows = {BASELINE: model_dir, **artifacts}
    spec = ProfileSpec(runs=args.runs, warmup=20, threads=args.threads)
    p50s: dict[str, list[float]] = {name: [] for name in rows}
    rss: dict[str, list[float]] = {name: [] for name in rows}
    for round_ in range(args.rounds):
        for name, folder in rows.items():  # alternate: one process per artifact per round
            ui.info(f"round {round_ + 1}/{args.rounds}: {name}")
            profile = profile_local(folder, spec)
            p50s[name].append(profile.latency_ms.p50)
            rss[name].append(profile.peak_rss_mb)
    weights_mb = sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 1e6
    table = []
    for name in rows:
        entry = facts.get(name)
        table.append({
            "name": name, "p50_samples_ms": p50s[name], "peak_rss_mb": max(rss[name]),
            "size_mb": entry.size_mb if entry else round(weights_mb, 1),
            "mean_cosine": entry.fidelity.mean_cosine if entry else 1.0,
            "fidelity_source": entry.fidelity.source if entry else None,
            "fp32_layers": len(entry.fallback.fp32_layers) if entry and entry.fallback else 0,
            "int8_mac_share": entry.int8_mac_share if entry else None,
            "strategy": entry.strategy if entry else "torch eager"})
    document = {"model": "minilm", "rounds": args.rounds, "runs": args.runs, "threads": args.threads,
                "batch": 1, "sequence": 128, "rows": table}
    write_results("x86_targets", document, render)
    return 0


def render(document: dict) -> list[str]:
    medians = {row["name"]: statistics.median(row["p50_samples_ms"]) for row in document["rows"]}
    base = medians[BASELINE]
    sources = sorted({r["fidelity_source"] for r in document["rows"] if r.get("fidelity_source")})
    lines = [provenance_line(document), "",
             f"MiniLM, batch {document['batch']} x {document['sequence']}, {document['rounds']} rounds x "
             f"{document['runs']} runs; mean cosine on {', '.join(sources)}.", "",
             "| path | p50 ms (spread) | × PyTorch | size MB | peak RSS MB | mean cos | fp32 layers |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in document["rows"]:
        p50 = row["p50_samples_ms"]
        lines.append(f"| {row['name']} | {medians[row['name']]:.2f} ({min(p50):.2f}–{max(p50):.2f}) | "
                     f"{base / medians[row['name']]:.2f} | {row['size_mb']:.1f} | {row['peak_rss_mb']:.0f} | "
                     f"{row['mean_cosine']:.4f} | {row['fp32_layers']} |")
    ov = medians.get("openvino-int8")
    if ov:
        lines += ["", f"openvino-int8 p50 is {base / ov:.2f}x lower than PyTorch fp32 eager (goal: >= 5x)."]
    pt = next(r for r in document["rows"] if r["name"] == BASELINE)["p50_samples_ms"]
    lines.append(f"PyTorch fp32 eager ranged {min(pt):.2f}–{max(pt):.2f} ms across the rounds of this run.")
    return lines


if __name__ == "__main__":
    sys.exit(main())

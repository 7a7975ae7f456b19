#!/usr/bin/env python3
"""Side by side on this machine: PyTorch fp32 eager vs every x86 edgeport target on MiniLM,
plus the choices the targets make (ONNX Runtime dynamic vs static INT8; OpenVINO IR from
torch vs from ONNX). Each artifact is timed in its own fresh process by the device agent
(never two runtimes in one process), the processes alternate over several rounds, and the
table gives the median p50 with its spread across rounds.

    python bench/x86_targets.py [--rounds 3] [--runs 200] [--threads N]

Writes bench/results/x86_targets.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _results import write_results
from edgeport.devices.host import cpu_info
from edgeport.devices.local_profile import profile_local
from edgeport.recipe import recipe_from_dict
from edgeport.stages.flow import run_export
from edgeport.ui import UI, quiet_libraries

VARIANTS = {  # run folder -> (targets, target options)
    "default": (["onnx-fp32", "onnx-int8", "openvino-fp16", "openvino-int8"], {}),
    "alternatives": (["onnx-int8", "openvino-int8"],
                     {"onnx-int8": {"mode": "static", "method": "percentile"}, "openvino-int8": {"source": "onnx"}}),
}


def build(work: Path, ui: UI) -> tuple[dict[str, Path], dict[str, dict], Path]:
    artifacts, facts = {}, {}
    for variant, (targets, options) in VARIANTS.items():
        recipe = recipe_from_dict({"model": "minilm", "targets": targets, "target_options": options,
                                   "profile": {"enabled": False}})
        doc = run_export(recipe, work / variant, ui)
        for name, entry in doc["targets"].items():
            label = name if variant == "default" else f"{name} ({entry['strategy']})"
            artifacts[label] = Path(entry["artifact"])
            facts[label] = entry
    return artifacts, facts, work / "default" / "model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-x86"))
    args = parser.parse_args()
    quiet_libraries()
    ui = UI()
    artifacts, facts, model_dir = build(args.work, ui)
    rows = {"pytorch-fp32 eager": model_dir, **artifacts}
    p50s: dict[str, list[float]] = {name: [] for name in rows}
    rss: dict[str, float] = {}
    for round_ in range(args.rounds):
        for name, folder in rows.items():  # alternate: one process per artifact per round
            ui.info(f"round {round_ + 1}/{args.rounds}: {name}")
            result = profile_local(folder, runs=args.runs, warmup=20, threads=args.threads)
            p50s[name].append(result["latency_ms"]["p50"])
            rss[name] = result["peak_rss_mb"]
    base = statistics.median(p50s["pytorch-fp32 eager"])
    table = []
    for name in rows:
        entry = facts.get(name, {})
        fid = entry.get("fidelity") or {}
        med = statistics.median(p50s[name])
        table.append({"name": name, "p50_ms": med, "spread_ms": [min(p50s[name]), max(p50s[name])],
                      "speedup_vs_pytorch": base / med, "size_mb": entry.get("size_mb"),
                      "peak_rss_mb": rss[name], "mean_cosine": fid.get("mean_cosine", 1.0),
                      "fp32_layers": len((entry.get("fallback") or {}).get("fp32_layers") or []),
                      "strategy": entry.get("strategy", "torch eager")})
    document = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_info(), "rounds": args.rounds, "runs": args.runs,
                "batch": 1, "sequence": 128, "rows": table}
    md = [f"MiniLM, batch 1 x 128, {args.rounds} rounds x {args.runs} runs, {document['date']}, "
          f"{document['cpu']['model']} ({document['cpu']['cores']} cores)", "",
          "| path | p50 ms (spread) | × PyTorch | size MB | peak RSS MB | mean cos | fp32 layers |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for row in table:
        size = f"{row['size_mb']:.1f}" if row["size_mb"] else "90.9"
        md.append(f"| {row['name']} | {row['p50_ms']:.2f} ({row['spread_ms'][0]:.2f}–{row['spread_ms'][1]:.2f}) | "
                  f"{row['speedup_vs_pytorch']:.2f} | {size} | {row['peak_rss_mb']:.0f} | "
                  f"{row['mean_cosine']:.4f} | {row['fp32_layers']} |")
    ov = next(r for r in table if r["name"] == "openvino-int8")
    md.append("")
    md.append(f"openvino-int8 p50 is {ov['speedup_vs_pytorch']:.2f}x lower than PyTorch fp32 eager (goal: >= 5x).")
    write_results("x86_targets", document, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

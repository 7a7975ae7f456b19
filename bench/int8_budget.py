#!/usr/bin/env python3
"""The cost of accuracy: every INT8 target on MiniLM (batch 1 x 128) built without a budget
(everything quantized) and with the default budget (mean cosine >= 0.995 on held-out texts),
each timed in its own process, alternating over rounds.

    python bench/int8_budget.py [--rounds 3] [--runs 200]

Writes bench/results/int8_budget.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _results import write_results
from edgeport.devices.local_profile import profile_local
from edgeport.recipe import recipe_from_dict
from edgeport.stages.flow import run_export
from edgeport.ui import UI, quiet_libraries

TARGETS = ["onnx-int8", "openvino-int8", "tflite-int8"]  # tflite-int8-full: ~35 s per budget trial here
STATIC = {"onnx-int8": {"mode": "static", "method": "percentile"}}
BUDGETS = {"no budget": None, "budget 0.995": 0.995}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-int8"))
    args = parser.parse_args()
    quiet_libraries()
    ui = UI()
    rows = []
    for label, min_fidelity in BUDGETS.items():
        for variant, options in (("", {}), (" (static QDQ)", STATIC)):
            targets = TARGETS if not options else list(options)
            recipe = recipe_from_dict({"model": "minilm", "targets": targets, "target_options": options,
                                       "budget": {"min_fidelity": min_fidelity}, "profile": {"enabled": False}})
            folder = args.work / f"{label.replace(' ', '-')}{'-static' if options else ''}"
            doc = run_export(recipe, folder, ui)
            for name, entry in doc["targets"].items():
                rows.append({"target": name + variant, "budget": label, "folder": Path(entry["artifact"]),
                             "mean_cosine": entry["fidelity"]["mean_cosine"], "size_mb": entry["size_mb"],
                             "fp32_layers": len((entry.get("fallback") or {}).get("fp32_layers") or []),
                             "met": (entry.get("fallback") or {}).get("met", True), "p50": []})
    for r in range(args.rounds):
        for row in rows:
            ui.info(f"round {r + 1}/{args.rounds}: {row['target']} ({row['budget']})")
            row["p50"].append(profile_local(row["folder"], runs=args.runs, warmup=20)["latency_ms"]["p50"])
    md = [f"MiniLM, batch 1 x 128, {args.rounds} rounds x {args.runs} runs, {time.strftime('%Y-%m-%d')}", "",
          "| target | budget | layers kept fp32 | mean cos | p50 ms (spread) | size MB |", "|---|---|---:|---:|---:|---:|"]
    for row in sorted(rows, key=lambda r: (r["target"], r["budget"])):
        row["p50_median"] = statistics.median(row["p50"])
        md.append(f"| {row['target']} | {row['budget']}{'' if row['met'] else ' (NOT met)'} | {row['fp32_layers']} "
                  f"| {row['mean_cosine']:.4f} | {row['p50_median']:.2f} ({min(row['p50']):.2f}–{max(row['p50']):.2f}) "
                  f"| {row['size_mb']:.1f} |")
    write_results("int8_budget", {"rows": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()}
                                            for r in rows]}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

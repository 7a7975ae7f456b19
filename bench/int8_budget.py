#!/usr/bin/env python3
"""The cost of accuracy: every INT8 target on MiniLM (batch 1 x 128) built without a budget
(everything quantized) and with the default budget (mean cosine >= 0.995, chosen on the
built-in selection texts, reported on the disjoint held-out texts), each timed in its own
process, alternating over rounds. tflite-int8-full is built without a budget only (each of its
budget trials is a LiteRT conversion).

    python bench/int8_budget.py [--rounds 3] [--runs 200]

Writes bench/results/int8_budget.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _results import provenance_line, write_results

TARGETS = ["onnx-int8", "openvino-int8", "tflite-int8"]
STATIC = {"onnx-int8": {"mode": "static", "method": "percentile"}}
BUDGETS = {"no budget": 0.0, "budget 0.995": 0.995}
NO_BUDGET_ONLY = ["tflite-int8-full"]


def plans() -> list[tuple[str, str, list[str], dict, float]]:
    """(budget label, variant suffix, targets, target options, min_fidelity)."""
    out = []
    for label, min_fidelity in BUDGETS.items():
        extra = NO_BUDGET_ONLY if not min_fidelity else []
        out.append((label, "", TARGETS + extra, {}, min_fidelity))
        out.append((label, " (static QDQ)", list(STATIC), STATIC, min_fidelity))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-int8"))
    args = parser.parse_args()

    from edgeport.devices.local_profile import profile_local
    from edgeport.recipe import ProfileSpec, recipe_from_dict
    from edgeport.stages.flow import run_export
    from edgeport.ui import UI, quiet_libraries

    quiet_libraries()
    ui = UI()
    rows = []
    for label, variant, targets, options, min_fidelity in plans():
        recipe = recipe_from_dict({"model": "minilm", "targets": targets, "target_options": options,
                                   "budget": {"min_fidelity": min_fidelity}, "profile": {"enabled": False}})
        folder = args.work / f"{label.replace(' ', '-')}{'-static' if options else ''}"
        results = run_export(recipe, folder, ui)
        for name, entry in results.targets.items():
            fallback = entry.fallback
            rows.append({"target": name + variant, "budget": label, "artifact": entry.artifact,
                         "mean_cosine": entry.fidelity.mean_cosine, "fidelity_source": entry.fidelity.source,
                         "fidelity_samples": entry.fidelity.samples,
                         "selection": fallback.selection.model_dump() if fallback else None,
                         "size_mb": entry.size_mb, "int8_mac_share": entry.int8_mac_share,
                         "fp32_layers": len(fallback.fp32_layers) if fallback else 0,
                         "met": fallback.met if fallback else True, "p50": []})
    spec = ProfileSpec(runs=args.runs, warmup=20)
    for r in range(args.rounds):
        for row in rows:
            ui.info(f"round {r + 1}/{args.rounds}: {row['target']} ({row['budget']})")
            row["p50"].append(profile_local(Path(row["artifact"]), spec).latency_ms.p50)
    for row in rows:
        row["p50_median"] = statistics.median(row["p50"])
    write_results("int8_budget", {"model": "minilm", "batch": 1, "sequence": 128, "rounds": args.rounds,
                                  "runs": args.runs, "rows": rows}, render)
    return 0


def render(document: dict) -> list[str]:
    rows = sorted(document["rows"], key=lambda r: (r["target"], r["budget"]))
    sources = sorted({r["fidelity_source"] for r in rows if r.get("fidelity_source")})
    selections = sorted({f"{r['selection']['source']} ({r['selection']['samples']})"
                         for r in rows if r.get("selection")})
    lines = [provenance_line(document), "",
             f"MiniLM, batch {document['batch']} x {document['sequence']}, {document['rounds']} rounds x "
             f"{document['runs']} runs; mean cosine on the report set "
             f"({', '.join(sources)}); the budget chose on {', '.join(selections) or '–'}.", "",
             "| target | budget | layers kept fp32 | INT8 share of linear MACs | mean cos | p50 ms (spread) | size MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        share = f"{row['int8_mac_share']:.0%}" if row.get("int8_mac_share") is not None else "–"
        lines.append(f"| {row['target']} | {row['budget']}{'' if row['met'] else ' (NOT met)'} | {row['fp32_layers']} "
                     f"| {share} | {row['mean_cosine']:.4f} | {row['p50_median']:.2f} "
                     f"({min(row['p50']):.2f}–{max(row['p50']):.2f}) | {row['size_mb']:.1f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())

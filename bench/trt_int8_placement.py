#!/usr/bin/env python3
"""What each choice of the tensorrt-int8 Q/DQ graph is worth on MiniLM, every layer INT8 (no
budget, so nothing is kept out): NVIDIA ModelOpt's placement as it comes (Q/DQ on both inputs of
the residual Adds, the GEMM's own output included), then without the residual-Add Q/DQ, then
with the LayerNorm-fed MatMul inputs smoothed per channel (the target's default), and the
default with ModelOpt's `entropy` calibration in place of `max`. Each is a user's command::

    edgeport --json export minilm --target tensorrt-int8 --min-fidelity 0 --no-profile \\
        --option tensorrt-int8.quantize_residual_adds=true --option tensorrt-int8.smoothing_alpha=null --out RUN

Read back: the report-set fidelity (built-in held-out texts, host-side: ONNX Runtime on this
CPU), the selection-set fidelity of the same graph (the budget's first trial), and the Q/DQ
count. The budgeted build (what ships) is in bench/gpu_targets.py.

    python bench/trt_int8_placement.py      # needs `make setup-tensorrt`

Writes bench/results/trt_int8_placement.{json,md}.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _results import provenance_line, write_results

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "ModelOpt placement as it comes (residual Adds quantized), no smoothing":
        ["quantize_residual_adds=true", "smoothing_alpha=null"],
    "residual Adds FP16, no smoothing": ["smoothing_alpha=null"],
    "residual Adds FP16, LayerNorm-fed inputs smoothed (alpha 0.5): the default": [],
    "the default with entropy calibration": ["calibration_method=entropy"],
}


def export(options: list[str], out: Path) -> dict:
    argv = ["--json", "export", "minilm", "--target", "tensorrt-int8", "--min-fidelity", "0", "--no-profile",
            *[a for o in options for a in ("--option", f"tensorrt-int8.{o}")], "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgeport.cli", *argv], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"edgeport {' '.join(argv)} failed with exit code {done.returncode}")
    entry = json.loads(done.stdout)["targets"]["tensorrt-int8"]
    import onnx

    graph = onnx.load(str(Path(entry["artifact"]) / "model.onnx")).graph
    selection = entry["fallback"]["trials"][0]["fidelity"]
    return {"command": "edgeport " + " ".join(argv).replace(str(out), "RUN"), "seconds": round(time.perf_counter()
                                                                                              - started),
            "report": entry["fidelity"], "selection": selection, "int8_mac_share": entry["int8_mac_share"],
            "qdq_nodes": sum(n.op_type == "QuantizeLinear" for n in graph.node)}


def main() -> int:
    work = ROOT / "runs" / "bench-trt-placement"
    rows = {name: export(options, work / str(i)) for i, (name, options) in enumerate(VARIANTS.items())}
    write_results("trt_int8_placement", {"variants": rows}, render)
    return 0


def render(document: dict) -> list[str]:
    lines = [provenance_line(document, "bench/trt_int8_placement.py"), "",
             "MiniLM tensorrt-int8 with every weighted MatMul INT8 (no budget); host-side: ONNX Runtime on this CPU.",
             "", "| graph | report-set mean / min cosine (texts) | selection-set mean cosine (texts) | QuantizeLinear "
             "nodes |", "|---|---|---|---:|"]
    for name, row in document["variants"].items():
        rep, sel = row["report"], row["selection"]
        lines.append(f"| {name} | {rep['mean_cosine']:.4f} / {rep['min_cosine']:.4f} ({rep['samples']}) | "
                     f"{sel['mean_cosine']:.4f} ({sel['samples']}) | {row['qdq_nodes']} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())

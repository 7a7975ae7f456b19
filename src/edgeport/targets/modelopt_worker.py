#!/usr/bin/env python3
"""Runs in the ModelOpt environment (``make setup-tensorrt`` -> .venv-modelopt/), never in
edgeport's own: NVIDIA ModelOpt pins an older onnx than edgeport's. edgeport starts this file
as a subprocess with that environment's Python; it imports nothing of edgeport.

    python modelopt_worker.py quantize --onnx IN --out OUT --calib CALIB.npz --exclude NODES.json \\
        --method max --high-precision fp16 [--exclude-op-types Add] --result RESULT.json
    python modelopt_worker.py lint --onnx IN --result RESULT.json
    python modelopt_worker.py versions --result RESULT.json

``quantize``: NVIDIA ModelOpt's ONNX INT8 PTQ (the QDQ placement TensorRT's developer guide
describes: Q/DQ on the inputs of MatMul/Gemm, per-channel symmetric weights, per-tensor
symmetric activations, constant scales, the residual Add's skip input quantized; the attention
core left unquantized: ``disable_mha_qdq``), calibrated on the CPU (``calibration_eps=['cpu']``)
from the stacked feeds in CALIB.npz, with the nodes in NODES.json (and the op types of
``--exclude-op-types``) kept out of quantization; everything not INT8 is cast to
``--high-precision`` by ModelOpt's AutoCast.
``lint``: Polygraphy's ``check lint`` (ONNX checker, ONNX Runtime run, unused and
undefined tensors). Each writes RESULT.json with what it did and the tool versions.
"""

import argparse
import json
import os
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]  # never edgeport's modules


def versions():
    from importlib import metadata

    found = {}
    for dist in ("nvidia-modelopt", "onnx", "onnxruntime", "onnx-graphsurgeon", "polygraphy", "numpy", "torch"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    found["python"] = sys.version.split()[0]
    return found


def quantize(args):
    import numpy as np
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    calibration = dict(np.load(args.calib))
    with open(args.exclude) as fh:
        exclude = json.load(fh)
    started = time.perf_counter()
    modelopt_quantize(
        args.onnx, quantize_mode="int8", calibration_data=calibration, calibration_method=args.method,
        calibration_eps=["cpu"], nodes_to_exclude=exclude or None, op_types_to_exclude=args.exclude_op_types or None,
        output_path=args.out,
        high_precision_dtype=args.high_precision, disable_mha_qdq=True, log_level="ERROR",
    )
    return {"seconds": round(time.perf_counter() - started, 2), "calibration_samples": int(
        next(iter(calibration.values())).shape[0]), "nodes_excluded": exclude,
        "settings": {"quantize_mode": "int8", "calibration_method": args.method, "calibration_eps": ["cpu"],
                     "high_precision_dtype": args.high_precision, "disable_mha_qdq": True,
                     "op_types_to_exclude": args.exclude_op_types}}


def lint(args):
    tool = os.path.join(os.path.dirname(sys.executable), "polygraphy")
    report = args.result + ".lint.json"
    done = subprocess.run([tool, "check", "lint", args.onnx, "-o", report], capture_output=True, text=True,
                          timeout=args.timeout)
    if not os.path.isfile(report):
        return {"result": "error", "exit_code": done.returncode,
                "message": (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]}
    with open(report) as fh:
        body = json.load(fh)
    summary = body.get("summary", {})
    failing = summary.get("failing", [])
    return {"result": "passed" if done.returncode == 0 and not failing else "failed", "exit_code": done.returncode,
            "passing_nodes": len(summary.get("passing", [])), "failing_nodes": failing,
            "entries": [{k: entry.get(k) for k in ("level", "source", "message", "nodes")}
                        for entry in body.get("lint_entries", [])][:20]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["quantize", "lint", "versions"])
    parser.add_argument("--onnx")
    parser.add_argument("--out")
    parser.add_argument("--calib")
    parser.add_argument("--exclude")
    parser.add_argument("--method", default="max", choices=["max", "entropy"])
    parser.add_argument("--exclude-op-types", nargs="*", default=[])
    parser.add_argument("--high-precision", default="fp16", choices=["fp16", "fp32"])
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    result = {"quantize": quantize, "lint": lint, "versions": lambda a: {}}[args.command](args)
    result["versions"] = versions()
    with open(args.result, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""TensorRT's trtexec: its performance summary parsed into edgeport's metrics schema (the
"=== Performance summary ===" block: Throughput, Latency with min/max/mean/median/
percentiles, GPU Compute Time)."""

from __future__ import annotations

import re

_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _stats(text: str) -> dict[str, float]:
    """`min = 0.63 ms, max = 1.1 ms, mean = ..., median = ..., percentile(90%) = ...`"""
    out = {}
    for key, value in re.findall(r"(min|max|mean|median|percentile\(\d+(?:\.\d+)?%\))\s*=\s*" + _NUM, text):
        match = re.match(r"percentile\((\d+(?:\.\d+)?)%\)", key)
        out[f"p{float(match.group(1)):g}" if match else key] = float(value)
    return out


def parse_trtexec(output: str) -> dict:
    """trtexec's performance summary -> {latency_ms, throughput_per_s, gpu_compute_ms}."""
    summary = output.split("=== Performance summary ===", 1)
    if len(summary) != 2:
        raise ValueError("no '=== Performance summary ===' in trtexec output")
    body = summary[1]
    lat_line = re.search(r"\]\s*Latency:(.*)", body) or re.search(r"^\s*Latency:(.*)", body, re.M)
    if not lat_line:
        raise ValueError("no Latency line in trtexec's performance summary")
    lat = _stats(lat_line.group(1))
    gpu = re.search(r"GPU Compute Time:(.*)", body)
    thr = re.search(r"Throughput:\s*" + _NUM + r"\s*qps", body)
    version = re.search(r"TensorRT\.trtexec \[TensorRT v(\d+)\]", output)
    return {
        "latency_ms": {"p50": lat.get("median", lat.get("mean")), "p90": lat.get("p90"), "p99": lat.get("p99"),
                       "mean": lat["mean"], "min": lat.get("min"), "std": 0.0},
        "throughput_per_s": float(thr.group(1)) if thr else None,
        "gpu_compute_ms": _stats(gpu.group(1)) if gpu else None,
        "runtime": {"name": "tensorrt", "version": version.group(1) if version else None},
        "tool": "trtexec",
    }



"""Parsers of native tools' output into edgeport's metrics schema.

- ``trtexec`` (TensorRT): the "=== Performance summary ===" block (Throughput, Latency with
  min/max/mean/median/percentiles, GPU Compute Time).
- ``benchmark_model`` (TFLite/LiteRT): the ``count=... avg=... std=...`` line of the timed
  run (with ``median``/``p5``/``p95`` where the tool prints them), "Inference timings in us",
  and the memory footprint lines.
- ``tegrastats`` (Jetson): RAM used/total, CPU loads, GR3D (GPU) load, power rails.
"""

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


def parse_benchmark_model(output: str) -> dict:
    """TFLite benchmark_model output -> {latency_ms, load_ms, peak_memory_mb}."""
    counts = re.findall(r"count=(\d+)((?:\s+\w+=" + _NUM + r")+)", output)
    if not counts:
        raise ValueError("no 'count=... avg=...' line in benchmark_model output")
    fields = dict(re.findall(r"(\w+)=" + _NUM, counts[-1][1]))  # the last block is the timed run
    us = {k: float(v) / 1000.0 for k, v in fields.items()}  # microseconds -> ms
    init = re.search(r"Init:\s*" + _NUM, output)
    peak = re.search(r"peak memory footprint \(MB\)[^:]*:\s*" + _NUM, output, re.I)
    delta = re.search(r"Memory footprint delta[^:]*:\s*init=" + _NUM + r"\s+overall=" + _NUM, output)
    mean = us["avg"]
    return {
        "latency_ms": {"p50": us.get("median", mean), "p90": us.get("p90"), "p95": us.get("p95"),
                       "p99": us.get("p99"), "mean": mean, "std": us.get("std", 0.0), "min": us.get("min")},
        "runs": int(counts[-1][0]),
        "throughput_per_s": 1000.0 / mean if mean else None,
        "load_ms": float(init.group(1)) / 1000.0 if init else None,
        "peak_rss_mb": float(peak.group(1)) if peak else (float(delta.group(2)) if delta else None),
        "runtime": {"name": "tflite benchmark_model"},
        "tool": "benchmark_model",
    }


def parse_tegrastats(line: str) -> dict:
    """One tegrastats line -> RAM, CPU and GPU load, power rails (mW)."""
    ram = re.search(r"RAM (\d+)/(\d+)MB", line)
    if not ram:
        raise ValueError("not a tegrastats line (no RAM used/total)")
    cpus = [int(load) for load, _ in re.findall(r"(\d+)%@(\d+)", (re.search(r"CPU \[([^\]]*)\]", line) or [""])[0])]
    gpu = re.search(r"GR3D_FREQ (\d+)%", line)
    rails = {name: int(now) for name, now in re.findall(r"(VDD_\w+|VIN_\w+|POM_\w+) (\d+)mW", line)}
    return {"ram_used_mb": int(ram.group(1)), "ram_total_mb": int(ram.group(2)), "cpu_load": cpus,
            "gpu_load": int(gpu.group(1)) if gpu else None, "power_mw": rails}


def peak_from_tegrastats(lines: list[str]) -> dict:
    """Peak RAM used and peak power across tegrastats samples taken while a benchmark ran."""
    samples = [parse_tegrastats(line) for line in lines if "RAM " in line]
    if not samples:
        raise ValueError("no tegrastats samples")
    power = {}
    for sample in samples:
        for rail, mw in sample["power_mw"].items():
            power[rail] = max(power.get(rail, 0), mw)
    return {"peak_ram_used_mb": max(s["ram_used_mb"] for s in samples),
            "peak_gpu_load": max((s["gpu_load"] or 0) for s in samples), "peak_power_mw": power,
            "samples": len(samples)}

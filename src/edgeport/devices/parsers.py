"""Parsers of device-wide tools' output: ``tegrastats`` (Jetson): RAM used/total, CPU loads,
GR3D (GPU) load, power rails. Runtime tools (trtexec, benchmark_model) are parsed by their
targets (``targets/trtexec.py``, ``targets/litert_benchmark.py``).
"""

from __future__ import annotations

import re

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

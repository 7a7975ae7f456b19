"""LiteRT's ``benchmark_model`` as the native benchmark of TFLite artifacts on devices
without Python (Android phones): its command line, and its output parsed into edgeport's
metrics schema (the ``count=... avg=... std=...`` line of the timed run, with ``median``/
``p5``/``p95`` where the tool prints them, "Inference timings in us", and the memory
footprint lines)."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from edgeport.artifact import ArtifactManifest, DeviceShell, NativeBenchmark
from edgeport.errors import DeviceError

_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def benchmark_model_argv(binary: str, model: str, threads: int | None, runs: int, use_xnnpack: bool = True,
                         signature: str | None = None) -> list[str]:
    """``signature``: which signature of a multi-bucket model to time (its longest,
    ``serving_default``, unless said otherwise)."""
    argv = [binary, f"--graph={model}", f"--num_threads={threads or 4}", f"--num_runs={runs}",
            f"--use_xnnpack={'true' if use_xnnpack else 'false'}", "--report_peak_memory_footprint=true"]
    return argv + ([f"--signature_to_run_for={signature}"] if signature else [])


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




class BenchmarkModel(NativeBenchmark):
    """Runs ``benchmark_model`` on the pushed .tflite; the binary is the device's own (catalog
    ``native_tools``) or one pushed from ``--benchmark-binary``."""

    tool = "benchmark_model"

    def run(self, shell: DeviceShell, tool_path: str, artifact_dir: Path, remote_dir: str,
            manifest: ArtifactManifest, spec, where: str) -> dict:
        binary = tool_path
        if spec.benchmark_binary:
            binary = posixpath.join(posixpath.dirname(remote_dir), "benchmark_model")
            shell.push(Path(spec.benchmark_binary), binary)
            shell.exec(["chmod", "755", binary], timeout=30)
        elif tool_path == self.tool:
            raise DeviceError(f"profiling on {where} needs TFLite's benchmark_model binary",
                              hint="pass --benchmark-binary PATH (the android_aarch64 build from the LiteRT releases)")
        model = posixpath.join(remote_dir, manifest.files[0])
        keys = (manifest.signature or {}).get("keys") or {}
        signature = keys.get(str(spec.sequence)) or ((manifest.signature or {}).get("key") if len(keys) > 1 else None)
        done = shell.exec(benchmark_model_argv(binary, model, spec.threads, spec.runs, signature=signature),
                          timeout=spec.timeout_s)
        try:
            result = parse_benchmark_model(done.stdout + "\n" + done.stderr)
        except ValueError as exc:
            tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise DeviceError(f"benchmark_model failed on {where}: {tail}") from exc
        shape = manifest.fixed_shape or [spec.batch, spec.sequence]
        if signature and signature in keys.values():  # the bucket that was timed
            shape = [shape[0], int(next(n for n, key in keys.items() if key == signature))]
        result.update({"batch": shape[0], "sequence": shape[1], "threads": spec.threads or 4})
        return result

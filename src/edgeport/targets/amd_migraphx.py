"""`amd-fp16`: the strongly-typed FP16 ONNX graph (targets/fp16_graph.py) for AMD GPUs, run by
ONNX Runtime's MIGraphX execution provider (the ROCm provider is gone from ONNX Runtime 1.23
on; `onnxruntime-migraphx` needs ROCm 7.x libraries on the device).

An explicit FP16 graph rather than the provider's own conversion: the artifact is then the
thing that was verified, with its FP32 islands chosen from the activation ranges. The
provider's options are typed target options, written into the manifest's
``runtime_config`` and applied by the device agent, which also refuses to let the session
fall back to the CPU silently (``session.disable_cpu_ep_fallback=1`` and the session's first
provider asserted; ``--allow-cpu-fallback`` profiles anyway and says so).

Here (no AMD GPU) the graph is verified with ONNX Runtime on the CPU: host-side emulation,
which computes the FP16 nodes in FP32 — it checks weight rounding, and the range report
stands in for the overflow a CPU run cannot see. AMD's NPUs (Ryzen AI, the Vitis AI
provider, amd-quark) are another target, not this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeport.artifact import Built
from edgeport.targets.base import Availability, BuildContext, Target, TargetOptions, missing_module
from edgeport.targets.fp16_graph import fp16_graph, range_report
from edgeport.targets.onnxruntime_cpu import OrtRunner
from edgeport.verify import Runner

MODEL_FILE = "model.onnx"
PROVIDER = "MIGraphXExecutionProvider"
RANGE_BATCH = 16


class Fp16PassOptions(TargetOptions):
    headroom: float = Field(4.0, ge=1.0, description="keep a node in fp32 when its activations reach 65504/headroom "
                            "on the calibration texts")


class AmdFp16Options(Fp16PassOptions):
    fp16_mode: Literal["graph", "graph+provider"] = Field(
        "graph", description="graph: the FP16 graph runs as built; graph+provider: MIGraphX also converts the "
        "FP32 islands (migraphx_fp16_enable)")
    model_cache_dir: str | None = Field(None, description="folder on the device where MIGraphX saves and loads "
                                        "compiled programs (migraphx_model_cache_dir); unset: compiled at each load")
    exhaustive_tune: bool = Field(False, description="MIGraphX exhaustive kernel tuning at compile time (slow "
                                  "compile, faster kernels)")
    mem_limit_mb: int | None = Field(None, gt=0, description="MIGraphX arena memory limit in MB (migraphx_mem_limit)")
    device_id: int = Field(0, ge=0, description="GPU index on the device")


class EmulatedOrtRunner(OrtRunner):
    """ONNX Runtime on this machine's CPU standing in for a GPU runtime: host-side emulation."""

    def __init__(self, path: Path, what: str, threads: int | None = None):
        super().__init__(path, threads)
        self.what = what

    def info(self) -> dict:
        return {"host_side_emulation": self.what}


def host_side_sentence(runtime: str) -> str:
    return (f"host-side emulation: ONNX Runtime on this CPU ran the graph (FP16 nodes computed in FP32); "
            f"{runtime} runs only on the device")


def migraphx_provider_options(options: AmdFp16Options) -> dict[str, str]:
    """ONNX Runtime's MIGraphX provider options (string values, as the provider takes them)."""
    provider = {"device_id": str(options.device_id),
                "migraphx_fp16_enable": "1" if options.fp16_mode == "graph+provider" else "0",
                "migraphx_exhaustive_tune": "1" if options.exhaustive_tune else "0"}
    if options.model_cache_dir:
        provider["migraphx_model_cache_dir"] = options.model_cache_dir
    if options.mem_limit_mb:
        provider["migraphx_mem_limit"] = str(options.mem_limit_mb * 1024 * 1024)
    return provider


class Fp16GraphTarget(Target):
    """A target whose artifact is the FP16 pass's graph (shared by amd-fp16 and tensorrt-fp16)."""

    precision = "fp16"
    artifact_format = "onnx"
    device_runtime = ""

    def prepare(self, ctx: BuildContext):
        """The activation range report: one pass over the calibration texts per build."""
        return range_report(ctx.onnx_path, ctx.calibration.feeds(batch_size=RANGE_BATCH))

    def fp16(self, ctx: BuildContext, out: Path, prepared) -> tuple[Built, dict]:
        graph = fp16_graph(ctx.onnx_path, out / MODEL_FILE, (), ctx.options.headroom, report=prepared)
        details = graph.details()
        precision = {"default": "fp16", "fp32_islands": len(graph.islands),
                     "io": "as the fp32 graph (keep_io_types)"}
        return Built([MODEL_FILE], "explicit FP16 graph, FP32 islands from activation ranges "
                     "(ONNX Runtime float16 converter)", precision,
                     calibration=ctx.calibration.summary()), details

    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner:
        return EmulatedOrtRunner(Path(artifact_dir) / MODEL_FILE, host_side_sentence(self.device_runtime), threads)


class AmdFp16(Fp16GraphTarget):
    name = "amd-fp16"
    runtime = "onnxruntime-migraphx"
    device_runtime = "MIGraphX (onnxruntime-migraphx on ROCm 7.x)"
    Options = AmdFp16Options

    def check(self) -> Availability:
        return missing_module("onnxruntime", None) or Availability(True)

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        built, details = self.fp16(ctx, out, prepared)
        runtime_config = {"execution_provider": PROVIDER, "provider_options": migraphx_provider_options(ctx.options),
                          "session_config": {"session.disable_cpu_ep_fallback": "1"},
                          "device_packages": "ROCm 7.x + onnxruntime-migraphx (never beside the CPU onnxruntime)"}
        details["host_side"] = host_side_sentence(self.device_runtime)
        return Built(built.files, built.strategy, built.precision, runtime_config=runtime_config,
                     calibration=built.calibration, details=details)

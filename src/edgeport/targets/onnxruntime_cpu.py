"""ONNX Runtime on CPU: `onnx-fp32` and `onnx-int8`.

`onnx-int8` modes (option ``mode``):

- ``dynamic`` (default): per-channel symmetric INT8 weights, activations quantized at run
  time; with every MatMul quantized MiniLM misses a 0.995 cosine budget, which then keeps the
  most sensitive layers in fp32 (calibration/budget.py; figures: bench/int8_budget.py).
- ``static``: QDQ with calibrated activation ranges (``method``: minmax, percentile,
  entropy, distribution), symmetric activations and per-channel weights, MatMuls only. It
  is the format TensorRT consumes; on this CPU ONNX Runtime runs it slower than fp32.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeport.artifact import ArtifactManifest, Built
from edgeport.exporter.graph import onnx_nodes_for
from edgeport.targets.base import Availability, BuildContext, Target, TargetOptions, missing_module
from edgeport.verify import Runner

MODEL_FILE = "model.onnx"


class OnnxInt8Options(TargetOptions):
    mode: Literal["dynamic", "static"] = Field("dynamic", description="dynamic: weights int8, activations at run "
                                               "time; static: calibrated symmetric QDQ (MatMuls)")
    method: Literal["minmax", "percentile", "entropy", "distribution"] = Field(
        "minmax", description="activation range method of mode=static")
    percentile: float = Field(99.999, gt=0, le=100, description="percentile of method=percentile")


class OrtRunner(Runner):
    """Verification's runner: edgeport.runtime's ONNX Runtime backend (the call users make)."""

    def __init__(self, path: Path, threads: int | None = None, settings: dict | None = None):
        from edgeport.runtime.backends import OnnxRuntimeBackend

        self.backend = OnnxRuntimeBackend(str(path), threads, settings)
        self.session = self.backend.session
        super().__init__(self.backend.input_names)

    def _infer_impl(self, feeds):
        if len(self.session.get_outputs()) > 1:  # several outputs (question answering): all, in order
            return self.session.run(None, feeds)
        return self.backend.run(feeds)


class _OrtTarget(Target):
    runtime = "onnxruntime"
    artifact_format = "onnx"

    def check(self) -> Availability:
        return missing_module("onnxruntime", None) or Availability(True)

    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner:
        request = ArtifactManifest.read(artifact_dir).request_path
        return OrtRunner(Path(artifact_dir) / MODEL_FILE, threads, request.runtime if request else None)


class OnnxFp32(_OrtTarget):
    name = "onnx-fp32"
    precision = "fp32"

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        shutil.copyfile(ctx.onnx_path, out / MODEL_FILE)
        return Built([MODEL_FILE], "the exported fp32 graph", {"default": "fp32"})


class _CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over our feeds."""

    def __init__(self, feeds):
        self._iter = iter(feeds)

    def get_next(self):
        return next(self._iter, None)


class OnnxInt8(_OrtTarget):
    name = "onnx-int8"
    precision = "int8"
    quantized = True
    Options = OnnxInt8Options

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        options = ctx.options
        exclude = onnx_nodes_for(ctx.onnx_path, ctx.keep_fp)
        if options.mode == "dynamic":
            self._dynamic(ctx.onnx_path, out / MODEL_FILE, exclude)
            strategy = "ort-dynamic-int8 (per-channel symmetric weights)"
        else:
            self._static(ctx, out / MODEL_FILE, exclude)
            strategy = f"ort-static-qdq (symmetric, per-channel, {options.method})"
        precision = {"default": "int8 (MatMul, Gemm" + (", embedding Gather)" if options.mode == "dynamic" else ")"),
                     "fp32_layers": list(ctx.keep_fp)}
        return Built([MODEL_FILE], strategy, precision,
                     calibration=ctx.calibration.summary() if options.mode == "static" else None)

    @staticmethod
    def _dynamic(src: Path, dst: Path, exclude: list[str]) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm", "Gather"], nodes_to_exclude=exclude)

    @staticmethod
    def _static(ctx: BuildContext, dst: Path, exclude: list[str]) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy, "distribution": CalibrationMethod.Distribution}
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(ctx.onnx_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(dst),
                _CalibrationReader(ctx.calibration.feeds(batch_size=1, fixed_length=ctx.calibration.longest())),
                quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=methods[ctx.options.method], nodes_to_exclude=exclude,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                               "CalibPercentile": ctx.options.percentile,
                               "CalibTensorRangeSymmetric": True},
            )


def fp32_reference_runner(onnx_path: Path) -> Runner:
    """A runner for the fp32 ONNX graph: the reference when no PyTorch model is at hand."""
    return OrtRunner(onnx_path)


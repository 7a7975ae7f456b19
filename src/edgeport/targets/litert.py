"""LiteRT (TFLite) for phones and ARM boards: `tflite-fp32`, `tflite-fp16`, `tflite-int8`
and `tflite-int8-full`, verified here with ai-edge-litert's interpreter (XNNPACK).

Converter (measured here on MiniLM): litert-torch converts the PyTorch module directly (no
TensorFlow) in seconds; ai-edge-quantizer quantizes the result. onnx2tf needed a Flex-op
workaround, took minutes and crashed on integer inputs when quantizing, so it is not used.

- fp32: the converted graph. fp16: weights cast to fp16 (FLOAT_CASTING), compute in fp32.
- int8: dynamic range: per-channel int8 weights, activations quantized at run time.
- int8-full: int8 weights and activations from a representative dataset (the calibration
  texts), for integer-only accelerators; the accuracy budget keeps sensitive layers float.
  Experimental for transformers: with every op in int8, BERT-style models lose most of their
  fidelity whatever layers fall back, because the ops between the layers (residual adds,
  LayerNorm's mean and variance) break it, not the layers. Option ``int8_ops`` (e.g.
  ``FULLY_CONNECTED,BATCH_MATMUL``) restricts int8 to those op types and keeps the rest float
  (no longer integer-only: an NPU runs them on its CPU fallback); then the budget's layer
  fallback works (tests/test_litert.py reads the op dtypes from the file and compares the
  fidelity of both).

TFLite graphs have static shapes: option ``batch`` (default 1) and one signature per
sequence bucket (option ``buckets``, e.g. ``16,32,64,128``; the longest is option ``sequence``,
default 128, whose signature is ``serving_default``, the others ``seq_<n>``; inputs are int32
named as in the model; output ``output_0``). edgeport.runtime runs a request in the smallest
bucket that holds it, so a phone does not run 128 tokens for a 20-token sentence; the manifest
records the buckets in ``signature`` and ``request_path``. The signatures share the weights:
measured on MiniLM, 16,32,64,128 make the fp32 file 90.8 MB instead of 89.9 MB and the dynamic
INT8 one 26.3 MB instead of 23.5 MB; conversion takes about 2.7x as long (one trace and
lowering per bucket). Per-bucket latency: bench/results/request_path.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from edgeport.artifact import Built
from edgeport.errors import UsageError
from edgeport.targets.base import Availability, BuildContext, Target, TargetOptions, missing_module
from edgeport.verify import Runner

MODEL_FILE = "model.tflite"
SIGNATURE = "serving_default"


DEFAULT_BUCKETS = "16,32,64"


class LiteRtOptions(TargetOptions):
    batch: int = Field(1, gt=0, description="the graph's static batch size")
    sequence: int = Field(128, gt=0, description="the longest static sequence length (tokens)")
    buckets: str = Field(DEFAULT_BUCKETS, description="comma-separated shorter sequence lengths, one signature each "
                         "(a request runs in the smallest that holds it); '' for the one sequence only")

    @field_validator("buckets")
    @classmethod
    def _lengths(cls, value):
        for item in value.split(","):
            if item.strip() and (not item.strip().isdigit() or int(item) <= 0):
                raise ValueError(f"buckets: '{item.strip()}' is not a positive whole number of tokens")
        return value

    def lengths(self) -> list[int]:
        """The sequence lengths to compile, ascending: the buckets up to ``sequence``, and it."""
        shorter = {int(item) for item in self.buckets.split(",") if item.strip()}
        return sorted({n for n in shorter if n < self.sequence} | {self.sequence})


def signature_key(length: int, longest: int) -> str:
    return SIGNATURE if length == longest else f"seq_{length}"


class LiteRtFullOptions(LiteRtOptions):
    int8_ops: str | None = Field(None, description="comma-separated TFLite op types that get int8 (e.g. "
                                 "FULLY_CONNECTED,BATCH_MATMUL); the rest stays float [every op]")

    @field_validator("int8_ops")
    @classmethod
    def _known_ops(cls, value):
        import importlib.util

        if value and importlib.util.find_spec("ai_edge_quantizer"):
            int8_ops(value)  # raises a usage error naming the unknown op types
        return value


def tflite_regex(module_path: str) -> str:
    """A regex matching the TFLite tensors of a torch module. litert-torch names them by
    ``Class_attribute`` segments; a ModuleList's own name is dropped and its index kept:
    ``encoder.layer.3.output.dense`` -> ``.../[^/]*_encoder/[^/]*_3/[^/]*_output/[^/]*_dense``."""
    parts = module_path.split(".")
    segments = [rf"[^/;]*_{re.escape(part)}" for i, part in enumerate(parts)
                if not (i + 1 < len(parts) and parts[i + 1].isdigit())]
    return r".*_m/" + "/".join(segments) + r"(?:[/;].*|$)"


class LiteRtRunner(Runner):
    """Verification's runner: edgeport.runtime's LiteRT backend, which routes each batch to the
    smallest signature that holds it (what users run). With the longest signature shorter than
    edgeport's verification length, the runner is fixed-shape: texts are cut to it."""

    def __init__(self, path: Path, threads: int | None = None):
        from edgeport.calibration.feeds import DEFAULT_MAX_LENGTH
        from edgeport.runtime.backends import LiteRtBackend

        self.backend = LiteRtBackend(str(path), threads)
        longest = self.backend.buckets[-1]
        super().__init__(self.backend.input_names,
                         (self.backend.batch, longest) if longest < DEFAULT_MAX_LENGTH else None)

    def _infer_impl(self, feeds):
        outputs = self.backend.run_all(feeds)
        return outputs if len(outputs) > 1 else outputs[0]

    def info(self) -> dict:
        return {"buckets": list(self.backend.buckets)}


class _LiteRtTarget(Target):
    runtime = "litert"
    artifact_format = "tflite"
    fixed_shape = True
    Options = LiteRtOptions

    def check(self) -> Availability:
        for module in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"):
            if missing := missing_module(module, "tflite"):
                return missing
        return Availability(True)

    def native_benchmark(self):
        from edgeport.targets.litert_benchmark import BenchmarkModel

        return BenchmarkModel()

    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner:
        return LiteRtRunner(Path(artifact_dir) / MODEL_FILE, threads)

    def prepare(self, ctx: BuildContext) -> bytes:
        """The fp32 graph, converted once per build: every budget trial re-quantizes it."""
        if ctx.model_dir is None:
            raise UsageError(f"{self.name} converts from the PyTorch model, and this run has only an ONNX file",
                             hint="run `edgeport export MODEL_FOLDER --target ...` instead of `build model.onnx`")
        return convert(ctx.model_dir, ctx.input_names, ctx.options.batch, ctx.options.lengths())

    def _build_impl(self, ctx: BuildContext, out: Path, prepared: bytes | None) -> Built:
        shape = (ctx.options.batch, ctx.options.sequence)
        fp32 = out / "fp32.tflite"
        fp32.write_bytes(prepared if prepared is not None else self.prepare(ctx))
        built = self._quantize(ctx, fp32, out / MODEL_FILE, shape)
        fp32.unlink(missing_ok=True) if (out / MODEL_FILE).exists() else fp32.rename(out / MODEL_FILE)
        lengths = ctx.options.lengths()
        signature = {"key": SIGNATURE, "inputs": {n: "int32" for n in ctx.input_names},
                     "outputs": [f"output_{i}" for i in range(len(ctx.output_names))],
                     "buckets": lengths, "keys": {str(n): signature_key(n, lengths[-1]) for n in lengths}}
        return Built([MODEL_FILE], built.strategy, built.precision, calibration=built.calibration,
                     fixed_shape=list(shape), signature=signature, details=built.details)

    def _quantize(self, ctx: BuildContext, src: Path, dst: Path, shape) -> Built:
        return Built([], "litert-torch", {"default": "fp32"})


def convert(model_dir: Path, input_names, batch: int, lengths: list[int]) -> bytes:
    """The PyTorch model as an fp32 TFLite flatbuffer with one static-shape signature per
    sequence length (litert-torch)."""
    import tempfile

    import litert_torch
    import torch

    from edgeport.model.load import model_from_path
    from edgeport.model.wrappers import task_module

    module = task_module(model_from_path(model_dir))
    converter = None
    for length in lengths:
        sample = {name: torch.ones((batch, length), dtype=torch.long) for name in input_names}
        key = signature_key(length, lengths[-1])
        converter = (litert_torch.signature(key, module, sample_kwargs=sample) if converter is None
                     else converter.signature(key, module, sample_kwargs=sample))
    with tempfile.TemporaryDirectory(prefix="edgeport-litert-") as tmp:
        path = Path(tmp) / "fp32.tflite"
        converter.convert().export(str(path))
        return path.read_bytes()


def _quantize_with(src: Path, dst: Path, add_configs, samples: dict | None = None) -> list:
    """Quantize ``src`` into ``dst`` with the recipe that ``add_configs`` builds (calibrating
    on ``samples``, signature key -> feeds, for static recipes); return the recipe, which the
    manifest records."""
    from ai_edge_quantizer import quantizer, recipe_manager

    manager = recipe_manager.RecipeManager()
    add_configs(manager)
    recipe = manager.get_quantization_recipe()
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(recipe)
    calibration = qt.calibrate(samples) if samples is not None else None
    qt.quantize(calibration).export_model(str(dst), overwrite=True)
    return recipe


def _keep_float(manager, keep_fp: tuple[str, ...]) -> None:
    from ai_edge_quantizer import algorithm_manager, qtyping

    for module in keep_fp:  # added last: later entries of a recipe win
        manager.add_quantization_config(
            regex=tflite_regex(module), operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)


class TfliteFp32(_LiteRtTarget):
    name = "tflite-fp32"
    precision = "fp32"


class _QuantizedLiteRt(_LiteRtTarget):
    """A LiteRT target made by ai-edge-quantizer: subclasses say which recipe entries to add."""

    strategy = ""
    precision_facts: dict = {}

    def _add_configs(self, manager, ctx: BuildContext) -> None:
        raise NotImplementedError

    def _samples(self, ctx: BuildContext, shape) -> dict | None:
        return None  # dynamic and weight-only recipes need no calibration

    def _quantize(self, ctx, src, dst, shape) -> Built:
        recipe = _quantize_with(src, dst, lambda manager: self._add_configs(manager, ctx), self._samples(ctx, shape))
        precision = dict(self.precision_facts)
        if self.quantized:
            precision["fp32_layers"] = list(ctx.keep_fp)
        return Built([], self.strategy, precision, details={"quantizer_recipe": recipe})


class TfliteFp16(_QuantizedLiteRt):
    name = "tflite-fp16"
    precision = "fp16"
    strategy = "litert-torch + ai-edge-quantizer fp16 weights (FLOAT_CASTING)"
    precision_facts = {"weights": "fp16", "compute": "fp32"}

    def _add_configs(self, manager, ctx):
        from ai_edge_quantizer import algorithm_manager, qtyping

        manager.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                       num_bits=16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)


class TfliteInt8(_QuantizedLiteRt):
    name = "tflite-int8"
    precision = "int8"
    quantized = True
    strategy = "litert-torch + ai-edge-quantizer dynamic int8 (per-channel weights)"
    precision_facts = {"default": "int8 weights, dynamic int8 activations"}

    def _add_configs(self, manager, ctx):
        from ai_edge_quantizer import qtyping

        manager.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=8)
        _keep_float(manager, ctx.keep_fp)


def int8_ops(spec: str | None) -> list:
    """The TFLite op types that get int8 weights and activations: option ``int8_ops``
    (comma-separated names), every supported op by default."""
    from ai_edge_quantizer import qtyping

    names = [n.strip().upper() for n in (spec or "").split(",") if n.strip()]
    if not names:
        return [qtyping.TFLOperationName.ALL_SUPPORTED]
    known = {op.name: op for op in qtyping.TFLOperationName}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"tflite-int8-full.int8_ops: unknown TFLite op types {', '.join(unknown)}",
                         hint="e.g. FULLY_CONNECTED,BATCH_MATMUL")
    return [known[n] for n in names]


class TfliteInt8Full(_QuantizedLiteRt):
    name = "tflite-int8-full"
    precision = "int8"
    quantized = True
    strategy = "litert-torch + ai-edge-quantizer static int8 (int8 weights and activations)"
    precision_facts = {"default": "int8 weights and activations"}
    Options = LiteRtFullOptions
    experimental = ("integer-only BERT loses most of its fidelity (MiniLM: mean cosine about 0.62 with every op "
                    "int8, bench/results/int8_budget.md); int8_ops=FULLY_CONNECTED,BATCH_MATMUL keeps it close")

    def _add_configs(self, manager, ctx):
        for op in int8_ops(ctx.options.int8_ops):
            manager.add_static_config(regex=".*", operation_name=op, activation_num_bits=8, weight_num_bits=8)
        _keep_float(manager, ctx.keep_fp)

    def _samples(self, ctx, shape):
        """Every signature calibrates on the calibration texts at its own length."""
        lengths = ctx.options.lengths()
        return {signature_key(n, lengths[-1]): [
            {k: v.astype(np.int32) for k, v in feeds.items()}
            for feeds in ctx.calibration.feeds(batch_size=shape[0], fixed_length=n)
            if next(iter(feeds.values())).shape[0] == shape[0]] for n in lengths}

    def _quantize(self, ctx, src, dst, shape) -> Built:
        built = super()._quantize(ctx, src, dst, shape)
        precision = {**built.precision, "int8_ops": [op.name for op in int8_ops(ctx.options.int8_ops)]}
        return Built([], built.strategy, precision, calibration=ctx.calibration.summary(), details=built.details)

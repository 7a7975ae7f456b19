"""LiteRT (TFLite) for phones and ARM boards: `tflite-fp32`, `tflite-fp16`, `tflite-int8`
and `tflite-int8-full`, verified here with ai-edge-litert's interpreter (XNNPACK).

Converter (measured here on MiniLM): litert-torch converts the PyTorch module directly (no
TensorFlow) in seconds; ai-edge-quantizer quantizes the result. onnx2tf needed a Flex-op
workaround, took minutes and crashed on integer inputs when quantizing, so it is not used.

- fp32: the converted graph. fp16: weights cast to fp16 (FLOAT_CASTING), compute in fp32.
- int8: dynamic range: per-channel int8 weights, activations quantized at run time
  (measured: mean cosine 0.9975, 2.7 ms vs 7.6 ms fp32 at 1 x 128 on 2 threads).
- int8-full: int8 weights and activations from a representative dataset (the calibration
  texts), for integer-only accelerators; the accuracy budget keeps sensitive layers float.
  Measured on MiniLM (mean cosine vs fp32): every op in int8 gives 0.56-0.69 whatever
  layers fall back, because the ops between the layers break it. With int8 only on
  FULLY_CONNECTED/BATCH_MATMUL it is 0.955; adding ADD (residuals, attention mask) alone
  drops it to 0.44, MEAN 0.28 and SQUARED_DIFFERENCE 0.54 (LayerNorm), MUL 0.84 (GELU,
  SOFTMAX, RSQRT, SUB, SUM, DIV alone cost nothing, but even with ADD/MUL/MEAN/
  SQUARED_DIFFERENCE float the rest together still give 0.56). Option ``int8_ops`` (e.g.
  ``FULLY_CONNECTED,BATCH_MATMUL``) restricts int8 to those op types, the rest stays float
  (no longer integer-only: an NPU runs them on its CPU fallback); then the budget's layer
  fallback works (FFN-down projections float: 0.995).

TFLite graphs have static shapes: options ``batch`` and ``sequence`` (default 1 x 128) are
recorded in the manifest with the signature (``serving_default``; inputs are int32 named
as in the model; output ``output_0``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from edgeport.errors import UsageError
from edgeport.targets.base import Availability, BuildContext, Target, missing_module
from edgeport.verify import Runner

MODEL_FILE = "model.tflite"
SIGNATURE = "serving_default"


def tflite_regex(module_path: str) -> str:
    """A regex matching the TFLite tensors of a torch module. litert-torch names them by
    ``Class_attribute`` segments; a ModuleList's own name is dropped and its index kept:
    ``encoder.layer.3.output.dense`` -> ``.../[^/]*_encoder/[^/]*_3/[^/]*_output/[^/]*_dense``."""
    parts = module_path.split(".")
    segments = [rf"[^/;]*_{re.escape(part)}" for i, part in enumerate(parts)
                if not (i + 1 < len(parts) and parts[i + 1].isdigit())]
    return r".*_m/" + "/".join(segments) + r"(?:[/;].*|$)"


def _output_index(name: str) -> int:
    """litert-torch names a module's outputs output_0, output_1, ... in the order returned."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class LiteRtRunner(Runner):
    def __init__(self, path: Path, input_names, fixed_shape, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count())
        self.signature = self.interpreter.get_signature_runner(SIGNATURE)
        self.dtypes = {name: detail["dtype"] for name, detail in self.signature.get_input_details().items()}
        super().__init__(input_names, tuple(fixed_shape))

    def _infer_impl(self, feeds):
        outputs = self.signature(**{k: v.astype(self.dtypes[k]) for k, v in feeds.items()})
        return [outputs[name] for name in sorted(outputs, key=_output_index)]


class _LiteRtTarget(Target):
    runtime = "litert"
    artifact_format = "tflite"
    fixed_shape = True

    def check(self) -> Availability:
        for module in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"):
            if missing := missing_module(module, "tflite"):
                return missing
        return Availability(True)

    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner:
        from edgeport.runs import MANIFEST, read_json

        manifest = read_json(Path(artifact_dir) / MANIFEST)
        return LiteRtRunner(Path(artifact_dir) / MODEL_FILE, manifest["inputs"], manifest["fixed_shape"], threads)

    def _build_impl(self, ctx: BuildContext, out: Path) -> dict:
        if ctx.model_dir is None:
            raise UsageError(f"{self.name} converts from the PyTorch model, and this run has only an ONNX file",
                             hint="run `edgeport export MODEL_FOLDER --target ...` instead of `build model.onnx`")
        shape = (int(ctx.options.get("batch", 1)), int(ctx.options.get("sequence", 128)))
        fp32 = out / "fp32.tflite"
        _convert(ctx, shape, fp32)
        facts = self._quantize(ctx, fp32, out / MODEL_FILE, shape)
        fp32.unlink(missing_ok=True) if (out / MODEL_FILE).exists() else fp32.rename(out / MODEL_FILE)
        facts.update({"files": [MODEL_FILE], "fixed_shape": list(shape),
                      "signature": {"key": SIGNATURE, "inputs": {n: "int32" for n in ctx.input_names},
                                    "outputs": [f"output_{i}" for i in range(len(ctx.output_names))]}})
        return facts

    def _quantize(self, ctx: BuildContext, src: Path, dst: Path, shape) -> dict:
        return {"strategy": "litert-torch", "precision": {"default": "fp32"}}


_CONVERTED: dict[tuple[str, tuple[int, int]], bytes] = {}


def _convert(ctx: BuildContext, shape: tuple[int, int], dst: Path) -> None:
    """litert-torch conversion, done once per model content and shape in a process: the
    budget's trials re-quantize the same fp32 graph with other layers kept float."""
    from edgeport.runs import hash_path

    key = (hash_path(ctx.model_dir), shape)
    if key not in _CONVERTED:
        import litert_torch
        import torch

        from edgeport.model.load import model_from_path
        from edgeport.model.wrappers import task_module

        module = task_module(model_from_path(ctx.model_dir))
        sample = {name: torch.ones(shape, dtype=torch.long) for name in ctx.input_names}
        litert_torch.convert(module, sample_kwargs=sample).export(str(dst))
        _CONVERTED.clear()  # one model at a time: keep memory bounded
        _CONVERTED[key] = dst.read_bytes()
    else:
        dst.write_bytes(_CONVERTED[key])


def _quantize_with(src: Path, dst: Path, add_configs, samples: list | None = None) -> list:
    """Quantize ``src`` into ``dst`` with the recipe that ``add_configs`` builds (calibrating
    on ``samples`` for static recipes); return the recipe, which the manifest records."""
    from ai_edge_quantizer import quantizer, recipe_manager

    manager = recipe_manager.RecipeManager()
    add_configs(manager)
    recipe = manager.get_quantization_recipe()
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(recipe)
    calibration = qt.calibrate({SIGNATURE: samples}) if samples is not None else None
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

    def _samples(self, ctx: BuildContext, shape) -> list | None:
        return None  # dynamic and weight-only recipes need no calibration

    def _quantize(self, ctx, src, dst, shape):
        recipe = _quantize_with(src, dst, lambda manager: self._add_configs(manager, ctx), self._samples(ctx, shape))
        facts = {"strategy": self.strategy, "precision": dict(self.precision_facts), "quantizer_recipe": recipe}
        if self.quantized:
            facts["precision"]["fp32_layers"] = list(ctx.keep_fp)
        return facts


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


def int8_ops(options: dict) -> list:
    """The TFLite op types that get int8 weights and activations: option ``int8_ops``
    (comma-separated names), every supported op by default."""
    from ai_edge_quantizer import qtyping

    names = [n.strip().upper() for n in str(options.get("int8_ops", "")).split(",") if n.strip()]
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

    def _add_configs(self, manager, ctx):
        for op in int8_ops(ctx.options):
            manager.add_static_config(regex=".*", operation_name=op, activation_num_bits=8, weight_num_bits=8)
        _keep_float(manager, ctx.keep_fp)

    def _samples(self, ctx, shape):
        return [{k: v.astype(np.int32) for k, v in feeds.items()}
                for feeds in ctx.calibration.feeds(batch_size=shape[0], fixed_length=shape[1])
                if next(iter(feeds.values())).shape[0] == shape[0]]

    def _quantize(self, ctx, src, dst, shape):
        facts = {**super()._quantize(ctx, src, dst, shape), "calibration": ctx.calibration.summary()}
        facts["precision"]["int8_ops"] = [op.name for op in int8_ops(ctx.options)]
        return facts

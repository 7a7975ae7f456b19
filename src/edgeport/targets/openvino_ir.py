"""OpenVINO IR: `openvino-fp16` and `openvino-int8` (INT8 through NNCF post-training
quantization with calibration data).

Source of the IR (option ``source``): ``torch`` (default when the run has a model folder)
converts the PyTorch module directly; the torch-derived IR keeps fused attention
(ScaledDotProductAttention), which the IR converted from ONNX does not.
``onnx`` converts the exported ONNX graph (always used when building from an ONNX file).
The IR has dynamic batch and sequence axes. The precision OpenVINO actually computes in
(e.g. bf16 on CPUs with AVX512-BF16/AMX) is read from the compiled model and recorded;
option ``inference_precision=f32`` keeps unquantized ops in fp32 (the manifest's
``runtime_config``, applied wherever the artifact runs): openvino-int8's default, since with
bf16 the error it adds is a floor that no layer fallback removes (measured on the SST-2
classifier, and on MiniLM on an AMX CPU); ``null`` leaves the plugin's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeport.artifact import ArtifactManifest, Built
from edgeport.errors import UsageError
from edgeport.targets.base import Availability, BuildContext, Target, TargetOptions, missing_module
from edgeport.targets.openvino_gather import gather_rows_first
from edgeport.verify import Runner

MODEL_XML = "model.xml"
FILES = [MODEL_XML, "model.bin"]


class OpenVinoOptions(TargetOptions):
    source: Literal["torch", "onnx"] | None = Field(
        None, description="convert the IR from the torch module or the ONNX graph [torch when a model folder is at hand]")
    inference_precision: Literal["f32", "bf16", "f16"] | None = Field(
        None, description="precision of the ops left unquantized [the device plugin's default]")
    sparse_weights_rate: float | None = Field(
        None, gt=0, le=1, description="run INT8 weights at least this sparse with sparse kernels (AMX CPUs)")


class OpenVinoInt8Options(OpenVinoOptions):
    inference_precision: Literal["f32", "bf16", "f16"] | None = Field(
        "f32", description="precision of the ops left unquantized and of the budget's fallback layers "
        "[f32; null: the device plugin's default, bf16 on AVX512-BF16/AMX CPUs]")
    tables: Literal["int8", "int4"] = Field(
        "int8", description="the embedding tables (what the model gathers rows from, not a matmul): INT8 "
        "like the matmuls, or INT4 weights in groups of 32 (half their bytes; the matmuls stay INT8)")


class OpenVinoInt4Options(OpenVinoOptions):
    group_size: int = Field(64, description="weights per INT4 scale group (-1: per channel)")
    mode: Literal["int4_sym", "int4_asym"] = Field("int4_sym", description="INT4 scheme")
    ratio: float = Field(1.0, gt=0, le=1, description="share of layers in INT4 (the rest INT8)")
    all_layers: bool = Field(False, description="also the embeddings and the last layer in INT4")
    group_size_fallback: Literal["error", "adjust", "ignore"] = Field(
        "error", description="a layer whose input size group_size does not divide (a low-rank factor of rank "
        "48 with groups of 64): refuse (error), give it a group size that divides (adjust), or leave it INT8 "
        "(ignore); recorded in the manifest")


def runtime_config(options: OpenVinoOptions) -> dict:
    """Compile-time settings an artifact needs (kept in its manifest): ``inference_precision``
    f32 keeps the ops that are not quantized in fp32 where the CPU plugin would use bf16;
    ``sparse_weights_rate`` (e.g. 0.5) lets the CPU plugin run sufficiently sparse INT8
    weights with its sparse kernels, which exist for AMX CPUs only (elsewhere: no effect)."""
    config = {}
    if options.inference_precision:
        config["INFERENCE_PRECISION_HINT"] = options.inference_precision
    if options.sparse_weights_rate:
        config["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] = options.sparse_weights_rate
    return config


class OpenVinoRunner(Runner):
    """Verification's runner: edgeport.runtime's OpenVINO backend (the call users make)."""

    def __init__(self, xml: Path, threads: int | None = None, config: dict | None = None,
                 settings: dict | None = None):
        from edgeport.runtime.backends import OpenVinoBackend

        self.backend = OpenVinoBackend(str(xml), threads, config, settings)
        self.compiled = self.backend.compiled
        super().__init__(self.backend.input_names)

    def _infer_impl(self, feeds):
        if len(self.backend.compiled.outputs) > 1:  # several outputs (question answering): all, in order
            return self.backend.run_all(feeds)
        return self.backend.run(feeds)

    def info(self) -> dict:
        return {"inference_precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}


def _ov_model(ctx: BuildContext):
    """The OpenVINO model from the torch module (default) or from the ONNX graph."""
    import openvino as ov

    source = ctx.options.source or ("torch" if ctx.model_dir else "onnx")
    if source == "onnx" or ctx.model_dir is None:
        return ov.convert_model(str(ctx.onnx_path)), "onnx"
    import torch

    from edgeport.model.load import model_from_path
    from edgeport.model.wrappers import task_module

    module = task_module(model_from_path(ctx.model_dir))
    example = {name: torch.ones((1, 16), dtype=torch.long) for name in ctx.input_names}
    shapes = [ov.PartialShape([-1, -1])] * len(ctx.input_names)
    model = ov.convert_model(module, example_input=example, input=list(zip(ctx.input_names, shapes)))
    for output, name in zip(model.outputs, module.output_names):
        output.get_tensor().set_names({name})
    return model, "torch"


class _OpenVinoTarget(Target):
    runtime = "openvino"
    artifact_format = "openvino"
    Options = OpenVinoOptions

    def check(self) -> Availability:
        return missing_module("openvino", "openvino") or Availability(True)

    def prepare(self, ctx: BuildContext):
        """The IR is converted once per build; every budget trial quantizes a copy of it."""
        return _ov_model(ctx)

    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner:
        manifest = ArtifactManifest.read(artifact_dir)
        return OpenVinoRunner(Path(artifact_dir) / MODEL_XML, threads, manifest.runtime_config,
                              manifest.request_path.runtime if manifest.request_path else None)


class OpenVinoFp16(_OpenVinoTarget):
    name = "openvino-fp16"
    precision = "fp16"

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        import openvino as ov

        model, source = prepared or _ov_model(ctx)
        ov.save_model(model.clone(), str(out / MODEL_XML), compress_to_fp16=True)
        return Built(FILES, f"openvino-ir-from-{source}, fp16 weights",
                     {"weights": "fp16", "compute": "chosen by the device plugin (recorded at verify)"},
                     runtime_config=runtime_config(ctx.options))


class _NncfTarget(_OpenVinoTarget):
    """OpenVINO targets made by NNCF; the budget's fp32 layers become NNCF's ignored scope."""

    quantized = True

    def check(self) -> Availability:
        return missing_module("openvino", "openvino") or missing_module("nncf", "openvino") or Availability(True)

    @staticmethod
    def _nncf_model(ctx: BuildContext, prepared):
        """(a copy of the converted OpenVINO model, its source, names kept float)."""
        import logging

        import nncf

        nncf.set_log_level(logging.ERROR)
        model, source = prepared or _ov_model(ctx)
        model = model.clone()
        kept = _matmuls_of(model, ctx.keep_fp)
        return model, source, kept


class OpenVinoInt8(_NncfTarget):
    """INT8 matmuls; the ops left unquantized (LayerNorm, Softmax, GELU, the budget's fallback
    layers) in f32 by default. Measured on an Intel Xeon with AMX and AVX512-BF16 (MiniLM, the
    default budget 0.995): with the plugin's default there (bf16) the budget was not met even
    with every layer in fallback; in f32 the fully quantized artifact met it (mean cosine 0.998
    on the selection texts). The layers a budget keeps must be as exact as it assumes.

    ``tables: int4`` stores the embedding tables as INT4 and leaves the matmuls INT8: for a
    compressed student whose bytes are mostly its (low-rank) table. Measured during development
    on an AMD EPYC with AVX512-VNNI and BF16 (a 4-block, FFN-512, rank-160 SST-2 student, batch
    1 x 128, the plugin's bf16 for the unquantized ops): 4.25 MB and about 2.0 ms, where every
    weight in INT4 (openvino-int4) is 2.94 MB and about 3.0 ms (its matmuls computed in bf16)
    and every table in INT8 5.2 MB."""

    name = "openvino-int8"
    precision = "int8"
    Options = OpenVinoInt8Options

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        import nncf
        import openvino as ov

        model, source, kept = self._nncf_model(ctx, prepared)
        int4_tables = ctx.options.tables == "int4"
        samples = list(ctx.calibration.feeds(batch_size=1))
        quantized = nncf.quantize(
            model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(samples), **_ignoring(kept, ["Gather"] if int4_tables else []),
        )
        tables = []
        if int4_tables:
            quantized, tables = _int4_tables(quantized, kept)
        rows_first = gather_rows_first(quantized)
        ov.save_model(quantized, str(out / MODEL_XML), compress_to_fp16=False)
        precision = {"default": "int8", "fp32_layers": list(ctx.keep_fp)}
        if int4_tables:
            precision["tables"] = f"int4_sym, groups of {TABLE_GROUP_SIZE}"
        return Built(FILES, f"openvino-ir-from-{source}, nncf int8 (transformer preset)"
                     + (", int4 embedding tables" if int4_tables else ""), precision,
                     runtime_config=runtime_config(ctx.options), calibration=ctx.calibration.summary(),
                     details={"nncf": {"model_type": "transformer", "subset_size": len(samples),
                                       "ignored_scope": kept},
                              "int4_tables": tables, "int8_tables_gathered_as_int8": rows_first})


class OpenVinoInt4(_NncfTarget):
    """INT4 weights (NNCF weight compression), activations in float: the low-bit extreme for
    size. Options: ``group_size`` (64), ``mode`` int4_sym|int4_asym, ``ratio`` of layers in
    INT4 (the rest INT8), ``all_layers`` (embeddings and the last layer too; default INT8)."""

    name = "openvino-int4"
    precision = "int4"
    Options = OpenVinoInt4Options

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        import nncf
        import openvino as ov

        from nncf.quantization.advanced_parameters import AdvancedCompressionParameters

        model, source, kept = self._nncf_model(ctx, prepared)
        opts = ctx.options
        fallback = getattr(nncf.GroupSizeFallbackMode, opts.group_size_fallback.upper())
        try:  # supports_weights refused the shapes it could read before the export; NNCF checks every layer
            compressed = nncf.compress_weights(
                model, mode=getattr(nncf.CompressWeightsMode, opts.mode.upper()),
                group_size=opts.group_size, ratio=opts.ratio, all_layers=opts.all_layers,
                advanced_parameters=AdvancedCompressionParameters(group_size_fallback_mode=fallback),
                **_ignoring(kept, []))
        except nncf.InvalidGroupSizeError as exc:
            layers = [line.strip() for line in str(exc).splitlines() if line.startswith("\t")]
            raise UsageError(_group_size_refusal(opts.group_size, layers), hint=GROUP_SIZE_HINT) from None
        ov.save_model(compressed, str(out / MODEL_XML), compress_to_fp16=False)
        settings = {"mode": opts.mode, "group_size": opts.group_size, "ratio": opts.ratio,
                    "all_layers": opts.all_layers, "group_size_fallback": opts.group_size_fallback}
        return Built(FILES, f"openvino-ir-from-{source}, nncf int4 weight compression",
                     {"weights": opts.mode, "activations": "float (device plugin)", "fp32_layers": list(ctx.keep_fp)},
                     runtime_config=runtime_config(opts), details={"nncf": {**settings, "ignored_scope": kept}})

    def supports_weights(self, shapes: dict[str, list[int]], options: OpenVinoInt4Options) -> Availability:
        """With ``group_size_fallback: error``, a 2-D weight whose input size (its last dimension: a
        Linear's in_features, an embedding's width, which some MatMul of the model also reads) the
        group size does not divide is refused here, before the export."""
        if options.group_size_fallback != "error" or options.group_size <= 0:
            return Availability(True)
        odd = [f"{name} (channel size: {shape[-1]})" for name, shape in shapes.items()
               if len(shape) == 2 and shape[-1] % options.group_size]
        if odd:
            return Availability(False, _group_size_refusal(options.group_size, odd), GROUP_SIZE_HINT)
        return Availability(True)


GROUP_SIZE_HINT = ("set --option openvino-int4.group_size_fallback=adjust (a group size that divides, per layer) "
                   "or =ignore (those layers INT8), or a group_size that divides them")


def _group_size_refusal(group_size: int, layers: list[str]) -> str:
    return f"openvino-int4: group_size {group_size} does not divide the input size of {len(layers)} layer(s): " \
           + "; ".join(layers)


TABLE_GROUP_SIZE = 32  # divides the widths of low-rank tables (a rank of 160, 96, ...) and the hidden size


def _ignoring(names: list[str], types: list[str]) -> dict:
    """NNCF keyword arguments that leave these nodes and op types alone (the names checked
    against the model, as NNCF does by default, unless op types are given: a model may lack one)."""
    import nncf

    if not names and not types:
        return {}
    return {"ignored_scope": nncf.IgnoredScope(names=names, types=types, validate=not types)}


def _int4_tables(model, kept: list[str]):
    """(``model`` with its embedding tables, the Gathers NNCF's INT8 pass left alone, as INT4
    weights; the names of those Gathers). The budget's fallback tables stay float. The CPU
    plugin gathers the INT4 rows compressed (GatherCompressed): unlike an INT8 table
    (openvino_gather), an INT4 one is not unfolded to fp32 in a model with FakeQuantize ops."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters

    before = _gathered_constants(model)
    fallback = AdvancedCompressionParameters(group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST)
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_SYM, group_size=TABLE_GROUP_SIZE,
                                  all_layers=True, advanced_parameters=fallback, **_ignoring(kept, ["MatMul"]))
    return model, sorted(set(before) - set(_gathered_constants(model)))


def _gathered_constants(model) -> list[str]:
    """The Gathers of ``model`` that read a float constant table directly."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Gather"
            and op.input_value(0).get_node().get_type_name() == "Constant"
            and op.input_value(0).get_element_type().is_real()]


def _matmuls_of(model, modules: tuple[str, ...]) -> list[str]:
    """Names of the MatMul (and embedding Gather) nodes of an OpenVINO model that belong to
    the given modules."""
    from edgeport.exporter.graph import module_of_onnx_node, module_of_openvino_node

    wanted, names = set(modules), []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("MatMul", "Gather"):
            continue
        name = op.get_friendly_name()
        module = module_of_openvino_node(name) if name.startswith("__module") else module_of_onnx_node(name)
        if module in wanted:
            names.append(name)
    return names

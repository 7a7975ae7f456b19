"""LiteRT targets: convert tiny models with litert-torch, quantize with ai-edge-quantizer,
run in ai-edge-litert's interpreter, and check against PyTorch."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.conftest import real_component_missing

from edgeport.calibration.data import builtin_texts
from edgeport.exporter.graph import layers_from_onnx
from edgeport.model.load import model_from_path
from edgeport.exporter.onnx_export import export_onnx
from edgeport.model.torch_runner import TorchRunner
from edgeport.model.wrappers import OUTPUT_NAME
from edgeport.stages.reference import reference_from
from edgeport.targets import registry
from edgeport.calibration.feeds import CalibrationSet
from edgeport.artifact import ModelFacts
from edgeport.recipe import ProfileSpec
from edgeport.targets.base import BuildContext
from edgeport.targets.litert import tflite_regex

pytest.importorskip("litert_torch", reason=real_component_missing("the tflite extra is not installed"))


@pytest.fixture(scope="module")
def ctx_and_ref(tiny_models, tmp_path_factory):
    folder = tiny_models("bert")
    loaded = model_from_path(folder)
    onnx_path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(loaded, onnx_path)
    calib = CalibrationSet("builtin", builtin_texts("calibration").texts[:24], loaded.tokenizer, loaded.family.inputs)
    ctx = BuildContext(onnx_path, folder, loaded.family.inputs, OUTPUT_NAME[loaded.task], calib,
                       model=ModelFacts(task="feature-extraction", vocab_size=400))
    ref = reference_from(TorchRunner(loaded), loaded.tokenizer, loaded.family.inputs, False, None, None)
    return ctx, ref


def _build(name, ctx, out, keep=(), **options):
    out.mkdir(parents=True, exist_ok=True)  # build() writes into an existing folder
    target = registry.get(name)
    # one signature (no shorter buckets): what these tests read from the file is the 2 x 32 graph
    typed = registry.options_for([target], {name: {"batch": 2, "sequence": 32, "buckets": "", **options}})[name]
    manifest = target.build(replace(ctx, options=typed, keep_fp=keep), out)
    return target, manifest


@pytest.mark.parametrize("name,threshold", [("tflite-fp32", 0.99999), ("tflite-fp16", 0.9999),
                                            ("tflite-int8", 0.95), ("tflite-int8-full", 0.5)])
def test_tflite_targets_run_in_litert(ctx_and_ref, tmp_path, name, threshold):
    ctx, ref = ctx_and_ref
    target, manifest = _build(name, ctx, tmp_path)
    assert manifest.fixed_shape == [2, 32] and manifest.signature["key"] == "serving_default"
    runner = target.runner(tmp_path)
    assert runner.fixed_shape == (2, 32)
    check = ref.check(runner)  # 105 held-out texts through a static 2 x 32 graph (last batch padded)
    assert check.fidelity.samples == len(ref.report.heldout.records.texts)
    assert check.fidelity.mean_cosine > threshold, check.fidelity


@pytest.mark.parametrize("name", ["tflite-int8", "tflite-int8-full"])
def test_keep_fp_layers_really_stay_float(ctx_and_ref, tmp_path, name):
    ctx, ref = ctx_and_ref
    layers = tuple(layers_from_onnx(ctx.onnx_path))
    target, _ = _build(name, ctx, tmp_path / "all")
    full = ref.check(target.runner(tmp_path / "all")).fidelity.mean_cosine
    target, manifest = _build(name, ctx, tmp_path / "kept", keep=layers)
    kept = ref.check(target.runner(tmp_path / "kept")).fidelity.mean_cosine
    assert manifest.precision["fp32_layers"] == list(layers)
    # the regexes matched: float weights make the file larger, and fidelity is no worse
    assert (tmp_path / "kept" / "model.tflite").stat().st_size > 1.3 * (tmp_path / "all" / "model.tflite").stat().st_size
    assert kept >= full - 1e-4
    if name == "tflite-int8":  # dynamic int8 touches only weighted layers: all kept = fp32
        assert kept > 0.99999


def test_tflite_regex_from_module_path():
    regex = re.compile(tflite_regex("encoder.layer.1.output.dense"))
    name = ("__main__.TaskModule/transformers.BertModel_m/transformers.BertEncoder_encoder/"
            "transformers.BertLayer_1/transformers.BertOutput_output/torch.nn.Linear_dense;1")
    assert regex.match(name)
    assert not regex.match(name.replace("BertLayer_1", "BertLayer_11"))
    assert not regex.match(name.replace("BertOutput_output", "BertAttention_attention/BertSelfOutput_output"))


def test_tflite_refuses_onnx_only_runs(ctx_and_ref, tmp_path):
    from edgeport.errors import UsageError

    ctx, _ = ctx_and_ref
    target = registry.get("tflite-int8")
    ctx = replace(ctx, model_dir=None, options=target.Options())
    with pytest.raises(UsageError, match="converts from the PyTorch model"):
        target.build(ctx, tmp_path)


def test_agent_profiles_tflite(ctx_and_ref, tmp_path):
    from edgeport.devices.local_profile import profile_local

    ctx, _ = ctx_and_ref
    _build("tflite-int8", ctx, tmp_path)
    result = profile_local(tmp_path, ProfileSpec(batch=1, sequence=128, runs=5, warmup=1))
    assert (result.batch, result.sequence) == (2, 32)  # the artifact's static shape wins
    assert result.runtime["name"] == "ai_edge_litert" and result.latency_ms.p50 > 0


def _output_dtypes(path, op_name: str) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t["dtype"].__name__ for t in interpreter.get_tensor_details()}
    return {tensors[i] for op in interpreter._get_ops_details() if op["op_name"] == op_name for i in op["outputs"]}


def test_int8_full_int8_ops_restricts_int8(ctx_and_ref, tmp_path):
    from edgeport.errors import UsageError

    ctx, ref = ctx_and_ref
    _, manifest = _build("tflite-int8-full", ctx, tmp_path / "int")
    assert manifest.precision["int8_ops"] == ["ALL_SUPPORTED"]
    assert _output_dtypes(tmp_path / "int" / "model.tflite", "MEAN") == {"int8"}
    full = ref.check(registry.get("tflite-int8-full").runner(tmp_path / "int")).fidelity.mean_cosine
    ops = "FULLY_CONNECTED,BATCH_MATMUL"
    target, manifest = _build("tflite-int8-full", ctx, tmp_path / "mixed", int8_ops=ops)
    assert manifest.precision["int8_ops"] == ops.split(",")
    assert _output_dtypes(tmp_path / "mixed" / "model.tflite", "MEAN") == {"float32"}
    assert "int8" in _output_dtypes(tmp_path / "mixed" / "model.tflite", "FULLY_CONNECTED")
    mixed = ref.check(target.runner(tmp_path / "mixed")).fidelity.mean_cosine
    assert mixed > full and mixed > 0.95, (mixed, full)  # int8 only on the matmuls is what keeps it close
    with pytest.raises(UsageError, match="unknown TFLite op types LAYERNORM"):
        _build("tflite-int8-full", ctx, tmp_path / "bad", int8_ops="LAYERNORM")

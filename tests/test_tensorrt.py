"""tensorrt-int8 / tensorrt-fp16: the strongly-typed ONNX built and checked here (NVIDIA
ModelOpt in its own venv, Polygraphy, the rule table), and the device flow over a loopback
sshd where trtexec is tests/trtexec_standin.py — a STAND-IN that writes trtexec's documented
file formats. No real TensorRT runs in this suite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.errors import VerificationError
from tests.conftest import read_json

STANDIN = Path(__file__).with_name("trtexec_standin.py")


@pytest.fixture(scope="module")
def trt_run(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("trt") / "run"
    code = main(["export", str(tiny_models("bert")), "--target", "tensorrt-int8,tensorrt-fp16", "--out", str(out),
                 "--min-fidelity", "0", "--no-profile", "--option", "tensorrt-fp16.build_timeout_s=3"])
    assert code == 0
    return out


def _graph(path: Path):
    import onnx

    return onnx.load(str(path)).graph


def test_int8_graph_follows_tensorrt_placement(trt_run):
    import onnx
    from onnx import numpy_helper

    folder = trt_run / "targets" / "tensorrt-int8"
    model = onnx.load(str(folder / "model.onnx"))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset <= 20
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    types = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types
    assert not types & {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul"}
    dense = [n for n in graph.node if n.op_type == "MatMul" and "dense" in n.name or n.name.endswith(
        ("query/MatMul", "key/MatMul", "value/MatMul"))]
    assert len(dense) == 12  # 2 blocks x (q, k, v, attention out, FFN up, FFN down)
    for node in dense:  # Q/DQ on both inputs of every weighted MatMul
        assert all(producer[i].op_type == "DequantizeLinear" for i in node.input), node.name
    for node in graph.node:  # attention core unquantized; nothing quantized feeds LayerNorm/Softmax/Erf
        if node.name.endswith(("self/MatMul", "self/MatMul_1")) or node.op_type in ("LayerNormalization", "Softmax",
                                                                                     "Erf"):
            assert not any(producer.get(i) and producer[i].op_type == "DequantizeLinear" for i in node.input), node.name
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            assert not np.any(numpy_helper.to_array(inits[node.input[2]]))  # symmetric
    manifest = read_json(folder / "manifest.json")
    checks = manifest["details"]["checks"]
    assert checks["structure"]["onnx_checker"] == "full check passed"
    assert checks["rule_table"]["result"] == "passed" and checks["rule_table"]["max_opset"] == 20
    assert checks["placement"]["int8_matmuls"] == 12 and checks["placement"]["attention_core_quantized"] == 0
    assert checks["polygraphy_lint"]["result"] == "passed"
    assert manifest["details"]["modelopt_environment"]["nvidia-modelopt"] == "0.47.0"
    assert manifest["details"]["quantizer"]["calibration_eps"] == ["cpu"]
    assert manifest["details"]["quantizer"]["calibration_method"] == "max"
    assert len(manifest["details"]["quantizer"]["attention_core_unquantized"]) == 4
    assert manifest["runtime_config"]["optimization_profile"]["input_ids"] == {"min": [1, 1], "opt": [1, 128],
                                                                               "max": [8, 128]}
    entry = read_json(trt_run / "results.json")["targets"]["tensorrt-int8"]
    assert "host-side emulation" in entry["host_side_emulation"] and entry["fidelity"]["mean_cosine"] > 0.99


def _residual_adds(graph):
    """The residual joins (post-LN encoders: the Adds feeding a LayerNorm, maybe through a Cast),
    with how many of their inputs a DequantizeLinear gives."""
    producer = {o: n for n in graph.node for o in n.output}

    def through_cast(name):
        node = producer.get(name)
        return producer.get(node.input[0]) if node is not None and node.op_type == "Cast" else node

    found = {}
    for node in graph.node:
        add = through_cast(node.input[0]) if node.op_type == "LayerNormalization" else None
        if add is not None and add.op_type == "Add" and "embeddings" not in add.name:
            found[add.name] = sum(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                                  for i in add.input)
    return found


def test_int8_smooths_layernorm_inputs_and_leaves_residual_adds_fp16(trt_run):
    folder = trt_run / "targets" / "tensorrt-int8"
    graph = _graph(folder / "model.onnx")
    quantizer = read_json(folder / "manifest.json")["details"]["quantizer"]
    # 2 blocks x (Q/K/V input, FFN-up input), each from a LayerNorm
    assert quantizer["smoothing"]["alpha"] == 0.5 and len(quantizer["smoothing"]["inputs"]) == 4
    assert sorted(len(i["matmuls"]) for i in quantizer["smoothing"]["inputs"]) == [1, 1, 3, 3]
    producer = {o: n for n in graph.node for o in n.output}
    smoothing_muls = [n for n in graph.node if n.name.endswith("/smoothed/Mul")]
    assert len(smoothing_muls) == 4
    for mul in smoothing_muls:  # LayerNorm (maybe through a Cast to FP16) -> Mul -> Q -> DQ -> MatMul
        source = producer[mul.input[0]]
        source = producer[source.input[0]] if source.op_type == "Cast" else source
        assert source.op_type == "LayerNormalization", mul.name
    adds = _residual_adds(graph)
    assert len(adds) == 4 and not any(adds.values())  # 2 blocks x 2 residual joins, no Q/DQ on them
    assert quantizer["residual_adds"] == "FP16 (no Q/DQ)"


def test_smoothing_is_exact_and_balances_channels(trt_run, tmp_path):
    """alpha 0.5 makes each smoothed channel's activation maximum equal its weight row maximum,
    and the fp32 graph computes the same outputs."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgeport.targets.smoothing import channel_maxima, smooth

    source, out = trt_run / "onnx" / "model.onnx", tmp_path / "smoothed.onnx"
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(5, 90, (6, 12)), "attention_mask": np.ones((6, 12), np.int64),
             "token_type_ids": np.zeros((6, 12), np.int64)}
    done = smooth(source, out, feeds, 0.5)
    assert len(done) == 4
    assert all(abs(d.activation_max_after - d.weight_max_after) <= 1e-3 * d.weight_max_after for d in done)
    before = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in before.get_inputs()}
    feed = {k: v for k, v in feeds.items() if k in wanted}
    np.testing.assert_allclose(after.run(None, feed)[0], before.run(None, feed)[0], rtol=1e-4, atol=1e-5)
    graph = onnx.load(str(out)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    smoothed = [f"{d.tensor}/smoothed" for d in done]
    for name, act in zip(smoothed, channel_maxima(out, smoothed, feeds)):
        rows = np.max([np.abs(inits[n.input[1]]).max(axis=1) for n in graph.node
                       if n.op_type == "MatMul" and n.input[0] == name], axis=0)
        np.testing.assert_allclose(act, rows, rtol=1e-3)


def test_int8_trials_share_one_smoothing(tiny_models, tmp_path, monkeypatch):
    """The calibration feeds, the smoothed graph and the always-excluded nodes are made once per
    build (prepare); each budget trial only re-runs ModelOpt with its own exclusions."""
    from edgeport.calibration.data import builtin_texts
    from edgeport.calibration.feeds import CalibrationSet
    from edgeport.exporter.graph import layers_from_onnx
    from edgeport.exporter.onnx_export import export_onnx
    from edgeport.model.load import model_from_path
    from edgeport.model.wrappers import OUTPUT_NAME
    from edgeport.targets import registry, tensorrt
    from edgeport.targets.base import BuildContext

    folder = tiny_models("bert")
    loaded = model_from_path(folder)
    export_onnx(loaded, tmp_path / "model.onnx")
    calls = []
    original = tensorrt.smooth
    monkeypatch.setattr(tensorrt, "smooth", lambda *a, **k: calls.append(1) or original(*a, **k))
    target = registry.get("tensorrt-int8")
    ctx = BuildContext(tmp_path / "model.onnx", folder, loaded.family.inputs, OUTPUT_NAME[loaded.task],
                       CalibrationSet("builtin", builtin_texts("calibration").texts[:16], loaded.tokenizer,
                                      loaded.family.inputs), target.Options())
    prepared = target.prepare(ctx)
    ffn_down = next(m for m in layers_from_onnx(tmp_path / "model.onnx") if m.endswith("output.dense"))
    qdq = []
    for keep in ((), (ffn_down,)):
        out = tmp_path / f"out{len(keep)}"
        out.mkdir()
        target.build(ctx.keeping(keep), out, prepared)
        graph = _graph(out / "model.onnx")
        qdq.append(sum(n.op_type == "QuantizeLinear" for n in graph.node))
        assert sum(n.name.endswith("/smoothed/Mul") for n in graph.node) == 4
    assert len(calls) == 1
    assert qdq[1] < qdq[0]  # the trial's own exclusion applied to the shared smoothed graph


def test_int8_modelopt_residual_adds_on_request(tiny_models, tmp_path, run_cli):
    out = tmp_path / "run"
    code, _, stderr = run_cli("export", tiny_models("bert"), "--target", "tensorrt-int8", "--out", out,
                              "--min-fidelity", "0", "--no-profile", "--option",
                              "tensorrt-int8.quantize_residual_adds=true", "--option",
                              "tensorrt-int8.smoothing_alpha=null")
    assert code == 0, stderr
    graph = _graph(out / "targets" / "tensorrt-int8" / "model.onnx")
    adds = _residual_adds(graph)
    assert len(adds) == 4 and all(count == 2 for count in adds.values())  # ModelOpt: both inputs, GEMM's too
    assert not [n for n in graph.node if n.name.endswith("/smoothed/Mul")]
    quantizer = read_json(out / "targets" / "tensorrt-int8" / "manifest.json")["details"]["quantizer"]
    assert quantizer["smoothing"] == {"alpha": None, "inputs": []}
    assert quantizer["op_types_to_exclude"] == []


def test_classifier_head_stays_fp16_and_is_said(tiny_models, tmp_path, run_cli):
    """A classifier's pooler and classifier Gemms (one row per sequence) are left out of INT8 on
    purpose and recorded; the placement check then holds (it failed on them before)."""
    out = tmp_path / "run"
    code, _, stderr = run_cli("export", tiny_models("bert", "text-classification"), "--target", "tensorrt-int8",
                              "--out", out, "--min-fidelity", "0", "--no-profile")
    assert code == 0, stderr
    manifest = read_json(out / "targets" / "tensorrt-int8" / "manifest.json")
    heads = manifest["details"]["quantizer"]["per_sequence_heads_fp16"]
    graph = _graph(out / "targets" / "tensorrt-int8" / "model.onnx")
    gemms = [n.name for n in graph.node if n.op_type == "Gemm"]
    assert heads and sorted(heads) == sorted(gemms) and any("classifier" in h for h in heads)
    placement = manifest["details"]["checks"]["placement"]
    assert placement["result"] == "passed" and placement["int8_matmuls"] == 12  # 2 blocks x 6 linears


def test_fp16_graph_for_tensorrt(trt_run):
    folder = trt_run / "targets" / "tensorrt-fp16"
    manifest = read_json(folder / "manifest.json")
    checks = manifest["details"]["checks"]
    assert checks["rule_table"]["opset"] <= 20 and checks["polygraphy_lint"]["result"] == "passed"
    assert manifest["details"]["nodes_by_precision"]["fp16"] > manifest["details"]["nodes_by_precision"]["fp32"]
    assert manifest["runtime_config"]["build_timeout_s"] == 3


def test_rule_table_refuses_what_tensorrt_cannot_parse(tmp_path, tiny_models, trt_run):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgeport.targets.tensorrt_rules import RULES, rule_table_check

    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(trt_run / "onnx" / "model.onnx"), str(dynamic), weight_type=QuantType.QInt8)
    with pytest.raises(VerificationError, match="DynamicQuantizeLinear|MatMulInteger"):
        rule_table_check(dynamic, RULES["10.3"])
    model = onnx.load(str(trt_run / "onnx" / "model.onnx"))
    model.opset_import[0].version = 21
    onnx.save(model, str(tmp_path / "opset21.onnx"))
    with pytest.raises(VerificationError, match="opset 21 > 20"):
        rule_table_check(tmp_path / "opset21.onnx", RULES["10.3"])
    model = onnx.load(str(trt_run / "targets" / "tensorrt-int8" / "model.onnx"))
    zero = next(i for i in model.graph.initializer if i.name.endswith("zero_point") or "zero" in i.name)
    zero.CopyFrom(onnx.numpy_helper.from_array(np.ones(onnx.numpy_helper.to_array(zero).shape,
                                                       onnx.numpy_helper.to_array(zero).dtype), zero.name))
    onnx.save(model, str(tmp_path / "asym.onnx"))
    with pytest.raises(VerificationError, match="asymmetric"):
        rule_table_check(tmp_path / "asym.onnx", RULES["10.3"])


def test_missing_modelopt_environment_is_exit_4(tiny_models, tmp_path, run_cli, monkeypatch):
    import edgeport.targets.tensorrt as trt

    monkeypatch.setattr(trt, "modelopt_python", lambda: None)
    code, stdout, stderr = run_cli("export", tiny_models("bert"), "--target", "tensorrt-int8", "--out", tmp_path / "o")
    assert code == 4 and "make setup-tensorrt" in stderr and stdout == ""
    assert not (tmp_path / "o" / "targets").exists()


def test_profile_options_are_validated(tiny_models, tmp_path, run_cli):
    code, _, stderr = run_cli("export", tiny_models("bert"), "--target", "tensorrt-fp16", "--out", tmp_path / "o",
                              "--option", "tensorrt-fp16.min_sequence=256")
    assert code == 2 and "min_sequence <= opt_sequence <= max_sequence" in stderr


def test_int8_layers_check_reads_layer_info():
    from edgeport.targets.trtexec_benchmark import int8_layers_check

    info = {"Layers": [{"Name": "/a/MatMul", "Inputs": [{"Format/Datatype": "Row major Int8 format"}]},
                       {"Name": "/b/MatMul + /b/Add", "Inputs": [{"Format/Datatype": "Row major linear FP16 format"}]}]}
    got = int8_layers_check(info, ["/a/MatMul", "/b/MatMul", "/c/MatMul"])
    assert got["int8"] == 1 and got["unaccounted"] == ["/c/MatMul"] and got["not_int8"][0]["node"] == "/b/MatMul"
    with pytest.raises(ValueError, match="profilingVerbosity=detailed"):
        int8_layers_check({"Layers": ["/a/MatMul"]}, ["/a/MatMul"])


# ---- the device flow over the loopback sshd, with the trtexec stand-in ------------------------------------------


@pytest.fixture()
def lab_orin(sshd, tmp_path, monkeypatch):
    """A catalog entry like jetson-orin-nano reached over the loopback sshd; its trtexec is a
    wrapper running the STAND-IN with the test's knobs, nvpmodel a stand-in printing a mode."""
    log = tmp_path / "argv.jsonl"
    knobs = tmp_path / "knobs.sh"
    knobs.write_text("")
    wrapper = tmp_path / "trtexec"
    wrapper.write_text(f'#!/bin/sh\n. "{knobs}"\nSTANDIN_ARGV_LOG="{log}" exec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    nvpmodel = tmp_path / "nvpmodel"
    nvpmodel.write_text('#!/bin/sh\necho "NV Power Mode: 15W"\necho 0\n')  # stand-in for nvpmodel -q
    nvpmodel.chmod(0o755)
    catalog = tmp_path / "devices.yaml"
    catalog.write_text(f"- name: lab-orin\n  transport: ssh\n  memory: proc\n  power_mode: {nvpmodel} -q\n"
                       f"  native_tools: {{trtexec: {wrapper}}}\n")
    monkeypatch.setenv("EDGEPORT_DEVICES", str(catalog))
    args = ["--device", "lab-orin", "--host", f"{sshd.user}@127.0.0.1:{sshd.port}", "--identity", sshd.client_key,
            "--known-hosts", sshd.known_hosts, "--remote-python", sys.executable, "--runs", "20"]
    return {"args": args, "log": log, "knobs": knobs, "catalog": catalog, "label": f"lab-orin:{sshd.user}@127.0.0.1:"
            f"{sshd.port}"}


@pytest.mark.ssh
def test_trtexec_builds_profiles_and_proves_int8(trt_run, lab_orin, run_cli):
    code, stdout, stderr = run_cli("--json", "profile", trt_run, "--target", "tensorrt-int8", *lab_orin["args"])
    assert code == 0, stderr
    prof = json.loads(stdout)["targets"]["tensorrt-int8"]["profiles"][lab_orin["label"]]
    assert prof["tool"] == "trtexec" and prof["runtime"] == {"name": "tensorrt", "version": "100300"}
    assert prof["latency_ms"]["p50"] == pytest.approx(1.63, abs=0.03) and len(prof["samples_ms"]) == 20
    assert prof["gpu_compute_ms"]["mean"] > 0 and prof["throughput_per_s"] > 500
    env = prof["environment"]
    assert env["int8_layers"]["int8"] == 12 and env["int8_layers"]["not_int8"] == []
    assert env["power_mode"].startswith("NV Power Mode: 15W") and env["gpu"] == "Orin (stand-in)"
    assert env["trtexec_memory"] == {"peak_cpu_mib": 402, "peak_gpu_mib": 3345}
    kept = trt_run / "targets" / "tensorrt-int8" / "devices" / lab_orin["label"].replace(":", "_").replace("@", "_")
    for name in ("model.engine", "build.log", "layers.json", "timing.cache", "times.json", "profile.json"):
        assert (kept / name).is_file(), name
    build, profile, *verify = [json.loads(line) for line in lab_orin["log"].read_text().splitlines()]
    remote = build[0].split("=", 1)[1].rsplit("/", 1)[0]
    shapes = lambda b, s: ",".join(f"{n}:{b}x{s}" for n in ("input_ids", "attention_mask", "token_type_ids"))  # noqa
    # the command lines for an Orin Nano on JetPack 6 (TensorRT 10.3), the target's defaults
    assert build == [f"--onnx={remote}/model.onnx", "--stronglyTyped", f"--saveEngine={remote}/model.engine",
                     f"--minShapes={shapes(1, 1)}", f"--optShapes={shapes(1, 128)}", f"--maxShapes={shapes(8, 128)}",
                     "--memPoolSize=workspace:1024M", f"--timingCacheFile={remote}/timing.cache",
                     "--profilingVerbosity=detailed", f"--exportLayerInfo={remote}/layers.json", "--skipInference"]
    assert profile == [f"--loadEngine={remote}/model.engine", f"--shapes={shapes(1, 128)}", "--iterations=20",
                       "--duration=0", "--warmUp=500", "--useCudaGraph", "--separateProfileRun",
                       f"--exportTimes={remote}/times.json", f"--exportProfile={remote}/profile.json"]
    # the report set through the engine by trtexec itself: raw inputs in, --exportOutput back, in
    # chunks of the profile's max batch (8); the stand-in computes them with ONNX Runtime on the
    # pushed ONNX, so the device figures must equal the host-side ones
    rows = len(verify)
    assert rows >= 2 and all(v[0] == f"--loadEngine={remote}/model.engine" and v[-4:] == [
        f"--exportOutput={remote}/outputs.json", "--iterations=1", "--warmUp=0", "--duration=0"] for v in verify)
    assert verify[0][2] == "--loadInputs=" + ",".join(f"{n}:{remote}/{n}.bin"
                                                       for n in ("input_ids", "attention_mask", "token_type_ids"))
    assert verify[0][1].startswith("--shapes=input_ids:8x")
    entry = read_json(trt_run / "results.json")["targets"]["tensorrt-int8"]
    assert entry["profiles"][lab_orin["label"]]
    verification = entry["device_verification"][lab_orin["label"]]
    assert verification["ran"] is True and verification["agrees"] is True, verification
    device_fid, host_fid = verification["check"]["fidelity"], entry["fidelity"]
    assert device_fid["samples"] == host_fid["samples"] > 8 * (rows - 1)
    assert device_fid["mean_cosine"] == pytest.approx(host_fid["mean_cosine"], abs=1e-4)
    assert verification["check"]["runtime"]["tool"] == "trtexec"
    # an engine whose outputs are wrong (the stand-in scales them) is flagged, the profile kept
    lab_orin["knobs"].write_text("export STANDIN_OUTPUT_SCALE=-1\n")
    code, _, stderr = run_cli("profile", trt_run, "--target", "tensorrt-int8", *lab_orin["args"])
    assert code == 0 and "DISAGREE" in stderr, stderr
    wrong = read_json(trt_run / "results.json")["targets"]["tensorrt-int8"]["device_verification"][lab_orin["label"]]
    assert wrong["agrees"] is False and wrong["check"]["fidelity"]["mean_cosine"] < 0
    lab_orin["knobs"].write_text("")
    # the timing cache is kept per device and went back for that second build
    assert (kept / "timing.cache").read_bytes() == b"standin-timing-cache\n" * 2
    # both engines profiled on the device: which is faster is said, loudly when INT8 is not
    lab_orin["knobs"].write_text("export STANDIN_LATENCY_MS=1.20\n")  # the stand-in's FP16 engine "runs" faster
    code, stdout, stderr = run_cli("--json", "profile", trt_run, "--target", "tensorrt-fp16", "--no-verify",
                                   *lab_orin["args"])
    lab_orin["knobs"].write_text("")
    assert code == 0, stderr
    document = json.loads(stdout)
    pair = document["precision_pairs"][0]
    assert (pair["device"], pair["int8"], pair["fp16"], pair["faster"]) == (lab_orin["label"], "tensorrt-int8",
                                                                          "tensorrt-fp16", "tensorrt-fp16")
    assert pair["int8_p50_ms"] == pytest.approx(1.63, abs=0.03) and pair["fp16_p50_ms"] == pytest.approx(1.23, abs=0.03)
    said = " ".join(stderr.split())
    assert "tensorrt-int8 (p50 1.6" in said and "is not faster than tensorrt-fp16" in said
    assert any("not faster" in w for w in document["warnings"])
    assert "INT8 NOT faster" in (trt_run / "report.md").read_text()


@pytest.mark.ssh
@pytest.mark.parametrize("fault", ["not-int8", "timeout", "missing"])
def test_trtexec_faults_are_clear_and_keep_results(trt_run, lab_orin, run_cli, fault):
    before = (trt_run / "results.json").read_text()
    target = "tensorrt-int8"
    if fault == "not-int8":
        lab_orin["knobs"].write_text("export STANDIN_NOT_INT8=layer.1/output/dense\n")
    elif fault == "timeout":
        lab_orin["knobs"].write_text("export STANDIN_BUILD_SECONDS=30\n")
        target = "tensorrt-fp16"  # built with build_timeout_s=3
    else:
        text = lab_orin["catalog"].read_text()
        lab_orin["catalog"].write_text(text.replace("trtexec: /", "trtexec: /nonexistent/"))
    code, stdout, stderr = run_cli("profile", trt_run, "--target", target, *lab_orin["args"])
    expected = {"not-int8": (5, "layers meant to be INT8 did not run INT8"),
                "timeout": (6, "engine build on lab-orin"), "missing": (6, "trtexec is not on lab-orin")}[fault]
    assert code == expected[0] and expected[1] in stderr, stderr
    if fault == "not-int8":
        assert "/m/encoder/layer.1/output/dense/MatMul" in stderr
    if fault == "timeout":
        assert "ran past 3 s" in stderr
    assert stdout == "" and "Traceback" not in stderr
    assert (trt_run / "results.json").read_text() == before


@pytest.mark.e2e
def test_minilm_tensorrt_fp16(tmp_path, run_cli):
    out = tmp_path / "run"
    code, _, stderr = run_cli("export", "minilm", "--target", "tensorrt-fp16", "--out", out, "--no-profile")
    assert code == 0, stderr
    manifest = read_json(out / "targets" / "tensorrt-fp16" / "manifest.json")
    assert manifest["details"]["size_ratio_vs_fp32"] <= 0.55
    assert manifest["details"]["checks"]["rule_table"]["opset"] <= 20
    assert read_json(out / "results.json")["targets"]["tensorrt-fp16"]["fidelity"]["mean_cosine"] >= 0.9999


@pytest.mark.ssh
def test_devices_check_jetson_says_what_is_missing(sshd, run_cli):
    code, stdout, stderr = run_cli("--json", "devices", "check", "jetson-orin-nano", "--host",
                                   f"{sshd.user}@127.0.0.1:{sshd.port}", "--identity", sshd.client_key,
                                   "--known-hosts", sshd.known_hosts, "--remote-python", sys.executable)
    assert code == 0, stderr
    info = json.loads(stdout)
    assert {"trtexec", "nvpmodel", "tegrastats"} <= set(info["missing_tools"])  # this "device" is no Jetson
    assert info["facts"]["jetpack"].startswith("absent") and info["facts"]["tensorrt"].startswith("absent")


def test_agent_without_trtexec_refuses_to_time_the_cpu(trt_run):
    """A device without trtexec runs the ONNX with the agent through ONNX Runtime's TensorRT
    provider, or not at all: never a CPU latency presented as TensorRT's."""
    import subprocess

    from edgeport.devices.local_profile import AGENT_PATH

    done = subprocess.run([sys.executable, str(AGENT_PATH), "--artifact", str(trt_run / "targets" / "tensorrt-fp16"),
                           "--runs", "2"], capture_output=True, text=True, timeout=300)
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 1 and doc["error"].startswith("TensorRT libraries not found on this device")

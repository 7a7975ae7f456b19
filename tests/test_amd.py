"""amd-fp16: the shared FP16 pass (range report, FP32 islands, strongly-typed graph), the
MIGraphX provider configuration, and the device agent's refusal to fall back to the CPU,
checked with the real onnxruntime-migraphx wheel (no ROCm here) as the "device" runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_json

ROOT = Path(__file__).resolve().parents[1]
REFUSAL = "MIGraphX libraries not found on this device: install ROCm 7.x / onnxruntime-migraphx"


@pytest.fixture(scope="session")
def migraphx_python() -> str:
    """The Python of .test-venvs/ort-migraphx (the real onnxruntime-migraphx wheel), made by
    scripts/test-venvs.sh (`make test-venvs`) when missing."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "test-venvs.sh")], capture_output=True, text=True,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=900)
    assert done.returncode == 0, done.stderr
    python = ROOT / ".test-venvs" / "ort-migraphx" / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import onnxruntime as o; print(o.get_available_providers())"],
                           capture_output=True, text=True)
    assert "MIGraphXExecutionProvider" in probe.stdout, probe.stderr
    return str(python)


@pytest.fixture(scope="module")
def amd_run(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("amd") / "run"
    code = main(["export", str(tiny_models("bert")), "--target", "amd-fp16", "--out", str(out), "--runs", "5",
                 "--option", "amd-fp16.model_cache_dir=/var/cache/migraphx", "--option", "amd-fp16.mem_limit_mb=2048"])
    assert code == 0
    return out


def _overflowing_graph(path: Path) -> None:
    """x[1,4] @ W (values up to 4e4) -> y (|y| ~ 1e5, beyond FP16) -> Mul 1e-3 -> out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.full((4, 4), 4.0e4, dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="big/MatMul"),
             helper.make_node("Mul", ["y", "s"], ["out"], name="scale/Mul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32([1e-3]), "s")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _output_type(path: Path, node_name: str) -> int:
    """The declared type of what a node writes, as the graph's shape inference gives it."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    return types[next(n.output[0] for n in inferred.graph.node if n.name == node_name)]


def test_range_report_flags_overflow_and_the_island_keeps_it_in_fp32(tmp_path):
    import onnx
    import onnxruntime as ort

    from edgeport.targets.fp16_graph import FP16_MAX, convert_fp16, fp16_graph, range_report

    src = tmp_path / "g.onnx"
    _overflowing_graph(src)
    feeds = [{"x": np.ones((1, 4), dtype=np.float32)}]
    report = range_report(src, feeds)
    assert report.max_abs["y"] == pytest.approx(1.6e5) and report.beyond_fp16 == ["y"]
    graph = fp16_graph(src, tmp_path / "fp16.onnx", feeds, report=report)
    assert [(i.node, i.kind) for i in graph.islands] == [("big/MatMul", "range"), ("scale/Mul", "range")]
    assert graph.details()["range_report"]["beyond_fp16"][0]["max_abs"] > FP16_MAX
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]  # noqa
    assert np.allclose(run(tmp_path / "fp16.onnx"), run(src), rtol=1e-2)
    # without the island 'y' would be an FP16 tensor (1.6e5 > 65504: inf on a GPU); ONNX Runtime on this
    # CPU computes it in fp32 and hides that, which is why the range report decides, not a CPU run
    convert_fp16(src, tmp_path / "naive.onnx", [])
    assert _output_type(tmp_path / "naive.onnx", "big/MatMul") == onnx.TensorProto.FLOAT16
    fp16 = onnx.load(str(tmp_path / "fp16.onnx"))
    assert _output_type(tmp_path / "fp16.onnx", "big/MatMul") == onnx.TensorProto.FLOAT
    assert [n.op_type for n in fp16.graph.node] == ["MatMul", "Mul"]  # fp32 end to end: no Cast round trip


def test_amd_fp16_artifact(amd_run):
    import onnx

    manifest = read_json(amd_run / "targets" / "amd-fp16" / "manifest.json")
    model = onnx.load(str(amd_run / "targets" / "amd-fp16" / "model.onnx"))
    fp32 = onnx.load(str(amd_run / "onnx" / "model.onnx"))
    # io types as in the fp32 graph; weights of the MatMuls in fp16; LayerNorm and Softmax in fp32 islands
    assert [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input] == \
        [(i.name, i.type.tensor_type.elem_type) for i in fp32.graph.input]
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    inits = {i.name: i.data_type for i in model.graph.initializer}
    matmul_weights = [n.input[1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert matmul_weights and all(inits[w] == onnx.TensorProto.FLOAT16 for w in matmul_weights)
    details = manifest["details"]
    island_ops = {i["op"] for i in details["fp32_islands"]}
    assert {"LayerNormalization", "Softmax"} <= island_ops
    assert details["fp32_island_count"]["large-constant"] >= 2  # the attention-mask fill of each layer
    assert details["range_report"]["samples"] > 50 and details["range_report"]["tensors"] > 50
    assert details["structure_checks"]["onnx_checker"] == "full check passed"
    # the provider configuration, as the device agent applies it
    config = manifest["runtime_config"]
    assert config["execution_provider"] == "MIGraphXExecutionProvider"
    assert config["provider_options"] == {"device_id": "0", "migraphx_fp16_enable": "0",
                                          "migraphx_exhaustive_tune": "0",
                                          "migraphx_model_cache_dir": "/var/cache/migraphx",
                                          "migraphx_mem_limit": str(2048 * 1024 * 1024)}
    assert config["session_config"] == {"session.disable_cpu_ep_fallback": "1"}
    results = read_json(amd_run / "results.json")
    entry = results["targets"]["amd-fp16"]
    assert entry["host_side_emulation"].startswith("host-side emulation") and "MIGraphX" in entry["host_side_emulation"]
    assert entry["fidelity"]["mean_cosine"] > 0.999
    # profiled here on the CPU as host-side emulation, and the profile says so
    assert entry["profiles"]["local"]["cpu_fallback"] is True


def test_bad_amd_option_is_a_usage_error(tiny_models, tmp_path, run_cli):
    code, _, stderr = run_cli("export", tiny_models("bert"), "--target", "amd-fp16", "--out", tmp_path / "o",
                              "--option", "amd-fp16.fp16_mode=maybe")
    assert code == 2 and "fp16_mode" in stderr


def _agent(python: str, artifact: Path, *extra: str) -> tuple[int, dict]:
    from edgeport.devices.local_profile import AGENT_PATH

    done = subprocess.run([python, str(AGENT_PATH), "--artifact", str(artifact), "--runs", "3", "--warmup", "1",
                           *extra], capture_output=True, text=True, timeout=300)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_agent_refuses_migraphx_without_rocm(amd_run, migraphx_python):
    """The real onnxruntime-migraphx wheel, no ROCm libraries: refused, never a CPU latency."""
    artifact = amd_run / "targets" / "amd-fp16"
    code, doc = _agent(migraphx_python, artifact)
    assert code == 1 and REFUSAL in doc["error"] and "latency_ms" not in doc
    code, doc = _agent(migraphx_python, artifact, "--allow-cpu-fallback")
    assert code == 0 and doc["cpu_fallback"] is True and doc["latency_ms"]["p50"] > 0
    assert doc["runtime"]["execution_provider"] == "CPUExecutionProvider"
    assert doc["runtime"]["requested_provider"] == "MIGraphXExecutionProvider" and "--allow-cpu-fallback" in \
        doc["warnings"][0]


def test_agent_refuses_a_provider_the_cpu_build_lacks(amd_run):
    code, doc = _agent(sys.executable, amd_run / "targets" / "amd-fp16")
    assert code == 1 and REFUSAL in doc["error"] and "has only" in doc["error"] and "MIGraphX" not in doc["error"].split("has only")[1]


def test_predict_and_agent_texts_say_a_gpu_artifact_was_served_on_the_cpu(amd_run, run_cli, tmp_path):
    """edgeport.runtime serves ONNX on the CPU provider: for an artifact built for MIGraphX the
    labels and timings are the CPU's, and both `predict` and the agent's --texts say so."""
    code, stdout, stderr = run_cli("--json", "predict", amd_run, "--target", "amd-fp16", "--text", "a fine film")
    doc = json.loads(stdout)
    assert code == 0 and "MIGraphXExecutionProvider" in stderr and "CPU" in doc["warnings"][0]
    assert doc["request_path"]["runtime"]["execution_provider"] == "CPUExecutionProvider"
    assert doc["request_path"]["runtime"]["requested_provider"] == "MIGraphXExecutionProvider"
    texts = tmp_path / "texts.txt"
    texts.write_text("a fine film\nnot a good one\n")
    code, doc = _agent(sys.executable, amd_run / "targets" / "amd-fp16", "--texts", str(texts))
    assert code == 0 and doc["latency_ms"]["p50"] > 0 and "MIGraphXExecutionProvider" in doc["warnings"][0]
    assert doc["runtime"]["requested_provider"] == "MIGraphXExecutionProvider"


@pytest.mark.ssh
def test_profile_over_ssh_refused_then_allowed(amd_run, migraphx_python, sshd, run_cli):
    before = (amd_run / "results.json").read_text()
    args = ["--device", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}", "--identity", sshd.client_key,
            "--known-hosts", sshd.known_hosts, "--remote-python", migraphx_python, "--runs", "5"]
    code, stdout, stderr = run_cli("profile", amd_run, "--target", "amd-fp16", *args)
    assert code == 6 and REFUSAL in stderr and stdout == ""
    assert (amd_run / "results.json").read_text() == before  # nothing lost, nothing half-written
    code, stdout, stderr = run_cli("--json", "profile", amd_run, "--target", "amd-fp16", *args, "--allow-cpu-fallback")
    assert code == 0, stderr
    label = f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"
    prof = json.loads(stdout)["targets"]["amd-fp16"]["profiles"][label]
    assert prof["cpu_fallback"] is True and prof["runtime"]["requested_provider"] == "MIGraphXExecutionProvider"
    assert read_json(amd_run / "results.json")["targets"]["amd-fp16"]["profiles"][label]["cpu_fallback"] is True


@pytest.mark.e2e
def test_minilm_amd_fp16(tmp_path, run_cli):
    out = tmp_path / "run"
    code, _, stderr = run_cli("export", "minilm", "--target", "amd-fp16", "--out", out, "--no-profile")
    assert code == 0, stderr
    size = (out / "targets" / "amd-fp16" / "model.onnx").stat().st_size
    assert size <= 0.55 * (out / "onnx" / "model.onnx").stat().st_size
    fidelity = read_json(out / "results.json")["targets"]["amd-fp16"]["fidelity"]
    assert fidelity["mean_cosine"] >= 0.9999


@pytest.mark.ssh
def test_devices_check_amd_gpu_says_what_is_missing(sshd, migraphx_python, run_cli):
    code, stdout, stderr = run_cli("--json", "devices", "check", "amd-gpu-linux", "--host",
                                   f"{sshd.user}@127.0.0.1:{sshd.port}", "--identity", sshd.client_key,
                                   "--known-hosts", sshd.known_hosts, "--remote-python", migraphx_python)
    assert code == 0, stderr
    info = json.loads(stdout)
    assert info["onnxruntime_package"] == "onnxruntime-migraphx"  # the device's own ORT build
    assert {"rocm-smi", "amd-smi", "migraphx-driver"} <= set(info["missing_tools"])  # no ROCm on this "device"
    assert info["facts"]["rocm"].startswith("absent") and info["facts"]["migraphx"].startswith("absent")

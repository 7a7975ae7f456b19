"""Verification where the artifact runs: `edgeport profile` sends the run's report set through
the artifact with the device agent's --verify mode (edgeport.runtime, here in a child process
and over the loopback sshd), pulls the outputs back (sha256 checked) and records
device_verification beside the host-side figures; an artifact that disagrees on the device is a
loud warning and a flag, its profile kept."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_json

HOST_EQUAL = 1e-6  # same runtime, same inputs, same batching: the same figures


@pytest.fixture(scope="module", autouse=True)
def few_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("verify") / "run"
    code = main(["export", str(tiny_models("bert")), "--target", "onnx-fp32,onnx-int8", "--out", str(out),
                 "--min-fidelity", "0", "--no-profile"])
    assert code == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _ssh_args(sshd):
    return ["--device", sshd.url, "--identity", sshd.client_key, "--known-hosts", sshd.known_hosts,
            "--remote-python", sys.executable]


def _same_figures(device: dict, host: dict) -> None:
    for key in ("mean_cosine", "min_cosine", "max_abs_error"):
        assert device[key] == pytest.approx(host[key], abs=HOST_EQUAL), key
    assert (device["source"], device["samples"]) == (host["source"], host["samples"])


def test_report_set_is_kept_in_the_run_folder(built):
    manifest = read_json(built / "reference" / "manifest.json")
    rows = (built / "reference" / "heldout.jsonl").read_text().splitlines()
    outputs = np.load(built / "reference" / "heldout.npy")
    host = read_json(built / "results.json")["targets"]["onnx-int8"]["fidelity"]
    assert manifest["heldout"] == {"source": host["source"], "samples": host["samples"], "labelled": False}
    assert len(rows) == outputs.shape[0] == host["samples"] and outputs.dtype == np.float32


def test_local_profile_verifies_with_the_host_side_figures(built, tmp_path, run_cli):
    run = _copy(built, tmp_path)
    code, stdout, stderr = run_cli("--json", "profile", run, "--target", "onnx-int8", "--runs", "3", "--threads", "2")
    assert code == 0, stderr
    entry = read_json(run / "results.json")["targets"]["onnx-int8"]
    assert json.loads(stdout)["targets"]["onnx-int8"]["device_verification"] == entry["device_verification"]
    ver = entry["device_verification"]["local"]
    assert ver["source"] == "device:local" and ver["ran"] and ver["agrees"] and ver["shortfalls"] == []
    _same_figures(ver["check"]["fidelity"], entry["fidelity"])
    assert ver["check"]["runtime"]["name"] == "onnxruntime" and ver["check"]["runtime"]["tool"] == "agent --verify"
    assert ver["outputs"]["shape"] == [entry["fidelity"]["samples"], 32] and len(ver["outputs"]["sha256"]) == 64
    assert "local" in entry["profiles"]
    report = (run / "report.md").read_text()
    assert "Verification where it runs" in report and "| onnx-int8 | local | onnxruntime" in report
    assert 'id="device-verification"' in (run / "report.html").read_text()
    # --no-verify: the profile alone
    code, _, stderr = run_cli("profile", run, "--target", "onnx-fp32", "--runs", "3", "--no-verify")
    assert code == 0, stderr
    assert read_json(run / "results.json")["targets"]["onnx-fp32"]["device_verification"] == {}


@pytest.mark.ssh
def test_ssh_profile_verifies_on_the_device(built, sshd, tmp_path, run_cli):
    run = _copy(built, tmp_path)
    code, _, stderr = run_cli("profile", run, "--target", "onnx-int8", "--runs", "3", "--threads", "2")
    assert code == 0, stderr
    code, _, stderr = run_cli("profile", run, "--target", "onnx-int8", "--runs", "3", "--threads", "2",
                              *_ssh_args(sshd))
    assert code == 0, stderr
    entry = read_json(run / "results.json")["targets"]["onnx-int8"]
    label = f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"
    ver = entry["device_verification"][label]
    assert ver["source"] == f"device:{label}" and ver["ran"] and ver["agrees"]
    _same_figures(ver["check"]["fidelity"], entry["fidelity"])
    # the bytes pulled back are the bytes the same runtime wrote here (their sha256 checked on arrival)
    assert ver["outputs"]["sha256"] == entry["device_verification"]["local"]["outputs"]["sha256"]
    assert label in entry["profiles"] and "local" in entry["profiles"]
    assert "agrees" in (run / "report.md").read_text().split(label)[-1]


@pytest.mark.ssh
def test_outputs_corrupted_on_the_way_back_are_refused_and_the_profile_kept(built, sshd, tmp_path, run_cli,
                                                                             monkeypatch):
    from edgeport.devices.transports.ssh import SshTransport

    pull = SshTransport.pull

    def corrupting_pull(self, remote, local):
        pull(self, remote, local)
        if str(remote).endswith(".outputs.npy"):
            data = bytearray(Path(local).read_bytes())
            data[-1] ^= 0xFF
            Path(local).write_bytes(bytes(data))

    monkeypatch.setattr(SshTransport, "pull", corrupting_pull)
    run = _copy(built, tmp_path)
    code, stdout, stderr = run_cli("profile", run, "--target", "onnx-int8", "--runs", "3", *_ssh_args(sshd))
    assert code == 6 and "arrived corrupted (sha256 mismatch)" in stderr, stderr
    assert stdout == "" and "Traceback" not in stderr
    entry = read_json(run / "results.json")["targets"]["onnx-int8"]
    label = f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"
    assert label in entry["profiles"]  # the profile that came with it is kept
    ver = entry["device_verification"][label]
    assert not ver["ran"] and "sha256 mismatch" in ver["not_run"] and ver["check"] is None


def _scramble(onnx_path: Path, out: Path) -> None:
    """Another model with the same inputs and outputs: every float weight permuted."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    rng = np.random.default_rng(1)
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size > 1:
            tensor.CopyFrom(numpy_helper.from_array(rng.permutation(array.ravel()).reshape(array.shape), tensor.name))
    onnx.save(model, str(out))


def test_an_artifact_that_disagrees_on_the_device_is_flagged_loudly(built, tmp_path, run_cli):
    run = _copy(built, tmp_path)
    artifact = run / "targets" / "onnx-int8" / "model.onnx"
    _scramble(run / "onnx" / "model.onnx", artifact)  # swapped after the build and its host-side check
    code, stdout, stderr = run_cli("--json", "profile", run, "--target", "onnx-int8", "--runs", "3", "--threads", "2")
    assert code == 0, stderr
    assert "DISAGREE with the host-side check" in " ".join(stderr.split())  # the UI wraps lines
    doc = read_json(run / "results.json")
    entry = doc["targets"]["onnx-int8"]
    ver = entry["device_verification"]["local"]
    assert ver["ran"] and ver["agrees"] is False
    assert ver["check"]["fidelity"]["mean_cosine"] < entry["fidelity"]["mean_cosine"] - 0.05
    assert any(s.startswith("mean cosine") for s in ver["shortfalls"])
    assert any("DISAGREE" in w for w in doc["warnings"]) and "local" in entry["profiles"]
    assert "DISAGREES: mean cosine" in (run / "report.md").read_text()


def test_classifier_accuracy_on_the_device(tiny_models, sst_like, tmp_path, run_cli):
    run = tmp_path / "run"
    code, _, stderr = run_cli("export", tiny_models("bert", "text-classification"), "--target", "onnx-int8",
                              "--out", run, "--eval", sst_like, "--min-fidelity", "0", "--no-profile")
    assert code == 0, stderr
    code, _, stderr = run_cli("profile", run, "--runs", "3", "--threads", "2")
    assert code == 0, stderr
    entry = read_json(run / "results.json")["targets"]["onnx-int8"]
    ver = entry["device_verification"]["local"]
    assert ver["agrees"], ver
    _same_figures(ver["check"]["fidelity"], entry["fidelity"])
    assert ver["check"]["fidelity"]["top1_agreement"] == entry["fidelity"]["top1_agreement"]
    host, device = entry["accuracy"], ver["check"]["accuracy"]
    assert device is not None and device["samples"] == host["samples"] > 0
    for key in ("fp32", "artifact", "label_agreement", "drop_points"):
        assert device[key] == pytest.approx(host[key], abs=HOST_EQUAL), key


def test_pair_model_is_verified_on_pairs(tiny_models, tmp_path, run_cli):
    run = tmp_path / "run"
    code, _, stderr = run_cli("export", tiny_models("bert", "text-pair-classification"), "--target", "onnx-fp32",
                              "--out", run, "--no-profile")
    assert code == 0, stderr
    rows = [json.loads(line) for line in (run / "reference" / "heldout.jsonl").read_text().splitlines()]
    assert all("text_pair" in row for row in rows)
    code, _, stderr = run_cli("profile", run, "--runs", "3", "--threads", "2")
    assert code == 0, stderr
    entry = read_json(run / "results.json")["targets"]["onnx-fp32"]
    ver = entry["device_verification"]["local"]
    assert ver["agrees"]
    _same_figures(ver["check"]["fidelity"], entry["fidelity"])
    for key in ("score_pearson", "score_spearman"):
        assert ver["check"]["fidelity"][key] == pytest.approx(entry["fidelity"][key], abs=HOST_EQUAL)


def test_a_run_folder_without_a_report_set_says_so(built, tmp_path, run_cli):
    run = _copy(built, tmp_path)
    shutil.rmtree(run / "reference")
    code, _, stderr = run_cli("profile", run, "--target", "onnx-fp32", "--runs", "3")
    assert code == 0, stderr
    ver = read_json(run / "results.json")["targets"]["onnx-fp32"]["device_verification"]["local"]
    assert not ver["ran"] and "keeps no report set" in ver["not_run"]
    assert "not verified there" in " ".join(stderr.split())


def test_agent_verify_mode_reads_texts_and_pairs(built, tmp_path):
    """The agent alone: a JSON lines file of a text and a pair in, the .npy beside it out."""
    import subprocess

    from edgeport.devices.local_profile import AGENT_PATH

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(json.dumps("a plain text") + "\n" + json.dumps({"text": "first", "text_pair": "second"}) + "\n")
    done = subprocess.run([sys.executable, str(AGENT_PATH), "--artifact", str(built / "targets" / "onnx-fp32"),
                           "--verify", str(inputs), "--batch", "16", "--threads", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    saved = Path(result["outputs"])
    assert saved == tmp_path / "inputs.outputs.npy" and result["pairs"] is True and result["inputs"] == 2
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == result["sha256"]
    assert list(np.load(saved).shape) == result["shape"] == [2, 32]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": 1}\n')
    done = subprocess.run([sys.executable, str(AGENT_PATH), "--artifact", str(built / "targets" / "onnx-fp32"),
                           "--verify", str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "line 1: expected a JSON string" in json.loads(done.stdout)["error"]

"""Profiling over SSH against a real sshd on 127.0.0.1, and every fault case."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from tests.sshd_helpers import CuttableProxy, device_scratch_folders, free_port, processes_under

pytestmark = pytest.mark.ssh


@pytest.fixture(scope="module")
def built_run(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("ssh") / "run"
    code = main(["export", str(tiny_models("bert")), "--target", "onnx-int8,openvino-fp16", "--out", str(out),
                 "--min-fidelity", "0", "--runs", "5"])
    assert code == 0
    return out


def _ssh_args(sshd, *, known_hosts=None, port=None, identity=None):
    url = f"ssh://{sshd.user}@127.0.0.1:{port or sshd.port}"
    return ["--device", url, "--identity", identity or sshd.client_key,
            "--known-hosts", known_hosts or sshd.known_hosts, "--remote-python", sys.executable]


def _running_agents(sshd):
    """Agents started through this test's sshd (not those of other test runs on the machine)."""
    return processes_under(sshd.process.pid, "edgeport_agent.py")


def _leftovers():
    return device_scratch_folders()


def test_profile_over_ssh_end_to_end(sshd, built_run, run_cli):
    before = _leftovers()
    code, stdout, stderr = run_cli("--json", "profile", built_run, "--runs", "20", *_ssh_args(sshd))
    assert code == 0, stderr
    doc = json.loads(stdout)
    label = f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"
    for name, runtime in (("onnx-int8", "onnxruntime"), ("openvino-fp16", "openvino")):
        prof = doc["targets"][name]["profiles"][label]
        lat = prof["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert prof["peak_rss_mb"] > 10 and prof["runtime"]["name"] == runtime
        assert prof["environment"]["arch"] and prof["environment"]["transport"] == "ssh"
        assert "local" in doc["targets"][name]["profiles"]  # earlier results kept
    on_disk = json.loads((built_run / "results.json").read_text())
    assert label in on_disk["targets"]["onnx-int8"]["profiles"]
    assert _leftovers() == before  # the scratch folder was removed from the device


def test_devices_check(sshd, run_cli):
    code, stdout, stderr = run_cli("--json", "devices", "check", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}",
                                   "--identity", sshd.client_key, "--known-hosts", sshd.known_hosts,
                                   "--remote-python", sys.executable)
    assert code == 0, stderr
    info = json.loads(stdout)
    assert info["os"] == "Linux" and info["cores"] >= 1 and "onnxruntime" in info["runtimes"]


def test_unknown_host_key_is_refused_then_trusted_explicitly(sshd, built_run, run_cli, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    code, stdout, stderr = run_cli("profile", built_run, "--target", "onnx-int8", "--runs", "3",
                                   *_ssh_args(sshd, known_hosts=empty))
    assert code == 6 and "host key of" in stderr and "unknown" in stderr and "SHA256:" in stderr
    assert stdout == ""
    code, _, stderr = run_cli("profile", built_run, "--target", "onnx-int8", "--runs", "3",
                              *_ssh_args(sshd, known_hosts=empty), "--trust-new-host-key")
    assert code == 0, stderr
    assert sshd.host_pub.split()[1] in empty.read_text()  # recorded for next time


def test_changed_host_key_is_refused_even_with_trust(sshd, built_run, run_cli, tmp_path):
    from tests.sshd_helpers import _keygen

    _keygen(tmp_path / "impostor")  # another host's key, recorded for this host:port
    known = tmp_path / "known_hosts"
    kind, key = (tmp_path / "impostor.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    code, _, stderr = run_cli("profile", built_run, "--target", "onnx-int8", "--runs", "3",
                              *_ssh_args(sshd, known_hosts=known), "--trust-new-host-key")
    assert code == 6 and "CHANGED" in stderr


def test_closed_port(built_run, run_cli, sshd):
    code, _, stderr = run_cli("profile", built_run, "--target", "onnx-int8", *_ssh_args(sshd, port=free_port()))
    assert code == 6 and "cannot connect to 127.0.0.1" in stderr and "Traceback" not in stderr


def test_refused_login(built_run, run_cli, sshd, tmp_path):
    from tests.sshd_helpers import _keygen

    _keygen(tmp_path / "stranger")
    code, _, stderr = run_cli("profile", built_run, "--target", "onnx-int8",
                              *_ssh_args(sshd, identity=tmp_path / "stranger"))
    assert code == 6 and "was refused" in stderr


def test_device_missing_the_runtime(built_run, run_cli, sshd):
    import subprocess

    bare = f"{sys.base_prefix}/bin/python3"
    probe = subprocess.run([bare, "-c", "import onnxruntime"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{bare} has onnxruntime; no bare Python to play a device without the runtime")
    before = _leftovers()
    args = _ssh_args(sshd)
    args[args.index("--remote-python") + 1] = bare
    code, _, stderr = run_cli("profile", built_run, "--target", "onnx-int8", *args)
    assert code == 6 and "runtime for onnx artifacts is not installed" in stderr
    assert _leftovers() == before


def test_connection_dropping_mid_run_keeps_results_and_says_what_is_left(sshd, built_run, run_cli, tmp_path):
    proxy = CuttableProxy(sshd.port)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{proxy.port} {sshd.host_pub}\n")
    results_before = (built_run / "results.json").read_text()
    before = _leftovers()
    timer = threading.Timer(4.0, proxy.cut)
    timer.start()
    started = time.monotonic()
    try:
        code, stdout, stderr = run_cli("profile", built_run, "--target", "onnx-int8", "--runs", "2000000",
                                       *_ssh_args(sshd, port=proxy.port, known_hosts=known))
    finally:
        timer.cancel()
        proxy.cut()
    assert time.monotonic() - started < 60
    assert code == 6 and "dropped" in stderr
    assert "left /tmp/edgeport-" in stderr  # what was left on the device is named
    assert (built_run / "results.json").read_text() == results_before  # nothing lost
    deadline = time.monotonic() + 20  # the orphaned agent notices its session is gone and stops
    while time.monotonic() < deadline and _running_agents(sshd):
        time.sleep(0.5)
    assert not _running_agents(sshd), "an agent kept running on the device after the drop"
    for leftover in _leftovers() - before:  # tidy what the dropped run could not
        import shutil
        shutil.rmtree(leftover, ignore_errors=True)


def test_tegrastats_sampled_during_the_run_on_a_jetson_entry(sshd, built_run, run_cli, tmp_path, monkeypatch):
    """A user catalog entry like jetson-orin-nano (memory: tegrastats), reached over the real
    sshd; tegrastats itself is a stand-in that writes synthetic Orin Nano lines to its logfile."""
    from pathlib import Path

    samples = (Path(__file__).parent / "samples" / "tegrastats_orin_nano_synthetic.txt").read_text()
    tool = tmp_path / "tegrastats"
    tool.write_text('#!/bin/sh\n# usage: tegrastats --interval MS --logfile FILE\n'
                    f'while :; do cat >> "$4" <<"EOF"\n{samples}EOF\nsleep 0.1; done\n')
    tool.chmod(0o755)
    catalog = tmp_path / "devices.yaml"
    catalog.write_text(f"- name: lab-jetson\n  transport: ssh\n  arch: x86_64\n  memory: tegrastats\n"
                       f"  native_tools: {{tegrastats: {tool}}}\n")
    monkeypatch.setenv("EDGEPORT_DEVICES", str(catalog))
    args = _ssh_args(sshd)
    args[args.index("--device") + 1] = "lab-jetson"
    code, stdout, stderr = run_cli("--json", "profile", built_run, "--target", "onnx-int8", "--runs", "200",
                                   "--host", f"{sshd.user}@127.0.0.1:{sshd.port}", *args)
    assert code == 0, stderr
    prof = json.loads(stdout)["targets"]["onnx-int8"]["profiles"][f"lab-jetson:{sshd.user}@127.0.0.1:{sshd.port}"]
    memory = prof["device_memory"]
    assert memory["reader"] == "tegrastats" and memory["peak_ram_used_mb"] == 3470
    assert memory["peak_power_mw"]["VDD_IN"] == 8205 and memory["samples"] >= 3
    assert not _running_agents(sshd)


def _bare_runtime_python() -> str:
    """A venv holding only ONNX Runtime (and numpy, its dependency): a device's Python with its
    runtime and nothing of edgeport, torch or transformers. Built once from PyPI, kept under
    the checkout's ignored .test-venvs/."""
    import subprocess
    from pathlib import Path

    venv = Path(__file__).parents[1] / ".test-venvs" / "agent-bare"
    python = venv / "bin" / "python"
    if not (venv / ".ready").is_file():
        subprocess.run([f"{sys.base_prefix}/bin/python3", "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "onnxruntime", "numpy"], check=True, timeout=600)
        (venv / ".ready").write_text("onnxruntime numpy\n")
    return str(python)


def test_agent_runs_in_a_bare_runtime_only_environment(sshd, built_run, run_cli):
    """A hidden import of edgeport (or torch) in the agent would fail here: the device's Python
    has the runtime alone."""
    import subprocess

    python = _bare_runtime_python()
    assert subprocess.run([python, "-c", "import edgeport"], capture_output=True).returncode != 0
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    args = _ssh_args(sshd)
    args[args.index("--remote-python") + 1] = python
    code, stdout, stderr = run_cli("--json", "profile", built_run, "--target", "onnx-int8", "--runs", "5", *args)
    assert code == 0, stderr
    entry = json.loads(stdout)["targets"]["onnx-int8"]
    prof = entry["profiles"][f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"]
    assert prof["runtime"]["name"] == "onnxruntime" and prof["latency_ms"]["p50"] > 0
    # no `tokenizers` there: edgeport.runtime cannot verify on it, which is said, not hidden or fatal
    verification = entry["device_verification"][f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"]
    assert not verification["ran"] and "install `tokenizers` there" in verification["not_run"]

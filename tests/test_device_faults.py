"""Device faults over a real sshd on 127.0.0.1 (besides those in test_devices_ssh.py): a server
without SFTP (which must still work, over the exec channel), no writable scratch folder, a
Python too old for the agent or missing, a run that times out, and remote commands that stay
argv lists whatever the paths hold. Each fault ends in exit 6 with one clear line, and the
run folder's results stay as they were."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import real_component_missing
from tests.sshd_helpers import device_scratch_folders, processes_under, start_sshd

pytestmark = pytest.mark.ssh


@pytest.fixture(scope="module")
def run_folder(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("faults") / "run"
    code = main(["export", str(tiny_models("bert")), "--target", "onnx-fp32", "--out", str(out), "--no-profile",
                 "--calib-size", "10"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def sshd_without_sftp(tmp_path_factory):
    from tests.sshd_helpers import SSHD

    if not shutil.which("sshd") and not __import__("os").path.exists(SSHD):
        pytest.skip(real_component_missing("sshd is not installed (make test installs openssh-server as root)"))
    server = start_sshd(tmp_path_factory.mktemp("sshd-nosftp"), sftp=False)
    yield server
    server.stop()


def _args(server, python: str = sys.executable, device: str | None = None):
    return ["--device", device or server.url, "--identity", server.client_key, "--known-hosts", server.known_hosts,
            "--remote-python", python]


def _leftovers():
    return device_scratch_folders()


def _new_leftovers(before: set, wait_s: float = 30.0) -> set:
    """Scratch folders that appeared since ``before`` and are still there after up to
    ``wait_s``: the device's scratch space is this machine's /tmp, which a test on another
    pytest-xdist worker may be using at the same moment (its folder goes when its step ends;
    a leaked one never does)."""
    import time

    deadline = time.monotonic() + wait_s
    while (new := set(_leftovers()) - set(before)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return new


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def test_server_without_sftp_really_has_none(sshd_without_sftp):
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd_without_sftp.known_hosts))
    client.connect("127.0.0.1", port=sshd_without_sftp.port, username=sshd_without_sftp.user,
                   key_filename=str(sshd_without_sftp.client_key), look_for_keys=False, allow_agent=False)
    try:
        with pytest.raises(paramiko.SSHException):
            client.open_sftp()
    finally:
        client.close()


def test_profile_without_sftp_copies_over_the_exec_channel(sshd_without_sftp, run_folder, run_cli):
    before = _leftovers()
    code, stdout, stderr = run_cli("--json", "profile", run_folder, "--runs", "10", *_args(sshd_without_sftp))
    assert code == 0, stderr
    label = f"ssh:{sshd_without_sftp.user}@127.0.0.1:{sshd_without_sftp.port}"
    prof = json.loads(stdout)["targets"]["onnx-fp32"]["profiles"][label]
    assert prof["environment"]["copy"] == "exec" and prof["environment"]["transport"] == "ssh"
    assert 0 < prof["latency_ms"]["p50"] and prof["runtime"]["name"] == "onnxruntime"
    assert _new_leftovers(before) == set()


def test_devices_check_without_sftp(sshd_without_sftp, run_cli):
    code, stdout, stderr = run_cli("--json", "devices", "check", sshd_without_sftp.url, "--identity",
                                   sshd_without_sftp.client_key, "--known-hosts", sshd_without_sftp.known_hosts,
                                   "--remote-python", sys.executable)
    assert code == 0, stderr
    assert "onnxruntime" in json.loads(stdout)["runtimes"]


def test_exec_copy_round_trip_is_byte_exact(sshd_without_sftp, tmp_path):
    """Push and pull over the exec channel: binary data (every byte value, and more than one
    64 KiB block) arrives unchanged, into a path with spaces and quotes."""
    import os

    from edgeport.devices.catalog import Connection, resolve
    from edgeport.devices.transports import open_transport

    payload = bytes(range(256)) * 1000 + os.urandom(70_000)
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    ref = resolve(sshd_without_sftp.url, Connection(identity=str(sshd_without_sftp.client_key),
                                                    known_hosts=str(sshd_without_sftp.known_hosts)))
    remote_dir = tmp_path / "it's a dir; $(x)"
    remote_dir.mkdir()
    with open_transport(ref) as transport:
        transport.push(local, str(remote_dir / "p.bin"))
        transport.pull(str(remote_dir / "p.bin"), tmp_path / "back.bin")
        assert transport.copy_method == "exec"
    assert (remote_dir / "p.bin").read_bytes() == payload
    assert (tmp_path / "back.bin").read_bytes() == payload


def _catalog(tmp_path, monkeypatch, **fields) -> str:
    lines = "".join(f"  {k}: {json.dumps(str(v))}\n" for k, v in fields.items())
    catalog = tmp_path / "devices.yaml"
    catalog.write_text(f"- name: lab-box\n  transport: ssh\n  arch: x86_64\n{lines}")
    monkeypatch.setenv("EDGEPORT_DEVICES", str(catalog))
    return "lab-box"


def test_no_writable_scratch_folder(sshd, run_folder, run_cli, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "scratch-is-a-file"
    not_a_folder.write_text("")
    device = _catalog(tmp_path, monkeypatch, workdir=not_a_folder)
    results = (run_folder / "results.json").read_text()
    code, stdout, stderr = run_cli("profile", run_folder, "--runs", "3", *_args(sshd, device=device),
                                   "--host", f"{sshd.user}@127.0.0.1:{sshd.port}")
    assert code == 6 and stdout == ""
    line = _one_error(stderr)
    assert "has no writable scratch folder" in line and str(not_a_folder) in line
    assert "hint: set `workdir:`" in stderr
    assert (run_folder / "results.json").read_text() == results


def test_python_too_old_for_the_agent(sshd, run_folder, run_cli, tmp_path):
    # A stand-in for an old device Python: a script that answers like Python 3.6 would.
    stand_in = tmp_path / "stand-in-python3.6"
    stand_in.write_text("#!/bin/sh\n# stand-in for a device's Python 3.6: prints its version, runs nothing\n"
                        "echo 3.6\n")
    stand_in.chmod(0o755)
    results = (run_folder / "results.json").read_text()
    before = _leftovers()
    code, stdout, stderr = run_cli("--json", "profile", run_folder, "--runs", "3", *_args(sshd, str(stand_in)))
    assert code == 6 and stdout == ""
    line = _one_error(stderr)
    assert "is 3.6; the agent needs 3.8 or newer" in line and str(stand_in) in line
    assert "hint: pass --remote-python" in stderr
    assert (run_folder / "results.json").read_text() == results
    assert _new_leftovers(before) == set()


def test_python_missing_on_the_device(sshd, run_folder, run_cli, tmp_path):
    code, _, stderr = run_cli("profile", run_folder, "--runs", "3", *_args(sshd, str(tmp_path / "no-such-python")))
    assert code == 6
    assert "was not found on" in _one_error(stderr)


def test_run_that_takes_too_long_stops_on_the_device(sshd, run_folder, run_cli, monkeypatch):
    """A run longer than its time limit ends in exit 6, and the agent stops itself on the
    device (its own deadline), so nothing keeps running there."""
    import time

    from edgeport.devices import remote_profile

    monkeypatch.setattr(remote_profile, "timeout_for", lambda spec: 3.0)
    results = (run_folder / "results.json").read_text()
    before = _leftovers()
    started = time.monotonic()
    code, _, stderr = run_cli("profile", run_folder, "--runs", "2000000", *_args(sshd))
    assert code == 6 and time.monotonic() - started < 30
    assert "the agent's time budget ran out" in _one_error(stderr)
    assert (run_folder / "results.json").read_text() == results
    assert _new_leftovers(before) == set()  # the scratch folder was removed after the timeout
    assert processes_under(sshd.process.pid, "edgeport_agent.py") == []


def test_a_command_past_its_timeout_is_cut_off(sshd):
    """The transport's own timeout, for a command that never ends (here `sleep`)."""
    import time

    from edgeport.devices.catalog import Connection, resolve
    from edgeport.devices.transports import open_transport
    from edgeport.errors import DeviceTimeoutError

    ref = resolve(sshd.url, Connection(identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts)))
    with open_transport(ref) as transport:
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match="'sleep' took longer than 1 s"):
            transport.exec(["sleep", "30"], timeout=1)
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("server", ["sshd", "sshd_without_sftp"])
def test_paths_with_shell_syntax_run_nothing_extra(server, request, tiny_models, run_cli, tmp_path, monkeypatch):
    """Remote commands are argv lists: a scratch folder, a Python path and a run folder whose
    names hold quotes, `;`, `$()` and backticks reach the device as plain names (a canary file
    that any of them would create stays absent), and profiling still works."""
    import os
    import uuid

    srv = request.getfixturevalue(server)
    name = f"edgeport-canary-{uuid.uuid4().hex[:8]}"  # a relative name: created in the remote shell's cwd (home)
    canaries = [Path.home() / name, Path.cwd() / name, tmp_path / name, Path("/") / name]
    evil = f"x'\"; touch {name}; $(touch {name}) `touch {name}`"
    workdir = tmp_path / f"scratch {evil}"
    workdir.mkdir()
    python_dir = tmp_path / f"py {evil}"
    python_dir.mkdir()
    python = python_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a wrapper around the real Python
    python.chmod(0o755)
    out = tmp_path / f"run {evil}"
    assert run_cli("export", tiny_models("bert"), "--target", "onnx-fp32", "--out", out, "--no-profile",
                   "--calib-size", "10")[0] == 0
    device = _catalog(tmp_path, monkeypatch, workdir=workdir)
    code, stdout, stderr = run_cli("--json", "profile", out, "--runs", "3", *_args(srv, str(python), device),
                                   "--host", f"{srv.user}@127.0.0.1:{srv.port}")
    assert code == 0, stderr
    assert not any(c.exists() for c in canaries), os.listdir(Path.home())
    assert list(workdir.iterdir()) == []  # its scratch folder was made inside, and removed
    assert json.loads(stdout)["targets"]["onnx-fp32"]["profiles"]

"""Profile an artifact on a device reached through a transport.

The artifact is pushed to a scratch folder (each file's sha256 checked there) and timed with
edgeport's device agent (the device's own Python and runtime), or with the native tool the
artifact's target names (trtexec on a Jetson, benchmark_model on Android, which has no
Python); with a verify request the agent's --verify mode runs in the same session
(devices/device_outputs.py: edgeport.runtime pushed beside the agent, the outputs pulled back
and checked by sha256); the folder is removed afterwards. This module knows transports, not runtimes: the
native tool's command line and parser belong to its target. When the connection drops, what
was left on the device is named in the error.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
import tempfile
from pathlib import Path

import numpy as np

from edgeport.artifact import ArtifactManifest, NativeBenchmark
from edgeport.devices.catalog import Connection, DeviceRef, resolve
from edgeport.devices.device_outputs import RUNTIME_COPY, DeviceOutputs, VerifyRequest, read_outputs, runtime_files, \
    verify_argv, verify_feeds
from edgeport.devices.local_profile import AGENT_MIN_PYTHON, AGENT_PATH, agent_argv, as_profile, parse_agent_output
from edgeport.devices.transports import open_transport
from edgeport.devices.transports.base import Completed, Transport
from edgeport.errors import DeviceError
from edgeport.recipe import ProfileSpec
from edgeport.results import Profile


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def push_verified(transport: Transport, local: Path, remote: str) -> None:
    transport.push(local, remote)
    done = transport.check(["sha256sum", remote], timeout=60)
    if done.stdout.split()[0] != _sha256(local):
        raise DeviceError(f"{local.name} arrived corrupted on {transport.device.label} (sha256 mismatch)")


class VerifiedShell:
    """A transport as a native benchmark sees it: every push is checked by sha256."""

    def __init__(self, transport: Transport):
        self.transport = transport

    def push(self, local: Path, remote: str) -> None:
        push_verified(self.transport, Path(local), remote)

    def pull(self, remote: str, local: Path) -> None:
        self.transport.pull(remote, Path(local))

    def exec(self, argv: list[str], timeout: float) -> Completed:
        return self.transport.exec(argv, timeout)


def _push_artifact(transport: Transport, artifact_dir: Path, manifest: ArtifactManifest, remote_dir: str) -> None:
    transport.check(["mkdir", "-p", remote_dir], timeout=30)
    for name in ["manifest.json", *manifest.files]:
        push_verified(transport, artifact_dir / name, posixpath.join(remote_dir, name))


def timeout_for(spec: ProfileSpec) -> float:
    return spec.timeout_s


def check_python(transport: Transport, device: DeviceRef) -> str:
    """The device's Python, which must exist and be new enough for the agent."""
    python = device.remote_python
    done = transport.exec([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=60)
    how = "pass --remote-python PATH, or set `python:` in the device's catalog entry"
    if done.code in (126, 127):
        raise DeviceError(f"the Python '{python}' was not found on {device.label}", hint=how)
    try:
        major, minor = (int(x) for x in done.stdout.strip().splitlines()[-1].split("."))
    except (IndexError, ValueError):
        tail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.code}").splitlines()[-1]
        raise DeviceError(f"'{python}' on {device.label} did not say its version: {tail}", hint=how) from None
    if (major, minor) < AGENT_MIN_PYTHON:
        need = ".".join(map(str, AGENT_MIN_PYTHON))
        raise DeviceError(f"the Python '{python}' on {device.label} is {major}.{minor}; the agent needs {need} or newer",
                          hint=how)
    return f"{major}.{minor}"


def _with_agent(transport: Transport, device: DeviceRef, remote_artifact: str, workdir: str,
                spec: ProfileSpec) -> dict:
    check_python(transport, device)
    agent = posixpath.join(workdir, "edgeport_agent.py")
    push_verified(transport, AGENT_PATH, agent)
    argv = agent_argv(device.remote_python, agent, remote_artifact, spec, max_seconds=timeout_for(spec))
    done = transport.exec(argv, timeout=timeout_for(spec) + 30)  # the agent's own deadline comes first
    return parse_agent_output(done.stdout, done.stderr, device.label)


class TegrastatsSampler:
    """tegrastats in the background on a Jetson while the agent runs: the device-wide view of
    unified memory (CPU and GPU share it), GPU load and power rails, peaks over the run."""

    def __init__(self, transport: Transport, device: DeviceRef, workdir: str):
        self.transport, self.tool = transport, device.entry.native_tools.get("tegrastats", "tegrastats")
        self.log = posixpath.join(workdir, "tegrastats.log")
        self.pid: str | None = None

    def start(self) -> None:
        done = self.transport.check(["sh", "-c", 'nohup "$1" --interval 100 --logfile "$2" >/dev/null 2>&1 & echo $!',
                                     "sh", self.tool, self.log], timeout=30)
        self.pid = done.stdout.strip()

    def stop(self) -> dict:
        from edgeport.devices.parsers import peak_from_tegrastats

        self.transport.exec(["kill", self.pid], timeout=30)
        lines = self.transport.exec(["cat", self.log], timeout=30).stdout.splitlines()
        try:
            return {"reader": "tegrastats", **peak_from_tegrastats(lines)}
        except ValueError:
            return {"reader": "tegrastats", "error": "tegrastats gave no samples"}


def _use_native(device: DeviceRef, manifest: ArtifactManifest, native: NativeBenchmark | None) -> bool:
    if device.entry.transport == "adb":  # no Python there: the native tool or nothing
        if native is None:
            raise DeviceError(f"{device.label} runs artifacts with a native benchmark tool, and "
                              f"'{manifest.target}' ({manifest.format}) has none",
                              hint="profile a tflite-* target there, or use an SSH device")
        return True
    return native is not None and native.preferred and native.tool in device.entry.native_tools


def _measure(transport: Transport, ref: DeviceRef, artifact_dir: Path, manifest: ArtifactManifest, workdir: str,
             spec: ProfileSpec, native: NativeBenchmark | None, verify: VerifyRequest | None = None
             ) -> tuple[dict, DeviceOutputs | None]:
    remote_artifact = posixpath.join(workdir, "artifact")
    _push_artifact(transport, artifact_dir, manifest, remote_artifact)
    sampler = TegrastatsSampler(transport, ref, workdir) if ref.entry.memory == "tegrastats" else None
    if sampler:
        sampler.start()
    use_native = _use_native(ref, manifest, native)
    if use_native:
        tool_path = ref.entry.native_tools.get(native.tool, native.tool)
        result = native.run(VerifiedShell(transport), tool_path, artifact_dir, remote_artifact, manifest, spec,
                            ref.label)
    else:
        result = _with_agent(transport, ref, remote_artifact, workdir, spec)
    if sampler:
        result["device_memory"] = sampler.stop()
    if ref.entry.power_mode:
        result.setdefault("environment", {})["power_mode"] = _power_mode(transport, ref.entry.power_mode)
    outputs = None
    if verify is not None and not use_native and manifest.request_path is not None:
        tokenizer = manifest.request_path.tokenizer  # edgeport.runtime serves with the artifact's own tokenizer
        push_verified(transport, artifact_dir / tokenizer, posixpath.join(remote_artifact, tokenizer))
    if verify is not None and use_native and native.verifies and manifest.request_path is not None:
        try:
            outputs = _verify_with_native(transport, ref, native, tool_path, artifact_dir, remote_artifact, manifest,
                                          verify)
        except DeviceError as exc:
            outputs = DeviceOutputs(ref.label, error=exc)
    elif verify is not None and use_native:
        outputs = DeviceOutputs(ref.label, not_run=f"{native.tool} ran this artifact on {ref.label}: "
                                                   f"{native.no_output_dump}")
    elif verify is not None:
        try:
            outputs = _verify_with_agent(transport, ref, remote_artifact, workdir, spec, verify)
        except DeviceError as exc:  # raised by the stage once the profile that came with it is kept
            outputs = DeviceOutputs(ref.label, error=exc)
    return result, outputs


def _verify_with_native(transport: Transport, ref: DeviceRef, native: NativeBenchmark, tool_path: str,
                        artifact_dir: Path, remote_artifact: str, manifest: ArtifactManifest,
                        verify: VerifyRequest) -> DeviceOutputs:
    """The report set through the native tool (trtexec's engine), tokenized here."""
    feeds = verify_feeds(artifact_dir, manifest.request_path, manifest.inputs, verify)
    outputs = np.asarray(native.verify(VerifiedShell(transport), tool_path, artifact_dir, remote_artifact, manifest,
                                       feeds, ref.label), dtype=np.float32)
    if outputs.shape[0] != verify.rows:
        raise DeviceError(f"{native.tool} on {ref.label} returned {outputs.shape[0]} outputs for {verify.rows} inputs")
    return DeviceOutputs(ref.label, outputs, {"tool": native.tool, "shape": list(outputs.shape), "dtype": "float32",
                                              "inputs": verify.rows, "runtime": {"name": native.tool}})


def _verify_with_agent(transport: Transport, ref: DeviceRef, remote_artifact: str, workdir: str, spec: ProfileSpec,
                       verify: VerifyRequest) -> DeviceOutputs:
    """The agent's --verify mode on the pushed artifact: edgeport.runtime pushed beside the
    agent, the inputs pushed, the outputs pulled back and checked by sha256."""
    agent = posixpath.join(workdir, "edgeport_agent.py")
    push_verified(transport, AGENT_PATH, agent)  # again: a native tool's run may not have pushed it
    package = posixpath.join(workdir, RUNTIME_COPY)
    transport.check(["mkdir", "-p", package], timeout=30)
    for module in runtime_files():
        push_verified(transport, module, posixpath.join(package, module.name))
    inputs = posixpath.join(workdir, "verify-inputs.jsonl")
    push_verified(transport, verify.inputs_file, inputs)
    argv = verify_argv(ref.remote_python, agent, remote_artifact, inputs, verify.batch, spec.threads,
                       max_seconds=timeout_for(spec))
    done = transport.exec(argv, timeout=timeout_for(spec) + 30)
    result = parse_agent_output(done.stdout, done.stderr, ref.label)
    if "unavailable" in result:
        return DeviceOutputs(ref.label, agent=result, not_run=result["unavailable"])
    if result.get("outputs") != posixpath.join(posixpath.dirname(inputs), "verify-inputs.outputs.npy"):
        raise DeviceError(f"the agent on {ref.label} saved the verify outputs at an unexpected place: "
                          f"{result.get('outputs')}")
    with tempfile.TemporaryDirectory(prefix="edgeport-verify-") as scratch:
        local = Path(scratch) / "outputs.npy"
        transport.pull(result["outputs"], local)
        outputs = read_outputs(local, result, verify.rows, ref.label)
    return DeviceOutputs(ref.label, outputs, result)


def _power_mode(transport: Transport, command: str) -> str:
    """The catalog's power-mode query (``nvpmodel -q`` on a Jetson), its output as it is."""
    done = transport.exec(shlex.split(command), timeout=30)
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return " | ".join(text) if done.code == 0 else f"unknown ({command}: {text[-1] if text else done.code})"


def profile_remote(artifact_dir: Path, device: str, spec: ProfileSpec, connection: Connection | None = None,
                   native: NativeBenchmark | None = None) -> Profile:
    return measure_remote(artifact_dir, device, spec, connection, native)[0]


def measure_remote(artifact_dir: Path, device: str, spec: ProfileSpec, connection: Connection | None = None,
                   native: NativeBenchmark | None = None, verify: VerifyRequest | None = None
                   ) -> tuple[Profile, DeviceOutputs | None]:
    """The profile, and with ``verify`` the verify mode's outputs, in one session (the
    artifact pushed once)."""
    ref = resolve(device, connection)
    manifest = ArtifactManifest.read(artifact_dir)
    with open_transport(ref) as transport:
        workdir = transport.make_workdir()
        try:
            result, outputs = _measure(transport, ref, Path(artifact_dir), manifest, workdir, spec, native, verify)
        except DeviceError as exc:
            if not _cleanup(transport, workdir):
                exc.message += f" (left {workdir} on the device)"
            raise
        if not _cleanup(transport, workdir):
            result.setdefault("warnings", []).append(f"could not remove {workdir} on the device")
        copy = getattr(transport, "copy_method", None)
    profile = as_profile(result, ref.label)
    profile.environment.setdefault("transport", ref.entry.transport)
    if copy:
        profile.environment["copy"] = copy  # sftp, or exec where the server has no SFTP
    return profile, outputs


def _cleanup(transport: Transport, workdir: str) -> bool:
    try:
        transport.remove(workdir)
        return True
    except DeviceError:
        return False


def probe(device: str, connection: Connection | None = None) -> dict:
    """What a device has: OS, arch, CPU, memory, Python runtimes, native tools."""
    ref = resolve(device, connection)
    with open_transport(ref) as transport:
        info: dict = {"device": ref.label, "transport": ref.entry.transport}
        if ref.entry.transport != "adb":
            check_python(transport, ref)
            workdir = transport.make_workdir()
            try:
                agent = posixpath.join(workdir, "edgeport_agent.py")
                push_verified(transport, AGENT_PATH, agent)
                done = transport.exec([ref.remote_python, agent, "--probe"], timeout=120)
                info.update(parse_agent_output(done.stdout, done.stderr, ref.label))
            finally:
                _cleanup(transport, workdir)
        else:
            props = transport.check(["getprop", "ro.product.model"], timeout=30).stdout.strip()
            abi = transport.check(["getprop", "ro.product.cpu.abi"], timeout=30).stdout.strip()
            info.update({"os": "Android", "model": props, "arch": abi})
        tools = {}
        for tool, path in ref.entry.native_tools.items():
            found = transport.exec(["sh", "-c", 'command -v "$1"', "sh", path], timeout=30)
            tools[tool] = found.stdout.strip() or None
        info["native_tools"] = tools
        info["missing_tools"] = sorted(tool for tool, where in tools.items() if where is None)
        facts = {}
        for fact, argv in ref.entry.facts.items():
            done = transport.exec(argv, timeout=30)
            lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
            facts[fact] = lines[0][:200] if done.code == 0 and lines else f"absent ({' '.join(argv)} failed)"
        if facts:
            info["facts"] = facts
        info["expected_runtimes"] = ref.entry.runtimes
        info["missing_runtimes"] = [r for r in ref.entry.runtimes if r not in info.get("runtimes", {})] \
            if "runtimes" in info else []
    return info

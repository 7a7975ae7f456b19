"""Profile an artifact on a device reached through a transport.

Linux devices (SSH): the agent and the artifact are pushed to a scratch folder, the agent's
sha256 is checked there, the agent runs with the device's Python and runtime, and the folder
is removed afterwards. Android (adb): TFLite artifacts run under ``benchmark_model``. When the
connection drops, what was left on the device is named in the error.
"""

from __future__ import annotations

import hashlib
import posixpath
from pathlib import Path

from edgeport.devices.catalog import DeviceRef, resolve
from edgeport.devices.local_profile import AGENT_MIN_PYTHON, AGENT_PATH, agent_argv, as_profile, parse_agent_output
from edgeport.devices.parsers import parse_benchmark_model
from edgeport.devices.transports import open_transport
from edgeport.devices.transports.base import Transport
from edgeport.errors import DeviceError
from edgeport.runs import MANIFEST, read_json


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def push_verified(transport: Transport, local: Path, remote: str) -> None:
    transport.push(local, remote)
    done = transport.check(["sha256sum", remote], timeout=60)
    if done.stdout.split()[0] != _sha256(local):
        raise DeviceError(f"{local.name} arrived corrupted on {transport.device.label} (sha256 mismatch)")


def _push_artifact(transport: Transport, artifact_dir: Path, manifest: dict, remote_dir: str) -> None:
    transport.check(["mkdir", "-p", remote_dir], timeout=30)
    for name in [MANIFEST, *manifest["files"]]:
        push_verified(transport, artifact_dir / name, posixpath.join(remote_dir, name))


def _timeout(spec: dict) -> float:
    return 300 + spec.get("runs", 100) * 2.0


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


def _with_agent(transport: Transport, device: DeviceRef, artifact_dir: Path, manifest: dict, workdir: str,
                spec: dict) -> dict:
    check_python(transport, device)
    agent = posixpath.join(workdir, "edgeport_agent.py")
    push_verified(transport, AGENT_PATH, agent)
    remote_artifact = posixpath.join(workdir, "artifact")
    _push_artifact(transport, artifact_dir, manifest, remote_artifact)
    argv = agent_argv(device.remote_python, agent, remote_artifact, spec.get("batch", 1), spec.get("sequence", 128),
                      spec.get("runs", 100), spec.get("warmup", 10), spec.get("threads"), max_seconds=_timeout(spec))
    sampler = TegrastatsSampler(transport, device, workdir) if device.entry.memory == "tegrastats" else None
    if sampler:
        sampler.start()
    done = transport.exec(argv, timeout=_timeout(spec) + 30)  # the agent's own deadline comes first
    result = parse_agent_output(done.stdout, done.stderr, device.label)
    if sampler:
        result["device_memory"] = sampler.stop()
    return result


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


def benchmark_model_argv(binary: str, model: str, threads: int | None, runs: int, use_xnnpack: bool = True) -> list[str]:
    return [binary, f"--graph={model}", f"--num_threads={threads or 4}", f"--num_runs={runs}",
            f"--use_xnnpack={'true' if use_xnnpack else 'false'}", "--report_peak_memory_footprint=true"]


def _with_benchmark_model(transport: Transport, device: DeviceRef, artifact_dir: Path, manifest: dict,
                          workdir: str, spec: dict) -> dict:
    if manifest.get("format") != "tflite":
        raise DeviceError(f"{device.label} runs TFLite artifacts; '{manifest.get('target')}' is {manifest.get('format')}")
    binary_local = spec.get("benchmark_binary")
    if not binary_local:
        raise DeviceError("profiling on Android needs TFLite's benchmark_model binary",
                          hint="pass --benchmark-binary PATH (the android_aarch64 build from the LiteRT releases)")
    binary = posixpath.join(workdir, "benchmark_model")
    push_verified(transport, Path(binary_local), binary)
    transport.check(["chmod", "755", binary], timeout=30)
    _push_artifact(transport, artifact_dir, manifest, workdir)
    model = posixpath.join(workdir, manifest["files"][0])
    done = transport.exec(benchmark_model_argv(binary, model, spec.get("threads"), spec.get("runs", 100)),
                          timeout=_timeout(spec))
    try:
        result = parse_benchmark_model(done.stdout + "\n" + done.stderr)
    except ValueError as exc:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise DeviceError(f"benchmark_model failed on {device.label}: {tail}") from exc
    shape = manifest.get("fixed_shape") or [spec.get("batch", 1), spec.get("sequence", 128)]
    result.update({"batch": shape[0], "sequence": shape[1], "threads": spec.get("threads") or 4})
    return result


def profile_remote(artifact_dir: Path, device: str, spec: dict, connection: dict | None = None) -> dict:
    ref = resolve(device, **(connection or {}))
    manifest = read_json(Path(artifact_dir) / MANIFEST)
    runner = _with_benchmark_model if ref.entry.transport == "adb" else _with_agent
    with open_transport(ref) as transport:
        workdir = transport.make_workdir()
        try:
            result = runner(transport, ref, Path(artifact_dir), manifest, workdir, spec)
        except DeviceError as exc:
            if not _cleanup(transport, workdir):
                exc.message += f" (left {workdir} on the device)"
            raise
        if not _cleanup(transport, workdir):
            result.setdefault("warnings", []).append(f"could not remove {workdir} on the device")
        copy = getattr(transport, "copy_method", None)
    profile = as_profile(result, ref.label)
    profile["environment"].setdefault("transport", ref.entry.transport)
    if copy:
        profile["environment"]["copy"] = copy  # sftp, or exec where the server has no SFTP
    return profile


def _cleanup(transport: Transport, workdir: str) -> bool:
    try:
        transport.remove(workdir)
        return True
    except DeviceError:
        return False


def probe(device: str, connection: dict | None = None) -> dict:
    """What a device has: OS, arch, CPU, memory, Python runtimes, native tools."""
    ref = resolve(device, **(connection or {}))
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
        info["expected_runtimes"] = ref.entry.runtimes
        info["missing_runtimes"] = [r for r in ref.entry.runtimes if r not in info.get("runtimes", {})] \
            if "runtimes" in info else []
    return info

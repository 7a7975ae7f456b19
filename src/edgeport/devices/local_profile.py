"""Profile an artifact on this machine: the device agent in a fresh child process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeport.devices import agent
from edgeport.errors import DeviceError
from edgeport.recipe import ProfileSpec
from edgeport.results import Profile

AGENT_PATH = Path(agent.__file__)
AGENT_MIN_PYTHON = (3, 8)  # the oldest Python the runtimes the agent drives (onnxruntime, openvino) support


def agent_argv(python: str, agent_path: str, artifact: str, spec: ProfileSpec,
               max_seconds: float | None = None) -> list[str]:
    """The agent's command line; ``max_seconds``: the agent stops itself after that long (so
    that a run edgeport gave up on does not go on on the device)."""
    argv = [python, agent_path, "--artifact", artifact, "--batch", str(spec.batch), "--sequence", str(spec.sequence),
            "--runs", str(spec.runs), "--warmup", str(spec.warmup), "--threads", str(spec.threads or 0)]
    if spec.allow_cpu_fallback:
        argv.append("--allow-cpu-fallback")
    return argv + ["--max-seconds", f"{max_seconds:g}"] if max_seconds else argv


def parse_agent_output(stdout: str, stderr: str, where: str) -> dict:
    """The agent's JSON document (its last line), or a DeviceError saying what went wrong."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise DeviceError(f"the device agent on {where} failed: {tail}") from None
    if "error" in result:
        raise DeviceError(f"the device agent on {where} failed: {result['error']}")
    return result


def profile_local(artifact_dir: Path, spec: ProfileSpec | None = None, timeout: float = 900) -> Profile:
    from edgeport.devices.transports.base import run_argv

    argv = agent_argv(sys.executable, str(AGENT_PATH), str(artifact_dir), spec or ProfileSpec())
    done = run_argv(argv, timeout, "this machine")
    return as_profile(parse_agent_output(done.stdout, done.stderr, "this machine"), "local")


def as_profile(agent_result: dict, device: str) -> Profile:
    """The agent's (or a native tool's) document in the metrics schema: device name,
    environment from its probe."""
    profile = dict(agent_result)
    profile["environment"] = {**(profile.pop("device", None) or {}), **(profile.pop("environment", None) or {})}
    profile["device"] = device
    return Profile.model_validate(profile)

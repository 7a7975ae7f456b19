"""An artifact's outputs where it runs: the device agent's ``--verify`` mode.

The inputs (texts, or text pairs for pair models) go to the agent as a JSON lines file; the
agent runs them through ``edgeport.runtime`` (the code path users run) and saves the outputs
as a float32 .npy beside that file; its JSON result names the file with shape and sha256.
Here the file is read back (pulled from a remote device first) and checked against that
sha256 and shape. This module knows the agent's protocol, not what the outputs are compared
with: that is the stage's business (stages/device_verify.py).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.devices.local_profile import AGENT_PATH, parse_agent_output
from edgeport.errors import DeviceError

RUNTIME_DIR = AGENT_PATH.parent.parent / "runtime"  # edgeport.runtime, pushed beside the agent as edgeport_runtime/
RUNTIME_COPY = "edgeport_runtime"


@dataclass(frozen=True)
class VerifyInput:
    """One input of the verify file: a text, or a pair; ``group`` rows are batched apart."""

    text: str
    text_pair: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class VerifyRequest:
    """A verify file written by ``write_inputs`` (``rows`` inputs), run ``batch`` rows a call."""

    inputs_file: Path
    rows: int
    batch: int


@dataclass
class DeviceOutputs:
    """What the verify mode gave on one device: the outputs and the agent's document
    (runtime, device probe, sha256, shape); or why it did not run (``not_run``: the device
    runs this artifact with a native tool that returns no outputs, or its Python cannot run
    edgeport.runtime), or how it failed
    (``error``: raised by the stage once the profile that came with it is saved)."""

    device: str
    outputs: np.ndarray | None = None
    agent: dict = field(default_factory=dict)
    not_run: str | None = None
    error: DeviceError | None = None


def write_inputs(path: Path, rows: list[VerifyInput]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            item = {"text": row.text}
            if row.text_pair is not None:
                item["text_pair"] = row.text_pair
            if row.group is not None:
                item["group"] = row.group
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    return path


def verify_argv(python: str, agent_path: str, artifact: str, inputs: str, batch: int, threads: int | None,
                max_seconds: float | None = None) -> list[str]:
    argv = [python, agent_path, "--artifact", artifact, "--verify", inputs, "--batch", str(batch),
            "--threads", str(threads or 0)]
    return argv + ["--max-seconds", f"{max_seconds:g}"] if max_seconds else argv


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_outputs(local: Path, agent: dict, rows: int, where: str) -> np.ndarray:
    """The outputs file the agent wrote (here, or pulled to ``local``), checked against the
    sha256 and shape its result gave."""
    if _sha256(local) != agent.get("sha256"):
        raise DeviceError(f"the verify outputs from {where} arrived corrupted (sha256 mismatch)")
    outputs = np.load(local, allow_pickle=False)
    if list(outputs.shape) != list(agent.get("shape") or []) or outputs.dtype != np.float32:
        raise DeviceError(f"the verify outputs from {where} are {outputs.dtype} {list(outputs.shape)}, the agent "
                          f"said float32 {agent.get('shape')}")
    if outputs.shape[0] != rows:
        raise DeviceError(f"the agent on {where} returned {outputs.shape[0]} outputs for {rows} inputs")
    return outputs


def verify_local(artifact_dir: Path, verify: VerifyRequest, threads: int | None, timeout: float) -> DeviceOutputs:
    """The verify mode on this machine, in a fresh child process (like the local profile)."""
    from edgeport.devices.transports.base import run_argv

    argv = verify_argv(sys.executable, str(AGENT_PATH), str(artifact_dir), str(verify.inputs_file), verify.batch,
                       threads, max_seconds=timeout)
    try:
        done = run_argv(argv, timeout + 30, "this machine")
        agent = parse_agent_output(done.stdout, done.stderr, "this machine")
        if "unavailable" in agent:
            return DeviceOutputs("local", agent=agent, not_run=agent["unavailable"])
        outputs = read_outputs(Path(agent["outputs"]), agent, verify.rows, "this machine")
    except DeviceError as exc:
        return DeviceOutputs("local", error=exc)
    return DeviceOutputs("local", outputs, agent)


def verify_feeds(artifact_dir: Path, request_path, input_names, verify: VerifyRequest) -> dict[str, np.ndarray]:
    """The verify file's inputs as one padded batch of feeds, tokenized here with the
    artifact's own tokenizer (for a native tool on the device, which takes tensors, not
    texts). Padding is masked, so one length for all rows changes no output."""
    from edgeport.runtime.text import TextEncoder

    rows = [json.loads(line) for line in verify.inputs_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [(r["text"], r["text_pair"]) if r.get("text_pair") is not None else r["text"] for r in rows]
    encoder = TextEncoder(str(Path(artifact_dir) / request_path.tokenizer), input_names, request_path.max_length,
                          request_path.pad_id)
    encoded = [encoder.encode([t])[0] for t in texts]
    return encoder.pack(encoded, max(len(e.ids) for e in encoded))


def runtime_files() -> list[Path]:
    """edgeport.runtime's modules, as pushed beside the agent on a device."""
    return sorted(RUNTIME_DIR.glob("*.py"))

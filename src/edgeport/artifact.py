"""The artifact contract: what a built artifact folder says about itself, and how a device
benchmarks it.

- :class:`ArtifactManifest` is ``manifest.json`` in every artifact folder (and in the run's
  model copy, the PyTorch baseline). ``Target.build`` writes it (a template method); the build
  stage adds only the verification and the budget's fallback. The device agent reads the same
  file as plain JSON (it imports nothing of edgeport): the keys it reads are ``format``,
  ``files``, ``inputs``, ``fixed_shape``, ``vocab_size``, ``task`` and ``runtime_config``;
  ``edgeport.runtime`` reads ``request_path`` (:class:`RequestPath`) and ``id2label`` too.
- :class:`Built` is what a target's ``_build_impl`` returns: the facts only it knows.
- :class:`NativeBenchmark` is how a target tells devices to benchmark its artifact with a
  device's native tool (trtexec on a Jetson, benchmark_model on Android) instead of the agent;
  ``devices/`` runs it through a transport and knows nothing of runtimes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from edgeport.calibration.budget import Fallback
from edgeport.runs import MANIFEST, hash_path, read_json, tool_versions, write_json
from edgeport.verify import Check


class ModelFacts(BaseModel):
    """What every artifact of one source model says about the model it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str | None = None
    family: str | None = None
    vocab_size: int | None = None
    model_sha256: str | None = None
    id2label: dict[str, str] | None = None  # classifiers: class index -> label


@dataclass(frozen=True)
class Built:
    """A target's own facts about one build: its files, how it was made, what precision each
    part has. ``details`` holds target-specific settings worth keeping (NNCF's, the quantizer
    recipe, QAT losses, the FP32 islands of an FP16 graph, ...)."""

    files: list[str]
    strategy: str
    precision: dict
    runtime_config: dict = field(default_factory=dict)
    calibration: dict | None = None
    fixed_shape: list[int] | None = None
    signature: dict | None = None
    details: dict = field(default_factory=dict)


class RequestPath(BaseModel):
    """How ``edgeport.runtime`` serves the artifact (manifest ``request_path``): the tokenizer
    file the folder carries, its truncation and pad id, whether the graph takes any sequence
    length (``dynamic``) or compiled ``buckets`` (a request runs in the smallest that holds
    it), the graph's static batch, and the runtime's request-path settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokenizer: str
    max_length: int
    pad_id: int
    shapes: Literal["dynamic", "buckets"]
    buckets: list[int] | None = None
    batch: int | None = None
    output: str
    runtime: dict = Field(default_factory=dict)


class ArtifactManifest(BaseModel):
    """``manifest.json``: enough to load, run, verify and rebuild the artifact."""

    model_config = ConfigDict(extra="forbid")

    target: str
    format: str  # what the device agent loads: onnx | openvino | tflite | pytorch | ...
    runtime: str
    files: list[str]
    inputs: list[str]
    output: str | None = None
    outputs: list[str] = Field(default_factory=list)  # every output in order (question answering has two)
    fixed_shape: list[int] | None = None
    task: str | None = None
    family: str | None = None
    vocab_size: int | None = None
    model_sha256: str | None = None
    id2label: dict[str, str] | None = None
    options: dict = Field(default_factory=dict)
    strategy: str | None = None
    precision: dict = Field(default_factory=dict)
    runtime_config: dict = Field(default_factory=dict)
    calibration: dict | None = None
    signature: dict | None = None
    details: dict = Field(default_factory=dict)
    hashes: dict[str, str] = Field(default_factory=dict)
    source_onnx_sha256: str | None = None
    tool_versions: dict[str, str | None] = Field(default_factory=dict)
    built_at: str | None = None
    build_seconds: float | None = None
    verification: Check | None = None
    fallback: Fallback | None = None
    int8_mac_share: float | None = None  # share of the linear layers' multiply-accumulates in INT8
    mostly_float: bool | None = None  # an INT8 target whose budget kept most of it in higher precision
    build_seconds_total: float | None = None
    request_path: RequestPath | None = None  # absent in artifacts built before edgeport.runtime

    @classmethod
    def read(cls, folder: Path) -> "ArtifactManifest":
        return cls.model_validate(read_json(Path(folder) / MANIFEST))

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / MANIFEST, self.model_dump(mode="json"))

    @classmethod
    def of_build(cls, target, ctx, built: Built, folder: Path, seconds: float,
                 request_path: RequestPath | None = None, request_files: tuple[str, ...] = ()) -> "ArtifactManifest":
        return cls(
            target=target.name, format=target.artifact_format, runtime=target.runtime, files=built.files,
            inputs=list(ctx.input_names), output=ctx.output_name, outputs=list(ctx.output_names),
            fixed_shape=built.fixed_shape,
            **ctx.model.model_dump(), options=ctx.options.model_dump(mode="json"), strategy=built.strategy,
            precision=built.precision, runtime_config=built.runtime_config, calibration=built.calibration,
            signature=built.signature, details=built.details,
            hashes={name: hash_path(Path(folder) / name) for name in [*built.files, *request_files]},
            source_onnx_sha256=hash_path(ctx.onnx_path), tool_versions=tool_versions(),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), build_seconds=round(seconds, 2),
            request_path=request_path,
        )


class DeviceShell(Protocol):
    """What a native benchmark may do on a device (a transport of ``devices/``)."""

    def push(self, local: Path, remote: str) -> None: ...

    def pull(self, remote: str, local: Path) -> None: ...

    def exec(self, argv: list[str], timeout: float) -> Any: ...  # .code, .stdout, .stderr


class NativeBenchmark(ABC):
    """A device's own benchmark tool for one artifact format. ``tool`` names the entry of a
    catalog device's ``native_tools``; ``preferred`` tools run even where the agent could
    (trtexec is how TensorRT engines are built and timed on a Jetson); the others run only
    where the agent cannot (an Android phone without Python)."""

    tool: ClassVar[str] = ""
    preferred: ClassVar[bool] = False
    # why the report set is not verified where this tool runs the artifact (recorded in results),
    # unless the tool can run given inputs and return the outputs (``verify``)
    no_output_dump: ClassVar[str] = ("it times the artifact and returns no outputs; verify with the agent where the "
                                     "device has the artifact's Python runtime")
    verifies: ClassVar[bool] = False

    def verify(self, shell: DeviceShell, tool_path: str, artifact_dir: Path, remote_dir: str,
               manifest: "ArtifactManifest", feeds: dict, where: str):
        """The artifact's first output on ``feeds`` (rows padded to one length), run by the
        tool on the device after ``run`` (``verifies`` tools only)."""
        raise NotImplementedError(f"{self.tool} returns no outputs")

    @abstractmethod
    def run(self, shell: DeviceShell, tool_path: str, artifact_dir: Path, remote_dir: str,
            manifest: ArtifactManifest, spec: Any, where: str) -> dict:
        """Run the tool on the artifact already pushed to ``remote_dir``; return a profile in
        the agent's schema (``latency_ms``, ``throughput_per_s``, ``peak_rss_mb``, ``runtime``,
        ``batch``, ``sequence``, ``tool``, ...). Raise DeviceError with the tool's own words."""

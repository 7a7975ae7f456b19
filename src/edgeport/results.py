"""The results document (``results.json`` and ``--json`` output), versioned.

Shape (schema_version 1)::

    {"schema_version": 1, "model": {...},
     "targets": {"<target>": {"artifact": path, "size_mb": x,
                              "latency_ms": {"p50","p90","p99","mean","std"},
                              "peak_rss_mb": x, "fidelity": {...}, "accuracy": {...},
                              "profiles": {"<device>": {...}},
                              "device_verification": {"<device>": {...}}, ...}},
     "baseline": {...PyTorch fp32 profile...}, "environment": {...}}

``latency_ms`` and ``peak_rss_mb`` of a target are its profile on this machine; profiles on
other devices are keyed by device under ``profiles``. The contract test checks the shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeport.calibration.budget import Fallback, SensitivityRow
from edgeport.verify import Accuracy, Check, Fidelity

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    """Unknown keys are refused: the schema (``edgeport schema``) is the whole contract."""

    model_config = ConfigDict(extra="forbid")


class Latency(_Strict):
    """Milliseconds. p90/p99 are None where a native tool does not report them
    (TFLite's benchmark_model prints median/p5/p95 at most)."""

    p50: float
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float
    std: float = 0.0
    min: float | None = None


class Profile(_Strict):
    """One profile of an artifact on one device (the device agent's document, or a native
    tool's output parsed into the same shape)."""

    device: str
    latency_ms: Latency
    throughput_per_s: float | None = None
    peak_rss_mb: float | None = None
    rss_before_load_mb: float | None = None
    load_ms: float | None = None
    batch: int
    sequence: int
    threads: int | None = None
    runs: int
    warmup: int | None = None
    runtime: dict = Field(default_factory=dict)
    environment: dict = Field(default_factory=dict)
    tool: str = "agent"
    format: str | None = None
    schema_: int | None = Field(None, alias="schema")
    samples_ms: list[float] = Field(default_factory=list)
    gpu_compute_ms: dict | None = None
    device_memory: dict | None = None
    cpu_fallback: bool | None = None
    warnings: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeviceVerification(_Strict):
    """The report set run through the artifact where it runs (the device agent's --verify mode:
    edgeport.runtime, the code path users run) and compared with fp32 the way the host-side
    check was; or why it was not run there. ``agrees`` is False when the device's figures miss
    the artifact's budget or fall short of the host-side ones beyond ``tolerance``."""

    source: str  # where the outputs came from: "device:<device>"
    ran: bool
    check: Check | None = None  # fidelity (and accuracy) on the device; runtime: the runtime that ran
    agrees: bool | None = None
    shortfalls: list[str] = Field(default_factory=list)
    tolerance: float | None = None  # largest loss against the host-side figures still counted as agreement
    not_run: str | None = None  # why not (a native tool that returns no outputs, a device error)
    outputs: dict = Field(default_factory=dict)  # shape, sha256 (checked on arrival), inputs, seconds
    environment: dict = Field(default_factory=dict)  # the device's probe
    warnings: list[str] = Field(default_factory=list)


class TargetResult(_Strict):
    artifact: str
    runtime: str
    precision: str
    strategy: str | None = None
    size_mb: float
    build_seconds: float | None = None
    cached: bool = False
    latency_ms: Latency | None = None
    peak_rss_mb: float | None = None
    fidelity: Fidelity | None = None
    accuracy: Accuracy | None = None
    fallback: Fallback | None = None
    int8_mac_share: float | None = None  # share of the linear layers' MACs that run in INT8
    runtime_info: dict = Field(default_factory=dict)
    # set where the figures above were not measured in the target's own runtime: what ran instead
    # (e.g. ONNX Runtime on this CPU for a TensorRT or MIGraphX artifact)
    host_side_emulation: str | None = None
    sensitivity: list[SensitivityRow] | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)
    # the report set verified where the artifact runs, keyed by device like ``profiles``
    device_verification: dict[str, DeviceVerification] = Field(default_factory=dict)


class PrecisionPair(_Strict):
    """An INT8 artifact and the FP16 artifact of the same runtime, profiled on the same device:
    which is faster there. An INT8 engine slower than the FP16 one is a failure TensorRT users
    report (layers without a fast INT8 kernel, reformatting between precisions)."""

    device: str
    runtime: str
    int8: str
    fp16: str
    int8_p50_ms: float
    fp16_p50_ms: float
    faster: str  # the target name
    fp16_over_int8: float  # > 1: INT8 is faster


class ModelInfo(_Strict):
    ref: str
    task: str
    family: str
    parameters: int
    size_mb: float
    sha256: str


class Environment(_Strict):
    cpu: dict = Field(default_factory=dict)
    tools: dict = Field(default_factory=dict)


class Results(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    created: str
    model: ModelInfo
    targets: dict[str, TargetResult] = Field(default_factory=dict)
    baseline: Profile | None = None
    compression: dict | None = None  # the compress stage's report, when the run compressed the model
    precision_pairs: list[PrecisionPair] = Field(default_factory=list)  # INT8 vs FP16 on each device
    environment: Environment = Field(default_factory=Environment)
    warnings: list[str] = Field(default_factory=list)

    def document(self) -> dict:
        """The JSON document (what results.json and --json hold)."""
        return self.model_dump(mode="json", by_alias=True)


def json_schema() -> dict:
    return Results.model_json_schema(by_alias=True)

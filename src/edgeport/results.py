"""The results document (``results.json`` and ``--json`` output), versioned.

Shape (schema_version 1)::

    {"schema_version": 1, "model": {...},
     "targets": {"<target>": {"artifact": path, "size_mb": x,
                              "latency_ms": {"p50","p90","p99","mean","std"},
                              "peak_rss_mb": x, "fidelity": {...}, "accuracy": {...},
                              "profiles": {"<device>": {...}}, ...}},
     "baseline": {...PyTorch fp32 profile...}, "environment": {...}}

``latency_ms`` and ``peak_rss_mb`` of a target are its profile on this machine; profiles on
other devices are keyed by device under ``profiles``. The contract test checks the shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Latency(_Open):
    """Milliseconds. p90/p99 are None where a native tool does not report them
    (TFLite's benchmark_model prints median/p5/p95 at most)."""

    p50: float
    p90: float | None = None
    p99: float | None = None
    mean: float
    std: float = 0.0
    min: float | None = None


class Profile(_Open):
    device: str
    latency_ms: Latency
    throughput_per_s: float
    peak_rss_mb: float | None = None
    load_ms: float | None = None
    batch: int
    sequence: int
    threads: int | None = None
    runs: int
    runtime: dict = Field(default_factory=dict)
    environment: dict = Field(default_factory=dict)
    tool: str = "agent"


class Fidelity(BaseModel):
    mean_cosine: float
    min_cosine: float
    max_abs_error: float
    top1_agreement: float | None = None
    samples: int
    # pair classifiers: correlation of the artifact's scores with fp32's
    score_pearson: float | None = None
    score_spearman: float | None = None
    # token classification: label agreement on non-padding tokens; QA: answer-span agreement
    token_agreement: float | None = None
    span_agreement: float | None = None


class Accuracy(BaseModel):
    fp32: float
    artifact: float
    drop_points: float
    label_agreement: float
    samples: int


class Fallback(_Open):
    budget: dict
    met: bool
    fp32_layers: list[str] = Field(default_factory=list)
    trials: list[dict] = Field(default_factory=list)
    sensitivity: list[dict] = Field(default_factory=list)


class TargetResult(_Open):
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
    profiles: dict[str, Profile] = Field(default_factory=dict)


class ModelInfo(_Open):
    ref: str
    task: str
    family: str
    parameters: int
    size_mb: float
    sha256: str


class Results(_Open):
    schema_version: Literal[1] = SCHEMA_VERSION
    created: str
    model: ModelInfo
    targets: dict[str, TargetResult] = Field(default_factory=dict)
    baseline: Profile | None = None
    compression: dict | None = None  # the compress stage's report, when the run compressed the model
    environment: dict = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def json_schema() -> dict:
    return Results.model_json_schema()

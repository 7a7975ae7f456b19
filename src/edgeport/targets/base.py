"""The Target contract: a small ABC, typed options, and an Availability result.

A target module imports without its SDK. ``check()`` says plainly what is missing and how
to get it. ``build()`` checks, then calls ``_build_impl`` and writes the artifact's manifest
(a template method); it never falls back silently to another precision: layers kept in
higher precision are named in the manifest. Runners (``verify.Runner``) run an artifact.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from edgeport.artifact import ArtifactManifest, Built, ModelFacts, NativeBenchmark
from edgeport.calibration.feeds import CalibrationSet
from edgeport.errors import TargetUnavailableError
from edgeport.targets.serving import write_request_files
from edgeport.verify import Runner


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""
    how_to_get: str = ""

    def __str__(self) -> str:
        if self.available:
            return "available"
        return f"{self.reason}" + (f" ({self.how_to_get})" if self.how_to_get else "")


class TargetOptions(BaseModel):
    """A target's options (``--option TARGET.KEY=VALUE``, a recipe's ``target_options``): a
    typed model per target, validated before any work; unknown keys are refused. Each field
    carries a one-line ``description`` that `edgeport targets` shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BuildContext:
    """Everything a target's build reads: the ONNX graph, the model folder when there is
    one (None for an ONNX file brought from elsewhere), calibration texts, the target's typed
    options, facts of the source model, and the layers (torch module paths) to keep in higher
    precision."""

    onnx_path: Path
    model_dir: Path | None
    input_names: tuple[str, ...]
    output_name: str
    calibration: CalibrationSet
    options: TargetOptions = field(default_factory=TargetOptions)
    model: ModelFacts = field(default_factory=ModelFacts)
    keep_fp: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()  # every output in order (question answering has two); default: output_name

    def __post_init__(self):
        if not self.output_names:
            object.__setattr__(self, "output_names", (self.output_name,))

    def keeping(self, keep_fp: tuple[str, ...]) -> "BuildContext":
        return replace(self, keep_fp=tuple(keep_fp))


class Target(ABC):
    """One deployable kind of artifact. Subclasses set the class facts, ``Options``, and
    implement ``check``, ``_build_impl`` and ``runner``; ``prepare`` (optional) does the work
    every budget trial of one build shares (a conversion), once."""

    name: str = ""
    runtime: str = ""
    precision: str = ""
    quantized: bool = False  # accuracy budgets and fallback apply
    fixed_shape: bool = False  # the artifact takes one batch x sequence shape only
    artifact_format: str = ""  # what the device agent loads: onnx | openvino | tflite | ...
    experimental: str | None = None  # why its results on transformers are not yet to be relied on
    Options: ClassVar[type[TargetOptions]] = TargetOptions
    # model families (Family.name) or tasks this target cannot handle -> why (measured, not guessed)
    unsupported: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def check(self) -> Availability: ...

    def supports(self, family: str | None, task: str) -> Availability:
        """Whether this target handles a model of ``family`` for ``task`` (said before building)."""
        for key in (family, task):
            if key and key in self.unsupported:
                return Availability(False, f"{self.name} cannot handle {key} models: {self.unsupported[key]}")
        return Availability(True)

    def supports_weights(self, shapes: dict[str, list[int]], options: TargetOptions) -> Availability:
        """Whether this target, with these options, can build a model whose weights have these
        shapes (name -> shape, read from the model folder before the export)."""
        return Availability(True)

    def prepare(self, ctx: BuildContext) -> Any:
        """Work shared by every build of this context whatever layers are kept (e.g. one
        conversion of the model); its result is passed to each ``_build_impl``."""
        return None

    def build(self, ctx: BuildContext, out: Path, prepared: Any = None) -> ArtifactManifest:
        """Build into the folder ``out`` and write its manifest; return the manifest."""
        availability = self.check()
        if not availability.available:
            raise TargetUnavailableError(
                f"target '{self.name}' cannot be built here: {availability.reason}", hint=availability.how_to_get
            )
        started = time.perf_counter()
        built = self._build_impl(ctx, Path(out), prepared)
        # what edgeport.runtime needs to serve the artifact: its tokenizer and request path
        request, request_files = write_request_files(self.runtime, ctx.model.task, ctx.calibration.tokenizer,
                                                     built, Path(out))
        manifest = ArtifactManifest.of_build(self, ctx, built, Path(out), time.perf_counter() - started,
                                             request, request_files)
        manifest.write(Path(out))
        return manifest

    @abstractmethod
    def _build_impl(self, ctx: BuildContext, out: Path, prepared: Any) -> Built: ...

    @abstractmethod
    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner: ...

    def native_benchmark(self) -> NativeBenchmark | None:
        """The device-native tool that benchmarks this target's artifacts, if any (else the
        device agent does)."""
        return None


def missing_module(module: str, extra: str | None) -> Availability | None:
    """An Availability saying how to install ``module`` (an edgeport extra, or the package
    itself for core dependencies: ``extra=None``), or None when it can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        how = f"pip install 'edgeport[{extra}]'" if extra else f"pip install {module} (a dependency of edgeport)"
        return Availability(False, f"the Python package '{module}' is not installed", how)
    return None

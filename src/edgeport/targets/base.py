"""The Target contract: a small ABC, an Availability result, and Polygraphy-style runners.

A target module imports without its SDK. ``check()`` says plainly what is missing and how
to get it. ``build()`` checks, then calls ``_build_impl``; it never falls back silently to
another precision: layers kept in higher precision are named in the manifest it returns.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from edgeport.calibration.feeds import CalibrationSet
from edgeport.errors import TargetUnavailableError
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


@dataclass
class BuildContext:
    """Everything a target's build reads: the ONNX graph, the model folder when there is
    one (None for an ONNX file brought from elsewhere), calibration texts, options, and the
    layers (torch module paths) to keep in higher precision."""

    onnx_path: Path
    model_dir: Path | None
    input_names: tuple[str, ...]
    output_name: str
    calibration: CalibrationSet
    options: dict = field(default_factory=dict)
    keep_fp: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()  # every output in order (question answering has two); default: output_name

    def __post_init__(self):
        if not self.output_names:
            self.output_names = (self.output_name,)


class Target(ABC):
    name: str = ""
    runtime: str = ""
    precision: str = ""
    quantized: bool = False  # accuracy budgets and fallback apply
    fixed_shape: bool = False  # the artifact takes one batch x sequence shape only
    artifact_format: str = ""  # what the device agent loads: onnx | openvino | tflite | ...
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

    def build(self, ctx: BuildContext, out: Path) -> dict:
        """Build into the folder ``out``; return the target's part of the manifest."""
        availability = self.check()
        if not availability.available:
            raise TargetUnavailableError(
                f"target '{self.name}' cannot be built here: {availability.reason}", hint=availability.how_to_get
            )
        started = time.perf_counter()
        facts = self._build_impl(ctx, out)
        facts.setdefault("build_seconds", round(time.perf_counter() - started, 2))
        return facts

    @abstractmethod
    def _build_impl(self, ctx: BuildContext, out: Path) -> dict: ...

    @abstractmethod
    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner: ...


def missing_module(module: str, extra: str | None) -> Availability | None:
    """An Availability saying how to install ``module`` (an edgeport extra, or the package
    itself for core dependencies: ``extra=None``), or None when it can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        how = f"pip install 'edgeport[{extra}]'" if extra else f"pip install {module} (a dependency of edgeport)"
        return Availability(False, f"the Python package '{module}' is not installed", how)
    return None

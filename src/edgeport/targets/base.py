"""The Target contract: a small ABC, an Availability result, and Polygraphy-style runners.

A target module imports without its SDK. ``check()`` says plainly what is missing and how
to get it. ``build()`` checks, then calls ``_build_impl``; it never falls back silently to
another precision: layers kept in higher precision are named in the manifest it returns.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgeport.errors import TargetUnavailableError


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
class CalibrationSet:
    """Texts for calibration, tokenized on demand the way the model expects."""

    source: str
    texts: list[str]
    tokenizer: Any
    input_names: tuple[str, ...]

    def feeds(self, batch_size: int = 1, fixed_length: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        from edgeport.calibration.feeds import batched_feeds

        return batched_feeds(self.tokenizer, self.texts, self.input_names, batch_size, fixed_length=fixed_length)

    def longest(self, cap: int = 128) -> int:
        """Token length of the longest text (capped): one fixed shape for calibrators that
        stack activations across samples."""
        lengths = [len(ids) for ids in self.tokenizer(self.texts, truncation=True, max_length=cap)["input_ids"]]
        return max(lengths)

    def summary(self) -> dict:
        digest = hashlib.sha256("\n".join(self.texts).encode()).hexdigest()
        return {"source": self.source, "count": len(self.texts), "sha256": digest}


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


class Runner(ABC):
    """Runs one artifact in-process. ``infer`` checks its feeds, then calls ``_infer_impl``."""

    def __init__(self, input_names: Sequence[str], fixed_shape: tuple[int, int] | None = None):
        self.input_names = tuple(input_names)
        self.fixed_shape = fixed_shape

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"missing inputs: {', '.join(missing)}")
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=np.int64) for n in self.input_names}
        if self.fixed_shape and feeds[self.input_names[0]].shape != self.fixed_shape:
            raise ValueError(f"this artifact takes shape {self.fixed_shape} only")
        return np.asarray(self._infer_impl(feeds))

    @abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...

    def info(self) -> dict:
        """Runtime facts worth recording (e.g. the inference precision actually used)."""
        return {}


class Target(ABC):
    name: str = ""
    runtime: str = ""
    precision: str = ""
    quantized: bool = False  # accuracy budgets and fallback apply
    fixed_shape: bool = False  # the artifact takes one batch x sequence shape only
    artifact_format: str = ""  # what the device agent loads: onnx | openvino | tflite | ...

    @abstractmethod
    def check(self) -> Availability: ...

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

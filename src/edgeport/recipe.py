"""The recipe schema: one source of truth for every option.

A recipe is a YAML file validated by :class:`Recipe`; the CLI flags of a single command
build the same structure (see ``cli.py``), so defaults live here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeport.errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    path: Path
    text_column: str | None = None
    label_column: str | None = None


class CalibrationSpec(_Strict):
    data: DataSpec | None = None  # None: the built-in English calibration set
    size: int | None = Field(None, gt=0)
    seed: int = 0


class BudgetSpec(_Strict):
    min_fidelity: float | None = Field(0.995, ge=0, le=1)
    max_drop: float | None = Field(None, ge=0)
    granularity: Literal["role", "layer"] = "role"


class ProfileSpec(_Strict):
    enabled: bool = True
    batch: int = Field(1, gt=0)
    sequence: int = Field(128, gt=0)
    runs: int = Field(100, gt=0)
    warmup: int = Field(10, ge=0)
    threads: int | None = Field(None, gt=0)  # None: all cores
    device: str | None = None  # None: this machine


class Recipe(_Strict):
    model: str = "minilm"
    targets: list[str] = Field(default_factory=lambda: ["openvino-int8", "onnx-int8"])
    target_options: dict[str, dict] = Field(default_factory=dict)
    opset: int = Field(17, ge=17)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    eval: DataSpec | None = None
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    profile: ProfileSpec = Field(default_factory=ProfileSpec)

    @field_validator("targets", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def recipe_from_dict(data: dict) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "recipe"
        raise UsageError(f"invalid option {where}: {first['msg']}", hint="see edgeport --help") from exc


def recipe_from_yaml(path: Path) -> Recipe:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read recipe '{path}': {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UsageError(f"recipe '{path}' must be a YAML mapping")
    return recipe_from_dict(data)

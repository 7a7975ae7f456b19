"""The sweep file: a base recipe plus axes, expanded into jobs with JSON specs and content keys.

A sweep file (YAML)::

    name: minilm-sweep
    recipe: {model: minilm, profile: {runs: 50}}   # the Recipe schema (recipe.py); or a path to one
    axes:                                           # every combination is one job
      models: [minilm, ./my-bert]                   # [the recipe's model]
      compress: [null, {steps: [{op: prune_ffn, keep: 0.5}]}]   # [the recipe's compress]
      targets: [onnx-int8, openvino-int8]           # required; one target per job
      target_options: {onnx-int8: [{mode: dynamic}, {mode: static}]}   # [one variant: the recipe's]
      budgets: [{min_fidelity: 0.99}, {min_fidelity: 0.995}]           # [the recipe's budget]
      devices: [null, orin]                         # null: this machine only [null]
    devices:                                        # how the node that holds a device reaches it
      orin: {device: jetson-orin-nano, host: nvidia@10.0.0.8, cooldown_s: 30}
    resources: {cpus: 1, memory_mb: 4096}           # what one build job asks of a node
    retries: 2                                      # a job whose worker or node dies is retried this often

A job's content key hashes what decides its outcome: the job's recipe with every local path
replaced by the sha256 of its content (model folder, data files), the device and how it is
reached, edgeport's code version and the tool versions. Paths in the sweep file are relative
to the sweep file; those in a recipe file it names, to the recipe file (as `edgeport run` reads
it). Local inputs are shipped to the workers as bytes (no shared file system).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeport.errors import UsageError
from edgeport.recipe import BudgetSpec, CompressSpec, Recipe, data_mappings, recipe_from_dict, recipe_from_yaml
from edgeport.runs import cache_key, code_version, hash_path, tool_versions

INPUT_PREFIX = "@input/"  # a local path in a job's recipe: @input/<sha256>[/<file name>]
BUILTIN_MODELS = ("minilm",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceAccess(_Strict):
    """How the node holding the Ray resource ``device:<name>`` reaches the board (paths are
    that node's paths)."""

    device: str = Field(description="catalog name, ssh://user@host[:port], adb://SERIAL, or local")
    host: str | None = Field(None, description="user@host[:port] for a catalog SSH device (adb serial)")
    identity: str | None = Field(None, description="SSH private key file on the node")
    known_hosts: str | None = Field(None, description="known_hosts file on the node")
    python: str | None = Field(None, description="Python on the board that has the runtime")
    cooldown_s: float = Field(0.0, ge=0, description="idle seconds after each profile, board still leased")


class Resources(_Strict):
    cpus: float = Field(1.0, gt=0, description="CPUs one build job asks of a node")
    memory_mb: int | None = Field(None, gt=0, description="memory one build job asks of a node")


class Axes(_Strict):
    models: list[str] | None = Field(None, min_length=1)
    compress: list[CompressSpec | None] | None = Field(None, min_length=1)
    targets: list[str] = Field(min_length=1)
    target_options: dict[str, list[dict]] = Field(default_factory=dict)
    budgets: list[BudgetSpec] | None = Field(None, min_length=1)
    devices: list[str | None] = Field(default_factory=lambda: [None], min_length=1)


class SweepSpec(_Strict):
    name: str | None = None
    recipe: dict | str = Field(default_factory=dict)
    axes: Axes
    devices: dict[str, DeviceAccess] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    retries: int = Field(2, ge=0, description="retries of a job whose worker or node died")
    device_wait_s: float = Field(600.0, gt=0, description="how long a device job waits for a node offering it")


@dataclass(frozen=True)
class Job:
    key: str                 # content key (sha256 hex)
    label: str               # human: model · compress · target · options · budget · device
    recipe: dict             # Recipe as JSON, local paths as @input/<sha>
    device: str | None       # a name of the sweep's devices section, or None (this machine only)
    access: dict | None      # DeviceAccess as JSON
    axes: dict               # the axis values of this cell (for the report)
    inputs: tuple[str, ...] = ()  # sha256 of the local inputs the job needs

    @property
    def folder_name(self) -> str:
        return self.key[:16]

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "label": self.label, "recipe": self.recipe, "device": self.device,
                           "access": self.access, "axes": self.axes, "inputs": list(self.inputs)}, sort_keys=True)


@dataclass
class Plan:
    """A sweep file read and expanded: jobs, and the local inputs they reference by sha256."""

    spec: SweepSpec
    name: str
    jobs: list[Job]
    inputs: dict[str, Path] = field(default_factory=dict)  # sha256 -> local file or folder
    spec_sha256: str = ""


def read_sweep(path: Path) -> SweepSpec:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read sweep file '{path}': {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UsageError(f"sweep file '{path}' must be a YAML mapping")
    return sweep_from_dict(data)


def sweep_from_dict(data: dict) -> SweepSpec:
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "sweep"
        raise UsageError(f"invalid sweep option {where}: {first['msg']}", hint="see the README's Sweeps section") from exc


def _base_recipe(spec: SweepSpec, base_dir: Path) -> dict:
    """The base recipe as a mapping: inline (its paths relative to the sweep file), or a recipe
    file read as `edgeport run` reads it (a mapping, validated, its paths relative to itself)."""
    if isinstance(spec.recipe, str):
        return recipe_from_yaml(base_dir / spec.recipe).model_dump(mode="json")
    return dict(spec.recipe)


class _Inputs:
    """Local paths of the sweep -> @input/<sha256> references, each hashed once."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.found: dict[str, Path] = {}
        self._by_path: dict[Path, str] = {}

    def ref(self, value: str | Path, kind: str) -> tuple[str, str]:
        path = Path(value).expanduser()
        path = (path if path.is_absolute() else self.base_dir / path).resolve()
        if not path.exists():
            raise UsageError(f"the sweep's {kind} '{value}' does not exist", hint="paths are relative to the sweep file")
        if path not in self._by_path:
            self._by_path[path] = hash_path(path)
            self.found[self._by_path[path]] = path
        sha = self._by_path[path]
        return (f"{INPUT_PREFIX}{sha}" if path.is_dir() else f"{INPUT_PREFIX}{sha}/{path.name}"), sha


def _localise(recipe: dict, inputs: _Inputs) -> tuple[dict, tuple[str, ...]]:
    """Replace the recipe's local paths by @input references; return it and the shas used."""
    used = []
    if recipe["model"] not in BUILTIN_MODELS:
        recipe["model"], sha = inputs.ref(recipe["model"], "model folder")
        used.append(sha)
    for section, data in data_mappings(recipe):
        data["path"], sha = inputs.ref(data["path"], f"{section} data")
        used.append(sha)
    return recipe, tuple(dict.fromkeys(used))


def _short(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict) and "steps" in value:
        return "+".join(step["op"] for step in value["steps"])
    return ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)


def _budget_label(budget: BudgetSpec) -> str:
    parts = [f"{name}={getattr(budget, name)}" for name in ("min_fidelity", "max_drop")
             if getattr(budget, name) is not None]
    if budget.granularity != "role":
        parts.append(f"granularity={budget.granularity}")
    return ",".join(parts) or "no budget"


def expand(spec: SweepSpec, base_dir: Path) -> Plan:
    """Every combination of the axes -> a job (duplicates dropped), in a stable order."""
    base = _base_recipe(spec, base_dir)
    if (base.get("profile") or {}).get("device"):
        raise UsageError("a sweep names devices in axes.devices (and how to reach them in devices:), "
                         "not in recipe.profile.device")
    base_recipe = recipe_from_dict({**base, "targets": spec.axes.targets[:1]})
    for name in spec.axes.devices:
        if name is not None and name not in spec.devices:
            raise UsageError(f"axes.devices names '{name}', which the sweep's devices: section does not describe",
                             hint="add devices: {" + name + ": {device: CATALOG_NAME_OR_URL, host: ...}}")
    for target in spec.axes.target_options:
        if target not in spec.axes.targets:
            raise UsageError(f"axes.target_options names '{target}', which is not in axes.targets")
    models = spec.axes.models or [base_recipe.model]
    compress = spec.axes.compress or [base_recipe.compress]
    budgets = spec.axes.budgets or [base_recipe.budget]
    inputs = _Inputs(base_dir)
    versions = {"code": code_version(), "tools": tool_versions()}
    jobs: dict[str, Job] = {}
    for model, comp, target, budget, device in itertools.product(models, compress, spec.axes.targets, budgets,
                                                                 spec.axes.devices):
        for options in spec.axes.target_options.get(target) or [base_recipe.target_options.get(target, {})]:
            recipe = recipe_from_dict({**base, "model": model, "targets": [target],
                                       "target_options": {target: options} if options else {},
                                       "budget": budget.model_dump(mode="json"),
                                       "compress": comp.model_dump(mode="json") if comp else None})
            data, used = _localise(recipe.model_dump(mode="json"), inputs)
            access = spec.devices[device].model_dump(mode="json") if device else None
            key = cache_key(kind="edgeport-sweep-job/1", recipe=data, device=device, access=access, **versions)
            axes = {"model": model, "compress": _short(comp.model_dump(mode="json") if comp else None),
                    "target": target, "options": _short(options or None),
                    "budget": _budget_label(budget),
                    "device": device}
            label = " · ".join(str(axes[k]) for k in ("model", "compress", "target", "options", "budget")
                               ) + f" · {device or 'local'}"
            jobs.setdefault(key, Job(key, label, data, device, access, axes, used))
    spec_sha = cache_key(spec=spec.model_dump(mode="json"), base=base)
    return Plan(spec, spec.name or "sweep", list(jobs.values()), inputs.found, spec_sha)


def job_recipe(recipe: dict, inputs_root: Path) -> Recipe:
    """A job's recipe with its @input references pointing into ``inputs_root`` (on the worker)."""
    def local(value: str) -> str:
        return str(inputs_root / value[len(INPUT_PREFIX):]) if value.startswith(INPUT_PREFIX) else value

    data = json.loads(json.dumps(recipe))
    data["model"] = local(data["model"])
    for _, mapping in data_mappings(data):
        mapping["path"] = local(mapping["path"])
    return Recipe.model_validate(data)

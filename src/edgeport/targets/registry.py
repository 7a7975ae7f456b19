"""The one registry of targets. Built-ins are named here and imported lazily, so listing
targets never imports an SDK. Targets that later work will add are listed with the reason
they are not yet available."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic import ValidationError

from edgeport.errors import TargetUnavailableError, UnknownTargetError, UsageError
from edgeport.targets.base import Availability, Target, TargetOptions

BUILTIN: dict[str, str] = {
    "onnx-fp32": "edgeport.targets.onnxruntime_cpu:OnnxFp32",
    "onnx-int8": "edgeport.targets.onnxruntime_cpu:OnnxInt8",
    "openvino-fp16": "edgeport.targets.openvino_ir:OpenVinoFp16",
    "openvino-int8": "edgeport.targets.openvino_ir:OpenVinoInt8",
    "openvino-int4": "edgeport.targets.openvino_ir:OpenVinoInt4",
    "openvino-int8-qat": "edgeport.targets.openvino_qat:OpenVinoInt8Qat",
    "tflite-fp32": "edgeport.targets.litert:TfliteFp32",
    "tflite-fp16": "edgeport.targets.litert:TfliteFp16",
    "tflite-int8": "edgeport.targets.litert:TfliteInt8",
    "tflite-int8-full": "edgeport.targets.litert:TfliteInt8Full",
    "tensorrt-int8": "edgeport.targets.tensorrt:TensorRTInt8",
    "tensorrt-fp16": "edgeport.targets.tensorrt:TensorRTFp16",
    "amd-fp16": "edgeport.targets.amd_migraphx:AmdFp16",
}

PLANNED: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class TargetInfo:
    name: str
    runtime: str
    availability: Availability
    options: dict  # key -> {"type", "default", "help"}
    experimental: str | None = None
    handles: Availability | None = None  # whether it handles a given model's family and task


def check_supports(targets: list[Target], family: str | None, task: str) -> None:
    """Refuse, before any work, a target that cannot handle this family or task."""
    from edgeport.errors import TargetUnsupportedError

    for target in targets:
        verdict = target.supports(family, task)
        if not verdict.available:
            raise TargetUnsupportedError(verdict.reason, hint="drop it from --target; `edgeport targets --model "
                                                              "MODEL` lists what handles this model")


def check_weights(targets: list[Target], options: dict, shapes: dict[str, list[int]]) -> None:
    """Refuse, before the export, a target whose options cannot build weights of these shapes."""
    for target in targets:
        verdict = target.supports_weights(shapes, options[target.name])
        if not verdict.available:
            raise UsageError(verdict.reason, hint=verdict.how_to_get)


def names() -> list[str]:
    return list(BUILTIN) + list(PLANNED)


def get(name: str) -> Target:
    """The target called ``name``; a clear error for unknown or not-yet-available ones."""
    if name in BUILTIN:
        module_name, class_name = BUILTIN[name].split(":")
        return getattr(importlib.import_module(module_name), class_name)()
    if name in PLANNED:
        raise TargetUnavailableError(f"target '{name}' is {PLANNED[name][1]}")
    raise UnknownTargetError(f"unknown target '{name}'", hint=f"known targets: {', '.join(names())}")


def parse_list(spec: str | list[str]) -> list[str]:
    """``a,b`` or a list -> validated target names (unknown ones raise before any work)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted = [item.strip() for item in items if item.strip()]
    if not wanted:
        raise UnknownTargetError("no target given", hint=f"known targets: {', '.join(names())}")
    for name in wanted:
        if name not in BUILTIN and name not in PLANNED:
            raise UnknownTargetError(f"unknown target '{name}'", hint=f"known targets: {', '.join(names())}")
    return list(dict.fromkeys(wanted))


def option_table(options: type[TargetOptions]) -> dict[str, dict]:
    """Each option of a target: its type, default and one line of help."""
    table = {}
    for key, info in options.model_fields.items():
        kind = getattr(info.annotation, "__name__", None) or str(info.annotation).replace("typing.", "")
        default = info.get_default(call_default_factory=True)
        table[key] = {"type": kind, "default": default, "help": info.description or ""}
    return table


def _describe_options(target: Target) -> str:
    rows = option_table(target.Options)
    if not rows:
        return f"target '{target.name}' takes no options"
    return f"{target.name} options: " + ", ".join(f"{k} ({v['type']}, default {v['default']!r})" for k, v in rows.items())


def options_for(targets: list[Target], raw: dict[str, dict]) -> dict[str, TargetOptions]:
    """Each selected target's typed options from ``--option``/``target_options``, validated
    before any work: an unknown key, a bad value, or options for a target that is not in the
    run is a usage error naming the valid options."""
    by_name = {t.name: t for t in targets}
    stray = [name for name in raw if name not in by_name]
    if stray:
        raise UsageError(f"options given for {', '.join(stray)}, which is not among the run's targets "
                         f"({', '.join(by_name)})", hint="add it to --target, or drop the option")
    typed = {}
    for name, target in by_name.items():
        try:
            typed[name] = target.Options.model_validate(raw.get(name) or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or name
            what = "is not an option" if first["type"] == "extra_forbidden" else \
                f"= {first.get('input')!r} is invalid: {first['msg']}"
            raise UsageError(f"--option {name}.{key} {what}", hint=_describe_options(target)) from None
    return typed


def describe_all(family: str | None = None, task: str | None = None) -> list[TargetInfo]:
    """Every target with its availability here and its options; with a model's ``family`` and
    ``task``, also whether it handles that model."""
    infos = []
    for name in BUILTIN:
        target = get(name)
        handles = target.supports(family, task) if task else None
        infos.append(TargetInfo(name, target.runtime, target.check(), option_table(target.Options),
                                target.experimental, handles))
    for name, (runtime, reason) in PLANNED.items():
        infos.append(TargetInfo(name, runtime, Availability(False, reason), {}))
    return infos

"""The one registry of targets. Built-ins are named here and imported lazily, so listing
targets never imports an SDK. Targets that later work will add are listed with the reason
they are not yet available."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edgeport.errors import TargetUnavailableError, UnknownTargetError
from edgeport.targets.base import Availability, Target

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
}

PLANNED: dict[str, tuple[str, str]] = {
    "tensorrt-int8": ("TensorRT", "not yet available: explicit-quantization QDQ ONNX + on-device trtexec build is planned"),
    "tensorrt-fp16": ("TensorRT", "not yet available: on-device trtexec build is planned"),
    "amd-fp16": ("ONNX Runtime (MIGraphX/ROCm)", "not yet available: FP16 ONNX for AMD GPUs is planned"),
}


@dataclass(frozen=True)
class TargetInfo:
    name: str
    runtime: str
    availability: Availability
    handles: Availability | None = None  # whether it handles a given model's family and task


def check_supports(targets: list[Target], family: str | None, task: str) -> None:
    """Refuse, before any work, a target that cannot handle this family or task."""
    from edgeport.errors import TargetUnsupportedError

    for target in targets:
        verdict = target.supports(family, task)
        if not verdict.available:
            raise TargetUnsupportedError(verdict.reason, hint="drop it from --target; `edgeport targets --model "
                                                              "MODEL` lists what handles this model")


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


def describe_all(family: str | None = None, task: str | None = None) -> list[TargetInfo]:
    """Every target with its availability here; with a model's ``family`` and ``task``, also
    whether it handles that model."""
    infos = []
    for name in BUILTIN:
        target = get(name)
        handles = target.supports(family, task) if task else None
        infos.append(TargetInfo(name, target.runtime, target.check(), handles))
    for name, (runtime, reason) in PLANNED.items():
        infos.append(TargetInfo(name, runtime, Availability(False, reason)))
    return infos

"""Facts about this machine's CPU that decide whether INT8 pays (VNNI/AMX) and bf16 is used."""

from __future__ import annotations

import os
import platform
from pathlib import Path

INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimddp", "i8mm")


def cpu_info() -> dict:
    model, flags = platform.processor() or "", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Hardware") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {
        "model": model or platform.machine(), "arch": platform.machine(), "cores": os.cpu_count(),
        "int8_flags": [f for f in INT8_FLAGS if f in flags],
        "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}),
    }


def int8_warning(info: dict) -> str | None:
    if info["arch"] in ("x86_64", "AMD64") and not info["vnni"]:
        return (f"this CPU ({info['model']}) has no VNNI/AMX: INT8 will gain little or nothing over fp32 here; "
                "profile on the target device")
    return None

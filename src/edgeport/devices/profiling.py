"""Profile an artifact on a device: this machine, or one reached through a transport."""

from __future__ import annotations

from pathlib import Path

from edgeport.devices.local_profile import profile_local

AGENT_SPEC_KEYS = ("batch", "sequence", "runs", "warmup", "threads")


def profile_on(artifact_dir: Path, device: str | None, spec: dict, connection: dict | None = None) -> dict:
    if device in (None, "", "local"):
        return profile_local(artifact_dir, **{k: v for k, v in spec.items() if k in AGENT_SPEC_KEYS})
    from edgeport.devices.remote_profile import profile_remote

    return profile_remote(artifact_dir, device, spec, connection)

"""Profile an artifact on a device: this machine, or one reached through a transport."""

from __future__ import annotations

from pathlib import Path

from edgeport.artifact import NativeBenchmark
from edgeport.devices.catalog import Connection
from edgeport.devices.local_profile import profile_local
from edgeport.recipe import ProfileSpec
from edgeport.results import Profile


def profile_on(artifact_dir: Path, device: str | None, spec: ProfileSpec, connection: Connection | None = None,
               native: NativeBenchmark | None = None) -> Profile:
    """``native``: the tool the artifact's target benchmarks with on devices that have it."""
    if device in (None, "", "local"):
        return profile_local(artifact_dir, spec)
    from edgeport.devices.remote_profile import profile_remote

    return profile_remote(artifact_dir, device, spec, connection, native)

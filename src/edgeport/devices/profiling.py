"""Profile an artifact on a device: this machine, or one reached through a transport."""

from __future__ import annotations

from pathlib import Path

from edgeport.artifact import NativeBenchmark
from edgeport.devices.catalog import Connection
from edgeport.devices.device_outputs import DeviceOutputs, VerifyRequest, verify_local
from edgeport.devices.local_profile import profile_local
from edgeport.recipe import ProfileSpec
from edgeport.results import Profile


def profile_on(artifact_dir: Path, device: str | None, spec: ProfileSpec, connection: Connection | None = None,
               native: NativeBenchmark | None = None) -> Profile:
    """``native``: the tool the artifact's target benchmarks with on devices that have it."""
    return measure_on(artifact_dir, device, spec, connection, native)[0]


def measure_on(artifact_dir: Path, device: str | None, spec: ProfileSpec, connection: Connection | None = None,
               native: NativeBenchmark | None = None, verify: VerifyRequest | None = None
               ) -> tuple[Profile, DeviceOutputs | None]:
    """The profile and, with ``verify``, the artifact's outputs on the verify inputs there
    (the agent's --verify mode; one session on a remote device)."""
    if device in (None, "", "local"):
        profile = profile_local(artifact_dir, spec)
        return profile, (verify_local(artifact_dir, verify, spec.threads, spec.timeout_s) if verify else None)
    from edgeport.devices.remote_profile import measure_remote

    return measure_remote(artifact_dir, device, spec, connection, native, verify)

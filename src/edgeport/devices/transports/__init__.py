"""Transports: how edgeport reaches a device. One small ABC, three implementations."""

from __future__ import annotations

from edgeport.devices.catalog import DeviceRef
from edgeport.devices.transports.base import Transport


def open_transport(device: DeviceRef) -> Transport:
    kind = device.entry.transport
    if kind == "ssh":
        from edgeport.devices.transports.ssh import SshTransport

        return SshTransport(device)
    if kind == "adb":
        from edgeport.devices.transports.adb import AdbTransport

        return AdbTransport(device)
    from edgeport.devices.transports.local import LocalTransport

    return LocalTransport(device)

"""This machine as a device: files are copied, commands run as child processes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgeport.devices.transports.base import Completed, Transport
from edgeport.errors import DeviceTimeoutError


class LocalTransport(Transport):
    def push(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def pull(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def exec(self, argv: list[str], timeout: float) -> Completed:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DeviceTimeoutError(f"'{argv[0]}' took longer than {timeout:.0f} s on this machine") from exc
        return Completed(done.returncode, done.stdout, done.stderr)

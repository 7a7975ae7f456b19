"""This machine as a device: files are copied, commands run as child processes."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeport.devices.transports.base import Completed, Transport, run_argv


class LocalTransport(Transport):
    def push(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def pull(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def exec(self, argv: list[str], timeout: float) -> Completed:
        return run_argv(argv, timeout, "this machine")

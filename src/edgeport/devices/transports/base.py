"""The Transport contract: push, pull, exec(argv, timeout) and a scratch folder.

Remote commands are argv lists. A transport that must go through a shell (SSH, adb) quotes
every argument itself (``shlex.join``); no command string is ever built from user text.
"""

from __future__ import annotations

import posixpath
import subprocess
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from edgeport.devices.catalog import DeviceRef


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str


def run_argv(argv: list[str], timeout: float, where: str) -> Completed:
    """Run a local program; a timeout is a DeviceTimeoutError naming it and where it ran."""
    from edgeport.errors import DeviceTimeoutError

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DeviceTimeoutError(f"'{Path(argv[0]).name}' took longer than {timeout:.0f} s on {where}") from exc
    return Completed(done.returncode, done.stdout, done.stderr)


class Transport(ABC):
    def __init__(self, device: DeviceRef):
        self.device = device

    def __enter__(self) -> "Transport":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection (raises DeviceError with a clear message)."""

    def close(self) -> None:
        """Close the connection; never raises."""

    @abstractmethod
    def push(self, local: Path, remote: str) -> None: ...

    @abstractmethod
    def pull(self, remote: str, local: Path) -> None: ...

    @abstractmethod
    def exec(self, argv: list[str], timeout: float) -> Completed: ...

    def make_workdir(self) -> str:
        """A fresh scratch folder under the device's ``workdir`` (a DeviceError saying so when
        the device has no writable one)."""
        from edgeport.errors import DeviceError

        path = posixpath.join(self.device.entry.workdir, f"edgeport-{uuid.uuid4().hex[:12]}")
        done = self.exec(["mkdir", "-p", "--", path], timeout=30)
        if done.code != 0:
            tail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.code}").splitlines()[-1]
            raise DeviceError(f"{self.device.label} has no writable scratch folder: cannot create {path} ({tail})",
                              hint="set `workdir:` of the device's catalog entry (EDGEPORT_DEVICES) to a "
                                   "writable folder")
        return path

    def remove(self, path: str) -> None:
        self.check(["rm", "-rf", "--", path], timeout=60)

    def check(self, argv: list[str], timeout: float) -> Completed:
        from edgeport.errors import DeviceError

        done = self.exec(argv, timeout)
        if done.code != 0:
            tail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.code}").splitlines()[-1]
            raise DeviceError(f"'{argv[0]}' failed on {self.device.label}: {tail}")
        return done

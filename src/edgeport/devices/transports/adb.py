"""adb transport: the adb binary (Android platform-tools) as a subprocess.

``adb shell`` takes one command line, so argv is quoted with ``shlex.join`` (Android's
shell is POSIX-compatible). ``adb -s SERIAL`` selects the device; without a serial adb uses
the only attached one and fails clearly when there is none or several.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from edgeport.devices.transports.base import Completed, Transport, run_argv
from edgeport.errors import DeviceError


def adb_argv(serial: str | None, *args: str) -> list[str]:
    return ["adb", *(["-s", serial] if serial else []), *args]


def shell_argv(serial: str | None, argv: list[str]) -> list[str]:
    return adb_argv(serial, "shell", shlex.join(argv) + "; echo __edgeport_rc=$?")


def parse_devices(output: str) -> list[dict]:
    """`adb devices -l` -> [{serial, state, model?, ...}]."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        fields = line.split()
        entry = {"serial": fields[0], "state": fields[1] if len(fields) > 1 else "unknown"}
        for extra in fields[2:]:
            key, sep, value = extra.partition(":")
            if sep:
                entry[key] = value
        found.append(entry)
    return found


def split_rc(stdout: str) -> tuple[int, str]:
    """adb shell's own exit code is unreliable on old devices: read the echoed one."""
    head, sep, tail = stdout.rpartition("__edgeport_rc=")
    if not sep:
        return 255, stdout
    try:
        return int(tail.strip().splitlines()[0]), head
    except (ValueError, IndexError):
        return 255, stdout


class AdbTransport(Transport):
    def connect(self) -> None:
        if shutil.which("adb") is None:
            raise DeviceError("the adb binary is not installed", hint="install Android platform-tools (apt install adb)")
        done = self._run(adb_argv(None, "devices", "-l"), 30)
        ready = [d for d in parse_devices(done.stdout) if d["state"] == "device"]
        serial = self.device.serial
        if serial and not any(d["serial"] == serial for d in ready):
            raise DeviceError(f"no Android device '{serial}' is attached and authorised",
                              hint=f"adb sees: {', '.join(d['serial'] + ' (' + d['state'] + ')' for d in parse_devices(done.stdout)) or 'nothing'}")
        if not serial and len(ready) != 1:
            raise DeviceError("no Android device is attached" if not ready else "several Android devices are attached",
                              hint="connect one and allow USB debugging, or name it: adb://SERIAL")

    def _run(self, argv: list[str], timeout: float) -> Completed:
        return run_argv(argv, timeout, self.device.label)

    def push(self, local: Path, remote: str) -> None:
        done = self._run(adb_argv(self.device.serial, "push", str(local), remote), 600)
        if done.code != 0:
            raise DeviceError(f"adb push {local} failed: {(done.stderr or done.stdout).strip()}")

    def pull(self, remote: str, local: Path) -> None:
        done = self._run(adb_argv(self.device.serial, "pull", remote, str(local)), 600)
        if done.code != 0:
            raise DeviceError(f"adb pull {remote} failed: {(done.stderr or done.stdout).strip()}")

    def exec(self, argv: list[str], timeout: float) -> Completed:
        done = self._run(shell_argv(self.device.serial, argv), timeout)
        if done.code != 0 and "__edgeport_rc=" not in done.stdout:
            raise DeviceError(f"adb shell failed on {self.device.label}: {(done.stderr or done.stdout).strip()}")
        code, stdout = split_rc(done.stdout)
        return Completed(code, stdout, done.stderr)

"""The device catalog: one YAML file per device in the package (``devices/catalog_data/``), plus
a user catalog that may add or override entries (``$EDGEPORT_DEVICES``, else
``~/.config/edgeport/devices.yaml``, a list of entries). A new physical device is a
catalog entry, not code.

A device is named on the command line as a catalog name (with ``--host`` for SSH devices),
``ssh://user@host[:port]``, ``adb://SERIAL`` (or ``adb://`` for the only attached device),
or ``local``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeport.errors import UsageError


class DeviceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    transport: Literal["local", "ssh", "adb"]
    arch: str = "any"
    python: str = "python3"
    workdir: str = "/tmp"
    runtimes: list[str] = Field(default_factory=list)
    native_tools: dict[str, str] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list)
    memory: str = "proc"
    power_mode: str | None = None
    # facts `devices check` reads: name -> argv (its first output line is the fact; a failure says absent)
    facts: dict[str, list[str]] = Field(default_factory=dict)


def _user_catalog_path() -> Path:
    return Path(os.environ.get("EDGEPORT_DEVICES") or Path.home() / ".config" / "edgeport" / "devices.yaml")


def _entries_from_yaml(text: str, source: str) -> list[DeviceEntry]:
    try:
        data = yaml.safe_load(text) or []
        items = data if isinstance(data, list) else [data]
        return [DeviceEntry.model_validate(item) for item in items]
    except (yaml.YAMLError, ValidationError) as exc:
        raise UsageError(f"device catalog {source} is invalid: {str(exc).splitlines()[0]}") from exc


def load_catalog() -> dict[str, DeviceEntry]:
    entries: dict[str, DeviceEntry] = {}
    for file in sorted(resources.files("edgeport.devices.catalog_data").iterdir(), key=lambda f: f.name):
        if file.name.endswith(".yaml"):
            for entry in _entries_from_yaml(file.read_text(encoding="utf-8"), file.name):
                entries[entry.name] = entry
    user = _user_catalog_path()
    if user.is_file():
        for entry in _entries_from_yaml(user.read_text(encoding="utf-8"), str(user)):
            entries[entry.name] = entry
    return entries


@dataclass(frozen=True)
class Connection:
    """How to reach a device this time (``--host``, ``--identity``, ``--known-hosts``,
    ``--trust-new-host-key``, ``--remote-python``)."""

    host: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    trust_new_host_key: bool = False
    python: str | None = None


@dataclass(frozen=True)
class DeviceRef:
    """A device entry plus how to reach it this time."""

    entry: DeviceEntry
    host: str | None = None
    user: str | None = None
    port: int | None = None
    serial: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    trust_new_host_key: bool = False
    python: str | None = None

    @property
    def label(self) -> str:
        if self.entry.transport == "ssh":
            who = f"{self.user}@" if self.user else ""
            return f"{self.entry.name}:{who}{self.host}" + (f":{self.port}" if self.port else "")
        if self.entry.transport == "adb":
            return f"{self.entry.name}:{self.serial or 'default'}"
        return "local"

    @property
    def remote_python(self) -> str:
        return self.python or self.entry.python


GENERIC_SSH = DeviceEntry(name="ssh", description="a Linux host over SSH", transport="ssh")


def _split_host(spec: str) -> tuple[str | None, str, int | None]:
    parts = urlsplit(f"ssh://{spec}")
    if not parts.hostname:
        raise UsageError(f"'{spec}' is not user@host[:port]")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"'{spec}' has an invalid port") from exc
    return parts.username, parts.hostname, port


def resolve(device: str | None, connection: Connection | None = None) -> DeviceRef:
    """A device string (catalog name, ssh://, adb://, local) -> a device to connect to."""
    connection = connection or Connection()
    host = connection.host
    connection = {k: v for k, v in asdict(connection).items() if k != "host"}
    catalog = load_catalog()
    if device in (None, "", "local"):
        return DeviceRef(catalog["local"])
    if device.startswith("ssh://"):
        user, hostname, port = _split_host(device[len("ssh://"):])
        return DeviceRef(GENERIC_SSH, hostname, user, port, **connection)
    if device.startswith("adb://"):
        return DeviceRef(catalog["android-phone"], serial=device[len("adb://"):] or None, **connection)
    if device not in catalog:
        raise UsageError(f"unknown device '{device}'", hint=f"known: {', '.join(catalog)}; or ssh://user@host, adb://SERIAL")
    entry = catalog[device]
    target = DeviceRef(entry, **connection)
    if entry.transport == "ssh":
        if not host:
            raise UsageError(f"device '{device}' is reached over SSH: give --host user@host[:port]")
        user, hostname, port = _split_host(host)
        target = replace(target, host=hostname, user=user, port=port)
    elif entry.transport == "adb" and host:
        target = replace(target, serial=host)
    return target

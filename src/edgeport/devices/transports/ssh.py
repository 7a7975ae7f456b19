"""SSH transport (paramiko).

- Host keys are verified by default: an unknown key is refused, with its fingerprint and
  what to do; a changed key is refused always. ``trust_new_host_key`` accepts an unknown key
  (and records it in the given known_hosts file); it never accepts a changed one.
- Authentication by key file (``identity``) or the SSH agent and default keys; never a
  password prompt.
- Connect, banner and auth timeouts; keep-alive every 15 s; a command's own timeout.
- Commands are argv lists, quoted with ``shlex.join`` for the remote shell.
- Files go over SFTP. A server without an SFTP subsystem (dropbear, OpenSSH without
  sftp-server: common on embedded Linux) is detected when the SFTP channel is refused, and
  from then on files are streamed over the exec channel instead (``cat > PATH`` fed from
  stdin, ``cat PATH`` read back); ``copy_method`` says which one a session used. The caller
  checks every pushed file's sha256 on the device either way.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import socket
import time
from pathlib import Path

from edgeport.devices.catalog import DeviceRef
from edgeport.devices.transports.base import Completed, Transport
from edgeport.errors import DeviceError, DeviceTimeoutError, HostKeyError

CONNECT_TIMEOUT = 10
KEEPALIVE_S = 15
COPY_TIMEOUT = 600
CHUNK = 1 << 16


def fingerprint(key) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _refuse_unknown_key():
    import paramiko

    class RefuseUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            raise HostKeyError(
                f"the host key of {hostname} is unknown ({key.get_name()} {fingerprint(key)}); refused",
                hint="check the fingerprint on the device, then add it to known_hosts "
                     "(ssh-keyscan) or pass --trust-new-host-key")

    return RefuseUnknown()


class SshTransport(Transport):
    def __init__(self, device: DeviceRef):
        super().__init__(device)
        self.client = None
        self.where = f"{device.host}:{device.port or 22}"
        self.copy_method: str | None = None  # "sftp" or "exec", found on the first copy

    def connect(self) -> None:
        import paramiko

        client = paramiko.SSHClient()
        client.load_system_host_keys()
        if self.device.known_hosts and Path(self.device.known_hosts).is_file():
            client.load_host_keys(self.device.known_hosts)
        client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if self.device.trust_new_host_key else _refuse_unknown_key())
        try:
            client.connect(
                self.device.host, port=self.device.port or 22, username=self.device.user,
                key_filename=self.device.identity, look_for_keys=self.device.identity is None, allow_agent=True,
                timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"the host key of {self.where} has CHANGED (now {fingerprint(exc.key)}); refused",
                hint="if the device was reinstalled, remove its old line from known_hosts; otherwise do not connect") from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise DeviceError(f"login to {self.device.user or ''}@{self.where} was refused: {exc}",
                              hint="pass --identity KEYFILE or load the key into ssh-agent") from exc
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise DeviceError(f"cannot connect to {self.where}: {exc or type(exc).__name__}",
                              hint="is the device on, reachable, and running sshd on that port?") from exc
        if self.device.trust_new_host_key and self.device.known_hosts:
            client.save_host_keys(self.device.known_hosts)
        client.get_transport().set_keepalive(KEEPALIVE_S)
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _alive(self):
        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise DeviceError(f"the connection to {self.where} dropped")
        return transport

    def push(self, local: Path, remote: str) -> None:
        if self._open_sftp_or_none() is None:
            self._push_exec(Path(local), remote)
        else:
            self._sftp("put", str(local), remote)

    def pull(self, remote: str, local: Path) -> None:
        if self._open_sftp_or_none() is None:
            self._pull_exec(remote, Path(local))
        else:
            self._sftp("get", remote, str(local))

    def _open_sftp_or_none(self):
        """Whether the server has SFTP (asked once per session): None when it refuses the
        subsystem, so that copies go over the exec channel."""
        import paramiko

        self._alive()
        if self.copy_method is None:
            try:
                self.client.open_sftp().close()
                self.copy_method = "sftp"
            except (paramiko.SSHException, EOFError) as exc:
                if not self._alive_quietly():
                    raise DeviceError(f"the connection to {self.where} dropped") from exc
                self.copy_method = "exec"
        return None if self.copy_method == "exec" else True

    def _alive_quietly(self) -> bool:
        transport = self.client.get_transport() if self.client else None
        return transport is not None and transport.is_active()

    def _sftp(self, op: str, src: str, dst: str) -> None:
        self._alive()
        try:
            with self.client.open_sftp() as sftp:
                getattr(sftp, op)(src, dst)
        except (OSError, EOFError, socket.timeout, Exception) as exc:  # paramiko raises SSHException too
            raise DeviceError(f"copying {src} -> {dst} on {self.where} failed: {exc or type(exc).__name__}") from exc

    def _channel(self, argv: list[str]):
        transport = self._alive()
        try:
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
            channel.settimeout(COPY_TIMEOUT)
            channel.exec_command(shlex.join(argv))
        except Exception as exc:  # paramiko raises SSHException, EOFError, OSError
            raise DeviceError(f"cannot run a command on {self.where}: {exc or type(exc).__name__}") from exc
        return channel

    def _finish_copy(self, channel, what: str) -> None:
        err = bytearray()
        try:
            while chunk := channel.recv_stderr(CHUNK):
                err += chunk
        except (OSError, EOFError, socket.timeout) as exc:
            channel.close()
            raise DeviceError(f"copying {what} on {self.where} failed: {exc or type(exc).__name__}") from exc
        code = channel.recv_exit_status()
        channel.close()
        if code == -1 or not self._alive_quietly():
            raise DeviceError(f"the connection to {self.where} dropped while copying {what}")
        if code != 0:
            tail = (err.decode(errors="replace").strip().splitlines() or [f"exit code {code}"])[-1]
            raise DeviceError(f"copying {what} on {self.where} failed: {tail}")

    def _push_exec(self, local: Path, remote: str) -> None:
        """Stream a file into ``cat`` over the exec channel (the path is an argument of the
        remote shell's script, never part of it)."""
        channel = self._channel(["sh", "-c", 'cat > "$1"', "sh", remote])
        try:
            with open(local, "rb") as fh:
                for block in iter(lambda: fh.read(CHUNK), b""):
                    channel.sendall(block)
            channel.shutdown_write()
        except (OSError, EOFError, socket.timeout) as exc:
            channel.close()
            raise DeviceError(f"copying {local} -> {remote} on {self.where} failed: "
                              f"{exc or type(exc).__name__}") from exc
        self._finish_copy(channel, f"{local} -> {remote}")

    def _pull_exec(self, remote: str, local: Path) -> None:
        channel = self._channel(["cat", "--", remote])
        tmp = local.with_name(local.name + ".part")
        try:
            with open(tmp, "wb") as fh:
                while True:
                    block = channel.recv(CHUNK)
                    if not block:
                        break
                    fh.write(block)
            self._finish_copy(channel, f"{remote} -> {local}")
            tmp.replace(local)
        except (OSError, EOFError, socket.timeout) as exc:
            channel.close()
            raise DeviceError(f"copying {remote} -> {local} on {self.where} failed: "
                              f"{exc or type(exc).__name__}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def exec(self, argv: list[str], timeout: float) -> Completed:
        transport = self._alive()
        command = shlex.join(argv)
        try:
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
            channel.exec_command(command)
        except (OSError, EOFError, Exception) as exc:
            raise DeviceError(f"cannot run a command on {self.where}: {exc or type(exc).__name__}") from exc
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while True:
            drained = False
            while channel.recv_ready():
                out += channel.recv(1 << 16)
                drained = True
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(1 << 16)
                drained = True
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if not transport.is_active() or (channel.closed and not channel.exit_status_ready()):
                raise DeviceError(f"the connection to {self.where} dropped while running '{argv[0]}'")
            if time.monotonic() > deadline:
                channel.close()
                raise DeviceTimeoutError(f"'{argv[0]}' took longer than {timeout:.0f} s on {self.where}")
            if not drained:
                time.sleep(0.01)
        code = channel.recv_exit_status()
        channel.close()
        if code == -1 or not transport.is_active():  # paramiko's "no exit status": the link went away
            raise DeviceError(f"the connection to {self.where} dropped while running '{argv[0]}'")
        return Completed(code, out.decode(errors="replace"), err.decode(errors="replace"))

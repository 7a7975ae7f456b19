"""The sweep engine: Ray. An embedded local Ray (no address) or a cluster joined by address;
build jobs as Ray tasks with CPU/memory requests; device jobs leasing the custom resource
``device:<name>`` that the node reaching that board declares; bounded retries; Ctrl-C.

Embedded Ray: CPUs from this machine, object store capped, no dashboard, token
authentication on (Ray 2.59+ turns it on by default and would write ``~/.ray/auth_token``;
here a fresh token lives in ``OUT/.engine/auth_token`` while the sweep runs, and Ray's
session files in a temporary folder under /tmp; both are removed at the end, nothing goes
to the user's home). Joining a cluster: the token comes the way Ray reads it
(``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from edgeport.errors import ClusterError, DeviceError, TargetUnavailableError, import_optional
from edgeport.sweep.job import build_job, pack, profile_job
from edgeport.sweep.spec import Job, Plan
from edgeport.ui import UI

OBJECT_STORE_BYTES = 256 * 1024 * 1024  # embedded Ray; Ray's default is 30% of RAM


def _ray():
    return import_optional("ray", "Ray", "`edgeport sweep` runs its jobs on Ray", "sweep", "ray==2.60.0")


def device_resource(name: str) -> str:
    return f"device:{name}"


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or unset, for None) environment variables; restore them afterwards."""
    before = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        _reload_auth()
        yield
    finally:
        _set_environment(before)
        _reload_auth()


def _reload_auth() -> None:
    """Ray caches the auth mode and token in C++ at first use; a second sweep in the same
    process (or a changed token) must refresh both."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _nodes(ray) -> list[dict]:
    return [{"node_id": n["NodeID"], "hostname": n.get("NodeManagerHostname"), "address": n.get("NodeManagerAddress"),
             "alive": n["Alive"], "resources": n.get("Resources", {})} for n in ray.nodes()]


@contextlib.contextmanager
def session(address: str | None, out: Path, devices: list[str], ui: UI) -> Iterator[dict]:
    """Ray up for the sweep: embedded when ``address`` is None, else joined. Yields engine facts."""
    ray = _ray()
    if address is None:
        with _embedded(ray, out, devices, ui) as info:
            yield info
        return
    _check_reachable(address)
    with _environment({"RAY_USAGE_STATS_ENABLED": "0"}):
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:  # Ray raises ConnectionError, AuthenticationError, RuntimeError...
            raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}".splitlines()[0],
                               hint="check the address (ray start --head prints it) and the cluster's token: "
                                    "RAY_AUTH_TOKEN_PATH=<file> or RAY_AUTH_TOKEN (ray get-auth-token on the head)"
                               ) from exc
        try:
            with _sigterm_as_interrupt():
                yield {"mode": "cluster", "address": address, "ray": ray.__version__, "nodes": _nodes(ray)}
        finally:
            ray.shutdown()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """After ray.init, SIGTERM is Ray's (a C++ handler that dumps a stack and aborts the
    process before a sweep can save); here it stops the sweep the way Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _check_reachable(address: str) -> None:
    """Fail fast (Ray itself retries an unreachable head for minutes) and say what is missing."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401 - Ray Client's transport, not part of Ray core
        except ImportError as exc:
            raise TargetUnavailableError(f"joining {address} needs Ray Client, which Ray core does not include",
                                         hint="pip install 'ray[client]==2.60.0', or run the sweep on a machine of "
                                              "the cluster with --address HOST:PORT") from exc
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(f"no Ray head answers at {address}: {exc}",
                           hint="give HOST:PORT of `ray start --head` (default port 6379), ray://HOST:10001, or auto"
                           ) from exc


@contextlib.contextmanager
def _embedded(ray, out: Path, devices: list[str], ui: UI) -> Iterator[dict]:
    engine_dir = out / ".engine"
    engine_dir.mkdir(parents=True, exist_ok=True)
    token = engine_dir / "auth_token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    temp = Path(tempfile.mkdtemp(prefix="edgeport-ray-"))  # short: Ray's unix sockets live here
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_AUTH_TOKEN": None,
           "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        with _environment(env):
            started = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                     _temp_dir=str(temp), resources={device_resource(d): 1 for d in devices},
                     log_to_driver=False, logging_level=logging.ERROR)
            ui.info(f"embedded Ray {ray.__version__} up in {time.perf_counter() - started:.1f} s "
                    f"({os.cpu_count()} CPUs, object store {OBJECT_STORE_BYTES >> 20} MB, token auth)")
            try:
                with _sigterm_as_interrupt():
                    yield {"mode": "embedded", "address": None, "ray": ray.__version__, "nodes": _nodes(ray),
                           "object_store_mb": OBJECT_STORE_BYTES >> 20, "auth": "token"}
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        token.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            engine_dir.rmdir()


# -- tasks: module-level functions, so Ray pickles them by reference (workers import edgeport)

def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _build_task(job_json: str, *bundles) -> dict:
    out = build_job(job_json, *bundles)
    out["host"]["node_id"] = _node_id()
    return out


def _profile_task(job_json: str, built: dict) -> dict:
    out = profile_job(job_json, built)
    out["host"]["node_id"] = _node_id()
    return out


def _ray_failure(exc: BaseException, job: Job, phase: str) -> dict:
    """A Ray-level failure (worker or node died after the retries, task cancelled) as a record."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"type": type(exc).__name__, "message": f"{phase} job lost: {first}", "hint": "rerun with --resume",
            "exit_code": ClusterError.exit_code}


Done = Callable[[Job, dict | None, dict | None, dict | None], None]  # job, build, profile, error


def run_jobs(plan: Plan, jobs: list[Job], on_done: Done, ui: UI) -> None:
    """Run ``jobs`` on the Ray session; ``on_done(job, build, profile, error)`` as each ends.

    A board gets one profile job at a time from the driver (its Ray resource places the job on
    the node that reaches it): the next is submitted only when the previous one has returned,
    so a board that fails is tried once, and its other jobs are marked without touching it.
    On Ctrl-C every job still in flight is cancelled and KeyboardInterrupt propagates."""
    ray = _ray()
    spec = plan.spec
    build_remote, profile_remote = ray.remote(_build_task), ray.remote(_profile_task)
    options = {"num_cpus": spec.resources.cpus, "max_retries": spec.retries, "retry_exceptions": False}
    if spec.resources.memory_mb:
        options["memory"] = spec.resources.memory_mb * 1024 * 1024
    needed = dict.fromkeys(sha for job in jobs for sha in job.inputs)
    inputs = {sha: ray.put(pack(plan.inputs[sha])) for sha in needed}
    pending: dict = {}
    for job in jobs:
        ref = build_remote.options(**options, name=f"build {job.label}").remote(
            job.to_json(), *[inputs[sha] for sha in job.inputs])
        pending[ref] = (job, "build", None)
    progress = _Progress(len(jobs), ui)
    boards = _Boards()
    absent_since: dict[str, float] = {}

    def finish(job: Job, build, profile, error) -> None:
        on_done(job, build, profile, error)
        progress.done(job, build, profile, error, len(pending) + boards.queued())

    def submit(device: str) -> None:
        """The board's next queued job, when the board is free and has one."""
        nxt = boards.next(device)
        if nxt is not None:
            job, build_ref, build = nxt
            lease = {"num_cpus": 0, "resources": {device_resource(device): 1},
                     "max_retries": spec.retries, "retry_exceptions": False}
            pending[profile_remote.options(**lease, name=f"profile {job.label}").remote(
                job.to_json(), build_ref)] = (job, "profile", build)

    def fail_board(device: str, error: dict) -> None:
        for job, _, build in boards.drop(device):
            finish(job, build, None, error)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                job, phase, build = pending.pop(ref)
                if phase == "profile":
                    boards.release(job.device)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    finish(job, build, None, _ray_failure(exc, job, phase))
                    if phase == "profile":
                        submit(job.device)
                    continue
                if phase == "build":
                    if value["error"] or job.device is None:
                        finish(job, value, None, value["error"])
                    elif job.device in boards.bad:
                        finish(job, value, None, _device_failed(job.device, boards.bad[job.device]))
                    else:
                        boards.queue(job.device, (job, ref, value))
                        submit(job.device)
                    continue
                error = value["error"]
                finish(job, build, value, error or (build or {}).get("error"))
                if error and error["exit_code"] == DeviceError.exit_code:
                    boards.bad[job.device] = error["message"]
                    ui.warn(f"device {job.device} failed: {error['message']}; its other jobs are marked, not run")
                    fail_board(job.device, _device_failed(job.device, error["message"]))
                else:
                    submit(job.device)
            progress.tick(len(pending) + boards.queued())
            for device, error in _expired_devices(ray, pending, absent_since, spec.device_wait_s):
                for ref, (job, phase, build) in list(pending.items()):
                    if phase == "profile" and job.device == device:
                        ray.cancel(ref, force=True)
                        del pending[ref]
                        boards.release(device)
                        finish(job, build, None, error)
                fail_board(device, error)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


class _Boards:
    """The driver's view of each board: the profile jobs waiting for it, whether one is in
    flight, and the boards that failed (with their first error)."""

    def __init__(self):
        self.waiting: dict[str, list] = {}
        self.busy: set[str] = set()
        self.bad: dict[str, str] = {}

    def queue(self, device: str, item: tuple) -> None:
        self.waiting.setdefault(device, []).append(item)

    def next(self, device: str) -> tuple | None:
        if device in self.busy or device in self.bad or not self.waiting.get(device):
            return None
        self.busy.add(device)
        return self.waiting[device].pop(0)

    def release(self, device: str) -> None:
        self.busy.discard(device)

    def drop(self, device: str) -> list:
        return self.waiting.pop(device, [])

    def queued(self) -> int:
        return sum(len(v) for v in self.waiting.values())


def _device_failed(device: str, message: str) -> dict:
    return {"type": "DeviceError", "message": f"not profiled: device {device} failed earlier in this sweep: {message}",
            "hint": "fix the board, then rerun with --resume", "exit_code": DeviceError.exit_code}


def _expired_devices(ray, pending: dict, absent_since: dict[str, float], limit: float) -> list[tuple[str, dict]]:
    """A device job waits for a node that offers its device; after ``limit`` seconds without
    one in the cluster (its node left and did not come back) the device's jobs fail with that reason."""
    waiting = {job.device for job, phase, _ in pending.values() if phase == "profile"}
    if not waiting:
        return []
    offered = ray.cluster_resources()
    now = time.monotonic()
    expired = []
    for device in waiting:
        if offered.get(device_resource(device)):
            absent_since.pop(device, None)
            continue
        if now - absent_since.setdefault(device, now) >= limit:
            expired.append((device, {
                "type": "ClusterError", "exit_code": ClusterError.exit_code, "hint": "rerun with --resume",
                "message": f"no node of the cluster offered {device_resource(device)} for {limit:.0f} s "
                           "(its node left and did not rejoin)"}))
    return expired


class _Progress:
    """One line per finished job: done / in flight / failed, and an ETA from the mean pace; and
    while jobs run long (a compression job takes minutes), a line every ``every_s`` seconds."""

    every_s = 120.0

    def __init__(self, total: int, ui: UI):
        self.total, self.ui = total, ui
        self.finished = self.failed = 0
        self.started = self.said = time.monotonic()

    def tick(self, in_flight: int) -> None:
        now = time.monotonic()
        if in_flight and now - self.said >= self.every_s:
            self.said = now
            self.ui.info(f"... {self.finished}/{self.total} done, {in_flight} in flight, "
                         f"{(now - self.started) / 60:.0f} min elapsed")

    def done(self, job: Job, build, profile, error, in_flight: int) -> None:
        self.said = time.monotonic()
        self.finished += 1
        self.failed += bool(error and error.get("exit_code") != 5)
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.finished * (self.total - self.finished)
        host = ((profile or build or {}).get("host") or {}).get("hostname", "?")
        verdict = "ok" if not error else f"exit {error['exit_code']}: {error['message']}"
        self.ui.info(f"[{self.finished}/{self.total}] {job.label} on {host}: {verdict} · in flight {in_flight}"
                     f" · failed {self.failed} · ETA {eta:.0f} s")

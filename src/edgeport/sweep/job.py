"""What one sweep job runs on a worker, with no Ray in it: the export flow for the job's recipe
(build, verify, budget, profile on the node), then, for a device job, a profile on the board.

Arguments and results are JSON text and bytes only: a job's inputs arrive as files
(``[path, sha256, bytes]``) and its artifacts go back the same way, verified on both ends,
so the nodes of a cluster share nothing but Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import tempfile
import time
import traceback
from pathlib import Path

from edgeport.errors import EdgeportError

RETURNED = ("results.json", "report.md", "report.html")  # plus every file under targets/


def host_info() -> dict:
    return {"hostname": socket.gethostname(), "pid": os.getpid(), "platform": platform.platform(),
            "cpus": os.cpu_count()}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(path: Path) -> list[list]:
    """A file or a folder -> ``[[relative path, sha256, bytes], ...]`` (sorted)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = []
    for file in files:
        data = file.read_bytes()
        out.append([file.name if file == path else file.relative_to(path).as_posix(), sha256_bytes(data), data])
    return out


def unpack(files: list[list], root: Path) -> list[dict]:
    """Write packed files under ``root`` after checking each sha256; return what was written."""
    written = []
    for rel, sha, data in files:
        if sha256_bytes(data) != sha:
            raise EdgeportError(f"file '{rel}' arrived corrupted (sha256 mismatch)")
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:
            raise EdgeportError(f"file '{rel}' would land outside its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append({"path": rel, "sha256": sha, "bytes": len(data)})
    return written


def error_record(exc: BaseException) -> dict:
    if isinstance(exc, EdgeportError):
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return {"type": type(exc).__name__, "message": f"internal error: {exc}".splitlines()[0], "hint": None,
            "exit_code": 1, "traceback": "".join(tail)}


def _budget_missed(document: dict) -> dict | None:
    missed = [name for name, entry in document["targets"].items()
              if entry.get("fallback") and not entry["fallback"]["met"]]
    if not missed:
        return None
    return {"type": "BudgetNotMetError", "message": f"budget not met by {', '.join(missed)}; the closest artifact "
            "was kept", "hint": None, "exit_code": 5}


def build_job(job_json: str, *bundles: list[list]) -> dict:
    """Run the export flow for one job. ``bundles``: the job's local inputs, in the order of
    its ``inputs`` list. Returns ``{"results": JSON text | None, "files": [...], "error": ...}``."""
    from edgeport.stages.flow import run_export
    from edgeport.sweep.spec import job_recipe
    from edgeport.ui import UI, quiet_libraries

    quiet_libraries()
    job = json.loads(job_json)
    started = time.perf_counter()
    out: dict = {"results": None, "files": [], "error": None, "host": host_info()}
    with tempfile.TemporaryDirectory(prefix="edgeport-job-") as work:
        root = Path(work)
        try:
            for sha, files in zip(job["inputs"], bundles, strict=True):
                unpack(files, root / "inputs" / sha)
            recipe = job_recipe(job["recipe"], root / "inputs")
            document = run_export(recipe, root / "run", UI(quiet=True)).document()
        except EdgeportError as exc:
            out["error"] = error_record(exc)
        except Exception as exc:  # recorded with its traceback as the job's failure (exit 1)
            out["error"] = error_record(exc)
        else:
            out["error"] = _budget_missed(document)
            run = root / "run"
            out["results"] = json.dumps(document)
            kept = [run / name for name in RETURNED if (run / name).is_file()]
            out["files"] = [f for path in kept for f in pack(path)]
            if (run / "targets").is_dir():
                out["files"] += [[f"targets/{rel}", sha, data] for rel, sha, data in pack(run / "targets")]
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def profile_job(job_json: str, built: dict) -> dict:
    """Profile the job's artifact on its board (this node holds the board's lease), then cool down."""
    from edgeport.devices.catalog import Connection, resolve
    from edgeport.devices.profiling import profile_on
    from edgeport.recipe import ProfileSpec
    from edgeport.ui import quiet_libraries

    quiet_libraries()
    job = json.loads(job_json)
    access = job["access"]
    target = job["recipe"]["targets"][0]
    spec = ProfileSpec.model_validate({**job["recipe"]["profile"], "device": access["device"]})
    connection = Connection(host=access.get("host"),
                            **{k: access[k] for k in ("identity", "known_hosts", "python") if access.get(k)})
    started = time.perf_counter()
    out: dict = {"profile": None, "error": None, "host": host_info(), "cooldown_s": access["cooldown_s"]}
    with tempfile.TemporaryDirectory(prefix="edgeport-profile-") as work:
        root = Path(work)
        prefix = f"targets/{target}/"
        try:
            unpack([[rel[len(prefix):], sha, data] for rel, sha, data in built["files"] if rel.startswith(prefix)],
                   root)
            out["power_mode"] = resolve(access["device"], connection).entry.power_mode
            profile = profile_on(root, access["device"], spec, connection).model_dump(mode="json", by_alias=True)
        except EdgeportError as exc:
            out["error"] = error_record(exc)
        except Exception as exc:  # recorded as the job's failure (exit 1)
            out["error"] = error_record(exc)
        else:
            profile.setdefault("environment", {})["reached_as"] = profile["device"]
            profile["device"] = job["device"]
            out["profile"] = profile
    out["seconds"] = round(time.perf_counter() - started, 2)
    if access["cooldown_s"]:
        time.sleep(access["cooldown_s"])  # the board stays leased while it cools down
    return out

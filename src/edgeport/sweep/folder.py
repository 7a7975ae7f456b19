"""The sweep folder: one run folder per job, each written whole (atomically) when its job ends::

    OUT/
      sweep.json, sweep.md, sweep.html     every job's results and provenance; the Pareto report
      jobs/<key[:16]>/                     a run folder: results.json, report.*, targets/<target>/
        job.json                           the job's spec, content key, status, error, where it ran,
                                           and every artifact file with its sha256

A job is finished (and reused by a later sweep) when its job.json carries the same content
key, a finished status, and every artifact file is there with its recorded sha256.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgeport.runs import RunDir, atomic_dir, read_json, write_json
from edgeport.results import Results
from edgeport.stages.results_file import save_results
from edgeport.sweep.job import sha256_bytes, unpack
from edgeport.sweep.report import job_metrics
from edgeport.sweep.spec import Job

JOB_FILE = "job.json"
FINISHED = ("done", "missed")  # missed: the budget was not met; the closest artifact is kept


def job_dir(out: Path, job: Job) -> Path:
    return Path(out) / "jobs" / job.folder_name


def status_of(results: bool, error: dict | None) -> str:
    if error is None:
        return "done"
    return "missed" if results and error["exit_code"] == 5 else "failed"


def write_job(out: Path, job: Job, build: dict | None, profile: dict | None, error: dict | None) -> dict:
    """Write a finished (or failed) job's run folder from what its tasks returned."""
    folder = job_dir(out, job).absolute()
    has_results = bool(build and build.get("results"))
    record = {"key": job.key, "label": job.label, "axes": job.axes, "device": job.device, "recipe": job.recipe,
              "status": status_of(has_results, error), "error": error, "cached": False, "folder": str(folder),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "seconds": {"build": (build or {}).get("seconds"), "profile": (profile or {}).get("seconds")},
              "ran_on": {"build": (build or {}).get("host"), "profile": (profile or {}).get("host")},
              "power_mode": (profile or {}).get("power_mode"), "cooldown_s": (profile or {}).get("cooldown_s"),
              "files": [], "metrics": None}
    with atomic_dir(folder) as tmp:
        if has_results:
            written = unpack(build["files"], tmp)
            record["files"] = [f for f in written if f["path"].startswith("targets/")]
            document = json.loads(build["results"])
            for name, entry in document["targets"].items():
                entry["artifact"] = str(folder / "targets" / name)
                if profile and profile.get("profile"):
                    entry["profiles"][job.device] = profile["profile"]
            document = save_results(RunDir(tmp), Results.model_validate(document)).document()
            record["metrics"] = job_metrics(document, job.device, (build.get("host") or {}).get("hostname"))
        write_json(tmp / JOB_FILE, record)
    return record


def finished(out: Path, job: Job) -> dict | None:
    """The job's record if its folder holds its finished results (same key, files intact)."""
    folder = job_dir(out, job)
    path = folder / JOB_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    if record.get("key") != job.key or record.get("status") not in FINISHED:
        return None
    if not (folder / "results.json").is_file():
        return None
    for file in record["files"]:
        target = folder / file["path"]
        if not target.is_file() or sha256_bytes(target.read_bytes()) != file["sha256"]:
            return None
    return record


def recorded(out: Path, job: Job) -> dict | None:
    """Whatever job.json says for this job (finished or not), if its key matches."""
    path = job_dir(out, job) / JOB_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    return record if record.get("key") == job.key else None

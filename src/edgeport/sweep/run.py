"""`edgeport sweep`: read and expand the sweep file, reuse finished jobs, run the rest on Ray,
write each job's run folder as it ends and the sweep's report after every job."""

from __future__ import annotations

import time
from pathlib import Path

from edgeport.errors import BudgetNotMetError, EdgeportError, UsageError
from edgeport.runs import atomic_write_text, read_json, write_json
from edgeport.sweep import report
from edgeport.sweep.folder import finished, job_dir, write_job
from edgeport.sweep.spec import Job, expand, read_sweep
from edgeport.ui import UI


def _pending(out: Path, job: Job) -> dict:
    return {"key": job.key, "label": job.label, "axes": job.axes, "device": job.device, "recipe": job.recipe,
            "status": "pending", "error": None, "cached": False, "folder": str(job_dir(out, job).absolute()),
            "ran_on": {}, "files": [], "metrics": None}


def _previous(out: Path, resume: bool, spec_sha256: str, keys: set[str]) -> dict | None:
    path = out / "sweep.json"
    previous = read_json(path) if path.is_file() else None
    if not resume:
        return None
    if previous is None:
        raise UsageError(f"nothing to resume: '{out}' holds no sweep.json", hint="run the sweep without --resume")
    if previous.get("spec_sha256") != spec_sha256 or {j["key"] for j in previous["jobs"]} != keys:
        raise UsageError(f"the sweep in '{out}' was made from another sweep file, or by other code or tool versions",
                         hint="run without --resume: every job whose content key still matches is reused")
    return previous


def run_sweep(path: Path, out: Path | None, address: str | None, resume: bool, ui: UI) -> dict:
    from edgeport.sweep.engine import run_jobs, session

    plan = expand(read_sweep(path), Path(path).absolute().parent)
    out = Path(out or Path("runs") / Path(path).stem)
    previous = _previous(out, resume, plan.spec_sha256, {job.key for job in plan.jobs})
    created = previous["created"] if previous else time.strftime("%Y-%m-%dT%H:%M:%S%z")
    history = list(previous.get("history", [])) if previous else []
    records: dict[str, dict] = {}
    todo = []
    for job in plan.jobs:
        record = finished(out, job)
        records[job.key] = {**record, "cached": True} if record else _pending(out, job)
        if not record:
            todo.append(job)
    ui.info(f"sweep {plan.name}: {len(plan.jobs)} jobs; {len(plan.jobs) - len(todo)} finished earlier, "
            f"{len(todo)} to run")
    started = time.perf_counter()
    state = {"engine": previous.get("engine") if previous else None}

    def save(status: str, final: bool = False) -> dict:
        wall = round(time.perf_counter() - started, 2)
        runs = history + ([{"ended": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ran": len(todo), "status": status,
                            "wall_seconds": wall, "engine": (state["engine"] or {}).get("mode")}] if final else [])
        document = report.sweep_document(plan.name, plan.spec_sha256, [records[j.key] for j in plan.jobs],
                                         state["engine"], status, created, wall, runs)
        write_json(out / "sweep.json", document)
        if final:
            atomic_write_text(out / "sweep.md", report.markdown(document))
            atomic_write_text(out / "sweep.html", report.html_report(document))
        return document

    out.mkdir(parents=True, exist_ok=True)
    save("running")

    def on_done(job: Job, build: dict | None, profile: dict | None, error: dict | None) -> None:
        records[job.key] = write_job(out, job, build, profile, error)
        save("running")

    try:
        if todo:
            devices = sorted({job.device for job in todo if job.device})
            with session(address, out, devices, ui) as engine:
                state["engine"] = engine
                run_jobs(plan, todo, on_done, ui)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (engine.py)
        save("interrupted", final=True)
        raise
    except EdgeportError:
        save("aborted", final=True)
        raise
    statuses = {r["status"] for r in records.values()}
    document = save("complete" if statuses <= {"done"} else "incomplete", final=True)
    ui.info(f"sweep folder: {out}  (report: {out / 'sweep.html'})")
    return document


class SweepJobsFailedError(EdgeportError):
    """Some jobs of a sweep failed: the exit code is the first failed job's own."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None):
        super().__init__(message, hint)
        self.exit_code = exit_code


def raise_for_failures(document: dict, out: Path) -> None:
    """A sweep with failed jobs exits with the first failed job's code; only budget misses: 5."""
    failed = [j for j in document["jobs"] if j["status"] == "failed"]
    missed = [j for j in document["jobs"] if j["status"] == "missed"]
    if failed:
        first = failed[0]["error"]
        raise SweepJobsFailedError(f"{len(failed)} of {len(document['jobs'])} jobs failed; first: "
                                   f"{failed[0]['label']}: {first['message']}", first["exit_code"],
                                   hint=f"see {out / 'sweep.md'}; rerun them with --resume")
    if missed:
        raise BudgetNotMetError(f"{len(missed)} of {len(document['jobs'])} jobs missed their budget; "
                                f"their closest artifacts are kept in {out / 'jobs'}", hint=f"see {out / 'sweep.md'}")

#!/usr/bin/env python3
"""Wall-clock of one sweep (default sweeps/minilm.yaml: MiniLM x 3 INT8 targets x 2
budgets = 6 jobs) run two ways on this machine: on the embedded Ray (`edgeport sweep`), and
sequentially in one process (the same job function, one job after another, no Ray).

    python bench/sweep.py [--sweep sweeps/minilm.yaml] [--work runs/bench-sweep]

Writes bench/results/sweep.{json,md}. Each way starts from an empty folder (nothing cached)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from _results import provenance_line, write_results
from edgeport.sweep.job import build_job, pack
from edgeport.sweep.run import run_sweep
from edgeport.sweep.spec import expand, read_sweep
from edgeport.ui import UI, quiet_libraries


def sequential(path: Path, ui: UI) -> dict:
    plan = expand(read_sweep(path), path.absolute().parent)
    bundles = {sha: pack(folder) for sha, folder in plan.inputs.items()}
    started = time.perf_counter()
    jobs = []
    for job in plan.jobs:
        ui.info(f"sequential: {job.label}")
        out = build_job(job.to_json(), *[bundles[sha] for sha in job.inputs])
        jobs.append({"key": job.key, "label": job.label, "seconds": out["seconds"],
                     "status": "done" if not out["error"] else f"exit {out['error']['exit_code']}"})
    return {"wall_seconds": round(time.perf_counter() - started, 1), "jobs": jobs}


def on_ray(path: Path, out: Path, ui: UI) -> dict:
    started = time.perf_counter()
    document = run_sweep(path, out, None, False, ui)
    return {"wall_seconds": round(time.perf_counter() - started, 1), "counts": document["counts"],
            "jobs": [{"key": j["key"], "label": j["label"], "seconds": j["seconds"]["build"], "status": j["status"]}
                     for j in document["jobs"]], "pareto": document["pareto"], "folder": str(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=Path("sweeps/minilm.yaml"))
    parser.add_argument("--work", type=Path, default=Path("runs/bench-sweep"))
    args = parser.parse_args()
    quiet_libraries()
    ui = UI()
    shutil.rmtree(args.work, ignore_errors=True)
    load = {"before": os.getloadavg()[0]}
    ray_run = on_ray(args.sweep, args.work / "ray", ui)
    load["between"] = os.getloadavg()[0]
    seq_run = sequential(args.sweep, ui)
    load["after"] = os.getloadavg()[0]
    ray_run.pop("folder")
    same = sorted(j["key"] for j in ray_run["jobs"]) == sorted(j["key"] for j in seq_run["jobs"])
    write_results("sweep", {"sweep": str(args.sweep), "load_average_1min_by_phase": load, "same_job_keys": same,
                            "embedded_ray": ray_run, "sequential": seq_run}, render)
    return 0


def render(document: dict) -> list[str]:
    ray_run, seq_run = document["embedded_ray"], document["sequential"]
    load = document["load_average_1min_by_phase"]
    done = sum(j["status"] == "done" for j in seq_run["jobs"])
    lines = [provenance_line(document, "bench/sweep.py"), "",
             f"`{document['sweep']}`: {len(seq_run['jobs'])} jobs, each way from an empty folder; load average "
             f"before / between / after: {load['before']:.1f} / {load['between']:.1f} / {load['after']:.1f}.", "",
             "| way | wall-clock s | jobs done |", "|---|---:|---:|",
             f"| sequential, one process | {seq_run['wall_seconds']:.0f} | {done}/{len(seq_run['jobs'])} |",
             f"| embedded Ray (`edgeport sweep`) | {ray_run['wall_seconds']:.0f} | "
             f"{ray_run['counts']['done']}/{len(ray_run['jobs'])} |", "",
             f"Sequential / Ray wall-clock: {seq_run['wall_seconds'] / ray_run['wall_seconds']:.2f}x; "
             f"same job content keys both ways: {'yes' if document['same_job_keys'] else 'no'}."]
    return lines


if __name__ == "__main__":
    sys.exit(main())

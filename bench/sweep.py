#!/usr/bin/env python3
"""Wall-clock of one sweep (default sweeps/minilm.yaml: MiniLM x 3 INT8 targets x 2
budgets = 6 jobs) run two ways on this machine: on the embedded Ray (`edgeport sweep`), and
sequentially in one process (the same job function, one job after another, no Ray).

    python bench/sweep.py [--sweep sweeps/minilm.yaml] [--work runs/bench-sweep]

Writes bench/results/sweep.{json,md}. Each way starts from an empty folder (nothing cached)."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from _results import write_results
from edgeport.devices.host import cpu_info
from edgeport.runs import tool_versions
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
    load = {"before": os.getloadavg()}
    ray_run = on_ray(args.sweep, args.work / "ray", ui)
    load["between"] = os.getloadavg()
    seq_run = sequential(args.sweep, ui)
    load["after"] = os.getloadavg()
    document = {"command": " ".join([Path(sys.executable).name] + sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": {"cpu": cpu_info()["model"], "cores": os.cpu_count(), "platform": platform.platform(),
                            "load_average_1_5_15": load},
                "tools": tool_versions(("edgeport", "ray", "torch", "onnxruntime", "openvino", "nncf", "ai-edge-litert",
                                        "litert-torch")),
                "sweep": str(args.sweep), "embedded_ray": ray_run, "sequential": seq_run}
    speedup = seq_run["wall_seconds"] / ray_run["wall_seconds"]
    md = [f"`{document['command']}` on {document['date']}: {document['machine']['cpu']}, {os.cpu_count()} cores "
          f"(load average before/between/after: {', '.join('%.1f' % v[0] for v in load.values())}).", "",
          "| way | wall-clock s | jobs done |", "|---|---:|---:|",
          f"| sequential, one process | {seq_run['wall_seconds']:.0f} | "
          f"{sum(j['status'] == 'done' for j in seq_run['jobs'])}/{len(seq_run['jobs'])} |",
          f"| embedded Ray (`edgeport sweep`) | {ray_run['wall_seconds']:.0f} | "
          f"{ray_run['counts']['done']}/{len(ray_run['jobs'])} |", "",
          f"Sequential / Ray: {speedup:.2f}x. Tools: " + ", ".join(f"{k} {v}" for k, v in document["tools"].items())]
    write_results("sweep", document, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stages run alone on an existing run folder: `profile` and `report`."""

from __future__ import annotations

from pathlib import Path

from edgeport.errors import InputError, UsageError
from edgeport.report.write import write_reports
from edgeport.results import Results
from edgeport.runs import RunDir, read_json, write_json
from edgeport.ui import UI


def load_results(run_dir: Path) -> tuple[RunDir, dict]:
    run = RunDir(Path(run_dir))
    if not run.results_path.is_file():
        raise InputError(f"'{run_dir}' is not an edgeport run folder (no results.json)",
                         hint="create one with `edgeport export MODEL --out RUN_DIR`")
    return run, read_json(run.results_path)


def save_results(run: RunDir, document: dict) -> dict:
    document = Results.model_validate(document).model_dump(mode="json")
    write_json(run.results_path, document)
    write_reports(run, document)
    return document


def merge_profile(entry: dict, profile: dict) -> None:
    """A device's profile joins a target's entry under its device; this machine's profile is
    also the entry's headline latency and peak memory."""
    entry["profiles"][profile["device"]] = profile
    if profile["device"] == "local":
        entry["latency_ms"], entry["peak_rss_mb"] = profile["latency_ms"], profile["peak_rss_mb"]


def rewrite_report(run_dir: Path) -> dict:
    run, document = load_results(run_dir)
    write_reports(run, document)
    return document


def profile_run(run_dir: Path, targets: str | None, device: str | None, spec: dict, ui: UI,
                connection: dict | None = None) -> dict:
    from edgeport.devices.profiling import profile_on

    run, document = load_results(run_dir)
    names = [t.strip() for t in targets.split(",")] if targets else list(document["targets"])
    for name in names:
        if name not in document["targets"]:
            raise UsageError(f"target '{name}' was not built in '{run_dir}'",
                             hint=f"built: {', '.join(document['targets']) or 'none'}")
    for name in names:
        with ui.step(f"profiling {name} on {device or 'this machine'}"):
            profile = profile_on(run.target_dir(name), device, spec, connection)
        merge_profile(document["targets"][name], profile)
        ui.info(f"{name} on {profile['device']}: p50 {profile['latency_ms']['p50']:.2f} ms")
        document = save_results(run, document)  # each device result is kept as soon as it arrives
    return document

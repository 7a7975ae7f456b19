"""Stages run alone on an existing run folder: `profile` and `report`."""

from __future__ import annotations

from pathlib import Path

from edgeport.errors import InputError, UsageError
from edgeport.report.write import write_reports
from edgeport.results import SCHEMA_VERSION, Results
from edgeport.runs import RunDir, read_json, write_json
from edgeport.ui import UI


def check_run_folder(run: RunDir) -> dict | None:
    """The results document of a run folder, if it has one, after checking that this
    edgeport can read it (a newer schema version or a damaged file is refused before any
    work, so that nothing in the folder is overwritten)."""
    if run.root.exists() and not run.root.is_dir():
        raise InputError(f"'{run.root}' exists and is not a folder", hint="pass another --out")
    if not run.results_path.is_file():
        return None
    try:
        document = read_json(run.results_path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"'{run.results_path}' is damaged: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                         hint="move it away (the artifacts stay), or pass another --out") from exc
    version = document.get("schema_version") if isinstance(document, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"'{run.results_path}' is not an edgeport results document (no schema_version)",
                         hint="pass another --out")
    if version > SCHEMA_VERSION:
        raise InputError(f"'{run.results_path}' was written by a newer edgeport (schema_version {version}; "
                         f"this one reads {SCHEMA_VERSION})", hint="upgrade edgeport, or pass another --out")
    return document


def load_results(run_dir: Path) -> tuple[RunDir, dict]:
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise InputError(f"run folder '{run_dir}' does not exist",
                         hint="create one with `edgeport export MODEL --out RUN_DIR`")
    document = check_run_folder(run)
    if document is None:
        raise InputError(f"'{run_dir}' is not an edgeport run folder (no results.json)",
                         hint="create one with `edgeport export MODEL --out RUN_DIR`")
    return run, document


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

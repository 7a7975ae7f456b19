"""The run folder's results document: read it, save it (results.json, report.md and
report.html together), and merge a device's profile into a target's entry."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from edgeport.errors import InputError
from edgeport.report.write import write_reports
from edgeport.results import SCHEMA_VERSION, Profile, Results, TargetResult
from edgeport.runs import RunDir, read_json, write_json


def load_results(run_dir: Path) -> tuple[RunDir, Results]:
    run = RunDir(Path(run_dir))
    if not run.results_path.is_file():
        raise InputError(f"'{run_dir}' is not an edgeport run folder (no results.json)",
                         hint="create one with `edgeport export MODEL --out RUN_DIR`")
    data = read_json(run.results_path)
    if isinstance(data, dict) and isinstance(data.get("schema_version"), int) and data["schema_version"] > SCHEMA_VERSION:
        raise InputError(f"'{run.results_path}' was written by a newer edgeport (schema {data['schema_version']})",
                         hint="upgrade edgeport, or export again into a new run folder")
    try:
        return run, Results.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"'{run.results_path}' is not a valid results document ({where}: {first['msg']})",
                         hint="export again into a new run folder") from None


def save_results(run: RunDir, results: Results) -> Results:
    document = results.document()
    write_json(run.results_path, document)
    write_reports(run, document)
    return results


def merge_profile(entry: TargetResult, profile: Profile) -> None:
    """A device's profile joins a target's entry under its device; this machine's profile is
    also the entry's headline latency and peak memory."""
    entry.profiles[profile.device] = profile
    if profile.device == "local":
        entry.latency_ms, entry.peak_rss_mb = profile.latency_ms, profile.peak_rss_mb


def rewrite_report(run_dir: Path) -> Results:
    run, results = load_results(run_dir)
    write_reports(run, results.document())
    return results

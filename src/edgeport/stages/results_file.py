"""The run folder's results document: read it, save it (results.json, report.md and
report.html together), and merge a device's profile into a target's entry."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from edgeport.errors import InputError
from edgeport.report.write import write_reports
from edgeport.results import SCHEMA_VERSION, Profile, Results, TargetResult
from edgeport.runs import RunDir, read_json, write_json


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


def load_results(run_dir: Path) -> tuple[RunDir, Results]:
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise InputError(f"run folder '{run_dir}' does not exist",
                         hint="create one with `edgeport export MODEL --out RUN_DIR`")
    data = check_run_folder(run)
    if data is None:
        raise InputError(f"'{run_dir}' is not an edgeport run folder (no results.json)",
                         hint="create one with `edgeport export MODEL --out RUN_DIR`")
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

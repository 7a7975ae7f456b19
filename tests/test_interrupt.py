"""Interruption and concurrency, with real processes: `edgeport export` stopped by SIGTERM (what
`timeout`, CI runners and schedulers send) or Ctrl-C leaves the run folder as it was, nothing
in the temporary folder, and a rerun continues from the finished stages; a second command
into the same run folder is refused while the first runs; a build killed outright (SIGKILL)
at any point never leaves a stage that looks finished but is not."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"


def _env(tmpdir: Path) -> dict:
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _start(args: list, tmpdir: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeport.cli", *map(str, args)], env=_env(tmpdir),
                            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _leftovers(tmpdir: Path) -> list[Path]:
    """What is left in the temporary folder, less onnxruntime's `.ses` (a 51-byte session id it
    writes to TMPDIR once and reuses, whatever edgeport does)."""
    return [p for p in tmpdir.iterdir() if p.name != ".ses"]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _stage_folders_are_whole(run: Path) -> None:
    """Every stage folder in place is complete: it has its cache key and its manifest parses."""
    stages = [run / "model", run / "onnx", *sorted((run / "targets").glob("*"))]
    for stage in stages:
        if stage.exists():
            assert (stage / ".stage-key").is_file(), f"{stage} is in place without its cache key"
            json.loads((stage / "manifest.json").read_text())


@pytest.fixture()
def earlier_run(tiny_models, tmp_path):
    """A run folder with an earlier result (onnx-fp32), made in this process."""
    from edgeport.cli import main

    run = tmp_path / "run"
    assert main(["export", str(tiny_models("bert")), "--target", "onnx-fp32", "--out", str(run), "--no-profile",
                 "--calib-size", "20"]) == 0
    return run


def test_sigterm_during_a_build_keeps_everything_and_a_rerun_continues(earlier_run, tiny_models, tmp_path, run_cli):
    run, tmpdir, log = earlier_run, tmp_path / "tmpdir", tmp_path / "log"
    tmpdir.mkdir()
    before = snapshot(run)
    # a budget no artifact meets: the search builds trial after trial, each in the temporary folder
    proc = _start(["export", tiny_models("bert"), "--target", "onnx-int8", "--out", run, "--no-profile",
                   "--min-fidelity", "1.0", "--calib-size", "20"], tmpdir, log)
    trials = lambda: [p for d in tmpdir.glob("edgeport-onnx-int8-*") for p in d.glob("trial-*")]  # noqa: E731
    _wait_for(lambda: len(trials()) >= 1, proc, 120, "the first budget trial")

    # meanwhile, a second command into the same run folder is refused, and changes nothing
    code, stdout, stderr = run_cli("--json", "export", tiny_models("bert"), "--target", "onnx-fp32", "--out", run,
                                   "--no-profile")
    assert code == 2 and stdout == "", stderr
    assert f"another edgeport command (pid {proc.pid}) is writing to the run folder" in stderr
    assert "hint: wait until it finishes, or pass another --out" in stderr

    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    stderr = log.read_text()
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr and stdout == ""
    assert _leftovers(tmpdir) == [], "the build left files in the temporary folder"
    assert snapshot(run) == before, "the run folder changed"

    # a rerun continues from the finished stages (model and ONNX are reused)
    code, _, stderr = run_cli("export", tiny_models("bert"), "--target", "onnx-int8", "--out", run, "--no-profile",
                              "--min-fidelity", "0", "--calib-size", "20")
    assert code == 0, stderr
    assert "model: bert feature-extraction (cached)" in stderr and "onnx: parity" in stderr
    assert stderr.count("(cached)") >= 2
    doc = json.loads((run / "results.json").read_text())
    assert set(doc["targets"]) == {"onnx-fp32", "onnx-int8"}  # the earlier result is still there


def test_ctrl_c_during_the_onnx_export(tiny_models, tmp_path):
    """SIGINT while the ONNX stage is being written: exit 130, no temporary folder left, and
    the stage is either absent or whole (never half-written)."""
    run, tmpdir, log = tmp_path / "run", tmp_path / "tmpdir", tmp_path / "log"
    tmpdir.mkdir()
    proc = _start(["export", tiny_models("roberta"), "--target", "onnx-fp32", "--out", run, "--no-profile"],
                  tmpdir, log)
    _wait_for(lambda: any(run.glob(".onnx.tmp-*")), proc, 120, "the ONNX stage to start")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    stderr = log.read_text()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert _leftovers(tmpdir) == []
    assert not [p.name for p in run.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not (run / ".edgeport.lock").exists()
    _stage_folders_are_whole(run)
    assert (run / "model" / ".stage-key").is_file()  # the stage before it was finished and kept


def test_sigkill_at_any_point_never_corrupts_the_stage_cache(tiny_models, tmp_path):
    """SIGKILL cannot be handled: whatever it interrupts, a stage in place is whole, the next
    command removes what the killed one left in the run folder, and finishes the work."""
    from edgeport.cli import main

    run, tmpdir = tmp_path / "run", tmp_path / "tmpdir"
    tmpdir.mkdir()
    args = ["export", tiny_models("distilbert"), "--target", "onnx-int8", "--out", run, "--no-profile",
            "--min-fidelity", "1.0", "--calib-size", "20"]
    for delay in (6.0, 9.0, 12.0):  # into loading, export and build (their times vary by machine)
        proc = _start(args, tmpdir, tmp_path / f"log-{delay}")
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)
        _stage_folders_are_whole(run)
    assert main([str(a) for a in args[:-4]] + ["--min-fidelity", "0", "--calib-size", "20"]) == 0
    _stage_folders_are_whole(run)
    assert not [p.name for p in run.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert (run / "targets" / "onnx-int8" / "model.onnx").is_file()


def test_sigterm_during_profiling_keeps_the_results_and_stops_the_agent(earlier_run, tmp_path):
    run, tmpdir, log = earlier_run, tmp_path / "tmpdir", tmp_path / "log"
    tmpdir.mkdir()
    results = (run / "results.json").read_text()
    proc = _start(["profile", run, "--runs", "10000000"], tmpdir, log)

    def agents() -> list[str]:
        found = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "agent.py"], capture_output=True, text=True)
        return found.stdout.split()

    _wait_for(lambda: bool(agents()), proc, 120, "the agent to start")
    time.sleep(1.0)
    child = agents()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143, log.read_text()
    assert (run / "results.json").read_text() == results
    assert not (run / ".edgeport.lock").exists()
    assert _leftovers(tmpdir) == []
    for pid in child:  # the agent was stopped with the command
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()

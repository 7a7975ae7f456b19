"""The device agent: stdlib-only, runs an artifact in a fresh process, prints one JSON."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from edgeport.devices import agent
from edgeport.devices.local_profile import AGENT_PATH, parse_agent_output, profile_local
from edgeport.errors import DeviceError
from edgeport.recipe import ProfileSpec


def test_agent_imports_only_stdlib_at_top_level():
    tree = ast.parse(AGENT_PATH.read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
           for alias in node.names} | {node.module.split(".")[0] for node in tree.body
                                       if isinstance(node, ast.ImportFrom) and node.module}
    assert top <= set(sys.stdlib_module_names), top - set(sys.stdlib_module_names)


def test_agent_imports_nothing_of_edgeport_anywhere():
    tree = ast.parse(AGENT_PATH.read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | \
        {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not [m for m in modules if m.split(".")[0] == "edgeport"], modules


def test_agent_defaults_equal_the_profile_spec():
    """The agent keeps its own defaults (it is standalone); they must be ProfileSpec's."""
    defaults = {a.dest: a.default for a in agent.parser()._actions if a.dest in ("batch", "sequence", "runs", "warmup")}
    spec = ProfileSpec()
    assert defaults == {"batch": spec.batch, "sequence": spec.sequence, "runs": spec.runs, "warmup": spec.warmup}


def test_probe_runs_with_plain_python():
    done = subprocess.run([sys.executable, "-I", str(AGENT_PATH), "--probe"], capture_output=True, text=True,
                          check=True)
    probe = json.loads(done.stdout)
    assert probe["arch"] and probe["cores"] >= 1 and "onnxruntime" in probe["runtimes"]


@pytest.fixture(scope="module")
def fp32_artifact(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("agent") / "run"
    assert main(["export", str(tiny_models("bert")), "--target", "onnx-fp32", "--out", str(out), "--no-profile"]) == 0
    return out / "targets" / "onnx-fp32"


def test_profile_local_schema(fp32_artifact):
    result = profile_local(fp32_artifact, ProfileSpec(batch=2, sequence=16, runs=7, warmup=1, threads=1))
    lat = result.latency_ms
    assert lat.p50 <= lat.p90 <= lat.p99 and lat.mean > 0
    assert result.batch == 2 and result.sequence == 16 and result.threads == 1
    assert len(result.samples_ms) == 7 and result.peak_rss_mb > 10
    assert result.runtime["name"] == "onnxruntime" and result.device == "local"
    assert result.throughput_per_s == pytest.approx(2000 / lat.mean)


def test_agent_error_is_reported(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "nonsense", "files": [], "inputs": []}))
    with pytest.raises(DeviceError, match="unknown artifact format"):
        profile_local(tmp_path, ProfileSpec(runs=1, warmup=0))


def test_parse_agent_output_errors():
    with pytest.raises(DeviceError, match="failed: Killed"):
        parse_agent_output("", "Traceback...\nKilled", "pi")
    assert parse_agent_output('noise\n{"latency_ms": {}}\n', "", "pi") == {"latency_ms": {}}


def test_percentile_matches_numpy():
    import numpy as np

    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    for q in (50, 90, 99):
        assert agent._percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_peak_rss_is_the_childs_own(fp32_artifact):
    """A parent holding 600 MB must not inflate the child's peak RSS (ru_maxrss would)."""
    ballast = bytearray(600 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    result = profile_local(fp32_artifact, ProfileSpec(runs=2, warmup=0))
    assert result.peak_rss_mb < 500, result.peak_rss_mb
    del ballast

"""The HTML report of a real run, opened in headless Chromium with the network blocked:
it renders without console errors, every chart is there, and a screenshot is saved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import real_component_missing

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=real_component_missing("chromium is not installed (make test installs it as root)"))

OFFLINE_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at view time
    "--enable-logging=stderr", "--v=0",
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *OFFLINE_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def run_with_three_targets(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("report") / "run"
    code = main(["export", str(tiny_models("bert")), "--target", "onnx-fp32,onnx-int8,openvino-int8",
                 "--out", str(out), "--min-fidelity", "1.0", "--calib-size", "30", "--runs", "10"])
    assert code == 5  # no artifact can meet this budget: the closest is kept, the sensitivity is charted
    return out


def test_report_renders_in_chromium(run_with_three_targets, tmp_path):
    page = (run_with_three_targets / "report.html").as_uri()
    dom = _chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for element in ('id="summary"', 'id="latency-chart"', 'id="tradeoff-chart"', 'id="sensitivity-onnx-int8"'):
        assert element in dom.stdout
    results = json.loads((run_with_three_targets / "results.json").read_text())
    for name in results["targets"]:
        assert f"<td>{name}</td>" in dom.stdout
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console_errors == []

    shot = tmp_path / "report.png"
    done = _chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", page)
    assert done.returncode == 0 and shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200  # plots drew (a blank page has a handful)
    if os.environ.get("EDGEPORT_TEST_ARTIFACTS"):
        target = Path(os.environ["EDGEPORT_TEST_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target / "report.png")

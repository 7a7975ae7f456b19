"""Device pieces that need no device: native-tool parsers on synthetic samples (tests/samples/README.md), the catalog,
adb command construction and the real adb binary with no device attached."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import real_component_missing

from edgeport.devices import parsers
from edgeport.devices.catalog import Connection, load_catalog, resolve
from edgeport.targets.litert_benchmark import benchmark_model_argv, parse_benchmark_model
from edgeport.targets.trtexec import parse_trtexec
from edgeport.devices.transports.adb import AdbTransport, adb_argv, parse_devices, shell_argv, split_rc
from edgeport.errors import DeviceError, UsageError

SAMPLES = Path(__file__).parent / "samples"


def test_trtexec_summary():
    result = parse_trtexec((SAMPLES / "trtexec_orin_synthetic.txt").read_text())
    lat = result["latency_ms"]
    assert lat["p50"] == pytest.approx(1.64819) and lat["p90"] == pytest.approx(1.68311)
    assert lat["p99"] == pytest.approx(2.11475) and lat["mean"] == pytest.approx(1.66084)
    assert result["throughput_per_s"] == pytest.approx(598.713)
    assert result["gpu_compute_ms"]["median"] == pytest.approx(1.61011)
    assert result["runtime"]["version"] == "100300"
    with pytest.raises(ValueError, match="Performance summary"):
        parse_trtexec("[E] Error[4]: engine build failed")


def test_benchmark_model_output():
    result = parse_benchmark_model((SAMPLES / "benchmark_model_pixel_synthetic.txt").read_text())
    lat = result["latency_ms"]
    assert lat["mean"] == pytest.approx(9.24156) and lat["p50"] == pytest.approx(9.198)
    assert lat["p95"] == pytest.approx(9.711) and lat["std"] == pytest.approx(0.265)
    assert result["runs"] == 108 and result["load_ms"] == pytest.approx(61.204)
    assert result["peak_rss_mb"] == pytest.approx(52.3086)
    older = "INFO: count=50 first=100 curr=90 min=80 max=120 avg=95.5 std=3\n"
    assert parse_benchmark_model(older)["latency_ms"]["p50"] == pytest.approx(0.0955)


def test_tegrastats():
    lines = (SAMPLES / "tegrastats_orin_nano_synthetic.txt").read_text().splitlines()
    first = parsers.parse_tegrastats(lines[0])
    assert first["ram_used_mb"] == 3129 and first["ram_total_mb"] == 7620
    assert first["cpu_load"] == [11, 4, 6, 3] and first["gpu_load"] == 0
    assert first["power_mw"]["VDD_IN"] == 4954
    peak = parsers.peak_from_tegrastats(lines)
    assert peak["peak_ram_used_mb"] == 3470 and peak["peak_gpu_load"] == 96
    assert peak["peak_power_mw"]["VDD_CPU_GPU_CV"] == 3470


def test_catalog_has_the_devices_and_resolves_references(tmp_path, monkeypatch):
    catalog = load_catalog()
    for name in ("local", "jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-5", "x86-linux",
                 "amd-gpu-linux", "android-phone"):
        assert name in catalog
    assert catalog["jetson-orin-nano"].memory == "tegrastats"
    ref = resolve("ssh://pi@10.0.0.7:2222")
    assert (ref.user, ref.host, ref.port, ref.entry.transport) == ("pi", "10.0.0.7", 2222, "ssh")
    ref = resolve("raspberry-pi-5", Connection(host="pi@10.0.0.9"))
    assert ref.entry.name == "raspberry-pi-5" and ref.host == "10.0.0.9"
    assert resolve("adb://ABC123").serial == "ABC123"
    with pytest.raises(UsageError, match="give --host"):
        resolve("jetson-orin-nano")
    with pytest.raises(UsageError, match="unknown device 'toaster'"):
        resolve("toaster")
    user = tmp_path / "devices.yaml"
    user.write_text("- name: my-board\n  transport: ssh\n  arch: riscv64\n  python: /opt/py/bin/python3\n")
    monkeypatch.setenv("EDGEPORT_DEVICES", str(user))
    assert resolve("my-board", Connection(host="me@board")).remote_python == "/opt/py/bin/python3"


def test_adb_commands_are_argv_and_quoted():
    assert adb_argv("SER", "push", "a b.tflite", "/data/local/tmp/x") == \
        ["adb", "-s", "SER", "push", "a b.tflite", "/data/local/tmp/x"]
    argv = shell_argv(None, ["/data/local/tmp/bm", "--graph=/data/local/tmp/it's.tflite"])
    assert argv[:2] == ["adb", "shell"]
    assert argv[2].startswith("/data/local/tmp/bm '--graph=/data/local/tmp/it'\"'\"'s.tflite'")
    assert split_rc("output\n__edgeport_rc=3\n") == (3, "output\n")
    bm = benchmark_model_argv("/data/local/tmp/bm", "/data/local/tmp/m.tflite", 4, 50)
    assert "--num_threads=4" in bm and "--report_peak_memory_footprint=true" in bm


def test_parse_adb_devices():
    found = parse_devices((SAMPLES / "adb_devices_synthetic.txt").read_text())
    assert [d["serial"] for d in found] == ["37281FDJH00A4K", "emulator-5554", "R58N12ABCDE"]
    assert found[0]["model"] == "Pixel_8" and found[2]["state"] == "unauthorized"


@pytest.mark.skipif(shutil.which("adb") is None, reason=real_component_missing("adb is not installed (make test installs it as root)"))
def test_real_adb_with_no_device_attached():
    import subprocess

    transport = AdbTransport(resolve("adb://"))
    try:
        with pytest.raises(DeviceError, match="no Android device is attached"):
            transport.connect()
        with pytest.raises(DeviceError, match="no Android device 'NOPE' is attached"):
            AdbTransport(resolve("adb://NOPE")).connect()
    finally:
        subprocess.run(["adb", "kill-server"], capture_output=True, check=False)

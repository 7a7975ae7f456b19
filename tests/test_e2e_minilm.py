"""End to end on the real MiniLM (the embedded default model): the main job of the README."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_minilm_openvino_and_onnx_int8(tmp_path, run_cli):
    out = tmp_path / "minilm"
    code, stdout, stderr = run_cli("--json", "export", "minilm", "--target", "openvino-int8,onnx-int8",
                                   "--out", out, "--runs", "20")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["model"]["parameters"] > 20_000_000
    for name in ("openvino-int8", "onnx-int8"):
        entry = doc["targets"][name]
        assert entry["fidelity"]["mean_cosine"] >= 0.995, (name, entry["fidelity"])
        assert entry["fallback"]["met"] is True
        assert entry["size_mb"] < 0.5 * doc["model"]["size_mb"]  # INT8 weights, at least half the size
    # the sensitivity table, when measured, ranks the FFN output projections first
    sens = doc["targets"]["onnx-int8"]["fallback"]["sensitivity"]
    if sens:
        assert sens[0]["unit"] == "ffn_down"
    assert (out / "report.html").is_file()

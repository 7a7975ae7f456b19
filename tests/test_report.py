"""Reports: the markdown table and the self-contained HTML page with its charts."""

from __future__ import annotations

from edgeport.report.html import html_report
from edgeport.report.plots import pareto_points
from edgeport.report.table import markdown


def _document():
    prof = lambda p50: {"device": "local", "latency_ms": {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.3,
                                                          "mean": p50, "std": 0.1},
                        "samples_ms": [p50, p50 * 1.05, p50 * 0.97], "peak_rss_mb": 200.0}
    target = lambda p50, cos, size, keep: {
        "artifact": "x", "runtime": "onnxruntime", "precision": "int8", "size_mb": size,
        "latency_ms": prof(p50)["latency_ms"], "fidelity": {"mean_cosine": cos, "min_cosine": cos - 0.01,
                                                            "max_abs_error": 0.1, "samples": 10},
        "profiles": {"local": prof(p50)},
        "fallback": {"budget": {}, "met": True, "fp32_layers": keep,
                     "sensitivity": [{"unit": "ffn_down", "loss": 0.003}, {"unit": "attn_out", "loss": 0.0001}]}}
    return {"created": "now", "model": {"ref": "tiny", "task": "feature-extraction", "family": "bert",
                                        "parameters": 1000, "size_mb": 90.0, "sha256": "x"},
            "baseline": prof(20.0),
            "targets": {"a-int8": target(4.0, 0.996, 22.0, ["l1"]), "b-int8": target(8.0, 0.990, 33.0, [])},
            "environment": {"cpu": {"model": "cpu", "int8_flags": ["avx512_vnni"]}}, "warnings": ["careful"]}


def test_markdown_table():
    text = markdown(_document())
    assert "| a-int8 | local | onnxruntime | int8 | 22.0 | 4.00 |" in text
    assert "5.00" in text  # 20 ms / 4 ms speed-up over PyTorch
    assert "> warning: careful" in text


def test_html_is_self_contained_with_charts():
    page = html_report(_document())
    for chart in ('id="latency-chart"', 'id="tradeoff-chart"', 'id="sensitivity-a-int8"', 'id="summary"'):
        assert chart in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 4


def test_pareto_front():
    points = [("fast", 2.0, 0.99, 20.0), ("accurate", 5.0, 0.999, 40.0), ("dominated", 6.0, 0.98, 50.0)]
    assert pareto_points(points) == {"fast", "accurate"}


def test_fallback_layers_are_summarised_by_kind():
    doc = _document()
    doc["targets"]["a-int8"]["fallback"]["fp32_layers"] = [
        "encoder.layer.0.output.dense", "encoder.layer.1.output.dense", "encoder.layer.0.intermediate.dense"]
    page = html_report(doc)
    assert "3 layers (2× output.dense, 1× intermediate.dense)" in page
    assert "<details>" in page

"""Activation ranges from ONNX Runtime's calibrators; the TensorRT calibration cache."""

from __future__ import annotations

import pytest

from edgeport.calibration.data import builtin_texts
from edgeport.calibration.feeds import batched_feeds
from edgeport.calibration.ranges import (StaleCacheError, clip_mask_ranges, collect_ranges, read_trt_cache,
                                         trt_header, write_trt_cache)
from edgeport.model.load import model_from_path
from edgeport.exporter.onnx_export import export_onnx


@pytest.fixture(scope="module")
def tiny_onnx(tiny_models, tmp_path_factory):
    loaded = model_from_path(tiny_models("bert"))
    path = tmp_path_factory.mktemp("ranges") / "m.onnx"
    export_onnx(loaded, path)
    feeds = list(batched_feeds(loaded.tokenizer, builtin_texts("calibration").texts[:12], loaded.family.inputs, 1,
                               fixed_length=24))
    return path, feeds


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy", "distribution"])
def test_each_method_gives_finite_ranges_with_masks_clipped(tiny_onnx, method):
    path, feeds = tiny_onnx
    ranges = collect_ranges(path, feeds, method)
    assert len(ranges) > 20
    assert all(low <= high for low, high in ranges.values())
    assert min(low for low, _ in ranges.values()) > -1e3  # no mask constant dominates a range
    assert any("LayerNormalization_output" in name for name in ranges)  # inputs of Q/K/V and FFN-up


def test_percentile_is_tighter_than_minmax(tiny_onnx):
    path, feeds = tiny_onnx
    minmax, pct = collect_ranges(path, feeds, "minmax"), collect_ranges(path, feeds, "percentile", 99.0)
    name = next(n for n in minmax if "LayerNormalization_output" in n)
    assert name in pct
    assert max(abs(v) for v in pct[name]) <= max(abs(v) for v in minmax[name]) + 1e-6


def test_clip_mask_ranges():
    assert clip_mask_ranges({"add": (-10000.0, 6.0), "x": (-2.0, 3.0)}) == {"add": (-6.0, 6.0), "x": (-2.0, 3.0)}


def test_trt_cache_round_trip_and_stale_refusal(tmp_path):
    assert trt_header("10.3.0") == "TRT-100300-EntropyCalibration2"
    assert trt_header("8.6.1") == "TRT-8601-EntropyCalibration2"
    cache = tmp_path / "calib.cache"
    write_trt_cache({"input": (-1.0, 2.54), "hidden": (-12.7, 3.0)}, "10.3.0", cache)
    lines = cache.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2" and lines[1].startswith("input: ")
    scales = read_trt_cache(cache, "10.3")
    assert scales["input"] == pytest.approx(2.54 / 127) and scales["hidden"] == pytest.approx(0.1)
    with pytest.raises(StaleCacheError, match="made for TensorRT 100300, not 8601"):
        read_trt_cache(cache, "8.6.1")

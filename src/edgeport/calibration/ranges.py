"""Activation ranges of an ONNX graph on calibration feeds, and the TensorRT calibration
cache made from them.

Ranges come from ONNX Runtime's calibrators (``minmax``, ``percentile``, ``entropy``,
``distribution``). Attention-mask additive constants (about -1e4, or the dtype minimum)
would dominate any range they enter: a range whose lower end is at or below
``MASK_FLOOR`` is clipped to the symmetric range of its upper end, since after Softmax
such logits are zero either way.

TensorRT's calibration cache (text): a header ``TRT-<version>-<Calibrator>`` and one line per
tensor, ``name: <big-endian float32 scale in hex>`` with scale = amax / 127. A cache is tied
to the TensorRT version in its header; :func:`read_trt_cache` refuses one made for another.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from edgeport.errors import InputError

MASK_FLOOR = -1e3
METHODS = ("minmax", "percentile", "entropy", "distribution")


class StaleCacheError(InputError):
    pass


def clip_mask_ranges(ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    clipped = {}
    for name, (low, high) in ranges.items():
        if low <= MASK_FLOOR:
            low = -max(abs(high), 1e-3)
        clipped[name] = (float(low), float(high))
    return clipped


def collect_ranges(onnx_path: Path, feeds: Iterable[dict[str, np.ndarray]], method: str = "minmax",
                   percentile: float = 99.999, op_types: tuple[str, ...] = ("MatMul", "Gemm")
                   ) -> dict[str, tuple[float, float]]:
    """Range (low, high) of the activations that ``op_types`` read and write (those that
    quantized MatMuls need), over the feeds, mask-clipped. Calibrating every tensor would
    feed the mask's -inf / dtype-min values to the histogram methods, which fail on them."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    if method not in METHODS:
        raise ValueError(f"unknown calibration method '{method}' (use one of {', '.join(METHODS)})")
    kinds = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy, "distribution": CalibrationMethod.Distribution}
    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(
            str(onnx_path), op_types_to_calibrate=list(op_types), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=kinds[method], extra_options={"percentile": percentile, "symmetric": method != "minmax"})
        reader = iter(list(feeds))

        class Reader:
            def get_next(self):
                return next(reader, None)

        calibrator.collect_data(Reader())
        data = calibrator.compute_data()
    ranges = {}
    for name, tensor in data.data.items():
        low, high = (np.asarray(v).item() for v in tensor.range_value)
        ranges[name] = (low, high)
    return clip_mask_ranges(ranges)


def trt_header(trt_version: str, calibrator: str = "EntropyCalibration2") -> str:
    """`10.3.0` -> `TRT-100300-EntropyCalibration2` (TensorRT's own version encoding)."""
    parts = [int(p) for p in (trt_version.split(".") + ["0", "0"])[:3]]
    code = parts[0] * 10000 + parts[1] * 100 + parts[2] if parts[0] >= 10 else parts[0] * 1000 + parts[1] * 100 + parts[2]
    return f"TRT-{code}-{calibrator}"


def write_trt_cache(ranges: dict[str, tuple[float, float]], trt_version: str, path: Path) -> None:
    lines = [trt_header(trt_version)]
    for name, (low, high) in ranges.items():
        scale = max(abs(low), abs(high)) / 127.0
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_trt_cache(path: Path, trt_version: str) -> dict[str, float]:
    """Scales by tensor; a cache made for another TensorRT version is refused, never used stale."""
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise InputError(f"'{path}' is not a TensorRT calibration cache")
    made_for = lines[0].split("-")[1]
    wanted = trt_header(trt_version).split("-")[1]
    if made_for != wanted:
        raise StaleCacheError(f"'{path}' was made for TensorRT {made_for}, not {wanted}",
                              hint="calibrate again for the TensorRT version on the device")
    scales = {}
    for line in lines[1:]:
        name, _, value = line.rpartition(": ")
        scales[name] = struct.unpack(">f", bytes.fromhex(value))[0]
    return scales

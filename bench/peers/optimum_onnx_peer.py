#!/usr/bin/env python3
"""Peer: optimum-onnx, as a user would run it (inside its own venv, bench/setup_peers.sh).
ONNX Runtime export and its dynamic INT8 quantizer (ORTQuantizer with the avx512_vnni
per-channel config). Writes OUT/peer.json."""

import argparse
import json
import time
from pathlib import Path

from optimum.onnxruntime import (ORTModelForFeatureExtraction, ORTModelForSequenceClassification, ORTQuantizer)
from optimum.onnxruntime.configuration import AutoQuantizationConfig

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--task", required=True)
parser.add_argument("--calib", required=True)  # unused: dynamic quantization needs no calibration
parser.add_argument("--out", required=True)
args = parser.parse_args()
out = Path(args.out)
cls = ORTModelForSequenceClassification if args.task == "text-classification" else ORTModelForFeatureExtraction

started = time.perf_counter()
model = cls.from_pretrained(args.model, export=True)
model.save_pretrained(out / "fp32")
artifacts = [{"name": "optimum-onnx fp32", "format": "onnx", "file": "fp32/model.onnx",
              "build_seconds": time.perf_counter() - started, "precision": "fp32"}]
started = time.perf_counter()
quantizer = ORTQuantizer.from_pretrained(model)
config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
quantizer.quantize(save_dir=out / "int8", quantization_config=config)
artifacts.append({"name": "optimum-onnx dynamic int8", "format": "onnx", "file": "int8/model_quantized.onnx",
                  "build_seconds": time.perf_counter() - started, "precision": "int8"})
(out / "peer.json").write_text(json.dumps({"peer": "optimum-onnx", "artifacts": artifacts}, indent=2))

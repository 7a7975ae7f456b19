#!/usr/bin/env python3
"""Peer: optimum-intel, as a user would run it (inside its own venv, bench/setup_peers.sh).
OpenVINO export (fp32 IR) and its static INT8 quantizer (OVQuantizer + OVQuantizationConfig,
NNCF underneath), calibrated on the same texts as edgeport. Writes OUT/peer.json."""

import argparse
import json
import time
from pathlib import Path

import nncf
from optimum.intel import (OVConfig, OVModelForFeatureExtraction, OVModelForSequenceClassification, OVQuantizationConfig,
                           OVQuantizer)
from transformers import AutoTokenizer

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--task", required=True)
parser.add_argument("--calib", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
out = Path(args.out)
cls = OVModelForSequenceClassification if args.task == "text-classification" else OVModelForFeatureExtraction
tokenizer = AutoTokenizer.from_pretrained(args.model)
texts = [line.strip() for line in open(args.calib) if line.strip()]
artifacts = []

started = time.perf_counter()
model = cls.from_pretrained(args.model, export=True, compile=False)
model.save_pretrained(out / "fp32")
artifacts.append({"name": "optimum-intel fp32 IR", "format": "openvino", "file": "fp32/openvino_model.xml",
                  "build_seconds": time.perf_counter() - started, "precision": "fp32"})

started = time.perf_counter()
samples = [dict(tokenizer(t, return_tensors="np")) for t in texts]
quantizer = OVQuantizer.from_pretrained(cls.from_pretrained(args.model, export=True, compile=False))
quantizer.quantize(calibration_dataset=nncf.Dataset(samples), save_directory=out / "int8",
                   ov_config=OVConfig(quantization_config=OVQuantizationConfig(num_samples=len(samples))))
artifacts.append({"name": "optimum-intel static int8", "format": "openvino", "file": "int8/openvino_model.xml",
                  "build_seconds": time.perf_counter() - started, "precision": "int8"})
(out / "peer.json").write_text(json.dumps({"peer": "optimum-intel", "artifacts": artifacts}, indent=2))

#!/usr/bin/env python3
"""A peer serving real requests as its documentation shows (run with the peer venv's Python):
the model class's from_pretrained, the Hugging Face tokenizer, the model call, mean pooling and
L2 normalisation of the token states (sentence-transformers' recipe, as optimum's feature-
extraction examples do). Timed with the device agent's loop (agent.py is stdlib-only and is
loaded by path), so every serving process is timed the same way. Prints one JSON line.

    python serve_peer.py --peer optimum-intel --folder OUT/int8 --model MODEL_DIR --texts FILE --batch 1
    python serve_peer.py ... --sequence 128      # the synthetic 1 x 128 batch instead
"""

import argparse
import importlib.util
import json
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--peer", required=True, choices=["optimum-intel", "optimum-onnx"])
parser.add_argument("--folder", required=True)
parser.add_argument("--file-name")
parser.add_argument("--model", required=True)
parser.add_argument("--texts", required=True)
parser.add_argument("--batch", type=int, default=1)
parser.add_argument("--passes", type=int, default=1)
parser.add_argument("--warmup", type=int, default=20)
parser.add_argument("--sequence", type=int, default=0, help="pad every request to this length (synthetic)")
parser.add_argument("--agent", required=True)
parser.add_argument("--dump", help="write the embeddings of every text (.npy) instead of timing")
args = parser.parse_args()

spec = importlib.util.spec_from_file_location("edgeport_agent", args.agent)
agent = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agent)
rss_before = agent._rss_mb()

import numpy as np  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

if args.peer == "optimum-intel":
    from optimum.intel import OVModelForFeatureExtraction as Model
else:
    from optimum.onnxruntime import ORTModelForFeatureExtraction as Model

kwargs = {"file_name": args.file_name} if args.file_name else {}
model = Model.from_pretrained(args.folder, **kwargs)
tokenizer = AutoTokenizer.from_pretrained(args.model)


def predict(texts):
    if args.sequence:
        inputs = tokenizer(texts, padding="max_length", truncation=True, max_length=args.sequence, return_tensors="np")
    else:
        inputs = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    hidden = np.asarray(model(**inputs).last_hidden_state)
    mask = inputs["attention_mask"][..., None].astype(hidden.dtype)
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


texts = [line.rstrip("\n") for line in open(args.texts, encoding="utf-8") if line.strip()]
if args.dump:
    np.save(args.dump, np.concatenate([predict(texts[i:i + 16]) for i in range(0, len(texts), 16)]))
    sys.exit(0)
requests = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
predict(requests[0])
times, wall = agent.time_requests(predict, requests, args.passes, args.warmup)
print(json.dumps({"latency_ms": agent.latency_summary(times), "throughput_per_s": len(texts) * args.passes / wall,
                  "peak_rss_mb": agent._rss_mb(), "rss_before_load_mb": rss_before, "batch": args.batch,
                  "runs": len(times), "runtime": {"name": args.peer}}))
sys.exit(0)

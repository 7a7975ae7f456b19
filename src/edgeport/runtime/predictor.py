"""A predictor over one artifact folder: texts in, embeddings or labels out.

Texts are tokenized (the artifact's ``tokenizer.json``), sorted by length and cut into
micro-batches, so that a batch pads to its own longest row rather than to the longest of the
whole call; each micro-batch is padded to the length the backend runs (itself, or the
smallest compiled bucket that holds it) and results are put back in the callers' order.
Pooling and L2 normalisation of embeddings are in the graph.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .backends import ArtifactError, open_backend
from .text import TextEncoder

MANIFEST = "manifest.json"
DEFAULT_BATCH = 8


def read_manifest(folder: str) -> dict:
    """``manifest.json`` of an artifact folder as plain JSON (no pydantic at serving time)."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise ArtifactError(f"{folder} is not an edgeport artifact folder: no {MANIFEST}")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def requested_provider(manifest: dict) -> str | None:
    """The GPU execution provider an ONNX artifact was built for (amd-fp16: MIGraphX,
    tensorrt-int8: TensorRT), which this runtime does not serve: it runs ONNX on the CPU
    provider. None for every other artifact."""
    wanted = (manifest.get("runtime_config") or {}).get("execution_provider")
    if manifest.get("format") == "onnx" and wanted and wanted != "CPUExecutionProvider":
        return wanted
    return None


class Predictor:
    """``embed(texts)`` -> float32 [n, hidden]; ``classify(texts)`` -> [{label, score}];
    ``logits(texts)`` -> float32 [n, labels]. ``warnings``: what a caller must tell its user
    (an artifact built for a GPU provider served on the CPU)."""

    def __init__(self, folder: str, manifest: dict, backend, encoder: TextEncoder, batch_size: int = DEFAULT_BATCH):
        self.folder, self.manifest, self.backend, self.encoder = folder, manifest, backend, encoder
        self.task = manifest.get("task") or "feature-extraction"
        self.batch_size = backend.batch or batch_size
        self.id2label = {int(k): v for k, v in (manifest.get("id2label") or {}).items()}
        self.requested_provider = requested_provider(manifest)
        self.warnings = [] if self.requested_provider is None else [
            "the artifact asks for %s; edgeport.runtime serves ONNX on the CPU provider, so these results are "
            "the CPU's (host-side), not the device's" % self.requested_provider]

    def run(self, texts) -> np.ndarray:
        """The graph's output for each text (or ``(text, text_pair)`` tuple), in order."""
        texts = [texts] if isinstance(texts, (str, tuple)) else list(texts)
        if not texts:
            raise ValueError("no texts given")
        rows = self.encoder.encode(texts)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
        out = None
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            group = [rows[i] for i in chunk]
            length = self.backend.length_for(max(len(r.ids) for r in group))
            result = self.backend.run(self.encoder.pack(group, length, self.backend.batch))[:len(group)]
            if out is None:
                out = np.empty((len(rows),) + result.shape[1:], dtype=result.dtype)
            out[chunk] = result
        return out

    def embed(self, texts) -> np.ndarray:
        if self.task != "feature-extraction":
            raise ArtifactError(f"this artifact is a {self.task} model; use classify()")
        return self.run(texts)

    def logits(self, texts) -> np.ndarray:
        if self.task != "text-classification":
            raise ArtifactError(f"this artifact is a {self.task} model; use embed()")
        return self.run(texts)

    def classify(self, texts) -> list[dict]:
        logits = self.logits(texts).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        return [{"label": self.id2label.get(int(k), str(int(k))), "score": float(p[k])} for k, p in zip(best, probs)]

    def info(self) -> dict:
        runtime = self.backend.info()
        if self.requested_provider is not None:
            runtime = {**runtime, "execution_provider": "CPUExecutionProvider",
                       "requested_provider": self.requested_provider}
        return {"target": self.manifest.get("target"), "task": self.task, "batch_size": self.batch_size,
                "max_length": self.encoder.max_length, "buckets": list(self.backend.buckets or []) or None,
                "runtime": runtime}


def load(folder, threads: int | None = None, batch_size: int = DEFAULT_BATCH, settings: dict | None = None
         ) -> Predictor:
    """A predictor for an edgeport artifact folder (RUN_DIR/targets/<target>). ``threads``:
    the runtime's thread count [all cores]; ``batch_size``: texts per micro-batch (a static-
    batch artifact uses its own); ``settings``: override the manifest's request-path settings
    of the runtime (see ``backends.SETTINGS``)."""
    folder = os.fspath(folder)
    manifest = read_manifest(folder)
    request = manifest.get("request_path")
    if not request or not request.get("tokenizer"):
        raise ArtifactError(f"{folder} carries no tokenizer for serving (built before edgeport.runtime existed?)",)
    tokenizer = os.path.join(folder, request["tokenizer"])
    if not os.path.isfile(tokenizer):
        raise ArtifactError(f"{tokenizer} is missing")
    backend = open_backend(folder, manifest, threads, settings)
    encoder = TextEncoder(tokenizer, backend.input_names, request["max_length"], request["pad_id"])
    return Predictor(folder, manifest, backend, encoder, batch_size)

"""edgeport.runtime: serve a built artifact in an application — texts in, embeddings or labels out.

    import edgeport.runtime as r
    predictor = r.load("runs/minilm/targets/onnx-int8")
    predictor.embed(["hello", "a longer sentence"])          # float32 [2, 384]
    r.load("runs/sst2/targets/openvino-int8").classify(["great film"])  # [{"label": ..., "score": ...}]

Needs only numpy, the `tokenizers` library and the artifact's runtime (onnxruntime, openvino or
ai-edge-litert): no torch, transformers or pydantic. The artifact folder carries its tokenizer
(``tokenizer.json``) and its ``manifest.json`` says how to serve it (``request_path``: the
tokenizer's truncation and pad id, dynamic shapes or the compiled sequence buckets, the
runtime's settings).

Design decision (one code path for users, the device agent and verification): this package is
self-contained — relative imports only, nothing else of edgeport — so that

- the target runners that verification uses (``targets/*``) wrap the same backends
  (``backends.py``): what is verified is the runtime call users make;
- the device agent (``devices/agent.py``, which must stay one stdlib-only file) times real
  requests with ``--texts FILE`` by loading this very package by path — from a copy beside it
  (``edgeport_runtime/``; devices/remote_profile.py does not push one yet) or, locally, from
  the installed edgeport — instead of a second implementation of tokenization, batching and
  bucket routing;
- it imports in an environment where edgeport was installed without its build extras.

Modules: ``text`` (tokenizer.json -> padded feeds), ``backends`` (one per runtime),
``predictor`` (micro-batching, routing, embed/classify, ``load``).
"""

from .backends import SETTINGS, ArtifactError, RuntimeMissingError
from .predictor import Predictor, load, read_manifest
from .text import read_texts

__all__ = ["ArtifactError", "Predictor", "RuntimeMissingError", "SETTINGS", "load", "read_manifest", "read_texts"]

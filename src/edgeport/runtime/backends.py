"""One small backend per runtime: open an artifact folder, run int64 feeds, return the graph's
one output (embeddings pooled and normalised in the graph, or logits).

Standalone: stdlib + numpy + the artifact's runtime (imported when a backend opens), nothing of
edgeport outside this package — the device agent loads this package by path, and the target
runners that verification uses wrap these same backends.

Every backend has ``input_names``, ``batch`` (the graph's static batch, or None), ``buckets``
(the sequence lengths it was compiled for, ascending, or None for dynamic shapes),
``length_for(n)`` (the sequence length a row of n tokens runs at), ``run(feeds)`` and
``info()``. ``SETTINGS`` are each runtime's request-path settings (recorded in every
artifact's manifest as ``request_path.runtime``, overridable at ``load``); the figures behind
each default are in bench/results/request_path.md.
"""

from __future__ import annotations

import os

import numpy as np

# Defaults, each measured (MiniLM; bench/results/request_path.md, and the notes here):
SETTINGS = {
    "onnxruntime": {
        # session.run with a feed dict. I/O binding (bind_cpu_input, output bound to the CPU)
        # measured no faster: MiniLM fp32, 1 x 25 tokens, six alternating rounds, medians equal
        # within noise — the inputs are a few hundred bytes, copying them is not the cost.
        "io_binding": False,
    },
    "openvino": {
        "performance_hint": "LATENCY",
        # inputs wrapped as tensors over the numpy buffers, no copy (equal within noise to
        # copying at 1 x 25; kept, it never costs more)
        "share_inputs": True,
        # the CPU plugin's cache of kernels prepared per input shape (None: the plugin's
        # default); 0 turns it off — a dynamic-shape model then re-prepares for every shape
        "runtime_cache_capacity": None,
        # a folder for OpenVINO's compiled-model cache (None: compile on every load). A later
        # load imports the compiled model instead of compiling it: MiniLM INT8's load and first
        # request took 512 ms instead of 957, peak RSS 173 MB instead of 182 (request_path.md);
        # the first load writes it.
        "cache_dir": None,
    },
    # LiteRT: the interpreter's signature runners; the buckets are compiled in (LiteRtOptions).
    # "longest_only": serve every request with the longest signature (the 1 x 128 of old)
    "litert": {"longest_only": False},
}
# Dynamic shapes for OpenVINO, not compile-time buckets: the INT8 IR reshaped to 1 x 32 ran a
# 25-token request (padded to 32) no faster than the dynamic IR at 25 (alternating, same process).


class ArtifactError(Exception):
    """The artifact folder cannot be served: a missing file, an unknown format, a runtime
    that is not installed, an input the artifact cannot take."""


class _Backend:
    input_names: tuple = ()
    batch: int | None = None
    buckets: tuple | None = None

    def length_for(self, tokens: int) -> int:
        """The sequence length a row of ``tokens`` tokens runs at: itself with dynamic shapes,
        the smallest bucket that holds it otherwise."""
        if not self.buckets:
            return tokens
        for bucket in self.buckets:
            if bucket >= tokens:
                return bucket
        raise ArtifactError(f"a row of {tokens} tokens is longer than this artifact's longest shape "
                            f"({self.buckets[-1]})")

    def info(self) -> dict:
        return {}


class OnnxRuntimeBackend(_Backend):
    def __init__(self, model_path: str, threads: int | None = None, settings: dict | None = None):
        import onnxruntime as ort

        settings = {**SETTINGS["onnxruntime"], **(settings or {})}
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_name = self.session.get_outputs()[0].name
        self.io_binding = bool(settings["io_binding"])
        self.version = ort.__version__

    def run(self, feeds: dict) -> np.ndarray:
        if self.io_binding:
            binding = self.session.io_binding()
            for name in self.input_names:
                binding.bind_cpu_input(name, feeds[name])
            binding.bind_output(self.output_name, "cpu")
            self.session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        return self.session.run([self.output_name], {n: feeds[n] for n in self.input_names})[0]

    def info(self) -> dict:
        return {"name": "onnxruntime", "version": self.version, "io_binding": self.io_binding}


class OpenVinoBackend(_Backend):
    def __init__(self, xml_path: str, threads: int | None = None, config: dict | None = None,
                 settings: dict | None = None):
        import openvino as ov

        settings = {**SETTINGS["openvino"], **(settings or {})}
        config = dict(config or {})  # the manifest's runtime_config (inference precision, ...)
        if settings.get("performance_hint"):
            config.setdefault("PERFORMANCE_HINT", settings["performance_hint"])
        if settings.get("runtime_cache_capacity") is not None:
            config["CPU_RUNTIME_CACHE_CAPACITY"] = int(settings["runtime_cache_capacity"])
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.cache_dir = settings.get("cache_dir")
        if self.cache_dir:
            core.set_property({"CACHE_DIR": os.path.expanduser(str(self.cache_dir))})
        self.compiled = core.compile_model(xml_path, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(port.get_any_name() for port in self.compiled.inputs)
        self.share_inputs = bool(settings["share_inputs"])
        self.version = ov.__version__
        shape = self.compiled.inputs[0].get_partial_shape()
        if shape.is_static:  # an IR reshaped to one shape at build time
            self.batch, self.buckets = shape[0].get_length(), (shape[1].get_length(),)

    def run(self, feeds: dict) -> np.ndarray:
        self.request.infer({n: feeds[n] for n in self.input_names}, share_inputs=self.share_inputs)
        return self.request.get_output_tensor(0).data.copy()

    def run_all(self, feeds: dict) -> list:
        """Every output, in the model's order (question answering has two)."""
        self.request.infer({n: feeds[n] for n in self.input_names}, share_inputs=self.share_inputs)
        return [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]

    def info(self) -> dict:
        return {"name": "openvino", "version": self.version, "share_inputs": self.share_inputs,
                "cache_dir": self.cache_dir, "loaded_from_cache": bool(self.compiled.get_property("LOADED_FROM_CACHE")),
                "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
                "inference_precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}


class LiteRtBackend(_Backend):
    """A TFLite flatbuffer with one signature per sequence bucket (all of one static batch):
    a row runs in the smallest bucket that holds it; a group of rows is cut into the static
    batch (the last group filled with copies of its first row, dropped after)."""

    def __init__(self, model_path: str, threads: int | None = None, settings: dict | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
            self.runtime_name = "ai_edge_litert"
        except ImportError:
            from tflite_runtime.interpreter import Interpreter
            self.runtime_name = "tflite_runtime"
        # LiteRT's default is one thread; ONNX Runtime and OpenVINO default to all cores: match them
        self.interpreter = Interpreter(model_path=model_path, num_threads=threads or os.cpu_count())
        self.runners, batches = {}, set()
        for key in self.interpreter.get_signature_list():
            runner = self.interpreter.get_signature_runner(key)
            details = runner.get_input_details()
            shape = tuple(int(d) for d in next(iter(details.values()))["shape"])
            self.runners[shape[1]] = (runner, {name: d["dtype"] for name, d in details.items()})
            batches.add(shape[0])
            self.input_names = tuple(details)
        if len(batches) != 1:
            raise ArtifactError(f"the signatures of {model_path} differ in batch size: {sorted(batches)}")
        self.batch = batches.pop()
        self.buckets = tuple(sorted(self.runners))
        if {**SETTINGS["litert"], **(settings or {})}["longest_only"]:
            self.buckets = self.buckets[-1:]

    def run(self, feeds: dict) -> np.ndarray:
        return self.run_all(feeds)[0]

    def run_all(self, feeds: dict) -> list:
        """Every output of the signature, in the model's order (output_0, output_1, ...)."""
        rows, length = feeds["input_ids"].shape
        bucket = self.length_for(length)
        parts: list = []
        for start in range(0, rows, self.batch):
            part = {name: feeds[name][start:start + self.batch] for name in self.input_names}
            n = part["input_ids"].shape[0]
            if n < self.batch or length < bucket:
                part = {name: _pad(value, self.batch, bucket) for name, value in part.items()}
            runner, dtypes = self.runners[bucket]
            result = runner(**{name: part[name].astype(dtypes[name], copy=False) for name in self.input_names})
            parts.append([result[key][:n] for key in sorted(result, key=_output_index)])
        return [np.concatenate(column, axis=0) for column in zip(*parts)]

    def info(self) -> dict:
        return {"name": self.runtime_name, "buckets": list(self.buckets), "batch": self.batch}


class RuntimeMissingError(ArtifactError):
    """The artifact's runtime is not installed here."""


def _pad(value: np.ndarray, rows: int, length: int) -> np.ndarray:
    """Rows beyond the given ones repeat the first row; columns beyond are zeros (attention
    mask 0: the graph ignores them)."""
    out = np.zeros((rows, length), dtype=value.dtype)
    out[:value.shape[0], :value.shape[1]] = value
    out[value.shape[0]:, :value.shape[1]] = value[0]
    return out


def open_backend(folder: str, manifest: dict, threads: int | None = None, settings: dict | None = None):
    """The backend for an artifact folder, by its manifest's ``format``."""
    fmt = manifest.get("format")
    files = manifest.get("files") or []
    if not files:
        raise ArtifactError(f"{folder}/manifest.json lists no files")
    path = os.path.join(folder, files[0])
    if not os.path.isfile(path):
        raise ArtifactError(f"{path} is missing")
    recorded = (manifest.get("request_path") or {}).get("runtime") or {}
    settings = {**recorded, **(settings or {})}
    try:
        if fmt == "onnx":
            return OnnxRuntimeBackend(path, threads, settings)
        if fmt == "openvino":
            return OpenVinoBackend(path, threads, manifest.get("runtime_config"), settings)
        if fmt == "tflite":
            return LiteRtBackend(path, threads, settings)
    except ImportError as exc:
        raise RuntimeMissingError(f"the runtime for {fmt} artifacts is not installed: {exc}") from exc
    raise ArtifactError(f"edgeport.runtime serves onnx, openvino and tflite artifacts, not {fmt!r}")


def _output_index(name: str) -> int:
    """litert-torch names a module's outputs output_0, output_1, ... in the order returned."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0

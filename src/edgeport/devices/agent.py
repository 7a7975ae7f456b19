#!/usr/bin/env python3
"""edgeport device agent: profiles one artifact and prints one JSON document.

Stdlib-only: it imports nothing of edgeport, and of third-party packages only the runtime
that the artifact needs (onnxruntime, openvino, ai_edge_litert or tflite_runtime) and
numpy, which each of those runtimes depends on. edgeport copies this file to the device
(checking its sha256) and runs it there with the device's own Python; locally it runs in a
fresh child process, so peak RSS counts that artifact alone.

    python3 agent.py --artifact DIR [--batch 1 --sequence 128 --runs 100 --warmup 10 --threads N]
    python3 agent.py --artifact DIR --texts FILE [--batch 1 --runs 2 --warmup 10]  # real requests
    python3 agent.py --artifact DIR --verify FILE [--batch 16]  # outputs on given inputs -> FILE.outputs.npy
    python3 agent.py --probe        # what this device has: OS, arch, CPU, memory, runtimes

An ONNX artifact whose manifest's ``runtime_config`` names a GPU execution provider
(``execution_provider``: MIGraphXExecutionProvider, CUDAExecutionProvider,
TensorrtExecutionProvider; ``provider_options``; ``session_config``) runs on that provider or
not at all: the CPU fallback is disabled and the session's first provider asserted, with a
plain message when the provider's libraries are missing; ``--allow-cpu-fallback`` profiles
on the CPU instead and the result says ``cpu_fallback: true``.

The artifact folder holds ``manifest.json`` with ``format`` (onnx | openvino | tflite |
pytorch), ``files`` and ``inputs`` (names); the schema of the output is ``AGENT_SCHEMA``.

``--texts FILE`` times real requests instead of a synthetic batch: each request is ``--batch``
lines of FILE, served end to end (tokenization, micro-batching, bucket routing, the runtime
call) by ``edgeport.runtime`` — the very package users import, loaded here by path (a copy
pushed beside this file as ``edgeport_runtime/``, else the installed edgeport's ``runtime/``),
so this file stays stdlib-only and there is one implementation of the request path.
``--runs`` is then the number of passes over the file.

``--verify FILE`` runs given inputs through the artifact with ``edgeport.runtime`` (``load``,
then ``Predictor.run``: the code path users run) and saves the outputs, float32, in order, as
``FILE`` with its suffix replaced by ``.outputs.npy``; the JSON result names that file with its
shape and sha256 (no outputs on stdout). FILE is JSON lines, one input each: a text (a JSON
string), or ``{"text": ..., "text_pair": ...}`` (pair models), optionally with ``"group"``.
Consecutive rows of one group are run ``--batch`` at a time in file order, each call one
micro-batch padded to its longest row: the batching of edgeport's host-side check, so that the
same runtime on the same inputs gives the same outputs there and here.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

# Run as a script, this file's folder heads sys.path: keep it from shadowing other modules.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

AGENT_SCHEMA = 1
RUNTIME_MODULES = ("onnxruntime", "openvino", "ai_edge_litert", "tflite_runtime", "tensorrt", "torch")


def _rss_mb():
    """Peak RSS of this process so far, in MB.

    On Linux, VmHWM of /proc/self/status: it starts afresh with this program's image, while
    ru_maxrss keeps the high-water mark of the parent that forked us (across execve)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _module_version(name):
    try:
        from importlib import metadata
        for dist in (name, name.replace("_", "-")):
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    except ImportError:
        pass
    return None


def _installed(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def probe():
    mem_total = None
    if os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) / 1024
    cpu, flags = platform.processor(), []
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "Model")) and not cpu:
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith(("flags", "Features")) and not flags:
                    flags = line.split(":", 1)[1].split()
    return {
        "schema": AGENT_SCHEMA,
        "os": platform.system(), "release": platform.release(), "arch": platform.machine(),
        "python": platform.python_version(), "cpu": cpu, "cores": os.cpu_count(),
        "int8_flags": sorted(f for f in flags if f in ("avx2", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                                       "amx_int8", "amx_bf16", "asimddp", "i8mm")),
        "memory_mb": mem_total,
        "runtimes": {m: _module_version(m) for m in RUNTIME_MODULES if _installed(m)},
        "onnxruntime_package": next((d for d in ("onnxruntime-migraphx", "onnxruntime-gpu", "onnxruntime")
                                     if _module_version(d)), None) if _installed("onnxruntime") else None,
    }


def _inputs(manifest, batch, sequence):
    import numpy as np
    vocab = int(manifest.get("vocab_size") or 1000)
    rng = np.random.default_rng(0)
    feeds = {}
    for name in manifest["inputs"]:
        if name == "input_ids":
            feeds[name] = rng.integers(100, max(101, min(vocab, 30000)), size=(batch, sequence), dtype=np.int64)
        elif name == "attention_mask":
            feeds[name] = np.ones((batch, sequence), dtype=np.int64)
        else:
            feeds[name] = np.zeros((batch, sequence), dtype=np.int64)
    return feeds


# GPU execution providers the agent refuses to see replaced by the CPU, and what to install
GPU_PROVIDERS = {
    "MIGraphXExecutionProvider": "MIGraphX libraries not found on this device: install ROCm 7.x / onnxruntime-migraphx",
    "CUDAExecutionProvider": "CUDA libraries not found on this device: install CUDA 12 + cuDNN 9 / onnxruntime-gpu",
    "TensorrtExecutionProvider": "TensorRT libraries not found on this device: install TensorRT 10 / onnxruntime-gpu",
    "ROCMExecutionProvider": "the ROCm provider is gone from ONNX Runtime 1.23 on: use MIGraphX (onnxruntime-migraphx)",
}


class ProviderRefused(Exception):
    """The execution provider the artifact asks for cannot run here (and no fallback allowed)."""


def _load_onnx(folder, manifest, threads, allow_cpu_fallback=False):
    """ONNX Runtime; an artifact whose runtime_config names a GPU execution provider gets that
    provider or nothing: CPU fallback is disabled in the session, and the session's first
    provider is asserted (ONNX Runtime otherwise falls back to the CPU with a log line only).
    ``allow_cpu_fallback`` lets the session fall back and the result say so."""
    import onnxruntime as ort
    config = manifest.get("runtime_config") or {}
    wanted = config.get("execution_provider") or "CPUExecutionProvider"
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    path = os.path.join(folder, manifest["files"][0])
    info = {"name": "onnxruntime", "version": ort.__version__, "requested_provider": wanted}
    if wanted == "CPUExecutionProvider":
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    else:
        plain = GPU_PROVIDERS.get(wanted, "%s is not usable on this device" % wanted)
        for key, value in (config.get("session_config") or {}).items():
            if not (allow_cpu_fallback and key == "session.disable_cpu_ep_fallback"):
                options.add_session_config_entry(key, str(value))
        if not allow_cpu_fallback:
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        providers = [(wanted, dict(config.get("provider_options") or {}))]
        if allow_cpu_fallback:
            providers.append("CPUExecutionProvider")
        available = ort.get_available_providers()
        if wanted not in available and not allow_cpu_fallback:
            raise ProviderRefused("%s (this onnxruntime %s has only %s)" % (plain, ort.__version__, ", ".join(available)))
        try:
            session = ort.InferenceSession(path, options, providers=providers)
        except Exception as exc:  # ONNX Runtime's own words are misleading ("conflicting session configuration")
            raise ProviderRefused("%s (onnxruntime %s: %s)" % (plain, ort.__version__,
                                                               str(exc).strip().splitlines()[-1][:300]))
        actual = session.get_providers()
        info["providers"] = actual
        if actual[0] != wanted:
            if not allow_cpu_fallback:
                raise ProviderRefused("%s (the session runs on %s)" % (plain, actual[0]))
            info["cpu_fallback"] = True
            info["fallback_reason"] = plain
        else:
            info["cpu_fallback"] = False
    info["execution_provider"] = session.get_providers()[0]
    return (lambda feeds: session.run(None, feeds)), info


def _load_openvino(folder, manifest, threads):
    import openvino as ov
    config = dict(manifest.get("runtime_config") or {})
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(os.path.join(folder, manifest["files"][0]), "CPU", config)
    request = compiled.create_infer_request()
    info = {"name": "openvino", "version": ov.__version__,
            "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}
    return (lambda feeds: request.infer(feeds)), info


def _load_tflite(folder, manifest, threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
        name = "ai_edge_litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
        name = "tflite_runtime"
    # LiteRT's default is one thread; ONNX Runtime and OpenVINO default to all cores: match them
    interpreter = Interpreter(model_path=os.path.join(folder, manifest["files"][0]),
                              num_threads=threads or os.cpu_count())
    # one signature per sequence bucket: the synthetic batch runs the longest (serving_default)
    signatures = interpreter.get_signature_list()
    runner = interpreter.get_signature_runner("serving_default" if len(signatures) > 1 else None)
    import numpy as np
    dtypes = {k: v["dtype"] for k, v in runner.get_input_details().items()}
    return (lambda feeds: runner(**{k: v.astype(dtypes.get(k, np.int64)) for k, v in feeds.items()})), \
        {"name": name, "version": _module_version(name)}


def _load_pytorch(folder, manifest, threads):
    import torch
    if threads:
        torch.set_num_threads(threads)
    programs = [f for f in manifest.get("files", []) if f.endswith(".pt2")]
    if programs:  # a compressed model travels as an exported program (its modules are not transformers')
        model = torch.export.load(os.path.join(folder, programs[0])).module()
    else:
        from transformers import AutoModel, AutoModelForSequenceClassification
        auto = AutoModelForSequenceClassification if manifest.get("task") == "text-classification" else AutoModel
        model = auto.from_pretrained(folder).eval()

    def run(feeds):
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return run, {"name": "torch", "version": torch.__version__}


LOADERS = {"onnx": _load_onnx, "openvino": _load_openvino, "tflite": _load_tflite, "pytorch": _load_pytorch}


def _percentile(values, q):
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Abandoned(Exception):
    """Whoever started the agent is gone (a dropped SSH session), or time ran out."""


class Watchdog:
    """Stops a run when the agent's parent changes (the session that started it died, e.g.
    a dropped SSH connection) or when the time budget is spent, so that no agent is left
    running on a device."""

    def __init__(self, max_seconds):
        self.parent = os.getppid()
        self.deadline = time.monotonic() + max_seconds

    def check(self):
        if os.getppid() != self.parent:
            raise Abandoned("the session that started the agent is gone")
        if time.monotonic() > self.deadline:
            raise Abandoned("the agent's time budget ran out")


def profile(folder, batch, sequence, runs, warmup, threads, max_seconds=3600, allow_cpu_fallback=False):
    with open(os.path.join(folder, "manifest.json")) as fh:
        manifest = json.load(fh)
    fmt = manifest.get("format")
    if fmt not in LOADERS:
        raise SystemExit(json.dumps({"error": "unknown artifact format %r" % fmt}))
    shape = manifest.get("fixed_shape")
    if shape:
        batch, sequence = shape
    rss_before = _rss_mb()
    started = time.perf_counter()
    try:
        if fmt == "onnx":
            run, runtime = _load_onnx(folder, manifest, threads, allow_cpu_fallback)
        else:
            run, runtime = LOADERS[fmt](folder, manifest, threads)
    except ImportError as exc:
        return {"error": "runtime for %s artifacts is not installed on this device: %s" % (fmt, exc)}
    except ProviderRefused as exc:
        return {"error": str(exc)}
    feeds = _inputs(manifest, batch, sequence)
    run(feeds)  # the first run is part of loading (graph compilation, allocations)
    load_ms = (time.perf_counter() - started) * 1000
    watchdog = Watchdog(max_seconds)
    try:
        for i in range(warmup):
            run(feeds)
            if i % 16 == 0:
                watchdog.check()
        times = []
        for i in range(runs):
            t0 = time.perf_counter()
            run(feeds)
            times.append((time.perf_counter() - t0) * 1000)
            if i % 16 == 0:  # a getppid() every 16 runs costs nothing measurable
                watchdog.check()
    except Abandoned as exc:
        return {"error": str(exc)}
    mean = statistics.fmean(times)
    extra = {}
    if "cpu_fallback" in runtime:
        extra["cpu_fallback"] = runtime.pop("cpu_fallback")
        if extra["cpu_fallback"]:
            extra["warnings"] = ["%s asked for, the CPU measured (--allow-cpu-fallback): %s"
                                 % (runtime["requested_provider"], runtime.pop("fallback_reason"))]
    return {**extra,
        "schema": AGENT_SCHEMA,
        "latency_ms": {"p50": _percentile(times, 50), "p90": _percentile(times, 90),
                       "p99": _percentile(times, 99), "mean": mean,
                       "std": statistics.pstdev(times), "min": min(times)},
        "throughput_per_s": batch * 1000.0 / mean,
        "peak_rss_mb": _rss_mb(), "rss_before_load_mb": rss_before, "load_ms": load_ms,
        "batch": batch, "sequence": sequence, "threads": threads or os.cpu_count(),
        "runs": runs, "warmup": warmup, "runtime": runtime, "format": fmt, "tool": "agent",
        "samples_ms": [round(t, 4) for t in times],
        "device": probe(),
    }


def runtime_package():
    """edgeport.runtime loaded by path as ``edgeport_runtime``: the copy pushed beside this
    file, else the installed edgeport's (this file is edgeport/devices/agent.py there)."""
    import importlib.util
    if "edgeport_runtime" in sys.modules:
        return sys.modules["edgeport_runtime"]
    for folder in (os.path.join(_HERE, "edgeport_runtime"), os.path.join(os.path.dirname(_HERE), "runtime")):
        init = os.path.join(folder, "__init__.py")
        if os.path.isfile(init):
            spec = importlib.util.spec_from_file_location("edgeport_runtime", init,
                                                          submodule_search_locations=[folder])
            module = importlib.util.module_from_spec(spec)
            sys.modules["edgeport_runtime"] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError("edgeport.runtime is neither beside the agent (edgeport_runtime/) nor in its edgeport")


def time_requests(predict, requests, passes, warmup, max_seconds=3600):
    """Per-request latencies (ms) of ``predict`` over ``passes`` passes of ``requests`` (lists
    of texts), after ``warmup`` untimed requests; and the wall time of the timed passes."""
    watchdog = Watchdog(max_seconds)
    for i in range(warmup):
        predict(requests[i % len(requests)])
    times = []
    started = time.perf_counter()
    for _ in range(passes):
        for i, request in enumerate(requests):
            t0 = time.perf_counter()
            predict(request)
            times.append((time.perf_counter() - t0) * 1000)
            if i % 16 == 0:
                watchdog.check()
    return times, time.perf_counter() - started


def latency_summary(times):
    return {"p50": _percentile(times, 50), "p90": _percentile(times, 90), "p99": _percentile(times, 99),
            "mean": statistics.fmean(times), "std": statistics.pstdev(times), "min": min(times)}


def serve_texts(folder, texts_file, batch, passes, warmup, threads, max_seconds=3600, settings=None):
    """Real requests through edgeport.runtime: ``batch`` texts each, in the file's order;
    ``settings`` override the runtime's request-path settings (a dict, see runtime.SETTINGS)."""
    rss_before = _rss_mb()
    started = time.perf_counter()
    try:
        runtime = runtime_package()
    except ImportError as exc:
        return {"error": "cannot serve %s: %s" % (folder, exc)}
    try:
        texts = runtime.read_texts(texts_file)
        predictor = runtime.load(folder, threads=threads or None, batch_size=batch, settings=settings)
    except (OSError, runtime.ArtifactError) as exc:
        return {"error": "cannot serve %s: %s" % (folder, exc)}
    if not texts:
        return {"error": "%s holds no texts" % texts_file}
    requests = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    predictor.run(requests[0])  # the first request is part of loading (compilation, allocations)
    load_ms = (time.perf_counter() - started) * 1000
    try:
        times, wall = time_requests(predictor.run, requests, passes, warmup, max_seconds)
    except Abandoned as exc:
        return {"error": str(exc)}
    lengths = sorted(len(row.ids) for row in predictor.encoder.encode(texts))
    info = predictor.info()
    return {
        "schema": AGENT_SCHEMA, "mode": "texts",
        "latency_ms": latency_summary(times),
        "throughput_per_s": len(texts) * passes / wall,
        "peak_rss_mb": _rss_mb(), "rss_before_load_mb": rss_before, "load_ms": load_ms,
        "batch": batch, "sequence": int(round(statistics.fmean(lengths))), "threads": threads or os.cpu_count(),
        "runs": len(times), "warmup": warmup, "runtime": info["runtime"], "format": predictor.manifest.get("format"),
        "tool": "agent --texts", "texts": len(texts),
        "tokens": {"mean": statistics.fmean(lengths), "p50": _percentile(lengths, 50), "p90": _percentile(lengths, 90),
                   "max": lengths[-1]},
        "buckets": info["buckets"], "settings": settings or {}, "samples_ms": [round(t, 4) for t in times],
        "warnings": list(predictor.warnings), "device": probe(),
    }


def read_verify_inputs(path):
    """The inputs of a --verify file: (group, text or (text, text_pair)) per JSON line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            if isinstance(item, str):
                rows.append((None, item))
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                pair = item.get("text_pair")
                rows.append((item.get("group"), item["text"] if pair is None else (item["text"], str(pair))))
            else:
                raise ValueError("%s line %d: expected a JSON string or {\"text\": ..., \"text_pair\": ...}"
                                 % (path, number))
    return rows


def _file_sha256(path):
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_outputs(folder, inputs_file, batch, threads, max_seconds=3600):
    """The artifact's outputs on the inputs of ``inputs_file`` through edgeport.runtime, saved
    beside it as a float32 .npy; the result says where, with shape and sha256."""
    started = time.perf_counter()
    try:
        runtime = runtime_package()
    except ImportError as exc:
        return {"error": "cannot verify %s: %s" % (folder, exc)}
    try:
        rows = read_verify_inputs(inputs_file)
    except (OSError, ValueError) as exc:
        return {"error": "cannot read the verify inputs: %s" % exc}
    if not rows:
        return {"error": "%s holds no inputs" % inputs_file}
    try:
        predictor = runtime.load(folder, threads=threads or None, batch_size=batch)
    except runtime.RuntimeMissingError as exc:
        return {"error": "cannot load %s: %s" % (folder, exc)}
    except ImportError as exc:  # edgeport.runtime tokenizes with the `tokenizers` library, beside the runtime
        return {"schema": AGENT_SCHEMA, "mode": "verify", "device": probe(),
                "unavailable": "edgeport.runtime cannot run on this device's Python: %s (install `tokenizers` "
                               "there to verify on it)" % exc}
    except (OSError, runtime.ArtifactError) as exc:
        return {"error": "cannot load %s: %s" % (folder, exc)}
    import numpy as np
    watchdog = Watchdog(max_seconds)
    parts = []
    try:
        start = 0
        while start < len(rows):
            group = rows[start][0]
            end = start
            while end < len(rows) and rows[end][0] == group and end - start < batch:
                end += 1
            parts.append(np.asarray(predictor.run([text for _, text in rows[start:end]]), dtype=np.float32))
            start = end
            watchdog.check()
    except Abandoned as exc:
        return {"error": str(exc)}
    except (ValueError, runtime.ArtifactError) as exc:
        return {"error": "the artifact could not run the verify inputs: %s" % exc}
    outputs = np.concatenate(parts, axis=0)
    out_path = os.path.splitext(os.path.abspath(inputs_file))[0] + ".outputs.npy"
    np.save(out_path, outputs)
    info = predictor.info()
    return {
        "schema": AGENT_SCHEMA, "mode": "verify", "tool": "agent --verify",
        "outputs": out_path, "shape": list(outputs.shape), "dtype": "float32", "sha256": _file_sha256(out_path),
        "inputs": len(rows), "pairs": any(isinstance(text, tuple) for _, text in rows), "batch": batch,
        "threads": threads or os.cpu_count(), "seconds": round(time.perf_counter() - started, 3),
        "runtime": info["runtime"], "predictor": {k: v for k, v in info.items() if k != "runtime"},
        "format": predictor.manifest.get("format"), "warnings": list(predictor.warnings),
        "device": probe(),
    }


def parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--sequence", type=int, default=128)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600, help="stop (with an error) after this long")
    parser.add_argument("--allow-cpu-fallback", action="store_true",
                        help="profile on the CPU when the GPU execution provider asked for cannot run (said in the result)")
    parser.add_argument("--texts", help="time real requests: --batch lines of this file each, --runs passes")
    parser.add_argument("--settings", help="with --texts: JSON object overriding the runtime's request-path settings")
    parser.add_argument("--verify", help="run the inputs of this JSON lines file (texts or text pairs) through the "
                        "artifact; outputs saved beside it as .outputs.npy (--batch rows per call)")
    return parser


def main(argv=None):
    args = parser().parse_args(argv)
    if args.probe:
        result = probe()
    elif args.artifact and args.verify:
        result = verify_outputs(args.artifact, args.verify, args.batch, args.threads, args.max_seconds)
    elif args.artifact and args.texts:
        result = serve_texts(args.artifact, args.texts, args.batch, args.runs, args.warmup, args.threads,
                             args.max_seconds, json.loads(args.settings) if args.settings else None)
    elif args.artifact:
        result = profile(args.artifact, args.batch, args.sequence, args.runs, args.warmup, args.threads,
                         args.max_seconds, args.allow_cpu_fallback)
    else:
        parser().error("give --artifact DIR or --probe")
    sys.stdout.write(json.dumps(result) + "\n")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())

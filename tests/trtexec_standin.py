#!/usr/bin/env python3
"""STAND-IN for NVIDIA's trtexec, for the device tests only: no TensorRT runs here (TensorRT
cannot be installed on this machine). It accepts trtexec's flags as edgeport passes them and
writes files in trtexec's documented formats, so that the command lines edgeport builds and
its parsing of trtexec's output are pinned:

- build (``--onnx ... --saveEngine ... --exportLayerInfo ...``): an "engine" file (marked as a
  stand-in), the layer information JSON of ``--exportLayerInfo`` with
  ``--profilingVerbosity=detailed`` (``{"Layers": [{"Name", "LayerType", "Inputs": [{"Name",
  "Location", "Dimensions", "Format/Datatype"}], "Outputs": [...]}], "Bindings": [...]}``), in
  which each MatMul of the ONNX whose inputs both come from DequantizeLinear is a layer with
  Int8 input formats, and a timing cache file; a log with trtexec's header and
  ``[MemUsageChange]`` lines.
- profile (``--loadEngine ... --exportTimes ... --exportProfile ...``): the
  ``=== Performance summary ===`` block, ``--exportTimes`` (one record per inference with
  ``latencyMs`` etc.) and ``--exportProfile`` (``[{"count": N}, {"name", "timeMs", "averageMs",
  "medianMs", "percentage"}, ...]``).

- verify (``--loadEngine ... --loadInputs=name:file,... --exportOutput=FILE``): the outputs
  written in ``--exportOutput``'s format (``[{"name", "dimensions": "AxB", "values": [...]}]``),
  computed by ONNX Runtime on the ONNX beside the "engine" (the artifact pushed with it): the
  stand-in has no engine to run, so these outputs are the host-side graph's, which pins the
  plumbing (raw input files, shapes, the JSON parsed back), not TensorRT's arithmetic.
  STANDIN_OUTPUT_SCALE multiplies them (a test's "engine that computes wrong").

Environment knobs of the tests: STANDIN_ARGV_LOG (append each argv as a JSON line),
STANDIN_LATENCY_MS (the base of the reported latencies, 1.60),
STANDIN_NOT_INT8 (a node-name substring whose layer is reported FP16, as when TensorRT
silently does not apply INT8), STANDIN_BUILD_SECONDS (sleep while "building").
"""

import json
import os
import sys
import time

VERSION = "100300"


def _arg(argv, name):
    for item in argv:
        if item.startswith(f"--{name}="):
            return item.split("=", 1)[1]
    return None


def _log(line):
    print(f"[11/30/2026-10:00:00] [I] {line}")


def build(argv):
    import onnx

    model = onnx.load(_arg(argv, "onnx"))
    producer = {o: n for n in model.graph.node for o in n.output}
    not_int8 = os.environ.get("STANDIN_NOT_INT8")
    layers = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        dq = all(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in node.input)
        int8 = dq and not (not_int8 and not_int8 in node.name)
        fmt = "Row major Int8 format" if int8 else "Row major linear FP16 format"
        layers.append({"Name": node.name, "LayerType": "CaskGemmMatrixMultiply",
                       "Inputs": [{"Name": i, "Location": "Device", "Dimensions": [-1, -1, 32],
                                   "Format/Datatype": fmt} for i in node.input],
                       "Outputs": [{"Name": node.output[0], "Location": "Device", "Dimensions": [-1, -1, 32],
                                    "Format/Datatype": "Row major linear FP16 format"}],
                       "TacticName": "standin_gemm", "StreamId": 0, "Metadata": f"[ONNX Layer: {node.name}]"})
    layers.append({"Name": "{ForeignNode[standin myelin region]}", "LayerType": "Myelin", "Inputs": [], "Outputs": []})
    bindings = [i.name for i in model.graph.input] + [o.name for o in model.graph.output]
    with open(_arg(argv, "exportLayerInfo"), "w") as fh:
        json.dump({"Layers": layers, "Bindings": bindings}, fh, indent=2)
    with open(_arg(argv, "saveEngine"), "wb") as fh:
        fh.write(b"STAND-IN ENGINE (no TensorRT ran)\n")
    with open(_arg(argv, "timingCacheFile"), "ab") as fh:
        fh.write(b"standin-timing-cache\n")
    time.sleep(float(os.environ.get("STANDIN_BUILD_SECONDS", "0")))
    _log("Selected Device: Orin (stand-in)")
    _log("[MemUsageChange] Init CUDA: CPU +2, GPU +0, now: CPU 215, GPU 3120 (MiB)")
    _log("[MemUsageChange] TensorRT-managed allocation in building engine: CPU +0, GPU +60, now: CPU 402, "
         "GPU 3345 (MiB)")
    _log(f"Engine built in 12.3 sec. ({len(layers)} layers)")


def profile(argv):
    runs = int(_arg(argv, "iterations") or 10)
    base = float(os.environ.get("STANDIN_LATENCY_MS", "1.60"))
    lat = [base + 0.01 * (i % 7) for i in range(runs)]
    times, clock = [], 100.0
    for value in lat:
        times.append({"startEnqMs": clock, "endEnqMs": clock + 0.4, "startH2DMs": clock, "endH2DMs": clock + 0.02,
                      "startComputeMs": clock + 0.02, "endComputeMs": clock + value - 0.02,
                      "startD2HMs": clock + value - 0.02, "endD2HMs": clock + value, "h2dMs": 0.02,
                      "computeMs": value - 0.04, "d2hMs": 0.02, "latencyMs": value, "enqMs": 0.4})
        clock += value
    with open(_arg(argv, "exportTimes"), "w") as fh:
        json.dump(times, fh)
    with open(_arg(argv, "exportProfile"), "w") as fh:
        json.dump([{"count": runs}, {"name": "standin_gemm", "timeMs": 0.9 * runs, "averageMs": 0.9, "medianMs": 0.9,
                                     "percentage": 56.0}], fh)
    ordered = sorted(lat)
    pct = lambda q: ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]  # noqa: E731
    mean = sum(lat) / len(lat)
    _log("[MemUsageChange] Init CUDA: CPU +2, GPU +0, now: CPU 190, GPU 2980 (MiB)")
    _log("=== Performance summary ===")
    _log(f"Throughput: {1000 / mean:.3f} qps")
    _log(f"Latency: min = {ordered[0]:.5f} ms, max = {ordered[-1]:.5f} ms, mean = {mean:.5f} ms, median = "
         f"{pct(50):.5f} ms, percentile(90%) = {pct(90):.5f} ms, percentile(95%) = {pct(95):.5f} ms, "
         f"percentile(99%) = {pct(99):.5f} ms")
    _log(f"GPU Compute Time: min = {ordered[0] - 0.04:.5f} ms, max = {ordered[-1] - 0.04:.5f} ms, mean = "
         f"{mean - 0.04:.5f} ms, median = {pct(50) - 0.04:.5f} ms, percentile(90%) = {pct(90) - 0.04:.5f} ms, "
         f"percentile(95%) = {pct(95) - 0.04:.5f} ms, percentile(99%) = {pct(99) - 0.04:.5f} ms")


def verify(argv):
    import numpy as np
    import onnx
    import onnxruntime as ort

    folder = os.path.dirname(_arg(argv, "loadEngine"))
    onnx_path = next(os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".onnx"))
    graph = onnx.load(onnx_path, load_external_data=False).graph
    types = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph.input}
    shapes = dict(item.split(":") for item in _arg(argv, "shapes").split(","))
    feeds = {}
    for item in _arg(argv, "loadInputs").split(","):
        name, path = item.split(":", 1)
        dims = [int(d) for d in shapes[name].split("x")]
        feeds[name] = np.fromfile(path, dtype=types[name]).reshape(dims)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    scale = float(os.environ.get("STANDIN_OUTPUT_SCALE", "1"))
    outputs = session.run(None, feeds)
    with open(_arg(argv, "exportOutput"), "w") as fh:
        json.dump([{"name": meta.name, "dimensions": "x".join(str(d) for d in value.shape),
                    "values": (value.astype(np.float32) * scale).ravel().tolist()}
                   for meta, value in zip(session.get_outputs(), outputs)], fh)
    _log("=== Performance summary ===")
    _log("Latency: min = 1.6 ms, max = 1.6 ms, mean = 1.6 ms, median = 1.6 ms, percentile(90%) = 1.6 ms, "
         "percentile(95%) = 1.6 ms, percentile(99%) = 1.6 ms")


def main(argv):
    if os.environ.get("STANDIN_ARGV_LOG"):
        with open(os.environ["STANDIN_ARGV_LOG"], "a") as fh:
            fh.write(json.dumps(argv) + "\n")
    print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v{VERSION}] # trtexec {' '.join(argv)}")
    if _arg(argv, "onnx"):
        build(argv)
    elif _arg(argv, "loadEngine") and _arg(argv, "exportOutput"):
        verify(argv)
    elif _arg(argv, "loadEngine"):
        profile(argv)
    else:
        print("[E] stand-in trtexec: give --onnx or --loadEngine", file=sys.stderr)
        return 1
    print(f"&&&& PASSED TensorRT.trtexec [TensorRT v{VERSION}] # trtexec")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

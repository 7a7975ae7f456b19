"""TensorRT's ``trtexec`` as the native benchmark of `tensorrt-int8`/`tensorrt-fp16` on a
Jetson: the engine is built on the device that runs it, from the strongly-typed ONNX, then
profiled; engine, logs and layer info come back to the target's folder, per device.

Build (a time limit from the target's ``build_timeout_s``, enforced on the device by
``timeout``; the full log kept)::

    trtexec --onnx=model.onnx --stronglyTyped --saveEngine=model.engine
            --minShapes=... --optShapes=... --maxShapes=...   (the manifest's optimization profile)
            --memPoolSize=workspace:<workspace_mb>M --timingCacheFile=timing.cache
            --profilingVerbosity=detailed --exportLayerInfo=layers.json --skipInference

Profile::

    trtexec --loadEngine=model.engine --shapes=... --iterations=<runs> --duration=0
            --warmUp=<ms> --useCudaGraph --separateProfileRun
            --exportTimes=times.json --exportProfile=profile.json

The summary is parsed by targets/trtexec.py; ``times.json`` gives the per-run samples. The
timing cache is kept per device beside the engine and pushed back for the next build.

Verify (the report set through the engine, on the device, by trtexec itself)::

    trtexec --loadEngine=model.engine --shapes=... --loadInputs=input_ids:input_ids.bin,...
            --exportOutput=outputs.json --iterations=1 --warmUp=0 --duration=0

one call per batch of at most the profile's max batch: inputs are raw little-endian tensors of
the ONNX inputs' types, ``--exportOutput`` writes ``[{"name", "dimensions": "AxBxC", "values":
[...]}]`` (trtexec's sampleReporting format), parsed back into arrays by ``parse_outputs``.

INT8 proof: ``layers.json`` (``--exportLayerInfo`` with detailed verbosity) lists each engine
layer with its input/output formats. Every weighted MatMul that carries Q/DQ in the ONNX
must appear in a layer whose input formats are Int8; one that appears in a layer computing
otherwise is a verification error (exit 5) naming it. A MatMul folded into a layer whose name
does not name it (a Myelin ForeignNode spans a range of nodes) cannot be checked this way and
is reported as unaccounted, not as proven.
"""

from __future__ import annotations

import json
import posixpath
import re
import tempfile
from pathlib import Path

import numpy as np

from edgeport.artifact import ArtifactManifest, DeviceShell, NativeBenchmark
from edgeport.errors import DeviceError, VerificationError
from edgeport.targets.trtexec import parse_trtexec

WARMUP_MS = 500
ENGINE = "model.engine"


def _shapes(profile: dict, which: str) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims[which])}" for name, dims in profile.items())


def build_argv(trtexec: str, onnx: str, folder: str, config: dict) -> list[str]:
    profile = config["optimization_profile"]
    return [trtexec, f"--onnx={onnx}", "--stronglyTyped", f"--saveEngine={posixpath.join(folder, ENGINE)}",
            f"--minShapes={_shapes(profile, 'min')}", f"--optShapes={_shapes(profile, 'opt')}",
            f"--maxShapes={_shapes(profile, 'max')}", f"--memPoolSize=workspace:{config['workspace_mb']}M",
            f"--timingCacheFile={posixpath.join(folder, 'timing.cache')}", "--profilingVerbosity=detailed",
            f"--exportLayerInfo={posixpath.join(folder, 'layers.json')}", "--skipInference"]


def profile_argv(trtexec: str, folder: str, inputs: list[str], batch: int, sequence: int, runs: int) -> list[str]:
    shapes = ",".join(f"{name}:{batch}x{sequence}" for name in inputs)
    return [trtexec, f"--loadEngine={posixpath.join(folder, ENGINE)}", f"--shapes={shapes}", f"--iterations={runs}",
            "--duration=0", f"--warmUp={WARMUP_MS}", "--useCudaGraph", "--separateProfileRun",
            f"--exportTimes={posixpath.join(folder, 'times.json')}",
            f"--exportProfile={posixpath.join(folder, 'profile.json')}"]


def verify_argv(trtexec: str, folder: str, inputs: dict[str, str], shape: tuple[int, int]) -> list[str]:
    """One inference of given inputs (name -> raw file on the device) with its outputs exported."""
    shapes = ",".join(f"{name}:{shape[0]}x{shape[1]}" for name in inputs)
    load = ",".join(f"{name}:{path}" for name, path in inputs.items())
    return [trtexec, f"--loadEngine={posixpath.join(folder, ENGINE)}", f"--shapes={shapes}", f"--loadInputs={load}",
            f"--exportOutput={posixpath.join(folder, 'outputs.json')}", "--iterations=1", "--warmUp=0", "--duration=0"]


def parse_outputs(exported: list) -> dict[str, np.ndarray]:
    """``--exportOutput``'s JSON: each output tensor by name, shaped by its ``dimensions``."""
    out = {}
    for tensor in exported:
        dims = [int(d) for d in str(tensor["dimensions"]).split("x") if d]
        out[tensor["name"]] = np.asarray(tensor["values"], dtype=np.float32).reshape(dims)
    return out


def _formats(layer: dict) -> list[str]:
    return [str(t.get("Format/Datatype", "")) for t in layer.get("Inputs", []) if isinstance(t, dict)]


def int8_layers_check(layer_info: dict, expected: list[str]) -> dict:
    """Which of the ``expected`` INT8 MatMuls (ONNX node names) run INT8 in the engine."""
    layers = layer_info.get("Layers", [])
    if layers and isinstance(layers[0], str):
        raise ValueError("layers.json has layer names only: build with --profilingVerbosity=detailed")
    proven, not_int8, unaccounted = [], [], []
    for node in expected:
        holders = [layer for layer in layers if node in str(layer.get("Name", ""))]
        if not holders:
            unaccounted.append(node)
        elif any(re.search(r"int8", fmt, re.I) for layer in holders for fmt in _formats(layer)):
            proven.append(node)
        else:
            not_int8.append((node, ", ".join(sorted({f for layer in holders for f in _formats(layer)}))))
    return {"expected": len(expected), "int8": len(proven), "unaccounted": unaccounted,
            "not_int8": [{"node": n, "formats": f} for n, f in not_int8]}


def parse_times(times: list) -> list[float]:
    """``--exportTimes``: one record per inference with ``latencyMs``."""
    return [round(float(t["latencyMs"]), 4) for t in times if isinstance(t, dict) and "latencyMs" in t]


def memory_lines(log: str) -> dict:
    """trtexec's ``[MemUsageChange] ... now: CPU x, GPU y (MiB)`` lines: the peaks."""
    found = re.findall(r"now: CPU (\d+), GPU (\d+) \(MiB\)", log)
    if not found:
        return {}
    return {"peak_cpu_mib": max(int(c) for c, _ in found), "peak_gpu_mib": max(int(g) for _, g in found)}


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)


class Trtexec(NativeBenchmark):
    """Builds and profiles a TensorRT engine on the device with its own trtexec."""

    tool = "trtexec"
    preferred = True
    verifies = True  # --loadInputs / --exportOutput run the report set through the engine

    def run(self, shell: DeviceShell, tool_path: str, artifact_dir: Path, remote_dir: str,
            manifest: ArtifactManifest, spec, where: str) -> dict:
        config = manifest.runtime_config
        keep = Path(artifact_dir) / "devices" / _safe(where)
        keep.mkdir(parents=True, exist_ok=True)
        found = shell.exec(["sh", "-c", 'command -v "$1"', "sh", tool_path], timeout=30)
        if found.code != 0 or not found.stdout.strip():
            raise DeviceError(f"trtexec is not on {where} (looked for '{tool_path}')",
                              hint="JetPack 6 ships it as /usr/src/tensorrt/bin/trtexec; set native_tools.trtexec "
                              "of the catalog entry where it lives elsewhere")
        cache = keep / "timing.cache"
        if cache.is_file():
            shell.push(cache, posixpath.join(remote_dir, "timing.cache"))
        onnx = posixpath.join(remote_dir, manifest.files[0])
        limit = int(config.get("build_timeout_s", 1800))
        argv = build_argv(tool_path, onnx, remote_dir, config)
        done = shell.exec(["timeout", "--kill-after=10", str(limit), *argv], timeout=limit + 60)
        (keep / "build.log").write_text(done.stdout + done.stderr)
        (keep / "build_command.txt").write_text(" ".join(argv) + "\n")
        if done.code in (124, 137):
            raise DeviceError(f"the TensorRT engine build on {where} ran past {limit} s (build_timeout_s); "
                              f"log: {keep / 'build.log'}",
                              hint="raise --option <target>.build_timeout_s, or lower max_sequence/max_batch")
        if done.code != 0:
            tail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.code}").splitlines()[-1]
            raise DeviceError(f"the TensorRT engine build failed on {where}: {tail}", hint=f"log: {keep / 'build.log'}")
        for name in (ENGINE, "layers.json", "timing.cache"):
            shell.pull(posixpath.join(remote_dir, name), keep / name)
        layer_info = json.loads((keep / "layers.json").read_text())
        int8 = None
        expected = manifest.details.get("int8_matmul_nodes") or []
        if manifest.precision.get("default", "").startswith("int8"):
            int8 = int8_layers_check(layer_info, expected)
            if int8["not_int8"]:
                first = int8["not_int8"][0]
                raise VerificationError(
                    f"{len(int8['not_int8'])} layers meant to be INT8 did not run INT8 in the engine built on "
                    f"{where}, e.g. {first['node']} ({first['formats']})",
                    hint=f"layer info: {keep / 'layers.json'}; TensorRT chose another precision for them")
        shape = [spec.batch, spec.sequence]
        argv = profile_argv(tool_path, remote_dir, list(manifest.inputs), spec.batch, spec.sequence, spec.runs)
        done = shell.exec(argv, timeout=spec.timeout_s)
        (keep / "profile.log").write_text(done.stdout + done.stderr)
        try:
            result = parse_trtexec(done.stdout + "\n" + done.stderr)
        except ValueError as exc:
            tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise DeviceError(f"trtexec profiling failed on {where}: {tail}", hint=f"log: {keep / 'profile.log'}") \
                from exc
        for name in ("times.json", "profile.json"):
            shell.pull(posixpath.join(remote_dir, name), keep / name)
        samples = parse_times(json.loads((keep / "times.json").read_text()))
        build_log = (keep / "build.log").read_text()
        result.update({
            "batch": shape[0], "sequence": shape[1], "runs": len(samples) or spec.runs, "warmup": None,
            "samples_ms": samples, "format": "tensorrt-engine",
            "environment": {"engine": str(keep / ENGINE), "trt_version_built_for": config.get("trt_version"),
                            "tensorrt": result["runtime"].get("version"), "gpu": _gpu_name(build_log),
                            "trtexec_memory": memory_lines(build_log + (keep / "profile.log").read_text()),
                            "int8_layers": int8, "layers": len(layer_info.get("Layers", []))},
        })
        return result

    def verify(self, shell: DeviceShell, tool_path: str, artifact_dir: Path, remote_dir: str,
               manifest: ArtifactManifest, feeds: dict[str, np.ndarray], where: str) -> np.ndarray:
        """The engine that ``run`` built in ``remote_dir``, run by trtexec on ``feeds`` (rows of
        one padded length), in chunks of the profile's max batch: its first output, stacked."""
        profile = manifest.runtime_config["optimization_profile"]
        limits = next(iter(profile.values()))["max"]
        rows, length = next(iter(feeds.values())).shape
        if length > limits[1]:
            raise DeviceError(f"verification rows of {length} tokens exceed the engine's profile ({limits[1]})")
        dtypes = _input_dtypes(Path(artifact_dir) / manifest.files[0])
        wanted = manifest.outputs[0] if manifest.outputs else None
        chunks = []
        with tempfile.TemporaryDirectory(prefix="edgeport-trt-verify-") as tmp:
            for start in range(0, rows, limits[0]):
                remote = {}
                for name, array in feeds.items():
                    local = Path(tmp) / f"{name}.bin"
                    np.ascontiguousarray(array[start:start + limits[0]], dtype=dtypes.get(name, np.int64)).tofile(local)
                    remote[name] = posixpath.join(remote_dir, f"{name}.bin")
                    shell.push(local, remote[name])
                batch = min(limits[0], rows - start)
                done = shell.exec(verify_argv(tool_path, remote_dir, remote, (batch, length)), timeout=600)
                if done.code != 0:
                    tail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.code}").splitlines()[-1]
                    raise DeviceError(f"trtexec could not run the verification inputs on {where}: {tail}")
                shell.pull(posixpath.join(remote_dir, "outputs.json"), Path(tmp) / "outputs.json")
                tensors = parse_outputs(json.loads((Path(tmp) / "outputs.json").read_text()))
                chunks.append(tensors[wanted] if wanted in tensors else next(iter(tensors.values())))
        return np.concatenate(chunks)


def _input_dtypes(onnx_path: Path) -> dict[str, type]:
    """The numpy type of each graph input (TensorRT reads the raw bytes as the engine's type)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph.input}


def _gpu_name(log: str) -> str | None:
    match = re.search(r"\[I\] Selected Device: (.+)", log) or re.search(r"Device Name: (.+)", log)
    return match.group(1).strip() if match else None

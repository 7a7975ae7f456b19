"""`tensorrt-int8` and `tensorrt-fp16`: strongly-typed ONNX graphs for TensorRT on a Jetson,
built and checked here; the engine is built on the device (targets/trtexec_benchmark.py).

TensorRT 11 removes the precision flags and the INT8 calibrator; TensorRT 10 (JetPack 6 ships
10.3) builds the same file with ``--stronglyTyped``. So the artifact is a strongly-typed ONNX,
never a flag recipe:

- `tensorrt-fp16`: the FP16 pass shared with `amd-fp16` (targets/fp16_graph.py): FP16 with
  FP32 islands chosen from activation ranges on the calibration texts, io types kept.
- `tensorrt-int8`: Q/DQ placed by NVIDIA ModelOpt's ONNX quantizer (TensorRT's placement
  rules), calibrated here on the CPU from the run's calibration texts (``max``) after the
  LayerNorm-fed MatMul inputs are smoothed per channel (targets/smoothing.py); the layers the
  accuracy budget keeps in higher precision are excluded from quantization; everything not
  INT8 is cast to FP16 by ModelOpt. ModelOpt also puts Q/DQ on both inputs of residual Adds,
  the GEMM's own output included (FFN-down's reaches 196 on MiniLM, one per-tensor scale for
  it): on MiniLM all INT8, report-set mean cosine 0.8675 with those Q/DQ and 0.9762 without
  (bench/trt_int8_placement.py), and 0.9970 vs 0.9984 with FFN-down kept out (a development
  measurement); so the Adds stay FP16 unless
  ``quantize_residual_adds`` (TensorRT still fuses the Add into the GEMM's epilogue, reading
  the skip input in FP16 rather than INT8). ModelOpt pins an older onnx than edgeport's, so it runs in
  its own environment (``make setup-tensorrt`` -> .venv-modelopt/, or
  ``$EDGEPORT_MODELOPT_VENV``) as a subprocess running targets/modelopt_worker.py.

Host-side checks, layered and recorded in the manifest: the ONNX checker's full check with
shape inference; Polygraphy's lint (in the ModelOpt environment); the rule table of the
TensorRT version (targets/tensorrt_rules.py); for INT8 the placement rules. Fidelity here is
ONNX Runtime on the CPU: host-side emulation (FP16 computed in FP32; INT8 Q/DQ simulated),
which can look fine where an engine's accuracy collapses — the device run is the proof.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edgeport.artifact import Built
from edgeport.errors import TargetUnavailableError, VerificationError
from edgeport.exporter.graph import onnx_nodes_for
from edgeport.targets.amd_migraphx import MODEL_FILE, EmulatedOrtRunner, Fp16GraphTarget, Fp16PassOptions, \
    host_side_sentence
from edgeport.targets.base import Availability, BuildContext, Target, missing_module
from edgeport.targets.fp16_graph import check_strongly_typed
from edgeport.targets.smoothing import smooth
from edgeport.targets.tensorrt_rules import RULES, attention_core, per_sequence_heads, placement_check, rule_table_check
from edgeport.verify import Runner

WORKER = Path(__file__).with_name("modelopt_worker.py")
SETUP_HINT = "make setup-tensorrt (creates .venv-modelopt/ with nvidia-modelopt; or set EDGEPORT_MODELOPT_VENV)"
DEVICE_RUNTIME = "TensorRT (trtexec on the Jetson)"


def modelopt_python() -> Path | None:
    """The ModelOpt environment's Python: $EDGEPORT_MODELOPT_VENV, else .venv-modelopt/ in the
    current folder or in the source checkout edgeport runs from."""
    candidates = []
    if os.environ.get("EDGEPORT_MODELOPT_VENV"):
        candidates.append(Path(os.environ["EDGEPORT_MODELOPT_VENV"]))
    candidates += [Path.cwd() / ".venv-modelopt", Path(__file__).resolve().parents[3] / ".venv-modelopt"]
    for venv in candidates:
        python = venv / "bin" / "python"
        if python.is_file():
            return python
    return None


def run_worker(command: str, args: list[str], timeout: float = 3600) -> dict:
    """targets/modelopt_worker.py in the ModelOpt environment; its result document."""
    python = modelopt_python()
    if python is None:
        raise TargetUnavailableError("NVIDIA ModelOpt's environment (.venv-modelopt) is not set up", hint=SETUP_HINT)
    with tempfile.TemporaryDirectory(prefix="edgeport-modelopt-") as tmp:
        result = Path(tmp) / "result.json"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        try:
            done = subprocess.run([str(python), str(WORKER), command, *args, "--result", str(result)],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise VerificationError(f"NVIDIA ModelOpt's {command} ran past {timeout:.0f} s") from None
        if done.returncode != 0 or not result.is_file():
            tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise VerificationError(f"NVIDIA ModelOpt's {command} failed: {tail}",
                                    hint=f"run `{python} {WORKER} {command} ...` to see its whole log")
        return json.loads(result.read_text())


class TensorRTOptions(Fp16PassOptions):
    trt_version: Literal["10.3"] = Field("10.3", description="TensorRT on the device (10.3: JetPack 6): sets the "
                                         "opset ceiling and the parser's operator table")
    min_batch: int = Field(1, gt=0, description="optimization profile: smallest batch")
    opt_batch: int = Field(1, gt=0, description="optimization profile: batch TensorRT tunes for")
    max_batch: int = Field(8, gt=0, description="optimization profile: largest batch")
    min_sequence: int = Field(1, gt=0, description="optimization profile: shortest sequence")
    opt_sequence: int = Field(128, gt=0, description="optimization profile: sequence TensorRT tunes for")
    max_sequence: int = Field(128, gt=0, description="optimization profile: longest sequence")
    workspace_mb: int = Field(1024, gt=0, description="engine build workspace limit in MB (--memPoolSize; 8 GB "
                              "Orin Nano builds run out of memory with much more)")
    build_timeout_s: int = Field(1800, gt=0, description="time limit of the engine build on the device")

    @model_validator(mode="after")
    def _profile_ordered(self):
        for what in ("batch", "sequence"):
            lo, opt, hi = (getattr(self, f"{k}_{what}") for k in ("min", "opt", "max"))
            if not lo <= opt <= hi:
                raise ValueError(f"need min_{what} <= opt_{what} <= max_{what} (got {lo}, {opt}, {hi})")
        return self


class TensorRTInt8Options(TensorRTOptions):
    calibration_method: Literal["max", "entropy"] = Field("max", description="ModelOpt activation calibration "
                                                          "(entropy is ModelOpt's default; all-INT8 MiniLM report "
                                                          "cosine 0.9878 max, 0.9889 entropy)")
    smoothing_alpha: float | None = Field(0.5, ge=0, le=1, description="per-channel smoothing of LayerNorm-fed "
                                          "MatMul inputs before Q/DQ (targets/smoothing.py); null: none")
    quantize_residual_adds: bool = Field(False, description="ModelOpt's Q/DQ on both inputs of residual Adds (the "
                                         "GEMM output too); off: the Adds stay FP16 (MiniLM all-INT8 report "
                                         "cosine 0.8675 with, 0.9762 without)")


def optimization_profile(options: TensorRTOptions, inputs: tuple[str, ...]) -> dict:
    shapes = {k: [getattr(options, f"{k}_batch"), getattr(options, f"{k}_sequence")] for k in ("min", "opt", "max")}
    return {name: shapes for name in inputs}


def lint(path: Path) -> dict:
    """Polygraphy's lint in the ModelOpt environment; recorded as not run where it is absent."""
    if modelopt_python() is None:
        return {"result": "not run", "why": f"Polygraphy lives in the ModelOpt environment: {SETUP_HINT}"}
    report = run_worker("lint", ["--onnx", str(path)], timeout=900)
    if report["result"] == "failed":
        raise VerificationError(f"Polygraphy's lint failed on {len(report['failing_nodes'])} nodes, e.g. "
                                f"{(report['failing_nodes'] or ['?'])[0]}")
    return report


class _TensorRTTarget(Target):
    runtime = "tensorrt"
    artifact_format = "onnx"

    def runner(self, artifact_dir: Path, threads: int | None = None) -> Runner:
        return EmulatedOrtRunner(Path(artifact_dir) / MODEL_FILE, host_side_sentence(DEVICE_RUNTIME), threads)

    def native_benchmark(self):
        from edgeport.targets.trtexec_benchmark import Trtexec

        return Trtexec()

    def device_facts(self, ctx: BuildContext) -> dict:
        options = ctx.options
        rules = RULES[options.trt_version]
        # a device without trtexec runs the ONNX with the agent: through ONNX Runtime's TensorRT
        # provider or not at all (the agent refuses a silent CPU fallback)
        return {"execution_provider": "TensorrtExecutionProvider", "provider_options": {},
                "trt_version": options.trt_version, "jetpack": rules.jetpack,
                "optimization_profile": optimization_profile(options, ctx.input_names),
                "workspace_mb": options.workspace_mb, "build_timeout_s": options.build_timeout_s,
                "strongly_typed": True}


class TensorRTFp16(_TensorRTTarget, Fp16GraphTarget):
    name = "tensorrt-fp16"
    device_runtime = DEVICE_RUNTIME
    Options = TensorRTOptions

    def check(self) -> Availability:
        return missing_module("onnxruntime", None) or Availability(True)

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        built, details = self.fp16(ctx, out, prepared)
        rules = RULES[ctx.options.trt_version]
        details["checks"] = {"structure": details.pop("structure_checks"),
                             "rule_table": rule_table_check(out / MODEL_FILE, rules),
                             "polygraphy_lint": lint(out / MODEL_FILE)}
        details["host_side"] = host_side_sentence(DEVICE_RUNTIME)
        return Built(built.files, built.strategy + "; TensorRT --stronglyTyped", built.precision,
                     runtime_config=self.device_facts(ctx), calibration=built.calibration, details=details)


@dataclass(frozen=True)
class _Int8Inputs:
    """tensorrt-int8's per-build inputs (see TensorRTInt8.prepare); ``workdir`` holds the
    calibration file and the smoothed graph for as long as this object lives."""

    sequence_length: int
    calib: Path
    source: Path
    smoothed: tuple
    attention_core: tuple
    heads: tuple
    workdir: tempfile.TemporaryDirectory


class TensorRTInt8(_TensorRTTarget):
    name = "tensorrt-int8"
    precision = "int8"
    quantized = True
    Options = TensorRTInt8Options

    def check(self) -> Availability:
        if modelopt_python() is None:
            return Availability(False, "NVIDIA ModelOpt's environment (.venv-modelopt) is not set up", SETUP_HINT)
        return missing_module("onnxruntime", None) or Availability(True)

    def prepare(self, ctx: BuildContext) -> _Int8Inputs:
        """What every budget trial shares, made once per build: the calibration feeds stacked at
        one length (as ModelOpt takes them), the fp32 graph ModelOpt quantizes (smoothed unless
        smoothing_alpha is null) and the nodes always left unquantized."""
        length = ctx.calibration.longest()
        feeds = next(ctx.calibration.feeds(batch_size=len(ctx.calibration.texts), fixed_length=length))
        workdir = tempfile.TemporaryDirectory(prefix="edgeport-trt-int8-")
        calib = Path(workdir.name) / "calib.npz"
        np.savez(calib, **feeds)
        source, smoothed = ctx.onnx_path, []
        if ctx.options.smoothing_alpha is not None:
            source = Path(workdir.name) / "smoothed.onnx"
            smoothed = smooth(ctx.onnx_path, source, feeds, ctx.options.smoothing_alpha)
        # ModelOpt's disable_mha_qdq misses BERT's masked softmax; the pooler/classifier GEMVs it leaves out too
        sequence_length = int(next(iter(feeds.values())).shape[1])
        return _Int8Inputs(sequence_length, calib, source, tuple(smoothed), tuple(attention_core(ctx.onnx_path)),
                           tuple(per_sequence_heads(ctx.onnx_path)), workdir)

    @staticmethod
    def _quantize(ctx: BuildContext, inputs: _Int8Inputs, exclude: list[str], path: Path) -> dict:
        """ModelOpt's PTQ of the prepared graph, in its environment, into ``path``; its result document."""
        options = ctx.options
        with tempfile.TemporaryDirectory(prefix="edgeport-trt-int8-") as tmp:
            nodes = Path(tmp) / "exclude.json"
            nodes.write_text(json.dumps(exclude))
            return run_worker("quantize", ["--onnx", str(inputs.source), "--out", str(path),
                                           "--calib", str(inputs.calib), "--exclude", str(nodes), "--method", options.calibration_method,
                                           *([] if options.quantize_residual_adds else ["--exclude-op-types", "Add"])])

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        inputs = prepared if prepared is not None else self.prepare(ctx)
        core, heads, smoothed = list(inputs.attention_core), list(inputs.heads), inputs.smoothed
        exclude = list(dict.fromkeys(onnx_nodes_for(ctx.onnx_path, ctx.keep_fp) + core + heads))
        options, path = ctx.options, out / MODEL_FILE
        report = self._quantize(ctx, inputs, exclude, path)
        placement = placement_check(path, exclude)
        int8_nodes = placement.pop("int8_matmul_nodes")
        checks = {"structure": check_strongly_typed(path),
                  "rule_table": rule_table_check(path, RULES[ctx.options.trt_version]),
                  "placement": placement, "polygraphy_lint": lint(path)}
        details = {"quantizer": {"tool": "nvidia-modelopt onnx PTQ", **report["settings"],
                                 "seconds": report["seconds"], "calibration_samples": report["calibration_samples"],
                                 "nodes_excluded": exclude, "attention_core_unquantized": core,
                                 "per_sequence_heads_fp16": heads,
                                 "smoothing": {"alpha": options.smoothing_alpha,
                                               "inputs": [s.as_dict() for s in smoothed]},
                                 "residual_adds": "Q/DQ on both inputs (ModelOpt)" if options.quantize_residual_adds
                                 else "FP16 (no Q/DQ)"},
                   "modelopt_environment": report["versions"], "checks": checks,
                   "host_side": host_side_sentence(DEVICE_RUNTIME),
                   "int8_matmul_nodes": int8_nodes}
        precision = {"default": "int8 (Q/DQ on MatMul inputs, ModelOpt placement); the rest fp16",
                     "fp32_layers": list(ctx.keep_fp)}
        return Built([MODEL_FILE], "ModelOpt ONNX PTQ: explicit Q/DQ, strongly typed; TensorRT --stronglyTyped",
                     precision, runtime_config=self.device_facts(ctx),
                     calibration={**ctx.calibration.summary(), "method": ctx.options.calibration_method,
                                  "sequence_length": inputs.sequence_length},
                     details=details)

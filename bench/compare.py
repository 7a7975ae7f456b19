#!/usr/bin/env python3
"""Side by side on this machine: PyTorch fp32 eager, every edgeport target that runs here, and
the peers a user would pick instead (optimum-intel: OpenVINO export + static INT8; optimum-onnx:
ONNX Runtime export + dynamic INT8), each peer in its own venv (bench/setup_peers.sh).

- MiniLM (embeddings): fidelity (mean cosine vs PyTorch fp32 on edgeport's held-out texts).
- SST-2 classifier (../shared/models/minilm-sst2): accuracy on ../shared/data/sst2/dev.tsv.
- Latency p50/p90 at batch 1 x 128 and 8 x 128, peak RSS: every artifact in its own fresh
  process (the device agent), processes alternating, repeated; the spread across rounds is shown.
- The limit: the machine's sustained fp32 and INT8 matrix-multiply throughput is measured once;
  each artifact's multiply-accumulates per inference give its fraction of that peak.

    bash bench/setup_peers.sh && python bench/compare.py [--rounds 3]

Writes bench/results/latest.json and bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_results
from edgeport.calibration.data import builtin_texts, records_from_file
from edgeport.devices.host import cpu_info
from edgeport.devices.local_profile import profile_local
from edgeport.model.load import model_from_path, path_from_ref
from edgeport.model.torch_runner import TorchRunner
from edgeport.recipe import recipe_from_dict
from edgeport.stages.flow import run_export
from edgeport.stages.reference import reference_from
from edgeport.verify import Runner
from edgeport.targets.onnxruntime_cpu import OrtRunner
from edgeport.targets.openvino_ir import OpenVinoRunner
from edgeport.ui import UI, quiet_libraries

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SST2_MODEL, SST2_DEV = SHARED / "models" / "minilm-sst2", SHARED / "data" / "sst2" / "dev.tsv"
PEERS = {"optimum-intel": "optimum_intel_peer.py", "optimum-onnx": "optimum_onnx_peer.py"}
EMBEDDING_TARGETS = ["onnx-fp32", "onnx-int8", "openvino-fp16", "openvino-int8", "tflite-fp32", "tflite-fp16",
                     "tflite-int8"]
CLASSIFIER_TARGETS = ["onnx-int8", "openvino-int8", "tflite-int8"]


class Pooled(Runner):
    """A peer's feature-extraction graph returns token states: pool them as sentence-transformers does."""

    def __init__(self, inner: Runner):
        super().__init__(inner.input_names)
        self.inner = inner

    def _infer_impl(self, feeds):
        hidden = self.inner.infer(feeds)
        mask = feeds["attention_mask"][..., None].astype(hidden.dtype)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def peer_artifacts(work: Path, model_dir: Path, task: str, ui: UI) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    calib = work / "calib.txt"
    calib.write_text("\n".join(builtin_texts("calibration").texts) + "\n")
    found = []
    for peer, script in PEERS.items():
        python = ROOT / ".bench-venvs" / peer / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"{peer} is not set up: run bash bench/setup_peers.sh first")
        out = work / peer
        if not (out / "peer.json").is_file():
            ui.info(f"running {peer} on {model_dir.name}")
            done = subprocess.run([str(python), str(ROOT / "bench" / "peers" / script), "--model", str(model_dir),
                                   "--task", task, "--calib", str(calib), "--out", str(out)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{peer} failed:\n{done.stderr[-3000:]}")
        for item in json.loads((out / "peer.json").read_text())["artifacts"]:
            file = out / item["file"]
            runner = OrtRunner(file) if item["format"] == "onnx" else OpenVinoRunner(file)
            (file.parent / "manifest.json").write_text(json.dumps({
                "format": item["format"], "files": [file.name], "inputs": list(runner.input_names),
                "vocab_size": 30522}))
            found.append({**item, "peer": peer, "folder": file.parent, "runner": runner,
                          "inference_precision": runner.info().get("inference_precision")})
    return found


def edgeport_artifacts(model: str, targets: list[str], work: Path, ui: UI, eval_path: Path | None) -> list[dict]:
    data = {"model": model, "targets": targets, "profile": {"enabled": False}}
    if eval_path:
        data["eval"] = {"path": str(eval_path)}
    doc = run_export(recipe_from_dict(data), work, ui)
    return [{"name": f"edgeport {name}", "folder": Path(e["artifact"]), "precision": e["precision"],
             "inference_precision": (e.get("runtime_info") or {}).get("inference_precision"),
             "build_seconds": e["build_seconds"], "size_mb": e["size_mb"], "fidelity": e["fidelity"],
             "accuracy": e["accuracy"], "fp32_layers": len((e.get("fallback") or {}).get("fp32_layers") or [])}
            for name, e in doc["targets"].items()]


def folder_size_mb(folder: Path) -> float:
    manifest = json.loads((folder / "manifest.json").read_text())
    files = [folder / f for f in manifest["files"]] or [p for p in folder.glob("*.safetensors")]
    sizes = [f.stat().st_size + (f.with_suffix(".bin").stat().st_size if f.suffix == ".xml" else 0) for f in files]
    return sum(sizes) / 1e6


def _best_rate(run, flops: float, reps: int = 20) -> float:
    for _ in range(3):
        run()
    best = float("inf")
    for _ in range(3):  # best of three blocks: the sustained rate when nothing else interferes
        started = time.perf_counter()
        for _ in range(reps):
            run()
        best = min(best, time.perf_counter() - started)
    return flops * reps / best / 1e9


def matmul_peak(n: int = 2048) -> dict:
    """Sustained GFLOP/s of large matmuls: fp32 (the best of PyTorch and ONNX Runtime), bf16
    (PyTorch, oneDNN), and int8 (ONNX Runtime MatMulInteger, VNNI)."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    def ort_matmul(op, a_type, b_type, out_type, feeds):
        graph = helper.make_graph([helper.make_node(op, ["A", "B"], ["Y"])], "mm",
                                  [helper.make_tensor_value_info("A", a_type, [n, n]),
                                   helper.make_tensor_value_info("B", b_type, [n, n])],
                                  [helper.make_tensor_value_info("Y", out_type, [n, n])])
        session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                       .SerializeToString(), providers=["CPUExecutionProvider"])
        return lambda: session.run(None, feeds)

    flops = 2 * n**3
    a, b = torch.randn(n, n), torch.randn(n, n)
    fp32_torch = _best_rate(lambda: a @ b, flops)
    fp32_ort = _best_rate(ort_matmul("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT,
                                     {"A": a.numpy(), "B": b.numpy()}), flops)
    a16, b16 = a.bfloat16(), b.bfloat16()
    bf16 = _best_rate(lambda: a16 @ b16, flops)
    int8 = _best_rate(ort_matmul("MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, {
        "A": np.random.randint(0, 255, (n, n), dtype=np.uint8),
        "B": np.random.randint(-127, 127, (n, n), dtype=np.int8)}), flops)
    return {"fp32_gflops": max(fp32_torch, fp32_ort), "bf16_gflops": max(bf16, fp32_torch, fp32_ort),
            "int8_gops": int8}


def peak_for(row: dict, peak: dict) -> float:
    """The limit that applies: int8 paths against the INT8 peak; OpenVINO's float paths compute
    in bf16 on CPUs that have it (recorded at verification); the rest in fp32."""
    if row["precision"] == "int8":
        return peak["int8_gops"]
    if "bfloat16" in str(row.get("inference_precision", "")):
        return peak["bf16_gflops"]
    return peak["fp32_gflops"]


def macs_per_inference(model_dir: Path, sequence: int = 128) -> float:
    config = json.loads((model_dir / "config.json").read_text())
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return layers * (4 * sequence * h * h + 2 * sequence * h * i + 2 * sequence * sequence * h)


def _fixed_batch(folder: Path) -> int | None:
    shape = json.loads((folder / "manifest.json").read_text()).get("fixed_shape")
    return shape[0] if shape else None


def timing_rounds(rows: list[dict], rounds: int, runs: int, ui: UI) -> None:
    for row in rows:
        row["p50_b1"], row["p90_b1"], row["p50_b8"], row["p90_b8"], row["rss"] = [], [], [], [], []
    for r in range(rounds):
        for batch in (1, 8):
            for row in rows:  # alternate: one fresh process per artifact, batch and round
                if batch != 1 and _fixed_batch(row["folder"]) not in (None, batch):
                    continue  # a static-shape artifact (TFLite 1 x 128) cannot run batch 8
                ui.info(f"round {r + 1}/{rounds}, batch {batch}: {row['name']}")
                result = profile_local(row["folder"], batch=batch, sequence=128, runs=runs if batch == 1 else runs // 4,
                                       warmup=10)
                row[f"p50_b{batch}"].append(result["latency_ms"]["p50"])
                row[f"p90_b{batch}"].append(result["latency_ms"]["p90"])
                row["rss"].append(result["peak_rss_mb"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-compare")
    args = parser.parse_args()
    quiet_libraries()
    ui = UI()
    if not SST2_MODEL.is_dir():
        raise SystemExit(f"{SST2_MODEL} is missing: the benchmark needs ../shared")
    minilm_dir = path_from_ref("minilm")

    # MiniLM: edgeport targets + peers, fidelity against PyTorch fp32
    rows = edgeport_artifacts("minilm", EMBEDDING_TARGETS, args.work / "minilm", ui, None)
    loaded = model_from_path(minilm_dir)
    reference = reference_from(TorchRunner(loaded), loaded.tokenizer, loaded.family.inputs, False, None, None)
    for peer in peer_artifacts(args.work / "minilm-peers", minilm_dir, "feature-extraction", ui):
        peer["fidelity"] = reference.check(Pooled(peer.pop("runner")))["fidelity"]
        rows.append(peer)
    rows.insert(0, {"name": "PyTorch fp32 eager", "folder": args.work / "minilm" / "model", "precision": "fp32",
                    "inference_precision": "fp32",
                    "build_seconds": 0.0, "fidelity": {"mean_cosine": 1.0}})

    # SST-2: accuracy of the same paths on the classifier
    sst = edgeport_artifacts(str(SST2_MODEL), CLASSIFIER_TARGETS, args.work / "sst2", ui, SST2_DEV)
    loaded_c = model_from_path(SST2_MODEL)
    dev = records_from_file(SST2_DEV, need_labels=True)
    ref_c = reference_from(TorchRunner(loaded_c), loaded_c.tokenizer, loaded_c.family.inputs, True, dev,
                           loaded_c.model.config.id2label)
    accuracy = {"PyTorch fp32 eager": {"artifact": ref_c.check(TorchRunner(loaded_c))["accuracy"]["fp32"],
                                       "drop_points": 0.0, "label_agreement": 1.0}}
    for row in sst:
        accuracy[row["name"]] = row["accuracy"]
    for peer in peer_artifacts(args.work / "sst2-peers", SST2_MODEL, "text-classification", ui):
        accuracy[peer["name"]] = ref_c.check(peer.pop("runner"))["accuracy"]

    peak = matmul_peak()
    macs = macs_per_inference(minilm_dir)
    timing_rounds(rows, args.rounds, args.runs, ui)
    base = statistics.median(rows[0]["p50_b1"])
    peers = [r for r in rows if r.get("peer")]
    best_peer = min(statistics.median(r["p50_b1"]) for r in peers)
    table = []
    for row in rows:
        p50 = statistics.median(row["p50_b1"])
        throughput = 2 * macs / (p50 / 1000) / 1e9
        limit = peak_for(row, peak)
        acc = accuracy.get(row["name"])
        table.append({
            "path": row["name"], "precision": row["precision"], "size_mb": row.get("size_mb") or folder_size_mb(row["folder"]),
            "p50_b1": p50, "p90_b1": statistics.median(row["p90_b1"]), "spread_b1": [min(row["p50_b1"]), max(row["p50_b1"])],
            "p50_b8": statistics.median(row["p50_b8"]) if row["p50_b8"] else None,
            "p90_b8": statistics.median(row["p90_b8"]) if row["p90_b8"] else None,
            "peak_rss_mb": max(row["rss"]), "build_seconds": row.get("build_seconds"),
            "mean_cosine": row["fidelity"]["mean_cosine"], "sst2_accuracy": acc["artifact"] if acc else None,
            "sst2_agreement": acc["label_agreement"] if acc else None,
            "x_pytorch": base / p50, "x_best_peer": best_peer / p50, "fraction_of_peak": throughput / limit,
            "fp32_layers": row.get("fp32_layers", 0),
        })
    document = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_info(), "rounds": args.rounds, "peak": peak,
                "macs_per_inference_b1": macs, "rows": table}
    md = [f"{document['date']}, {document['cpu']['model']} ({document['cpu']['cores']} cores, "
          f"{', '.join(document['cpu']['int8_flags'])}); measured peak: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, "
          f"bf16 {peak['bf16_gflops']:.0f} GFLOP/s, INT8 {peak['int8_gops']:.0f} GOP/s; MiniLM = {macs / 1e9:.2f} GMAC at 1 x 128; {args.rounds} rounds.", "",
          "| path | size MB | b1 p50 ms (spread) | b1 p90 | b8 p50 | b8 p90 | peak RSS MB | build s | MiniLM cos "
          "| SST-2 acc (agree) | × PyTorch | × best peer | % of peak |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in table:
        acc = f"{t['sst2_accuracy'] * 100:.2f} ({t['sst2_agreement'] * 100:.1f}%)" if t["sst2_accuracy"] is not None else "–"
        build = f"{t['build_seconds']:.0f}" if t["build_seconds"] else "–"
        b8 = f"{t['p50_b8']:.1f} | {t['p90_b8']:.1f}" if t["p50_b8"] else "– (static 1×128) | –"
        md.append(f"| {t['path']} | {t['size_mb']:.1f} | {t['p50_b1']:.2f} ({t['spread_b1'][0]:.2f}–{t['spread_b1'][1]:.2f}) "
                  f"| {t['p90_b1']:.2f} | {b8} | {t['peak_rss_mb']:.0f} | {build} "
                  f"| {t['mean_cosine']:.4f} | {acc} | {t['x_pytorch']:.2f} | {t['x_best_peer']:.2f} "
                  f"| {t['fraction_of_peak'] * 100:.0f}% |")
    write_results("latest", document, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

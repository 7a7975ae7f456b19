#!/usr/bin/env python3
"""The request path: what one real request costs — tokenization, a true-length input, the runtime
call, pooling — for every edgeport x86 target served through `edgeport.runtime`, against PyTorch
(transformers tokenizer + the model + mean pooling, as sentence-transformers computes it).

- Text streams: edgeport's built-in held-out texts, and the SST-2 dev sentences (the first
  --sst2 of them) when ../shared exists; one request per --batch texts, in the file's order.
- Each serving process is fresh (the device agent's ``--texts`` mode for edgeport artifacts, a
  child of this script for PyTorch); processes alternate within each round; the figure is the
  median over rounds of each process's p50 / p90 (the spread over rounds is shown).
- Also: the synthetic 1 x 128 batch (the agent's profile) of each artifact; each LiteRT
  bucket's own latency; the OpenVINO INT8 serving RSS under settings that trade speed for
  memory; peak RSS of every serving process (VmHWM).

    python bench/request_path.py [--rounds 3] [--reuse]

Artifacts are built into runs/bench-request/ by `edgeport export` (cached), the LiteRT 1 x 128
comparison with ``tflite-int8.buckets=`` (one signature). Writes bench/results/request_path.json
and .md. Peers (optimum-intel, optimum-onnx) run only when bench/setup_peers.sh's venvs exist.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SST2_DEV = SHARED / "data" / "sst2" / "dev.tsv"
AGENT = ROOT / "src" / "edgeport" / "devices" / "agent.py"
TARGETS = ["onnx-fp32", "onnx-int8", "openvino-fp16", "openvino-int8", "tflite-int8"]
PEERS = {"optimum-intel": "optimum_intel_peer.py", "optimum-onnx": "optimum_onnx_peer.py"}
OV_CACHE = ROOT / "runs" / "bench-request" / "ov-cache"
OV_MEMORY_SETTINGS = {"default": None, "no shape cache": {"runtime_cache_capacity": 0},
                      "no latency hint": {"performance_hint": None}}


def _last_json(done: subprocess.CompletedProcess, what: str) -> dict:
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def agent_texts(folder: Path, texts: Path, batch: int, passes: int, warmup: int, settings: dict | None = None) -> dict:
    argv = [sys.executable, str(AGENT), "--artifact", str(folder), "--texts", str(texts), "--batch", str(batch),
            "--runs", str(passes), "--warmup", str(warmup)]
    if settings:
        argv += ["--settings", json.dumps(settings)]
    return _last_json(subprocess.run(argv, capture_output=True, text=True, timeout=1800), f"agent --texts {folder}")


def agent_synthetic(folder: Path, runs: int) -> dict:
    argv = [sys.executable, str(AGENT), "--artifact", str(folder), "--batch", "1", "--sequence", "128",
            "--runs", str(runs), "--warmup", "10"]
    return _last_json(subprocess.run(argv, capture_output=True, text=True, timeout=1800), f"agent {folder}")


def child(mode: str, *args: str) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), f"--{mode}", *map(str, args)]
    return _last_json(subprocess.run(argv, capture_output=True, text=True, timeout=1800), f"{mode} {args}")


# ---- children (each its own process) -----------------------------------------------------------

def serve_torch(model_dir: str, texts_file: str, batch: int, passes: int, warmup: int) -> dict:
    """PyTorch fp32 serving real requests: the fast HF tokenizer, the model, pooling (edgeport's
    task module: mean pooling + L2 normalisation, as sentence-transformers does)."""
    sys.path.insert(0, str(ROOT / "src"))
    from edgeport.devices import agent

    rss_before = agent._rss_mb()
    import torch

    from edgeport.model.load import model_from_path
    from edgeport.model.wrappers import task_module

    loaded = model_from_path(Path(model_dir))
    module, tokenizer = task_module(loaded), loaded.tokenizer
    names = loaded.family.inputs

    def predict(texts):
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            return module(**{n: encoded[n] for n in names if n in encoded}).numpy()

    texts = [line.rstrip("\n") for line in open(texts_file, encoding="utf-8") if line.strip()]
    requests = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    predict(requests[0])
    times, wall = agent.time_requests(predict, requests, passes, warmup)
    return {"latency_ms": agent.latency_summary(times), "throughput_per_s": len(texts) * passes / wall,
            "peak_rss_mb": agent._rss_mb(), "rss_before_load_mb": rss_before, "batch": batch, "runs": len(times),
            "runtime": {"name": "torch", "version": torch.__version__, "threads": torch.get_num_threads()}}


def time_buckets(folder: str, runs: int) -> dict:
    """Each LiteRT signature's own latency at batch 1 (synthetic rows of its full length)."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from edgeport.devices.agent import latency_summary
    from edgeport.runtime.backends import LiteRtBackend

    backend = LiteRtBackend(str(Path(folder) / "model.tflite"))
    out = {}
    for length in backend.buckets:
        feeds = {n: np.ones((backend.batch, length), dtype=np.int64) for n in backend.input_names}
        for _ in range(10):
            backend.run(feeds)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            backend.run(feeds)
            times.append((time.perf_counter() - t0) * 1000)
        out[str(length)] = latency_summary(times)
    return out


# ---- the benchmark --------------------------------------------------------------------------------

def build(work: Path) -> tuple[dict, Path]:
    from edgeport.recipe import recipe_from_dict
    from edgeport.stages.flow import run_export
    from edgeport.ui import UI

    ui = UI()
    main = run_export(recipe_from_dict({"model": "minilm", "targets": TARGETS, "profile": {"enabled": False}}),
                      work / "minilm", ui)
    run_export(recipe_from_dict({"model": "minilm", "targets": ["tflite-int8"], "profile": {"enabled": False},
                                 "target_options": {"tflite-int8": {"buckets": ""}}}), work / "minilm-1x128", ui)
    return main.document(), work / "minilm" / "model"


def peer_rows(work: Path, log) -> tuple[list[dict], str]:
    """The peers' INT8 artifacts of MiniLM (built once by bench/peers/*_peer.py in their venvs)."""
    rows, missing = [], []
    model_dir = work / "minilm" / "model"
    for peer, script in PEERS.items():
        python = ROOT / ".bench-venvs" / peer / "bin" / "python"
        if not (ROOT / ".bench-venvs" / peer / ".ready").is_file():
            missing.append(peer)
            continue
        out = work / "peers" / peer
        if not (out / "peer.json").is_file():
            calib = work / "streams" / "calibration.txt"
            from edgeport.calibration.data import builtin_texts

            calib.write_text("\n".join(builtin_texts("calibration").texts) + "\n")
            log(f"building {peer}'s artifacts")
            done = subprocess.run([str(python), str(ROOT / "bench" / "peers" / script), "--model", str(model_dir),
                                   "--task", "feature-extraction", "--calib", str(calib), "--out", str(out)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{peer} failed:\n{done.stderr[-3000:]}")
        for item in json.loads((out / "peer.json").read_text())["artifacts"]:
            if item["precision"] == "int8":
                file = out / item["file"]
                rows.append({"name": item["name"], "kind": "peer", "peer": peer, "python": python,
                             "folder": file.parent, "file_name": file.name, "model": model_dir})
    note = "run: " + ", ".join(PEERS[p] for p in PEERS if p not in missing) if not missing else \
        f"not run for {', '.join(missing)}: bench/setup_peers.sh's venv was not built"
    return rows, note


def peer_serve(row: dict, texts: Path, batch: int, passes: int, warmup: int, sequence: int = 0) -> dict:
    argv = [str(row["python"]), str(ROOT / "bench" / "peers" / "serve_peer.py"), "--peer", row["peer"],
            "--folder", str(row["folder"]), "--file-name", row["file_name"], "--model", str(row["model"]),
            "--texts", str(texts), "--batch", str(batch), "--passes", str(passes), "--warmup", str(warmup),
            "--sequence", str(sequence), "--agent", str(AGENT)]
    return _last_json(subprocess.run(argv, capture_output=True, text=True, timeout=1800), f"{row['name']}")


def peer_fidelity(row: dict, heldout: Path, work: Path) -> dict:
    """Mean and min cosine of a peer's embeddings vs PyTorch fp32 on the held-out texts (the
    texts edgeport's verification grades on)."""
    import numpy as np

    from edgeport.calibration.feeds import batched_feeds
    from edgeport.model.load import model_from_path
    from edgeport.model.torch_runner import TorchRunner
    from edgeport.verify import cosine_rows, run_batches

    dump = work / "peers" / f"{row['peer']}-heldout.npy"
    argv = [str(row["python"]), str(ROOT / "bench" / "peers" / "serve_peer.py"), "--peer", row["peer"],
            "--folder", str(row["folder"]), "--file-name", row["file_name"], "--model", str(row["model"]),
            "--texts", str(heldout), "--agent", str(AGENT), "--dump", str(dump)]
    subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=True)
    loaded = model_from_path(row["model"])
    texts = [line for line in heldout.read_text().splitlines() if line.strip()]
    reference = run_batches(TorchRunner(loaded), batched_feeds(loaded.tokenizer, texts, loaded.family.inputs, 16))
    cos = cosine_rows(np.load(dump), reference)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "samples": len(texts)}


def rows_of(work: Path) -> list[dict]:
    rows = [{"name": "PyTorch fp32", "kind": "torch", "folder": work / "minilm" / "model"}]
    for name in TARGETS:
        folder = work / "minilm" / "targets" / name
        manifest = json.loads((folder / "manifest.json").read_text())
        label = f"edgeport {name}" + (" (buckets " + ",".join(map(str, manifest["request_path"]["buckets"])) + ")"
                                      if manifest["request_path"]["shapes"] == "buckets" else "")
        rows.append({"name": label, "kind": "edgeport", "folder": folder, "manifest": manifest})
    folder = work / "minilm-1x128" / "targets" / "tflite-int8"
    if (folder / "manifest.json").is_file():  # built with buckets= (one 1 x 128 signature)
        rows.append({"name": "edgeport tflite-int8 (1 x 128 only)", "kind": "edgeport", "folder": folder,
                     "manifest": json.loads((folder / "manifest.json").read_text())})
    else:  # the bucketed artifact served by its longest (1 x 128) signature alone
        folder = work / "minilm" / "targets" / "tflite-int8"
        rows.append({"name": "edgeport tflite-int8 (longest signature 1 x 128 only)", "kind": "edgeport",
                     "folder": folder, "settings": {"longest_only": True},
                     "manifest": json.loads((folder / "manifest.json").read_text())})
    return rows


def streams(work: Path, sst2: int, heldout_count: int | None = None) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "src"))
    from edgeport.calibration.data import builtin_texts

    out = {}
    folder = work / "streams"
    folder.mkdir(parents=True, exist_ok=True)
    heldout = folder / "heldout.txt"
    chosen = builtin_texts("heldout").texts[:heldout_count]
    heldout.write_text("\n".join(chosen) + "\n")
    out[f"held-out texts ({len(chosen)})"] = heldout
    if SST2_DEV.is_file():
        lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]
        sentences = [line.split("\t")[0].strip() for line in lines if line.strip()][:sst2]
        path = folder / "sst2-dev.txt"
        path.write_text("\n".join(sentences) + "\n")
        out[f"SST-2 dev ({len(sentences)} sentences)"] = path
    return out


def measure(rows, texts: dict[str, Path], rounds: int, warmup: int, passes: int, synthetic_runs: int, log) -> dict:
    results: dict = {}
    for r in range(rounds):
        order = rows[r % len(rows):] + rows[:r % len(rows)]  # alternate who goes first
        for stream, path in texts.items():
            for batch in (1, 8):
                for row in order:
                    log(f"round {r + 1}/{rounds} {stream} batch {batch}: {row['name']}")
                    if row["kind"] == "torch":
                        result = child("serve-torch", row["folder"], path, batch, passes, warmup)
                    elif row["kind"] == "peer":
                        result = peer_serve(row, path, batch, passes, warmup)
                    else:
                        result = agent_texts(row["folder"], path, batch, passes, warmup, row.get("settings"))
                    results.setdefault((stream, batch, row["name"]), []).append(result)
        for row in order:
            if row.get("settings"):  # the same artifact as another row: the same 1 x 128 graph
                continue
            log(f"round {r + 1}/{rounds} 1 x 128: {row['name']}")
            if row["kind"] == "peer":  # 100 requests of one text padded to 128 tokens
                one = texts[next(iter(texts))].parent / "one.txt"
                one.write_text("a sentence padded to 128 tokens\n" * synthetic_runs)
                result = peer_serve(row, one, 1, 1, 10, sequence=128)
            else:
                result = agent_synthetic(row["folder"], synthetic_runs)
            results.setdefault(("1 x 128", 1, row["name"]), []).append(result)
    return results


def summary(runs: list[dict]) -> dict:
    p50 = [x["latency_ms"]["p50"] for x in runs]
    p90 = [x["latency_ms"]["p90"] for x in runs]
    loads = [x["load_ms"] for x in runs if x.get("load_ms") is not None]
    return {"p50_ms": statistics.median(p50), "p50_min": min(p50), "p50_max": max(p50),
            "p90_ms": statistics.median(p90), "throughput_per_s": statistics.median(x["throughput_per_s"] for x in runs),
            "peak_rss_mb": max(x["peak_rss_mb"] for x in runs), "rounds": len(runs),
            "load_ms": statistics.median(loads) if loads else None,
            "tokens": runs[0].get("tokens"), "runtime": runs[0].get("runtime")}


def matmul_gauge() -> float:
    """GFLOP/s of a 512^3 fp32 numpy matmul right now: how much of the machine this run had (a
    quiet core of this class does tens of GFLOP/s; other work on the machine shows here)."""
    import numpy as np

    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return round(2 * 512 ** 3 / best / 1e9, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sst2", type=int, default=400, help="SST-2 dev sentences in the stream")
    parser.add_argument("--heldout", type=int, default=None, help="the first N held-out texts [all 105]")
    parser.add_argument("--synthetic-runs", type=int, default=100, help="timed runs of the 1 x 128 batch")
    parser.add_argument("--passes", type=int, default=2, help="passes over a stream per serving process")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-request")
    parser.add_argument("--reuse", action="store_true", help="use the artifacts already in --work (no build)")
    parser.add_argument("--no-peers", action="store_true", help="leave the peers out even where set up")
    parser.add_argument("--serve-torch", nargs=5, metavar=("MODEL", "TEXTS", "BATCH", "PASSES", "WARMUP"))
    parser.add_argument("--time-buckets", nargs=2, metavar=("FOLDER", "RUNS"))
    args = parser.parse_args()
    if args.serve_torch:
        model, texts, batch, passes, warmup = args.serve_torch
        print(json.dumps(serve_torch(model, texts, int(batch), int(passes), int(warmup))))
        return 0
    if args.time_buckets:
        print(json.dumps(time_buckets(args.time_buckets[0], int(args.time_buckets[1]))))
        return 0

    sys.path.insert(0, str(ROOT / "src"))
    from edgeport.exporter.graph import linear_macs_from_onnx
    from edgeport.ui import quiet_libraries

    quiet_libraries()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if not args.reuse:
        build(args.work)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    gauge_start = matmul_gauge()
    texts = streams(args.work, args.sst2, args.heldout)
    peers, peer_note = ([], "left out (--no-peers)") if args.no_peers else peer_rows(args.work, log)
    rows = rows_of(args.work) + peers
    for row in peers:
        row["fidelity"] = peer_fidelity(row, next(iter(texts.values())), args.work)
    raw = measure(rows, texts, args.rounds, args.warmup, args.passes, args.synthetic_runs, log)

    log("LiteRT buckets, one by one")
    buckets = child("time-buckets", args.work / "minilm" / "targets" / "tflite-int8", 100)
    log("OpenVINO INT8 serving memory at batch 1")
    ov = args.work / "minilm" / "targets" / "openvino-int8"
    first = next(iter(texts.values()))
    memory, memory_settings = {}, {**OV_MEMORY_SETTINGS, "compiled-model cache, warm": {"cache_dir": str(OV_CACHE)}}
    agent_texts(ov, first, 1, 1, 1, memory_settings["compiled-model cache, warm"])  # writes the cache
    for _ in range(args.rounds):
        for label, settings in memory_settings.items():
            memory.setdefault(label, []).append(agent_texts(ov, first, 1, args.passes, args.warmup, settings))
    fp32_onnx = args.work / "minilm" / "targets" / "onnx-fp32" / "model.onnx"
    document = {
        "machine": {"fp32_matmul_gflops_start_end": [gauge_start, matmul_gauge()],
                    "int8_matmul_gops": int8_matmul_gauge(), "load_average_at_end": list(os.getloadavg())},
        "started": started, "rounds": args.rounds, "passes": args.passes, "warmup": args.warmup,
        "streams": {k: str(v) for k, v in texts.items()}, "peers": peer_note,
        "linear_macs_per_token": sum(linear_macs_from_onnx(fp32_onnx).values()),
        "rows": [{"name": row["name"], "kind": row["kind"]} for row in rows],
        "fidelity": {row["name"]: row.get("fidelity") or (row.get("manifest") or {}).get("verification", {})
                     .get("fidelity") for row in rows},
        "results": [{"stream": s, "batch": b, "row": n, **summary(v)} for (s, b, n), v in raw.items()],
        "litert_buckets_ms": buckets,
        "openvino_int8_memory": {label: {**summary(v), "settings": memory_settings[label]}
                                 for label, v in memory.items()},
    }
    from _results import write_results

    write_results("request_path", document, render)
    return 0


def int8_matmul_gauge(n: int = 1024) -> float:
    """GOP/s of one u8 x s8 n^3 MatMulInteger in ONNX Runtime on all cores: the machine's INT8
    matmul peak as the INT8 artifacts' runtime reaches it."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "w")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "gauge",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8)}
    session.run(None, feed)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - t0)
    return round(2 * n ** 3 / best / 1e9, 1)


def _edgeport_int8(name: str) -> bool:
    return name.startswith("edgeport ") and "int8" in name and "1 x 128" not in name


def render(doc: dict) -> list[str]:
    """The README block: one table (p50 per request by stream, 1 x 128, peak RSS, fidelity),
    the issue's ratios, LiteRT's buckets and the OpenVINO INT8 memory settings."""
    from _results import provenance_line

    names = [row["name"] for row in doc["rows"]]
    kinds = {row["name"]: row["kind"] for row in doc["rows"]}
    by = {(r["stream"], r["batch"], r["row"]): r for r in doc["results"]}
    columns = list(dict.fromkeys((r["stream"], r["batch"]) for r in doc["results"]))
    tokens = {s: r["tokens"] for r in doc["results"] for s in [r["stream"]] if r["tokens"]}
    m = doc["machine"]
    head = ["serving"] + [f"{s.split(' (')[0]}, batch {b}" if s != "1 x 128" else "1 x 128" for s, b in columns] + \
        ["peak RSS MB", "mean cos (held-out)"]
    lines = [provenance_line(doc, "bench/request_path.py"), "",
             f"p50 ms per request, median over {doc['rounds']} rounds (each serving process fresh, processes "
             f"alternating, passes over each stream: {doc['passes']}). Streams: "
             + "; ".join(f"{s}: tokens per text mean {t['mean']:.1f}, p90 {t['p90']:.0f}" for s, t in tokens.items())
             + f". Machine: fp32 512³ matmul {' / '.join(map(str, m['fp32_matmul_gflops_start_end']))} GFLOP/s "
             f"(start / end), INT8 1024³ MatMulInteger {m['int8_matmul_gops']} GOP/s. Peers: {doc['peers']}.", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name in names:
        cells = []
        for s, b in columns:
            r = by.get((s, b, name))
            cells.append(f"{r['p50_ms']:.2f}" if r else "–")
        rss = max((by[(s, b, name)]["peak_rss_mb"] for s, b in columns if (s, b, name) in by), default=None)
        fid = doc["fidelity"].get(name)
        cells += [f"{rss:.0f}" if rss else "–", f"{fid['mean_cosine']:.4f}" if fid else "1 (reference)"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [""]
    peers = [n for n in names if kinds[n] == "peer"]
    for s, b in columns:
        if b != 1:
            continue
        ours = {n: by[(s, b, n)]["p50_ms"] for n in names if _edgeport_int8(n) and (s, b, n) in by}
        theirs = {n: by[(s, b, n)]["p50_ms"] for n in peers if (s, b, n) in by}
        if ours and theirs:
            best, peer = min(ours, key=ours.get), min(theirs, key=theirs.get)
            lines.append(f"- {s}, batch 1: fastest edgeport INT8 ({best}) / fastest peer ({peer}) p50 = "
                         f"{ours[best] / theirs[peer]:.2f}")
    macs = doc["linear_macs_per_token"] * 128
    for n in names:
        r = by.get(("1 x 128", 1, n))
        if r and _edgeport_int8(n) and "tflite" not in n:
            lines.append(f"- {n} at 1 x 128: {2 * macs / (r['p50_ms'] / 1000) / 1e9:.0f} GOP/s of linear-layer "
                         f"work = {2 * macs / (r['p50_ms'] / 1000) / 1e9 / m['int8_matmul_gops']:.0%} of the "
                         f"INT8 matmul peak")
    bucketed = next((n for n in names if n.startswith("edgeport tflite-int8 (buckets")), None)
    single = next((n for n in names if n.startswith("edgeport tflite-int8") and "1 x 128" in n), None)
    if bucketed and single:
        for s, b in columns:
            if s != "1 x 128" and (s, b, bucketed) in by and (s, b, single) in by:
                lines.append(f"- LiteRT INT8, {s}, batch {b}: 1 x 128 signature / buckets p50 = "
                             f"{by[(s, b, single)]['p50_ms'] / by[(s, b, bucketed)]['p50_ms']:.1f}x")
    lines += ["", "LiteRT INT8, each bucket alone (batch 1): " + ", ".join(
        f"{k} tokens {v['p50']:.2f} ms" for k, v in doc["litert_buckets_ms"].items()) + ".", "",
        "OpenVINO INT8 serving at batch 1 (first stream), by setting: " + "; ".join(
            f"{k}{' ' + _settings_text(v['settings']) if v['settings'] else ''}: p50 {v['p50_ms']:.2f} ms, peak RSS "
            f"{v['peak_rss_mb']:.0f} MB" + (f", load and first request {v['load_ms']:.0f} ms" if v.get("load_ms") else "")
            for k, v in doc["openvino_int8_memory"].items()) + "."]
    return lines


def _settings_text(settings: dict) -> str:
    """A setting as the README shows it (the cache folder by its name, not the machine's path)."""
    shown = {k: (Path(v).name if k == "cache_dir" and v else v) for k, v in settings.items()}
    return json.dumps(shown)


if __name__ == "__main__":
    sys.exit(main())

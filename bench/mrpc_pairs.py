#!/usr/bin/env python3
"""A sentence-pair classifier, as a team would bring one: MiniLM fine-tuned on MRPC paraphrase
pairs, then exported to onnx-int8, openvino-int8 and tflite-int8 with pair calibration data.

Reproducible from this script alone (seeded):

1. ``../shared/data/mrpc/train.tsv`` (4,076 pairs) is split, label-stratified with seed 0, into
   a fine-tuning part and ``--heldout`` pairs that the fine-tuning never sees.
2. The MiniLM encoder (`minilm`) gets a 2-label head and is fine-tuned on the first part
   (``--epochs``, batch 32, AdamW, lr 5e-5, pairs at their own length), saved as safetensors.
3. The export, as a user runs it::

       edgeport --json export MODEL --target onnx-int8,openvino-int8,tflite-int8 \\
           --eval heldout.tsv --text-column sentence1 --text-pair-column sentence2 --label-column label \\
           --calib calib.tsv --calib-size 200 --no-profile --out RUN

   calibration: 200 pairs of the fine-tuning part; the held-out pairs are split by edgeport in
   half (label-stratified, seeded): the budget chooses on one half, the figures are reported on
   the other, which chose nothing.

    python bench/mrpc_pairs.py [--epochs 2] [--heldout 1000]

Needs ../shared. Writes bench/results/mrpc_pairs.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from _results import provenance_line, write_results

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "mrpc" / "train.tsv"
TARGETS = "onnx-int8,openvino-int8,tflite-int8"


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [(r["sentence1"], r["sentence2"], int(r["label"]))
                for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]


def write_pairs(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("sentence1\tsentence2\tlabel\n")
        for a, b, label in rows:
            fh.write(f"{a}\t{b}\t{label}\n")


def split(rows, heldout: int, seed: int = 0):
    """Label-stratified: ``heldout`` pairs out, the rest for fine-tuning."""
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row[2], []).append(i)
    out: set[int] = set()
    for label, idx in sorted(by_label.items()):
        rng.shuffle(idx)
        out.update(idx[:round(heldout * len(idx) / len(rows))])
    return [r for i, r in enumerate(rows) if i not in out], [r for i, r in enumerate(rows) if i in out]


def fine_tune(rows, out: Path, epochs: int, seed: int = 0) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgeport.model.load import path_from_ref

    torch.manual_seed(seed)
    base = path_from_ref("minilm")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label={0: "not_paraphrase", 1: "paraphrase"},
        label2id={"not_paraphrase": 0, "paraphrase": 1})
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    order = list(range(len(rows)))
    rng = random.Random(seed)
    log, started = [], time.perf_counter()
    model.train()
    for epoch in range(epochs):
        rng.shuffle(order)
        total = 0.0
        for step in range(0, len(order), 32):
            batch = [rows[i] for i in order[step:step + 32]]
            enc = tokenizer([a for a, _, _ in batch], [b for _, b, _ in batch], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([y for _, _, y in batch])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            total += float(loss.detach()) * len(batch)
        log.append({"epoch": epoch + 1, "train_loss": round(total / len(rows), 4)})
        print(f"epoch {epoch + 1}: loss {total / len(rows):.4f}", file=sys.stderr, flush=True)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"epochs": epochs, "batch": 32, "lr": 5e-5, "seed": seed, "pairs": len(rows), "log": log,
            "seconds": round(time.perf_counter() - started)}


def _relative(value):
    """Paths in a result as seen from the repository root (the document is the same on any clone)."""
    if isinstance(value, dict):
        return {k: _relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v) for v in value]
    return value.replace(str(ROOT) + "/", "") if isinstance(value, str) else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-mrpc")
    args = parser.parse_args()
    if not TRAIN.is_file():
        raise SystemExit(f"{TRAIN} is missing: this benchmark needs ../shared beside the checkout")
    args.work.mkdir(parents=True, exist_ok=True)
    tune_rows, heldout = split(read_pairs(TRAIN), args.heldout)
    write_pairs(args.work / "heldout.tsv", heldout)
    write_pairs(args.work / "calib.tsv", tune_rows)
    model = args.work / "model"
    training = fine_tune(tune_rows, model, args.epochs)
    argv = ["edgeport", "--json", "export", str(model), "--target", TARGETS, "--eval", str(args.work / "heldout.tsv"),
            "--text-column", "sentence1", "--text-pair-column", "sentence2", "--label-column", "label",
            "--calib", str(args.work / "calib.tsv"), "--calib-size", "200", "--no-profile",
            "--out", str(args.work / "run")]
    done = subprocess.run([sys.executable, "-m", "edgeport.cli", *argv[1:]], cwd=ROOT, capture_output=True, text=True)
    sys.stderr.write(done.stderr[-3000:])
    if done.returncode not in (0, 5):
        raise SystemExit(f"the export failed with exit code {done.returncode}")
    results = json.loads(done.stdout)
    rows = []
    for target, entry in results["targets"].items():
        fallback = entry.get("fallback") or {}
        rows.append(_relative({"target": target, "size_mb": entry["size_mb"], "accuracy": entry["accuracy"],
                               "fidelity": entry.get("fidelity"), "budget_met": fallback.get("met", True),
                               "fp32_layers": fallback.get("fp32_layers", []), "selection": fallback.get("selection"),
                               "int8_mac_share": entry.get("int8_mac_share")}))
    document = {"edgeport_command": " ".join(argv).replace(str(ROOT) + "/", ""), "exit_code": done.returncode,
                "split": {"source": "../shared/data/mrpc/train.tsv", "fine_tuning_pairs": len(tune_rows),
                          "heldout_pairs": len(heldout), "seed": 0, "stratified": True},
                "training": training, "fp32_size_mb": results["model"]["size_mb"], "rows": rows}
    write_results("mrpc_pairs", document, render)
    return 0


def render(document: dict) -> list[str]:
    s, t = document["split"], document["training"]
    lines = [provenance_line(document, "bench/mrpc_pairs.py"), "",
             f"MiniLM fine-tuned on {s['fine_tuning_pairs']} MRPC pairs ({t['epochs']} epochs, {t['seconds']} s here); "
             f"{s['heldout_pairs']} held-out pairs (label-stratified, seed {s['seed']}) never seen in fine-tuning. "
             f"The export: `{document['edgeport_command']}` (exit code {document['exit_code']}).", "",
             "| target | size MB (fp32 " + f"{document['fp32_size_mb']:.1f}" + ") | report: accuracy fp32 → artifact "
             "(artifact − fp32, points) | label agreement | score correlation | report pairs | budget chose on | layers kept fp32 |",
             "|---|---:|---|---:|---:|---:|---|---:|"]
    for row in document["rows"]:
        acc, fid, sel = row["accuracy"], row["fidelity"] or {}, row["selection"] or {}
        corr = fid.get("score_pearson")
        met = "" if row["budget_met"] else " (budget NOT met)"
        lines.append(f"| {row['target']}{met} | {row['size_mb']:.1f} | {acc['fp32']:.2%} → {acc['artifact']:.2%} "
                     f"({(acc['artifact'] - acc['fp32']) * 100:+.2f}) | {acc['label_agreement']:.2%} | "
                     f"{f'{corr:.4f}' if corr is not None else '–'} | {acc['samples']} | "
                     f"{sel.get('source', '–')} ({sel.get('samples', '–')}) | {len(row['fp32_layers'])} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())

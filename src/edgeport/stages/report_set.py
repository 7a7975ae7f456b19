"""The report set kept in the run folder (``RUN_DIR/reference/``): the texts that graded every
artifact of the run (the held-out texts, and the labelled eval texts with their class indices
when there were any) with the fp32 reference outputs on them, as the build computed them —
so that `edgeport profile` can run the same inputs through an artifact on a device and
compare without the model, the eval file or a second fp32 pass.

Written by the export flow after its targets are built; a run folder made before this
existed has none (device verification then says so)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.calibration.data import Records
from edgeport.errors import InputError
from edgeport.runs import MANIFEST, RunDir, atomic_dir, mark_stage, read_json, stage_is_current, write_json
from edgeport.stages.reference import Reference, TextSet

PARTS = ("heldout", "eval")


@dataclass
class ReportSet:
    task: str
    classifier: bool
    pairs: bool
    heldout: TextSet
    eval: TextSet | None = None

    def parts(self) -> list[tuple[str, TextSet]]:
        return [(name, part) for name, part in (("heldout", self.heldout), ("eval", self.eval)) if part is not None]


def _lines(texts: TextSet) -> list[str]:
    records = texts.records
    lines = []
    for i, text in enumerate(records.texts):
        row: dict = {"text": text}
        if records.pairs is not None:
            row["text_pair"] = records.pairs[i]
        if texts.labels is not None:
            row["label"] = int(texts.labels[i])
        lines.append(json.dumps(row, ensure_ascii=False))
    return lines


def save_report_set(run: RunDir, reference: Reference) -> None:
    """The reference's report side into RUN_DIR/reference/ (rewritten only when it changed)."""
    parts = [(name, texts) for name, texts in (("heldout", reference.report.heldout), ("eval", reference.report.eval))
             if texts is not None]
    digest = hashlib.sha256(reference.task.encode())
    for name, texts in parts:
        digest.update(name.encode() + "\n".join(_lines(texts)).encode())
        digest.update(np.ascontiguousarray(texts.outputs, dtype=np.float32).tobytes())
    key = digest.hexdigest()
    if stage_is_current(run.reference_dir, key):
        return
    with atomic_dir(run.reference_dir) as tmp:
        manifest = {"task": reference.task, "classifier": reference.classifier, "pairs": reference.pairs,
                    "outputs": "fp32 reference at natural lengths (the build's check, batches of 16 in file order)"}
        for name, texts in parts:
            (tmp / f"{name}.jsonl").write_text("\n".join(_lines(texts)) + "\n", encoding="utf-8")
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(texts.outputs, dtype=np.float32))
            manifest[name] = {"source": texts.source, "samples": len(texts.records.texts),
                              "labelled": texts.labels is not None}
        write_json(tmp / MANIFEST, manifest)
        mark_stage(tmp, key)


def _part(folder: Path, name: str, info: dict) -> TextSet:
    rows = [json.loads(line) for line in (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    outputs = np.load(folder / f"{name}.npy", allow_pickle=False)
    if len(rows) != info["samples"] or outputs.shape[0] != len(rows):
        raise InputError(f"'{folder}' is damaged: {name} holds {len(rows)} texts and {outputs.shape[0]} outputs, "
                         f"its manifest says {info['samples']}", hint="export again into this run folder")
    pairs = [row["text_pair"] for row in rows] if rows and "text_pair" in rows[0] else None
    labels = [int(row["label"]) for row in rows] if info.get("labelled") else None
    return TextSet(Records(info["source"], [row["text"] for row in rows], pairs=pairs), outputs, labels)


def load_report_set(run: RunDir) -> ReportSet | None:
    """The run folder's report set, or None when it keeps none."""
    folder = run.reference_dir
    if not (folder / MANIFEST).is_file():
        return None
    try:
        manifest = read_json(folder / MANIFEST)
        heldout = _part(folder, "heldout", manifest["heldout"])
        evaluation = _part(folder, "eval", manifest["eval"]) if "eval" in manifest else None
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"'{folder}' is damaged: {exc}", hint="export again into this run folder") from exc
    return ReportSet(manifest["task"], bool(manifest["classifier"]), bool(manifest["pairs"]), heldout, evaluation)

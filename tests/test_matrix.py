"""The task x family x target matrix: every (family, task) pair as a tiny random model built
from its config, exported by the CLI to each target (budget off: ``--min-fidelity 0``, no
profile), or refused by the target before building (the refusal path itself is tested in
tests/test_targets.py, part of `make test`). Each outcome (fidelity figure or refusal
reason) is recorded in matrix.json under $EDGEPORT_TEST_ARTIFACTS (else the session's tmp
folder); ``bench/matrix.py`` renders the README's matrix from such a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeport.model.load import kind_of_folder
from edgeport.targets.registry import describe_all
from tests.conftest import NEW_FAMILIES

# Every (family, task, target) cell: about half an hour on 2 cores, so `make test` leaves it out
# (tests/test_families.py covers each family's export parity and compression there) and
# `make matrix` runs it and re-renders the README's matrix from what it recorded.
pytestmark = pytest.mark.matrix

X86 = ("onnx-fp32", "onnx-int8", "openvino-fp16", "openvino-int8")
LITERT = ("tflite-fp32", "tflite-int8")
# the least mean cosine vs fp32 a target must reach on a tiny random model. Quantized targets get a
# loose floor: a random classifier's logits are near zero and near-tied (measured: DeBERTa's
# max |logit| ~1e-3), so int8 noise moves them a lot; the figures are recorded as measured.
FLOOR = {"onnx-fp32": 0.9999, "openvino-fp16": 0.999, "tflite-fp32": 0.9999,
         "onnx-int8": 0.5, "openvino-int8": 0.5, "tflite-int8": 0.5}
CASES = [(family, task) for family in NEW_FAMILIES for task in ("feature-extraction", "text-classification")]


@pytest.fixture(scope="session")
def matrix_file(tmp_path_factory):
    root = os.environ.get("EDGEPORT_TEST_ARTIFACTS")
    folder = Path(root) if root else tmp_path_factory.mktemp("matrix")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "matrix.json"


def record(path: Path, family: str, task: str, target: str, outcome: dict) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {"cells": []}
    data["cells"] = [c for c in data["cells"] if (c["family"], c["task"], c["target"]) != (family, task, target)]
    data["cells"].append({"family": family, "task": task, "target": target, **outcome})
    path.write_text(json.dumps(data, indent=1) + "\n")


def export_and_record(tiny_models, run_cli, tmp_path, matrix_file, family, task, targets, extra=()):
    folder = tiny_models(family, task)
    found_family, found_task = kind_of_folder(folder)
    assert (found_family.name, found_task) == (family, task)
    verdicts = {i.name: i.handles for i in describe_all(family, task) if i.name in targets}
    refused = {name: v.reason for name, v in verdicts.items() if not v.available}
    for name, reason in refused.items():  # said before building: the CLI refuses it with exit 2
        code, _, err = run_cli("export", folder, "--target", name, "--no-profile", "--out", tmp_path / "refused")
        assert code == 2 and reason in err, err
        assert not (tmp_path / "refused" / "onnx").exists()
        record(matrix_file, family, task, name, {"status": "refused", "reason": reason})
    wanted = [t for t in targets if t not in refused]
    if not wanted:
        return
    code, out, err = run_cli("--json", "export", folder, "--target", ",".join(wanted), "--min-fidelity", "0",
                             "--no-profile", "--calib-size", "32", "--out", tmp_path / "run", *extra)
    assert code == 0, err
    document = json.loads(out)
    parity = json.loads((tmp_path / "run" / "onnx" / "manifest.json").read_text())["parity"]
    assert parity["max_abs"] < 1e-4
    for name in wanted:
        entry = document["targets"][name]
        fid = entry["fidelity"]
        assert fid["samples"] > 0 and fid["mean_cosine"] >= FLOOR[name], (name, fid)
        record(matrix_file, family, task, name, {
            "status": "ok", "mean_cosine": round(fid["mean_cosine"], 5), "top1_agreement": fid["top1_agreement"],
            "max_abs_error": fid["max_abs_error"],
            "onnx_parity_max_abs": parity["max_abs"], "size_mb": entry["size_mb"]})


@pytest.mark.parametrize("family,task", CASES)
def test_x86_targets(tiny_models, run_cli, tmp_path, matrix_file, family, task):
    export_and_record(tiny_models, run_cli, tmp_path, matrix_file, family, task, X86)


@pytest.mark.parametrize("family,task", CASES)
def test_litert_targets(tiny_models, run_cli, tmp_path, matrix_file, family, task):
    export_and_record(tiny_models, run_cli, tmp_path, matrix_file, family, task, LITERT,
                      ("--option", "tflite-fp32.sequence=32", "--option", "tflite-int8.sequence=32"))

"""The CLI end to end on tiny models: the results contract, caching, and every user error
(one clear line, a documented exit code, no traceback, nothing half-written)."""

from __future__ import annotations

import json

import pytest

from edgeport.results import Results

FAST = ("--runs", "5", "--calib-size", "30")


def _no_partial(out_dir):
    assert not out_dir.exists(), f"partial output left: {list(out_dir.rglob('*'))}"


def test_export_json_contract(tiny_models, tmp_path, run_cli):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli("--json", "export", tiny_models("bert"), "--target", "onnx-fp32,onnx-int8",
                                   "--out", out, "--min-fidelity", "0", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)  # stdout holds the document alone
    Results.model_validate(doc)
    assert doc["schema_version"] == 1 and doc["model"]["family"] == "bert"
    for name in ("onnx-fp32", "onnx-int8"):
        entry = doc["targets"][name]
        assert set(entry["latency_ms"]) >= {"p50", "p90", "p99", "mean"}
        assert entry["size_mb"] > 0 and entry["peak_rss_mb"] > 0
        assert (out / "targets" / name / "manifest.json").is_file()
    assert doc["targets"]["onnx-fp32"]["fidelity"]["mean_cosine"] > 0.99999
    # quantized: close to fp32, and not identical to it (INT8 really ran)
    assert 0.95 < doc["targets"]["onnx-int8"]["fidelity"]["mean_cosine"] < 0.99999
    assert doc["baseline"]["runtime"]["name"] == "torch"
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["targets"].keys() == doc["targets"].keys()
    assert "| onnx-int8 |" in (out / "report.md").read_text()
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_second_export_reuses_cached_stages(tiny_models, tmp_path, run_cli):
    args = ("export", tiny_models("distilbert"), "--target", "onnx-fp32", "--out", tmp_path / "r", "--no-profile")
    assert run_cli(*args)[0] == 0
    code, stdout, stderr = run_cli(*args)
    assert code == 0
    assert "(cached)" in stderr and stderr.count("(cached)") >= 3  # model, onnx, target


def test_classifier_eval_accuracy_on_a_report_split_the_budget_never_saw(tiny_models, tmp_path, run_cli, sst_like):
    from edgeport.calibration.data import records_from_file, split_for_selection
    from edgeport.calibration.feeds import feeds_from_texts
    from edgeport.model.load import model_from_path
    from edgeport.model.torch_runner import TorchRunner

    folder = tiny_models("roberta", "text-classification")
    code, stdout, stderr = run_cli("--json", "export", folder, "--target", "onnx-int8", "--out", tmp_path / "r",
                                   "--eval", sst_like, "--max-drop", "5", "--min-fidelity", "0.9", "--no-profile")
    assert code == 0, stderr
    entry = json.loads(stdout)["targets"]["onnx-int8"]
    acc, selection = entry["accuracy"], entry["fallback"]["selection"]
    # half of the 24 labelled rows chose (label-stratified), the other half graded
    assert selection["samples"] == 12 and acc["samples"] == 12 and "selection split" in selection["source"]
    assert "report split" in acc["source"] and selection["heldout"] == "builtin:selection"
    assert entry["fidelity"]["source"] == "builtin:heldout"
    # fp32 accuracy recomputed by hand on the same report rows
    _, report = split_for_selection(records_from_file(sst_like, need_labels=True))
    loaded = model_from_path(folder)
    logits = TorchRunner(loaded).infer(feeds_from_texts(loaded.tokenizer, report.texts, loaded.family.inputs))
    assert acc["fp32"] == pytest.approx(float((logits.argmax(-1) == [int(x) for x in report.labels]).mean()))
    assert acc["drop_points"] == pytest.approx((acc["fp32"] - acc["artifact"]) * 100)


def test_budget_not_met_exits_nonzero_and_keeps_closest(tiny_models, tmp_path, run_cli):
    out = tmp_path / "r"
    code, stdout, stderr = run_cli("export", tiny_models("bert"), "--target", "onnx-int8", "--out", out,
                                   "--min-fidelity", "1.0", "--calib-size", "20", "--no-profile")
    assert code == 5
    assert "budget not met" in stderr
    manifest = json.loads((out / "targets" / "onnx-int8" / "manifest.json").read_text())
    assert manifest["fallback"]["met"] is False and manifest["fallback"]["sensitivity"]
    assert json.loads((out / "results.json").read_text())["warnings"]


def test_build_from_onnx(tiny_models, tmp_path, run_cli):
    first = tmp_path / "first"
    assert run_cli("export", tiny_models("bert"), "--target", "onnx-fp32", "--out", first, "--no-profile")[0] == 0
    code, stdout, stderr = run_cli("--json", "build", first / "onnx" / "model.onnx", "--tokenizer", first / "model",
                                   "--target", "onnx-int8", "--out", tmp_path / "second", "--min-fidelity", "0",
                                   "--no-profile")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["model"]["family"] == "bert" and doc["targets"]["onnx-int8"]["fidelity"]["samples"] > 50


@pytest.mark.parametrize("case,code,needle", [
    ("missing-model", 3, "does not exist"),
    ("not-a-model", 3, "no config.json"),
    ("unknown-target", 2, "unknown target 'gpu-int2'"),
    ("no-modelopt-venv", 4, "make setup-tensorrt"),
    ("empty-calib", 3, "is empty"),
    ("malformed-calib", 3, "line 1 is not valid JSON"),
    ("eval-no-columns", 3, "has no label column 'stars'"),
    ("corrupt-onnx", 3, "cannot be read as ONNX"),
    ("eval-on-embeddings", 2, "accuracy of classifiers"),
    ("bad-option", 2, "is not TARGET.KEY=VALUE"),
])
def test_user_errors(tiny_models, tmp_path, run_cli, sst_like, case, code, needle, monkeypatch):
    out = tmp_path / "out"
    model = str(tiny_models("bert"))
    base = ["export", model, "--target", "onnx-fp32", "--out", out, "--no-profile"]
    if case == "missing-model":
        args = ["export", tmp_path / "nope", "--out", out]
    elif case == "not-a-model":
        (tmp_path / "plain").mkdir()
        args = ["export", tmp_path / "plain", "--out", out]
    elif case == "unknown-target":
        args = ["export", model, "--target", "onnx-int8,gpu-int2", "--out", out]
    elif case == "no-modelopt-venv":
        import edgeport.targets.tensorrt as trt

        monkeypatch.setattr(trt, "modelopt_python", lambda: None)
        args = ["export", model, "--target", "tensorrt-int8", "--out", out]
    elif case == "empty-calib":
        (tmp_path / "c.txt").write_text("")
        args = base + ["--calib", tmp_path / "c.txt"]
    elif case == "malformed-calib":
        (tmp_path / "c.jsonl").write_text("{oops\n")
        args = base + ["--calib", tmp_path / "c.jsonl"]
    elif case == "eval-no-columns":
        args = ["export", tiny_models("bert", "text-classification"), "--target", "onnx-fp32", "--out", out,
                "--eval", sst_like, "--label-column", "stars"]
    elif case == "corrupt-onnx":
        (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
        args = ["build", tmp_path / "bad.onnx", "--tokenizer", model, "--target", "onnx-fp32", "--out", out]
    elif case == "eval-on-embeddings":
        args = base + ["--eval", sst_like]
    else:
        args = base + ["--option", "novalue"]
    got, stdout, stderr = run_cli(*args)
    assert got == code, stderr
    assert needle in stderr
    assert stderr.startswith("error: ") and "Traceback" not in stderr
    assert stdout == ""
    if case not in ("eval-on-embeddings",):
        _no_partial(out)
    else:  # the model and ONNX stages completed whole; no target folder was started
        assert not (out / "targets").exists()


def test_missing_sdk_is_exit_4(tiny_models, tmp_path, run_cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    code, stdout, stderr = run_cli("export", tiny_models("bert"), "--target", "openvino-int8", "--out", tmp_path / "o")
    assert code == 4 and "'nncf' is not installed" in stderr and "pip install 'edgeport[openvino]'" in stderr
    _no_partial(tmp_path / "o")


def test_targets_command_json(run_cli):
    code, stdout, _ = run_cli("--json", "targets")
    doc = json.loads(stdout)
    assert code == 0 and doc["targets"]["onnx-int8"]["available"] is True
    assert doc["targets"]["tensorrt-int8"]["available"] is True and doc["targets"]["amd-fp16"]["available"] is True


def test_help_lists_commands_and_exit_codes(run_cli):
    code, stdout, _ = run_cli("--help")
    assert code == 0
    for word in ("export", "build", "profile", "report", "targets", "Exit codes"):
        assert word in stdout


def test_budget_data_flag_carries_the_pair_column(tmp_path):
    """--budget-data reads the same columns as --eval, the second text of a pair included."""
    from edgeport.cli import _recipe_from_flags

    data = tmp_path / "pairs.tsv"
    data.write_text("a\tb\tlabel\nx\ty\t1\n")
    recipe = _recipe_from_flags("minilm", {"targets": "onnx-int8", "budget_data": data, "eval_path": data,
                                           "text_column": "a", "text_pair_column": "b", "label_column": "label"})
    assert recipe.budget.data.text_pair_column == "b" == recipe.eval.text_pair_column
    assert recipe.budget.data.label_column == "label"


def test_trust_pickle_is_offered_only_where_a_model_folder_is_read(run_cli, tmp_path):
    """`build` reads an ONNX file, never a pickled checkpoint: it has no --trust-pickle."""
    code, _, stderr = run_cli("build", tmp_path / "m.onnx", "--tokenizer", tmp_path, "--trust-pickle")
    assert code == 2 and "--trust-pickle" in stderr
    _, stdout, _ = run_cli("export", "--help")
    assert "--trust-pickle" in stdout


def test_calibrate_sensitivity(tiny_models, tmp_path, run_cli):
    out = tmp_path / "r"
    assert run_cli("export", tiny_models("bert"), "--target", "onnx-int8", "--out", out, "--min-fidelity", "0",
                   "--calib-size", "20", "--no-profile")[0] == 0
    code, stdout, stderr = run_cli("--json", "calibrate", out, "--target", "onnx-int8", "--sensitivity",
                                   "--calib-size", "20")
    assert code == 0, stderr
    doc = json.loads(stdout)
    rows = doc["sensitivity"]["onnx-int8"]
    assert {r["unit"] for r in rows} >= {"ffn_down", "ffn_up", "attn_qkv", "attn_out"}
    assert [r["loss"] for r in rows] == sorted((r["loss"] for r in rows), reverse=True)
    results = json.loads((out / "results.json").read_text())
    assert results["targets"]["onnx-int8"]["sensitivity"] == rows  # the report shows it
    # identical inputs: reused; other calibration texts: the cached table is stale and remeasured
    code, _, stderr = run_cli("calibrate", out, "--target", "onnx-int8", "--sensitivity", "--calib-size", "20")
    assert code == 0 and "(cached)" in stderr
    code, _, stderr = run_cli("calibrate", out, "--target", "onnx-int8", "--sensitivity", "--calib-size", "25")
    assert code == 0 and "measuring again" in stderr


def test_calibrate_needs_a_run_folder(tmp_path, run_cli):
    code, _, stderr = run_cli("calibrate", tmp_path, "--target", "onnx-int8", "--sensitivity")
    assert code == 3 and "has no model/ and onnx/ stages" in stderr


def test_onnx_with_wrong_inputs_is_refused(tmp_path, run_cli, tiny_models):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["pixels"], ["out"])], "g",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), tmp_path / "vision.onnx")
    code, _, stderr = run_cli("build", tmp_path / "vision.onnx", "--tokenizer", tiny_models("bert"),
                              "--target", "onnx-fp32", "--out", tmp_path / "o")
    assert code == 3 and "has inputs pixels; edgeport needs input_ids and attention_mask" in stderr
    assert not (tmp_path / "o").exists()


def test_int8_warning_on_cpus_without_vnni():
    from edgeport.devices.host import cpu_info, int8_warning

    old = {"model": "Old Xeon", "arch": "x86_64", "cores": 4, "int8_flags": ["avx2"], "vnni": False}
    assert "no VNNI/AMX" in int8_warning(old)
    assert int8_warning({**old, "vnni": True}) is None
    assert int8_warning({**old, "arch": "aarch64"}) is None
    info = cpu_info()
    assert info["cores"] >= 1 and isinstance(info["int8_flags"], list)


def test_run_recipe_and_schema_errors(tiny_models, tmp_path, run_cli):
    import yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(tiny_models("bert")), "targets": ["onnx-fp32"],
                                      "calibration": {"size": 10}, "profile": {"enabled": False}}))
    code, stdout, stderr = run_cli("--json", "run", recipe, "--out", tmp_path / "out")
    assert code == 0, stderr
    assert list(json.loads(stdout)["targets"]) == ["onnx-fp32"]
    recipe.write_text("model: x\ntargetz: [onnx-fp32]\n")
    code, _, stderr = run_cli("run", recipe)
    assert code == 2 and "invalid option targetz" in stderr
    from pathlib import Path
    shipped = Path(__file__).parents[1] / "recipes"
    import yaml

    from edgeport.recipe import recipe_from_yaml
    from edgeport.tune.spec import read_tune
    for path in shipped.glob("*.yaml"):  # the shipped recipes and tune files validate
        if "space" in yaml.safe_load(path.read_text()):
            assert read_tune(path).space
        else:
            assert recipe_from_yaml(path).targets


@pytest.mark.parametrize("module, extra", [("optuna", "tune"), ("ray", "sweep")])
def test_missing_optional_dependency_is_exit_4_naming_its_extra(module, extra, monkeypatch):
    import sys

    from edgeport.errors import TargetUnavailableError
    from edgeport.sweep.engine import _ray
    from edgeport.tune.space import optuna_module

    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(TargetUnavailableError) as raised:
        {"optuna": optuna_module, "ray": _ray}[module]()
    assert raised.value.exit_code == 4 and f"pip install 'edgeport[{extra}]'" in raised.value.hint
    assert "is not installed" in raised.value.message

"""The typed seams between layers: target options validated before any work, the results
schema that every results.json obeys, recipe paths anchored at the recipe, one conversion per
build, and the import arrows between layers."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "edgeport"


@pytest.mark.parametrize("option,words", [
    ("onnx-int8.mdoe=static", ["onnx-int8.mdoe is not an option", "mode (", "method ("]),
    ("openvino-int4.group_size=abc", ["openvino-int4.group_size = 'abc' is invalid", "group_size (int"]),
    ("onnx-int8.mode=fast", ["onnx-int8.mode = 'fast' is invalid", "'dynamic' or 'static'"]),
    ("openvino-int8.source=torch", ["openvino-int8, which is not among the run's targets"]),
])
def test_bad_target_options_are_refused_before_any_work(tmp_path, run_cli, option, words):
    started = time.perf_counter()
    code, stdout, stderr = run_cli("export", "minilm", "--target", "onnx-int8,openvino-int4", "--option", option,
                                   "--out", tmp_path / "run")
    assert time.perf_counter() - started < 15
    assert code == 2 and stdout == "", stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr
    for word in words:
        assert word in stderr, (word, stderr)
    assert not (tmp_path / "run").exists()  # nothing was copied or exported


def test_targets_lists_typed_options(run_cli):
    code, stdout, _ = run_cli("--json", "targets")
    assert code == 0
    options = json.loads(stdout)["targets"]["openvino-int4"]["options"]
    assert options["group_size"] == {"type": "int", "default": 64, "help": options["group_size"]["help"]}
    assert options["group_size"]["help"] and options["mode"]["default"] == "int4_sym"
    assert json.loads(stdout)["targets"]["onnx-fp32"]["options"] == {}


def test_schema_validates_written_results_and_refuses_unknown_keys(tiny_models, tmp_path, run_cli):
    import jsonschema

    code, stdout, _ = run_cli("schema")
    assert code == 0
    schema = json.loads(stdout)
    code, _, stderr = run_cli("export", tiny_models("bert", "text-classification"), "--target", "onnx-int8",
                              "--out", tmp_path / "r", "--runs", "3")
    assert code == 0, stderr
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    jsonschema.validate(document, schema)
    document["targets"]["onnx-int8"]["runtime_infos"] = {}
    with pytest.raises(jsonschema.ValidationError, match="runtime_infos"):
        jsonschema.validate(document, schema)
    # the manifest is typed too: the stage wrote what the target's build wrote, plus verification
    manifest = json.loads((tmp_path / "r" / "targets" / "onnx-int8" / "manifest.json").read_text())
    assert manifest["verification"]["fidelity"]["source"] == "builtin:heldout"
    assert manifest["fallback"]["selection"]["source"] == "builtin:selection"
    assert manifest["options"] == {"mode": "dynamic", "method": "minmax", "percentile": 99.999}


def test_recipe_paths_resolve_relative_to_the_recipe(tiny_models, tmp_path, monkeypatch):
    import shutil

    from edgeport.recipe import recipe_from_yaml

    home = tmp_path / "project"
    (home / "recipes").mkdir(parents=True)
    shutil.copytree(tiny_models("bert"), home / "models" / "tiny")
    (home / "data").mkdir()
    (home / "data" / "calib.txt").write_text("a text\nanother text\n")
    (home / "recipes" / "r.yaml").write_text("model: ../models/tiny\ncalibration: {data: {path: ../data/calib.txt}}\n")
    monkeypatch.chdir(tmp_path)  # anywhere but the recipe's folder
    recipe = recipe_from_yaml(Path("project/recipes/r.yaml"))
    assert Path(recipe.model).resolve() == (home / "models" / "tiny").resolve()
    assert recipe.calibration.data.path.resolve() == (home / "data" / "calib.txt").resolve()
    assert recipe_from_yaml(home / "recipes" / "r.yaml").model == recipe.model
    absolute = home / "data" / "calib.txt"  # absolute paths are kept as they are
    (home / "recipes" / "abs.yaml").write_text(f"calibration: {{data: {{path: {absolute}}}}}\n")
    assert recipe_from_yaml(home / "recipes" / "abs.yaml").calibration.data.path == absolute


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return found | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


@pytest.mark.parametrize("folder,forbidden", [
    ("exporter", ("edgeport.targets", "edgeport.compress", "edgeport.stages", "edgeport.devices")),
    ("model", ("edgeport.targets", "edgeport.compress", "edgeport.exporter", "edgeport.stages", "edgeport.devices")),
    ("devices", ("edgeport.targets", "edgeport.stages", "edgeport.compress")),
    ("targets", ("edgeport.stages", "edgeport.devices", "edgeport.report")),
    ("calibration", ("edgeport.targets", "edgeport.stages", "edgeport.devices")),
    ("compress", ("edgeport.exporter", "edgeport.targets", "edgeport.stages", "edgeport.devices",
                  "edgeport.report", "edgeport.sweep", "edgeport.tune")),
    ("report", ("edgeport.targets", "edgeport.compress", "edgeport.stages", "edgeport.devices", "edgeport.sweep",
                "edgeport.tune")),
    ("stages", ("edgeport.sweep", "edgeport.tune")),
    ("sweep", ("edgeport.tune",)),  # a tune runs its trials on the sweep engine, never the reverse
    ("runtime", ("edgeport",)),  # self-contained: the device agent loads it by path, without edgeport
])
def test_no_module_imports_from_a_layer_above(folder, forbidden):
    for path in (SRC / folder).rglob("*.py"):
        bad = [m for m in _imports(path) if m.startswith(forbidden)]
        assert not bad, (path.name, bad)


@pytest.mark.parametrize("module", ["verify.py", "recipe.py", "runs.py", "errors.py", "ui.py"])
def test_the_floor_modules_import_nothing_of_edgeport_but_its_errors_and_version(module):
    """The floor every layer stands on (DESIGN.md): verify.py holds the Runner contract and the
    measures (cosines, label maps) that the model's runner and the exporter's parity check use,
    so it may not reach up into any layer."""
    assert {m for m in _imports(SRC / module) if m.startswith("edgeport")} <= {"edgeport", "edgeport.errors"}


@pytest.mark.parametrize("name,trials", [("openvino-int8", 4), ("tflite-int8", 4)])
def test_a_budget_run_converts_the_model_once(tiny_models, tmp_path, monkeypatch, name, trials):
    """Every budget trial re-quantizes one conversion (prepare), whatever it keeps in fp32."""
    from edgeport.calibration.budget import Budget
    from edgeport.calibration.data import builtin_texts
    from edgeport.calibration.feeds import CalibrationSet
    from edgeport.exporter.onnx_export import export_onnx
    from edgeport.model.load import model_from_path
    from edgeport.model.torch_runner import TorchRunner
    from edgeport.model.wrappers import OUTPUT_NAME
    from edgeport.stages.build import build_target
    from edgeport.stages.reference import reference_from
    from edgeport.targets import litert, openvino_ir, registry
    from edgeport.targets.base import BuildContext
    from edgeport.ui import UI

    folder = tiny_models("bert")
    loaded = model_from_path(folder)
    export_onnx(loaded, tmp_path / "model.onnx")
    target = registry.get(name)
    calls = []
    module = openvino_ir if name.startswith("openvino") else litert
    original = module._ov_model if module is openvino_ir else module.convert
    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(module, "_ov_model" if module is openvino_ir else "convert", counted)
    options = target.Options(**({"sequence": 32} if name.startswith("tflite") else {}))
    ctx = BuildContext(tmp_path / "model.onnx", folder, loaded.family.inputs, OUTPUT_NAME[loaded.task],
                       CalibrationSet("builtin", builtin_texts("calibration").texts[:16], loaded.tokenizer,
                                      loaded.family.inputs), options)
    reference = reference_from(TorchRunner(loaded), loaded.tokenizer, loaded.family.inputs, False, None, None)
    manifest, _ = build_target(target, ctx, tmp_path / "out", reference, Budget(min_fidelity=1.0001), "role",
                               loaded.family, UI(quiet=True))
    assert len(manifest.fallback.trials) >= trials  # full, every unit alone, fallbacks...
    assert len(calls) == 1


def test_a_recipe_and_the_cli_read_a_zero_fidelity_floor_alike():
    """`--min-fidelity 0` and a recipe's `min_fidelity: 0` both switch the floor off: one rule, in
    the schema."""
    from edgeport.cli import _recipe_from_flags
    from edgeport.recipe import DEFAULT_TARGETS, recipe_from_dict

    assert recipe_from_dict({"budget": {"min_fidelity": 0}}).budget.min_fidelity is None
    assert _recipe_from_flags("minilm", {"targets": None, "min_fidelity": 0.0}).budget.min_fidelity is None
    assert recipe_from_dict({}).budget.min_fidelity == 0.995
    assert tuple(recipe_from_dict({}).targets) == DEFAULT_TARGETS

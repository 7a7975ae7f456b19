"""The conductor of `edgeport export`, `build` and `run`: source (model -> ONNX, or an ONNX
file) -> targets (built, budgeted on the selection set, verified on the report set) -> local
profile -> results + report. Inputs are read and validated before anything is written."""

from __future__ import annotations

import time
from pathlib import Path

from edgeport.calibration.budget import Budget
from edgeport.calibration.data import Records
from edgeport.calibration.token_data import TaggedSentences
from edgeport.devices.host import cpu_info, int8_warning
from edgeport.errors import UsageError
from edgeport.model.load import PAIR_TASKS, TOKEN_TASKS, kind_of_folder, labels_of, path_from_ref, read_config, \
    weight_shapes
from edgeport.recipe import Recipe
from edgeport.results import Environment, ModelInfo, Results, TargetResult
from edgeport.runs import RunDir, read_json, tool_versions
from edgeport.stages.build import build_target
from edgeport.stages.profile import profile_all
from edgeport.stages.reference import Reference, reference_of
from edgeport.stages.report_set import save_report_set
from edgeport.stages.results_file import check_run_folder, save_results
from edgeport.stages.source import Inputs, Source, calibration_of, model_facts, read_inputs, source_from_model, \
    source_from_onnx, task_of_onnx_file, task_with_pairs
from edgeport.targets import registry
from edgeport.targets.base import BuildContext, Target
from edgeport.ui import UI
from edgeport.verify import label_indices

def run_export(recipe: Recipe, out: Path, ui: UI) -> Results:
    """`edgeport export MODEL` and `edgeport run`: the model folder (compressed first when
    the recipe says so) is exported to ONNX here. The run folder, the data files and the
    eval labels are checked before the model is copied or exported."""
    run = RunDir(Path(out))
    check_run_folder(run)
    folder = path_from_ref(recipe.model)
    config = read_config(folder)
    family, task = kind_of_folder(folder, recipe.task)
    task = task_with_pairs(recipe, task)
    recipe = recipe.model_copy(update={"task": task})
    inputs = read_inputs(recipe, task)
    registry.check_supports(inputs.targets, family.name, task)
    if inputs.eval is not None:
        _check_eval_task(task)
        _check_eval_labels(inputs, labels_of(config, folder / "config.json"))
    compression = None
    if recipe.compress is not None:
        from edgeport.stages.compress import compress_stage

        folder, compression, cached = compress_stage(run, recipe, ui)
        ui.info(f"compressed model: {folder}" + (" (cached)" if cached else ""))
        recipe = recipe.model_copy(update={"model": str(folder)})
    registry.check_weights(inputs.targets, inputs.options, weight_shapes(folder))
    source = source_from_model(run, recipe.model, recipe.opset, ui, recipe.trust_pickle, recipe.task)
    return _run(run, source, recipe, inputs, ui, compression)


def run_from_onnx(recipe: Recipe, onnx_file: Path, tokenizer_dir: Path, out: Path, ui: UI) -> Results:
    """`edgeport build model.onnx --tokenizer DIR`: an ONNX file exported elsewhere."""
    run = RunDir(Path(out))
    check_run_folder(run)
    inputs = read_inputs(recipe, recipe.task or task_of_onnx_file(onnx_file, tokenizer_dir))
    config_file = Path(tokenizer_dir) / "config.json"
    if inputs.eval is not None and config_file.is_file():
        _check_eval_labels(inputs, labels_of(read_config(Path(tokenizer_dir)), config_file))
    return _run(run, source_from_onnx(run, onnx_file, tokenizer_dir, ui, recipe.task), recipe, inputs, ui)


def _check_eval_labels(inputs: Inputs, id2label: dict) -> None:
    """Every label (or tag) of the eval and budget data is a class of the model, checked
    before any work; questions carry answers, not classes."""
    for data in (inputs.eval, inputs.budget_data):
        if isinstance(data, Records) and data.labels is not None:
            label_indices(data.labels, id2label, data.source)
        elif isinstance(data, TaggedSentences) and data.tags is not None:
            label_indices(sorted({tag for tags in data.tags for tag in tags}), id2label, data.source)


def _check_eval_task(task: str) -> None:
    if task == "feature-extraction":
        raise UsageError("--eval measures the accuracy of classifiers, taggers and QA readers; this model gives "
                         "embeddings", hint="drop --eval; fidelity is measured on held-out texts")


def _run(run: RunDir, source: Source, recipe: Recipe, inputs: Inputs, ui: UI, compression: dict | None = None
         ) -> Results:
    registry.check_supports(inputs.targets, source.family.name if source.family else None, source.task)
    if inputs.eval is not None:
        _check_eval_task(source.task)
    if (source.task in PAIR_TASKS) != (inputs.calibration.pairs is not None):
        raise UsageError(f"the calibration data is {'single texts' if inputs.calibration.pairs is None else 'pairs'}"
                         f" and the model's task is {source.task}",
                         hint="give --task, or pair data with --text-pair-column")
    with ui.step("computing fp32 reference outputs"):
        reference = reference_of(source, inputs)
    results = Results(created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), model=ModelInfo(**source.info),
                      environment=Environment(cpu=cpu_info(), tools=tool_versions()), compression=compression)
    build_all(run, source, recipe, inputs, reference, results, ui)
    if source.task not in TOKEN_TASKS:  # per-token outputs: no device verification (stages/profile.py says so)
        save_report_set(run, reference)  # what `edgeport profile` verifies artifacts on devices with
    if recipe.profile.enabled:
        profile_all(run, source.model_dir, recipe.profile, results, ui)
    _keep_earlier_targets(run, results)
    return save_results(run, results)


def _keep_earlier_targets(run: RunDir, results: Results) -> None:
    """Targets built into this run folder by an earlier command stay in its results, as long
    as they were built from the same model and their folders are still there."""
    if not run.results_path.is_file():
        return
    earlier = read_json(run.results_path)
    if earlier.get("model", {}).get("sha256") != results.model.sha256:
        return
    for name, entry in earlier.get("targets", {}).items():
        if name not in results.targets and name in run.built_targets():
            results.targets[name] = TargetResult.model_validate(entry)


def build_all(run: RunDir, source: Source, recipe: Recipe, inputs: Inputs, reference: Reference, results: Results,
              ui: UI) -> None:
    calibration = calibration_of(inputs, source)
    budget = Budget(recipe.budget.min_fidelity, recipe.budget.max_drop)
    facts = model_facts(source)
    warning = int8_warning(results.environment.cpu)
    if warning and any(t.precision == "int8" for t in inputs.targets):
        ui.warn(warning)
        results.warnings.append(warning)
    for target in inputs.targets:
        ctx = BuildContext(source.onnx_path, source.model_dir, source.input_names, source.output_name,
                           calibration, inputs.options[target.name], facts, output_names=source.output_names)
        with ui.step(f"building {target.name}"):
            manifest, cached = build_target(target, ctx, run.target_dir(target.name), reference, budget,
                                            recipe.budget.granularity, source.family, ui)
        entry = target_result(run, target, manifest, cached)
        results.targets[target.name] = entry
        fid = manifest.verification.fidelity
        agreement = f", {fid.agreement[0]} {fid.agreement[1]:.4f}" if fid.agreement else ""
        ui.info(f"{target.name}: mean cosine {fid.mean_cosine:.4f}{agreement} on {fid.source}"
                + (" (cached)" if cached else ""))
        if manifest.fallback and not manifest.fallback.met:
            results.warnings.append(f"{target.name}: budget not met; the closest artifact was kept")
        if manifest.mostly_float:
            message = (f"{target.name} is mostly float: the budget kept {1 - entry.int8_mac_share:.0%} of its linear "
                       f"layers' multiply-accumulates in higher precision; an fp16/bf16 target (e.g. openvino-fp16) "
                       f"may be as accurate and faster")
            ui.warn(message)
            results.warnings.append(message)


def target_result(run: RunDir, target: Target, manifest, cached: bool) -> TargetResult:
    folder = run.target_dir(target.name)
    size = sum((folder / f).stat().st_size for f in manifest.files)
    check = manifest.verification
    return TargetResult(
        artifact=str(folder), runtime=target.runtime, precision=target.precision, strategy=manifest.strategy,
        size_mb=round(size / 1e6, 3), build_seconds=manifest.build_seconds_total, cached=cached,
        fidelity=check.fidelity, accuracy=check.accuracy, fallback=manifest.fallback,
        int8_mac_share=manifest.int8_mac_share, runtime_info=check.runtime,
        host_side_emulation=check.runtime.get("host_side_emulation"),
    )

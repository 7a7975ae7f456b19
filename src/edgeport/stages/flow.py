"""The whole flow for `edgeport export`, `build` and `run`: source (model -> ONNX, or an
ONNX file) -> targets (built, verified, budgeted) -> local profile -> results + report.
Inputs are read and validated before anything is written."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.calibration.budget import Budget
from edgeport.calibration.data import Records, builtin_texts, records_from_file, sample
from edgeport.devices.host import cpu_info, int8_warning
from edgeport.devices.local_profile import profile_local
from edgeport.errors import DataFileError, TargetUnavailableError, UsageError
from edgeport.model.load import PAIR_TASKS, TOKEN_TASKS, kind_of_folder, path_from_ref
from edgeport.recipe import DataSpec, Recipe
from edgeport.runs import RunDir, read_json, tool_versions
from edgeport.stages.build import build_target
from edgeport.stages.reference import reference_from
from edgeport.stages.single import merge_profile, save_results
from edgeport.stages.source import Source, source_from_model, source_from_onnx
from edgeport.targets import registry
from edgeport.calibration.feeds import CalibrationSet
from edgeport.targets.base import BuildContext, Target
from edgeport.ui import UI


@dataclass
class Inputs:
    """Everything read from the user before any output is written."""

    targets: list[Target]
    calibration: Records
    eval: Records | None


def read_inputs(recipe: Recipe, task: str | None = None) -> Inputs:
    """Targets, calibration and eval data; ``task`` (when known) picks the built-in calibration
    set (sentence pairs for pair models) and checks that pair models get pairs."""
    targets = [registry.get(name) for name in registry.parse_list(recipe.targets)]
    for target in targets:  # say what is missing before any work starts
        availability = target.check()
        if not availability.available:
            raise TargetUnavailableError(f"target '{target.name}' cannot be built here: {availability.reason}",
                                         hint=availability.how_to_get)
    spec = recipe.calibration
    pairs = task in PAIR_TASKS
    if spec.data is None:
        calib = builtin_texts("calibration-pairs" if pairs else "calibration")
    else:
        calib = _records(spec.data, need_labels=False, task=task)
    calib = sample(calib, spec.size, spec.seed)
    evaluation = _records(recipe.eval, need_labels=True, task=task) if recipe.eval else None
    return Inputs(targets, calib, evaluation)


def _records(spec: DataSpec, need_labels: bool, task: str | None = None) -> Records:
    records = records_from_file(spec.path, spec.text_column, spec.label_column, need_labels=need_labels,
                                text_pair_column=spec.text_pair_column)
    if task in PAIR_TASKS and records.pairs is None:
        raise DataFileError(f"{task} models read two texts per example; '{spec.path}' was read as single texts",
                            hint="name the second text's column with --text-pair-column")
    if task is not None and task not in PAIR_TASKS and records.pairs is not None:
        raise UsageError(f"--text-pair-column gives pairs, but this model's task is {task}",
                         hint="for a sequence classifier fed pairs, use --task text-pair-classification")
    return records


def task_with_pairs(recipe: Recipe, detected: str) -> str:
    """A sequence classifier given pair data (a pair column) is a pair classifier."""
    specs = [s for s in (recipe.eval, recipe.calibration.data) if s is not None]
    if recipe.task is None and detected == "text-classification" and any(s.text_pair_column for s in specs):
        return "text-pair-classification"
    return detected


def run_export(recipe: Recipe, out: Path, ui: UI) -> dict:
    """`edgeport export MODEL` and `edgeport run`: the model folder (compressed first when
    the recipe says so) is exported to ONNX here."""
    folder = path_from_ref(recipe.model)
    family, task = kind_of_folder(folder, recipe.task)
    task = task_with_pairs(recipe, task)
    recipe = recipe.model_copy(update={"task": task})
    inputs = read_inputs(recipe, task)
    registry.check_supports(inputs.targets, family.name, task)
    if inputs.eval is not None:
        _check_eval_task(task)
    run = RunDir(Path(out))
    compression = None
    if recipe.compress is not None:
        from edgeport.stages.compress import compress_stage

        folder, compression, cached = compress_stage(run, recipe, ui)
        ui.info(f"compressed model: {folder}" + (" (cached)" if cached else ""))
        recipe = recipe.model_copy(update={"model": str(folder)})
    source = source_from_model(run, recipe.model, recipe.opset, ui, recipe.task)
    return _run(run, source, recipe, inputs, ui, compression)


def run_from_onnx(recipe: Recipe, onnx_file: Path, tokenizer_dir: Path, out: Path, ui: UI) -> dict:
    """`edgeport build model.onnx --tokenizer DIR`: an ONNX file exported elsewhere."""
    inputs = read_inputs(recipe, recipe.task)
    run = RunDir(Path(out))
    source = source_from_onnx(run, onnx_file, tokenizer_dir, ui, recipe.task)
    return _run(run, source, recipe, inputs, ui)


def _check_eval_task(task: str) -> None:
    if task == "feature-extraction":
        raise UsageError("--eval measures the accuracy of classifiers, taggers and QA readers; this model gives "
                         "embeddings", hint="drop --eval; fidelity is measured on held-out texts")


def _run(run: RunDir, source: Source, recipe: Recipe, inputs: Inputs, ui: UI, compression: dict | None = None) -> dict:
    registry.check_supports(inputs.targets, source.family.name if source.family else None, source.task)
    if source.task in TOKEN_TASKS:
        raise UsageError(f"{source.task} models export to ONNX with parity (`edgeport export` stops after it), but "
                         "their per-token fidelity and accuracy are not implemented yet",
                         hint="see issue #16; feature-extraction and (pair) classification run end to end")
    if inputs.eval is not None:
        _check_eval_task(source.task)
    if (source.task in PAIR_TASKS) != (inputs.calibration.pairs is not None):
        raise UsageError(f"the calibration data is {'single texts' if inputs.calibration.pairs is None else 'pairs'}"
                         f" and the model's task is {source.task}",
                         hint="give --task, or pair data with --text-pair-column")
    with ui.step("computing fp32 reference outputs"):
        reference = reference_from(source.reference_runner, source.tokenizer, source.input_names, source.task,
                                   inputs.eval, source.id2label)
    results = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": source.info, "targets": {},
               "environment": {"cpu": cpu_info(), "tools": tool_versions()}, "warnings": [],
               "compression": compression}
    build_all(run, source, recipe, inputs, reference, results, ui)
    if recipe.profile.enabled:
        profile_all(run, source, recipe, results, ui)
    _keep_earlier_targets(run, results)
    return save_results(run, results)


def _keep_earlier_targets(run: RunDir, results: dict) -> None:
    """Targets built into this run folder by an earlier command stay in its results, as long
    as they were built from the same model and their folders are still there."""
    if not run.results_path.is_file():
        return
    earlier = read_json(run.results_path)
    if earlier.get("model", {}).get("sha256") != results["model"]["sha256"]:
        return
    for name, entry in earlier.get("targets", {}).items():
        if name not in results["targets"] and name in run.built_targets():
            results["targets"][name] = entry


def calibration_of(inputs: Inputs, source: Source) -> CalibrationSet:
    """The calibration texts, tokenized the way the source model expects."""
    return CalibrationSet(inputs.calibration.source, inputs.calibration.texts, source.tokenizer, source.input_names,
                          inputs.calibration.pairs)


def base_manifest(source: Source) -> dict:
    """What every artifact manifest of this source says about the model it came from."""
    return {"task": source.task, "family": source.family.name if source.family else None,
            "vocab_size": getattr(source.tokenizer, "vocab_size", None), "model_sha256": source.info.get("sha256")}


def build_all(run: RunDir, source: Source, recipe: Recipe, inputs: Inputs, reference, results: dict, ui: UI) -> None:
    calibration = calibration_of(inputs, source)
    budget = Budget(recipe.budget.min_fidelity, recipe.budget.max_drop)
    base = base_manifest(source)
    warning = int8_warning(results["environment"]["cpu"])
    if warning and any(t.precision == "int8" for t in inputs.targets):
        ui.warn(warning)
        results["warnings"].append(warning)
    for target in inputs.targets:
        ctx = BuildContext(source.onnx_path, source.model_dir, source.input_names, source.output_name,
                           calibration, recipe.target_options.get(target.name, {}), output_names=source.output_names)
        with ui.step(f"building {target.name}"):
            manifest, cached = build_target(target, ctx, run.target_dir(target.name), reference, budget,
                                            recipe.budget.granularity, source.family, base, ui)
        results["targets"][target.name] = target_result(run, target, manifest, cached)
        fid = manifest["verification"]["fidelity"]
        ui.info(f"{target.name}: mean cosine {fid['mean_cosine']:.4f}" + (" (cached)" if cached else ""))
        fallback = manifest.get("fallback")
        if fallback and not fallback["met"]:
            results["warnings"].append(f"{target.name}: budget not met; the closest artifact was kept")


def target_result(run: RunDir, target: Target, manifest: dict, cached: bool) -> dict:
    folder = run.target_dir(target.name)
    size = sum((folder / f).stat().st_size for f in manifest["files"])
    check = manifest["verification"]
    return {
        "artifact": str(folder), "runtime": target.runtime, "precision": target.precision,
        "strategy": manifest.get("strategy"), "size_mb": round(size / 1e6, 3),
        "build_seconds": manifest.get("build_seconds_total"), "cached": cached,
        "fidelity": check["fidelity"], "accuracy": check.get("accuracy"), "fallback": manifest.get("fallback"),
        "runtime_info": check.get("runtime", {}), "profiles": {},
    }


def profile_all(run: RunDir, source: Source, recipe: Recipe, results: dict, ui: UI) -> None:
    spec = recipe.profile
    args = dict(batch=spec.batch, sequence=spec.sequence, runs=spec.runs, warmup=spec.warmup, threads=spec.threads)
    if source.model_dir is not None:
        with ui.step("profiling PyTorch fp32 (baseline)"):
            results["baseline"] = profile_local(source.model_dir, **args)
    for name, entry in results["targets"].items():
        with ui.step(f"profiling {name} on this machine"):
            profile = profile_local(run.target_dir(name), **args)
        merge_profile(entry, profile)
        ui.info(f"{name}: p50 {profile['latency_ms']['p50']:.2f} ms, peak RSS {profile['peak_rss_mb']:.0f} MB")
    if spec.device:
        from edgeport.devices.profiling import profile_on

        for name, entry in results["targets"].items():
            with ui.step(f"profiling {name} on {spec.device}"):
                merge_profile(entry, profile_on(run.target_dir(name), spec.device, args))

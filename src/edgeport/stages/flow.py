"""The whole flow for `edgeport export` / `run`: model -> ONNX -> targets (built, verified,
budgeted) -> local profile -> results.json + report. Each stage reads the previous one's
output from the run folder; inputs are validated before anything is written."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.calibration.budget import Budget
from edgeport.calibration.data import Records, builtin_texts, records_from_file, sample
from edgeport.devices.host import cpu_info, int8_warning
from edgeport.devices.local_profile import profile_local
from edgeport.exporter.load import LoadedModel
from edgeport.exporter.torch_runner import TorchRunner
from edgeport.exporter.wrappers import OUTPUT_NAME
from edgeport.recipe import DataSpec, Recipe
from edgeport.report.write import write_reports
from edgeport.results import Results
from edgeport.runs import RunDir, tool_versions, write_json
from edgeport.stages.build import build_target
from edgeport.stages.model import model_info, prepare_model, prepare_onnx
from edgeport.stages.reference import Reference, reference_from
from edgeport.targets import registry
from edgeport.targets.base import BuildContext, CalibrationSet, Target
from edgeport.ui import UI


@dataclass
class Inputs:
    """Everything read from the user before any output is written."""

    targets: list[Target]
    calibration: Records
    eval: Records | None


def read_inputs(recipe: Recipe) -> Inputs:
    targets = [registry.get(name) for name in registry.parse_list(recipe.targets)]
    for target in targets:  # say what is missing before any work starts
        availability = target.check()
        if not availability.available:
            from edgeport.errors import TargetUnavailableError

            raise TargetUnavailableError(f"target '{target.name}' cannot be built here: {availability.reason}",
                                         hint=availability.how_to_get)
    spec = recipe.calibration
    calib = builtin_texts("calibration") if spec.data is None else _records(spec.data, need_labels=False)
    calib = sample(calib, spec.size, spec.seed)
    evaluation = _records(recipe.eval, need_labels=True) if recipe.eval else None
    return Inputs(targets, calib, evaluation)


def _records(spec: DataSpec, need_labels: bool) -> Records:
    return records_from_file(spec.path, spec.text_column, spec.label_column, need_labels=need_labels)


def run_export(recipe: Recipe, out: Path, ui: UI) -> dict:
    inputs = read_inputs(recipe)
    run = RunDir(Path(out))
    with ui.step(f"loading {recipe.model}"):
        loaded, cached = prepare_model(run, recipe.model)
    ui.info(f"model: {loaded.family.name} {loaded.task}" + (" (cached)" if cached else ""))
    with ui.step("exporting ONNX and checking parity"):
        onnx_manifest, cached = prepare_onnx(run, loaded, recipe.opset)
    parity = onnx_manifest["parity"]
    ui.info(f"onnx: parity max abs {parity['max_abs']:.2e}" + (" (cached)" if cached else ""))
    if inputs.eval is not None and loaded.task != "text-classification":
        from edgeport.errors import UsageError

        raise UsageError("--eval measures accuracy of classifiers; this model gives embeddings",
                         hint="drop --eval; fidelity is measured on held-out texts")
    with ui.step("computing fp32 reference outputs"):
        reference = reference_from(TorchRunner(loaded), loaded.tokenizer, loaded.family.inputs,
                                   loaded.task == "text-classification", inputs.eval,
                                   getattr(loaded.model.config, "id2label", None))
    results = new_results(recipe.model, loaded, run)
    build_all(run, recipe, inputs, loaded, reference, results, ui)
    if recipe.profile.enabled:
        profile_all(run, recipe, results, ui)
    return finish(run, results)


def new_results(ref: str, loaded: LoadedModel, run: RunDir) -> dict:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": model_info(ref, loaded, run.model_dir),
        "targets": {}, "environment": {"cpu": cpu_info(), "tools": tool_versions()}, "warnings": [],
    }


def build_all(run: RunDir, recipe: Recipe, inputs: Inputs, loaded: LoadedModel, reference: Reference,
              results: dict, ui: UI) -> None:
    calibration = CalibrationSet(inputs.calibration.source, inputs.calibration.texts, loaded.tokenizer,
                                 loaded.family.inputs)
    budget = Budget(recipe.budget.min_fidelity, recipe.budget.max_drop)
    base = {"task": loaded.task, "family": loaded.family.name, "vocab_size": loaded.model.config.vocab_size,
            "model_sha256": results["model"]["sha256"]}
    if any(t.precision == "int8" for t in inputs.targets) and (warning := int8_warning(results["environment"]["cpu"])):
        ui.warn(warning)
        results["warnings"].append(warning)
    for target in inputs.targets:
        ctx = BuildContext(run.onnx_path, run.model_dir, loaded.family.inputs, OUTPUT_NAME[loaded.task],
                           calibration, recipe.target_options.get(target.name, {}))
        with ui.step(f"building {target.name}"):
            manifest, cached = build_target(target, ctx, run.target_dir(target.name), reference, budget,
                                            recipe.budget.granularity, loaded.family, base, ui)
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


def profile_all(run: RunDir, recipe: Recipe, results: dict, ui: UI) -> None:
    spec = recipe.profile
    args = dict(batch=spec.batch, sequence=spec.sequence, runs=spec.runs, warmup=spec.warmup, threads=spec.threads)
    with ui.step("profiling PyTorch fp32 (baseline)"):
        results["baseline"] = profile_local(run.model_dir, **args)
    for name, entry in results["targets"].items():
        with ui.step(f"profiling {name} on this machine"):
            profile = profile_local(run.target_dir(name), **args)
        entry["profiles"]["local"] = profile
        entry["latency_ms"] = profile["latency_ms"]
        entry["peak_rss_mb"] = profile["peak_rss_mb"]
        ui.info(f"{name}: p50 {profile['latency_ms']['p50']:.2f} ms, peak RSS {profile['peak_rss_mb']:.0f} MB")


def finish(run: RunDir, results: dict) -> dict:
    document = Results.model_validate(results).model_dump(mode="json")
    write_json(run.results_path, document)
    write_reports(run, document)
    return document


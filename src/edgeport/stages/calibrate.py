"""Stage `calibrate`: sensitivity of each layer unit of a quantized target, measured with the
target's own runtime on held-out texts, ranked worst first; cached under RUN_DIR/calibration/
by a key of the model, ONNX graph, calibration texts, options and tool versions. An entry made
from other inputs is never reused: it is reported as stale and measured again."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeport.calibration.budget import rank_sensitivity, units_of
from edgeport.errors import UsageError
from edgeport.exporter.graph import layers_from_onnx
from edgeport.recipe import Recipe
from edgeport.runs import RunDir, cache_key, code_version, hash_path, read_json, tool_versions, write_json
from edgeport.stages.build import Trials
from edgeport.stages.flow import base_manifest, calibration_of, read_inputs
from edgeport.stages.reference import reference_from
from edgeport.stages.single import save_results
from edgeport.stages.source import source_from_run
from edgeport.targets.base import BuildContext
from edgeport.ui import UI


def sensitivity(run_dir: Path, recipe: Recipe, granularity: str, ui: UI) -> dict:
    run = RunDir(Path(run_dir))
    source = source_from_run(run)
    inputs = read_inputs(recipe, source.task)
    targets = [t for t in inputs.targets if t.quantized]
    if not targets:
        raise UsageError("sensitivity applies to quantized targets", hint="e.g. --target onnx-int8")
    reference = reference_from(source.reference_runner, source.tokenizer, source.input_names,
                               source.task, inputs.eval, source.id2label)
    calibration = calibration_of(inputs, source)
    layers = list(layers_from_onnx(source.onnx_path))
    units = units_of(layers, source.family, granularity)
    tables = {}
    for target in targets:
        ctx = BuildContext(source.onnx_path, source.model_dir, source.input_names, source.output_name,
                           calibration, recipe.target_options.get(target.name, {}), output_names=source.output_names)
        key = cache_key(stage="sensitivity", target=target.name, model=source.info.get("sha256"),
                        onnx=hash_path(source.onnx_path), calibration=calibration.summary(), options=ctx.options,
                        granularity=granularity, eval=None if inputs.eval is None else inputs.eval.source,
                        tools=tool_versions(), edgeport=code_version())
        cache_file = run.root / "calibration" / f"{target.name}-sensitivity.json"
        cached = read_json(cache_file) if cache_file.is_file() else None
        if cached and cached.get("key") == key:
            ui.info(f"{target.name}: sensitivity (cached)")
            rows = cached["rows"]
        else:
            if cached:
                ui.warn(f"{target.name}: the cached sensitivity was made from other inputs or tools; measuring again")
            with tempfile.TemporaryDirectory(prefix="edgeport-sens-") as scratch, \
                    ui.step(f"{target.name}: quantizing each of {len(units)} units alone"):
                rows = rank_sensitivity(units, layers, Trials(target, ctx, reference, base_manifest(source),
                                                              Path(scratch)))
            write_json(cache_file, {"key": key, "target": target.name, "granularity": granularity, "rows": rows})
        tables[target.name] = rows
    if run.results_path.is_file():
        document = read_json(run.results_path)
        for name, rows in tables.items():
            if name in document["targets"]:
                document["targets"][name]["sensitivity"] = rows
        save_results(run, document)
    return {"granularity": granularity, "sensitivity": tables}


def trt_cache(run_dir: Path, recipe: Recipe, trt_version: str, method: str, ui: UI) -> Path:
    """RUN_DIR/calibration/tensorrt-<version>-<method>.cache from the run's ONNX graph."""
    from edgeport.calibration.ranges import collect_ranges, write_trt_cache
    from edgeport.runs import atomic_write_text

    run = RunDir(Path(run_dir))
    source = source_from_run(run)
    calibration = calibration_of(read_inputs(recipe, source.task), source)
    feeds = calibration.feeds(batch_size=1, fixed_length=calibration.longest())
    with ui.step(f"collecting {method} ranges on {len(calibration.texts)} texts"):
        ranges = collect_ranges(source.onnx_path, feeds, method)
    out = run.root / "calibration" / f"tensorrt-{trt_version}-{method}.cache"
    with tempfile.TemporaryDirectory() as tmp:
        write_trt_cache(ranges, trt_version, Path(tmp) / "cache")
        atomic_write_text(out, (Path(tmp) / "cache").read_text())
    return out

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
from edgeport.calibration.budget import SensitivityRow
from edgeport.runs import RunDir, cache_key, code_version, hash_path, read_json, tool_versions, write_json
from edgeport.stages.build import Trials
from edgeport.stages.reference import reference_of
from edgeport.stages.results_file import load_results, save_results
from edgeport.stages.source import calibration_of, model_facts, read_inputs, source_from_run
from edgeport.targets.base import BuildContext
from edgeport.ui import UI


def sensitivity(run_dir: Path, recipe: Recipe, granularity: str, ui: UI) -> dict:
    run = RunDir(Path(run_dir))
    source = source_from_run(run)
    inputs = read_inputs(recipe, source.task)
    targets = [t for t in inputs.targets if t.quantized]
    if not targets:
        raise UsageError("sensitivity applies to quantized targets", hint="e.g. --target onnx-int8")
    source = source_from_run(run)
    reference = reference_of(source, inputs)
    calibration = calibration_of(inputs, source)
    layers = list(layers_from_onnx(source.onnx_path))
    units = units_of(layers, source.family, granularity)
    tables = {}
    for target in targets:
        ctx = BuildContext(source.onnx_path, source.model_dir, source.input_names, source.output_name,
                           calibration, inputs.options[target.name], model_facts(source),
                           output_names=source.output_names)
        key = cache_key(stage="sensitivity", target=target.name, model=source.info.get("sha256"),
                        onnx=hash_path(source.onnx_path), calibration=calibration.summary(),
                        options=ctx.options.model_dump(mode="json"), granularity=granularity,
                        reference=reference.key(), tools=tool_versions(), edgeport=code_version())
        cache_file = run.root / "calibration" / f"{target.name}-sensitivity.json"
        cached = read_json(cache_file) if cache_file.is_file() else None
        if cached and cached.get("key") == key:
            ui.info(f"{target.name}: sensitivity (cached)")
            rows = [SensitivityRow.model_validate(row) for row in cached["rows"]]
        else:
            if cached:
                ui.warn(f"{target.name}: the cached sensitivity was made from other inputs or tools; measuring again")
            with tempfile.TemporaryDirectory(prefix="edgeport-sens-") as scratch, \
                    ui.step(f"{target.name}: quantizing each of {len(units)} units alone"):
                trials = Trials(target, ctx, reference, Path(scratch))
                rows = rank_sensitivity(units, layers, trials, release=trials.release)
            write_json(cache_file, {"key": key, "target": target.name, "granularity": granularity,
                                    "selection": reference.selection.summary(),
                                    "rows": [row.model_dump() for row in rows]})
        tables[target.name] = rows
    if run.results_path.is_file():
        run, results = load_results(run.root)
        for name, rows in tables.items():
            if name in results.targets:
                results.targets[name].sensitivity = rows
        save_results(run, results)
    return {"granularity": granularity, "selection": reference.selection.summary(),
            "sensitivity": {name: [row.model_dump() for row in rows] for name, rows in tables.items()}}

"""Stage `build`: one target's artifact in RUN_DIR/targets/<target>/, verified against the
fp32 reference, with the accuracy budget's fallback loop for quantized targets. Cached by
the hash of the ONNX graph, the model, the options, the calibration texts, the budget and
tool versions; a cached artifact is reused only when every key matches."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from edgeport.calibration.budget import Budget, fallback, units_of
from edgeport.model.families import Family
from edgeport.exporter.graph import layers_from_onnx
from edgeport.runs import (code_version, MANIFEST, atomic_dir, cache_key, hash_path, mark_stage, read_json, stage_is_current,
                           tool_versions, write_json)
from edgeport.stages.reference import Reference
from edgeport.targets.base import BuildContext, Target
from edgeport.ui import UI


def _file_hashes(folder: Path, files: list[str]) -> dict[str, str]:
    return {name: hash_path(folder / name) for name in files}


def build_key(target: Target, ctx: BuildContext, budget: Budget, granularity: str, reference: Reference,
              model_sha: str | None) -> str:
    return cache_key(
        stage="build", target=target.name, onnx=hash_path(ctx.onnx_path), model=model_sha,
        options=ctx.options, calibration=ctx.calibration.summary(), budget=asdict(budget),
        granularity=granularity, heldout=len(reference.heldout.texts),
        eval=None if reference.eval is None else (reference.eval.source, len(reference.eval.texts)),
        tools=tool_versions(), edgeport=code_version(),
    )


class Trials:
    """Builds of one target with given layers kept in fp32, each verified against the
    reference, in a scratch folder; the fallback loop and sensitivity analysis use it."""

    def __init__(self, target: Target, ctx: BuildContext, reference: Reference, base_manifest: dict, scratch: Path):
        self.target, self.ctx, self.reference, self.base, self.scratch = target, ctx, reference, base_manifest, scratch
        self.done: dict[tuple[str, ...], tuple[Path, dict]] = {}

    def __call__(self, keep_fp: tuple[str, ...]) -> dict:
        folder = self.scratch / f"trial-{len(self.done)}"
        folder.mkdir()
        facts = self.target.build(_with_keep(self.ctx, keep_fp), folder)
        _write_manifest(folder, self.target, self.ctx, facts, self.base)
        check = self.reference.check(self.target.runner(folder))
        self.done[keep_fp] = (folder, check)
        return check


def build_target(target: Target, ctx: BuildContext, out: Path, reference: Reference, budget: Budget,
                 granularity: str, family: Family | None, base_manifest: dict, ui: UI) -> tuple[dict, bool]:
    """Build (or reuse) one verified artifact; return its manifest and whether it was cached."""
    key = build_key(target, ctx, budget, granularity, reference, base_manifest.get("model_sha256"))
    if stage_is_current(out, key):
        return read_json(out / MANIFEST), True

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"edgeport-{target.name}-") as scratch:
        trials = Trials(target, ctx, reference, base_manifest, Path(scratch))
        if target.quantized:
            layers = list(layers_from_onnx(ctx.onnx_path))
            result = fallback(budget, units_of(layers, family, granularity), layers, trials, ui.info)
            chosen = result.chosen.keep_fp
            fallback_facts = {
                "budget": asdict(budget), "met": result.met, "fp32_layers": list(chosen),
                "trials": [{"fp32_layers": len(t.keep_fp), "meets": t.meets, "fidelity": t.check["fidelity"],
                            "accuracy": t.check.get("accuracy")} for t in result.trials],
                "sensitivity": result.sensitivity,
            }
        else:
            chosen, fallback_facts = (), None
            trials(())
        folder, check = trials.done[chosen]
        with atomic_dir(out) as tmp:
            for item in folder.iterdir():
                shutil.move(str(item), tmp / item.name)
            manifest = read_json(tmp / MANIFEST)
            manifest.update({"verification": check, "fallback": fallback_facts,
                             "build_seconds_total": round(time.perf_counter() - started, 2)})
            write_json(tmp / MANIFEST, manifest)
            mark_stage(tmp, key)
    return manifest, False


def _with_keep(ctx: BuildContext, keep_fp: tuple[str, ...]) -> BuildContext:
    return replace(ctx, keep_fp=keep_fp)


def _write_manifest(folder: Path, target: Target, ctx: BuildContext, facts: dict, base: dict) -> None:
    files = facts.pop("files")
    manifest = {
        "target": target.name, "format": target.artifact_format, "runtime": target.runtime,
        "files": files, "inputs": list(ctx.input_names), "output": ctx.output_name,
        "outputs": list(ctx.output_names),
        "fixed_shape": facts.pop("fixed_shape", None), **base, "options": ctx.options, **facts,
        "hashes": _file_hashes(folder, files), "source_onnx_sha256": hash_path(ctx.onnx_path),
        "tool_versions": tool_versions(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(folder / MANIFEST, manifest)

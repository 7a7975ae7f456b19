"""Stage `build`: one target's artifact in RUN_DIR/targets/<target>/, verified against the
fp32 reference, with the accuracy budget's fallback loop for quantized targets. Cached by
the hash of the ONNX graph, the model, the options, the calibration texts, the budget and
tool versions; a cached artifact is reused only when every key matches."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from edgeport.artifact import ArtifactManifest
from edgeport.calibration.budget import Budget, fallback, units_of
from edgeport.exporter.graph import int8_mac_share, layers_from_onnx
from edgeport.model.families import Family
from edgeport.runs import atomic_dir, cache_key, code_version, hash_path, mark_stage, stage_is_current, tool_versions
from edgeport.stages.reference import Reference
from edgeport.targets.base import BuildContext, Target
from edgeport.ui import UI
from edgeport.verify import Check


# Above this share of its linear layers' multiply-accumulates kept in higher precision, an
# "INT8" artifact is mostly float: marked in its manifest and said loudly by the flow.
MOSTLY_FLOAT = 0.5


def build_key(target: Target, ctx: BuildContext, budget: Budget, granularity: str, reference: Reference) -> str:
    return cache_key(
        stage="build", target=target.name, onnx=hash_path(ctx.onnx_path), model=ctx.model.model_sha256,
        options=ctx.options.model_dump(mode="json"), calibration=ctx.calibration.summary(), budget=asdict(budget),
        granularity=granularity, reference=reference.key(), tools=tool_versions(), edgeport=code_version(),
    )


class Trials:
    """Builds of one target with given layers kept in fp32, each verified against the
    reference, in a scratch folder; the fallback loop and sensitivity analysis use it. The
    target's ``prepare`` runs once, on the first trial, and every trial reuses its result.

    A trial's artifact stays in the scratch folder until ``release`` (the budget loop calls
    it for every trial it can no longer choose), so the scratch space holds the best trial so
    far and the one being built, not every trial of the search."""

    def __init__(self, target: Target, ctx: BuildContext, reference: Reference, scratch: Path):
        self.target, self.ctx, self.reference, self.scratch = target, ctx, reference, scratch
        self.done: dict[tuple[str, ...], tuple[Path, Check]] = {}
        self.built = 0
        self._prepared, self._is_prepared = None, False

    def __call__(self, keep_fp: tuple[str, ...]) -> Check:
        if keep_fp in self.done:
            return self.done[keep_fp][1]
        if not self._is_prepared:
            self._prepared, self._is_prepared = self.target.prepare(self.ctx), True
        folder = self.scratch / f"trial-{self.built}"
        self.built += 1
        folder.mkdir()
        try:
            self.target.build(self.ctx.keeping(keep_fp), folder, self._prepared)
            check = self.reference.check(self.target.runner(folder), "selection")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.done[keep_fp] = (folder, check)
        return check

    def release(self, keep_fp: tuple[str, ...]) -> None:
        folder, _ = self.done.pop(keep_fp, (None, None))
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def folder_of(self, keep_fp: tuple[str, ...]) -> tuple[Path, Check]:
        """The artifact of a trial (built again if it was released)."""
        self(keep_fp)
        return self.done[keep_fp]


def build_target(target: Target, ctx: BuildContext, out: Path, reference: Reference, budget: Budget,
                 granularity: str, family: Family | None, ui: UI) -> tuple[ArtifactManifest, bool]:
    """Build (or reuse) one verified artifact; return its manifest and whether it was cached."""
    key = build_key(target, ctx, budget, granularity, reference)
    if stage_is_current(out, key):
        return ArtifactManifest.read(out), True

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"edgeport-{target.name}-") as scratch:
        if target.quantized:  # every choice is made on the selection set
            trials = Trials(target, ctx, reference, Path(scratch))
            layers = list(layers_from_onnx(ctx.onnx_path))
            result = fallback(budget, units_of(layers, family, granularity), layers, trials, ui.info,
                              release=trials.release)
            folder = trials.folder_of(result.chosen.keep_fp)[0]
            fallback_facts = result.facts(budget, reference.selection.summary())
            share = round(int8_mac_share(ctx.onnx_path, result.chosen.keep_fp), 4)
        else:
            folder, fallback_facts, share = Path(scratch) / "artifact", None, None
            folder.mkdir()
            target.build(ctx, folder, target.prepare(ctx))
        check = reference.check(target.runner(folder), "report")  # graded on texts no choice saw
        with atomic_dir(out) as tmp:
            for item in folder.iterdir():
                shutil.move(str(item), tmp / item.name)
            manifest = ArtifactManifest.read(tmp).model_copy(update={
                "verification": check, "fallback": fallback_facts, "int8_mac_share": share,
                "mostly_float": None if share is None else share < MOSTLY_FLOAT,
                "build_seconds_total": round(time.perf_counter() - started, 2)})
            manifest.write(tmp)
            mark_stage(tmp, key)
    return manifest, False

"""Stage `profile`: each artifact of a run timed where it will run — this machine (always,
after a build) or a device — with the device agent, or with the native tool its target
names; every profile is merged into results.json as soon as it arrives."""

from __future__ import annotations

from pathlib import Path

from edgeport.artifact import ArtifactManifest
from edgeport.devices.profiling import profile_on
from edgeport.errors import UsageError
from edgeport.recipe import ProfileSpec
from edgeport.results import Results
from edgeport.runs import RunDir
from edgeport.stages.results_file import load_results, merge_profile, save_results
from edgeport.targets import registry
from edgeport.ui import UI


def _native(artifact_dir: Path):
    """The native benchmark tool the artifact's target names (None: the agent)."""
    name = ArtifactManifest.read(artifact_dir).target
    return registry.get(name).native_benchmark() if name in registry.BUILTIN else None


def _on_this_machine(artifact_dir: Path, spec: ProfileSpec) -> ProfileSpec:
    """This machine has no GPU: an artifact made for a GPU execution provider (amd-fp16) is timed
    here on the CPU as host-side emulation, and its profile says cpu_fallback: true."""
    provider = ArtifactManifest.read(artifact_dir).runtime_config.get("execution_provider")
    if provider and provider != "CPUExecutionProvider":
        return spec.model_copy(update={"allow_cpu_fallback": True})
    return spec


def profile_all(run: RunDir, model_dir: Path | None, spec: ProfileSpec, results: Results, ui: UI) -> None:
    """After a build: the PyTorch baseline and every target here, then on the spec's device."""
    if model_dir is not None:
        with ui.step("profiling PyTorch fp32 (baseline)"):
            results.baseline = profile_on(model_dir, None, spec)
    for name, entry in results.targets.items():
        with ui.step(f"profiling {name} on this machine"):
            profile = profile_on(run.target_dir(name), None, _on_this_machine(run.target_dir(name), spec))
        merge_profile(entry, profile)
        ui.info(f"{name}: p50 {profile.latency_ms.p50:.2f} ms, peak RSS {profile.peak_rss_mb:.0f} MB")
    if spec.device:
        for name, entry in results.targets.items():
            with ui.step(f"profiling {name} on {spec.device}"):
                merge_profile(entry, profile_on(run.target_dir(name), spec.device, spec,
                                                native=_native(run.target_dir(name))))


def profile_run(run_dir: Path, targets: str | None, spec: ProfileSpec, ui: UI, connection=None) -> Results:
    """`edgeport profile RUN_DIR`: profile built artifacts again, here or on a device."""
    run, results = load_results(run_dir)
    names = [t.strip() for t in targets.split(",")] if targets else list(results.targets)
    for name in names:
        if name not in results.targets:
            raise UsageError(f"target '{name}' was not built in '{run_dir}'",
                             hint=f"built: {', '.join(results.targets) or 'none'}")
    for name in names:
        with ui.step(f"profiling {name} on {spec.device or 'this machine'}"):
            here = spec if spec.device not in (None, "", "local") else _on_this_machine(run.target_dir(name), spec)
            profile = profile_on(run.target_dir(name), spec.device, here, connection, native=_native(run.target_dir(name)))
        merge_profile(results.targets[name], profile)
        ui.info(f"{name} on {profile.device}: p50 {profile.latency_ms.p50:.2f} ms")
        results = save_results(run, results)  # each device result is kept as soon as it arrives
    return results

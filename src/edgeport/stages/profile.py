"""Stage `profile`: each artifact of a run timed where it will run — this machine (always,
after a build) or a device — with the device agent, or with the native tool its target
names, and (stages/device_verify.py) its report set verified there; every profile and
verification is merged into results.json as soon as it arrives."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgeport.artifact import ArtifactManifest
from edgeport.devices.profiling import measure_on, profile_on
from edgeport.errors import UsageError
from edgeport.model.load import TOKEN_TASKS
from edgeport.recipe import ProfileSpec
from edgeport.results import PrecisionPair, Results
from edgeport.runs import RunDir
from edgeport.stages.device_verify import NO_REPORT_SET, judge, not_run, record, verify_request
from edgeport.stages.report_set import load_report_set
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
    """After a build: the PyTorch baseline and every target here, then on the spec's device
    (where the report set is also verified: here the build's host-side check just did it)."""
    if model_dir is not None:
        with ui.step("profiling PyTorch fp32 (baseline)"):
            results.baseline = profile_on(model_dir, None, spec)
    for name, entry in results.targets.items():
        with ui.step(f"profiling {name} on this machine"):
            profile = profile_on(run.target_dir(name), None, _on_this_machine(run.target_dir(name), spec))
        merge_profile(entry, profile)
        ui.info(f"{name}: p50 {profile.latency_ms.p50:.2f} ms, peak RSS {profile.peak_rss_mb:.0f} MB")
    if spec.device:
        with _verify_inputs(run, True) as (report, request):
            for name in results.targets:
                error = _measure_target(run, results, name, spec, None, report, request, True, ui)
                if error is not None:  # kept with the build's results, which an exception would lose
                    message = f"{name}: the verify mode failed on {spec.device}: {error.message}"
                    ui.warn(message)
                    results.warnings.append(message)
        compare_precisions(results, ui)


def profile_run(run_dir: Path, targets: str | None, spec: ProfileSpec, ui: UI, connection=None,
                verify: bool = True) -> Results:
    """`edgeport profile RUN_DIR`: profile built artifacts again, here or on a device; with
    ``verify`` the run's report set also goes through each artifact there (the agent's
    --verify mode) and is compared with fp32 beside the host-side figures."""
    run, results = load_results(run_dir)
    names = [t.strip() for t in targets.split(",")] if targets else list(results.targets)
    for name in names:
        if name not in results.targets:
            raise UsageError(f"target '{name}' was not built in '{run_dir}'",
                             hint=f"built: {', '.join(results.targets) or 'none'}")
    with _verify_inputs(run, verify) as (report, request):
        for name in names:
            error = _measure_target(run, results, name, spec, connection, report, request, verify, ui)
            results = save_results(run, results)  # each device result is kept as soon as it arrives
            if error is not None:  # the verify mode failed on the device: raised once the profile is kept
                raise error
    compare_precisions(results, ui)
    return save_results(run, results)


def compare_precisions(results: Results, ui: UI) -> None:
    """Each INT8 artifact against the FP16 artifact of its runtime, on every device where both
    have a profile that ran on the device's own accelerator or CPU (a CPU fallback of a GPU
    artifact compares nothing). INT8 not faster than FP16 is said loudly."""
    pairs = {(p.device, p.int8, p.fp16): p for p in results.precision_pairs}
    for int8_name, int8 in results.targets.items():
        for fp16_name, fp16 in results.targets.items():
            if int8.precision != "int8" or fp16.precision != "fp16" or int8.runtime != fp16.runtime:
                continue
            for device, a in int8.profiles.items():
                b = fp16.profiles.get(device)
                if (device == "local" or b is None or a.cpu_fallback or b.cpu_fallback
                        or (a.batch, a.sequence) != (b.batch, b.sequence)):
                    continue
                faster = int8_name if a.latency_ms.p50 < b.latency_ms.p50 else fp16_name
                pair = PrecisionPair(device=device, runtime=int8.runtime, int8=int8_name, fp16=fp16_name,
                                     int8_p50_ms=a.latency_ms.p50, fp16_p50_ms=b.latency_ms.p50, faster=faster,
                                     fp16_over_int8=round(b.latency_ms.p50 / a.latency_ms.p50, 3))
                if pairs.get((device, int8_name, fp16_name)) == pair:
                    continue
                pairs[(device, int8_name, fp16_name)] = pair
                if faster == int8_name:
                    ui.info(f"on {device}: {int8_name} p50 {a.latency_ms.p50:.2f} ms is {pair.fp16_over_int8:.2f}x "
                            f"faster than {fp16_name} ({b.latency_ms.p50:.2f} ms)")
                else:
                    message = (f"on {device}: {int8_name} (p50 {a.latency_ms.p50:.2f} ms) is not faster than "
                               f"{fp16_name} ({b.latency_ms.p50:.2f} ms): ship {fp16_name} there, or look for INT8 "
                               f"layers that fell back or reformat (a TensorRT engine's layer info)")
                    ui.warn(message)
                    results.warnings.append(message)
    results.precision_pairs = list(pairs.values())


@contextmanager
def _verify_inputs(run: RunDir, verify: bool):
    """The run's report set and its verify file (in a scratch folder for the command)."""
    report = load_report_set(run) if verify else None
    if report is None:
        yield None, None
        return
    with tempfile.TemporaryDirectory(prefix="edgeport-verify-") as scratch:
        yield report, verify_request(report, Path(scratch))


def _measure_target(run: RunDir, results: Results, name: str, spec: ProfileSpec, connection, report, request,
                    verify: bool, ui: UI):
    """Profile one target on the spec's device (and verify it there); merge both into the
    results. Returns the verify mode's device error, if it failed, for the caller to raise."""
    folder = run.target_dir(name)
    here = spec if spec.device not in (None, "", "local") else _on_this_machine(folder, spec)
    with ui.step(f"profiling {name} on {spec.device or 'this machine'}" + (" and verifying it there" if request else "")):
        profile, outputs = measure_on(folder, spec.device, here, connection, native=_native(folder), verify=request)
    merge_profile(results.targets[name], profile)
    ui.info(f"{name} on {profile.device}: p50 {profile.latency_ms.p50:.2f} ms")
    if not verify:
        return None
    entry = results.targets[name]
    if report is None and results.model.task in TOKEN_TASKS:
        verification = not_run(profile.device, "device verification of per-token outputs (token "
                               "classification, question answering) is not implemented; the host-side "
                               "figures stand alone")
    elif report is None:
        verification = not_run(profile.device, NO_REPORT_SET)
    elif outputs.not_run:
        verification = not_run(profile.device, outputs.not_run)
    elif outputs.error is not None:
        verification = not_run(profile.device, f"the verify mode failed: {outputs.error.message}")
    else:
        verification = judge(entry, report, outputs)
    record(results, name, profile.device, verification, ui)
    return outputs.error if outputs is not None else None

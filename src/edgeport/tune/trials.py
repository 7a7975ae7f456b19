"""One trial's job and its outcome: a trial's recipe as a sweep job (content-keyed, run by the
sweep engine on Ray like any sweep job), and the job's record read back as a typed ``Trial``
with its figures on the selection set, its size and p50, and the limits it misses."""

from __future__ import annotations

from pathlib import Path

from edgeport.errors import DistillationAbandonedError
from edgeport.runs import read_json
from edgeport.sweep.folder import job_dir
from edgeport.sweep.spec import Axes, Job, Plan, SweepSpec, expand
from edgeport.tune.document import SetScore, Trial
from edgeport.tune.spec import Limits, TuneSpec


def job_for(spec: TuneSpec, recipe: dict, number: int, base_dir: Path, profiled: bool = True) -> Plan:
    """A one-job plan for a trial's recipe (paths absolute), profiled on ``spec.device`` when set
    (and ``profiled``)."""
    sweep = SweepSpec(name=f"trial {number}", recipe=recipe, axes=Axes(targets=recipe["targets"][:1],
                      devices=[spec.device if profiled else None]), devices=spec.devices, resources=spec.resources,
                      retries=spec.retries)
    return expand(sweep, base_dir)


def merged(plans: list[Plan]) -> Plan:
    """The plans of a batch of trials as one plan (the engine runs its jobs side by side)."""
    inputs = {sha: path for plan in plans for sha, path in plan.inputs.items()}
    return Plan(plans[0].spec, "tune", [job for plan in plans for job in plan.jobs], inputs)


def violations(limits: Limits, drop: float, size_mb: float, p50_ms: float | None) -> list[str]:
    out = []
    if limits.max_drop is not None and drop > limits.max_drop:
        out.append(f"drop {drop:.2f} > {limits.max_drop} points")
    if limits.max_size_mb is not None and size_mb > limits.max_size_mb:
        out.append(f"size {size_mb:.2f} > {limits.max_size_mb} MB")
    if limits.max_p50_ms is not None and (p50_ms is None or p50_ms > limits.max_p50_ms):
        out.append(f"p50 {p50_ms} > {limits.max_p50_ms} ms")
    return out


def _selection(document: dict, target: str) -> SetScore:
    before = document["compression"]["before"]
    accuracy = document["targets"][target]["accuracy"]
    artifact = round(accuracy["artifact"] * 100, 2)
    return SetScore(set="selection", source=accuracy.get("source") or "selection", samples=accuracy["samples"],
                    original=before["accuracy"], artifact=artifact, drop_points=round(before["accuracy"] - artifact, 2))


def _common(number: int, params: dict, record: dict, job: Job) -> dict:
    """What every trial records of its job, however it ended."""
    return {"number": number, "params": params, "key": job.key, "cached": bool(record.get("cached")),
            "seconds": (record.get("seconds") or {}).get("build"),
            "ran_on": ((record.get("ran_on") or {}).get("build") or {}).get("hostname")}


def trial_from(number: int, params: dict, record: dict, out: Path, job: Job, spec: TuneSpec) -> Trial:
    """The trial as its job ended: complete (with figures), pruned (distillation gave up) or failed."""
    error = record.get("error")
    common = _common(number, params, record, job)
    if record["status"] not in ("done", "missed"):
        pruned = (error or {}).get("type") == DistillationAbandonedError.__name__
        return Trial(state="pruned" if pruned else "failed", pruned_by="distillation" if pruned else None,
                     error=error, **common)
    document = read_json(job_dir(out, job) / "results.json")
    metrics = record["metrics"]
    target = metrics["target"]
    selection = _selection(document, target)
    profiles = metrics["profiles"]
    device = spec.device or next((name for name in profiles if name.startswith("local@")), None)
    p50 = profiles[device]["p50_ms"] if device in profiles else None
    missed = violations(spec.limits, selection.drop_points, metrics["size_mb"], p50)
    return Trial(state="complete", selection=selection, size_mb=metrics["size_mb"], p50_ms=p50, profiled_on=device,
                 int8_fp32_layers=metrics["fp32_layers"], int8_budget_met=metrics["budget_met"],
                 feasible=not missed, violations=missed, **common)


def oversize_from(number: int, params: dict, record: dict, job: Job, limit: float) -> Trial | None:
    """The trial pruned before distillation when its untrained build (``record``) is over the size
    limit; a failed build fails the trial; None: it fits, train it."""
    common = _common(number, params, record, job)
    if record["status"] not in ("done", "missed"):
        return Trial(state="failed", error=record.get("error"), **common)
    size = record["metrics"]["size_mb"]
    if size <= limit:
        return None
    return Trial(state="pruned", pruned_by="size", size_mb=size, feasible=False,
                 violations=[f"size {size:.2f} > {limit} MB untrained, before distillation"], **common)

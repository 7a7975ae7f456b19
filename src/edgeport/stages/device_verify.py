"""Verification where the artifact runs: the run's report set (stages/report_set.py) goes
through the artifact on the device with the agent's --verify mode, in the session that
profiles it, and the outputs that come back are compared with the fp32 reference exactly as
the host-side check compared the host's (same texts, same batching, verify.fidelity and
verify.accuracy). The result sits beside the host-side figures as the target's
``device_verification[<device>]``.

An artifact whose figures on the device miss its budget, or fall short of the host-side ones
beyond the tolerance, is a loud warning and ``agrees: false`` — not an error: its profile is
kept. Where the device runs the artifact with a native tool that returns no outputs (trtexec,
benchmark_model), the entry says it was not run, and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.calibration.budget import Budget
from edgeport.devices.device_outputs import DeviceOutputs, VerifyInput, VerifyRequest, write_inputs
from edgeport.results import DeviceVerification, Results, TargetResult
from edgeport.stages.report_set import ReportSet
from edgeport.ui import UI
from edgeport.verify import VERIFY_BATCH, Check, accuracy, fidelity

# Losses against the host-side figures still counted as agreement: mean cosine (a different
# CPU, thread count or runtime build moves it by far less); agreement rates may lose one example.
COSINE_TOLERANCE = 1e-3
NO_REPORT_SET = ("this run folder keeps no report set (RUN_DIR/reference/, written by `edgeport export` from this "
                 "version on): export again into it to verify on devices")


def verify_request(report: ReportSet, scratch: Path) -> VerifyRequest:
    """The report set as the agent's verify file: held-out rows, then labelled rows, each
    group batched apart like the host-side check."""
    rows = []
    for name, part in report.parts():
        records = part.records
        rows += [VerifyInput(text, records.pairs[i] if records.pairs is not None else None, name)
                 for i, text in enumerate(records.texts)]
    return VerifyRequest(write_inputs(Path(scratch) / "verify-inputs.jsonl", rows), len(rows), VERIFY_BATCH)


def not_run(device: str, why: str) -> DeviceVerification:
    return DeviceVerification(source=f"device:{device}", ran=False, not_run=why)


def _one_example(samples: int) -> float:
    return 1.0 / max(samples, 1) + 1e-9


def _against_host(entry: TargetResult, check: Check) -> tuple[list[str], list[str]]:
    """Shortfalls of the device's figures against the host-side ones, and notes where the two
    were not measured on the same texts (then not compared)."""
    found, notes = [], []
    host, dev = entry.fidelity, check.fidelity
    if host is None or (host.source, host.samples) != (dev.source, dev.samples):
        notes.append("host-side fidelity was measured on other texts than the run's report set; not compared")
    else:
        if host.mean_cosine - dev.mean_cosine > COSINE_TOLERANCE:
            found.append(f"mean cosine {dev.mean_cosine:.4f} on the device, {host.mean_cosine:.4f} host-side")
        if host.top1_agreement is not None and dev.top1_agreement is not None \
                and host.top1_agreement - dev.top1_agreement > _one_example(dev.samples):
            found.append(f"top-1 agreement {dev.top1_agreement:.4f} on the device, {host.top1_agreement:.4f} host-side")
    host_acc, dev_acc = entry.accuracy, check.accuracy
    if dev_acc is not None:
        if host_acc is None or (host_acc.source, host_acc.samples) != (dev_acc.source, dev_acc.samples):
            notes.append("host-side accuracy was measured on other data than the run's report set; not compared")
        elif host_acc.label_agreement - dev_acc.label_agreement > _one_example(dev_acc.samples):
            found.append(f"label agreement {dev_acc.label_agreement:.4f} on the device, "
                         f"{host_acc.label_agreement:.4f} host-side")
    return found, notes


def _against_budget(entry: TargetResult, check: Check) -> list[str]:
    """Budget shortfalls on the device that the host-side figures did not have."""
    if entry.fallback is None or entry.fidelity is None:
        return []
    budget = Budget(**entry.fallback.budget)
    host = Check(fidelity=entry.fidelity, accuracy=entry.accuracy)
    if not budget.meets(host):
        return []  # missed host-side already (said at build time)
    return [f"budget: {s}" for s in budget.shortfalls(check)]


def judge(entry: TargetResult, report: ReportSet, got: DeviceOutputs) -> DeviceVerification:
    """The device's outputs compared with fp32 like the host-side check; agreement decided."""
    source = f"device:{got.device}"
    agent = got.agent
    outputs_facts = {k: agent.get(k) for k in ("shape", "dtype", "sha256", "inputs", "batch", "threads", "seconds")}
    common = {"source": source, "ran": True, "outputs": outputs_facts, "environment": agent.get("device") or {},
              "warnings": list(agent.get("warnings") or []), "tolerance": COSINE_TOLERANCE}
    outputs = got.outputs
    bad = ~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
    if bad.any():
        return DeviceVerification(**common, agrees=False,
                                  shortfalls=[f"the outputs contain NaN or infinity on {int(bad.sum())} of "
                                              f"{len(outputs)} examples"])
    held = report.heldout
    n = len(held.records.texts)
    fid = fidelity(outputs[:n], held.outputs, report.classifier, held.source, report.pairs)
    acc = None
    if report.eval is not None:
        acc = accuracy(outputs[n:], report.eval.outputs, report.eval.labels, report.eval.source)
    check = Check(fidelity=fid, accuracy=acc, runtime={**(agent.get("runtime") or {}),
                                                       "tool": agent.get("tool", "agent --verify")})
    shortfalls, notes = _against_host(entry, check)
    shortfalls += _against_budget(entry, check)
    return DeviceVerification(**{**common, "warnings": common["warnings"] + notes}, check=check,
                              agrees=not shortfalls, shortfalls=shortfalls)


def record(results: Results, name: str, device: str, verification: DeviceVerification, ui: UI) -> None:
    """Into the target's entry; a disagreement said loudly and kept in the results' warnings."""
    results.targets[name].device_verification[device] = verification
    if not verification.ran:
        message = f"{name} on {device}: not verified there — {verification.not_run}"
        ui.warn(message)
        if message not in results.warnings:
            results.warnings.append(message)
        return
    fid = verification.check.fidelity if verification.check else None
    host = results.targets[name].fidelity
    if verification.agrees:
        ui.info(f"{name} on {device}: verified, mean cosine {fid.mean_cosine:.6f} on the device"
                + (f" ({host.mean_cosine:.6f} host-side)" if host else ""))
        return
    message = (f"{name} on {device}: the artifact's outputs on the device DISAGREE with the host-side check: "
               + "; ".join(verification.shortfalls))
    ui.warn(message)
    if message not in results.warnings:
        results.warnings.append(message)

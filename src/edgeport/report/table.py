"""One summary row per target and device, shared by the markdown and HTML reports."""

from __future__ import annotations


def _fmt(value, spec: str = ".2f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


COLUMNS = ("target", "device", "runtime", "precision", "size MB", "p50 ms", "p90 ms", "p99 ms",
           "× PyTorch", "peak RSS MB", "mean cos", "min cos", "agreement", "acc drop pts", "fp32 layers", "INT8 MACs")


def rows(document: dict) -> list[list[str]]:
    base = document.get("baseline")
    base_p50 = base["latency_ms"]["p50"] if base else None
    out = []
    if base:
        out.append(["pytorch-fp32 (baseline)", base["device"], "torch", "fp32",
                    _fmt(document["model"]["size_mb"], ".1f"), _fmt(base["latency_ms"]["p50"]),
                    _fmt(base["latency_ms"]["p90"]), _fmt(base["latency_ms"]["p99"]), "1.00",
                    _fmt(base.get("peak_rss_mb"), ".0f"), "1", "1", "–", "–", "–", "–"])
    for name, entry in document["targets"].items():
        fid, acc = entry.get("fidelity") or {}, entry.get("accuracy") or {}
        fallback = entry.get("fallback") or {}
        profiles = entry.get("profiles") or {}
        for device, prof in (profiles.items() or [(None, None)]):
            lat = prof["latency_ms"] if prof else {}
            speedup = base_p50 / lat["p50"] if base_p50 and lat and device == "local" else None
            out.append([
                name, device or "–", entry["runtime"], entry["precision"], _fmt(entry["size_mb"], ".1f"),
                _fmt(lat.get("p50")), _fmt(lat.get("p90")), _fmt(lat.get("p99")), _fmt(speedup),
                _fmt(prof.get("peak_rss_mb") if prof else None, ".0f"), _fmt(fid.get("mean_cosine"), ".4f"),
                _fmt(fid.get("min_cosine"), ".4f"), _fmt(_agreement(fid), ".4f"),
                _fmt(acc.get("drop_points"), ".2f"), str(len(fallback.get("fp32_layers") or [])),
                _fmt(entry.get("int8_mac_share"), ".0%") + (" (mostly float)" if _mostly_float(entry) else ""),
            ])
    return out


def _agreement(fidelity: dict) -> float | None:
    """The task's agreement with fp32: top-1 labels, token labels (taggers) or answer spans
    (QA readers)."""
    for key in ("top1_agreement", "token_agreement", "span_agreement"):
        if fidelity.get(key) is not None:
            return fidelity[key]
    return None


def _measures(accuracy: dict) -> str:
    """The task's accuracy measure(s) by name, fp32 -> artifact."""
    parts = [f"{accuracy.get('metric', 'accuracy')} {accuracy['fp32']:.4f} -> {accuracy['artifact']:.4f}"]
    if accuracy.get("exact_match"):
        parts.append(f"exact_match {accuracy['exact_match']['fp32']:.4f} -> {accuracy['exact_match']['artifact']:.4f}")
    return ", ".join(parts)


def _mostly_float(entry: dict) -> bool:
    share = entry.get("int8_mac_share")
    return share is not None and share < 0.5


def evidence(document: dict) -> list[str]:
    """Which texts each figure comes from: the budget chose on one set, the figures grade
    the artifact on another that played no part in the choice."""
    lines = []
    for name, entry in document["targets"].items():
        fid, acc, fallback = entry.get("fidelity") or {}, entry.get("accuracy"), entry.get("fallback")
        graded = f"{fid.get('source')} ({fid.get('samples')} texts)"
        if acc:
            graded += f" and {acc.get('source')} ({acc.get('samples')} labelled: {_measures(acc)})"
        line = f"{name}: figures on {graded}"
        if fallback and fallback.get("selection"):
            sel = fallback["selection"]
            line += f"; the budget chose on {sel['source']} ({sel['samples']})"
        lines.append(line)
    return lines


VERIFY_COLUMNS = ("target", "device", "runtime there", "mean cos host-side", "mean cos on device",
                  "min cos host-side", "min cos on device", "top-1 agr host-side", "top-1 agr on device",
                  "label agr host-side", "label agr on device", "verdict")


def verification_rows(document: dict) -> list[list[str]]:
    """Host-side figures beside those measured where the artifact runs (device_verification):
    one row per target and device; a device that did not run the check says why."""
    out = []
    for name, entry in document["targets"].items():
        fid, acc = entry.get("fidelity") or {}, entry.get("accuracy") or {}
        for device, ver in (entry.get("device_verification") or {}).items():
            check = ver.get("check") or {}
            dfid, dacc = check.get("fidelity") or {}, check.get("accuracy") or {}
            runtime = check.get("runtime") or {}
            if not ver["ran"]:
                verdict = f"not run: {ver.get('not_run')}"
            elif ver.get("agrees"):
                verdict = "agrees"
            else:
                verdict = "DISAGREES: " + "; ".join(ver.get("shortfalls") or [])
            out.append([name, device, " ".join(str(runtime[k]) for k in ("name", "version") if runtime.get(k)) or "–",
                        _fmt(fid.get("mean_cosine"), ".6f"), _fmt(dfid.get("mean_cosine"), ".6f"),
                        _fmt(fid.get("min_cosine"), ".6f"), _fmt(dfid.get("min_cosine"), ".6f"),
                        _fmt(fid.get("top1_agreement"), ".4f"), _fmt(dfid.get("top1_agreement"), ".4f"),
                        _fmt(acc.get("label_agreement"), ".4f"), _fmt(dacc.get("label_agreement"), ".4f"), verdict])
    return out


def verification_markdown(document: dict) -> list[str]:
    table = verification_rows(document)
    if not table:
        return []
    return (["", "Verification where it runs (the report set through the artifact on each device, beside the "
             "host-side check):", "", "| " + " | ".join(VERIFY_COLUMNS) + " |", "|" + "---|" * len(VERIFY_COLUMNS)]
            + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table])


def precision_lines(document: dict) -> list[str]:
    """INT8 against FP16 of the same runtime on each device where both were profiled."""
    return [f"on {p['device']}: {p['int8']} p50 {p['int8_p50_ms']:.2f} ms, {p['fp16']} {p['fp16_p50_ms']:.2f} ms: "
            f"{p['faster']} is faster" + ("" if p["faster"] == p["int8"] else " (INT8 NOT faster)")
            for p in document.get("precision_pairs") or []]


def markdown(document: dict) -> str:
    lines = [f"# edgeport report: {document['model']['ref']}", "",
             f"Model: {document['model']['family']} {document['model']['task']}, "
             f"{document['model']['parameters']:,} parameters, {document['model']['size_mb']:.1f} MB.",
             f"CPU: {document['environment']['cpu']['model']} "
             f"(INT8 flags: {', '.join(document['environment']['cpu']['int8_flags']) or 'none'}).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(document)]
    lines += ["", "Evidence (disjoint sets):", ""] + [f"- {line}" for line in evidence(document)]
    lines += verification_markdown(document)
    precisions = precision_lines(document)
    if precisions:
        lines += ["", "INT8 vs FP16 where both ran:", ""] + [f"- {line}" for line in precisions]
    if document.get("compression"):
        lines += ["", "Compression (PyTorch, before export; measured against the original model):", "",
                  compression_markdown(document["compression"])]
    for warning in document.get("warnings", []):
        lines.append(f"\n> warning: {warning}")
    return "\n".join(lines) + "\n"


COMPRESSION_COLUMNS = ("step", "pass", "parameters", "fp32 MB", "zeros", "deflated MB", "mean cos", "agreement",
                       "accuracy", "seconds")


def compression_rows(report: dict) -> list[list[str]]:
    def row(step: str, name: str, m: dict, seconds) -> list[str]:
        return [step, name, f"{m['parameters']:,}", _fmt(m["size_mb"], ".1f"), _fmt(m.get("zeros"), ".1%"),
                _fmt(m.get("deflated_mb"), ".1f"), _fmt(m.get("mean_cosine"), ".4f"), _fmt(m.get("agreement"), ".2%"),
                _fmt(m.get("accuracy"), ".2f"), _fmt(seconds, ".0f")]

    out = [row("0", "original", report["before"], None)]
    out += [row(str(i), p["op"], p, p["seconds"]) for i, p in enumerate(report["passes"], 1)]
    return out


def compression_markdown(report: dict) -> str:
    lines = ["| " + " | ".join(COMPRESSION_COLUMNS) + " |", "|" + "---|" * len(COMPRESSION_COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in compression_rows(report)]
    return "\n".join(lines) + "\n"

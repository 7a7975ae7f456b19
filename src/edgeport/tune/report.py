"""The tune's report: each trial's line while it runs; the front graded once on the report set
(the artifact through ``edgeport.runtime``, the code path users run, against the original
fp32 model in PyTorch); ``tune.md`` and a self-contained ``tune.html`` with the front plotted
(selection-set drop against size, p50 as the marker size)."""

from __future__ import annotations

import html
from pathlib import Path

from edgeport.calibration.data import Records
from edgeport.report.plots import _png, plt
from edgeport.tune.document import SetScore, Trial


def trial_line(trial: Trial) -> str:
    head = f"trial {trial.number} {trial.params}: "
    if trial.pruned_by == "size":
        return head + f"pruned, not trained: {'; '.join(trial.violations)}" + (" (ran earlier)" if trial.cached else "")
    if trial.state != "complete":
        return head + f"{trial.state}: {(trial.error or {}).get('message', '')}"
    s = trial.selection
    return head + (f"selection accuracy {s.artifact:.2f} (drop {s.drop_points:+.2f}), {trial.size_mb:.2f} MB, "
                   f"p50 {_fmt(trial.p50_ms)} ms" + ("" if trial.feasible else f" · misses: {'; '.join(trial.violations)}")
                   + (" (ran earlier)" if trial.cached else ""))


class Grader:
    """The report set, its labels and the original fp32 model's predictions on it (computed
    once); ``graded`` adds a trial's artifact's figures on it."""

    def __init__(self, original, records: Records):
        from edgeport.compress.evaluate import label_ids, outputs_of

        self.records = records
        self.labels = label_ids(records.labels, original.model.config, records.source)
        self.reference = outputs_of(original, records.texts).argmax(1)
        self.original = round(float((self.reference == self.labels).mean()) * 100, 2)

    def graded(self, trial: Trial, out: Path) -> Trial:
        import edgeport.runtime as runtime

        folder = out / "jobs" / trial.key[:16] / "targets" / _target_of(out, trial)
        predicted = runtime.load(folder).logits(self.records.texts).argmax(1)
        artifact = round(float((predicted == self.labels).mean()) * 100, 2)
        score = SetScore(set="report", source=self.records.source, samples=len(self.records.texts),
                         original=self.original, artifact=artifact, drop_points=round(self.original - artifact, 2),
                         label_agreement=round(float((predicted == self.reference).mean()), 4))
        return trial.model_copy(update={"report": score})


def _target_of(out: Path, trial: Trial) -> str:
    (name,) = [p.name for p in (out / "jobs" / trial.key[:16] / "targets").iterdir() if p.is_dir()]
    return name


def _fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _rows(document: dict) -> list[list[str]]:
    rows = []
    front, best = set(document["front"]), document["best"]
    for t in document["trials"]:
        sel, rep = t.get("selection") or {}, t.get("report") or {}
        mark = ("best" if t["number"] == best else "closest" if t["number"] == document.get("closest")
                else "front" if t["number"] in front else "")
        if t.get("ablation_of") is not None:
            mark = f"ablation of {t['ablation_of']}: " + ", ".join(f"{k}={v}" for k, v in t["changed"].items())
        state = f"pruned ({t['pruned_by']})" if t.get("pruned_by") else t["state"]
        rows.append([str(t["number"]), mark, state, _fmt(sel.get("artifact")), _fmt(sel.get("drop_points"), "+.2f"),
                     _fmt(t.get("size_mb")), _fmt(t.get("p50_ms")), "yes" if t.get("feasible") else "no",
                     _fmt(rep.get("artifact")), _fmt(rep.get("drop_points"), "+.2f"),
                     ", ".join(f"{k}={v}" for k, v in t["params"].items())])
    return rows


COLUMNS = ["trial", "", "state", "selection acc %", "selection drop", "size MB", "p50 ms", "meets limits",
           "report acc %", "report drop", "parameters"]


def _summary(document: dict) -> list[str]:
    s = document["sets"]
    lines = [f"Sets (disjoint): training {s['train_rows']} rows of {s['training']}; selection {s['selection_rows']} "
             f"rows carved from it (seed {s['selection_seed']}, label-stratified) — every choice; report set "
             f"{s['report_rows']} rows of {s['report']} — measured once for the front, chose nothing. "
             f"Dropped as duplicates across sets: {s['dropped']}.",
             f"Limits (on the selection set): {document['limits']}; objectives minimised: "
             f"{', '.join(document['objectives'])}; best = the feasible trial preferring {document['prefer']}."]
    by_number = {t["number"]: t for t in document["trials"]}
    chosen = by_number.get(document["best"] if document["best"] is not None else document.get("closest"))
    if chosen is None:
        lines.append("No trial finished.")
        return lines
    rep = chosen.get("report") or {}
    head = (f"Best: trial {chosen['number']}" if document["best"] is not None else
            f"No trial met every limit on the selection set; the closest: trial {chosen['number']} (misses: "
            f"{'; '.join(chosen['violations'])})")
    name = "best" if document["best"] is not None else "closest"
    lines.append(f"{head}, {chosen['size_mb']:.2f} MB, p50 {_fmt(chosen['p50_ms'])} ms; selection drop "
                 f"{chosen['selection']['drop_points']:+.2f} points; report-set drop {_fmt(rep.get('drop_points'), '+.2f')}"
                 f" points ({_fmt(rep.get('original'))} -> {_fmt(rep.get('artifact'))} %). Recipe: "
                 f"{document['recipes'].get(name)}")
    lines += ablation_lines(document)
    return lines


def ablation_lines(document: dict) -> list[str]:
    """What each ablated parameter is worth: the best trial against itself with it changed."""
    by_number = {t["number"]: t for t in document["trials"]}
    out = []
    for t in document["trials"]:
        if t.get("ablation_of") is None:
            continue
        base = by_number[t["ablation_of"]]
        change = ", ".join(f"{k}={v}" for k, v in t["changed"].items())
        if t["state"] != "complete":
            out.append(f"Ablation {change} of trial {base['number']}: {t['state']}.")
            continue
        delta = t["selection"]["artifact"] - base["selection"]["artifact"]
        out.append(f"Ablation {change} of trial {base['number']}: selection accuracy {t['selection']['artifact']:.2f} "
                   f"vs {base['selection']['artifact']:.2f} ({delta:+.2f} points at {t['size_mb']:.2f} vs "
                   f"{base['size_mb']:.2f} MB): the trial's own setting "
                   f"{'is kept' if delta <= 0 else 'loses to the change'}.")
    return out


def markdown(document: dict) -> str:
    lines = [f"# Tune {document['name']}", ""] + [f"- {line}" for line in _summary(document)] + [""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(document)]
    return "\n".join(lines) + "\n"


def _chart(document: dict) -> str | None:
    done = [t for t in document["trials"] if t["state"] == "complete"]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    front = set(document["front"])
    for t in done:
        colour = "tab:green" if t["feasible"] else "tab:grey"
        size = 30 + 10 * (t.get("p50_ms") or 1)
        ax.scatter(t["size_mb"], t["selection"]["drop_points"], s=size, c=colour,
                   edgecolors="black" if t["number"] in front else "none", linewidths=1.5, alpha=0.8)
        ax.annotate(str(t["number"]), (t["size_mb"], t["selection"]["drop_points"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    limit = document["limits"].get("max_drop")
    if limit is not None:
        ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label=f"max drop {limit}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("artifact size (MB)")
    ax.set_ylabel("accuracy drop on the selection set (points)")
    ax.set_title("trials: green meets the limits, black edge on the front, marker size ~ p50")
    return _png(fig)


def html_report(document: dict) -> str:
    chart = _chart(document)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in _rows(document))
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in _summary(document))
    img = f'<img alt="trials" src="data:image/png;base64,{chart}">' if chart else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Tune {html.escape(document['name'])}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head><body>"
            f"<h1>Tune {html.escape(document['name'])}</h1><ul>{summary}</ul>{img}"
            f"<table id='trials'><tr>{head}</tr>{body}</table></body></html>")

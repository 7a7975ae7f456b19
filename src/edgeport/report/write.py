"""Write report.md and report.html of a run (both atomically)."""

from __future__ import annotations

from edgeport.report.html import html_report
from edgeport.report.table import markdown
from edgeport.runs import RunDir, atomic_write_text


def write_reports(run: RunDir, document: dict) -> None:
    atomic_write_text(run.root / "report.md", markdown(document))
    atomic_write_text(run.root / "report.html", html_report(document))

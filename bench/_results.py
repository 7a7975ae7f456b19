"""Where every bench script writes its figures: bench/results/NAME.json (the document, with its
provenance) and NAME.md (the script's ``render(document)``, the same lines bench/readme.py puts
in the README between ``<!-- bench:NAME -->`` markers)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
LOAD_AT_START = os.getloadavg()  # the machine's load when the bench script started (shared machines)


def command_line(argv: list[str] | None = None) -> str:
    """The command as it was typed from the repository root: ``python bench/x.py --rounds 2``."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        argv[0] = str(script.relative_to(ROOT))
    except ValueError:
        pass
    return shlex.join(["python", *argv])


def provenance(argv: list[str] | None = None) -> dict:
    """The exact command line, the date, the machine and the tool versions of a measurement."""
    from edgeport.devices.host import cpu_info
    from edgeport.runs import tool_versions

    return {"command": command_line(argv), "date": time.strftime("%Y-%m-%d"), "machine": cpu_info(),
            "load_average_1min": {"start": round(LOAD_AT_START[0], 1), "end": round(os.getloadavg()[0], 1)},
            "tools": {"python": sys.version.split()[0], **tool_versions()}}


def write_results(name: str, document: dict, render: Callable[[dict], list[str]]) -> dict:
    """Add provenance to ``document``, write NAME.json, then NAME.md rendered from the JSON as
    written (so the .md and the README always come from the same document)."""
    RESULTS.mkdir(exist_ok=True)
    document = {"provenance": provenance(), **document}
    text = json.dumps(document, indent=2, default=str) + "\n"
    (RESULTS / f"{name}.json").write_text(text)
    stored = json.loads(text)
    lines = render(stored)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return stored


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def provenance_line(document: dict, script: str | None = None) -> str:
    """One line saying how the table was measured: the command, date, machine, tool versions."""
    p = document.get("provenance")
    if not p:
        return (f"Measured by `python {script}` with its defaults on {document.get('date', 'a date not recorded')}; "
                f"this document predates recorded provenance (its exact command line, machine and tool versions "
                f"were not recorded).")
    m = p["machine"]
    tools = p.get("tools", {})
    shown = ", ".join(f"{k} {tools[k]}" for k in ("torch", "onnxruntime", "openvino", "nncf", "ai-edge-litert")
                      if k in tools)
    load = p.get("load_average_1min")
    busy = f"; load average {load['start']} at the start, {load['end']} at the end" if load else ""
    return (f"Measured by `{p['command']}` on {p['date']}, {m['model']} ({m['cores']} cores"
            f"{', ' + ', '.join(m['int8_flags']) if m.get('int8_flags') else ''}{busy}); {shown}.")

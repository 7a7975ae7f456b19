"""Where every bench script writes its figures: bench/results/NAME.json and NAME.md."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, document: dict, markdown_lines: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(markdown_lines) + "\n")
    print("\n".join(markdown_lines))

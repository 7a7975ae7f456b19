"""Render the task x family x target matrix from test results (never typed by hand).

    python bench/matrix.py                       # bench/results/matrix.json -> bench/results/matrix.md
    python bench/matrix.py --from test-artifacts/matrix.json --readme README.md

The JSON is what tests/test_matrix.py records: one cell per (family, task, target), either
``ok`` with the fidelity measured against fp32 (mean cosine; top-1 agreement for classifiers)
or ``refused`` with the reason the target gives before building. ``--readme`` replaces the
text between the README's ``<!-- matrix:begin -->`` and ``<!-- matrix:end -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("onnx-fp32", "onnx-int8", "openvino-fp16", "openvino-int8", "tflite-fp32", "tflite-int8")
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def render(data: dict) -> str:
    cells = {(c["task"], c["family"], c["target"]): c for c in data["cells"]}
    rows = sorted({(task, family) for task, family, _ in cells})
    targets = [t for t in TARGETS if any(key[2] == t for key in cells)]
    lines = ["| task | family | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets)]
    reasons: list[str] = []
    for task, family in rows:
        out = []
        for target in targets:
            cell = cells.get((task, family, target))
            if cell is None:
                out.append("not run")
            elif cell["status"] == "ok":
                figure = f"cos {cell['mean_cosine']:.4f}"
                if cell.get("top1_agreement") is not None:
                    figure += f", agree {cell['top1_agreement']:.2f}"
                out.append(f"✓ {figure}")
            else:
                if cell["reason"] not in reasons:
                    reasons.append(cell["reason"])
                out.append(f"refused [{reasons.index(cell['reason']) + 1}]")
        lines.append(f"| {task} | {family} | " + " | ".join(out) + " |")
    lines.append("")
    lines.append("Tiny random models (hidden 32, 2 layers) built from each family's config; figures are the "
                 "artifact's mean cosine (and top-1 agreement) against fp32 PyTorch on the built-in held-out "
                 "texts, budget off; every ONNX export passed parity (max abs < 1e-4). A random classifier's "
                 "logits are near zero and near-tied, so int8 agreement figures on these models say little "
                 "about trained ones (DeBERTa's max |logit| is ~1e-3 here).")
    for number, reason in enumerate(reasons, 1):
        lines.append(f"[{number}] {reason}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, default=HERE / "results" / "matrix.json")
    parser.add_argument("--readme", type=Path, help="README to update between the matrix markers")
    args = parser.parse_args()
    committed = HERE / "results" / "matrix.json"
    if args.source.resolve() != committed.resolve():
        shutil.copyfile(args.source, committed)
    table = render(json.loads(committed.read_text()))
    (HERE / "results" / "matrix.md").write_text(table)
    if args.readme:
        text = args.readme.read_text()
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        args.readme.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
    print(table)


if __name__ == "__main__":
    main()

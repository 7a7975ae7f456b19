#!/usr/bin/env python3
"""The README's measured figures, rendered from their result documents.

Every block of README.md between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` is the
output of ``render(document)`` of bench/NAME.py on bench/results/NAME.json: the same lines the
script wrote to bench/results/NAME.md when it measured them.

    python bench/readme.py --check   # exit 1 and a diff when a block differs from its document
    python bench/readme.py --write   # rewrite the blocks from the documents

(``make readme-check`` runs the check.)
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.DOTALL)


class ReadmeError(Exception):
    """A marker without its document or script, or an unclosed block."""


def render_block(name: str, results: Path) -> list[str]:
    if not (BENCH / f"{name}.py").is_file():
        raise ReadmeError(f"README block '{name}' has no bench/{name}.py")
    document_path = results / f"{name}.json"
    if not document_path.is_file():
        raise ReadmeError(f"README block '{name}' has no result document {document_path}")
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render(json.loads(document_path.read_text()))


def rendered(text: str, results: Path) -> str:
    """The README with every marked block replaced by its document's rendering."""
    opened = re.findall(r"<!-- bench:([a-z0-9_]+) -->", text)
    closed = re.findall(r"<!-- /bench:([a-z0-9_]+) -->", text)
    if opened != closed:
        raise ReadmeError(f"unbalanced bench markers: opened {opened}, closed {closed}")

    def replace(match: re.Match) -> str:
        lines = render_block(match["name"], results)
        return f"{match.group(1)}" + "\n".join(lines) + "\n" + match.group(4)

    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail (exit 1, with a diff) when the README differs")
    mode.add_argument("--write", action="store_true", help="rewrite the marked blocks")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    try:
        expected = rendered(text, args.results)
    except ReadmeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    blocks = len(BLOCK.findall(text))
    if args.write:
        args.readme.write_text(expected)
        print(f"{args.readme}: {blocks} measured blocks rendered from {args.results}")
        return 0
    if expected != text:
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(keepends=True), expected.splitlines(keepends=True),
                                                   f"{args.readme} (as committed)", f"{args.readme} (from documents)"))
        print(f"\nerror: {args.readme} differs from the result documents; run python bench/readme.py --write "
              f"(or re-measure)", file=sys.stderr)
        return 1
    print(f"{args.readme}: {blocks} measured blocks match their documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())

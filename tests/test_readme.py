"""The README's measured tables are rendered from committed result documents (bench/readme.py):
the check passes on the committed README and fails when a figure is edited by hand. Reads only
committed files (README.md, bench/*.py, bench/results/*.json); needs no ../shared."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- bench:([a-z0-9_]+) -->\n(.*?)<!-- /bench:\1 -->", re.DOTALL)


def _check(readme: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "readme.py"), "--check", "--readme", str(readme),
                           *extra], capture_output=True, text=True, timeout=300, check=False)


def test_committed_readme_matches_its_result_documents():
    blocks = BLOCK.findall(README.read_text())
    assert {name for name, _ in blocks} >= {"sst2_budget", "compression", "ssh_vs_local"}
    for name, body in blocks:
        assert (ROOT / "bench" / "results" / f"{name}.json").is_file(), name
        assert body.strip(), f"block {name} is empty"
        assert re.search(r"Measured by `python bench/[a-z0-9_]+\.py", body), f"block {name} names no command"
    done = _check(README)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(blocks)} measured blocks match" in done.stdout


def test_a_figure_edited_by_hand_fails_the_check_with_a_diff(tmp_path):
    text = README.read_text()
    name, body = BLOCK.findall(text)[0]
    row = next(line for line in body.splitlines() if line.startswith("| ") and re.search(r"\d\.\d", line)
               and not line.startswith("| target") and not line.startswith("| path"))
    figure = re.search(r"\d+\.\d+", row)
    digit = figure.group()[-1]
    edited_row = row[:figure.end() - 1] + str((int(digit) + 1) % 10) + row[figure.end():]
    copy = tmp_path / "README.md"
    copy.write_text(text.replace(row, edited_row, 1))
    done = _check(copy)
    assert done.returncode == 1
    assert f"-{edited_row}" in done.stdout and f"+{row}" in done.stdout  # the diff shows both
    assert "differs from the result documents" in done.stderr

    # --write restores the rendering from the documents
    rewritten = subprocess.run([sys.executable, str(ROOT / "bench" / "readme.py"), "--write", "--readme", str(copy)],
                               capture_output=True, text=True, timeout=300, check=False)
    assert rewritten.returncode == 0, rewritten.stderr
    assert copy.read_text() == text


def test_a_block_without_its_document_fails(tmp_path):
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text() + "\n<!-- bench:no_such_bench -->\n<!-- /bench:no_such_bench -->\n")
    done = _check(copy)
    assert done.returncode == 1
    assert "no_such_bench" in done.stderr

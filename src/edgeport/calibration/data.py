"""Texts (and labels) from data files: .txt, .jsonl, .tsv, .csv; and the built-in sets.

- ``.txt``: one text per line (blank lines skipped).
- ``.jsonl``: one JSON object per line; the text field is ``--text-field`` (default: the
  first of text, sentence, sentence1 present).
- ``.tsv`` / ``.csv``: a header row; the text column is ``--text-column`` (same default).

Every problem with a file (missing, empty, binary, malformed line, missing column, fewer
rows than asked) raises :class:`DataFileError` naming the file and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgeport.errors import DataFileError

TEXT_DEFAULTS = ("text", "sentence", "sentence1")
LABEL_DEFAULTS = ("label", "labels")
SUFFIXES = (".txt", ".jsonl", ".tsv", ".csv")
# Three disjoint built-in sets: calibration ranges come from `calibration`; the accuracy budget
# chooses on `selection`; every reported fidelity figure comes from `heldout` (the report set).
BUILTIN = {"calibration": "calibration_en.txt", "selection": "selection_en.txt", "heldout": "heldout_en.txt"}
# Labelled eval data without a separate --budget-data file is split in half, label-stratified
# and seeded: selection decides fallbacks at the resolution a budget of 0.995 needs (an 872-row
# dev set gives 436 rows, 0.23 points a row), the other half grades the result unseen.
SELECTION_FRACTION = 0.5


@dataclass(frozen=True)
class Records:
    source: str
    texts: list[str]
    labels: list[str] | None = None


def builtin_texts(name: str) -> Records:
    """The built-in English sets written for edgeport: `calibration` and `heldout` (disjoint)."""
    text = resources.files("edgeport.data").joinpath(BUILTIN[name]).read_text(encoding="utf-8")
    return Records(f"builtin:{name}", [line.strip() for line in text.splitlines() if line.strip()])


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataFileError(f"data file '{path}' does not exist", hint="check the path")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise DataFileError(f"'{path}' is a binary file, not text", hint=f"use one of {', '.join(SUFFIXES)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"'{path}' is not UTF-8 text (byte {exc.start})", hint="re-save it as UTF-8") from exc
    if not text.strip():
        raise DataFileError(f"'{path}' is empty", hint="give it at least one text")
    return text


def _pick(available: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in available:
            raise DataFileError(
                f"'{path}' has no {what} '{wanted}'", hint=f"it has: {', '.join(available) or 'nothing'}"
            )
        return wanted
    for name in defaults:
        if name in available:
            return name
    raise DataFileError(
        f"'{path}' has none of the default {what}s ({', '.join(defaults)})",
        hint=f"name one of {', '.join(available) or 'nothing'} with --text-column / --label-column",
    )


def _rows_jsonl(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"'{path}' line {number} is not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise DataFileError(f"'{path}' line {number} is not a JSON object")
        rows.append(row)
    return rows


def _rows_table(path: Path, text: str, delimiter: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataFileError(f"'{path}' is not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}") from exc
    if not reader.fieldnames:
        raise DataFileError(f"'{path}' has no header row", hint="the first line must name the columns")
    for number, row in enumerate(rows, 2):
        if None in row:
            raise DataFileError(f"'{path}' line {number} has more fields than the header")
    return rows


def records_from_file(
    path: Path, text_column: str | None = None, label_column: str | None = None, need_labels: bool = False
) -> Records:
    """Read texts (and labels, when ``need_labels`` or a label column is named) from a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(f"'{path}' has an unknown extension '{suffix}'", hint=f"use one of {', '.join(SUFFIXES)}")
    text = _read_text(path)
    if suffix == ".txt":
        if need_labels:
            raise DataFileError(f"'{path}' is plain text and has no labels", hint="use .tsv, .csv or .jsonl")
        return Records(str(path), [line.strip() for line in text.splitlines() if line.strip()])
    rows = _rows_jsonl(path, text) if suffix == ".jsonl" else _rows_table(path, text, "\t" if suffix == ".tsv" else ",")
    if not rows:
        raise DataFileError(f"'{path}' has a header but no rows")
    columns = list(rows[0].keys())
    text_key = _pick(columns, text_column, TEXT_DEFAULTS, "text column", path)
    texts = [str(row.get(text_key) or "").strip() for row in rows]
    labels = None
    if need_labels or label_column:
        label_key = _pick(columns, label_column, LABEL_DEFAULTS, "label column", path)
        labels = [str(row.get(label_key, "")).strip() for row in rows]
        if any(label == "" for label in labels):
            raise DataFileError(f"'{path}' has rows with an empty '{label_key}'")
    if not any(texts):
        raise DataFileError(f"'{path}' has no non-empty text in column '{text_key}'")
    return Records(str(path), texts, labels)


def sample(records: Records, size: int | None, seed: int = 0) -> Records:
    """``size`` records drawn without replacement with a seed (all of them when None)."""
    if size is None or size == len(records.texts):
        return records
    if size > len(records.texts):
        raise DataFileError(
            f"{records.source} has {len(records.texts)} texts, fewer than the {size} asked for",
            hint="lower --calib-size or give a larger file",
        )
    order = sorted(random.Random(seed).sample(range(len(records.texts)), size))
    labels = [records.labels[i] for i in order] if records.labels is not None else None
    return Records(records.source, [records.texts[i] for i in order], labels)


def split_for_selection(records: Records, fraction: float = SELECTION_FRACTION, seed: int = 0
                        ) -> tuple[Records, Records]:
    """(selection, report): a seeded split of labelled records, stratified by label so both
    halves keep the label mix; every record lands in exactly one of the two."""
    if records.labels is None:
        raise ValueError("only labelled records are split for selection")
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(records.labels):
        by_label.setdefault(label, []).append(i)
    rng, chosen = random.Random(seed), set()
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        chosen.update(members[:round(len(members) * fraction)])
    if not chosen or len(chosen) == len(records.texts):
        raise DataFileError(f"{records.source} has too few rows ({len(records.texts)}) to split into a selection "
                            f"and a report set", hint="give more labelled rows, or a separate --budget-data file")

    def part(keep: bool, name: str) -> Records:
        rows = [i for i in range(len(records.texts)) if (i in chosen) == keep]
        return Records(f"{records.source} ({name} split, {len(rows)} of {len(records.texts)})",
                       [records.texts[i] for i in rows], [records.labels[i] for i in rows])

    return part(True, "selection"), part(False, "report")

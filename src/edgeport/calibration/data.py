"""Texts (and labels) from data files: .txt, .jsonl, .tsv, .csv; and the built-in sets.

- ``.txt``: one text per line (blank lines skipped).
- ``.jsonl``: one JSON object per line; the text field is ``--text-field`` (default: the
  first of text, sentence, sentence1 present).
- ``.tsv`` / ``.csv``: a header row; the text column is ``--text-column`` (same default).
- Pairs (sentence pairs, cross-encoders): the second text is ``--text-pair-column`` of a
  .jsonl/.tsv/.csv file; every row must have both texts.

Every problem with a file (missing, empty, binary, not UTF-8, malformed line, missing
column, a text that is not a string or longer than ``MAX_TEXT_CHARS``, a label that is not
a string or an integer, fewer rows than asked) raises :class:`DataFileError` naming the
file and what to do.
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
# Pair models use the pair sets (`calibration-pairs`, `heldout-pairs`).
BUILTIN = {"calibration": "calibration_en.txt", "selection": "selection_en.txt", "heldout": "heldout_en.txt",
           "calibration-pairs": "calibration_pairs_en.tsv", "heldout-pairs": "heldout_pairs_en.tsv"}
# Labelled eval data without a separate --budget-data file is split in half, label-stratified
# and seeded: selection decides fallbacks at the resolution a budget of 0.995 needs (an 872-row
# dev set gives 436 rows, 0.23 points a row), the other half grades the result unseen.
SELECTION_FRACTION = 0.5
MAX_TEXT_CHARS = 100_000  # models read at most a few hundred tokens; a longer "text" is a wrong file
BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


@dataclass(frozen=True)
class Records:
    source: str
    texts: list[str]
    labels: list[str] | None = None
    pairs: list[str] | None = None  # the second text of each pair (None: single texts)


def builtin_texts(name: str) -> Records:
    """The built-in English sets written for edgeport: `calibration` and `heldout` (single
    texts), `calibration-pairs` and `heldout-pairs` (sentence pairs); all four disjoint."""
    text = resources.files("edgeport.data").joinpath(BUILTIN[name]).read_text(encoding="utf-8")
    if BUILTIN[name].endswith(".tsv"):
        rows = _rows_table(Path(BUILTIN[name]), text, "\t")
        return Records(f"builtin:{name}", [r["sentence1"] for r in rows], pairs=[r["sentence2"] for r in rows])
    return Records(f"builtin:{name}", [line.strip() for line in text.splitlines() if line.strip()])


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataFileError(f"data file '{path}' does not exist", hint="check the path")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"cannot read data file '{path}': {exc.strerror or exc}", hint="check the path") from exc
    for bom, name in BOMS.items():
        if raw.startswith(bom):
            raise DataFileError(f"'{path}' is {name} text; edgeport reads UTF-8", hint="re-save it as UTF-8")
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
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, too deep
            reason = getattr(exc, "msg", None) or str(exc).split(";")[0] or "nested too deep"
            raise DataFileError(f"'{path}' line {number} is not valid JSON: {reason}",
                                hint="each line of a .jsonl file is one JSON object") from exc
        if not isinstance(row, dict):
            raise DataFileError(f"'{path}' line {number} is not a JSON object",
                                hint='each line of a .jsonl file is one object, e.g. {"text": "..."}')
        rows.append(row)
    return rows


def _line_of(rows: list[dict], index: int, suffix: str) -> int:
    return index + (2 if suffix in (".tsv", ".csv") else 1)


def _check_text(value, path: Path, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFileError(f"'{path}' {where}: the text is a {type(value).__name__}, not a string",
                            hint="every text must be a JSON string")
    if len(value) > MAX_TEXT_CHARS:
        raise DataFileError(f"'{path}' {where}: a text of {len(value):,} characters (the limit is {MAX_TEXT_CHARS:,})",
                            hint="split it into sentences or paragraphs, one per line or row")
    return value.strip()


def _check_label(value, path: Path, where: str, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataFileError(f"'{path}' {where}: the label '{key}' is a {type(value).__name__}, "
                            f"not a class name or index", hint="labels are strings or integers")
    return str(value).strip()


def _one_label_type(rows: list[dict], key: str, path: Path) -> None:
    """JSON labels are all integers (class indices) or all strings (class names)."""
    first: dict[type, int] = {}
    for number, row in enumerate(rows, 1):
        first.setdefault(type(row.get(key)), number)
    if len(first) > 1:
        (a, la), (b, lb) = list(first.items())[:2]
        raise DataFileError(f"'{path}' mixes label types: {a.__name__} in row {la}, {b.__name__} in row {lb}",
                            hint="use one kind: all class names (strings) or all class indices (integers)")


def _rows_table(path: Path, text: str, delimiter: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataFileError(f"'{path}' is not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}",
                            hint="check its quoting, or that one field is not the whole file") from exc
    if not reader.fieldnames:
        raise DataFileError(f"'{path}' has no header row", hint="the first line must name the columns")
    for number, row in enumerate(rows, 2):
        if None in row:
            raise DataFileError(f"'{path}' line {number} has more fields than the header",
                                hint="quote fields that hold the delimiter")
    return rows


def records_from_file(
    path: Path, text_column: str | None = None, label_column: str | None = None, need_labels: bool = False,
    text_pair_column: str | None = None,
) -> Records:
    """Read texts (and labels, when ``need_labels`` or a label column is named; and the second
    text of each pair, when ``text_pair_column`` is named) from a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(f"'{path}' has an unknown extension '{suffix}'", hint=f"use one of {', '.join(SUFFIXES)}")
    text = _read_text(path)
    if suffix == ".txt":
        if need_labels or text_pair_column:
            raise DataFileError(f"'{path}' is plain text and has no {'labels' if need_labels else 'text pairs'}",
                                hint="use .tsv, .csv or .jsonl")
        lines = text.splitlines()
        return Records(str(path), [_check_text(line, path, f"line {n}") for n, line in enumerate(lines, 1)
                                   if line.strip()])
    rows = _rows_jsonl(path, text) if suffix == ".jsonl" else _rows_table(path, text, "\t" if suffix == ".tsv" else ",")
    if not rows:
        raise DataFileError(f"'{path}' has a header but no rows", hint="add rows below the header line")
    columns = list(rows[0].keys())
    text_key = _pick(columns, text_column, TEXT_DEFAULTS, "text column", path)
    texts = [_check_text(row.get(text_key), path, f"line {_line_of(rows, i, suffix)}") for i, row in enumerate(rows)]
    labels = None
    if need_labels or label_column:
        label_key = _pick(columns, label_column, LABEL_DEFAULTS, "label column", path)
        labels = [_check_label(row.get(label_key, ""), path, f"line {_line_of(rows, i, suffix)}", label_key)
                  for i, row in enumerate(rows)]
        if any(label == "" for label in labels):
            raise DataFileError(f"'{path}' has rows with an empty '{label_key}'", hint="give every row a label")
        if suffix == ".jsonl":
            _one_label_type(rows, label_key, path)
    if not any(texts):
        raise DataFileError(f"'{path}' has no non-empty text in column '{text_key}'",
                            hint="name the column with the texts with --text-column")
    pairs = None
    if text_pair_column:
        pair_key = _pick(columns, text_pair_column, (), "text pair column", path)
        pairs = [str(row.get(pair_key) or "").strip() for row in rows]
        empty = [n for n, (a, b) in enumerate(zip(texts, pairs), 1) if not a or not b]
        if empty:
            raise DataFileError(f"'{path}' row {empty[0]} lacks one text of its pair ('{text_key}', '{pair_key}')",
                                hint="every row of pair data needs both texts")
    return Records(str(path), texts, labels, pairs)


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
    pairs = [records.pairs[i] for i in order] if records.pairs is not None else None
    return Records(records.source, [records.texts[i] for i in order], labels, pairs)


def _stratified(labels: list[str], fraction: float, seed: int) -> set[int]:
    """A seeded draw of ``fraction`` of the rows of each label."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    rng, chosen = random.Random(seed), set()
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        chosen.update(members[:round(len(members) * fraction)])
    return chosen


def split_for_selection(records: Records, fraction: float = SELECTION_FRACTION, seed: int = 0
                        ) -> tuple[Records, Records]:
    """(selection, report): a seeded split of labelled records, stratified by label so both
    halves keep the label mix; every record lands in exactly one of the two."""
    if records.labels is None:
        raise ValueError("only labelled records are split for selection")
    chosen = _stratified(records.labels, fraction, seed)
    if not chosen or len(chosen) == len(records.texts):
        raise DataFileError(f"{records.source} has too few rows ({len(records.texts)}) to split into a selection "
                            f"and a report set", hint="give more labelled rows, or a separate --budget-data file")

    def part(keep: bool, name: str) -> Records:
        rows = [i for i in range(len(records.texts)) if (i in chosen) == keep]
        pairs = [records.pairs[i] for i in rows] if records.pairs is not None else None
        return Records(f"{records.source} ({name} split, {len(rows)} of {len(records.texts)})",
                       [records.texts[i] for i in rows], [records.labels[i] for i in rows], pairs)

    return part(True, "selection"), part(False, "report")


@dataclass(frozen=True)
class Carved:
    selection: Records
    rest: Records
    dropped: int  # rows of the rest whose text is also a selection text (dropped from the rest)
    inner: int  # rows of the rest dropped as phrases inside a selection text (drop_inner_phrases; else 0)


def row_keys(records: Records) -> list[tuple]:
    """Each row as (text, second text or None): what makes two rows the same example."""
    return list(zip(records.texts, records.pairs or [None] * len(records.texts)))


def inside_any(texts: list[str], within: list[str]) -> list[bool]:
    """For each text, whether its words (case-insensitive) run, whole, inside one of ``within``:
    every run of words of ``within`` up to the longest text's length, in a set (SST-2's 65k
    training rows against 2,000 sentences: about a second; a substring scan took 15)."""
    needles = [" ".join(text.lower().split()) for text in texts]
    longest = max((needle.count(" ") + 1 for needle in needles), default=0)
    runs: set[str] = set()
    for text in within:
        words = text.lower().split()
        for i in range(len(words)):
            runs.update(" ".join(words[i:j]) for j in range(i + 1, min(len(words), i + longest) + 1))
    return [needle in runs for needle in needles]


def carve(records: Records, size: int, seed: int = 0, min_words: int = 0,
          drop_inner_phrases: bool = False) -> Carved:
    """``size`` selection rows (seeded, label-stratified, of at least ``min_words`` words) and
    the rest, disjoint by text: a rest row repeating a selection text is dropped (training files
    such as SST-2's repeat phrases); with ``drop_inner_phrases``, so is a rest row whose words
    run inside a selection text (SST-2's train.tsv holds every sentence's sub-phrases)."""
    if records.labels is None:
        raise DataFileError(f"{records.source} has no labels to stratify a selection split by",
                            hint="name its label column (label_column)")
    eligible = [i for i, text in enumerate(records.texts) if len(text.split()) >= min_words]
    if size >= len(eligible):
        raise DataFileError(f"{records.source} has {len(eligible)} rows of at least {min_words} words; the selection "
                            f"split asks for {size}", hint="lower the split's size or min_words")
    picked = {eligible[i] for i in _stratified([records.labels[j] for j in eligible], size / len(eligible), seed)}
    keys = row_keys(records)
    chosen_keys = {keys[i] for i in picked}
    rest = [i for i in range(len(records.texts)) if i not in picked and keys[i] not in chosen_keys]
    dropped = len(records.texts) - len(picked) - len(rest)
    kept = len(rest)
    if drop_inner_phrases:
        if records.pairs is not None:
            raise DataFileError(f"{records.source}: drop_inner_phrases applies to single texts, not pairs",
                                hint="drop the split's drop_inner_phrases")
        inside = inside_any([records.texts[i] for i in rest], [records.texts[i] for i in sorted(picked)])
        rest = [i for i, within in zip(rest, inside) if not within]
    return Carved(_rows(records, sorted(picked), f"selection split, {len(picked)} rows"),
                  _rows(records, rest, f"rest after a {len(picked)}-row selection split, {len(rest)} rows"), dropped,
                  kept - len(rest))


def _rows(records: Records, rows: list[int], name: str) -> Records:
    return Records(f"{records.source} ({name})", [records.texts[i] for i in rows],
                   [records.labels[i] for i in rows] if records.labels is not None else None,
                   [records.pairs[i] for i in rows] if records.pairs is not None else None)


def records_from_spec(spec, need_labels: bool = False) -> Records:
    """The records a recipe's DataSpec names: the file, or one part of its split."""
    records = records_from_file(spec.path, spec.text_column, spec.label_column,
                                need_labels=need_labels or spec.split is not None,
                                text_pair_column=spec.text_pair_column)
    if spec.split is None:
        return records
    carved = carve(records, spec.split.size, spec.split.seed, spec.split.min_words, bool(spec.split.drop_inner_phrases))
    return carved.selection if spec.split.part == "selection" else carved.rest


"""Calibration and eval data files: every format, every bad-file case."""

from __future__ import annotations

import json

import pytest

from edgeport.calibration.data import builtin_texts, records_from_file, sample
from edgeport.errors import DataFileError


def test_builtin_sets_are_disjoint_and_natural():
    calib, held = builtin_texts("calibration"), builtin_texts("heldout")
    assert len(calib.texts) >= 250 and len(held.texts) >= 100
    assert not set(calib.texts) & set(held.texts)
    # varied, not templated: few texts share their first three words
    starts = {" ".join(t.split()[:3]) for t in calib.texts}
    assert len(starts) > 0.9 * len(calib.texts)


def test_txt_jsonl_tsv_csv(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \n")
    assert records_from_file(tmp_path / "a.txt").texts == ["one", "two"]
    (tmp_path / "a.jsonl").write_text(json.dumps({"body": "x y", "label": 1}) + "\n" + json.dumps({"body": "z", "label": 0}))
    rec = records_from_file(tmp_path / "a.jsonl", text_column="body", need_labels=True)
    assert rec.texts == ["x y", "z"] and rec.labels == ["1", "0"]
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nhello there\t1\n")
    assert records_from_file(tmp_path / "a.tsv", need_labels=True).labels == ["1"]
    (tmp_path / "a.csv").write_text('text,label\n"a, quoted text",0\n')
    assert records_from_file(tmp_path / "a.csv").texts == ["a, quoted text"]


@pytest.mark.parametrize("name,content,needle", [
    ("empty.txt", "", "is empty"),
    ("blank.txt", "\n  \n", "is empty"),
    ("bin.txt", b"\x00\x01\x02abc", "binary"),
    ("latin.txt", b"caf\xe9\n", "not UTF-8"),
    ("bad.jsonl", '{"text": "ok"}\n{not json}\n', "line 2 is not valid JSON"),
    ("list.jsonl", '[1, 2]\n', "not a JSON object"),
    ("nohead.tsv", "sentence\tlabel\n", "no rows"),
    ("ragged.csv", "text\na,b\n", "more fields than the header"),
    ("cols.tsv", "body\tlabel\nx\t1\n", "none of the default text columns"),
    ("x.parquet", "x", "unknown extension"),
])
def test_bad_files_raise_clear_errors(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFileError) as info:
        records_from_file(path)
    assert needle in str(info.value)
    assert name in str(info.value)


def test_missing_file_and_named_column(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        records_from_file(tmp_path / "nope.txt")
    (tmp_path / "d.tsv").write_text("sentence\tlabel\nx\t1\n")
    with pytest.raises(DataFileError, match="no text column 'review'.*sentence, label"):
        records_from_file(tmp_path / "d.tsv", text_column="review")
    with pytest.raises(DataFileError, match="has no labels"):
        (tmp_path / "t.txt").write_text("x\n")
        records_from_file(tmp_path / "t.txt", need_labels=True)


def test_sample_is_seeded_and_refuses_more_than_available():
    calib = builtin_texts("calibration")
    a, b = sample(calib, 50, seed=1), sample(calib, 50, seed=1)
    assert a.texts == b.texts and len(a.texts) == 50
    assert sample(calib, 50, seed=2).texts != a.texts
    with pytest.raises(DataFileError, match="fewer than the 10000 asked for"):
        sample(calib, 10000)

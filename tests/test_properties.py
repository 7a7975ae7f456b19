"""Property-based tests (Hypothesis): whatever bytes a data file holds and whatever YAML a
recipe holds, edgeport either reads it or raises its own error (one message, an exit code):
never another exception, which the CLI would show as an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.calibration.data import Records, records_from_file
from edgeport.errors import EdgeportError
from edgeport.recipe import Recipe, recipe_from_dict, recipe_from_yaml

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# text that looks like data files: separators, quotes, JSON punctuation, BOMs, NULs, long runs
PIECES = st.sampled_from(["text", "label", "sentence", ",", "\t", "\n", "\r\n", '"', "'", "{", "}", "[", "]", ":",
                          "null", "1", "-1", "1.5", "true", "\ufeff", "\x00", "é", "\u2028", " ", "x" * 200])
TEXTISH = st.lists(PIECES, max_size=60).map("".join)
CONTENT = st.one_of(st.binary(max_size=2000), TEXTISH.map(lambda t: t.encode("utf-8")),
                    TEXTISH.map(lambda t: t.encode("utf-16")), TEXTISH.map(lambda t: t.encode("latin-1", "replace")))
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=8)


def _read(path: Path, need_labels: bool, text_column, label_column):
    try:
        records = records_from_file(path, text_column, label_column, need_labels=need_labels)
    except EdgeportError as exc:
        assert exc.exit_code == 3 and exc.message and "\n" not in exc.message.strip()
        assert str(path) in exc.message
        return None
    assert isinstance(records, Records) and records.texts and all(isinstance(t, str) for t in records.texts)
    if need_labels:
        assert records.labels is not None and len(records.labels) == len(records.texts)
    return records


@FAST
@given(content=CONTENT, suffix=st.sampled_from([".txt", ".jsonl", ".tsv", ".csv"]), need_labels=st.booleans(),
       text_column=st.sampled_from([None, "text", "sentence", "nope"]),
       label_column=st.sampled_from([None, "label", "nope"]))
def test_data_readers_never_raise_anything_but_their_own_error(tmp_path, content, suffix, need_labels, text_column,
                                                               label_column):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    _read(path, need_labels, text_column, label_column)


@FAST
@given(rows=st.lists(st.dictionaries(st.sampled_from(["text", "label", "sentence", "other"]), JSON_VALUES,
                                     max_size=4), min_size=1, max_size=6))
def test_jsonl_rows_of_any_json_values(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = _read(path, True, None, None)
    if records is not None:  # what was accepted is what the file said
        assert all(isinstance(row.get("text", row.get("sentence")), str) for row in rows)


@FAST
@given(labels=st.lists(st.one_of(st.sampled_from(["negative", "positive", "NEGATIVE", "neutral", "0", "1", "2", "-1",
                                                  "LABEL_1", "٣", "1.0", ""]), st.text(max_size=5)),
                       min_size=1, max_size=8))
def test_eval_labels_map_to_classes_or_are_refused(labels):
    from edgeport.verify import label_indices

    try:
        indices = label_indices(labels, {0: "negative", 1: "positive"}, "eval.tsv")
    except EdgeportError as exc:
        assert exc.exit_code == 3 and "eval.tsv" in exc.message
        return
    assert all(index in (0, 1) for index in indices)


@FAST
@given(text=TEXTISH)
def test_recipe_text_never_raises_anything_but_a_usage_error(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8", errors="replace")
    try:
        recipe = recipe_from_yaml(path)
    except EdgeportError as exc:
        assert exc.exit_code == 2 and str(path) in exc.message
        return
    assert isinstance(recipe, Recipe)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["model", "targets", "calibration", "size", "seed", "data", "path", "budget", "min_fidelity",
                         "profile", "runs", "eval", "compress", "steps", "op", "keep", "opset", "trust_pickle",
                         "target_options", "unknown"]), inner, max_size=4),
    max_leaves=12)


@FAST
@given(document=st.dictionaries(st.sampled_from(["model", "targets", "calibration", "eval", "budget", "profile",
                                                 "compress", "opset", "trust_pickle", "target_options", "x"]),
                                YAML_VALUES, max_size=6))
def test_recipe_schema_on_arbitrary_documents(tmp_path, document):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    try:
        recipe = recipe_from_yaml(path)
    except EdgeportError as exc:
        assert exc.exit_code == 2 and exc.message.startswith(("invalid option", "cannot read recipe", "recipe '"))
        return
    assert isinstance(recipe, Recipe)
    assert recipe_from_dict(recipe.model_dump(mode="json")) == recipe  # what was accepted round-trips


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch {canary}']",
                                 "!!python/object/new:subprocess.Popen [['touch', '{canary}']]",
                                 "!!python/name:os.system"])
def test_recipes_are_loaded_safely(tmp_path, tag):
    canary = tmp_path / "canary"
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model: {tag.format(canary=canary)}\n")
    with pytest.raises(EdgeportError) as info:
        recipe_from_yaml(path)
    assert info.value.exit_code == 2 and "cannot read recipe" in info.value.message
    assert not canary.exists()

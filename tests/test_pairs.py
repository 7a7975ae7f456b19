"""Sentence pairs and cross-encoders: pair data files, pair tokenization (token_type_ids set),
the built-in pair sets, pair fidelity (label agreement, score correlation) and the CLI flow
with pair calibration and a labelled pair eval file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.calibration.data import builtin_texts, records_from_file, sample
from edgeport.calibration.feeds import feeds_from_texts
from edgeport.errors import DataFileError
from edgeport.model.load import model_from_path
from edgeport.verify import fidelity, predicted_labels, scores


def test_builtin_pair_sets_are_disjoint_from_each_other_and_the_single_sets():
    calib, held = builtin_texts("calibration-pairs"), builtin_texts("heldout-pairs")
    assert len(calib.texts) >= 150 and len(held.texts) >= 50
    assert len(calib.pairs) == len(calib.texts) and all(calib.pairs) and all(held.pairs)
    pair_sentences = set(calib.texts + calib.pairs)
    assert not pair_sentences & set(held.texts + held.pairs)
    assert not (pair_sentences | set(held.texts + held.pairs)) & set(
        builtin_texts("calibration").texts + builtin_texts("heldout").texts)
    picked = sample(calib, 20, seed=1)
    assert len(picked.pairs) == 20 and picked.pairs[0] == calib.pairs[calib.texts.index(picked.texts[0])]


def test_pair_columns_from_files(tmp_path):
    (tmp_path / "p.tsv").write_text("q\tpassage\tlabel\nWho?\tHim.\t1\nWhat?\tThat.\t0\n")
    records = records_from_file(tmp_path / "p.tsv", "q", "label", need_labels=True, text_pair_column="passage")
    assert records.texts == ["Who?", "What?"] and records.pairs == ["Him.", "That."] and records.labels == ["1", "0"]
    (tmp_path / "p.jsonl").write_text(json.dumps({"a": "x", "b": "y"}) + "\n" + json.dumps({"a": "z", "b": ""}))
    with pytest.raises(DataFileError, match="row 2 lacks one text of its pair"):
        records_from_file(tmp_path / "p.jsonl", "a", text_pair_column="b")
    with pytest.raises(DataFileError, match="no text pair column 'nope'"):
        records_from_file(tmp_path / "p.tsv", "q", text_pair_column="nope")


def test_pairs_are_tokenized_as_pairs(tiny_models):
    loaded = model_from_path(tiny_models("bert", "text-pair-classification"))
    assert loaded.task == "text-pair-classification"  # a CrossEncoder's config marks it
    feeds = feeds_from_texts(loaded.tokenizer, ["the cat sleeps"], loaded.family.inputs, pairs=["a dog barks"])
    types, ids = feeds["token_type_ids"][0], feeds["input_ids"][0]
    sep = loaded.tokenizer.sep_token_id
    first_sep = int(np.where(ids == sep)[0][0])
    assert types[:first_sep + 1].sum() == 0 and types[first_sep + 1:].min() == 1
    single = feeds_from_texts(loaded.tokenizer, ["the cat sleeps"], loaded.family.inputs)
    assert single["token_type_ids"].sum() == 0


def test_pair_fidelity_on_known_outputs():
    ref = np.array([[0.0, 2.0], [1.0, -1.0], [0.5, 0.4], [-2.0, 3.0]])
    same = fidelity(ref.copy(), ref, classifier=True, pairs=True)
    assert same.top1_agreement == 1.0 and same.score_pearson == pytest.approx(1.0)
    assert same.score_spearman == pytest.approx(1.0)
    flipped = ref.copy()
    flipped[2] = [0.4, 0.5]  # one label flips; scores barely move
    got = fidelity(flipped, ref, classifier=True, pairs=True)
    assert got.top1_agreement == 0.75 and got.score_pearson > 0.99
    # a one-logit scorer (reranker): the label is the sign of the score
    scorer = np.array([[1.5], [-0.2], [0.3]])
    assert predicted_labels(scorer).tolist() == [1, 0, 1] and scores(scorer).tolist() == [1.5, -0.2, 0.3]
    assert fidelity(-scorer, scorer, classifier=True, pairs=True).score_pearson == pytest.approx(-1.0)


@pytest.fixture()
def pair_eval(tmp_path):
    held = builtin_texts("heldout-pairs")
    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{a}\t{b}\t{i % 2}\n" for i, (a, b) in enumerate(zip(held.texts[:20], held.pairs[:20]))))
    return path


def test_pair_classifier_end_to_end(tiny_models, tmp_path, run_cli, pair_eval):
    """A plain sequence classifier given a pair column becomes a pair classifier: pair
    calibration (built in), pair fidelity, and accuracy on labelled pairs."""
    code, out, err = run_cli("--json", "export", tiny_models("bert", "text-classification"), "--target",
                             "onnx-int8,openvino-int8", "--min-fidelity", "0", "--no-profile", "--eval", pair_eval,
                             "--text-column", "sentence1", "--text-pair-column", "sentence2",
                             "--label-column", "label", "--out", tmp_path / "run")
    assert code == 0, err
    document = json.loads(out)
    assert document["model"]["task"] == "text-pair-classification"
    for name in ("onnx-int8", "openvino-int8"):
        entry = document["targets"][name]
        # the held-out pairs are halved: one half chooses, the other (reported) half grades
        held_out = len(builtin_texts("heldout-pairs").texts)
        assert entry["fidelity"]["samples"] == held_out - held_out // 2
        assert entry["fidelity"]["source"] == "builtin:heldout-pairs (report half)"
        assert entry["fidelity"]["score_pearson"] is not None and entry["fidelity"]["top1_agreement"] is not None
        # the 20 labelled pairs are split in half the same way: 10 choose, 10 report
        assert entry["accuracy"]["samples"] == 10 and 0 <= entry["accuracy"]["label_agreement"] <= 1
        assert entry["fallback"]["selection"]["samples"] == 10
    manifest = json.loads((tmp_path / "run" / "targets" / "openvino-int8" / "manifest.json").read_text())
    assert manifest["calibration"]["source"] == "builtin:calibration-pairs" and manifest["calibration"]["pairs"]


def test_pair_data_for_a_model_that_takes_single_texts_is_refused(tiny_models, tmp_path, run_cli, pair_eval):
    code, _, err = run_cli("export", tiny_models("bert"), "--target", "onnx-fp32", "--no-profile",
                           "--calib", pair_eval, "--text-pair-column", "sentence2", "--out", tmp_path / "run")
    assert code == 2 and "--text-pair-column gives pairs" in err
    code, _, err = run_cli("export", tiny_models("bert", "text-pair-classification"), "--target", "onnx-fp32",
                           "--no-profile", "--calib", pair_eval, "--out", tmp_path / "run2")
    assert code == 3 and "read two texts per example" in err

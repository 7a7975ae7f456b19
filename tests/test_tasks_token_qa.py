"""Token classification (NER) and extractive question answering end to end: their data
readers, the entity F1 and SQuAD EM/F1 measures on hand-checked inputs, the per-token
fidelity measures, and one `edgeport export --eval` run per task on a tiny BERT trained here
for a few steps on a synthetic task (so that its accuracy means something)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from edgeport.calibration.token_data import Answers, Questions, TaggedSentences, builtin_questions, \
    questions_from_file, split_in_half, tagged_from_file
from edgeport.errors import DataFileError
from edgeport.verify import Fidelity, best_span, entity_chunks, entity_f1, span_fidelity, squad_normalize, \
    squad_scores, token_fidelity
from tests.conftest import NER_LABELS, make_tiny_model


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend with the other processes here
    yield
    torch.set_num_threads(before)


# --- readers -------------------------------------------------------------------------------

def test_conll_reader(tmp_path):
    path = tmp_path / "dev.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nSmith\tI-PER\nlives O\n\n\n"
                    "Paris NNP B-LOC\n.  O\n")
    data = tagged_from_file(path)
    assert data.words == [["John", "Smith", "lives"], ["Paris", "."]]
    assert data.tags == [["B-PER", "I-PER", "O"], ["B-LOC", "O"]]
    assert data.texts == ["John Smith lives", "Paris ."]
    (tmp_path / "bad.conll").write_text("John B-PER\nSmith\n")
    with pytest.raises(DataFileError, match="line 2 has a word but no tag"):
        tagged_from_file(tmp_path / "bad.conll")


def test_tagged_jsonl_reader(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text('{"tokens": ["Ann", "sings"], "ner_tags": [1, 0]}\n\n{"tokens": ["Oslo"], "ner_tags": [3]}\n')
    data = tagged_from_file(path)
    assert data.words == [["Ann", "sings"], ["Oslo"]] and data.tags == [["1", "0"], ["3"]]
    path.write_text('{"tokens": ["Ann", "sings"], "ner_tags": ["B-PER"]}\n')
    with pytest.raises(DataFileError, match="2 tokens but 1 tags"):
        tagged_from_file(path)
    path.write_text('{"tokens": ["Ann"]}\n')
    with pytest.raises(DataFileError, match="no 'ner_tags'"):
        tagged_from_file(path)
    assert tagged_from_file(path, need_tags=False).tags is None


def test_squad_reader(tmp_path):
    path = tmp_path / "qa.jsonl"
    context = "The bridge is made of red sandstone."
    path.write_text(json.dumps({"id": "q1", "question": "What is it made of?", "context": context,
                                "answers": {"text": ["red sandstone", "sandstone"], "answer_start": [22, 26]}}) + "\n")
    data = questions_from_file(path)
    assert data.questions == ["What is it made of?"] and data.contexts == [context]
    assert data.answers == [Answers(("red sandstone", "sandstone"), (22, 26))]
    records = data.as_records()
    assert records.texts == data.questions and records.pairs == [context]
    path.write_text(json.dumps({"question": "q?", "context": context,
                                "answers": {"text": ["red"], "answer_start": [3]}}) + "\n")
    with pytest.raises(DataFileError, match="not at character 3"):
        questions_from_file(path)
    path.write_text(json.dumps({"question": "q?", "context": context, "answers": {"text": [], "answer_start": []}}))
    with pytest.raises(DataFileError, match="unanswerable"):
        questions_from_file(path)


def test_builtin_qa_sets_are_disjoint_and_consistent():
    sets = [builtin_questions(name) for name in ("calibration-qa", "selection-qa", "heldout-qa")]
    contexts = [set(s.contexts) for s in sets]
    assert all(len(s.questions) == 16 for s in sets)
    assert not (contexts[0] & contexts[1]) and not (contexts[0] & contexts[2]) and not (contexts[1] & contexts[2])


def test_split_in_half_is_seeded_and_disjoint():
    data = TaggedSentences("x", [[f"w{i}"] for i in range(9)], [["O"]] * 9)
    first, second = split_in_half(data)
    assert len(first.words) == 4 and len(second.words) == 5
    assert sorted(w[0] for w in first.words + second.words) == sorted(w[0] for w in data.words)
    assert split_in_half(data) == (first, second)
    questions = Questions("q", ["a", "b"], ["c", "d"], [Answers(("c",), (0,)), Answers(("d",), (0,))])
    one, two = split_in_half(questions)
    assert sorted(one.questions + two.questions) == ["a", "b"] and one.answers[0].texts[0] == one.contexts[0]


# --- measures on known inputs ---------------------------------------------------------------

def test_entity_chunks_follow_seqeval_default_mode():
    assert entity_chunks(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}
    assert entity_chunks(["I-PER", "I-PER", "O"]) == {("PER", 0, 1)}  # an I after O starts an entity
    assert entity_chunks(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}  # a change of type splits
    assert entity_chunks(["B-PER", "B-PER", "I-PER"]) == {("PER", 0, 0), ("PER", 1, 2)}
    assert entity_chunks(["O", "O"]) == set()


def test_entity_f1_hand_checked():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    # PER is cut short (a partial overlap does not count), LOC and ORG match: 2 of 3 found, 2 of 3 right
    predicted = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    assert entity_f1(gold, predicted) == pytest.approx(2 / 3)
    # one extra entity predicted: precision 3/4, recall 3/3 -> F1 = 2 * 0.75 / 1.75
    assert entity_f1(gold, [gold[0], ["B-ORG", "B-LOC"]]) == pytest.approx(1.5 / 1.75)
    assert entity_f1(gold, gold) == 1.0
    assert entity_f1(gold, [["O"] * 4, ["O", "O"]]) == 0.0


def test_squad_scores_hand_checked():
    assert squad_normalize("The  Selva River!") == "selva river"
    assert squad_scores("the Selva River", ["Selva River"]) == (1.0, 1.0)
    # one of two gold words: precision 1, recall 1/2 -> F1 2/3
    exact, f1 = squad_scores("Selva", ["the Selva River"])
    assert exact == 0.0 and f1 == pytest.approx(2 / 3)
    # the best of several gold answers counts
    assert squad_scores("river", ["the Selva River", "River"]) == (1.0, 1.0)
    assert squad_scores("lake", ["Selva River"]) == (0.0, 0.0)


def test_best_span_respects_order_length_and_context():
    logits = np.zeros((40, 2))
    allowed = np.ones(40, dtype=bool)
    allowed[:3] = False  # the question's tokens
    logits[1, 0], logits[1, 1] = 9, 9  # the best pair is outside the context
    logits[10, 0], logits[5, 1] = 5, 4  # start 10 with end 5 (9) would win, but ends before it starts
    assert best_span(logits, allowed) == (10, 10)
    logits[:, 0], logits[:, 1] = -10, 0
    logits[4, 0], logits[39, 1], logits[20, 1] = 5, 9, 1  # (4, 39) is 36 tokens long: too long (max 30)
    assert best_span(logits, allowed) == (4, 20)
    assert best_span(logits, np.zeros(40, dtype=bool)) is None


def test_token_and_span_fidelity_on_known_outputs():
    ref = [np.array([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]]), np.array([[5.0, 0, 0], [0, 5, 0]])]
    out = [r.copy() for r in ref]
    out[0][2] = [0, 6, 5]  # one measured token changes its label
    scored = [np.array([False, True, True, False]), np.array([False, True])]
    fid = token_fidelity(out, ref, scored, "known")
    assert fid.token_agreement == pytest.approx(2 / 3) and fid.samples == 2 and fid.agreement[0] == "token agreement"
    assert fid.min_cosine < 1 and fid.max_abs_error == 6
    qa_ref = [np.array([[0.0, 0], [3, 0], [0, 3]]), np.array([[0.0, 0], [3, 3], [0, 0]])]
    qa_out = [qa_ref[0].copy(), np.array([[0.0, 0], [3, 0], [0, 4]])]  # second example: span (1,1) -> (1,2)
    allowed = [np.array([False, True, True])] * 2
    fid = span_fidelity(qa_out, qa_ref, allowed)
    assert fid.span_agreement == 0.5 and fid.agreement == ("span agreement", 0.5)


def test_budget_reads_token_and_span_agreement():
    from edgeport.calibration.budget import Budget, loss_of
    from edgeport.verify import Check

    fid = Fidelity(mean_cosine=0.999, min_cosine=0.99, max_abs_error=0.1, token_agreement=0.97, samples=4)
    check = Check(fidelity=fid)
    assert Budget(0.99).shortfalls(check) == ["token agreement 0.9700 < 0.99"]
    assert Budget(0.95).meets(check) and loss_of(check) == pytest.approx(0.001 + 0.03)


# --- end to end on models trained here --------------------------------------------------------

PEOPLE = ["anna", "bruno", "chen", "dara", "emil", "farah", "goran", "hana", "ivan", "jonas"]
SURNAMES = ["kovac", "lund", "moreau", "novak", "okafor", "petrov"]
PLACES = ["oslo", "lima", "lagos", "porto", "quito", "riga", "sofia", "tunis"]
FILLER = ["we", "saw", "yesterday", "again", "with", "and", "then", "left", "for", "met", "in", "today"]


def _ner_sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    """Filler words with people (a first name, sometimes a surname: B-PER I-PER) and places
    (B-LOC) between them; two entities are never adjacent, so the tags follow from the words."""
    words, tags = [], []
    for _ in range(rng.randint(2, 4)):
        filler = rng.sample(FILLER, rng.randint(1, 2))
        words += filler
        tags += ["O"] * len(filler)
        if rng.random() < 0.6:
            words.append(rng.choice(PEOPLE))
            tags.append("B-PER")
            if rng.random() < 0.4:
                words.append(rng.choice(SURNAMES))
                tags.append("I-PER")
        else:
            words.append(rng.choice(PLACES))
            tags.append("B-LOC")
    return words, tags


def _train_ner(folder, steps: int = 60) -> None:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder)
    rng = random.Random(1)
    label = {name: i for i, name in enumerate(NER_LABELS)}
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        batch = [_ner_sentence(rng) for _ in range(16)]
        encoded = tokenizer([w for w, _ in batch], is_split_into_words=True, padding=True, return_tensors="pt")
        labels = torch.full(encoded["input_ids"].shape, -100)
        for row, (_, tags) in enumerate(batch):
            seen = set()
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None and word not in seen:
                    seen.add(word)
                    labels[row, position] = label[tags[word]]
        loss = model(**encoded, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(folder, safe_serialization=True)


def test_token_classification_end_to_end(tmp_path, run_cli):
    folder = make_tiny_model(tmp_path / "ner", "bert", "token-classification")
    _train_ner(folder)
    rng = random.Random(7)
    sentences = [_ner_sentence(rng) for _ in range(40)]
    eval_file = tmp_path / "dev.conll"
    eval_file.write_text("\n".join("".join(f"{w} {t}\n" for w, t in zip(*s)) for s in sentences))
    code, _, err = run_cli("export", folder, "--target", "onnx-fp32,onnx-int8,openvino-int8", "--eval", eval_file,
                           "--min-fidelity", "0", "--no-profile", "--out", tmp_path / "run")
    assert code == 0, err
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["model"]["task"] == "token-classification"
    fp32, int8, ov = (document["targets"][name] for name in ("onnx-fp32", "onnx-int8", "openvino-int8"))
    for entry in (fp32, int8, ov):
        acc, fid = entry["accuracy"], entry["fidelity"]
        assert acc["metric"] == "entity_f1" and acc["samples"] == 20  # the report half of 40 sentences
        assert acc["source"].endswith("(report split, 20 of 40)")
        assert fid["source"] == "builtin:heldout" and fid["token_agreement"] is not None
        assert fid["top1_agreement"] is None and fid["span_agreement"] is None
    # trained for a few steps, the tagger finds the synthetic entities: chance is near 0
    assert fp32["accuracy"]["fp32"] > 0.8
    assert fp32["accuracy"]["artifact"] == pytest.approx(fp32["accuracy"]["fp32"], abs=1e-9)
    assert fp32["fidelity"]["token_agreement"] == 1.0 and fp32["fidelity"]["mean_cosine"] > 0.99999
    for entry in (int8, ov):
        assert entry["accuracy"]["artifact"] > 0.6 and 0.8 < entry["accuracy"]["label_agreement"] <= 1
        assert entry["fallback"]["selection"]["samples"] == 20
    manifest = json.loads((tmp_path / "run" / "targets" / "openvino-int8" / "manifest.json").read_text())
    assert manifest["calibration"]["source"] == "builtin:calibration" and not manifest["calibration"].get("pairs")
    report = (tmp_path / "run" / "report.md").read_text()
    assert "entity_f1" in report


def _qa_example(rng: random.Random, words: list[str]) -> dict:
    """A context of filler words with one answer word after 'is': the answer is that word. The
    answer words (the first ``ANSWER_WORDS`` of ``words``) appear nowhere else."""
    answers, filler = words[:ANSWER_WORDS], words[ANSWER_WORDS:]
    before = rng.sample(filler, rng.randint(2, 5))
    answer = rng.choice(answers)
    after = rng.sample(filler, rng.randint(1, 5))
    context = " ".join(before + ["is", answer] + after)
    start = len(" ".join(before + ["is"])) + 1
    question = " ".join(["which"] + rng.sample(filler, 2)) + " ?"
    return {"question": question, "context": context, "answers": {"text": [answer], "answer_start": [start]}}


ANSWER_WORDS = 12


def _qa_words(tokenizer) -> list[str]:
    """Whole-word tokens of the tiny vocabulary (no articles, which SQuAD's normalisation drops)."""
    vocab = tokenizer.get_vocab()
    return sorted(w for w in vocab if w.isalpha() and len(w) >= 3 and w not in ("the", "which", "is"))[:60]


def _train_qa(folder, words: list[str], steps: int = 100) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    rng = random.Random(2)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        batch = [_qa_example(rng, words) for _ in range(16)]
        encoded = tokenizer([b["question"] for b in batch], [b["context"] for b in batch], padding=True,
                            return_offsets_mapping=True, return_tensors="pt")
        starts, ends = [], []
        for row, example in enumerate(batch):
            begin = example["answers"]["answer_start"][0]
            finish = begin + len(example["answers"]["text"][0])
            sequence = encoded.sequence_ids(row)
            span = [i for i, (s, e) in enumerate(encoded["offset_mapping"][row].tolist())
                    if sequence[i] == 1 and s < finish and e > begin]
            starts.append(span[0])
            ends.append(span[-1])
        encoded.pop("offset_mapping")
        loss = model(**encoded, start_positions=torch.tensor(starts), end_positions=torch.tensor(ends)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(folder, safe_serialization=True)


def test_question_answering_end_to_end(tmp_path, run_cli):
    from transformers import AutoTokenizer

    folder = make_tiny_model(tmp_path / "qa", "bert", "question-answering")
    words = _qa_words(AutoTokenizer.from_pretrained(folder))
    _train_qa(folder, words)
    rng = random.Random(9)
    eval_file = tmp_path / "dev.jsonl"
    eval_file.write_text("".join(json.dumps(_qa_example(rng, words)) + "\n" for _ in range(40)))
    code, _, err = run_cli("export", folder, "--target", "onnx-fp32,onnx-int8,openvino-int8", "--eval", eval_file,
                           "--min-fidelity", "0", "--no-profile", "--out", tmp_path / "run")
    assert code == 0, err
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["model"]["task"] == "question-answering"
    fp32, int8, ov = (document["targets"][name] for name in ("onnx-fp32", "onnx-int8", "openvino-int8"))
    for entry in (fp32, int8, ov):
        acc, fid = entry["accuracy"], entry["fidelity"]
        assert acc["metric"] == "squad_f1" and acc["samples"] == 20 and acc["exact_match"] is not None
        assert fid["source"] == "builtin:heldout-qa" and fid["samples"] == 16 and fid["span_agreement"] is not None
    # a reader that learnt the answer words finds most answers; chance is ~1/10 (the context's length)
    assert fp32["accuracy"]["fp32"] > 0.8 and fp32["accuracy"]["exact_match"]["fp32"] > 0.8
    assert fp32["accuracy"]["artifact"] == pytest.approx(fp32["accuracy"]["fp32"], abs=1e-9)
    assert fp32["fidelity"]["span_agreement"] == 1.0
    for entry in (int8, ov):
        assert entry["accuracy"]["artifact"] > 0.6 and 0.5 < entry["accuracy"]["label_agreement"] <= 1
    manifest = json.loads((tmp_path / "run" / "targets" / "openvino-int8" / "manifest.json").read_text())
    assert manifest["calibration"]["source"] == "builtin:calibration-qa" and manifest["calibration"]["pairs"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "squad_f1" in report and "exact_match" in report


def test_tagged_data_is_checked_before_any_work(tiny_models, tmp_path, run_cli):
    folder = tiny_models("bert", "token-classification")
    eval_file = tmp_path / "dev.conll"
    eval_file.write_text("anna B-PER\nsings O\n\noslo B-CITY\n")
    code, _, err = run_cli("export", folder, "--target", "onnx-fp32", "--eval", eval_file, "--no-profile",
                           "--out", tmp_path / "run")
    assert code == 3 and "label 'B-CITY' is not a class of the model" in err
    assert not (tmp_path / "run" / "onnx").exists()
    code, _, err = run_cli("export", folder, "--target", "onnx-fp32", "--eval", eval_file, "--label-column", "tag",
                           "--no-profile", "--out", tmp_path / "run2")
    assert code == 2 and "--label-column does not apply to token-classification data" in err

"""Compression passes on tiny models: each keeps shapes and exportability, saved models
reload with identical outputs, the structure record and config rewrites are right, and
distillation lowers its loss."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgeport.calibration.data import builtin_texts
from edgeport.compress import lowrank, prune, vocab
from edgeport.compress.distill import distill, layer_map
from edgeport.compress.evaluate import encode, outputs_of, probe_from
from edgeport.compress.importance import taylor_grads
from edgeport.compress.pipeline import footprint
from edgeport.errors import UsageError
from edgeport.exporter.onnx_export import export_onnx, random_feeds
from edgeport.model.load import SPEC_FILE, model_from_path, save_model
from edgeport.model.structure import LowRankEmbedding, LowRankLinear, RemappedEmbedding
from edgeport.recipe import DistillStep
from edgeport.ui import UI

TEXTS = builtin_texts("calibration").texts
HELDOUT = builtin_texts("heldout").texts[:24]


def _fresh(tiny_models, task="text-classification", family="bert"):
    return model_from_path(tiny_models(family, task))


def _roundtrip(loaded, tmp_path):
    """Save, reload, compare outputs; export the reloaded model to ONNX and run it."""
    save_model(loaded, tmp_path / "saved")
    again = model_from_path(tmp_path / "saved")
    np.testing.assert_array_equal(outputs_of(again, HELDOUT), outputs_of(loaded, HELDOUT))
    parity = export_onnx(again, tmp_path / "m.onnx")
    assert parity["max_abs"] < 1e-4
    feeds = random_feeds(again.family.inputs, again.tokenizer.vocab_size, 3, 21, seed=1)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, feeds)[0]
    assert got.shape[0] == 3
    return again


@pytest.mark.parametrize("task", ["text-classification", "feature-extraction"])
def test_heads_pruned_reload_exactly_and_export(tiny_models, tmp_path, task):
    loaded = _fresh(tiny_models, task)
    width = outputs_of(loaded, HELDOUT[:2]).shape[1]
    details = prune.prune_heads(loaded, 1, None)  # 1 of 2 heads per block (magnitude)
    assert [len(h) for h in details["heads_kept"]] == [1, 1]
    query = loaded.model.base_model.encoder.layer[0].attention.self.query
    assert query.out_features == 16  # one head of size 16
    again = _roundtrip(loaded, tmp_path)
    spec = json.loads((tmp_path / "saved" / SPEC_FILE).read_text())
    prefix = "" if task == "feature-extraction" else "bert."  # AutoModel is the bare encoder
    assert spec["structure"][prefix + "encoder.layer.0.attention.self.query"]["out"] == 16
    assert outputs_of(again, HELDOUT[:2]).shape[1] == width


def test_ffn_and_blocks_rewrite_the_config_and_load_in_plain_transformers(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification

    loaded = _fresh(tiny_models)
    assert prune.prune_ffn(loaded, 0.5, None) == {"ffn_size": 32}
    assert prune.drop_blocks(loaded, [1]) == {"blocks_kept": [1]}
    save_model(loaded, tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["intermediate_size"] == 32 and config["num_hidden_layers"] == 1
    assert "structure" not in json.loads((tmp_path / "saved" / SPEC_FILE).read_text())
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    feeds = loaded.tokenizer(HELDOUT[:4], padding=True, return_tensors="pt")
    with torch.inference_mode():
        np.testing.assert_array_equal(plain(**feeds).logits.numpy(), loaded.model(**feeds).logits.numpy())
    _roundtrip(loaded, tmp_path / "rt")


def test_taylor_importance_and_its_limits(tiny_models):
    loaded = _fresh(tiny_models)
    grads = taylor_grads(loaded, TEXTS[:32], None)
    assert grads and all(float(g.abs().sum()) > 0 for g in grads.values())
    details = prune.prune_ffn(loaded, 0.25, grads)
    assert details["ffn_size"] == 16
    with pytest.raises(UsageError, match="classifier"):
        taylor_grads(_fresh(tiny_models, "feature-extraction"), TEXTS[:8], None)
    with pytest.raises(UsageError, match="cannot be pruned"):
        prune.prune_heads(_fresh(tiny_models, family="distilbert"), 1, None)
    with pytest.raises(UsageError, match="cannot keep"):
        prune.drop_blocks(_fresh(tiny_models), 5)


def test_evenly_spaced_blocks_keep_first_and_last():
    assert prune.evenly_spaced(6, 4) == [0, 2, 3, 5]
    assert prune.evenly_spaced(6, 2) == [0, 5]
    assert prune.evenly_spaced(12, 6) == [0, 2, 4, 7, 9, 11]
    assert layer_map(2, 6) == [(0, 0), (1, 3), (2, 6)]
    assert layer_map(4, 6, [0, 2, 3, 5]) == [(0, 0), (1, 1), (2, 3), (3, 4), (4, 6)]


def test_low_rank_full_energy_is_exact_and_rank_shrinks(tiny_models, tmp_path):
    loaded = _fresh(tiny_models, "feature-extraction")
    before = outputs_of(loaded, HELDOUT)
    lowrank.low_rank(loaded, ["ffn_up", "ffn_down"], energy=1.0)  # full rank saves nothing: unchanged
    assert not any(isinstance(m, LowRankLinear) for m in loaded.model.modules())
    params = footprint(loaded.model)["parameters"]
    details = lowrank.low_rank(loaded, ["embeddings", "ffn_up"], rank=8)
    assert set(details["ranks"].values()) == {8}
    assert isinstance(loaded.model.embeddings.word_embeddings, LowRankEmbedding)
    assert footprint(loaded.model)["parameters"] < params
    after = outputs_of(loaded, HELDOUT)
    assert after.shape == before.shape
    _roundtrip(loaded, tmp_path)


def test_svd_of_a_low_rank_matrix_is_exact():
    linear = torch.nn.Linear(40, 30)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(30, 3) @ torch.randn(3, 40))
    factor = lowrank.factorized_linear(linear, rank=None, energy=0.999999)
    assert factor.rank == 3
    x = torch.randn(5, 40)
    torch.testing.assert_close(factor(x), linear(x), atol=1e-4, rtol=1e-4)


def test_vocab_pruning_keeps_corpus_outputs_and_maps_the_rest(tiny_models, tmp_path):
    loaded = _fresh(tiny_models)
    corpus = TEXTS[:40]
    before = outputs_of(loaded, corpus)
    details = vocab.prune_vocab(loaded, corpus)
    assert details["vocab_kept"] < details["vocab_size"]
    module = loaded.model.bert.embeddings.word_embeddings
    assert isinstance(module, RemappedEmbedding)
    np.testing.assert_allclose(outputs_of(loaded, corpus), before, atol=1e-5)  # same rows for used tokens
    kept = set(vocab.used_ids(loaded, corpus))
    dropped = next(i for i in range(details["vocab_size"]) if i not in kept)
    assert 0 <= int(module.remap[dropped]) < details["vocab_kept"]
    lowrank.low_rank(loaded, ["embeddings"], rank=4)  # factorizes the pruned table
    assert isinstance(module.inner, LowRankEmbedding)
    _roundtrip(loaded, tmp_path)


def test_magnitude_pruning_zeros_survive_saving(tiny_models, tmp_path):
    loaded = _fresh(tiny_models)
    dense = footprint(loaded.model)
    details = prune.magnitude_prune(loaded, 0.6)
    assert 0.59 <= details["sparsity"] <= 0.61
    sparse = footprint(loaded.model)
    assert sparse["zeros"] > dense["zeros"] and sparse["deflated_mb"] < dense["deflated_mb"]
    again = _roundtrip(loaded, tmp_path)
    layer = again.model.bert.encoder.layer[0].intermediate.dense.weight
    assert float((layer == 0).float().mean()) > 0.3
    with pytest.raises(UsageError):
        prune.magnitude_prune(loaded, 1.5)


@pytest.mark.parametrize("task", ["text-classification", "feature-extraction"])
def test_distillation_lowers_the_loss(tiny_models, task):
    teacher = _fresh(tiny_models, task)
    student = _fresh(tiny_models, task)
    prune.drop_blocks(student, 1)
    prune.prune_ffn(student, 0.5, None)
    labels = [str(i % 2) for i in range(len(TEXTS))] if task == "text-classification" else None
    report = distill(student, teacher, TEXTS, labels, DistillStep(op="distill", epochs=3, lr=5e-3, batch_size=16, patience=5),
                     UI(quiet=True))
    first, last = report["history"][1], report["history"][-1]
    assert last["last_loss"] < first["first_loss"]
    def metric(entry):
        result = entry["validation"]
        return result.get("accuracy", result.get("agreement", result.get("mean_cosine")))
    chosen = next(h for h in report["history"] if h["epoch"] == report["best_epoch"])
    assert metric(chosen) == max(metric(h) for h in report["history"])  # the best epoch is the one kept
    assert not student.model.training


def test_distillation_keeps_pruned_weights_zero(tiny_models):
    teacher, student = _fresh(tiny_models), _fresh(tiny_models)
    prune.magnitude_prune(student, 0.5)
    weight = student.model.bert.encoder.layer[0].intermediate.dense.weight
    zeros = weight.detach() == 0
    distill(student, teacher, TEXTS[:64], None, DistillStep(op="distill", epochs=1, lr=1e-2, batch_size=16),
            UI(quiet=True))
    assert bool((weight.detach()[zeros] == 0).all())
    assert float((weight.detach() == 0).float().mean()) >= float(zeros.float().mean()) - 1e-6


def test_training_labels_map_like_eval_labels(tiny_models):
    from edgeport.compress.evaluate import label_ids
    from edgeport.errors import DataFileError

    config = _fresh(tiny_models).model.config
    assert label_ids(["positive", "0", "NEGATIVE", "1"], config).tolist() == [1, 0, 0, 1]
    with pytest.raises(DataFileError, match="label 'neutral' is not a class of the model"):
        label_ids(["neutral"], config, "train.tsv")


def test_probe_reports_agreement_and_accuracy(tiny_models):
    loaded = _fresh(tiny_models)
    probe = probe_from(loaded, HELDOUT, [str(i % 2) for i in range(len(HELDOUT))])
    result = probe.measure(loaded)
    assert result["agreement"] == 1.0 and result["mean_cosine"] > 0.99999
    assert 0 <= result["accuracy"] <= 100


RECIPE = """
compress:
  importance_samples: 32
  steps:
    - {op: prune_vocab}
    - {op: drop_blocks, keep: 1}
    - {op: prune_heads, keep: 1, importance: magnitude}
    - {op: low_rank, roles: [embeddings], rank: 8}
    - {op: distill, epochs: 1, batch_size: 32}
"""


def test_compress_command_json_and_cache(tiny_models, tmp_path, run_cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    model = tiny_models("bert", "feature-extraction")
    code, out, err = run_cli("--json", "compress", model, "--recipe", recipe, "--out", tmp_path / "run")
    assert code == 0, err
    doc = json.loads(out)
    assert [p["op"] for p in doc["passes"]] == ["prune_vocab", "drop_blocks", "prune_heads", "low_rank", "distill"]
    assert doc["passes"][-1]["parameters"] < doc["before"]["parameters"]
    assert doc["passes"][-1]["details"]["layer_map"] == [[0, 0], [1, 2]]  # the kept block is the last
    assert doc["reload_max_abs"] == 0.0 and doc["cached"] is False
    assert (tmp_path / "run" / "compressed" / "compression.json").is_file()
    code, out, _ = run_cli("--json", "compress", model, "--recipe", recipe, "--out", tmp_path / "run")
    assert code == 0 and json.loads(out)["cached"] is True


def test_run_recipe_compresses_then_exports(tiny_models, tmp_path, run_cli):
    model = tiny_models("bert", "text-classification")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {model}\ntargets: [onnx-int8]\nprofile: {{runs: 3, warmup: 1}}\n"
                      "budget: {min_fidelity: 0.9}\n" + RECIPE)
    code, out, err = run_cli("--json", "run", recipe, "--out", tmp_path / "run")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["compression"]["passes"][1]["details"] == {"blocks_kept": [1]}
    assert doc["model"]["parameters"] == doc["compression"]["passes"][-1]["parameters"]
    assert doc["targets"]["onnx-int8"]["fidelity"]["samples"] > 0
    assert doc["baseline"]["latency_ms"]["p50"] > 0  # the compressed PyTorch model, loaded by the agent
    assert doc["targets"]["onnx-int8"]["latency_ms"]["p50"] > 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert 'id="compression"' in page and "drop_blocks" in page
    assert "| 2 | drop_blocks |" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("body, needle", [
    ("compress: {steps: [{op: prune_heads, keep: 1}]}\n", "classifier"),
    ("compress: {steps: [{op: shrink}]}\n", "invalid option compress.steps.0"),
    ("compress: {steps: []}\n", "invalid option compress.steps"),
    ("compress: {steps: [{op: low_rank}]}\n", "exactly one of rank or energy"),
])
def test_compress_user_errors(tiny_models, tmp_path, run_cli, body, needle):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body)
    code, out, err = run_cli("compress", tiny_models("bert", "feature-extraction"), "--recipe", recipe,
                             "--out", tmp_path / "run")
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "run" / "compressed").exists()


def test_distillation_gives_up_on_a_hopeless_student(tiny_models):
    """give_up_drop: after the first epoch, a student too far below its teacher stops the run
    (exit 5) before anything is built; a tune counts the trial as pruned."""
    from edgeport.errors import DistillationAbandonedError

    teacher, student = _fresh(tiny_models, "text-classification"), _fresh(tiny_models, "text-classification")
    with torch.no_grad():  # a student that answers the opposite class: 100 points of agreement below
        head = student.model.classifier
        head.weight.mul_(-1)
        head.bias.mul_(-1)
    settings = DistillStep(op="distill", epochs=2, lr=1e-9, batch_size=16, give_up_drop=5.0)
    with pytest.raises(DistillationAbandonedError, match="points below its teacher") as caught:
        distill(student, teacher, TEXTS, None, settings, UI(quiet=True))
    assert caught.value.exit_code == 5
    report = distill(_fresh(tiny_models, "text-classification"), teacher, TEXTS, None,
                     settings.model_copy(update={"give_up_drop": 100.0}), UI(quiet=True))
    assert len(report["history"]) >= 2  # within the limit: trained on


def test_augmentation_neighbours_come_from_the_teacher_table(tiny_models):
    from edgeport.compress import augment

    teacher = _fresh(tiny_models)
    words = sorted(augment._word_ids(teacher, TEXTS))
    assert len(words) > 20 and all(w.isalpha() for w in words)
    a, b = words[3], words[11]
    table = teacher.model.bert.embeddings.word_embeddings.weight
    vocab = teacher.tokenizer.get_vocab()
    with torch.no_grad():  # two words with one direction: each is the other's nearest
        table[vocab[b]] = table[vocab[a]] * 3.0
    near = augment.neighbours(teacher, TEXTS, 4)
    assert near[a][0] == b and near[b][0] == a
    assert all(len(v) == 4 and w not in v and set(v) <= set(words) for w, v in near.items())


def test_word_replaced_copies():
    from types import SimpleNamespace

    from edgeport.compress import augment

    vocab = {"good": 1, "\u2581film": 2, "\u0120cast": 3, "##ing": 4}  # WordPiece, SentencePiece, byte-BPE words
    loaded = SimpleNamespace(tokenizer=SimpleNamespace(get_vocab=lambda: vocab))
    assert augment._word_ids(loaded, ["Good film , a cast", "ing x"]) == {"good": 1, "film": 2, "cast": 3}

    table = {"good": ["great"], "film": ["movie"]}
    texts = ["a good film with a good cast", "good film", "nothing here to change at all"]
    every = augment.word_replaced(texts, table, copies=2, rate=1.0, min_words=3, seed=0)
    assert every == ["a great movie with a great cast"] * 2  # short text skipped; unchanged copies left out
    some = augment.word_replaced(texts * 50, table, copies=1, rate=0.5, min_words=3, seed=1)
    assert some == augment.word_replaced(texts * 50, table, copies=1, rate=0.5, min_words=3, seed=1)
    assert 0 < len(some) < 50 and all(text != texts[0] for text in some)


def test_distillation_trains_augmented_copies_on_the_teacher_alone(tiny_models):
    from edgeport.compress.distill import IGNORED, _Objective

    teacher, student = _fresh(tiny_models), _fresh(tiny_models)
    prune.prune_ffn(student, 0.5, None)
    labels = [str(i % 2) for i in range(len(TEXTS))]
    settings = DistillStep(op="distill", epochs=1, lr=5e-3, batch_size=16, augment=2, augment_rate=0.5,
                           augment_min_words=8, validation_fraction=0.1)
    report = distill(student, teacher, TEXTS, labels, settings, UI(quiet=True))
    own = len(TEXTS) - max(1, int(len(TEXTS) * 0.1))
    long = sum(len(t.split()) >= 8 for t in TEXTS)
    assert long < report["augmented"] <= 2 * long  # two copies of each long training text less those left unchanged
    assert report["train_samples"] == own + report["augmented"]
    objective = _Objective(student, teacher, settings, None)
    feeds = encode(student, TEXTS[:4])
    unlabelled = objective(feeds, torch.full((4,), IGNORED))  # a batch of copies only: the teacher's term
    assert torch.isfinite(unlabelled)
    kd_only = _Objective(student, teacher, settings.model_copy(update={"alpha": 0.0}), None)(feeds, None)
    assert float(unlabelled) == pytest.approx(float(kd_only), rel=1e-5)

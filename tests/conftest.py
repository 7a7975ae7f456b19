"""Shared fixtures: tiny random models of each family, built from a config (no download),
with a WordPiece tokenizer trained here on the built-in texts; and a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeport.calibration.data import builtin_texts

FAMILIES = ("bert", "distilbert", "roberta")

# A test that needs a real component (sshd, adb, Chromium, a runtime) skips with a reason
# naming it as "(real component)". Under `make test` (EDGEPORT_NO_COMPONENT_SKIPS=1, as in CI)
# such a skip fails the run: a missing install step must not pass as green.
REAL = "(real component)"


def real_component_missing(what: str) -> str:
    return f"{what} {REAL}"


def pytest_sessionfinish(session, exitstatus):
    import os

    if not os.environ.get("EDGEPORT_NO_COMPONENT_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    missing = sorted({str(r.longrepr[2]) for r in skipped if REAL in str(r.longrepr)})
    if missing:
        reporter.write_line(f"error: {len(missing)} kind(s) of test skipped for a missing real component: "
                            + "; ".join(missing), red=True)
        session.exitstatus = 1


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(builtin_texts("calibration").texts, trainers.WordPieceTrainer(vocab_size=400,
                                                                                          special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    fast.save_pretrained(folder)
    return fast


NEW_FAMILIES = ("modernbert", "deberta-v2", "mpnet", "albert", "mobilebert")


def tiny_config(family: str, vocab: int):
    """A tiny config (hidden 32, 2 layers, 2 heads) of a family; special-token ids inside the
    tiny vocabulary."""
    import transformers as tf

    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=160, pad_token_id=0)
    if family == "bert":
        return tf.BertConfig(**common)
    if family == "distilbert":
        return tf.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                   max_position_embeddings=160, pad_token_id=0)
    if family == "roberta":
        return tf.RobertaConfig(**common)
    if family == "modernbert":  # block 1 attends globally, block 0 in a 16-token sliding window
        return tf.ModernBertConfig(**common, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3,
                                   global_attn_every_n_layers=2, local_attention=16)
    if family == "deberta-v2":  # DeBERTa-v3's settings: relative attention, no token types
        return tf.DebertaV2Config(**common, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=32,
                                  max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True,
                                  type_vocab_size=0, position_biased_input=False)
    if family == "mpnet":
        return tf.MPNetConfig(**common, relative_attention_num_buckets=32)
    if family == "albert":
        return tf.AlbertConfig(**common, embedding_size=16)
    if family == "mobilebert":
        return tf.MobileBertConfig(**common, embedding_size=16, true_hidden_size=16, intra_bottleneck_size=16,
                                   num_feedforward_networks=2)
    raise ValueError(family)


TASK_AUTO = {"feature-extraction": "AutoModel", "text-classification": "AutoModelForSequenceClassification",
             "text-pair-classification": "AutoModelForSequenceClassification",
             "token-classification": "AutoModelForTokenClassification",
             "question-answering": "AutoModelForQuestionAnswering"}
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def make_tiny_model(folder: Path, family: str = "bert", task: str = "feature-extraction", seed: int = 0) -> Path:
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(folder)
    config = tiny_config(family, len(tokenizer))
    torch.manual_seed(seed)
    if task in ("text-classification", "text-pair-classification"):
        config.num_labels = 2
        config.id2label = {0: "negative", 1: "positive"}
        config.label2id = {"negative": 0, "positive": 1}
    elif task == "token-classification":
        config.num_labels = len(NER_LABELS)
        config.id2label = dict(enumerate(NER_LABELS))
        config.label2id = {label: i for i, label in enumerate(NER_LABELS)}
    model = getattr(transformers, TASK_AUTO[task]).from_config(config)
    model.eval().save_pretrained(folder, safe_serialization=True)
    if task == "text-pair-classification":  # what sentence-transformers' CrossEncoder writes
        config_file = folder / "config.json"
        data = json.loads(config_file.read_text())
        data["sentence_transformers"] = {"activation_fn": "torch.nn.modules.linear.Identity"}
        config_file.write_text(json.dumps(data, indent=2))
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """tiny_models(family, task) -> a model folder, built once per session."""
    cache: dict = {}

    def get(family: str = "bert", task: str = "feature-extraction") -> Path:
        if (family, task) not in cache:
            cache[family, task] = make_tiny_model(tmp_path_factory.mktemp(f"{family}-{task}"), family, task)
        return cache[family, task]

    return get


@pytest.fixture()
def run_cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from edgeport.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture()
def sst_like(tmp_path) -> Path:
    """A small labelled TSV in SST-2's format (sentence<TAB>label), written here."""
    texts = builtin_texts("heldout").texts[:24]
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 with throwaway host and user keys."""
    from tests.sshd_helpers import SSHD, start_sshd

    if not Path(SSHD).exists():
        pytest.skip(real_component_missing("sshd is not installed (make test installs openssh-server as root)"))
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()

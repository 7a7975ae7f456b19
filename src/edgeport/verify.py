"""Fidelity and task accuracy of an artifact against the fp32 reference.

Fidelity is measured on held-out texts that are never the calibration texts: for every
text, the cosine between the artifact's output and the reference output (embeddings or
logits), its minimum, the max abs error, and for classifiers top-1 agreement (a one-logit
scorer such as a cross-encoder: agreement on the sign of its score). Pair classifiers also
get the correlation of their scores with fp32's (Pearson and Spearman; the score is the
single logit, or the log-odds of the last class). With labelled eval data, a classifier's
accuracy is measured for fp32 and the artifact, and the drop is given in points.

Per-token tasks (outputs per token; each example's outputs cut to its real tokens):

- token classification: ``token_agreement`` = the share of non-special tokens whose argmax
  label agrees with fp32's; accuracy = entity-level F1 (``entity_f1``: BIO/IOB2 chunks matched
  exactly, as seqeval does by default) at word level (a word's label is its first sub-token's);
- question answering: ``span_agreement`` = the share of examples whose best answer span
  (``best_span``: start <= end, at most ``MAX_ANSWER_TOKENS`` tokens, inside the context)
  agrees with fp32's; accuracy = SQuAD token F1, with exact match beside it (``squad_scores``).

Cosines there are taken over each example's real tokens (all logits, flattened).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
import re
import string
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

VERIFY_BATCH = 16
MAX_ANSWER_TOKENS = 30  # the longest answer span a QA reader's prediction may take


class Runner(ABC):
    """Runs one artifact in-process. ``infer`` checks its feeds, then calls ``_infer_impl``."""

    def __init__(self, input_names: Sequence[str], fixed_shape: tuple[int, int] | None = None):
        self.input_names = tuple(input_names)
        self.fixed_shape = fixed_shape

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"missing inputs: {', '.join(missing)}")
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=np.int64) for n in self.input_names}
        if self.fixed_shape and feeds[self.input_names[0]].shape != self.fixed_shape:
            raise ValueError(f"this artifact takes shape {self.fixed_shape} only")
        outputs = self._infer_impl(feeds)
        if isinstance(outputs, (list, tuple)):  # several outputs (question answering): stacked, in order
            return np.stack([np.asarray(o) for o in outputs], axis=-1) if len(outputs) > 1 else np.asarray(outputs[0])
        return np.asarray(outputs)

    @abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """The output, or every output in the task's order."""

    def info(self) -> dict:
        """Runtime facts worth recording (e.g. the inference precision actually used)."""
        return {}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fidelity(_Strict):
    """Agreement of an artifact with fp32 on a set of texts (every output compared)."""

    mean_cosine: float
    min_cosine: float
    max_abs_error: float
    top1_agreement: float | None = None
    score_pearson: float | None = None  # pair scorers: correlation of the scores with fp32's
    score_spearman: float | None = None
    token_agreement: float | None = None  # token classification: argmax label per non-special token
    span_agreement: float | None = None  # question answering: the best answer span per example
    samples: int
    source: str | None = None  # which texts: the report set's name

    @property
    def agreement(self) -> tuple[str, float] | None:
        """The task's agreement with fp32 and its name (None for embeddings)."""
        for name in ("top1_agreement", "token_agreement", "span_agreement"):
            if getattr(self, name) is not None:
                return name.replace("_", " ").replace("top1", "top-1"), getattr(self, name)
        return None


class Score(_Strict):
    """One more measure of fp32 and the artifact on the same labelled data."""

    fp32: float
    artifact: float


class Accuracy(_Strict):
    """Task accuracy of fp32 and the artifact on labelled data; the drop in points.
    ``metric`` names what fp32 and artifact measure: ``accuracy`` (classifiers), ``entity_f1``
    (token classification), ``squad_f1`` (question answering, with ``exact_match`` beside it);
    ``label_agreement`` is the task's agreement with fp32 on this data (labels, word labels,
    answer spans)."""

    fp32: float
    artifact: float
    drop_points: float
    label_agreement: float
    samples: int
    source: str | None = None
    metric: str = "accuracy"
    exact_match: Score | None = None


class Check(_Strict):
    """One verification of an artifact: fidelity, accuracy (with labelled data) and the
    runtime facts its runner reports (e.g. the precision OpenVINO actually computed in)."""

    fidelity: Fidelity
    accuracy: Accuracy | None = None
    runtime: dict = Field(default_factory=dict)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each example's output (all other axes flattened)."""
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denom, 1e-12)


def run_batches(runner, batches: Iterable[dict[str, np.ndarray]]) -> np.ndarray:
    return np.concatenate([runner.infer(feeds) for feeds in batches], axis=0)


def predicted_labels(logits: np.ndarray) -> np.ndarray:
    """Class indices: the argmax, or for a single logit (a scorer) whether it is positive."""
    logits = logits.reshape(logits.shape[0], -1)
    return (logits[:, 0] > 0).astype(np.int64) if logits.shape[1] == 1 else logits.argmax(-1)


def scores(logits: np.ndarray) -> np.ndarray:
    """One score per example: the single logit, or the log-odds of the last class."""
    logits = logits.reshape(logits.shape[0], -1).astype(np.float64)
    if logits.shape[1] == 1:
        return logits[:, 0]
    others = logits[:, :-1]
    top = others.max(axis=1)
    return logits[:, -1] - (top + np.log(np.exp(others - top[:, None]).sum(axis=1)))


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    return ranks


def fidelity(outputs: np.ndarray, reference: np.ndarray, classifier: bool, source: str | None = None,
             pairs: bool = False) -> Fidelity:
    cos = cosine_rows(outputs, reference)
    correlation = {}
    if pairs:
        got, ref = scores(outputs), scores(reference)
        correlation = {"score_pearson": _pearson(got, ref), "score_spearman": _pearson(_ranks(got), _ranks(ref))}
    return Fidelity(
        mean_cosine=float(np.mean(cos)), min_cosine=float(np.min(cos)),
        max_abs_error=float(np.max(np.abs(outputs - reference))),
        top1_agreement=float(np.mean(predicted_labels(outputs) == predicted_labels(reference))) if classifier else None,
        samples=int(outputs.shape[0]), source=source, **correlation,
    )


@dataclass(frozen=True)
class LabelMap:
    """Maps eval-file labels (`1`, `positive`, `LABEL_1`) to class indices of the model."""

    id2label: dict[int, str]

    def index(self, label: str) -> int:
        if _is_index(label):
            index = int(label)
            if index < 0 or (self.id2label and index not in self.id2label):
                raise ValueError(label)
            return index
        lowered = {v.lower(): k for k, v in self.id2label.items()}
        if label.lower() in lowered:
            return lowered[label.lower()]
        raise ValueError(label)


def _is_index(label: str) -> bool:
    digits = label[1:] if label.startswith("-") else label
    return digits.isascii() and digits.isdigit()


def label_indices(labels: Sequence[str], id2label: dict, source: str) -> list[int]:
    """Class indices of a data file's labels; a label the model does not have is a data error."""
    from edgeport.errors import DataFileError

    mapping = LabelMap({int(k): v for k, v in (id2label or {}).items()})
    try:
        return [mapping.index(str(label)) for label in labels]
    except ValueError as exc:
        raise DataFileError(
            f"{source}: label '{exc}' is not a class of the model",
            hint=f"the model's labels: {', '.join(map(str, (id2label or {}).values()))} (or their indices)",
        ) from exc


def accuracy(outputs: np.ndarray, reference: np.ndarray, labels: Sequence[int], source: str | None = None) -> Accuracy:
    gold = np.asarray(labels)
    fp32 = float(np.mean(predicted_labels(reference) == gold))
    got = float(np.mean(predicted_labels(outputs) == gold))
    return Accuracy(fp32=fp32, artifact=got, drop_points=round((fp32 - got) * 100, 4),
                    label_agreement=float(np.mean(predicted_labels(outputs) == predicted_labels(reference))),
                    samples=int(gold.shape[0]), source=source)


# --- per-token tasks: outputs are lists of per-example arrays cut to their real tokens ---

def _token_rows(outputs: list[np.ndarray], reference: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-example cosines and the largest absolute difference over real tokens."""
    cos = np.array([cosine_rows(a.reshape(1, -1), b.reshape(1, -1))[0] for a, b in zip(outputs, reference)])
    worst = max(float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0 for a, b in zip(outputs, reference))
    return cos, worst


def token_fidelity(outputs: list[np.ndarray], reference: list[np.ndarray], scored: list[np.ndarray],
                   source: str | None = None) -> Fidelity:
    """Token classification: label agreement on the measured (non-special) tokens, and the
    cosine of each example's logits."""
    cos, worst = _token_rows(outputs, reference)
    agree = np.concatenate([(a.argmax(-1) == b.argmax(-1))[mask] for a, b, mask in zip(outputs, reference, scored)])
    return Fidelity(mean_cosine=float(np.mean(cos)), min_cosine=float(np.min(cos)), max_abs_error=worst,
                    token_agreement=float(np.mean(agree)) if agree.size else None, samples=len(outputs),
                    source=source)


def best_span(logits: np.ndarray, allowed: np.ndarray, max_tokens: int = MAX_ANSWER_TOKENS
              ) -> tuple[int, int] | None:
    """The answer span (start, end token, inclusive) with the highest start + end logit,
    start <= end < start + max_tokens, both on allowed (context) tokens; None when the
    context has no token left (cut off by truncation)."""
    start, end = logits[:, 0].astype(np.float64), logits[:, 1].astype(np.float64)
    n = len(start)
    score = start[:, None] + end[None, :]
    s, e = np.indices((n, n))
    valid = (s <= e) & (e < s + max_tokens) & allowed[:, None] & allowed[None, :]
    if not valid.any():
        return None
    score = np.where(valid, score, -np.inf)
    index = int(np.argmax(score))
    return index // n, index % n


def span_fidelity(outputs: list[np.ndarray], reference: list[np.ndarray], scored: list[np.ndarray],
                  source: str | None = None) -> Fidelity:
    """Question answering: agreement of the best answer span, and the cosine of each
    example's start and end logits."""
    cos, worst = _token_rows(outputs, reference)
    agree = [best_span(a, mask) == best_span(b, mask) for a, b, mask in zip(outputs, reference, scored)]
    return Fidelity(mean_cosine=float(np.mean(cos)), min_cosine=float(np.min(cos)), max_abs_error=worst,
                    span_agreement=float(np.mean(agree)), samples=len(outputs), source=source)


def _split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) of a BIO/IOB2/IOBES tag; a tag without a prefix is inside an entity of
    its own name (IO scheme)."""
    if tag in ("O", ""):
        return "O", ""
    if len(tag) > 2 and tag[0] in "BIES" and tag[1] in "-_":
        return tag[0], tag[2:]
    return "I", tag


def entity_chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The entities of one sentence's tags as (type, first word, last word), the way
    seqeval's default (non-strict) mode finds chunks: an entity starts at B (or S), at an I
    after O or after another type, and ends before O, B, S or a change of type."""
    chunks, start, kind = set(), None, ""
    previous = "O"
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, type_ = _split_tag(tag)
        ends = start is not None and (previous in "ES" or prefix in "BSO" or type_ != kind)
        if ends:
            chunks.add((kind, start, i - 1))
            start = None
        if prefix != "O" and (start is None or prefix in "BS"):
            start, kind = i, type_
        previous = prefix
    return chunks


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged entity-level F1 over sentences (an entity counts when its type and its
    first and last word all match); 1.0 when neither side has any entity."""
    true_positive = found = expected = 0
    for g, p in zip(gold, predicted):
        gold_chunks, predicted_chunks = entity_chunks(g), entity_chunks(p)
        true_positive += len(gold_chunks & predicted_chunks)
        found += len(predicted_chunks)
        expected += len(gold_chunks)
    if found == 0 and expected == 0:
        return 1.0
    if true_positive == 0:
        return 0.0
    precision, recall = true_positive / found, true_positive / expected
    return 2 * precision * recall / (precision + recall)


def word_labels(logits: np.ndarray, word_ids: Sequence[int | None], words: int) -> list[int | None]:
    """Each word's predicted class: its first sub-token's argmax; None for a word cut off by
    truncation."""
    labels: list[int | None] = [None] * words
    for position, word in enumerate(word_ids):
        if word is not None and word < words and labels[word] is None:
            labels[word] = int(np.argmax(logits[position]))
    return labels


def tagging_accuracy(outputs: list[np.ndarray], reference: list[np.ndarray], word_ids: list[list[int | None]],
                     gold: list[list[int]], id2label: dict, source: str | None = None) -> Accuracy:
    """Entity-level F1 of fp32 and the artifact on tagged sentences (gold: class indices per
    word); label agreement is per word. A word cut off by truncation counts as tagged O."""
    names = {int(k): str(v) for k, v in id2label.items()}

    def tags(rows: list[np.ndarray]) -> list[list[int | None]]:
        return [word_labels(r, ids, len(g)) for r, ids, g in zip(rows, word_ids, gold)]

    got, ref = tags(outputs), tags(reference)

    def f1(predicted: list[list[int | None]]) -> float:
        return entity_f1([[names[i] for i in g] for g in gold],
                         [["O" if i is None else names[i] for i in p] for p in predicted])

    agree = [a == b for sa, sb in zip(got, ref) for a, b in zip(sa, sb)]
    fp32, artifact = f1(ref), f1(got)
    return Accuracy(fp32=fp32, artifact=artifact, drop_points=round((fp32 - artifact) * 100, 4),
                    label_agreement=float(np.mean(agree)) if agree else 1.0, samples=len(gold), source=source,
                    metric="entity_f1")


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    predicted, expected = squad_normalize(prediction).split(), squad_normalize(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """(exact match, token F1) of one prediction: the best over the gold answers."""
    exact = max(float(squad_normalize(prediction) == squad_normalize(a)) for a in answers)
    return exact, max(_token_f1(prediction, a) for a in answers)


def answer_text(logits: np.ndarray, allowed: np.ndarray, offsets: np.ndarray, context: str) -> str:
    """The answer a QA reader gives: its best span's characters in the context ('' when the
    context was cut off entirely)."""
    span = best_span(logits, allowed)
    if span is None:
        return ""
    return context[int(offsets[span[0]][0]):int(offsets[span[1]][1])]


def qa_accuracy(outputs: list[np.ndarray], reference: list[np.ndarray], scored: list[np.ndarray],
                offsets: list[np.ndarray], contexts: list[str], answers: list[Sequence[str]],
                source: str | None = None) -> Accuracy:
    """SQuAD F1 (and exact match) of fp32 and the artifact; label agreement = span agreement."""
    def measure(rows: list[np.ndarray]) -> tuple[float, float]:
        pairs = [squad_scores(answer_text(r, m, o, c), a) for r, m, o, c, a in
                 zip(rows, scored, offsets, contexts, answers)]
        return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))

    (em_ref, f1_ref), (em_got, f1_got) = measure(reference), measure(outputs)
    agree = [best_span(a, m) == best_span(b, m) for a, b, m in zip(outputs, reference, scored)]
    return Accuracy(fp32=f1_ref, artifact=f1_got, drop_points=round((f1_ref - f1_got) * 100, 4),
                    label_agreement=float(np.mean(agree)), samples=len(answers), source=source,
                    metric="squad_f1", exact_match=Score(fp32=em_ref, artifact=em_got))

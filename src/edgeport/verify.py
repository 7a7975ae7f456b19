"""Fidelity and task accuracy of an artifact against the fp32 reference.

Fidelity is measured on held-out texts that are never the calibration texts: for every
text, the cosine between the artifact's output and the reference output (embeddings or
logits), its minimum, the max abs error, and for classifiers top-1 agreement (a one-logit
scorer such as a cross-encoder: agreement on the sign of its score). Pair classifiers also
get the correlation of their scores with fp32's (Pearson and Spearman; the score is the
single logit, or the log-odds of the last class). With labelled eval data, a classifier's
accuracy is measured for fp32 and the artifact, and the drop is given in points.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

VERIFY_BATCH = 16


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
    samples: int
    source: str | None = None  # which texts: the report set's name


class Accuracy(_Strict):
    """Task accuracy of fp32 and the artifact on labelled data; the drop in points."""

    fp32: float
    artifact: float
    drop_points: float
    label_agreement: float
    samples: int
    source: str | None = None


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

"""How close a compressed model stays: its task outputs against the original's on a fixed
set of texts (mean cosine for embeddings, label agreement for classifiers), and accuracy
where the texts carry labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeport.calibration.feeds import feeds_from_texts
from edgeport.model.load import LoadedModel
from edgeport.model.wrappers import task_module
from edgeport.verify import label_indices


def label_ids(labels: list[str], config, source: str = "the training data") -> np.ndarray:
    """Labels as the model's class indices (names or integers, as in eval files)."""
    return np.asarray(label_indices(labels, getattr(config, "id2label", None), source))


def encode(loaded: LoadedModel, texts: list[str], max_length: int = 128) -> dict:
    """A batch of texts as the model's torch inputs (padded to the longest)."""
    import torch

    feeds = feeds_from_texts(loaded.tokenizer, texts, loaded.family.inputs, max_length)
    return {name: torch.from_numpy(value) for name, value in feeds.items()}


def outputs_of(loaded: LoadedModel, texts: list[str], batch: int = 32) -> np.ndarray:
    """Task outputs (embeddings or logits) of ``texts``, in eval mode, batched by length."""
    import torch

    module = task_module(loaded)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            values = module(**encode(loaded, [texts[i] for i in idx])).float().numpy()
            for row, i in enumerate(idx):
                out[i] = values[row]
    return np.stack(out)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


@dataclass
class Probe:
    """Texts, their labels (if any) and the original model's outputs on them."""

    texts: list[str]
    labels: np.ndarray | None
    reference: np.ndarray
    classifier: bool

    def measure(self, loaded: LoadedModel) -> dict:
        outputs = outputs_of(loaded, self.texts)
        result = {"mean_cosine": round(float(_cosine(outputs, self.reference).mean()), 6)}
        if self.classifier:
            predicted = outputs.argmax(1)
            result["agreement"] = round(float((predicted == self.reference.argmax(1)).mean()), 6)
            if self.labels is not None:
                result["accuracy"] = round(float((predicted == self.labels).mean()) * 100, 2)
        return result


def probe_from(loaded: LoadedModel, texts: list[str], labels: list[str] | None) -> Probe:
    classifier = loaded.task == "text-classification"
    ids = label_ids(labels, loaded.model.config) if labels is not None and classifier else None
    return Probe(list(texts), ids, outputs_of(loaded, texts), classifier)

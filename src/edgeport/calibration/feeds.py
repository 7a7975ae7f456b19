"""Tokenized feeds (name -> int64 array) in the order and names a model family expects."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

DEFAULT_MAX_LENGTH = 128


def feeds_from_texts(
    tokenizer, texts: Sequence[str], input_names: Sequence[str],
    max_length: int = DEFAULT_MAX_LENGTH, fixed_length: int | None = None,
) -> dict[str, np.ndarray]:
    """Tokenize a batch. ``fixed_length`` pads every row to it (static-shape targets);
    otherwise rows are padded to the longest in the batch (natural lengths)."""
    encoded = tokenizer(
        list(texts),
        padding="max_length" if fixed_length else True,
        truncation=True,
        max_length=fixed_length or max_length,
        return_tensors="np",
    )
    feeds = {}
    for name in input_names:
        if name in encoded:
            feeds[name] = encoded[name].astype(np.int64)
        elif name == "token_type_ids":
            feeds[name] = np.zeros_like(encoded["input_ids"], dtype=np.int64)
        else:
            raise KeyError(f"the tokenizer gives no '{name}'")
    return feeds


def batched_feeds(
    tokenizer, texts: Sequence[str], input_names: Sequence[str], batch_size: int = 16,
    max_length: int = DEFAULT_MAX_LENGTH, fixed_length: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(texts), batch_size):
        yield feeds_from_texts(tokenizer, texts[start:start + batch_size], input_names, max_length, fixed_length)


@dataclass
class CalibrationSet:
    """Texts for calibration, tokenized on demand the way the model expects."""

    source: str
    texts: list[str]
    tokenizer: Any
    input_names: tuple[str, ...]

    def feeds(self, batch_size: int = 1, fixed_length: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        return batched_feeds(self.tokenizer, self.texts, self.input_names, batch_size, fixed_length=fixed_length)

    def longest(self, cap: int = 128) -> int:
        """Token length of the longest text (capped): one fixed shape for calibrators that
        stack activations across samples."""
        lengths = [len(ids) for ids in self.tokenizer(self.texts, truncation=True, max_length=cap)["input_ids"]]
        return max(lengths)

    def summary(self) -> dict:
        digest = hashlib.sha256("\n".join(self.texts).encode()).hexdigest()
        return {"source": self.source, "count": len(self.texts), "sha256": digest}

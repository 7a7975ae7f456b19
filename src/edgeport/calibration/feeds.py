"""Tokenized feeds (name -> int64 array) in the order and names a model family expects."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

DEFAULT_MAX_LENGTH = 128


def feeds_from_texts(
    tokenizer, texts: Sequence[str], input_names: Sequence[str],
    max_length: int = DEFAULT_MAX_LENGTH, fixed_length: int | None = None, pairs: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Tokenize a batch (of pairs, when ``pairs`` gives each text's second text: the
    tokenizer's pair template, ``token_type_ids`` 1 on the second). ``fixed_length`` pads
    every row to it (static-shape targets); otherwise rows are padded to the longest in the
    batch (natural lengths). A pair too long is cut from its longer text."""
    encoded = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        padding="max_length" if fixed_length else True,
        truncation="longest_first" if pairs is not None else True,
        max_length=fixed_length or max_length,
        return_tensors="np",
        # asked for explicitly: a tokenizer whose model_input_names lack them would otherwise
        # leave them out, and pairs would be fed as one text (all zeros)
        return_token_type_ids="token_type_ids" in input_names or None,
    )
    return feeds_from_encoding(encoded, input_names)


def feeds_from_encoding(encoded, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The graph's int64 feeds from a tokenizer's numpy output (``token_type_ids`` zeros when
    the tokenizer gives none)."""
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
    max_length: int = DEFAULT_MAX_LENGTH, fixed_length: int | None = None, pairs: Sequence[str] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(texts), batch_size):
        yield feeds_from_texts(tokenizer, texts[start:start + batch_size], input_names, max_length, fixed_length,
                               pairs[start:start + batch_size] if pairs is not None else None)


@dataclass
class CalibrationSet:
    """Texts for calibration, tokenized on demand the way the model expects."""

    source: str
    texts: list[str]
    tokenizer: Any
    input_names: tuple[str, ...]
    pairs: list[str] | None = None  # the second text of each pair (pair models)

    def feeds(self, batch_size: int = 1, fixed_length: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        return batched_feeds(self.tokenizer, self.texts, self.input_names, batch_size, fixed_length=fixed_length,
                             pairs=self.pairs)

    def longest(self, cap: int = 128) -> int:
        """Token length of the longest text or pair (capped): one fixed shape for calibrators
        that stack activations across samples."""
        encoded = self.tokenizer(self.texts, self.pairs, truncation="longest_first" if self.pairs else True,
                                 max_length=cap)
        return max(len(ids) for ids in encoded["input_ids"])

    def summary(self) -> dict:
        joined = "\n".join(self.texts if self.pairs is None else [f"{a}\t{b}" for a, b in zip(self.texts, self.pairs)])
        digest = hashlib.sha256(joined.encode()).hexdigest()
        summary = {"source": self.source, "count": len(self.texts), "sha256": digest}
        if self.pairs is not None:
            summary["pairs"] = True
        return summary

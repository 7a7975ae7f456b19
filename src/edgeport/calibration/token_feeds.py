"""Tokenized feeds of the per-token tasks, with what each example's outputs are read by:
its real length (attention mask), the positions measured (token classification: the
non-special tokens; question answering: the context's tokens), the word of each token
(tagged sentences: ``word_ids``) and the character offsets of the context's tokens (QA)."""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from edgeport.calibration.data import Records
from edgeport.calibration.feeds import DEFAULT_MAX_LENGTH, feeds_from_encoding
from edgeport.calibration.token_data import Questions, TaggedSentences


@dataclass
class Encoded:
    """Batches of feeds and, per example, its metadata (all cut to its real length)."""

    batches: list[dict[str, np.ndarray]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # the real examples in each batch (the rest repeat the last)
    lengths: list[int] = field(default_factory=list)
    scored: list[np.ndarray] = field(default_factory=list)  # bool per token: a position that is measured
    word_ids: list[list[int | None]] = field(default_factory=list)  # tagged sentences only
    offsets: list[np.ndarray] = field(default_factory=list)  # questions only: (length, 2) offsets in the context

    def __len__(self) -> int:
        return len(self.lengths)


def _call(tokenizer, data, rows: slice, input_names, fixed_length: int | None):
    common = dict(padding="max_length" if fixed_length else True, max_length=fixed_length or DEFAULT_MAX_LENGTH,
                  return_tensors="np", return_special_tokens_mask=True,
                  return_token_type_ids="token_type_ids" in input_names or None)
    if isinstance(data, Questions):
        return tokenizer(data.questions[rows], data.contexts[rows], truncation="only_second",
                         return_offsets_mapping=True, **common)
    if isinstance(data, TaggedSentences):
        try:
            return tokenizer(data.words[rows], is_split_into_words=True, truncation=True, **common)
        except ValueError as exc:  # byte-level BPE (RoBERTa, GPT-2) saved without add_prefix_space
            if "add_prefix_space" not in str(exc):
                raise
            from edgeport.errors import InputError

            raise InputError("this tokenizer cannot read sentences given as words (tagged sentences) unless it "
                             "adds a space before each word",
                             hint='save the tokenizer with "add_prefix_space": true in tokenizer_config.json') from exc
    return tokenizer(list(data.texts[rows]), truncation=True, **common)


def _pad_rows(array: np.ndarray, batch: int) -> np.ndarray:
    extra = batch - array.shape[0]
    return array if extra <= 0 else np.concatenate([array, np.repeat(array[-1:], extra, axis=0)])


def encode(tokenizer, data: Records | TaggedSentences | Questions, input_names: tuple[str, ...], batch: int,
           fixed_length: int | None = None) -> Encoded:
    """Encode ``data`` in batches of ``batch`` (with ``fixed_length``, every batch is padded to
    that many tokens and the last one to ``batch`` rows by repeating its final row)."""
    if not getattr(tokenizer, "is_fast", False):
        from edgeport.errors import InputError

        raise InputError("token classification and question answering read token offsets and word ids, which "
                         "only a fast tokenizer gives", hint="save the model with a tokenizer.json")
    result = Encoded()
    count = len(data.texts)
    for start in range(0, count, batch):
        rows = slice(start, min(start + batch, count))
        encoded = _call(tokenizer, data, rows, input_names, fixed_length)
        feeds = feeds_from_encoding(encoded, input_names)
        real = rows.stop - rows.start
        if fixed_length:
            feeds = {name: _pad_rows(value, batch) for name, value in feeds.items()}
        result.batches.append(feeds)
        result.rows.append(real)
        for i in range(real):
            length = int(encoded["attention_mask"][i].sum())
            special = encoded["special_tokens_mask"][i][:length].astype(bool)
            result.lengths.append(length)
            if isinstance(data, Questions):
                sequence = encoded.sequence_ids(i)[:length]
                result.scored.append(np.array([s == 1 for s in sequence]) & ~special)
                result.offsets.append(np.asarray(encoded["offset_mapping"][i][:length]))
            else:
                result.scored.append(~special)
            if isinstance(data, TaggedSentences):
                result.word_ids.append(encoded.word_ids(i)[:length])
    return result


def run_encoded(runner, encoded: Encoded) -> list[np.ndarray]:
    """The runner's outputs on every example, each cut to its real length: [length, labels]
    (token classification) or [length, 2] (question answering: start and end logits)."""
    out: list[np.ndarray] = []
    for feeds, real in zip(encoded.batches, encoded.rows):
        result = np.asarray(runner.infer(feeds))
        out.extend(result[i] for i in range(real))
    return [row[:length] for row, length in zip(out, encoded.lengths)]

"""Texts -> token rows -> padded feeds, with the `tokenizers` library alone (no transformers).

The artifact folder carries ``tokenizer.json`` (written at build time with truncation at the
artifact's ``max_length`` and no padding); rows are padded here, to the longest row of a
micro-batch or to the shape bucket a static-shape artifact was compiled for.
"""

from __future__ import annotations

import os

import numpy as np


class TextEncoder:
    """One artifact's tokenizer: ``encode`` gives each text's ids and type ids (truncated),
    ``pack`` pads a group of rows into the feeds the graph takes."""

    def __init__(self, path: str, input_names, max_length: int, pad_id: int):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(path)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        self.input_names = tuple(input_names)
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)

    def encode(self, texts) -> list:
        """Each text's encoding (``.ids``, ``.type_ids``), in order (``encode_batch``, which
        the library parallelises across texts; one text through ``encode``). A pair model's
        input is a ``(text, text_pair)`` tuple: the tokenizer's pair template joins the two
        (type ids 1 on the second), a pair too long is cut from its longer text."""
        if len(texts) == 1:
            first = texts[0]
            return [self.tokenizer.encode(*first) if isinstance(first, tuple) else self.tokenizer.encode(first)]
        return self.tokenizer.encode_batch(list(texts))

    def pack(self, rows, length: int, batch: int | None = None) -> dict:
        """int64 feeds of shape (max(len(rows), batch), length): ids padded with the pad id,
        attention mask 1 on real tokens; rows beyond ``rows`` (a static batch) are copies of
        the first row and are dropped by the caller."""
        n = max(len(rows), batch or 0)
        ids = np.full((n, length), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.int64)
        types = np.zeros((n, length), dtype=np.int64) if "token_type_ids" in self.input_names else None
        for i in range(n):
            row = rows[i] if i < len(rows) else rows[0]
            k = len(row.ids)
            ids[i, :k] = row.ids
            mask[i, :k] = 1
            if types is not None:
                types[i, :k] = row.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            feeds["token_type_ids"] = types
        return {name: feeds[name] for name in self.input_names}


def read_texts(path: str) -> list[str]:
    """One text per non-empty line of a UTF-8 file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]

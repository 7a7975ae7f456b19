"""Vocabulary pruning: keep the embedding rows of the tokens a corpus uses. The tokenizer
is unchanged; an id remap inside the model sends every other token to the kept token whose
embedding is nearest (cosine), so unseen words degrade gracefully instead of becoming [UNK]."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from edgeport.compress.blocks import anatomy_of
from edgeport.model.structure import RemappedEmbedding
from edgeport.errors import UsageError
from edgeport.model.load import LoadedModel


def used_ids(loaded: LoadedModel, texts: list[str], min_count: int = 1) -> list[int]:
    counts = Counter(i for ids in loaded.tokenizer(texts, truncation=True, max_length=512)["input_ids"] for i in ids)
    special = set(loaded.tokenizer.all_special_ids)
    return sorted({i for i, c in counts.items() if c >= min_count} | special)


def nearest_kept(weight: torch.Tensor, kept: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For every row of ``weight``, the position in ``kept`` of the most cosine-similar kept row."""
    unit = torch.nn.functional.normalize(weight.detach().float(), dim=1)
    kept_unit = unit[kept]
    best = torch.empty(weight.shape[0], dtype=torch.long)
    for start in range(0, weight.shape[0], chunk):
        best[start:start + chunk] = (unit[start:start + chunk] @ kept_unit.T).argmax(1)
    return best


def prune_vocab(loaded: LoadedModel, texts: list[str], min_count: int = 1) -> dict:
    anatomy = anatomy_of(loaded)
    base = loaded.model.base_model
    table = base.get_submodule(anatomy.word_embeddings)
    if not isinstance(table, nn.Embedding):
        raise UsageError("prune_vocab must run before the embeddings are factorized or pruned")
    kept = torch.tensor(used_ids(loaded, texts, min_count), dtype=torch.long)
    kept = kept[kept < table.num_embeddings]
    remap = nearest_kept(table.weight, kept)
    remap[kept] = torch.arange(kept.numel())  # a kept token maps to its own row
    padding = table.padding_idx
    new_padding = int(remap[padding]) if padding is not None else None
    inner = nn.Embedding(kept.numel(), table.embedding_dim, padding_idx=new_padding)
    inner.weight.data.copy_(table.weight.detach()[kept])
    module = RemappedEmbedding(table.num_embeddings, inner)
    module.remap.copy_(remap.to(torch.int32))
    base.set_submodule(anatomy.word_embeddings, module)
    return {"vocab_kept": int(kept.numel()), "vocab_size": int(table.num_embeddings)}

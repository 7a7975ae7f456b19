"""Modules that compression puts into a model, and the record that lets it reload.

A compressed model is no longer what its ``config.json`` describes: heads or FFN neurons
pruned per layer, Linear and embedding layers factorized, the vocabulary pruned. The
model folder therefore carries a *structure*: for every module that differs from the
config's, what to build in its place (kind and shapes). Loading builds the model from its
config, swaps those modules in, then loads the weights strictly - so a saved compressed
model reloads exactly, without any pickled object.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeport.errors import InputError


class LowRankLinear(nn.Module):
    """``Linear(in, out)`` as ``second(first(x))`` with an inner ``rank``: (in + out)·rank weights."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x):
        return self.second(self.first(x))


class LowRankEmbedding(nn.Module):
    """An embedding table ``[num, dim]`` as ``table [num, rank]`` times ``proj [rank, dim]``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.rank = num_embeddings, embedding_dim, rank
        self.table = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.proj = nn.Linear(rank, embedding_dim, bias=False)

    def forward(self, ids):
        return self.proj(self.table(ids))


class RemappedEmbedding(nn.Module):
    """A pruned vocabulary behind the tokenizer's ids: ``inner(remap[ids])``. The tokenizer is
    unchanged; ``remap`` (int32, one entry per original id) sends each id to its kept row."""

    def __init__(self, vocab_size: int, inner: nn.Module):
        super().__init__()
        self.register_buffer("remap", torch.zeros(vocab_size, dtype=torch.int32))
        self.inner = inner

    def forward(self, ids):
        return self.inner(self.remap[ids])


CUSTOM = (LowRankLinear, LowRankEmbedding, RemappedEmbedding)


def spec_of(module: nn.Module) -> dict:
    """The build recipe of one module (kind and shapes; no weights)."""
    if isinstance(module, LowRankLinear):
        return {"kind": "lowrank_linear", "in": module.in_features, "out": module.out_features,
                "rank": module.rank, "bias": module.second.bias is not None}
    if isinstance(module, LowRankEmbedding):
        return {"kind": "lowrank_embedding", "num": module.num_embeddings, "dim": module.embedding_dim,
                "rank": module.rank, "padding_idx": module.table.padding_idx}
    if isinstance(module, RemappedEmbedding):
        return {"kind": "remapped_embedding", "vocab": int(module.remap.numel()), "inner": spec_of(module.inner)}
    if isinstance(module, nn.Linear):
        return {"kind": "linear", "in": module.in_features, "out": module.out_features,
                "bias": module.bias is not None}
    if isinstance(module, nn.Embedding):
        return {"kind": "embedding", "num": module.num_embeddings, "dim": module.embedding_dim,
                "padding_idx": module.padding_idx}
    raise TypeError(f"no structure spec for {type(module).__name__}")


def module_from_spec(spec: dict) -> nn.Module:
    kind = spec.get("kind")
    if kind == "linear":
        return nn.Linear(spec["in"], spec["out"], bias=spec["bias"])
    if kind == "embedding":
        return nn.Embedding(spec["num"], spec["dim"], padding_idx=spec.get("padding_idx"))
    if kind == "lowrank_linear":
        return LowRankLinear(spec["in"], spec["out"], spec["rank"], spec["bias"])
    if kind == "lowrank_embedding":
        return LowRankEmbedding(spec["num"], spec["dim"], spec["rank"], spec.get("padding_idx"))
    if kind == "remapped_embedding":
        return RemappedEmbedding(spec["vocab"], module_from_spec(spec["inner"]))
    raise InputError(f"unknown module kind '{kind}' in the model's structure record",
                     hint="was the model saved by a newer edgeport?")


def structure_of(model: nn.Module) -> dict[str, dict]:
    """Spec of every Linear/embedding module (custom ones whole, not their parts)."""
    specs: dict[str, dict] = {}
    inside: tuple[str, ...] = ()
    for path, module in model.named_modules():
        if inside and path.startswith(inside):
            continue
        if isinstance(module, CUSTOM):
            inside = inside + (path + ".",)
        if isinstance(module, CUSTOM + (nn.Linear, nn.Embedding)):
            specs[path] = spec_of(module)
    return specs


def differs_from_config(model: nn.Module, fresh: nn.Module) -> dict[str, dict]:
    """The part of ``model``'s structure that a model built from its config lacks."""
    mine, theirs = structure_of(model), structure_of(fresh)
    return {path: spec for path, spec in mine.items() if theirs.get(path) != spec}


def apply_structure(model: nn.Module, structure: dict[str, dict]) -> nn.Module:
    """Swap in (empty) modules of the recorded kinds and shapes; weights are loaded after."""
    for path, spec in structure.items():
        try:
            model.get_submodule(path)
        except AttributeError as exc:
            raise InputError(f"the model's structure record names '{path}', which the model does not have",
                             hint="the model folder's edgeport.json does not belong to its config.json") from exc
        model.set_submodule(path, module_from_spec(spec))
    return model


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))

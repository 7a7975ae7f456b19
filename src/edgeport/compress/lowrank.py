"""Low-rank factorization by truncated SVD: a Linear [out, in] becomes two of rank r, an
embedding table [num, dim] becomes [num, r] x [r, dim]. The rank is given, or chosen as the
smallest that keeps a share of the spectral energy (sum of squared singular values)."""

from __future__ import annotations

import re

import torch
from torch import nn

from edgeport.compress.blocks import anatomy_of
from edgeport.model.structure import LowRankEmbedding, LowRankLinear, RemappedEmbedding
from edgeport.errors import UsageError
from edgeport.model.load import LoadedModel


def rank_for(singular: torch.Tensor, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        return max(1, min(rank, singular.numel()))
    share = torch.cumsum(singular ** 2, 0) / (singular ** 2).sum()
    return int(torch.searchsorted(share, torch.tensor(energy)).item()) + 1


def factorized_linear(linear: nn.Linear, rank: int | None, energy: float | None) -> LowRankLinear | None:
    """The factorized layer, or None when the rank saves no weights."""
    u, s, vt = torch.linalg.svd(linear.weight.detach().double(), full_matrices=False)
    r = rank_for(s, rank, energy)
    if r * (linear.in_features + linear.out_features) >= linear.in_features * linear.out_features:
        return None
    root = s[:r].sqrt()
    new = LowRankLinear(linear.in_features, linear.out_features, r, bias=linear.bias is not None)
    new.first.weight.data.copy_((root[:, None] * vt[:r]).float())
    new.second.weight.data.copy_((u[:, :r] * root).float())
    if linear.bias is not None:
        new.second.bias.data.copy_(linear.bias.detach())
    return new


def factorized_embedding(table: nn.Embedding, rank: int | None, energy: float | None) -> LowRankEmbedding | None:
    u, s, vt = torch.linalg.svd(table.weight.detach().double(), full_matrices=False)
    r = rank_for(s, rank, energy)
    if r * (table.num_embeddings + table.embedding_dim) >= table.num_embeddings * table.embedding_dim:
        return None
    new = LowRankEmbedding(table.num_embeddings, table.embedding_dim, r, table.padding_idx)
    new.table.weight.data.copy_((u[:, :r] * s[:r]).float())
    new.proj.weight.data.copy_(vt[:r].T.float())
    return new


def low_rank(loaded: LoadedModel, roles: list[str], rank: int | None = None, energy: float | None = None) -> dict:
    """Factorize the word embeddings (role ``embeddings``) and/or the Linear layers of the
    given roles (``attn_qkv``, ``attn_out``, ``ffn_up``, ``ffn_down``)."""
    if (rank is None) == (energy is None):
        raise UsageError("low_rank needs exactly one of rank or energy")
    if energy is not None and not 0 < energy <= 1:
        raise UsageError(f"energy {energy} is not in (0, 1]")
    unknown = set(roles) - {"embeddings", "attn_qkv", "attn_out", "ffn_up", "ffn_down"}
    if unknown:
        raise UsageError(f"low_rank cannot factorize roles {sorted(unknown)}")
    ranks: dict[str, int] = {}
    if "embeddings" in roles:
        ranks.update(_embeddings(loaded, rank, energy))
    linear_roles = [r for r in roles if r != "embeddings"]
    for path, module in list(loaded.model.named_modules()):
        if not isinstance(module, nn.Linear) or re.search(r"\.(first|second)$", path):
            continue
        if loaded.family.role_of(path) in linear_roles:
            new = factorized_linear(module, rank, energy)
            if new is not None:
                loaded.model.set_submodule(path, new)
                ranks[path] = new.rank
    return {"ranks": ranks}


def _embeddings(loaded: LoadedModel, rank: int | None, energy: float | None) -> dict[str, int]:
    path = anatomy_of(loaded).word_embeddings
    base = loaded.model.base_model
    module = base.get_submodule(path)
    owner, attr = (module, "inner") if isinstance(module, RemappedEmbedding) else (None, None)
    table = module.inner if owner is not None else module
    if not isinstance(table, nn.Embedding):
        return {}
    new = factorized_embedding(table, rank, energy)
    if new is None:
        return {}
    if owner is not None:
        setattr(owner, attr, new)
    else:
        base.set_submodule(path, new)
    return {path: new.rank}

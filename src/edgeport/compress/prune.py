"""Pruning passes. Unstructured magnitude pruning zeroes weights (dense runtimes gain no
speed from it; sparsity and the deflated size are reported). Structured pruning removes
attention heads, FFN neurons or whole blocks, so every runtime computes less; the config
is rewritten where it can describe the result (FFN size, block count), and the model's
structure record covers per-layer head counts."""

from __future__ import annotations

import torch
from torch import nn

from edgeport.compress.blocks import anatomy_of, block_list, blocks_of, require_pass, set_part
from edgeport.compress.importance import head_scores, neuron_scores
from edgeport.errors import UsageError
from edgeport.model.load import LoadedModel


def _kept(count: int, keep: float | int) -> int:
    """``keep`` as a fraction (< 1 or 1.0) or a count; at least one is always kept."""
    n = round(count * keep) if isinstance(keep, float) else int(keep)
    if n < 1 or n > count:
        raise UsageError(f"cannot keep {keep} of {count}", hint="give a fraction in (0, 1] or a count up to the total")
    return n


def _sliced(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A Linear with only the output rows (dim 0) or input columns (dim 1) in ``index``."""
    weight = linear.weight.detach().index_select(dim, index).clone()
    out_f, in_f = weight.shape
    new = nn.Linear(in_f, out_f, bias=linear.bias is not None)
    new.weight.data.copy_(weight)
    if linear.bias is not None:
        new.bias.data.copy_(linear.bias.detach().index_select(0, index) if dim == 0 else linear.bias.detach())
    return new


def prune_heads(loaded: LoadedModel, keep: float | int, grads: dict | None = None) -> dict:
    """Keep the ``keep`` most important heads of every block."""
    require_pass(loaded, "prune_heads")
    anatomy = anatomy_of(loaded)
    config = loaded.model.config
    heads = getattr(config, anatomy.heads_key)
    head_size = getattr(config, anatomy.hidden_key) // heads
    kept_per_block = []
    for block in blocks_of(loaded):
        present = block.query.out_features // head_size
        n = _kept(heads, keep) if isinstance(keep, float) else _kept(present, keep)
        n = min(n, present)
        top = torch.sort(torch.topk(head_scores(block, head_size, grads), n).indices).values
        rows = (top[:, None] * head_size + torch.arange(head_size)).reshape(-1)
        for part in ("query", "key", "value"):
            set_part(block, anatomy, part, _sliced(getattr(block, part), rows, 0))
        set_part(block, anatomy, "attn_out", _sliced(block.attn_out, rows, 1))
        kept_per_block.append(top.tolist())
    return {"heads_kept": kept_per_block}


def prune_ffn(loaded: LoadedModel, keep: float | int, grads: dict | None = None) -> dict:
    """Keep the same number of most important FFN neurons in every block (the config's FFN
    size is rewritten, so the result is a plain model of a smaller shape)."""
    require_pass(loaded, "prune_ffn")
    anatomy = anatomy_of(loaded)
    config = loaded.model.config
    n = _kept(getattr(config, anatomy.ffn_size_key), keep)
    for block in blocks_of(loaded):
        top = torch.sort(torch.topk(neuron_scores(block, grads), n).indices).values
        set_part(block, anatomy, "ffn_up", _sliced(block.ffn_up, top, 0))
        set_part(block, anatomy, "ffn_down", _sliced(block.ffn_down, top, 1))
    setattr(config, anatomy.ffn_size_key, n)
    return {"ffn_size": n}


def evenly_spaced(count: int, keep: int) -> list[int]:
    """``keep`` block indices spread over ``count``, always with the first and the last."""
    if keep == 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (keep - 1)) for i in range(keep)})


def drop_blocks(loaded: LoadedModel, keep: int | list[int]) -> dict:
    """Keep the listed blocks (or ``keep`` evenly spaced ones); the block count is rewritten."""
    require_pass(loaded, "drop_blocks")
    anatomy = anatomy_of(loaded)
    blocks = block_list(loaded)
    indices = evenly_spaced(len(blocks), _kept(len(blocks), keep)) if isinstance(keep, int) else sorted(set(keep))
    if not indices or indices[0] < 0 or indices[-1] >= len(blocks):
        raise UsageError(f"blocks to keep {keep} are not within 0..{len(blocks) - 1}")
    kept = nn.ModuleList([blocks[i] for i in indices])
    loaded.model.base_model.set_submodule(anatomy.blocks, kept)
    for position, module in enumerate(kept):  # attention layers know their index (for caches)
        for sub in module.modules():
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = position
    setattr(loaded.model.config, anatomy.blocks_key, len(indices))
    return {"blocks_kept": indices}


def magnitude_prune(loaded: LoadedModel, sparsity: float, scope: str = "global") -> dict:
    """Zero the smallest-magnitude weights of the blocks' Linear layers, globally or per layer;
    the zeros are plain weights afterwards (no masks remain)."""
    if not 0 < sparsity < 1:
        raise UsageError(f"sparsity {sparsity} is not in (0, 1)")
    weights = [m.weight for block in block_list(loaded) for m in block.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        if scope == "global":
            magnitudes = torch.cat([w.abs().flatten() for w in weights])
            threshold = torch.kthvalue(magnitudes, max(1, int(sparsity * magnitudes.numel()))).values
            for w in weights:
                w.mul_(w.abs() > threshold)
        else:
            for w in weights:
                threshold = torch.kthvalue(w.abs().flatten(), max(1, int(sparsity * w.numel()))).values
                w.mul_(w.abs() > threshold)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return {"sparsity": round(zeros / sum(w.numel() for w in weights), 4), "scope": scope}



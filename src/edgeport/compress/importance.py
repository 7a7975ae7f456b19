"""Importance of attention heads and FFN neurons: weight magnitude, or first-order Taylor
scores |w · dL/dw| accumulated over data (Molchanov et al.), summed over a unit's weights."""

from __future__ import annotations

import torch

from edgeport.compress.blocks import Block, blocks_of
from edgeport.compress.evaluate import encode, label_ids
from edgeport.errors import UsageError
from edgeport.model.load import LoadedModel


def _score(weight: torch.Tensor, grads: dict, use_taylor: bool) -> torch.Tensor:
    if not use_taylor:
        return weight.detach().abs()
    return (weight.detach() * grads[weight]).abs()


def head_scores(block: Block, head_size: int, grads: dict | None) -> torch.Tensor:
    """One score per head: its rows of query/key/value and its columns of the output projection."""
    taylor = grads is not None
    rows = sum(_score(lin.weight, grads, taylor).sum(1) for lin in (block.query, block.key, block.value))
    cols = _score(block.attn_out.weight, grads, taylor).sum(0)
    return (rows + cols).view(-1, head_size).sum(1)


def neuron_scores(block: Block, grads: dict | None) -> torch.Tensor:
    taylor = grads is not None
    return _score(block.ffn_up.weight, grads, taylor).sum(1) + _score(block.ffn_down.weight, grads, taylor).sum(0)


def taylor_grads(loaded: LoadedModel, texts: list[str], labels: list[str] | None, batch: int = 16) -> dict:
    """The gradient of the loss over ``texts``, per block weight (summed over batches). Loss:
    cross-entropy on the labels, or on the model's own predictions when there are none.
    Classifiers only: an embedding model has no loss without a teacher (use magnitude)."""
    if loaded.task != "text-classification":
        raise UsageError("taylor importance needs a classifier's loss; use importance: magnitude for embedding models")
    model = loaded.model
    weights = [p for block in blocks_of(loaded) for p in block.weights()]
    grads = {w: torch.zeros_like(w) for w in weights}
    model.eval()
    for start in range(0, len(texts), batch):
        feeds = encode(loaded, texts[start:start + batch])
        logits = model(**feeds).logits
        if labels is not None:
            target = torch.as_tensor(label_ids(labels[start:start + batch], model.config))
        else:
            target = logits.argmax(1).detach()
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(logits, target).backward()
        for w in weights:
            grads[w] += w.grad.detach()
    model.zero_grad(set_to_none=True)
    return grads

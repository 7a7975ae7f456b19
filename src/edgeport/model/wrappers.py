"""The exported function of each task: a thin torch module over the Hugging Face model.

feature-extraction -> `embeddings` [batch, hidden]: pooled (mean or CLS) and L2-normalised,
                      as sentence-transformers computes them.
text-classification -> `logits` [batch, num_labels].
"""

from __future__ import annotations

import torch

from edgeport.model.load import LoadedModel

OUTPUT_NAME = {"feature-extraction": "embeddings", "text-classification": "logits"}


class TaskModule(torch.nn.Module):
    def __init__(self, loaded: LoadedModel):
        super().__init__()
        self.m = loaded.model
        self.task = loaded.task
        self.input_names = loaded.family.inputs
        self.pooling = loaded.pooling

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.m(**kwargs)
        if self.task == "text-classification":
            return out.logits
        return pooled(out.last_hidden_state, attention_mask, self.pooling)


def pooled(hidden, attention_mask, pooling):
    """The sentence embedding of token states: CLS or masked mean, optionally L2-normalised."""
    if pooling.mode == "cls":
        result = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        result = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if pooling.normalize:
        result = torch.nn.functional.normalize(result, p=2, dim=1)
    return result


def task_module(loaded: LoadedModel) -> TaskModule:
    return TaskModule(loaded).eval()

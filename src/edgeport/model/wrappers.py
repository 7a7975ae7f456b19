"""The exported function of each task: a thin torch module over the Hugging Face model.

feature-extraction        -> `embeddings` [batch, hidden]: pooled (mean or CLS) and L2-normalised,
                             as sentence-transformers computes them.
text-classification       -> `logits` [batch, num_labels].
text-pair-classification  -> `logits` [batch, num_labels] of a pair (a cross-encoder's score when 1 label).
token-classification      -> `logits` [batch, sequence, num_labels].
question-answering        -> `start_logits`, `end_logits` [batch, sequence] each.

Runners return one array per call: a task with several outputs gives them stacked on a last
axis, in the order of ``OUTPUT_NAMES`` (question answering: [batch, sequence, 2]).
"""

from __future__ import annotations

import torch

from edgeport.model.load import LoadedModel

OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "feature-extraction": ("embeddings",),
    "text-classification": ("logits",),
    "text-pair-classification": ("logits",),
    "token-classification": ("logits",),
    "question-answering": ("start_logits", "end_logits"),
}
OUTPUT_NAME = {task: names[0] for task, names in OUTPUT_NAMES.items()}  # the first (or only) output


class TaskModule(torch.nn.Module):
    def __init__(self, loaded: LoadedModel):
        super().__init__()
        self.m = loaded.model
        self.task = loaded.task
        self.input_names = loaded.family.inputs
        self.output_names = OUTPUT_NAMES[loaded.task]
        self.pooling = loaded.pooling

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.m(**kwargs)
        if self.task == "question-answering":
            return out.start_logits, out.end_logits
        if self.task != "feature-extraction":
            return out.logits
        return pooled(out.last_hidden_state, attention_mask, self.pooling)


def stacked(outputs) -> "torch.Tensor":
    """One tensor of a module's output(s): several are stacked on a new last axis."""
    return torch.stack(list(outputs), dim=-1) if isinstance(outputs, (tuple, list)) else outputs


def pooled(hidden, attention_mask, pooling):
    """The sentence embedding of token states: CLS or masked mean, optionally L2-normalised."""
    if pooling.mode == "cls":
        result = hidden[:, 0]
    else:
        # padded positions are zeroed with a select, not a product: a runtime may leave them NaN
        # (a fully masked attention row), and NaN * 0 would spread into the embedding
        keep = attention_mask.unsqueeze(-1).bool()
        count = keep.sum(1).to(hidden.dtype).clamp(min=1e-9)
        result = hidden.masked_fill(~keep, 0.0).sum(1) / count
    if pooling.normalize:
        result = torch.nn.functional.normalize(result, p=2, dim=1)
    return result


def task_module(loaded: LoadedModel) -> TaskModule:
    return TaskModule(loaded).eval()

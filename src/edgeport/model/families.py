"""Declarative facts per model family, in the manner of Optimum's export configs.

Generic code never tests a model name: it asks the family for its inputs and for the
roles of its linear layers (used to group layers for sensitivity analysis and fallback).
Layers are identified by their PyTorch module path, which the ONNX exporter and
OpenVINO's converter both keep in node names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeport.errors import InputError


class UnsupportedModelError(InputError):
    pass


@dataclass(frozen=True)
class Anatomy:
    """Where a family keeps the parts that compression cuts. Paths are relative to the
    model's ``base_model`` (blocks: to one block); ``*_key`` name config fields."""

    blocks: str
    blocks_key: str
    query: str
    key: str
    value: str
    attn_out: str
    ffn_up: str
    ffn_down: str
    ffn_size_key: str
    heads_key: str
    hidden_key: str
    word_embeddings: str
    heads_prunable: bool = True  # the attention reshapes with -1 heads, so fewer heads just work


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    inputs: tuple[str, ...]
    block_pattern: str  # regex with one group: the block (layer) index in a module path
    roles: dict[str, str] = field(default_factory=dict)  # role -> regex on the module path
    anatomy: Anatomy | None = None

    def block_of(self, module_path: str) -> int | None:
        match = re.search(self.block_pattern, module_path)
        return int(match.group(1)) if match else None

    def role_of(self, module_path: str) -> str:
        for role, pattern in self.roles.items():
            if re.search(pattern, module_path):
                return role
        return "other"


_BERT_ANATOMY = Anatomy(
    blocks="encoder.layer", blocks_key="num_hidden_layers", query="attention.self.query",
    key="attention.self.key", value="attention.self.value", attn_out="attention.output.dense",
    ffn_up="intermediate.dense", ffn_down="output.dense", ffn_size_key="intermediate_size",
    heads_key="num_attention_heads", hidden_key="hidden_size", word_embeddings="embeddings.word_embeddings",
)

_BERT_ROLES = {
    "embeddings": r"embeddings\.",
    "attn_qkv": r"attention\.self\.(query|key|value)$",
    "attn_out": r"attention\.output\.dense$",
    "ffn_up": r"intermediate\.dense$",
    "ffn_down": r"(?<!attention\.)output\.dense$",
    "head": r"(pooler|classifier)",
}

BERT = Family(
    name="bert",
    model_types=("bert", "electra"),
    inputs=("input_ids", "attention_mask", "token_type_ids"),
    block_pattern=r"encoder\.layer\.(\d+)\.",
    roles=_BERT_ROLES,
    anatomy=_BERT_ANATOMY,
)

ROBERTA = Family(
    name="roberta",
    model_types=("roberta", "xlm-roberta", "camembert"),
    inputs=("input_ids", "attention_mask"),
    block_pattern=r"encoder\.layer\.(\d+)\.",
    roles=_BERT_ROLES,
    anatomy=_BERT_ANATOMY,
)

DISTILBERT = Family(
    name="distilbert",
    model_types=("distilbert",),
    inputs=("input_ids", "attention_mask"),
    block_pattern=r"transformer\.layer\.(\d+)\.",
    roles={
        "embeddings": r"embeddings\.",
        "attn_qkv": r"attention\.(q_lin|k_lin|v_lin)$",
        "attn_out": r"attention\.out_lin$",
        "ffn_up": r"ffn\.lin1$",
        "ffn_down": r"ffn\.lin2$",
        "head": r"(pre_classifier|classifier)",
    },
    # DistilBERT's attention reshapes with its configured head count: heads are not prunable
    anatomy=Anatomy(
        blocks="transformer.layer", blocks_key="n_layers", query="attention.q_lin", key="attention.k_lin",
        value="attention.v_lin", attn_out="attention.out_lin", ffn_up="ffn.lin1", ffn_down="ffn.lin2",
        ffn_size_key="hidden_dim", heads_key="n_heads", hidden_key="dim",
        word_embeddings="embeddings.word_embeddings", heads_prunable=False,
    ),
)

FAMILIES = (BERT, ROBERTA, DISTILBERT)


def family_for(model_type: str) -> Family:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise UnsupportedModelError(
        f"model type '{model_type}' is not supported",
        hint=f"supported model types: {supported}",
    )

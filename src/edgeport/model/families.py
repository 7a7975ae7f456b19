"""Declarative facts per model family, in the manner of Optimum's export configs.

Generic code never tests a model name: it asks the family for its inputs, for the roles of
its linear layers (used to group layers for sensitivity analysis and fallback), for its
anatomy (where compression finds blocks, attention and FFN) and for the compression passes
that do not apply to it and why (``cannot``). Layers are identified by their PyTorch module
path, which the ONNX exporter and OpenVINO's converter both keep in node names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from edgeport.errors import InputError


class UnsupportedModelError(InputError):
    pass


@dataclass(frozen=True)
class Anatomy:
    """Where a family keeps the parts that compression cuts. Paths are relative to the
    model's ``base_model`` (blocks: to one block); ``*_key`` name config fields."""

    blocks: str
    blocks_key: str
    query: str | None
    key: str | None
    value: str | None
    attn_out: str
    ffn_up: str
    ffn_down: str
    ffn_size_key: str
    heads_key: str
    hidden_key: str  # the width the attention heads split (head size = hidden / heads)
    word_embeddings: str
    # config values this anatomy assumes (e.g. ALBERT: one layer group holding one layer)
    assumes: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    inputs: tuple[str, ...]
    roles: dict[str, str] = field(default_factory=dict)  # role -> regex on the module path
    anatomy: Anatomy | None = None
    # compression pass (recipe op) -> why it does not apply to this family
    cannot: dict[str, str] = field(default_factory=dict)
    shared_layers: bool = False  # one set of block weights applied repeatedly (ALBERT)

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
    roles=_BERT_ROLES,
    anatomy=_BERT_ANATOMY,
)

ROBERTA = Family(
    name="roberta",
    model_types=("roberta", "xlm-roberta", "camembert"),
    inputs=("input_ids", "attention_mask"),
    roles=_BERT_ROLES,
    anatomy=_BERT_ANATOMY,
)

DISTILBERT = Family(
    name="distilbert",
    model_types=("distilbert",),
    inputs=("input_ids", "attention_mask"),
    roles={
        "embeddings": r"embeddings\.",
        "attn_qkv": r"attention\.(q_lin|k_lin|v_lin)$",
        "attn_out": r"attention\.out_lin$",
        "ffn_up": r"ffn\.lin1$",
        "ffn_down": r"ffn\.lin2$",
        "head": r"(pre_classifier|classifier)",
    },
    anatomy=Anatomy(
        blocks="transformer.layer", blocks_key="n_layers", query="attention.q_lin", key="attention.k_lin",
        value="attention.v_lin", attn_out="attention.out_lin", ffn_up="ffn.lin1", ffn_down="ffn.lin2",
        ffn_size_key="hidden_dim", heads_key="n_heads", hidden_key="dim",
        word_embeddings="embeddings.word_embeddings",
    ),
    cannot={"prune_heads": "DistilBERT's attention reshapes with its configured head count: its heads "
                           "cannot be pruned"},
)

MODERNBERT = Family(
    name="modernbert",
    model_types=("modernbert",),
    inputs=("input_ids", "attention_mask"),
    roles={
        "embeddings": r"embeddings\.",
        "attn_qkv": r"attn\.Wqkv$",
        "attn_out": r"attn\.Wo$",
        "ffn_up": r"mlp\.Wi$",
        "ffn_down": r"mlp\.Wo$",
        "head": r"(head\.dense|classifier)",
    },
    anatomy=Anatomy(
        blocks="layers", blocks_key="num_hidden_layers", query=None, key=None, value=None, attn_out="attn.Wo",
        ffn_up="mlp.Wi", ffn_down="mlp.Wo", ffn_size_key="intermediate_size", heads_key="num_attention_heads",
        hidden_key="hidden_size", word_embeddings="embeddings.tok_embeddings",
    ),
    cannot={
        "prune_heads": "ModernBERT fuses query, key and value into one Linear (attn.Wqkv) and rotates them with "
                       "RoPE per head; head slicing of the fused layer is not implemented",
        "prune_ffn": "ModernBERT's FFN is a gated GLU whose input Linear (mlp.Wi) holds the gate and the "
                     "up-projection together; neuron slicing of the fused layer is not implemented",
        "drop_blocks": "ModernBERT's blocks differ by position (block 0 has no attention LayerNorm; every "
                       "global_attn_every_n_layers-th block attends globally, the others in a sliding window), "
                       "so a kept block cannot take another's place",
    },
)

DEBERTA_V2 = Family(
    name="deberta-v2",
    model_types=("deberta-v2",),
    inputs=("input_ids", "attention_mask", "token_type_ids"),  # without token types when type_vocab_size is 0
    roles={
        "embeddings": r"(embeddings\.|rel_embeddings)",
        "attn_qkv": r"attention\.self\.(query_proj|key_proj|value_proj)$",
        "attn_out": r"attention\.output\.dense$",
        "ffn_up": r"intermediate\.dense$",
        "ffn_down": r"(?<!attention\.)output\.dense$",
        "head": r"(pooler|classifier)",
    },
    anatomy=Anatomy(
        blocks="encoder.layer", blocks_key="num_hidden_layers", query="attention.self.query_proj",
        key="attention.self.key_proj", value="attention.self.value_proj", attn_out="attention.output.dense",
        ffn_up="intermediate.dense", ffn_down="output.dense", ffn_size_key="intermediate_size",
        heads_key="num_attention_heads", hidden_key="hidden_size", word_embeddings="embeddings.word_embeddings",
    ),
    cannot={"prune_heads": "DeBERTa's disentangled attention reshapes with its configured head count and "
                           "projects the shared relative-position embeddings with every block's query/key "
                           "weights, so a block cannot run with fewer heads"},
)

MPNET = Family(
    name="mpnet",
    model_types=("mpnet",),
    inputs=("input_ids", "attention_mask"),
    roles={
        "embeddings": r"(embeddings\.|relative_attention_bias)",
        "attn_qkv": r"attention\.attn\.(q|k|v)$",
        "attn_out": r"attention\.attn\.o$",
        "ffn_up": r"intermediate\.dense$",
        "ffn_down": r"(?<!attention\.)output\.dense$",
        "head": r"(pooler|classifier)",
    },
    anatomy=Anatomy(
        blocks="encoder.layer", blocks_key="num_hidden_layers", query="attention.attn.q", key="attention.attn.k",
        value="attention.attn.v", attn_out="attention.attn.o", ffn_up="intermediate.dense", ffn_down="output.dense",
        ffn_size_key="intermediate_size", heads_key="num_attention_heads", hidden_key="hidden_size",
        word_embeddings="embeddings.word_embeddings",
    ),
    cannot={"prune_heads": "MPNet adds one relative-position bias per head, computed once (encoder."
                           "relative_attention_bias) and shared by every block, so a block cannot run with "
                           "fewer heads than the others"},
)

ALBERT = Family(
    name="albert",
    model_types=("albert",),
    inputs=("input_ids", "attention_mask", "token_type_ids"),
    roles={
        "embeddings": r"(embeddings\.|embedding_hidden_mapping_in)",
        "attn_qkv": r"attention\.(query|key|value)$",
        "attn_out": r"attention\.dense$",
        "ffn_up": r"\.ffn$",
        "ffn_down": r"\.ffn_output$",
        "head": r"(pooler|classifier)",
    },
    # ALBERT applies one layer (its weights shared) num_hidden_layers times: head and FFN pruning
    # cut that layer, so every application of it; there is no separate block to drop.
    anatomy=Anatomy(
        blocks="encoder.albert_layer_groups.0.albert_layers", blocks_key="inner_group_num",
        query="attention.query", key="attention.key", value="attention.value", attn_out="attention.dense",
        ffn_up="ffn", ffn_down="ffn_output", ffn_size_key="intermediate_size", heads_key="num_attention_heads",
        hidden_key="hidden_size", word_embeddings="embeddings.word_embeddings",
        assumes=(("num_hidden_groups", 1), ("inner_group_num", 1)),
    ),
    cannot={"drop_blocks": "ALBERT has one layer whose weights every block shares (applied num_hidden_layers "
                           "times): there is no block of its own to drop, and fewer repetitions would cut "
                           "compute but no weights; prune its heads or FFN neurons instead (that cuts the "
                           "shared layer, so every repetition)"},
    shared_layers=True,
)

MOBILEBERT = Family(
    name="mobilebert",
    model_types=("mobilebert",),
    inputs=("input_ids", "attention_mask", "token_type_ids"),
    roles={
        "embeddings": r"embeddings\.",
        "attn_qkv": r"attention\.self\.(query|key|value)$",
        "attn_out": r"attention\.output\.dense$",
        "ffn_up": r"intermediate\.dense$",
        "ffn_down": r"(?<!attention\.)(?<!bottleneck\.)output\.dense$",
        "bottleneck": r"bottleneck\.",
        "head": r"(pooler|classifier)",
    },
    # prune_ffn cuts the main FFN of each block; the extra stacked FFNs (ffn.N) keep their width
    # (the structure record keeps them apart from the config's rewritten intermediate_size)
    anatomy=Anatomy(
        blocks="encoder.layer", blocks_key="num_hidden_layers", query="attention.self.query",
        key="attention.self.key", value="attention.self.value", attn_out="attention.output.dense",
        ffn_up="intermediate.dense", ffn_down="output.dense", ffn_size_key="intermediate_size",
        heads_key="num_attention_heads", hidden_key="true_hidden_size",
        word_embeddings="embeddings.word_embeddings",
    ),
)

FAMILIES = (BERT, ROBERTA, DISTILBERT, MODERNBERT, DEBERTA_V2, MPNET, ALBERT, MOBILEBERT)


def family_for(model_type: str, config: dict | None = None) -> Family:
    """The family of a model type; with the model's ``config``, its inputs as that config
    uses them (no ``token_type_ids`` where ``type_vocab_size`` is 0, as in DeBERTa-v3)."""
    for family in FAMILIES:
        if model_type in family.model_types:
            if config is not None and "token_type_ids" in family.inputs and config.get("type_vocab_size", 1) == 0:
                return replace(family, inputs=tuple(n for n in family.inputs if n != "token_type_ids"))
            return family
    supported = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise UnsupportedModelError(
        f"model type '{model_type}' is not supported",
        hint=f"supported model types: {supported}",
    )

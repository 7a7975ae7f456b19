"""Per-family facts: inputs and layer roles by module path."""

from __future__ import annotations

import pytest

from edgeport.model.families import BERT, DISTILBERT, ROBERTA, UnsupportedModelError, family_for
from edgeport.exporter.graph import module_of_onnx_node, module_of_openvino_node


def test_family_lookup_and_inputs():
    assert family_for("bert") is BERT and family_for("xlm-roberta") is ROBERTA
    assert "token_type_ids" not in ROBERTA.inputs and "token_type_ids" not in DISTILBERT.inputs
    with pytest.raises(UnsupportedModelError, match="'gpt2' is not supported"):
        family_for("gpt2")


@pytest.mark.parametrize("family,path,role,block", [
    (BERT, "encoder.layer.3.output.dense", "ffn_down", 3),
    (BERT, "encoder.layer.0.attention.output.dense", "attn_out", 0),
    (BERT, "encoder.layer.1.attention.self.key", "attn_qkv", 1),
    (BERT, "encoder.layer.2.intermediate.dense", "ffn_up", 2),
    (BERT, "embeddings.word_embeddings", "embeddings", None),
    (DISTILBERT, "transformer.layer.1.ffn.lin2", "ffn_down", 1),
    (DISTILBERT, "transformer.layer.0.attention.q_lin", "attn_qkv", 0),
])
def test_roles(family, path, role, block):
    assert family.role_of(path) == role
    assert family.block_of(path) == block


def test_module_paths_from_node_names():
    assert module_of_onnx_node("/m/encoder/layer.0/output/dense/MatMul") == "encoder.layer.0.output.dense"
    assert module_of_openvino_node("__module.m.encoder.layer.0.output.dense/aten::linear/MatMul") == \
        "encoder.layer.0.output.dense"

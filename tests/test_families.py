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


@pytest.mark.parametrize("family,path,role", [
    (BERT, "encoder.layer.3.output.dense", "ffn_down"),
    (BERT, "encoder.layer.0.attention.output.dense", "attn_out"),
    (BERT, "encoder.layer.1.attention.self.key", "attn_qkv"),
    (BERT, "encoder.layer.2.intermediate.dense", "ffn_up"),
    (BERT, "embeddings.word_embeddings", "embeddings"),
    (DISTILBERT, "transformer.layer.1.ffn.lin2", "ffn_down"),
    (DISTILBERT, "transformer.layer.0.attention.q_lin", "attn_qkv"),
])
def test_roles(family, path, role):
    assert family.role_of(path) == role


def test_module_paths_from_node_names():
    assert module_of_onnx_node("/m/encoder/layer.0/output/dense/MatMul") == "encoder.layer.0.output.dense"
    assert module_of_openvino_node("__module.m.encoder.layer.0.output.dense/aten::linear/MatMul") == \
        "encoder.layer.0.output.dense"


# --- the families of issue #16: declared as data, exported with parity, compressed or refused

import numpy as np  # noqa: E402

from edgeport.compress import lowrank, prune  # noqa: E402
from edgeport.compress.blocks import PassNotApplicableError  # noqa: E402
from edgeport.compress.evaluate import outputs_of  # noqa: E402
from edgeport.calibration.data import builtin_texts  # noqa: E402
from edgeport.exporter.onnx_export import export_onnx, random_feeds  # noqa: E402
from edgeport.model.families import ALBERT, DEBERTA_V2, MOBILEBERT, MODERNBERT, MPNET  # noqa: E402
from edgeport.model.load import model_from_path, save_model  # noqa: E402
from tests.conftest import NEW_FAMILIES  # noqa: E402

HELDOUT = builtin_texts("heldout").texts[:12]


@pytest.mark.parametrize("family,path,role", [
    (MODERNBERT, "model.layers.1.attn.Wqkv", "attn_qkv"),
    (MODERNBERT, "layers.0.mlp.Wo", "ffn_down"),
    (MODERNBERT, "head.dense", "head"),
    (DEBERTA_V2, "deberta.encoder.layer.1.attention.self.value_proj", "attn_qkv"),
    (DEBERTA_V2, "encoder.layer.0.output.dense", "ffn_down"),
    (DEBERTA_V2, "encoder.rel_embeddings", "embeddings"),
    (MPNET, "encoder.layer.1.attention.attn.o", "attn_out"),
    (MPNET, "encoder.relative_attention_bias", "embeddings"),
    (ALBERT, "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn", "ffn_up"),
    (ALBERT, "encoder.albert_layer_groups.0.albert_layers.0.ffn_output", "ffn_down"),
    (ALBERT, "encoder.embedding_hidden_mapping_in", "embeddings"),
    (MOBILEBERT, "encoder.layer.3.ffn.0.output.dense", "ffn_down"),
    (MOBILEBERT, "encoder.layer.3.output.bottleneck.dense", "bottleneck"),
    (MOBILEBERT, "encoder.layer.0.attention.output.dense", "attn_out"),
])
def test_new_family_roles(family, path, role):
    assert family.role_of(path) == role


def test_new_family_lookup_and_inputs():
    assert family_for("modernbert") is MODERNBERT and family_for("mobilebert") is MOBILEBERT
    assert "token_type_ids" in family_for("deberta-v2").inputs
    # DeBERTa-v3 has no token types (type_vocab_size 0): its graph takes none
    assert family_for("deberta-v2", {"type_vocab_size": 0}).inputs == ("input_ids", "attention_mask")
    assert ALBERT.shared_layers and "drop_blocks" in ALBERT.cannot


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_new_family_loads_and_exports_with_parity(tiny_models, tmp_path, family):
    for task in ("feature-extraction", "text-classification"):
        loaded = model_from_path(tiny_models(family, task))
        assert (loaded.family.name, loaded.task) == (family, task)
        parity = export_onnx(loaded, tmp_path / f"{task}.onnx")
        assert parity["max_abs"] < 1e-4 and parity["min_cosine"] > 0.9999


# the pass each family can take (checked: reload gives identical outputs) and those it refuses
APPLIES = {"modernbert": "low_rank", "deberta-v2": "prune_ffn", "mpnet": "prune_ffn", "albert": "prune_heads",
           "mobilebert": "prune_ffn"}


def _apply(loaded, op):
    if op == "low_rank":
        return lowrank.low_rank(loaded, ["ffn_up", "ffn_down"], rank=4)
    if op == "prune_ffn":
        return prune.prune_ffn(loaded, 0.5, None)
    return prune.prune_heads(loaded, 1, None)


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_new_family_compression_and_reload_or_refusal(tiny_models, tmp_path, family):
    loaded = model_from_path(tiny_models(family, "text-classification"))
    before = loaded.model.num_parameters()
    _apply(loaded, APPLIES[family])
    assert loaded.model.num_parameters() < before
    save_model(loaded, tmp_path / "saved")
    again = model_from_path(tmp_path / "saved")
    np.testing.assert_array_equal(outputs_of(again, HELDOUT), outputs_of(loaded, HELDOUT))
    assert export_onnx(again, tmp_path / "m.onnx")["max_abs"] < 1e-4
    for op, reason in loaded.family.cannot.items():
        fresh = model_from_path(tiny_models(family, "text-classification"))
        call = {"prune_heads": lambda: prune.prune_heads(fresh, 1, None),
                "prune_ffn": lambda: prune.prune_ffn(fresh, 0.5, None),
                "drop_blocks": lambda: prune.drop_blocks(fresh, 1)}[op]
        with pytest.raises(PassNotApplicableError, match=f"{op} does not apply to the {family} family") as info:
            call()
        assert reason in info.value.message


def test_albert_head_pruning_cuts_the_shared_layer(tiny_models):
    loaded = model_from_path(tiny_models("albert", "feature-extraction"))
    details = prune.prune_heads(loaded, 1, None)
    assert len(details["heads_kept"]) == 1  # one layer, applied num_hidden_layers (2) times
    layer = loaded.model.encoder.albert_layer_groups[0].albert_layers[0]
    assert layer.attention.query.out_features == 16


@pytest.mark.parametrize("task,shape", [("token-classification", (3, 21, 5)), ("question-answering", (3, 21, 2))])
def test_token_level_heads_export_with_parity(tiny_models, tmp_path, task, shape):
    import onnx
    import onnxruntime as ort

    loaded = model_from_path(tiny_models("bert", task))
    assert loaded.task == task
    assert export_onnx(loaded, tmp_path / "m.onnx")["max_abs"] < 1e-4
    names = [o.name for o in onnx.load(str(tmp_path / "m.onnx")).graph.output]
    assert names == (["logits"] if task == "token-classification" else ["start_logits", "end_logits"])
    feeds = random_feeds(loaded.family.inputs, loaded.model.config.vocab_size, 3, 21)
    outs = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, feeds)
    got = np.stack(outs, -1) if len(outs) > 1 else outs[0]
    assert got.shape == shape

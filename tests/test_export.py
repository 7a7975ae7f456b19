"""Export of each family and task: ONNX checker, dynamic axes, parity against PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeport.errors import ModelNotFoundError
from edgeport.model.load import model_from_path, path_from_ref, save_model
from edgeport.exporter.onnx_export import export_onnx, random_feeds, torch_outputs


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta"])
@pytest.mark.parametrize("task", ["feature-extraction", "text-classification"])
def test_export_parity_every_family(tiny_models, tmp_path, family, task):
    loaded = model_from_path(tiny_models(family, task))
    assert loaded.task == task and loaded.family.name == family
    parity = export_onnx(loaded, tmp_path / "m.onnx")
    assert parity["max_abs"] < 1e-4 and parity["min_cosine"] > 0.9999
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.graph.input] == list(loaded.family.inputs)
    assert model.opset_import[0].version >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_param == "sequence"
    # a shape never seen at export time
    feeds = random_feeds(loaded.family.inputs, loaded.model.config.vocab_size, 5, 77, seed=3)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, feeds)[0]
    np.testing.assert_allclose(got, torch_outputs(loaded, feeds), atol=1e-4)
    width = 2 if task == "text-classification" else 32
    assert got.shape == (5, width)


def test_embeddings_are_normalised_mean_pool(tiny_models):
    loaded = model_from_path(tiny_models("bert"))
    feeds = random_feeds(loaded.family.inputs, loaded.model.config.vocab_size, 3, 20)
    out = torch_outputs(loaded, feeds)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_save_and_reload_round_trip(tiny_models, tmp_path):
    loaded = model_from_path(tiny_models("distilbert", "text-classification"))
    save_model(loaded, tmp_path / "copy")
    assert (tmp_path / "copy" / "model.safetensors").is_file()
    again = model_from_path(tmp_path / "copy")
    feeds = random_feeds(loaded.family.inputs, loaded.model.config.vocab_size, 2, 9)
    np.testing.assert_array_equal(torch_outputs(loaded, feeds), torch_outputs(again, feeds))


def test_model_refs(tmp_path):
    assert (path_from_ref("minilm") / "config.json").is_file()
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        path_from_ref(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        path_from_ref(tmp_path / "empty")

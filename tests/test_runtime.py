"""edgeport.runtime: artifacts served from their folder (tokenizer.json + manifest) give what the
verification runners give, in every runtime; LiteRT routes requests to sequence buckets; the
predict command; the device agent's --texts mode; and the runtime in a bare venv (no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from edgeport.artifact import ArtifactManifest, ModelFacts
from edgeport.calibration.data import builtin_texts
from edgeport.calibration.feeds import CalibrationSet, feeds_from_texts
from edgeport.exporter.onnx_export import export_onnx
from edgeport.model.load import model_from_path
from edgeport.model.torch_runner import TorchRunner
from edgeport.model.wrappers import OUTPUT_NAME
from edgeport.targets import registry
from edgeport.targets.base import BuildContext
from edgeport.verify import cosine_rows

ROOT = Path(__file__).resolve().parents[1]
TEXTS = builtin_texts("heldout").texts[:20] + ["ok", "a"]


def _context(folder: Path, tmp: Path, options: dict | None = None, target: str = "onnx-fp32") -> tuple:
    loaded = model_from_path(folder)
    onnx_path = tmp / "model.onnx"
    if not onnx_path.exists():
        export_onnx(loaded, onnx_path)
    calib = CalibrationSet("builtin:calibration", builtin_texts("calibration").texts[:24], loaded.tokenizer,
                           loaded.family.inputs)
    typed = registry.get(target).Options.model_validate(options or {})
    facts = ModelFacts(task=loaded.task, family=loaded.family.name, vocab_size=loaded.tokenizer.vocab_size,
                       id2label={str(k): v for k, v in loaded.model.config.id2label.items()}
                       if loaded.task == "text-classification" else None)
    return loaded, BuildContext(onnx_path, folder, loaded.family.inputs, OUTPUT_NAME[loaded.task], calib, typed, facts)


@pytest.fixture(scope="module")
def built(tiny_models, tmp_path_factory):
    """name -> (loaded model, artifact folder), each built by its target (which writes the
    manifest and the tokenizer)."""
    cache: dict = {}

    def get(name: str, options: dict | None = None, task: str = "feature-extraction", family: str = "bert"):
        key = (name, json.dumps(options or {}, sort_keys=True), task, family)
        if key not in cache:
            tmp = tmp_path_factory.mktemp(f"{name}-{family}")
            loaded, ctx = _context(tiny_models(family, task), tmp, options, name)
            out = tmp / "artifact"
            out.mkdir()
            target = registry.get(name)
            target.build(ctx, out, target.prepare(ctx))
            cache[key] = (loaded, out)
        return cache[key]

    return get


def test_runtime_imports_nothing_heavy():
    code = ("import sys, edgeport.runtime as r; heavy = [m for m in ('torch', 'transformers', 'pydantic', 'click') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_tokenizer_json_encodes_as_the_run_tokenizer(built, family):
    """The artifact's tokenizer.json gives the feeds verification gives (HF tokenizer)."""
    import edgeport.runtime as runtime

    loaded, folder = built("onnx-fp32", family=family)
    predictor = runtime.load(folder)
    texts = TEXTS + [" ".join(TEXTS)]  # one text longer than the 128-token truncation
    reference = feeds_from_texts(loaded.tokenizer, texts, loaded.family.inputs)
    rows = predictor.encoder.encode(texts)
    packed = predictor.encoder.pack(rows, reference["input_ids"].shape[1])
    assert set(packed) == set(reference)
    for name in reference:
        np.testing.assert_array_equal(packed[name], reference[name], err_msg=name)
    assert max(len(r.ids) for r in rows) == 128


@pytest.mark.parametrize("name,options,tolerance", [
    ("onnx-fp32", {}, 1e-5),
    ("onnx-int8", {}, 2e-3),
    ("openvino-fp16", {}, 1e-4),
    ("openvino-int8", {}, 2e-3),
])
def test_outputs_equal_the_runner(built, name, options, tolerance):
    """load(artifact).embed(texts) == the target runner (verification) on the same texts; the
    request path (micro-batches of sorted lengths) changes nothing beyond the tolerance."""
    import edgeport.runtime as runtime

    loaded, folder = built(name, options)
    runner = registry.get(name).runner(folder)
    expected = runner.infer(feeds_from_texts(loaded.tokenizer, TEXTS, loaded.family.inputs))
    got = runtime.load(folder, batch_size=4).embed(TEXTS)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.max(np.abs(got - expected)) < tolerance, np.max(np.abs(got - expected))
    single = runtime.load(folder).embed([TEXTS[3]])
    assert np.max(np.abs(single[0] - expected[3])) < tolerance
    if name == "onnx-fp32":  # and the whole path equals PyTorch at natural lengths
        torch_out = TorchRunner(loaded).infer(feeds_from_texts(loaded.tokenizer, TEXTS, loaded.family.inputs))
        assert cosine_rows(got, torch_out).min() > 0.99999


def test_manifest_records_the_request_path(built):
    _, folder = built("openvino-int8")
    manifest = ArtifactManifest.read(folder)
    request = manifest.request_path
    assert request.tokenizer == "tokenizer.json" and (folder / "tokenizer.json").is_file()
    assert request.shapes == "dynamic" and request.max_length == 128 and request.pad_id == 0
    assert request.runtime["performance_hint"] == "LATENCY"
    assert "tokenizer.json" in manifest.hashes and "tokenizer.json" not in manifest.files
    saved = json.loads((folder / "tokenizer.json").read_text())
    assert saved["truncation"]["max_length"] == 128 and saved["padding"] is None


def test_openvino_int8_embedding_table_stays_int8(built, tiny_models, tmp_path, monkeypatch):
    """openvino-int8 gathers the int8 rows of its embedding tables and dequantizes those
    (targets/openvino_gather.py): compiled by the CPU plugin, the word-embedding table stays i8
    (NNCF's own layout, dequantize the table then gather, is expanded to fp32 by OpenVINO
    2026.4); the outputs equal those of NNCF's layout."""
    import openvino as ov

    from edgeport.targets import openvino_ir

    loaded, folder = built("openvino-int8")
    rewritten = ArtifactManifest.read(folder).details["int8_tables_gathered_as_int8"]
    assert any("word_embeddings" in name for name in rewritten), rewritten
    table = [loaded.tokenizer.vocab_size, loaded.model.config.hidden_size]

    def compiled_table_precisions(xml: Path) -> set:
        compiled = ov.Core().compile_model(str(xml), "CPU")
        return {op.get_rt_info()["outputPrecisions"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
                if op.get_rt_info()["layerType"].astype(str) == "Const"
                and list(op.get_output_partial_shape(0).to_shape()) == table}

    monkeypatch.setattr(openvino_ir, "gather_rows_first", lambda model: [])  # NNCF's layout, as it comes
    _, ctx = _context(tiny_models("bert", "feature-extraction"), tmp_path, target="openvino-int8")
    original = tmp_path / "original"
    original.mkdir()
    openvino_ir.OpenVinoInt8().build(ctx, original, openvino_ir.OpenVinoInt8().prepare(ctx))
    # (NNCF's layout compiles to an f32 table with OpenVINO 2026.4; not asserted, so that a release
    # that keeps it compressed does not fail here: what must hold is that ours stays int8)
    assert compiled_table_precisions(folder / "model.xml") == {"i8"}
    feeds = feeds_from_texts(loaded.tokenizer, TEXTS, loaded.family.inputs)
    ours = registry.get("openvino-int8").runner(folder).infer(feeds)
    theirs = registry.get("openvino-int8").runner(original).infer(feeds)
    assert np.max(np.abs(ours - theirs)) < 1e-5


def test_openvino_compiled_model_cache(built, tmp_path):
    """settings cache_dir: the first load writes OpenVINO's compiled model there, a later one
    imports it; the outputs do not change."""
    import edgeport.runtime as runtime

    _, folder = built("openvino-int8")
    plain = runtime.load(folder).embed(TEXTS)
    first = runtime.load(folder, settings={"cache_dir": str(tmp_path / "cache")})
    blobs = sorted((tmp_path / "cache").glob("*.blob"))
    assert len(blobs) == 1 and blobs[0].stat().st_size > 100_000
    assert first.info()["runtime"]["cache_dir"] == str(tmp_path / "cache")
    assert first.info()["runtime"]["loaded_from_cache"] is False
    second = runtime.load(folder, settings={"cache_dir": str(tmp_path / "cache")})
    assert second.info()["runtime"]["loaded_from_cache"] is True
    assert sorted((tmp_path / "cache").glob("*.blob")) == blobs
    for predictor in (first, second):
        assert np.max(np.abs(predictor.embed(TEXTS) - plain)) < 1e-6


def test_classify_labels_from_the_manifest(built):
    import edgeport.runtime as runtime

    loaded, folder = built("onnx-fp32", task="text-classification")
    predictor = runtime.load(folder)
    labels = predictor.classify(TEXTS[:5])
    logits = TorchRunner(loaded).infer(feeds_from_texts(loaded.tokenizer, TEXTS[:5], loaded.family.inputs))
    assert [x["label"] for x in labels] == [loaded.model.config.id2label[int(i)] for i in logits.argmax(1)]
    assert all(0.5 <= x["score"] <= 1 for x in labels)
    with pytest.raises(runtime.ArtifactError, match="classify"):
        predictor.embed(["x"])


def test_litert_buckets_route_to_the_smallest(built):
    """tflite-int8 with buckets 8,16 and sequence 32: three signatures; each request runs in the
    smallest that holds it, and gives what the longest signature gives for the same text."""
    import edgeport.runtime as runtime
    from ai_edge_litert.interpreter import Interpreter

    _, folder = built("tflite-int8", {"buckets": "8,16", "sequence": "32"})
    manifest = ArtifactManifest.read(folder)
    assert manifest.signature["buckets"] == [8, 16, 32] and manifest.request_path.buckets == [8, 16, 32]
    assert manifest.request_path.max_length == 32 and manifest.fixed_shape == [1, 32]
    keys = Interpreter(model_path=str(folder / "model.tflite")).get_signature_list()
    assert set(keys) == {"seq_8", "seq_16", "serving_default"}

    predictor = runtime.load(folder)
    backend = predictor.backend
    assert backend.buckets == (8, 16, 32) and backend.batch == 1
    assert [backend.length_for(n) for n in (1, 8, 9, 16, 17, 32)] == [8, 8, 16, 16, 32, 32]
    with pytest.raises(runtime.ArtifactError, match="longer"):
        backend.length_for(33)
    assert runtime.load(folder, settings={"longest_only": True}).backend.buckets == (32,)

    ran = []
    for length, (signature, dtypes) in list(backend.runners.items()):
        def spy(signature=signature, length=length, **feeds):
            ran.append(length)
            return signature(**feeds)
        backend.runners[length] = (spy, dtypes)
    texts = ["ok", "the film is long and the story is slow but the acting is good", " ".join(TEXTS)]
    lengths = [len(r.ids) for r in predictor.encoder.encode(texts)]
    got = predictor.embed(texts)
    assert sorted(ran) == sorted(backend.length_for(n) for n in lengths) and len(set(ran)) >= 2
    longest, dtypes = backend.runners[32]
    for i, text in enumerate(texts):  # the same text padded to the longest signature
        feeds = predictor.encoder.pack(predictor.encoder.encode([text]), 32)
        full = next(iter(longest(**{k: v.astype(dtypes[k]) for k, v in feeds.items()}).values()))
        assert cosine_rows(got[i:i + 1], full)[0] > 0.999


def test_litert_runner_verifies_through_the_buckets(built):
    """The verification runner of a bucketed artifact takes natural-length feeds and matches the
    fp32 reference there."""
    loaded, folder = built("tflite-fp32", {"buckets": "8,16", "sequence": "128"})
    runner = registry.get("tflite-fp32").runner(folder)
    assert runner.fixed_shape is None and runner.info()["buckets"] == [8, 16, 128]
    feeds = feeds_from_texts(loaded.tokenizer, TEXTS, loaded.family.inputs)
    assert cosine_rows(runner.infer(feeds), TorchRunner(loaded).infer(feeds)).min() > 0.9999


def test_litert_options_validate_buckets():
    from edgeport.errors import UsageError

    options = registry.options_for([registry.get("tflite-int8")], {"tflite-int8": {"buckets": "64,16,200"}})
    assert options["tflite-int8"].lengths() == [16, 64, 128]
    with pytest.raises(UsageError):
        registry.options_for([registry.get("tflite-int8")], {"tflite-int8": {"buckets": "16,x"}})


@pytest.fixture(scope="module")
def classifier_run(tiny_models, tmp_path_factory):
    from edgeport.cli import main

    out = tmp_path_factory.mktemp("predict") / "run"
    assert main(["export", str(tiny_models("bert", "text-classification")), "--target", "onnx-int8",
                 "--out", str(out), "--no-profile", "--min-fidelity", "0"]) == 0
    return out


def test_predict_cli_json(classifier_run, run_cli, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("a wonderful film\n\nthe worst plot ever\n")
    code, out, err = run_cli("predict", classifier_run, "--target", "onnx-int8", "--file", texts, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["texts"] == ["a wonderful film", "the worst plot ever"]
    assert [x["label"] in ("negative", "positive") for x in document["labels"]] == [True, True]
    assert document["request_path"]["runtime"]["name"] == "onnxruntime"
    code, out, _ = run_cli("predict", classifier_run, "--target", "onnx-int8", "--text", "fine")
    assert code == 0 and out.split()[0] in ("negative", "positive")


def test_predict_cli_errors(classifier_run, run_cli, tmp_path):
    code, _, err = run_cli("predict", classifier_run, "--target", "onnx-int8")
    assert code == 2 and "--text" in err
    code, _, err = run_cli("predict", classifier_run, "--target", "openvino-int8", "--text", "x")
    assert code == 2 and "not built" in err
    old = tmp_path / "run"
    import shutil

    shutil.copytree(classifier_run, old)
    manifest = json.loads((old / "targets" / "onnx-int8" / "manifest.json").read_text())
    del manifest["request_path"]  # an artifact built before edgeport.runtime
    (old / "targets" / "onnx-int8" / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli("predict", old, "--target", "onnx-int8", "--text", "x")
    assert code == 3 and "tokenizer" in err


def test_agent_times_real_requests(built, tmp_path):
    """The agent's --texts mode serves the file through edgeport.runtime in a fresh process."""
    from edgeport.devices.local_profile import AGENT_PATH

    _, folder = built("onnx-int8")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    done = subprocess.run([sys.executable, "-I", str(AGENT_PATH), "--artifact", str(folder), "--texts", str(texts),
                           "--batch", "4", "--runs", "2", "--warmup", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mode"] == "texts" and result["texts"] == len(TEXTS)
    assert result["runs"] == 2 * -(-len(TEXTS) // 4) and result["runtime"]["name"] == "onnxruntime"
    assert 1 <= result["tokens"]["p50"] <= result["tokens"]["max"] <= 128 and result["peak_rss_mb"] > 0


# The runtime where edgeport was installed without its build extras: a venv with numpy,
# tokenizers and onnxruntime only (the versions of this environment), cached under .cache/.
BARE_PACKAGES = ("numpy", "tokenizers", "onnxruntime")


def _bare_venv() -> Path:
    pins = [f"{p}=={metadata.version(p)}" for p in BARE_PACKAGES]
    venv = ROOT / ".cache" / ("bare-runtime-" + "-".join(p.replace("==", "") for p in pins))
    python = venv / "bin" / "python"
    if not (venv / ".ready").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True, timeout=600)
        (venv / ".ready").write_text("\n".join(pins) + "\n")
    return python


@pytest.mark.bare_venv
def test_runtime_in_a_bare_venv_without_torch(built):
    _, folder = built("onnx-int8")
    python = _bare_venv()
    script = textwrap.dedent(f"""
        import importlib.util, sys
        assert importlib.util.find_spec("torch") is None, "torch is installed in the bare venv"
        assert importlib.util.find_spec("transformers") is None and importlib.util.find_spec("pydantic") is None
        import edgeport.runtime as r
        print(r.load({str(folder)!r}).embed(['hello']).shape)
        print(sorted(m for m in ("torch", "transformers", "pydantic") if m in sys.modules))
    """)
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["(1, 32)", "[]"]

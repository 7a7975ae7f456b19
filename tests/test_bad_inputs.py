"""Every bad input a user can give, table-driven: model folders, ONNX files, data files,
recipes, run folders and options, across export, build, run, profile, report and calibrate.

Each case asserts the documented exit code, exactly one ``error:`` line that names the file
or option at fault, a ``hint:`` line where a fix exists, no traceback, an empty stdout under
``--json``, and no partial output (the --out folder does not exist afterwards). A subset is
run again into an earlier run folder, which must come out byte for byte unchanged. Inputs
are refused before any model copy or export, so each case takes well under a second.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import make_tiny_model


# ---------------------------------------------------------------- the world each case starts from
@dataclass
class Env:
    tmp: Path
    out: Path
    bert: Path        # a tiny feature-extraction model (read-only: cases copy it before changing it)
    clf: Path         # a tiny classifier with labels negative/positive
    prior_onnx: Path  # a valid exported ONNX graph of `bert`

    def model(self, name: str = "m", source: Path | None = None) -> Path:
        """A private copy of a tiny model folder, to break."""
        folder = self.tmp / name
        shutil.copytree(source or self.bert, folder)
        return folder

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def config(self, folder: Path, **changes) -> Path:
        data = json.loads((folder / "config.json").read_text())
        data.update(changes)
        (folder / "config.json").write_text(json.dumps(data))
        return folder

    def export(self, model, *extra) -> list:
        return ["export", model, "--target", "onnx-fp32", "--out", self.out, "--no-profile", *extra]

    def build(self, onnx, *extra, tokenizer=None) -> list:
        return ["build", onnx, "--tokenizer", tokenizer or self.bert, "--target", "onnx-fp32", "--out", self.out,
                "--no-profile", *extra]

    def calib(self, name: str, content: str | bytes, *extra) -> tuple[list, Path]:
        path = self.file(name, content)
        return self.export(self.bert, "--calib", path, *extra), path

    def eval(self, name: str, content: str | bytes, *extra, model=None) -> tuple[list, Path]:
        path = self.file(name, content)
        return ["export", model or self.clf, "--target", "onnx-fp32", "--out", self.out, "--no-profile",
                "--eval", path, *extra], path

    def recipe(self, content: str | bytes) -> tuple[list, Path]:
        path = self.file("recipe.yaml", content)
        return ["run", path, "--out", self.out], path


def _safetensors(tensors: dict[str, tuple[list[int], bytes]]) -> bytes:
    """A safetensors file written by hand (so that a test can also write a broken one)."""
    header, offset, blobs = {}, 0, b""
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs += data
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + blobs


def _onnx_graph(path: Path, inputs=("input_ids", "attention_mask"), opset: int = 17, external: str | None = None):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Cast", [inputs[0]], ["f"], to=TensorProto.FLOAT), helper.make_node("MatMul", ["f", "w"],
                                                                                             ["out"])],
        "g", [helper.make_tensor_value_info(name, TensorProto.INT64, [1, 4]) for name in inputs],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if external:
        onnx.save(model, path, save_as_external_data=True, location=external, size_threshold=0)
    else:
        onnx.save(model, path)
    return path


def _pickle_bin(folder: Path, tensors: dict) -> None:
    import torch

    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save(tensors, folder / "pytorch_model.bin")


def _tiny_state(env: Env) -> dict:
    from safetensors.torch import load_file

    return load_file(env.bert / "model.safetensors")


# ---------------------------------------------------------------- the cases
Setup = Callable[[Env], tuple[list, object]]  # -> (argv, what the error line must name)
CASES: list[tuple[str, int, str, bool, Setup]] = []  # id, exit code, needle, hint expected, setup


def case(id: str, code: int, needle: str, hint: bool = True):
    def add(setup: Setup) -> Setup:
        CASES.append((id, code, needle, hint, setup))
        return setup
    return add


# model folders ------------------------------------------------------------------------------------
@case("model-missing", 3, "does not exist")
def _(env):
    return env.export(env.tmp / "nope"), env.tmp / "nope"


@case("model-empty-folder", 3, "no config.json")
def _(env):
    (env.tmp / "empty").mkdir()
    return env.export(env.tmp / "empty"), env.tmp / "empty"


@case("model-is-a-file", 3, "not a Hugging Face model folder")
def _(env):
    path = env.file("model.txt", "hello")
    return env.export(path), path


@case("safetensors-truncated", 3, "is truncated")
def _(env):
    m = env.model()
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    return env.export(m), m / "model.safetensors"


@case("safetensors-random-bytes", 3, "truncated or not a safetensors file")
def _(env):
    m = env.model()
    (m / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    return env.export(m), m / "model.safetensors"


@case("safetensors-empty-file", 3, "truncated or not a safetensors file")
def _(env):
    m = env.model()
    (m / "model.safetensors").write_bytes(b"")
    return env.export(m), m / "model.safetensors"


@case("safetensors-header-not-json", 3, "header is not valid JSON")
def _(env):
    m = env.model()
    (m / "model.safetensors").write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 64)
    return env.export(m), m / "model.safetensors"


@case("safetensors-bad-offsets", 3, "has no valid offsets or shape")
def _(env):
    m = env.model()
    raw = json.dumps({"w": {"dtype": "F32", "shape": "big", "data_offsets": "x"}}).encode()
    (m / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    return env.export(m), m / "model.safetensors"


@case("safetensors-shard-missing", 3, "lacks the weight files")
def _(env):
    m = env.model()
    (m / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    return env.export(m), "model-00002-of-00002.safetensors"


@case("safetensors-unrelated-tensor", 3, "tensors are missing from the weights")
def _(env):
    m = env.model()
    (m / "model.safetensors").write_bytes(_safetensors({"foo": ([3], b"\0" * 12)}))
    return env.export(m), m


@case("safetensors-half-the-weights", 3, "tensors are missing from the weights")
def _(env):
    from safetensors.torch import save_file

    m = env.model()
    state = {k: v for k, v in _tiny_state(env).items() if "layer.1." not in k}
    save_file(state, m / "model.safetensors")
    return env.export(m), m


@case("no-weights", 3, "no weights in")
def _(env):
    m = env.model()
    (m / "model.safetensors").unlink()
    return env.export(m), m


@case("pickle-refused-without-trust", 3, "holds pickled PyTorch weights")
def _(env):
    m = env.model()
    _pickle_bin(m, _tiny_state(env))
    return env.export(m), m / "pytorch_model.bin"


@case("pickle-corrupt-with-trust", 3, "cannot load the model")
def _(env):
    m = env.model()
    (m / "model.safetensors").unlink()
    (m / "pytorch_model.bin").write_bytes(b"PK\x03\x04 this is not a zip archive of tensors")
    return env.export(m, "--trust-pickle"), m


@case("pickle-unrelated-tensor-with-trust", 3, "tensors are missing from the weights")
def _(env):
    import torch

    m = env.model()
    _pickle_bin(m, {"unrelated": torch.zeros(3)})
    return env.export(m, "--trust-pickle"), m


@case("config-missing", 3, "no config.json")
def _(env):
    m = env.model()
    (m / "config.json").unlink()
    return env.export(m), m


@case("config-not-json", 3, "cannot read")
def _(env):
    m = env.model()
    (m / "config.json").write_text('{"model_type": "bert",')
    return env.export(m), m / "config.json"


@case("config-a-list", 3, "does not hold a JSON object")
def _(env):
    m = env.model()
    (m / "config.json").write_text("[1, 2]")
    return env.export(m), m / "config.json"


@case("architecture-unknown", 3, "model type 'gpt9' is not supported")
def _(env):
    return env.export(env.config(env.model(), model_type="gpt9")), "gpt9"


@case("architecture-missing", 3, "is not supported")
def _(env):
    m = env.model()
    data = json.loads((m / "config.json").read_text())
    del data["model_type"]
    (m / "config.json").write_text(json.dumps(data))
    return env.export(m), "model_type"


@case("config-hidden-size-contradicts-weights", 3, "have other shapes than config.json says")
def _(env):
    m = env.config(env.model(), hidden_size=64, intermediate_size=128)
    return env.export(m), m


@case("config-fewer-layers-than-weights", 3, "have no place in the model")
def _(env):
    m = env.config(env.model(), num_hidden_layers=1)
    return env.export(m), m


@case("config-more-layers-than-weights", 3, "tensors are missing from the weights")
def _(env):
    m = env.config(env.model(), num_hidden_layers=3)
    return env.export(m), m


@case("classifier-config-without-head-weights", 3, "tensors are missing from the weights")
def _(env):
    m = env.config(env.model(), architectures=["BertForSequenceClassification"])
    return env.export(m), m


@case("tokenizer-files-missing", 3, "has no tokenizer files")
def _(env):
    m = env.model()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (m / name).unlink(missing_ok=True)
    return env.export(m), m


@case("tokenizer-json-corrupt", 3, "cannot load the tokenizer")
def _(env):
    m = env.model()
    (m / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    return env.export(m), m


# ONNX files ---------------------------------------------------------------------------------------
@case("onnx-missing", 3, "does not exist")
def _(env):
    return env.build(env.tmp / "nope.onnx"), env.tmp / "nope.onnx"


@case("onnx-corrupt", 3, "cannot be read as ONNX")
def _(env):
    path = env.file("bad.onnx", b"\x08\x07garbage" * 10)
    return env.build(path), path


@case("onnx-truncated", 3, "onnx")
def _(env):
    data = env.prior_onnx.read_bytes()
    path = env.file("cut.onnx", data[: len(data) // 3])
    return env.build(path), path


@case("onnx-empty-file", 3, "holds no ONNX graph")
def _(env):
    path = env.file("empty.onnx", b"")
    return env.build(path), path


@case("onnx-external-data-missing", 3, "which does not exist")
def _(env):
    folder = env.tmp / "ext"
    folder.mkdir()
    path = _onnx_graph(folder / "m.onnx", external="m.onnx.data")
    (folder / "m.onnx.data").unlink()
    return env.build(path), "m.onnx.data"


@case("onnx-external-data-outside-its-folder", 3, "outside its folder")
def _(env):
    import onnx

    folder = env.tmp / "ext"
    folder.mkdir()
    path = _onnx_graph(folder / "m.onnx", external="m.onnx.data")
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    onnx.save(model, path)
    return env.build(path), path


@case("onnx-wrong-inputs", 3, "edgeport needs input_ids and attention_mask")
def _(env):
    return env.build(_onnx_graph(env.tmp / "v.onnx", inputs=("pixels", "mask"))), "pixels"


@case("onnx-opset-too-new", 3, "uses ONNX opset 99")
def _(env):
    path = _onnx_graph(env.tmp / "new.onnx", opset=99)
    return env.build(path), path


@case("tokenizer-folder-missing", 3, "does not exist")
def _(env):
    return env.build(env.prior_onnx, tokenizer=env.tmp / "tok"), env.tmp / "tok"


@case("tokenizer-folder-without-tokenizer", 3, "has no tokenizer files")
def _(env):
    (env.tmp / "tok").mkdir()
    return env.build(env.prior_onnx, tokenizer=env.tmp / "tok"), env.tmp / "tok"


# data files ---------------------------------------------------------------------------------------
@case("calib-missing", 3, "does not exist")
def _(env):
    return env.export(env.bert, "--calib", env.tmp / "nope.txt"), env.tmp / "nope.txt"


@case("calib-empty", 3, "is empty")
def _(env):
    return env.calib("c.txt", "")


@case("calib-blank-lines-only", 3, "is empty")
def _(env):
    return env.calib("c.txt", "\n  \n\t\n")


@case("calib-binary", 3, "is a binary file")
def _(env):
    return env.calib("c.txt", bytes(range(256)) * 4)


@case("calib-latin-1", 3, "is not UTF-8 text")
def _(env):
    return env.calib("c.txt", "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1"))


@case("calib-utf-16", 3, "is UTF-16 text")
def _(env):
    return env.calib("c.txt", "hello world\nsecond line\n".encode("utf-16"))


@case("calib-huge-line", 3, "characters (the limit is 100,000)")
def _(env):
    return env.calib("c.txt", "a normal line\n" + "word " * 50_000 + "\n")


@case("calib-unknown-extension", 3, "has an unknown extension '.docx'")
def _(env):
    return env.calib("c.docx", "text")


@case("calib-jsonl-malformed", 3, "line 2 is not valid JSON")
def _(env):
    return env.calib("c.jsonl", '{"text": "fine"}\n{oops\n')


@case("calib-jsonl-not-objects", 3, "line 1 is not a JSON object")
def _(env):
    return env.calib("c.jsonl", '["a list"]\n')


@case("calib-jsonl-text-not-a-string", 3, "the text is a dict, not a string")
def _(env):
    return env.calib("c.jsonl", '{"text": {"nested": 1}}\n')


@case("calib-csv-header-only", 3, "has a header but no rows")
def _(env):
    return env.calib("c.csv", "text\n")


@case("calib-csv-misnamed-column", 3, "has no text column 'txt'")
def _(env):
    args, path = env.calib("c.csv", "sentence\nhello there\n")
    return args + ["--text-column", "txt"], path


@case("calib-csv-no-default-column", 3, "has none of the default text columns")
def _(env):
    return env.calib("c.csv", "body\nhello there\n")


@case("calib-csv-extra-fields", 3, "line 3 has more fields than the header")
def _(env):
    return env.calib("c.csv", "text\nfine\nnot,fine\n")


@case("calib-csv-huge-field", 3, "is not valid CSV")
def _(env):
    return env.calib("c.csv", 'text\n"' + "x" * 200_000 + '"\n')


@case("calib-one-line-fewer-than-asked", 3, "fewer than the 30 asked for")
def _(env):
    return env.calib("c.txt", "just one line\n", "--calib-size", "30")


@case("calib-size-zero", 2, "invalid option --calib-size")
def _(env):
    return env.export(env.bert, "--calib-size", "0"), "--calib-size"


@case("calib-size-negative", 2, "invalid option --calib-size")
def _(env):
    return env.export(env.bert, "--calib-size", "-5"), "--calib-size"


@case("eval-plain-text", 3, "is plain text and has no labels")
def _(env):
    return env.eval("e.txt", "good\nbad\n")


@case("eval-missing-label-column", 3, "has no label column 'stars'")
def _(env):
    args, path = env.eval("e.tsv", "sentence\tlabel\ngood\t1\n")
    return args + ["--label-column", "stars"], path


@case("eval-labels-the-model-lacks", 3, "label 'neutral' is not a class of the model")
def _(env):
    return env.eval("e.tsv", "sentence\tlabel\ngood\tpositive\nmeh\tneutral\n")


@case("eval-label-index-out-of-range", 3, "label '7' is not a class of the model")
def _(env):
    return env.eval("e.tsv", "sentence\tlabel\ngood\t1\nodd\t7\n")


@case("eval-mixed-label-types", 3, "mixes label types: int in row 1, str in row 2")
def _(env):
    return env.eval("e.jsonl", '{"text": "good", "label": 1}\n{"text": "bad", "label": "negative"}\n')


@case("eval-label-not-a-scalar", 3, "is a list, not a class name or index")
def _(env):
    return env.eval("e.jsonl", '{"text": "good", "label": [1]}\n')


@case("eval-empty-label", 3, "has rows with an empty 'label'")
def _(env):
    return env.eval("e.csv", "text,label\ngood,1\nbad,\n")


@case("eval-on-an-embedding-model", 2, "accuracy of classifiers", hint=True)
def _(env):
    args, _ = env.eval("e.tsv", "sentence\tlabel\ngood\t1\n", model=env.bert)
    return args, "--eval"


# recipes ------------------------------------------------------------------------------------------
@case("recipe-missing", 2, "does not exist")
def _(env):
    return ["run", env.tmp / "nope.yaml", "--out", env.out], env.tmp / "nope.yaml"


@case("recipe-yaml-syntax", 2, "cannot read recipe")
def _(env):
    return env.recipe("model: [unclosed\ntargets: onnx-fp32\n")


@case("recipe-not-a-mapping", 2, "must be a YAML mapping")
def _(env):
    return env.recipe("- just\n- a list\n")


@case("recipe-binary", 2, "cannot read recipe")
def _(env):
    return env.recipe(bytes(range(256)))


@case("recipe-unknown-key", 2, "invalid option targetz")
def _(env):
    return env.recipe(f"model: {env.bert}\ntargetz: [onnx-fp32]\n")


@case("recipe-wrong-type", 2, "invalid option calibration.size")
def _(env):
    return env.recipe(f"model: {env.bert}\ncalibration: {{size: many}}\n")


@case("recipe-opset-too-old", 2, "invalid option opset")
def _(env):
    return env.recipe(f"model: {env.bert}\nopset: 11\n")


@case("recipe-option-nobody-reads", 2, "augment_rate shape the word-replaced copies, and augment is 0")
def _(env):  # an option that would change nothing is refused, not silently ignored
    return env.recipe(f"model: {env.bert}\ncompress: {{steps: [{{op: distill, augment_rate: 0.5}}]}}\n")


@case("recipe-python-object-tag", 2, "cannot read recipe")
def _(env):
    canary = env.tmp / "canary"
    return env.recipe(f"model: !!python/object/apply:os.system ['touch {canary}']\n")


@case("recipe-model-path-missing", 3, "does not exist")
def _(env):
    args, _ = env.recipe(f"model: {env.tmp / 'gone'}\ntargets: [onnx-fp32]\nprofile: {{enabled: false}}\n")
    return args, env.tmp / "gone"


@case("recipe-calibration-path-missing", 3, "does not exist")
def _(env):
    args, _ = env.recipe(f"model: {env.bert}\ntargets: [onnx-fp32]\n"
                         f"calibration: {{data: {{path: {env.tmp / 'gone.txt'}}}}}\nprofile: {{enabled: false}}\n")
    return args, env.tmp / "gone.txt"


# run folders --------------------------------------------------------------------------------------
@case("profile-missing-run-folder", 3, "does not exist")
def _(env):
    return ["profile", env.out], env.out


@case("report-not-a-run-folder", 3, "is not an edgeport run folder")
def _(env):
    folder = env.tmp / "plain"
    folder.mkdir()
    return ["report", folder], folder


@case("calibrate-missing-run-folder", 3, "has no model/ and onnx/ stages")
def _(env):
    return ["calibrate", env.out, "--sensitivity"], env.out


@case("out-is-a-file", 3, "exists and is not a folder")
def _(env):
    path = env.file("out.txt", "not a folder")
    return ["export", env.bert, "--target", "onnx-fp32", "--out", path, "--no-profile"], path


# options ------------------------------------------------------------------------------------------
@case("unknown-target", 2, "unknown target 'gpu-int2'")
def _(env):
    return ["export", env.bert, "--target", "onnx-int8,gpu-int2", "--out", env.out], "gpu-int2"


@case("target-option-malformed", 2, "is not TARGET.KEY=VALUE")
def _(env):
    return env.export(env.bert, "--option", "novalue"), "novalue"


@case("runs-zero", 2, "invalid option --runs")
def _(env):
    return ["export", env.bert, "--target", "onnx-fp32", "--out", env.out, "--runs", "0"], "--runs"


@case("min-fidelity-above-one", 2, "invalid option --min-fidelity")
def _(env):
    return env.export(env.bert, "--min-fidelity", "2"), "--min-fidelity"


@case("calibrate-nothing-asked", 2, "say what to calibrate")
def _(env):
    return ["calibrate", env.out], "--sensitivity"


# ---------------------------------------------------------------- fixtures and the checks
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The read-only inputs every case may use: tiny models and an earlier run folder."""
    from edgeport.cli import main

    base = tmp_path_factory.mktemp("bad-inputs")
    bert = make_tiny_model(base / "bert")
    clf = make_tiny_model(base / "clf", task="text-classification")
    prior = base / "prior"
    assert main(["export", str(bert), "--target", "onnx-fp32", "--out", str(prior), "--no-profile",
                 "--calib-size", "10"]) == 0
    return bert, clf, prior


@pytest.fixture()
def env(world, tmp_path) -> Env:
    bert, clf, prior = world
    return Env(tmp_path, tmp_path / "out", bert, clf, prior / "onnx" / "model.onnx")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under a folder with its content hash (and its mode), lock files included."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_refusal(code: int, stdout: str, stderr: str, want_code: int, needle: str, names, hint: bool) -> None:
    assert code == want_code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert needle in errors[0], errors[0]
    assert str(names) in errors[0], f"the error does not name {names}: {errors[0]}"
    if hint:
        assert any(line.startswith("hint: ") and len(line) > 8 for line in stderr.splitlines()), stderr
    assert stdout == "", "stdout must stay clean under --json"


IDS = [c[0] for c in CASES]


def test_the_table_is_large_enough():
    assert len(CASES) >= 50 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("id,want,needle,hint,setup", CASES, ids=IDS)
def test_bad_input(env, run_cli, id, want, needle, hint, setup):
    args, names = setup(env)
    inputs_before = snapshot(env.tmp)
    started = time.monotonic()
    code, stdout, stderr = run_cli("--json", *args)
    took = time.monotonic() - started
    check_refusal(code, stdout, stderr, want, needle, names, hint)
    assert not env.out.exists(), f"partial output left: {list(env.out.rglob('*'))}"
    assert snapshot(env.tmp) == inputs_before, "a bad input was changed or a file was left beside it"
    assert not (env.tmp / "canary").exists()
    assert took < 10, f"refused only after {took:.1f} s"


# a subset again, into an earlier run folder: it must come out unchanged
INTO_PRIOR = ["safetensors-truncated", "safetensors-unrelated-tensor", "pickle-refused-without-trust",
              "config-hidden-size-contradicts-weights", "tokenizer-files-missing", "architecture-unknown",
              "onnx-corrupt", "onnx-opset-too-new", "calib-binary", "calib-size-zero", "eval-labels-the-model-lacks",
              "eval-mixed-label-types", "recipe-unknown-key", "runs-zero"]


@pytest.mark.parametrize("id", INTO_PRIOR)
def test_bad_input_leaves_an_earlier_run_folder_unchanged(world, env, run_cli, id):
    _, _, prior = world
    earlier = env.tmp / "earlier"
    shutil.copytree(prior, earlier)
    env.out = earlier
    before = snapshot(earlier)
    _, want, needle, hint, setup = CASES[IDS.index(id)]
    args, names = setup(env)
    code, stdout, stderr = run_cli("--json", *args)
    check_refusal(code, stdout, stderr, want, needle, names, hint)
    assert snapshot(earlier) == before


def test_early_refusals_come_before_the_model_copy_and_export(env, run_cli, monkeypatch):
    """Labels the model lacks and --calib-size 0 are refused before any model is loaded."""
    import edgeport.stages.model as model_stage

    def must_not_run(*a, **k):
        raise AssertionError("the model stage ran before the inputs were checked")

    monkeypatch.setattr(model_stage, "prepare_model", must_not_run)
    monkeypatch.setattr(model_stage, "model_from_path", must_not_run)
    for id in ("eval-labels-the-model-lacks", "calib-size-zero", "eval-mixed-label-types", "calib-huge-line"):
        _, want, needle, hint, setup = CASES[IDS.index(id)]
        args, names = setup(env)
        code, stdout, stderr = run_cli("--json", *args)
        check_refusal(code, stdout, stderr, want, needle, names, hint)


# ---------------------------------------------------------------- run folders: schema, lock, read-only
def test_newer_schema_version_is_refused_and_kept(world, env, run_cli):
    _, _, prior = world
    run = env.tmp / "run"
    shutil.copytree(prior, run)
    doc = json.loads((run / "results.json").read_text())
    doc["schema_version"] = 2
    (run / "results.json").write_text(json.dumps(doc))
    before = snapshot(run)
    for args in (["export", env.bert, "--target", "onnx-fp32", "--out", run, "--no-profile"],
                 ["profile", run], ["report", run]):
        code, stdout, stderr = run_cli("--json", *args)
        check_refusal(code, stdout, stderr, 3, "was written by a newer edgeport (schema_version 2",
                      run / "results.json", True)
    assert snapshot(run) == before


def test_damaged_results_are_refused(world, env, run_cli):
    _, _, prior = world
    run = env.tmp / "run"
    shutil.copytree(prior, run)
    (run / "results.json").write_text('{"schema_version": 1, "targ')
    code, stdout, stderr = run_cli("--json", "report", run)
    check_refusal(code, stdout, stderr, 3, "is damaged", run / "results.json", True)


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(world, env, run_cli):
    """The lock is an flock: a second command (here this process through another open file,
    which flock treats as another owner) is refused at once, and nothing changes."""
    import fcntl
    import os

    _, _, prior = world
    run = env.tmp / "run"
    shutil.copytree(prior, run)
    fd = os.open(run / ".edgeport.lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    before = snapshot(run)
    try:
        for args in (["export", env.bert, "--target", "onnx-fp32", "--out", run, "--no-profile"],
                     ["profile", run], ["report", run], ["calibrate", run, "--sensitivity"]):
            code, stdout, stderr = run_cli("--json", *args)
            check_refusal(code, stdout, stderr, 2, "another edgeport command (pid 4242) is writing to the run folder",
                          run, True)
        assert snapshot(run) == before
    finally:
        os.close(fd)
    code, _, stderr = run_cli("report", run)  # once released, the folder is usable again
    assert code == 0, stderr


@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder nobody can write to: chmod for a normal user; for root (who ignores modes) a
    tmpfs mounted read-only, where the machine allows mounts."""
    import os
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder, lambda: folder.chmod(0o555), lambda: folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("running as root without the right to mount a read-only tmpfs")
    try:
        yield (folder, lambda: subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True),
               lambda: subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True))
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_read_only_run_folder(world, read_only_folder, run_cli):
    _, _, prior = world
    folder, make_read_only, _ = read_only_folder
    run = folder / "run"
    shutil.copytree(prior, run, ignore=shutil.ignore_patterns("*.onnx"))  # fits a small tmpfs
    make_read_only()
    before = snapshot(run)
    code, stdout, stderr = run_cli("--json", "report", run)
    check_refusal(code, stdout, stderr, 3, "is not writable", run, True)
    code, stdout, stderr = run_cli("--json", "export", world[0], "--target", "onnx-fp32", "--out", run / "sub",
                                   "--no-profile")
    check_refusal(code, stdout, stderr, 3, "cannot create the run folder", run / "sub", True)
    assert snapshot(run) == before


def test_disk_full_during_a_build_keeps_earlier_results(world, read_only_folder, run_cli):
    """A run folder on a 4 MB tmpfs: the export fills it; the command fails with an error
    (not a traceback), the earlier results and report stay, and no temporary folder remains."""
    import os

    if os.geteuid() != 0:
        pytest.skip("a full file system is made with a small tmpfs, which needs root")
    bert, _, prior = world
    folder, _, _ = read_only_folder
    run = folder / "run"
    run.mkdir()
    for name in ("results.json", "report.md"):
        shutil.copy(prior / name, run / name)
    stat = os.statvfs(folder)
    (folder / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 64_000))  # leaves 64 kB
    before = snapshot(run)
    code, stdout, stderr = run_cli("--json", "export", bert, "--target", "onnx-fp32", "--out", run, "--no-profile",
                                   "--calib-size", "10")
    assert code == 3, stderr
    assert "Traceback" not in stderr and stdout == ""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0], stderr
    assert "hint: free some space" in stderr
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]


# ---------------------------------------------------------------- run folder names stay inside runs/
@pytest.mark.parametrize("ref", ["..", "../..", "/", "../../etc", "a/../..", ".hidden", "name with $(x) and ;"])
def test_default_run_folder_never_leads_out_of_runs(ref, tmp_path, monkeypatch):
    from edgeport.cli import _default_out

    monkeypatch.chdir(tmp_path)
    out = _default_out(ref)
    assert out.parent == Path("runs") and out.name not in ("", ".", "..") and not out.name.startswith(".")
    assert (tmp_path / out).resolve().parent == (tmp_path / "runs").resolve()


# ---------------------------------------------------------------- pickles: only when the user opts in
def test_a_trusted_pickle_is_read_and_the_run_keeps_safetensors(world, env, run_cli):
    """--trust-pickle (recipe: trust_pickle: true) reads a pytorch_model.bin whose weights
    cover the model; the run folder's copy is safetensors, and its outputs equal those of the
    same weights read from safetensors."""
    import yaml

    bert, _, prior = world
    m = env.model()
    _pickle_bin(m, _tiny_state(env))
    recipe = env.file("r.yaml", yaml.safe_dump({"model": str(m), "targets": ["onnx-fp32"], "trust_pickle": True,
                                                "calibration": {"size": 10}, "profile": {"enabled": False}}))
    code, stdout, stderr = run_cli("--json", "run", recipe, "--out", env.out)
    assert code == 0, stderr
    assert list((env.out / "model").glob("*.bin")) == [] and (env.out / "model" / "model.safetensors").is_file()
    from safetensors.torch import load_file

    copied, original = load_file(env.out / "model" / "model.safetensors"), _tiny_state(env)
    assert copied.keys() == original.keys() and all((copied[k] == original[k]).all() for k in copied)
    fid = json.loads(stdout)["targets"]["onnx-fp32"]["fidelity"]
    assert fid["mean_cosine"] > 0.99999

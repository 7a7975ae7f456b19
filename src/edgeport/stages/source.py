"""Where a run starts: a Hugging Face model folder (exported here) or an ONNX file exported
elsewhere (validated, copied). Either way the rest of the flow sees one ``Source``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.errors import CorruptOnnxError, InputError, ModelNotFoundError
from edgeport.model.families import Family, family_for
from edgeport.model.load import Task, task_from_config
from edgeport.exporter.onnx_export import check_onnx
from edgeport.runs import MANIFEST, RunDir, atomic_dir, cache_key, code_version, hash_path, mark_stage, read_json, \
    stage_is_current, write_json
from edgeport.verify import Runner
from edgeport.ui import UI

KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Source:
    ref: str
    onnx_path: Path
    model_dir: Path | None
    input_names: tuple[str, ...]
    output_name: str
    task: Task
    family: Family | None
    tokenizer: object
    reference_runner: Runner
    info: dict
    id2label: dict | None = None
    output_names: tuple[str, ...] = ()  # every output in order; empty: just output_name

    def __post_init__(self):
        if not self.output_names:
            self.output_names = (self.output_name,)


def source_from_model(run: RunDir, ref: str, opset: int, ui: UI, task: str | None = None) -> Source:
    from edgeport.model.torch_runner import TorchRunner
    from edgeport.model.wrappers import OUTPUT_NAME, OUTPUT_NAMES
    from edgeport.stages.model import model_info, prepare_model, prepare_onnx

    with ui.step(f"loading {ref}"):
        loaded, cached = prepare_model(run, ref, task)
    ui.info(f"model: {loaded.family.name} {loaded.task}" + (" (cached)" if cached else ""))
    with ui.step("exporting ONNX and checking parity"):
        manifest, cached = prepare_onnx(run, loaded, opset)
    ui.info(f"onnx: parity max abs {manifest['parity']['max_abs']:.2e}" + (" (cached)" if cached else ""))
    return Source(ref, run.onnx_path, run.model_dir, loaded.family.inputs, OUTPUT_NAME[loaded.task], loaded.task,
                  loaded.family, loaded.tokenizer, TorchRunner(loaded), model_info(ref, loaded, run.model_dir),
                  getattr(loaded.model.config, "id2label", None), OUTPUT_NAMES[loaded.task])


def _onnx_signature(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others for a corrupt file
        raise CorruptOnnxError(f"'{path}' cannot be read as ONNX: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                               hint="re-export it, or check that the file was copied completely") from exc
    inputs = tuple(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    unknown = [n for n in inputs if n not in KNOWN_INPUTS]
    if unknown or "input_ids" not in inputs or "attention_mask" not in inputs:
        raise InputError(
            f"'{path}' has inputs {', '.join(inputs)}; edgeport needs input_ids and attention_mask "
            f"(and optionally token_type_ids)", hint="export the encoder with those input names")
    if not model.graph.output:
        raise CorruptOnnxError(f"'{path}' has no outputs")
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return inputs, tuple(o.name for o in model.graph.output), params


def source_from_onnx(run: RunDir, onnx_file: Path, tokenizer_dir: Path, ui: UI, task: str | None = None) -> Source:
    from transformers import AutoTokenizer

    from edgeport.targets.onnxruntime_cpu import OrtRunner

    onnx_file = Path(onnx_file)
    if not onnx_file.is_file():
        raise ModelNotFoundError(f"ONNX file '{onnx_file}' does not exist")
    inputs, outputs, params = _onnx_signature(onnx_file)
    output = outputs[0]
    check_onnx(onnx_file)
    if not Path(tokenizer_dir).is_dir():
        raise ModelNotFoundError(f"tokenizer folder '{tokenizer_dir}' does not exist",
                                 hint="pass the folder with tokenizer.json / vocab files via --tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load a tokenizer from '{tokenizer_dir}': {str(exc).splitlines()[0]}") from exc
    config_file = Path(tokenizer_dir) / "config.json"
    config = read_json(config_file) if config_file.is_file() else {}
    family = family_for(config["model_type"], config) if "model_type" in config else None
    task = task or _task_of_onnx(outputs, config)
    key = cache_key(stage="onnx-in", onnx=hash_path(onnx_file), edgeport=code_version())
    if not stage_is_current(run.onnx_dir, key):
        with atomic_dir(run.onnx_dir) as tmp:
            shutil.copyfile(onnx_file, tmp / "model.onnx")
            write_json(tmp / MANIFEST, {"inputs": list(inputs), "task": task, "source": str(onnx_file)})
            mark_stage(tmp, key)
    info = {"ref": str(onnx_file), "task": task, "family": family.name if family else "unknown",
            "parameters": params, "size_mb": round(onnx_file.stat().st_size / 1e6, 3), "sha256": hash_path(onnx_file)}
    ui.info(f"onnx: {onnx_file} ({', '.join(inputs)} -> {', '.join(outputs)}); "
            "reference: the fp32 ONNX graph itself")
    return Source(str(onnx_file), run.onnx_path, None, inputs, output, task, family, tokenizer,
                  OrtRunner(run.onnx_path), info, config.get("id2label"), outputs)


def _task_of_onnx(outputs: tuple[str, ...], config: dict) -> Task:
    """An ONNX file's task: from the config beside its tokenizer, else from its output names."""
    from_config = task_from_config(config) if config else "feature-extraction"
    if from_config != "feature-extraction":
        return from_config
    if outputs[:2] == ("start_logits", "end_logits"):
        return "question-answering"
    return "text-classification" if outputs[0] == "logits" else "feature-extraction"


def source_from_run(run: RunDir) -> Source:
    """The source of an existing run folder: its model copy and its ONNX graph, as they are."""
    from edgeport.model.load import model_from_path
    from edgeport.model.torch_runner import TorchRunner
    from edgeport.model.wrappers import OUTPUT_NAME, OUTPUT_NAMES

    if not (run.model_dir / "config.json").is_file() or not run.onnx_path.is_file():
        raise InputError(f"'{run.root}' has no model/ and onnx/ stages",
                         hint="create the run with `edgeport export MODEL --out RUN_DIR` first")
    loaded = model_from_path(run.model_dir)
    info = read_json(run.results_path)["model"] if run.results_path.is_file() else {"sha256": hash_path(run.model_dir)}
    return Source(info.get("ref", str(run.root)), run.onnx_path, run.model_dir, loaded.family.inputs,
                  OUTPUT_NAME[loaded.task], loaded.task, loaded.family, loaded.tokenizer, TorchRunner(loaded), info,
                  getattr(loaded.model.config, "id2label", None), OUTPUT_NAMES[loaded.task])

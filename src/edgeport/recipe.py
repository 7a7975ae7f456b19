"""The recipe schema: one source of truth for every option.

A recipe is a YAML file validated by :class:`Recipe`; the CLI flags of a single command
build the same structure (see ``cli.py``), so defaults live here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeport.errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSpec(_Strict):
    """One part of a labelled file carved in two (``calibration.data.carve``): ``selection``, a
    seeded, label-stratified draw of ``size`` rows of at least ``min_words`` words, or ``rest``,
    every other row whose text is not also a selection text. The same numbers give the same
    rows, so a recipe can train on one part and choose on the other without writing files.
    ``drop_inner_phrases``: the rest also loses every row whose text is a run of whole words
    inside a selection text (a corpus of phrases, as SST-2's train.tsv, holds each sentence's
    sub-phrases: left in, parts of the selection rows are trained on)."""
    part: Literal["selection", "rest"]
    size: int = Field(gt=0)
    seed: int = 0
    min_words: int = Field(0, ge=0)
    drop_inner_phrases: bool | None = None  # None (written as nothing) or false: off

    @field_validator("drop_inner_phrases")
    @classmethod
    def _off_is_none(cls, value):  # off is not written, so recipes that leave it off keep their keys
        return value or None


class DataSpec(_Strict):
    path: Path
    text_column: str | None = None
    text_pair_column: str | None = None  # the second text of a pair (sentence pairs; QA: the context)
    label_column: str | None = None
    split: SplitSpec | None = None  # only this part of the file's rows


class CalibrationSpec(_Strict):
    data: DataSpec | None = None  # None: the built-in English calibration set
    size: int | None = Field(None, gt=0)
    seed: int = 0


class BudgetSpec(_Strict):
    min_fidelity: float | None = Field(0.995, ge=0, le=1)  # 0 or null: no fidelity floor
    max_drop: float | None = Field(None, ge=0)
    granularity: Literal["role", "layer"] = "role"
    data: DataSpec | None = None  # labelled data the budget chooses on [half of the eval data]

    @field_validator("min_fidelity")
    @classmethod
    def _zero_is_off(cls, value):
        return None if value == 0 else value


class ProfileSpec(_Strict):
    """How to profile: the one place of its defaults (the standalone device agent keeps the
    same defaults; a test holds them equal)."""
    enabled: bool = True
    batch: int = Field(1, gt=0)
    sequence: int = Field(128, gt=0)
    runs: int = Field(100, gt=0)
    warmup: int = Field(10, ge=0)
    threads: int | None = Field(None, gt=0)  # None: all cores
    device: str | None = None  # None: this machine
    benchmark_binary: Path | None = None  # TFLite's benchmark_model for Android devices
    # a GPU execution provider that cannot run on the device: profile the CPU anyway (the result says
    # cpu_fallback: true) instead of stopping with a device error
    allow_cpu_fallback: bool = False

    @property
    def timeout_s(self) -> float:
        """How long a device run of this spec may take before it is cut off (load + runs)."""
        return 300 + self.runs * 2.0


Importance = Literal["magnitude", "taylor"]


class MagnitudeStep(_Strict):
    """Zero the smallest weights of the blocks' Linear layers (unstructured)."""
    op: Literal["magnitude"]
    sparsity: float = Field(gt=0, lt=1)
    scope: Literal["global", "layer"] = "global"


class HeadsStep(_Strict):
    """Keep a fraction (0.5) or a count (4) of the attention heads of every block."""
    op: Literal["prune_heads"]
    keep: float | int = Field(gt=0)
    importance: Importance = "taylor"


class FfnStep(_Strict):
    """Keep a fraction or a count of the FFN neurons of every block."""
    op: Literal["prune_ffn"]
    keep: float | int = Field(gt=0)
    importance: Importance = "taylor"


class BlocksStep(_Strict):
    """Keep a count of evenly spaced blocks (first and last included), or the listed ones."""
    op: Literal["drop_blocks"]
    keep: int | list[int]


class VocabStep(_Strict):
    """Keep the embedding rows of tokens used at least ``min_count`` times in the data."""
    op: Literal["prune_vocab"]
    min_count: int = Field(1, ge=1)


class LowRankStep(_Strict):
    """Truncated SVD of the word embeddings and/or Linear roles, by rank or retained energy."""
    op: Literal["low_rank"]
    roles: list[Literal["embeddings", "attn_qkv", "attn_out", "ffn_up", "ffn_down"]] = ["embeddings"]
    rank: int | None = Field(None, gt=0)
    energy: float | None = Field(None, gt=0, le=1)


class DistillStep(_Strict):
    """Train the compressed model (student) from the original (teacher) on the data."""
    op: Literal["distill"]
    epochs: int = Field(3, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-4, gt=0)
    warmup: float = Field(0.1, ge=0, lt=1)
    alpha: float = Field(0.5, ge=0, le=1)  # weight of the labels' CE (0: pure distillation)
    temperature: float = Field(2.0, gt=0)
    hidden_weight: float = Field(1.0, ge=0)
    max_length: int = Field(128, gt=0)
    validation_fraction: float = Field(0.02, gt=0, lt=1)
    patience: int = Field(1, ge=1)
    max_samples: int | None = Field(None, gt=0)
    # after the first epoch, abandon the run (exit 5, nothing built) when the student's validation
    # accuracy (label agreement, or cosine, x100 without labels) is more than this many points below
    # the teacher's on the same rows: how a tune prunes a hopeless trial early
    give_up_drop: float | None = Field(None, ge=0)
    # word-replaced copies (compress/augment.py) of each training text of at least
    # augment_min_words words, labelled by the teacher alone: 0 = none
    augment: int = Field(0, ge=0)
    augment_rate: float = Field(0.3, gt=0, le=1)
    augment_min_words: int = Field(10, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _copies_read(self):
        # a value other than the default, since a recipe dumped whole (tune trials, sweep jobs) and
        # read back sets every field to what it was
        fields = type(self).model_fields
        unread = [] if self.augment else sorted(
            name for name in ("augment_rate", "augment_min_words") if getattr(self, name) != fields[name].default)
        if unread:
            raise ValueError(f"{', '.join(unread)} shape the word-replaced copies, and augment is 0 (none are made)")
        return self


CompressStep = Annotated[Union[MagnitudeStep, HeadsStep, FfnStep, BlocksStep, VocabStep, LowRankStep, DistillStep],
                         Field(discriminator="op")]


class CompressSpec(_Strict):
    """Passes run in order on the PyTorch model before export. ``data``: texts (and labels)
    for Taylor importance, the vocabulary and distillation [the built-in calibration texts]."""
    data: DataSpec | None = None
    importance_samples: int = Field(256, gt=0)
    steps: list[CompressStep] = Field(min_length=1)


DEFAULT_MODEL = "minilm"
DEFAULT_TARGETS = ("openvino-int8", "onnx-int8")
Task = Literal["feature-extraction", "text-classification", "text-pair-classification", "token-classification",
               "question-answering"]
TASKS: tuple[str, ...] = get_args(Task)


class Recipe(_Strict):
    model: str = DEFAULT_MODEL
    task: Task | None = None  # None: detected from the model folder
    targets: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    target_options: dict[str, dict] = Field(default_factory=dict)
    opset: int = Field(17, ge=17)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    eval: DataSpec | None = None
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    profile: ProfileSpec = Field(default_factory=ProfileSpec)
    compress: CompressSpec | None = None
    trust_pickle: bool = False  # read a model folder's pickled pytorch_model.bin (never by default)

    @field_validator("targets", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def validated(model: type[BaseModel], data: dict, names: dict[str, str] | None = None, source: str | None = None):
    """``model`` from ``data``; the first problem is a UsageError naming the option (``names``
    maps fields to CLI flags) or the recipe file (``source``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or model.__name__.lower()
        where = (names or {}).get(where, where)
        origin = f" in recipe '{source}'" if source else ""
        raise UsageError(f"invalid option {where}{origin}: {first['msg']}",
                         hint="see the recipes/ folder for the schema" if source else "see edgeport --help") from None


DATA_SECTIONS = ("calibration", "compress", "budget")  # sections whose `data:` names a file, besides `eval:`


def data_mappings(recipe: dict) -> list[tuple[str, dict]]:
    """(what, mapping) of every data file a recipe's JSON names, for rewriting their paths:
    each section's ``data:``, then ``eval:``."""
    found = [(section, recipe[section]["data"]) for section in DATA_SECTIONS
             if (recipe.get(section) or {}).get("data")]
    return found + ([("eval", recipe["eval"])] if recipe.get("eval") else [])


def recipe_from_dict(data: dict, names: dict[str, str] | None = None, source: str | None = None) -> Recipe:
    return validated(Recipe, data, names, source)


def anchored(recipe: Recipe, base: Path) -> Recipe:
    """Relative paths of a recipe file (model folder, data files) resolved against the
    recipe's own folder, as compose files and CI configs do: a recipe works from anywhere."""
    def data(spec: DataSpec | None) -> DataSpec | None:
        if spec is None or spec.path.is_absolute():
            return spec
        return spec.model_copy(update={"path": base / spec.path})

    update: dict = {"calibration": recipe.calibration.model_copy(update={"data": data(recipe.calibration.data)}),
                    "eval": data(recipe.eval), "budget": recipe.budget.model_copy(update={"data": data(recipe.budget.data)})}
    if recipe.compress is not None:
        update["compress"] = recipe.compress.model_copy(update={"data": data(recipe.compress.data)})
    if recipe.model != DEFAULT_MODEL and not Path(recipe.model).expanduser().is_absolute():
        update["model"] = str(base / recipe.model)
    return recipe.model_copy(update=update)


def recipe_from_yaml(path: Path) -> Recipe:
    """A recipe file, read with ``yaml.safe_load`` (no tags that build Python objects)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"recipe '{path}' does not exist", hint="see the recipes/ folder for examples")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        reason = str(exc).strip().replace("\n", " ") or type(exc).__name__
        raise UsageError(f"cannot read recipe '{path}': {reason[:300]}",
                         hint="recipes are plain YAML mappings; see the recipes/ folder") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"recipe '{path}' must be a YAML mapping, not a {type(data).__name__}",
                         hint="see the recipes/ folder for examples")
    return anchored(recipe_from_dict(data, source=str(path)), path.resolve().parent)

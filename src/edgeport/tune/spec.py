"""The tune file: a base recipe, the training data, a search space over the compression passes'
parameters, and the objectives and limits a recipe must meet.

A tune file (YAML; paths relative to it)::

    name: sst2-tune
    recipe: {model: ./my-classifier, targets: [openvino-int8],   # the Recipe schema, or a path to one;
             eval: {path: dev.tsv, label_column: label}}         #   its eval: is the REPORT set
    data: {path: train.tsv, text_column: sentence, label_column: label}   # the training data
    selection: {size: 2000, seed: 0, min_words: 0, drop_inner_phrases: false}   # carved from data (label-stratified): every choice
    space:                               # a list: the choices; {low, high[, step][, log]}: a range
      blocks: [3, 4]                     # encoder blocks kept (drop_blocks)
      heads: [0.5, 1.0]                  # attention heads kept per block (prune_heads; 1.0: none pruned)
      ffn: {low: 0.2, high: 0.5, step: 0.05}   # FFN neurons kept (prune_ffn)
      embedding_rank: [96, 128, null]    # low-rank word embeddings (null: full rank)
      prune_vocab: [true]                # drop the embedding rows the training data never uses
      epochs: [2, 3]                     # distillation: epochs, lr, temperature, hidden_weight, alpha, max_samples,
                                         #   augment, augment_rate
      int8_max_drop: [0.5]               # the INT8 budget: points the artifact may lose to its compressed fp32
      target: [openvino-int8]            # [the recipe's first target]
    limits: {max_drop: 1.0, max_size_mb: 3.0, max_p50_ms: null}   # on the selection set, vs the original
    prefer: size                         # the best feasible trial: the smallest (size), or the fastest (latency)
    prune: {give_up_drop: 4.0}           # abandon a trial this far below its teacher after distillation's epoch 1;
                                         #   oversize: true [default]: a trial whose untrained student is already
                                         #   over max_size_mb is pruned before distillation (one build, no training)
    ablate: {hidden_weight: 0.0}         # then the best trial without hidden-state matching: what it is worth
    trials: 12
    seed: 0
    resources: {cpus: 2}                 # what one trial asks of a Ray node (as in a sweep file)

The three sets never meet: distillation, vocabulary, importance and calibration use the
training data less the selection rows (distillation keeps its best epoch on a held-out share
of those); trial ranking, the front, the best trial and the INT8 budget's fallback layers use
the selection rows; the recipe's ``eval:`` data (the report set) grades the front once, at
the end, and chooses nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeport.errors import UsageError
from edgeport.recipe import DataSpec
from edgeport.sweep.spec import DeviceAccess, Resources

Scalar = Union[bool, int, float, str, None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Strict):
    """A numeric range: integers when ``low``, ``high`` (and ``step``) are integers."""
    low: float | int
    high: float | int
    step: float | int | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and (self.step is not None or self.low <= 0):
            raise ValueError("a log range needs low > 0 and no step")
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1))


Choices = list[Scalar]
Dimension = Union[Range, Choices]

# parameter -> what it sets: the names a space and `ablate:` may use (checked here and by the
# recipe builder)
PARAMETERS: dict[str, str] = {
    "blocks": "encoder blocks kept (drop_blocks keep; the model's count: none dropped)",
    "heads": "fraction of attention heads kept per block (prune_heads; 1.0: none pruned)",
    "ffn": "fraction of FFN neurons kept per block (prune_ffn; 1.0: none pruned)",
    "embedding_rank": "rank of the factorised word embeddings (low_rank; null: full rank)",
    "prune_vocab": "drop the embedding rows the training data never uses (prune_vocab)",
    "vocab_min_count": "with prune_vocab: keep the rows of tokens used at least this often",
    "epochs": "distillation epochs",
    "lr": "distillation learning rate",
    "temperature": "distillation temperature",
    "hidden_weight": "weight of the hidden-state MSE in distillation",
    "alpha": "weight of the labels' cross-entropy in distillation",
    "max_samples": "training rows distillation uses per epoch (null: all)",
    "augment": "word-replaced copies of each training sentence distillation adds, labelled by the teacher (0: none)",
    "augment_rate": "with augment: the share of a copy's words replaced by a neighbour",
    "int8_max_drop": "the INT8 budget: points the artifact may lose to its compressed fp32 model",
    "target": "the target the trial builds",
}


class Selection(_Strict):
    size: int = Field(2000, gt=0, description="rows of the training data set aside to choose on")
    seed: int = 0
    min_words: int = Field(0, ge=0, description="only rows of at least this many words are set aside (training "
                                                "files that mix phrases with sentences, as SST-2's does)")
    drop_inner_phrases: bool = Field(False, description="training rows whose words run inside a selection text "
                                     "(SST-2's sub-phrases of its sentences) leave the training part too")


class Limits(_Strict):
    """What a trial must meet to be feasible; measured on the selection set against the original
    model (accuracy), on the artifact (size), on the profile device (p50 at the recipe's shape)."""
    max_drop: float | None = Field(1.0, ge=0, description="accuracy points lost to the original model")
    max_size_mb: float | None = Field(None, gt=0)
    max_p50_ms: float | None = Field(None, gt=0)


class Prune(_Strict):
    give_up_drop: float | None = Field(None, ge=0, description="points below the teacher after epoch 1 that "
                                                               "abandon a trial")
    oversize: bool = Field(True, description="with limits.max_size_mb: build each trial's student once before "
                           "distilling it (untrained, no budget) and prune the trial without training it when "
                           "that artifact is already over the limit (training and fallback layers add no "
                           "smaller bytes)")


class TuneSpec(_Strict):
    name: str | None = None
    recipe: dict | str = Field(default_factory=dict)
    data: DataSpec
    selection: Selection = Field(default_factory=Selection)
    space: dict[str, Dimension]
    limits: Limits = Field(default_factory=Limits)
    prefer: Literal["size", "latency"] = "size"
    prune: Prune = Field(default_factory=Prune)
    # after the search, the best trial again with one parameter changed at a time (the search
    # trials only rank; these show on the selection rows what each part of the recipe is worth)
    ablate: dict[str, Scalar] = Field(default_factory=dict)
    trials: int = Field(12, gt=0)
    parallel: int | None = Field(None, gt=0, description="trials in flight at once [the cluster's CPUs / resources.cpus]")
    seed: int = 0
    device: str | None = Field(None, description="profile trials on this board of devices: (latency objective)")
    devices: dict[str, DeviceAccess] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=lambda: Resources(cpus=2))
    retries: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _known(self):
        unknown = sorted((set(self.space) | set(self.ablate)) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}")
        for name, dim in self.space.items():
            if isinstance(dim, list) and not dim:
                raise ValueError(f"space.{name} lists no choices")
        if self.device is not None and self.device not in self.devices:
            raise ValueError(f"device '{self.device}' is not described in devices:")
        return self


def read_tune(path: Path) -> TuneSpec:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"tune file '{path}' does not exist", hint="see recipes/sst2-tune.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read tune file '{path}': {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UsageError(f"tune file '{path}' must be a YAML mapping", hint="see recipes/sst2-tune.yaml")
    try:
        return TuneSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "tune"
        raise UsageError(f"invalid tune option {where} in '{path}': {first['msg']}",
                         hint="see recipes/sst2-tune.yaml and the README's Tune section") from None

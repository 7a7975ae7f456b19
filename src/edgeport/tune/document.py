"""The tune's result document (``tune.json``, ``--json``), versioned: every trial with the set
each figure comes from, the Pareto front, the best feasible trial and the recipes written.

Figures on the *selection* set chose (ranking, front, best); figures on the *report* set were
measured once, after the search, for the front only, and chose nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "edgeport-tune/1"
TrialState = Literal["complete", "pruned", "failed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetScore(_Strict):
    """Accuracy of the original fp32 model and of the trial's artifact on one set."""
    set: Literal["selection", "report"]
    source: str
    samples: int
    original: float  # accuracy %, the uncompressed fp32 model
    artifact: float  # accuracy %, the trial's deployable artifact
    drop_points: float
    label_agreement: float | None = None  # artifact vs original labels


class Trial(_Strict):
    number: int
    params: dict
    state: TrialState
    key: str | None = None  # the trial's content key (its job folder: jobs/<key[:16]>)
    selection: SetScore | None = None
    size_mb: float | None = None
    p50_ms: float | None = None
    profiled_on: str | None = None
    int8_fp32_layers: int | None = None
    int8_budget_met: bool | None = None
    feasible: bool | None = None
    violations: list[str] = Field(default_factory=list)
    error: dict | None = None
    # a pruned trial: abandoned after distillation's first epoch, or before distillation because its
    # untrained student was already over the size limit (its size_mb and violations say by how much)
    pruned_by: Literal["distillation", "size"] | None = None
    ran_on: str | None = None
    seconds: float | None = None
    cached: bool = False
    report: SetScore | None = None
    ablation_of: int | None = None  # an ablation: the best trial's number, and the parameter changed
    changed: dict | None = None


class Sets(_Strict):
    training: str
    train_rows: int
    selection_rows: int
    selection_seed: int
    selection_min_words: int = 0
    selection_drop_inner_phrases: bool = False  # training rows inside a selection text were dropped too
    report: str
    report_rows: int
    dropped: dict


class TuneDocument(_Strict):
    schema_: Literal["edgeport-tune/1"] = Field(SCHEMA, alias="schema")
    name: str
    created: str
    spec_sha256: str
    status: Literal["running", "complete", "interrupted"]
    sets: Sets
    limits: dict
    objectives: list[str]
    prefer: str
    trials: list[Trial]
    front: list[int] = Field(default_factory=list)  # trial numbers, non-dominated on the selection set
    best: int | None = None  # the chosen trial (feasible on the selection set)
    closest: int | None = None  # when no trial is feasible: the one that misses least (recipes/closest.yaml)
    recipes: dict[str, str] = Field(default_factory=dict)  # name -> recipe file
    engine: dict | None = None
    wall_seconds: float | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def document(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

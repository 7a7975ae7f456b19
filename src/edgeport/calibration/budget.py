"""Accuracy budgets, sensitivity ranking and the fallback loop shared by every INT8 target.

A *unit* is a group of layers (torch module paths) that fall back together: one layer, or
one role (Q/K/V, attention output, FFN up, FFN down, head) across all blocks. Sensitivity of
a unit = the fidelity lost when that unit alone is quantized, measured with the target's own
runtime on held-out texts. The loop keeps the most sensitive units in higher precision, one
at a time in ranked order, rebuilding and re-verifying, and stops at the first (so fastest)
configuration that meets the budget. When a unit holds several layers, the layers of the
last unit added are then quantized again one at a time where the budget still holds.

``release(keep_fp)`` is called for every trial the loop can no longer choose (a builder keeps
its artifact until then), so that at most the current best trial and the one being measured
are held at any time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeport.model.families import Family
from edgeport.verify import Accuracy, Check, Fidelity

Granularity = Literal["role", "layer"]


@dataclass(frozen=True)
class Budget:
    """``min_fidelity`` bounds agreement with fp32: for a classifier with labelled eval data,
    label agreement on that data (the user's own distribution; per word for a tagger, per
    answer span for a QA reader); without it, the task's agreement on the held-out texts
    (top-1, token labels, answer spans); for embeddings, the mean cosine on the held-out texts.
    ``max_drop``: accuracy points lost on the eval data. None disables a bound."""

    min_fidelity: float | None = 0.995
    max_drop: float | None = None

    def meets(self, check: Check) -> bool:
        return not self.shortfalls(check)

    def shortfalls(self, check: Check) -> list[str]:
        found = []
        fid, acc = check.fidelity, check.accuracy
        if self.min_fidelity is not None:
            if acc is not None:  # a classifier with the user's labelled data: agreement there counts
                if acc.label_agreement < self.min_fidelity:
                    found.append(f"label agreement on eval data {acc.label_agreement:.4f} < {self.min_fidelity}")
            elif fid.agreement is not None:  # labels, token labels or answer spans on the held-out texts
                name, value = fid.agreement
                if value < self.min_fidelity:
                    found.append(f"{name} {value:.4f} < {self.min_fidelity}")
            elif fid.mean_cosine < self.min_fidelity:
                found.append(f"mean cosine {fid.mean_cosine:.4f} < {self.min_fidelity}")
        if self.max_drop is not None and acc is not None and acc.drop_points > self.max_drop:
            found.append(f"accuracy drop {acc.drop_points:.2f} points > {self.max_drop}")
        return found

    @property
    def active(self) -> bool:
        return self.min_fidelity is not None or self.max_drop is not None


def loss_of(check: Check) -> float:
    """One number to rank by: 1 - mean cosine, plus label disagreement where measured."""
    loss = 1.0 - check.fidelity.mean_cosine
    if check.fidelity.agreement is not None:
        loss += 1.0 - check.fidelity.agreement[1]
    if check.accuracy is not None:
        loss += 1.0 - check.accuracy.label_agreement
    return loss


def units_of(layers: list[str], family: Family | None, granularity: Granularity) -> dict[str, tuple[str, ...]]:
    """Group layer module paths into fallback units."""
    if granularity == "layer" or family is None:
        return {layer: (layer,) for layer in layers}
    units: dict[str, list[str]] = {}
    for layer in layers:
        units.setdefault(family.role_of(layer), []).append(layer)
    return {role: tuple(members) for role, members in units.items()}


@dataclass
class Trial:
    keep_fp: tuple[str, ...]
    check: Check
    meets: bool


@dataclass
class FallbackResult:
    chosen: Trial
    trials: list[Trial] = field(default_factory=list)
    sensitivity: list[SensitivityRow] = field(default_factory=list)
    met: bool = True

    def facts(self, budget: "Budget", selection: dict) -> "Fallback":
        return Fallback(budget=asdict(budget), met=self.met, fp32_layers=list(self.chosen.keep_fp),
                        selection=Selection(**selection),
                        trials=[TrialRecord(fp32_layers=len(t.keep_fp), meets=t.meets, fidelity=t.check.fidelity,
                                            accuracy=t.check.accuracy) for t in self.trials],
                        sensitivity=self.sensitivity)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SensitivityRow(_Strict):
    """The fidelity lost when one unit alone is quantized."""

    unit: str
    layers: list[str]
    loss: float
    mean_cosine: float


class TrialRecord(_Strict):
    fp32_layers: int
    meets: bool
    fidelity: Fidelity
    accuracy: Accuracy | None = None


class Selection(_Strict):
    """The texts every choice of the budget was made on (never those the artifact is graded
    on): the labelled selection rows when there are any, else the held-out selection texts;
    ``heldout`` names the held-out texts whose cosine also ranks the units."""

    source: str
    samples: int
    heldout: str
    heldout_samples: int


class Fallback(_Strict):
    """What the budget decided for one artifact (the manifest's and results' ``fallback``):
    the trials' figures are on the selection set."""

    budget: dict
    met: bool
    selection: Selection
    fp32_layers: list[str] = Field(default_factory=list)
    trials: list[TrialRecord] = Field(default_factory=list)
    sensitivity: list[SensitivityRow] = Field(default_factory=list)


Release = Callable[[tuple[str, ...]], None]


def _keep_all(_keep: tuple[str, ...]) -> None:
    return None


def rank_sensitivity(units: dict[str, tuple[str, ...]], all_layers: list[str],
                     try_build: Callable[[tuple[str, ...]], Check], release: Release = _keep_all,
                     hold: tuple[tuple[str, ...], ...] = ()) -> list[SensitivityRow]:
    """Quantize each unit alone (every other layer kept fp32); rank by loss, worst first.
    Each of these trials is released once measured (except one also in ``hold``)."""
    rows = []
    for unit, members in units.items():
        keep = tuple(layer for layer in all_layers if layer not in members)
        check = try_build(keep)
        rows.append(SensitivityRow(unit=unit, layers=list(members), loss=loss_of(check),
                                   mean_cosine=check.fidelity.mean_cosine))
        if keep not in hold:
            release(keep)
    return sorted(rows, key=lambda row: row.loss, reverse=True)


def _refine(budget: Budget, met: Trial, last_unit: list[str], try_build, trials: list[Trial], progress,
            release: Release = _keep_all) -> Trial:
    """The last unit kept in higher precision may need only some of its layers: quantize
    them again one at a time, keeping each re-quantization that still meets the budget."""
    best = met
    if len(last_unit) < 2:
        return best
    for layer in last_unit:
        keep = tuple(name for name in best.keep_fp if name != layer)
        check = try_build(keep)
        trial = Trial(keep, check, budget.meets(check))
        trials.append(trial)
        if trial.meets:
            progress(f"{layer} can be quantized after all")
            if best.keep_fp != keep:
                release(best.keep_fp)
            best = trial
        elif keep != best.keep_fp:
            release(keep)
    return best


def fallback(budget: Budget, units: dict[str, tuple[str, ...]], all_layers: list[str],
             try_build: Callable[[tuple[str, ...]], Check], progress: Callable[[str], None] = lambda _: None,
             release: Release = _keep_all) -> FallbackResult:
    """Full quantization first; if it misses the budget, rank units and fall back in order.
    Only the trial that may still be chosen (the closest so far) is held; every other one is
    released as soon as it is measured."""
    first = try_build(())
    trials = [Trial((), first, budget.meets(first))]
    if trials[0].meets or not budget.active:
        return FallbackResult(trials[0], trials)
    progress("budget missed with every layer quantized; measuring sensitivity")
    ranking = rank_sensitivity(units, all_layers, try_build, release, hold=((),))
    closest = trials[0]
    keep: tuple[str, ...] = ()
    for row in ranking:
        keep = keep + tuple(row.layers)
        progress(f"keeping {row.unit} in higher precision")
        check = try_build(keep)
        trial = Trial(keep, check, budget.meets(check))
        trials.append(trial)
        if trial.meets:
            if closest.keep_fp != keep:
                release(closest.keep_fp)
            chosen = _refine(budget, trial, row.layers, try_build, trials, progress, release)
            return FallbackResult(chosen, trials, ranking)
        if loss_of(check) < loss_of(closest.check):
            if closest.keep_fp != keep:
                release(closest.keep_fp)
            closest = trial
        elif keep != closest.keep_fp:
            release(keep)
    return FallbackResult(closest, trials, ranking, met=False)

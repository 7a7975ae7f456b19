"""The search space as Optuna distributions, and a trial's parameters as a recipe.

``recipe_for`` is pure: parameters in, the recipe's JSON out, in the pass order every hand
recipe uses (vocabulary, blocks, heads, FFN, embedding rank, then distillation), with the
tune's training rows for the passes, its selection rows as the data the trial is ranked on
and the INT8 budget chooses on, and the give-up rule of the tune's pruning. ``untrained``
is a trial's recipe less what does not change the artifact's shapes: the build the tune's
size pruning weighs.
"""

from __future__ import annotations

from edgeport.errors import import_optional
from edgeport.recipe import DataSpec
from edgeport.tune.spec import PARAMETERS, Range, TuneSpec

DISTILL = {"epochs": "epochs", "lr": "lr", "temperature": "temperature", "hidden_weight": "hidden_weight",
           "alpha": "alpha", "max_samples": "max_samples", "augment": "augment", "augment_rate": "augment_rate"}


def optuna_module():
    return import_optional("optuna", "Optuna", "`edgeport tune` searches with it", "tune", "optuna==5.0.0")


UNTRAINED_CALIBRATION = 16  # texts: an untrained build is weighed, not graded; its ranges change no byte


def distributions(spec: TuneSpec) -> dict:
    od = optuna_module().distributions
    out: dict = {}
    for name, dim in spec.space.items():
        if isinstance(dim, Range):
            if dim.integer:
                out[name] = od.IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
            else:
                out[name] = od.FloatDistribution(float(dim.low), float(dim.high), step=dim.step, log=dim.log)
        else:
            out[name] = od.CategoricalDistribution(dim)
    return out


def _data(spec: DataSpec) -> dict:
    return spec.model_dump(mode="json", exclude_none=True)


def steps_for(params: dict, layers: int, give_up_drop: float | None) -> list[dict]:
    """The compression passes a trial's parameters ask for (none for a value that keeps all)."""
    steps: list[dict] = []
    if params.get("prune_vocab"):
        steps.append({"op": "prune_vocab", "min_count": int(params.get("vocab_min_count") or 1)})
    if params.get("blocks") is not None and params["blocks"] < layers:
        steps.append({"op": "drop_blocks", "keep": int(params["blocks"])})
    if params.get("heads") is not None and params["heads"] < 1:
        steps.append({"op": "prune_heads", "keep": float(params["heads"])})
    if params.get("ffn") is not None and params["ffn"] < 1:
        steps.append({"op": "prune_ffn", "keep": float(params["ffn"])})
    if params.get("embedding_rank") is not None:
        steps.append({"op": "low_rank", "roles": ["embeddings"], "rank": int(params["embedding_rank"])})
    distill = {"op": "distill", **{field: params[name] for name, field in DISTILL.items() if name in params}}
    if not distill.get("augment"):  # no copies: their rate is not read (the recipe refuses it)
        distill.pop("augment_rate", None)
    if give_up_drop is not None:
        distill["give_up_drop"] = give_up_drop
    steps.append(distill)
    return steps


def recipe_for(base: dict, params: dict, layers: int, train: DataSpec, choose: DataSpec, report: DataSpec | None,
               give_up_drop: float | None) -> dict:
    """The recipe of a trial (``report`` None: ranked on ``choose``) or of a finished recipe
    (``report``: graded on it; the INT8 budget still chooses on ``choose``)."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}")
    recipe = {key: value for key, value in base.items() if key not in ("compress", "eval", "budget")}
    if "target" in params:  # the trial's target, with the base recipe's options for it (not the others')
        recipe["targets"] = [params["target"]]
        recipe["target_options"] = {name: options for name, options in (base.get("target_options") or {}).items()
                                    if name == params["target"]}
    budget = {**(base.get("budget") or {}), "data": _data(choose)}
    if "int8_max_drop" in params:  # an accuracy budget: the fidelity floor of the base recipe is off
        budget.update({"max_drop": params["int8_max_drop"], "min_fidelity": None})
    recipe["budget"] = budget
    recipe["eval"] = _data(report if report is not None else choose)
    recipe["calibration"] = {**(base.get("calibration") or {}), "data": _data(train)}
    recipe["compress"] = {"data": _data(train), "steps": steps_for(params, layers, give_up_drop)}
    return recipe


def untrained(recipe: dict) -> dict:
    """A trial's recipe without distillation, budget, grading and profile: the artifact it
    builds has the trial's shapes (its passes run on the same data) and so weighs the least the
    trial's artifact can (training changes no shape; the budget's fallback layers only add
    bytes)."""
    steps = [step for step in recipe["compress"]["steps"] if step["op"] != "distill"]
    calibration = recipe.get("calibration") or {}
    size = min(calibration.get("size") or UNTRAINED_CALIBRATION, UNTRAINED_CALIBRATION)
    out = {key: value for key, value in recipe.items() if key != "eval"}
    out.update(compress={**recipe["compress"], "steps": steps}, budget={"min_fidelity": None},
               profile={"enabled": False}, calibration={**calibration, "size": size})
    return out

"""The search: Optuna's multi-objective TPE sampler, asked for a batch of trials at a time
(as many as the cluster runs side by side), told each outcome; the limits are constraints
(``constraints_func``: a trial that misses one ranks behind every trial that meets them all).

The run of a batch is injected (``run_batch``), so the search is tested without Ray, and the
engine runs trials without Optuna: the two meet only here. Finished trials of an earlier,
interrupted tune are handed to the new study first (``add_trial``), so a resumed tune asks
only for the trials still missing.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeport.tune.document import Trial
from edgeport.tune.space import distributions, optuna_module as _optuna
from edgeport.tune.spec import TuneSpec
from edgeport.ui import UI

RunBatch = Callable[[list[tuple[int, dict]]], list[Trial]]


def objectives(base: dict) -> list[str]:
    """What the search minimises: the accuracy drop on the selection set, the artifact's size,
    and its p50 where the recipe profiles."""
    profiled = (base.get("profile") or {}).get("enabled", True)
    return ["drop_points", "size_mb"] + (["p50_ms"] if profiled else [])


def _values(trial: Trial, names: list[str]) -> list[float]:
    return [trial.selection.drop_points if name == "drop_points" else getattr(trial, name) for name in names]


def _constraints(frozen) -> list[float]:
    return frozen.user_attrs.get("constraints", [0.0])


def _constraint_values(trial: Trial, spec: TuneSpec) -> list[float]:
    """<= 0 where a limit is met (Optuna's convention), the excess where it is missed."""
    limits = spec.limits
    checks = [(trial.selection.drop_points, limits.max_drop), (trial.size_mb, limits.max_size_mb),
              (trial.p50_ms, limits.max_p50_ms)]
    return [float(value - limit) if value is not None else 1e9 for value, limit in checks if limit is not None] or [0.0]


def parallel_of(spec: TuneSpec, engine: dict) -> int:
    """Trials in flight: the tune's ``parallel``, else what the engine's CPUs hold."""
    if spec.parallel:
        return spec.parallel
    cpus = sum(node["resources"].get("CPU", 0) for node in engine.get("nodes", []) if node.get("alive"))
    return max(1, int(cpus // spec.resources.cpus))


def _study(spec: TuneSpec, names: list[str]):
    import warnings

    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # multivariate, constraints
    sampler = optuna.samplers.TPESampler(seed=spec.seed, constraints_func=_constraints, multivariate=True,
                                         n_startup_trials=max(2, min(10, spec.trials // 3)))
    return optuna.create_study(directions=["minimize"] * len(names), sampler=sampler)


def _tell(study, trial_obj, trial: Trial, spec: TuneSpec, names: list[str]) -> None:
    optuna = _optuna()

    if trial.state == "complete":
        trial_obj.set_user_attr("constraints", _constraint_values(trial, spec))
        study.tell(trial_obj, _values(trial, names))
    else:
        study.tell(trial_obj, state=optuna.trial.TrialState.PRUNED if trial.state == "pruned"
                   else optuna.trial.TrialState.FAIL)


def _replay(study, trial: Trial, spec: TuneSpec, names: list[str], dists: dict) -> None:
    optuna = _optuna()

    if set(trial.params) != set(dists):
        return
    state = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
             "failed": optuna.trial.TrialState.FAIL}[trial.state]
    study.add_trial(optuna.trial.create_trial(
        params=trial.params, distributions=dists, state=state,
        values=_values(trial, names) if trial.state == "complete" else None,
        user_attrs={"constraints": _constraint_values(trial, spec)} if trial.state == "complete" else {}))


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def _ask_new(study, dists: dict, size: int, done: list[Trial], spec: TuneSpec, names: list[str],
             patience: int = 50) -> list:
    """Up to ``size`` asked trials whose parameters no trial has had: an asked recipe that ran
    before is told its earlier outcome at once (the sampler learns, the budget is not spent)."""
    ran = {_key(t.params): t for t in done if t.ablation_of is None}
    asked: list = []
    for _ in range(size + patience):
        if len(asked) == size:
            break
        trial_obj = study.ask(dists)
        key = _key(trial_obj.params)
        if key in ran:
            _tell(study, trial_obj, ran[key], spec, names)
        elif key in {_key(t.params) for t in asked}:
            study.tell(trial_obj, state=_optuna().trial.TrialState.FAIL)  # asked twice in one batch
        else:
            asked.append(trial_obj)
    return asked


def optimise(spec: TuneSpec, base: dict, done: list[Trial], parallel: int, run_batch: RunBatch,
             on_trial: Callable[[Trial], None], ui: UI) -> None:
    """Ask and run trials until ``spec.trials`` have ended (``done``: those of an earlier run)."""
    names = objectives(base)
    dists = distributions(spec)
    study = _study(spec, names)
    for trial in done:
        _replay(study, trial, spec, names, dists)
    number = max((t.number for t in done), default=-1) + 1
    remaining = spec.trials - sum(t.ablation_of is None for t in done)  # ablations are not search trials
    if remaining <= 0:
        ui.info(f"all {spec.trials} trials ended earlier; nothing to run")
    while remaining > 0:
        asked = _ask_new(study, dists, min(parallel, remaining), done, spec, names)
        if not asked:
            ui.info(f"the space holds no recipe the sampler would still try after {len(done)} trials; stopping")
            break
        size = len(asked)
        batch = [(number + i, dict(t.params)) for i, t in enumerate(asked)]
        ui.info(f"trials {batch[0][0]}-{batch[-1][0]} of {spec.trials} (ran {len(done)}), {size} side by side")
        for trial_obj, trial in zip(asked, run_batch(batch)):
            _tell(study, trial_obj, trial, spec, names)
            on_trial(trial)
            done = done + [trial]
        number += size
        remaining -= size


def best(complete: list[Trial], prefer: str) -> int | None:
    """The feasible trial (every limit met on the selection set) that is smallest (``size``) or
    fastest (``latency``), the other figure and then the drop breaking ties."""
    feasible = [t for t in complete if t.feasible]
    if not feasible:
        return None

    def order(t: Trial):
        p50 = t.p50_ms if t.p50_ms is not None else float("inf")
        first, second = (t.size_mb, p50) if prefer == "size" else (p50, t.size_mb)
        return first, second, t.selection.drop_points

    return min(feasible, key=order).number


def closest(complete: list[Trial]) -> int | None:
    """When no trial meets every limit: the one that misses fewest limits, then loses least."""
    if not complete:
        return None
    return min(complete, key=lambda t: (len(t.violations), t.selection.drop_points, t.size_mb)).number
